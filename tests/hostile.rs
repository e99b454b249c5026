//! Hostile and broken input end to end: one `plumb serve` with a good
//! application beside applications whose Git folders hold YAML bombs, a
//! 200 MiB file, deep nesting, invalid UTF-8, duplicate keys, 100,000
//! objects, invalid names, symlink loops and escapes, a `path` of `../..`
//! and a repoURL with credentials; and hostile requests (a webhook with a
//! wrong signature, oversized and malformed bodies, a 10,000-element
//! generator list). Each gets a clear error on its application or request;
//! nothing already synced is pruned; the good application keeps deploying.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use support::faults::{memory_kib, pid, start_with_env};
use support::{
    GitRepo, TestNamespace, application, configmap_value, eventually, str_at, wait_configmap,
};

const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";
const WAIT: Duration = Duration::from_secs(120);
/// A credential in a repoURL: it must never come back out.
const SECRET: &str = "s3cr3t-hunter2";

fn configmap(name: &str, color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  color: {color}\n")
}

/// Nine levels of nine aliases: 9^9 strings once expanded.
fn billion_laughs() -> String {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb-other\n");
    text.push_str(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..9 {
        let refs = vec![format!("*a{}", level - 1); 9].join(",");
        text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    text.push_str("data:\n  boom: *a8\n");
    text
}

/// The first condition of a type, as text.
fn condition(app: &Value, type_: &str) -> String {
    app["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Every condition of a type, as text.
fn all_conditions(app: &Value, type_: &str) -> Vec<String> {
    app["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == type_)
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Hostile folders: (case, what its ComparisonError must say). Each folder
/// first holds `CASE-keep` and `CASE-other`; then `other.yaml` turns
/// hostile, so a render that skipped it would prune `CASE-other`.
const CASES: &[(&str, &str)] = &[
    ("bomb", "repetition limit"),
    ("deep", "nested deeper than 1000"),
    ("utf8", "other.yaml"),
    ("dupkeys", "duplicate"),
    ("many", "Widget"),
    ("symloop", "other.yaml"),
    ("symout", "outside"),
    // Refused before any write, as the API server would refuse it.
    (
        "badname",
        "ConfigMap name \"Not_A_Valid Name!\" is not a valid name: Kubernetes requires a DNS-1123 subdomain",
    ),
];

#[tokio::test]
async fn hostile_sources_are_errors_on_their_own_application_and_prune_nothing() -> Result<()> {
    let ns = TestNamespace::new("hostile").await;
    let repo = GitRepo::new(None)?;
    repo.write("good/good.yaml", &configmap("good", "blue"))?;
    for case in CASES.iter().map(|(case, _)| *case) {
        repo.write(
            &format!("{case}/keep.yaml"),
            &configmap(&format!("{case}-keep"), "blue"),
        )?;
        repo.write(
            &format!("{case}/other.yaml"),
            &configmap(&format!("{case}-other"), "blue"),
        )?;
    }
    repo.commit("every folder good")?;
    let work = tempfile::tempdir()?;
    let app = |name: &str, url: &str, path: &str| {
        application(&format!("{}-{name}", ns.name), url, path, &ns.name, AUTO)
    };
    let mut apps: Vec<String> = vec![app("good", &repo.url(), "good")];
    apps.extend(CASES.iter().map(|(case, _)| app(case, &repo.url(), case)));
    let plumb = start_with_env(work.path(), &apps.join("---\n"), &[], &[]).await?;
    for case in CASES.iter().map(|(case, _)| *case) {
        plumb
            .wait_status(&format!("{}-{case}", ns.name), "Synced", None)
            .await?;
    }
    let pid = pid(&plumb);
    let before = memory_kib(pid, "VmHWM")?;

    // Now the hostile commit, and the good application changes too.
    write_hostile(&repo)?;
    repo.write("good/good.yaml", &configmap("good", "green"))?;
    // Applications added with the commit: a `path` out of the repository,
    // and a repoURL with a password (a server that refuses at once).
    apps.push(app("dotdot", &repo.url(), "../.."));
    apps.push(app(
        "creds",
        &format!("https://plumb:{SECRET}@127.0.0.1:1/repo.git"),
        ".",
    ));
    let started = Instant::now();
    repo.commit("hostile")?;
    eprintln!("hostile commits made in {:?}", started.elapsed());
    plumb.set_apps(&apps.join("---\n"))?;

    wait_configmap(&ns.name, "good", "color", "green")
        .await
        .with_context(|| plumb.log_text())?;
    eprintln!(
        "good app deployed the commit {:?} after it",
        started.elapsed()
    );
    let mut report = Vec::new();
    let expected = CASES.iter().copied().chain([
        ("dotdot", "leaves the repository"),
        ("creds", "127.0.0.1:1"),
    ]);
    for (case, says) in expected {
        let name = format!("{}-{case}", ns.name);
        let app = eventually(&format!("{name} reports an error"), WAIT, || async {
            let app = plumb.app(&name).await?;
            let message = condition(&app, "ComparisonError");
            Ok((!message.is_empty()).then_some(app))
        })
        .await
        .with_context(|| format!("{name}: {}", plumb.log_text()))?;
        let message = condition(&app, "ComparisonError");
        report.push(format!("{case}: {:?} {message}", started.elapsed()));
        ensure!(message.contains(says), "{name}: {message}");
        ensure!(
            message.len() < 4096,
            "{name}: a message of {} bytes",
            message.len()
        );
        ensure!(!message.contains(SECRET), "{name}: {message}");
    }
    // Nothing that was synced is gone: not the untouched object, not the
    // one whose file turned hostile.
    for case in CASES.iter().map(|(case, _)| *case) {
        for object in ["keep", "other"] {
            let name = format!("{case}-{object}");
            let value = configmap_value(&ns.name, &name, "color").await?;
            ensure!(value.as_deref() == Some("blue"), "{name} is {value:?}");
        }
    }
    let peak = memory_kib(pid, "VmHWM")?;
    eprintln!(
        "hostile inputs: plumb serve peak RSS {} MiB before, {} MiB after\n{}",
        before / 1024,
        peak / 1024,
        report.join("\n")
    );
    // The credential is in no answer of the API and nowhere in the log.
    let list = reqwest::get(format!("{}/api/v1/applications", plumb.url))
        .await?
        .text()
        .await?;
    ensure!(!list.contains(SECRET), "the API shows the credential");
    ensure!(
        list.contains("127.0.0.1:1/repo.git"),
        "the API lists the creds app"
    );
    ensure!(
        !plumb.log_text().contains(SECRET),
        "the log shows the credential"
    );
    // And the good application is still healthy and synced.
    plumb
        .wait_status(&format!("{}-good", ns.name), "Synced", None)
        .await?;
    Ok(())
}

/// Turns each case's `other.yaml` hostile.
fn write_hostile(repo: &GitRepo) -> Result<()> {
    let dir = repo.path();
    repo.write("bomb/other.yaml", &billion_laughs())?;
    let depth = 100_000;
    repo.write(
        "deep/other.yaml",
        &format!(
            "{}  nested: {}{}\n",
            configmap("deep-other", "blue"),
            "[".repeat(depth),
            "]".repeat(depth)
        ),
    )?;
    let mut bytes = configmap("utf8-other", "blue").into_bytes();
    bytes.extend_from_slice(b"  bad: \"\xc3\x28\xff\"\n");
    std::fs::write(dir.join("utf8/other.yaml"), bytes)?;
    repo.write(
        "dupkeys/other.yaml",
        &(configmap("dupkeys-other", "blue") + "  color: red\n"),
    )?;
    // 100,000 objects (6 MiB, under the file limit) of a kind the cluster
    // does not serve, so no dry run of each reaches the shared API server.
    let mut many = String::with_capacity(7 << 20);
    for i in 0..100_000 {
        many.push_str(&format!(
            "---\n{{apiVersion: hostile.plumb.dev/v1, kind: Widget, metadata: {{name: w{i}}}}}\n"
        ));
    }
    repo.write("many/other.yaml", &many)?;
    repo.write("badname/bad.yaml", &configmap("Not_A_Valid Name!", "blue"))?;
    repo.remove("symloop/other.yaml")?;
    repo.symlink("other.yaml", "symloop/other.yaml")?;
    repo.remove("symout/other.yaml")?;
    repo.symlink("../../../../../../../../etc/hostname", "symout/other.yaml")?;
    Ok(())
}

/// Writes `big/other.yaml` of `size` bytes: a ConfigMap padded with `x`.
fn write_big(repo: &GitRepo, size: u64) -> Result<()> {
    use std::io::Write;
    let path = repo.path().join("big/other.yaml");
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let head = configmap("big-other", "blue") + "  pad: ";
    file.write_all(head.as_bytes())?;
    let chunk = vec![b'x'; 1 << 20];
    let mut left = size - head.len() as u64 - 1;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.write_all(b"\n")?;
    Ok(())
}

/// A 50 MiB manifest file, then a 200 MiB one. The first is fetched and
/// refused by --max-manifest-size (8 MiB); the second is over
/// --max-git-object-size (128 MiB): the fetch refuses it without holding
/// it, so the memory does not grow with it. Objects stay either way. The
/// repository has nothing else, so the times are its fetches'.
#[tokio::test]
async fn a_200_mib_file_is_an_error_with_bounded_memory() -> Result<()> {
    let ns = TestNamespace::new("bigfile").await;
    let repo = GitRepo::new(None)?;
    repo.write("big/keep.yaml", &configmap("big-keep", "blue"))?;
    repo.write("big/other.yaml", &configmap("big-other", "blue"))?;
    repo.commit("good")?;
    let work = tempfile::tempdir()?;
    let apps = application(&ns.name, &repo.url(), "big", &ns.name, AUTO);
    let plumb = start_with_env(work.path(), &apps, &[], &[]).await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;
    let pid = pid(&plumb);
    let before = memory_kib(pid, "VmHWM")?;
    let mut peaks = Vec::new();
    for (mib, says) in [
        (50_u64, "--max-manifest-size"),
        (200, "larger than 134217728 bytes (--max-git-object-size"),
    ] {
        write_big(&repo, mib << 20)?;
        let head = repo.commit(&format!("{mib} MiB"))?;
        let started = Instant::now();
        // Bounds a hang only.
        let app = eventually(
            &format!("the {mib} MiB file is an error"),
            Duration::from_secs(600),
            || async {
                let app = plumb.app(&ns.name).await?;
                Ok(all_conditions(&app, "ComparisonError")
                    .iter()
                    .any(|m| m.contains(says))
                    .then_some(app))
            },
        )
        .await
        .with_context(|| plumb.log_text())?;
        let message = all_conditions(&app, "ComparisonError").join("\n");
        if mib == 50 {
            ensure!(
                message.contains(&head[..7]) || message.contains("other.yaml"),
                "{message}"
            );
        }
        let peak = memory_kib(pid, "VmHWM")?;
        eprintln!(
            "{mib} MiB file: error after {:?}; plumb serve peak RSS {} MiB before, {} MiB after",
            started.elapsed(),
            before / 1024,
            peak / 1024
        );
        peaks.push(peak);
        for object in ["big-keep", "big-other"] {
            ensure!(configmap_value(&ns.name, object, "color").await?.as_deref() == Some("blue"));
        }
    }
    // gix inflates a fetched object whole to hash it: the 50 MiB file
    // costs about its size. The 200 MiB one, over the object limit, is
    // never held: the peak grows by much less than it.
    ensure!(
        peaks[0] * 1024 < (before << 10) + 3 * (50 << 20),
        "plumb serve peaked at {} KiB with a 50 MiB file",
        peaks[0]
    );
    ensure!(
        (peaks[1] - peaks[0]) * 1024 < 100 << 20,
        "plumb serve grew from {} to {} KiB with a 200 MiB file over the object limit",
        peaks[0],
        peaks[1]
    );
    Ok(())
}

/// A webhook secret, oversized and malformed bodies, a 10,000-element
/// generator list: 4xx answers or a bounded answer, and the server goes on.
#[tokio::test]
async fn hostile_requests_get_clear_answers_and_the_server_goes_on() -> Result<()> {
    let ns = TestNamespace::new("hostilereq").await;
    ns.create().await?;
    let repo = GitRepo::new(None)?;
    repo.write("good/good.yaml", &configmap("good", "blue"))?;
    repo.commit("good")?;
    let work = tempfile::tempdir()?;
    let name = ns.name.clone();
    let apps = application(&name, &repo.url(), "good", &ns.name, AUTO);
    // Polls an hour apart: only a webhook brings a commit in.
    let plumb = start_with_env(
        work.path(),
        &apps,
        &["--repo-poll-interval", "3600", "--namespace", &ns.name],
        &[("PLUMB_WEBHOOK_SECRET", "the-right-secret")],
    )
    .await?;
    plumb.wait_status(&name, "Synced", None).await?;
    repo.write("good/good.yaml", &configmap("good", "green"))?;
    repo.commit("green")?;

    let http = reqwest::Client::new();
    let body =
        json!({"ref": "refs/heads/main", "repository": {"clone_url": repo.url()}}).to_string();
    let webhook = |signature: Option<&str>| {
        let mut request = http
            .post(format!("{}/api/webhook", plumb.url))
            .header("X-GitHub-Event", "push")
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Some(s) = signature {
            request = request.header("X-Hub-Signature-256", s);
        }
        request.send()
    };
    for signature in [
        None,
        Some("sha256=00"),
        Some("sha256=not-hex"),
        Some("md5=abc"),
    ] {
        let answer = webhook(signature).await?;
        ensure!(answer.status() == 401, "{signature:?}: {}", answer.status());
    }
    ensure!(
        configmap_value(&ns.name, "good", "color").await?.as_deref() == Some("blue"),
        "an unsigned webhook brought the commit in"
    );

    // Bodies: 64 MiB, malformed JSON, the wrong shape, not JSON at all.
    let sync = format!("{}/api/v1/applications/{name}/sync", plumb.url);
    let huge = format!("{{\"revision\": \"{}\"}}", "a".repeat(64 << 20));
    let started = Instant::now();
    let answer = http
        .post(&sync)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await;
    // The server may close the connection once it refuses the body.
    if let Ok(answer) = answer {
        ensure!(answer.status() == 413, "64 MiB body: {}", answer.status());
    }
    eprintln!("64 MiB body refused after {:?}", started.elapsed());
    for bad in [
        "{\"revision\": ",
        "[1,2,3]",
        "{\"prune\": \"maybe\"}",
        "\u{0}\u{1}",
    ] {
        let answer = http
            .post(&sync)
            .header("Content-Type", "application/json")
            .body(bad)
            .send()
            .await?;
        let status = answer.status().as_u16();
        let text = answer.text().await?;
        ensure!(status == 400, "{bad:?}: {status} {text}");
        let error: Value = serde_json::from_str(&text).with_context(|| text.clone())?;
        ensure!(!str_at(&error, "/message").is_empty(), "{text}");
    }
    let answer = http
        .post(format!("{}/api/v1/applications", plumb.url))
        .header("Content-Type", "application/json")
        .body(vec![0xffu8; 1024])
        .send()
        .await?;
    ensure!(
        answer.status() == 400,
        "invalid UTF-8 body: {}",
        answer.status()
    );

    // A 10,000-element list generator, and one with an invalid name among
    // the 10,000.
    let elements: Vec<Value> = (0..10_000)
        .map(|i| json!({"n": format!("gen-{i}")}))
        .collect();
    let set = |elements: Vec<Value>| {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "tenk"},
            "spec": {
                "generators": [{"list": {"elements": elements}}],
                "template": {
                    "metadata": {"name": "{{n}}"},
                    "spec": {
                        "project": "default",
                        "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "good"},
                        "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{n}}"},
                    },
                },
            },
        })
    };
    let started = Instant::now();
    let (code, preview) = plumb
        .post("/api/v1/applicationsets/generate", set(elements.clone()))
        .await?;
    ensure!(code == 200, "{code}: {preview}");
    ensure!(
        preview["applications"].as_array().map(Vec::len) == Some(10_000),
        "{}",
        preview["create"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default()
    );
    eprintln!("10,000-element list generated in {:?}", started.elapsed());
    let mut invalid = elements;
    invalid[9_999] = json!({"n": "Not_A_Valid Name!"});
    let (code, answer) = plumb
        .post("/api/v1/applicationsets/generate", set(invalid))
        .await?;
    ensure!((400..500).contains(&code), "{code}: {answer}");
    ensure!(answer.to_string().contains("Not_A_Valid"), "{answer}");
    // Nothing was created by a preview.
    ensure!(
        plumb.get("/api/v1/applications").await?["items"]
            .as_array()
            .map(Vec::len)
            == Some(1)
    );

    // A wrong GitLab token is refused too; the right one brings the commit
    // in: the server is fine.
    let gitlab = |token: &str| {
        http.post(format!("{}/api/webhook", plumb.url))
            .header("X-Gitlab-Event", "Push Hook")
            .header("X-Gitlab-Token", token)
            .json(&json!({"ref": "refs/heads/main", "project": {"git_http_url": repo.url()}}))
            .send()
    };
    let answer = gitlab("the-wrong-secret").await?;
    ensure!(answer.status() == 401, "wrong token: {}", answer.status());
    let answer = gitlab("the-right-secret").await?;
    ensure!(answer.status() == 200, "right token: {}", answer.status());
    wait_configmap(&ns.name, "good", "color", "green").await?;
    eprintln!(
        "hostile requests: plumb serve peak RSS {} MiB",
        memory_kib(pid(&plumb), "VmHWM")? / 1024
    );
    Ok(())
}
