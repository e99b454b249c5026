//! Git faults end to end: the repository deleted, made unreadable, served by
//! a server that never answers, a commit with a corrupt object; a force-push
//! that rewrites the tracked branch and a moved tag. Applications keep what
//! they last synced, show a condition while Git is broken, never prune
//! because of it, and recover on their own when Git is back.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use support::faults::{Hanging, start_with_env};
use support::{
    GitRepo, TestNamespace, application, configmap_value, eventually, str_at, wait_configmap,
};

const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";
const WAIT: Duration = Duration::from_secs(120);

fn configmap(name: &str, color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  color: {color}\n")
}

/// Every condition message of an application, joined.
fn conditions(app: &Value) -> String {
    app["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {}",
                c["type"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A repository with `CASE-keep` and `CASE-other` at `.`.
fn repo(case: &str) -> Result<GitRepo> {
    let repo = GitRepo::new(None)?;
    repo.write("keep.yaml", &configmap(&format!("{case}-keep"), "blue"))?;
    repo.write("other.yaml", &configmap(&format!("{case}-other"), "blue"))?;
    repo.commit("blue")?;
    Ok(repo)
}

#[tokio::test]
async fn git_faults_keep_the_last_synced_state_and_prune_nothing() -> Result<()> {
    let ns = TestNamespace::new("gitfault").await;
    let cases = [
        "deleted",
        "unreadable",
        "hanging",
        "corrupt",
        "rewritten",
        "tagmoved",
        "bystander",
    ];
    let repos: Vec<GitRepo> = cases.iter().map(|c| repo(c)).collect::<Result<_>>()?;
    repos[5].git(&["tag", "v1"])?;
    let name = |case: &str| format!("{}-{case}", ns.name);
    let apps = |urls: &[String]| {
        cases
            .iter()
            .zip(urls)
            .map(|(case, url)| {
                let app = application(&name(case), url, ".", &ns.name, AUTO);
                if *case == "tagmoved" {
                    app.replace("targetRevision: main", "targetRevision: v1")
                } else {
                    app
                }
            })
            .collect::<Vec<_>>()
            .join("---\n")
    };
    let mut urls: Vec<String> = repos.iter().map(GitRepo::url).collect();
    let work = tempfile::tempdir()?;
    let plumb = start_with_env(work.path(), &apps(&urls), &["--fetch-timeout", "5"], &[]).await?;
    for case in cases {
        plumb.wait_status(&name(case), "Synced", None).await?;
    }
    let synced: Vec<String> = repos.iter().map(GitRepo::head).collect::<Result<_>>()?;

    // The faults. In each broken repository `other.yaml` is also removed
    // in a commit Plumb cannot read, so a prune would have something to do.
    let started = Instant::now();
    let deleted = repos[0].path().with_extension("gone");
    std::fs::rename(repos[0].path(), &deleted)?;
    // Root reads files whatever their mode, so "unreadable" is a `.git`
    // that is not a repository any more.
    let git_dir = repos[1].path().join(".git");
    std::fs::rename(&git_dir, repos[1].path().join("git.saved"))?;
    std::fs::write(&git_dir, "gitdir: /nonexistent/plumb\n")?;
    let hanging = Hanging::start()?;
    urls[2] = format!("http://127.0.0.1:{}/repo.git", hanging.port);
    // A commit whose new blob is corrupt on disk.
    repos[3].remove("other.yaml")?;
    repos[3].write("keep.yaml", &configmap("corrupt-keep", "red"))?;
    repos[3].commit("red, other gone")?;
    let blob = repos[3].git(&["rev-parse", "HEAD:keep.yaml"])?;
    let object = repos[3]
        .path()
        .join(".git/objects")
        .join(&blob[..2])
        .join(&blob[2..]);
    std::fs::write(&object, b"this is not a zlib stream")?;
    // A force-push: main rewritten to a new root commit with other values.
    let rewritten = &repos[4];
    rewritten.git(&["checkout", "-q", "--orphan", "rewrite"])?;
    rewritten.write("keep.yaml", &configmap("rewritten-keep", "green"))?;
    rewritten.remove("other.yaml")?;
    let new_head = rewritten.commit("rewritten history")?;
    rewritten.git(&["branch", "-f", "main", "rewrite"])?;
    // A moved tag.
    repos[5].write("keep.yaml", &configmap("tagmoved-keep", "green"))?;
    let tagged = repos[5].commit("green")?;
    repos[5].git(&["tag", "-f", "v1"])?;
    repos[6].write("keep.yaml", &configmap("bystander-keep", "green"))?;
    repos[6].commit("green")?;
    plumb.set_apps(&apps(&urls))?;

    // The bystander, the rewritten branch and the moved tag deploy.
    wait_configmap(&ns.name, "bystander-keep", "color", "green").await?;
    wait_configmap(&ns.name, "rewritten-keep", "color", "green").await?;
    wait_configmap(&ns.name, "tagmoved-keep", "color", "green").await?;
    let app = plumb
        .wait_status(&name("rewritten"), "Synced", None)
        .await?;
    ensure!(str_at(&app, "/status/sync/revision") == new_head, "{app}");
    // The rewrite dropped other.yaml: pruning it is what Git now says.
    eventually("rewritten-other is pruned", WAIT, || async {
        Ok(configmap_value(&ns.name, "rewritten-other", "color")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let app = plumb.wait_status(&name("tagmoved"), "Synced", None).await?;
    ensure!(str_at(&app, "/status/sync/revision") == tagged, "{app}");

    // The broken ones show a condition and keep what they had.
    let mut seen = Vec::new();
    for (i, case) in cases[..4].iter().enumerate() {
        let app = eventually(&format!("{case} shows a condition"), WAIT, || async {
            let app = plumb.app(&name(case)).await?;
            Ok((!conditions(&app).is_empty()).then_some(app))
        })
        .await
        .with_context(|| plumb.log_text())?;
        seen.push(format!(
            "{case} after {:?}: {}",
            started.elapsed(),
            conditions(&app)
        ));
        let history = app["status"]["history"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        ensure!(history == 1, "{case}: {history} history entries");
        ensure!(
            app["status"]["history"][0]["revision"] == synced[i].as_str(),
            "{case}: {}",
            app["status"]["history"]
        );
    }
    eprintln!("{}", seen.join("\n"));
    for case in &cases[..4] {
        for object in ["keep", "other"] {
            let value = configmap_value(&ns.name, &format!("{case}-{object}"), "color").await?;
            ensure!(
                value.as_deref() == Some("blue"),
                "{case}-{object} is {value:?}"
            );
        }
    }
    ensure!(conditions(&plumb.app(&name("bystander")).await?).is_empty());

    // Git comes back: the deleted and unreadable repositories are restored,
    // the hanging server replaced by the real one; each recovers alone.
    let restored = Instant::now();
    std::fs::rename(&deleted, repos[0].path())?;
    std::fs::remove_file(&git_dir)?;
    std::fs::rename(repos[1].path().join("git.saved"), &git_dir)?;
    urls[2] = repos[2].url();
    plumb.set_apps(&apps(&urls))?;
    for case in &cases[..3] {
        eventually(&format!("{case} recovers"), WAIT, || async {
            let app = plumb.app(&name(case)).await?;
            let ok = conditions(&app).is_empty() && str_at(&app, "/status/sync/status") == "Synced";
            Ok(ok.then_some(()))
        })
        .await?;
    }
    eprintln!("git back: recovered in {:?}", restored.elapsed());
    drop(hanging);
    Ok(())
}
