//! Kustomize, Helm and Jsonnet sources and multi-source applications end to
//! end: the real `helm` and Kustomize (installed by `scripts/tools`, put on
//! `PATH` by `scripts/test`), real git repositories and a chart repository
//! on loopback, a real `plumb serve`, the real local control plane. Each test
//! has its own namespace(s), repositories and server.
//!
//! The tests wait for `Synced` and read the objects; they do not wait for
//! the Deployments to become `Healthy` (what the simulated nodes report).

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use support::{
    ChartServer, GitRepo, Plumb, TestNamespace, application_with, configmap_value, configmaps,
    eventually, get_object, resource, str_at, wait_configmap,
};

const WAIT: Duration = Duration::from_secs(90);

/// Automated sync with prune and self-heal, creating the namespace.
fn auto() -> Value {
    json!({
        "automated": {"prune": true, "selfHeal": true},
        "syncOptions": ["CreateNamespace=true"],
    })
}

/// A source of `repo` at branch `main`, folder `path`, with `options`
/// (`helm`, `kustomize`, `directory`, ...) laid over it.
fn git_source(repo: &GitRepo, path: &str, options: Value) -> Value {
    let mut source = json!({"repoURL": repo.url(), "targetRevision": "main", "path": path});
    if let (Some(fields), Value::Object(options)) = (source.as_object_mut(), options) {
        fields.extend(options);
    }
    source
}

/// An automatically synced Application of one source.
fn app(name: &str, namespace: &str, source: Value) -> String {
    application_with(
        name,
        namespace,
        json!({"source": source, "syncPolicy": auto()}),
    )
}

fn deployments() -> kube::core::ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// An object that must exist.
async fn object(ar: &kube::core::ApiResource, ns: &str, name: &str) -> Result<Value> {
    get_object(ar, ns, name)
        .await?
        .with_context(|| format!("{} {ns}/{name} exists", ar.kind))
}

/// A ConfigMap manifest with one key.
fn settings(name: &str, color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  color: {color}\n")
}

/// The message of the application's `ComparisonError` condition, empty
/// when it has none.
fn comparison_error(app: &Value) -> String {
    app["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "ComparisonError")
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Waits until the application's `ComparisonError` says every one of
/// `words`; returns the message.
async fn wait_comparison_error(plumb: &Plumb, name: &str, words: &[&str]) -> Result<String> {
    eventually(
        &format!("{name} has a ComparisonError saying {words:?}"),
        WAIT,
        || async move {
            let app = plumb.app(name).await?;
            let message = comparison_error(&app);
            if !message.is_empty() && words.iter().all(|w| message.contains(w)) {
                return Ok(Some(message));
            }
            // Not yet: what it says now is the last observation on failure.
            Err(anyhow!("conditions: {}", app["status"]["conditions"]))
        },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// Waits until the application's history holds `n` deployments.
async fn wait_history(plumb: &Plumb, name: &str, n: usize) -> Result<()> {
    eventually(
        &format!("{name}'s history holds {n} deployments"),
        WAIT,
        || async move { Ok((plumb.history_len(name).await? == n).then_some(())) },
    )
    .await
}

/// Runs the real `helm` from `PATH` with its homes in `home`, so nothing of
/// the user's Helm configuration is read or written.
fn helm(home: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("helm")
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .context(
            "cannot run helm: run the tests with scripts/test, which puts the folder \
             `scripts/tools` prints on PATH",
        )?;
    if !out.status.success() {
        bail!(
            "helm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn kustomize_overlays_deploy_as_two_applications() -> Result<()> {
    let (dev, prod, opts) = (
        TestNamespace::new("kdev").await,
        TestNamespace::new("kprod").await,
        TestNamespace::new("kopts").await,
    );
    let repo = GitRepo::new(Some("e2e/kustomize"))?;
    // The options on the dev overlay: as with Argo CD's `kustomize edit`,
    // its namePrefix replaces the overlay's `dev-` and its image override
    // replaces the overlay's.
    let options = json!({"kustomize": {
        "namePrefix": "opt-",
        "images": ["nginx=nginx:1.27"],
        "commonLabels": {"team": "plumb"},
        "commonAnnotations": {"owner": "e2e"},
        "replicas": [{"name": "web", "count": 2}],
    }});
    let apps = [
        app(
            &dev.name,
            &dev.name,
            git_source(&repo, "overlays/dev", json!({})),
        ),
        app(
            &prod.name,
            &prod.name,
            git_source(&repo, "overlays/prod", json!({})),
        ),
        app(
            &opts.name,
            &opts.name,
            git_source(&repo, "overlays/dev", options),
        ),
    ]
    .join("---\n");
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &apps).await?;
    for ns in [&dev, &prod, &opts] {
        let app = plumb.wait_status(&ns.name, "Synced", None).await?;
        assert_eq!(str_at(&app, "/status/sync/revision"), repo.head()?);
    }

    for (ns, name, image, replicas, env) in [
        (&dev.name, "dev-web", "nginx:1.26", 1, "dev"),
        (&prod.name, "prod-web", "nginx:1.27", 3, "prod"),
    ] {
        let deployment = object(&deployments(), ns, name).await?;
        assert_eq!(
            str_at(&deployment, "/spec/template/spec/containers/0/image"),
            image,
            "the overlay's images: {deployment:#}"
        );
        assert_eq!(
            int_at(&deployment, "/spec/replicas"),
            Some(replicas),
            "{deployment:#}"
        );
        let cm = object(&configmaps(), ns, &format!("{name}-config")).await?;
        assert_eq!(str_at(&cm, "/data/env"), env, "the overlay's patch: {cm:#}");
        assert_eq!(str_at(&cm, "/data/greeting"), "hello", "the base's data");
        assert!(
            get_object(&deployments(), ns, "web").await?.is_none(),
            "only the prefixed name exists"
        );
    }
    let cm = object(&configmaps(), &dev.name, "dev-web-config").await?;
    assert_eq!(
        str_at(&cm, "/metadata/annotations/argocd.argoproj.io~1tracking-id"),
        format!("{}:/ConfigMap:{}/dev-web-config", dev.name, dev.name)
    );

    let deployment = object(&deployments(), &opts.name, "opt-web").await?;
    assert_eq!(
        str_at(&deployment, "/spec/template/spec/containers/0/image"),
        "nginx:1.27",
        "{deployment:#}"
    );
    assert_eq!(int_at(&deployment, "/spec/replicas"), Some(2));
    assert_eq!(str_at(&deployment, "/metadata/labels/team"), "plumb");
    assert_eq!(
        str_at(&deployment, "/spec/template/metadata/labels/team"),
        "plumb"
    );
    assert_eq!(str_at(&deployment, "/metadata/annotations/owner"), "e2e");
    let cm = object(&configmaps(), &opts.name, "opt-web-config").await?;
    assert_eq!(str_at(&cm, "/metadata/labels/team"), "plumb", "{cm:#}");
    assert_eq!(str_at(&cm, "/data/env"), "dev", "the overlay's own patch");
    assert!(
        get_object(&deployments(), &opts.name, "opt-dev-web")
            .await?
            .is_none(),
        "the prefix replaces the overlay's, it does not stack"
    );

    // A commit to the prod overlay only: prod renders again; dev and the
    // options app read nothing it changed, so they are not rendered again.
    repo.write(
        "overlays/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 4\n",
    )?;
    let head = repo.commit("prod scales to 4")?;
    eventually("prod has 4 replicas", WAIT, || async {
        let deployment = object(&deployments(), &prod.name, "prod-web").await?;
        Ok((int_at(&deployment, "/spec/replicas") == Some(4)).then_some(()))
    })
    .await?;
    for ns in [&dev, &opts] {
        eventually("the new revision is shown", WAIT, || async {
            let app = plumb.app(&ns.name).await?;
            Ok((str_at(&app, "/status/sync/revision") == head).then_some(()))
        })
        .await?;
    }
    let log = plumb.log_text();
    let renders = |app: &str| {
        log.lines()
            .filter(|l| l.contains(app) && l.contains(" rendered"))
            .count()
    };
    assert_eq!(renders(&prod.name), 2, "prod rendered again:\n{log}");
    assert_eq!(renders(&dev.name), 1, "dev not rendered again:\n{log}");
    assert_eq!(renders(&opts.name), 1, "opts not rendered again:\n{log}");
    Ok(())
}

#[tokio::test]
async fn helm_chart_with_value_files_parameters_and_a_subchart() -> Result<()> {
    let ns = TestNamespace::new("helm").await;
    let repo = GitRepo::new(Some("e2e/helm"))?;
    let options = json!({"helm": {
        "releaseName": "shop",
        "valueFiles": ["values-prod.yaml"],
        "values": "size: huge\nshape: triangle\n",
        "parameters": [
            {"name": "shape", "value": "hexagon"},
            {"name": "count", "value": "5"},
            {"name": "flag", "value": "true", "forceString": true},
        ],
    }});
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &app(&ns.name, &ns.name, git_source(&repo, "charts/web", options)),
    )
    .await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(str_at(&app, "/status/sync/revision"), repo.head()?);

    let cm = object(&configmaps(), &ns.name, "shop-settings").await?;
    for (key, want, why) in [
        ("tier", "free", "the chart's values.yaml"),
        ("color", "red", "values-prod.yaml over the defaults"),
        ("size", "huge", "helm.values over values-prod.yaml"),
        ("shape", "hexagon", "a parameter over helm.values"),
        ("count", "5", "a parameter"),
        ("countKind", "int64", "a parameter is typed (--set)"),
        ("flag", "true", "a forceString parameter"),
        ("flagKind", "string", "forceString is --set-string"),
        (
            "namespace",
            ns.name.as_str(),
            "the release namespace is the destination",
        ),
    ] {
        assert_eq!(str_at(&cm, &format!("/data/{key}")), want, "{why}: {cm:#}");
    }
    assert_eq!(
        str_at(&cm, "/metadata/annotations/argocd.argoproj.io~1tracking-id"),
        format!("{}:/ConfigMap:{}/shop-settings", ns.name, ns.name)
    );
    let sidecar = object(&configmaps(), &ns.name, "shop-sidecar").await?;
    assert_eq!(
        str_at(&sidecar, "/data/message"),
        "from values-prod",
        "the subchart gets its values from the parent's: {sidecar:#}"
    );
    assert_eq!(
        str_at(
            &sidecar,
            "/metadata/annotations/argocd.argoproj.io~1tracking-id"
        ),
        format!("{}:/ConfigMap:{}/shop-sidecar", ns.name, ns.name)
    );
    let deployment = object(&deployments(), &ns.name, "shop-web").await?;
    assert_eq!(
        str_at(&deployment, "/spec/template/spec/containers/0/image"),
        "nginx:1.27"
    );
    assert_eq!(int_at(&deployment, "/spec/replicas"), Some(2));
    assert_eq!(
        str_at(
            &deployment,
            "/metadata/annotations/argocd.argoproj.io~1tracking-id"
        ),
        format!("{}:apps/Deployment:{}/shop-web", ns.name, ns.name)
    );
    let resources = app["status"]["resources"].as_array().context("resources")?;
    assert_eq!(resources.len(), 3, "{resources:#?}");
    Ok(())
}

#[tokio::test]
async fn helm_chart_from_a_chart_repository_on_loopback() -> Result<()> {
    let ns = TestNamespace::new("chartrepo").await;
    let (served, home, newer) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let server = ChartServer::start(served.path())?;
    // The chart as committed is 0.1.0; a 0.2.0 beside it in the index has
    // other defaults, so the objects show which version was deployed.
    let chart = support::root().join("fixtures/e2e/helm/charts/web");
    let next = newer.path().join("web");
    std::fs::create_dir_all(&next)?;
    support::copy_tree(&chart, &next)?;
    for (file, from, to) in [
        ("Chart.yaml", "version: 0.1.0", "version: 0.2.0"),
        ("values.yaml", "tier: free", "tier: gold"),
    ] {
        let text = std::fs::read_to_string(next.join(file))?;
        anyhow::ensure!(text.contains(from), "{file} says {from}");
        // The first occurrence: the chart's own version, not its subchart's.
        std::fs::write(next.join(file), text.replacen(from, to, 1))?;
    }
    let destination = served.path().to_string_lossy().into_owned();
    for folder in [&chart, &next] {
        let folder = folder.to_string_lossy();
        helm(
            home.path(),
            &["package", &*folder, "--destination", &destination],
        )?;
    }
    helm(
        home.path(),
        &["repo", "index", &destination, "--url", &server.url],
    )?;

    let source = json!({
        "repoURL": server.url,
        "chart": "web",
        "targetRevision": "0.1.0",
        "helm": {
            "releaseName": "remote",
            "parameters": [{"name": "color", "value": "teal"}],
        },
    });
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &app(&ns.name, &ns.name, source)).await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(
        str_at(&app, "/status/sync/revision"),
        "0.1.0",
        "a chart's revision is its version: {app:#}"
    );
    let cm = object(&configmaps(), &ns.name, "remote-settings").await?;
    assert_eq!(str_at(&cm, "/data/color"), "teal", "{cm:#}");
    assert_eq!(
        str_at(&cm, "/data/tier"),
        "free",
        "0.1.0's defaults: {cm:#}"
    );
    object(&configmaps(), &ns.name, "remote-sidecar").await?;
    object(&deployments(), &ns.name, "remote-web").await?;
    drop(plumb);
    drop(server);
    Ok(())
}

#[tokio::test]
async fn jsonnet_with_tlas_and_ext_vars() -> Result<()> {
    let ns = TestNamespace::new("jsonnet").await;
    let repo = GitRepo::new(Some("e2e/jsonnet"))?;
    // main.jsonnet imports util.libsonnet through the library folder and
    // ../lib/names.libsonnet relatively.
    let options = json!({"directory": {"jsonnet": {
        "tlas": [
            {"name": "replicas", "value": "3", "code": true},
            {"name": "color", "value": "teal"},
        ],
        "extVars": [{"name": "env", "value": "staging"}],
        "libs": ["lib"],
    }}});
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &app(&ns.name, &ns.name, git_source(&repo, "app", options)),
    )
    .await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(str_at(&app, "/status/sync/revision"), repo.head()?);

    let cm = object(&configmaps(), &ns.name, "web-config").await?;
    for (key, want, why) in [
        ("color", "teal", "a string TLA"),
        ("replicas", "3", "a code TLA"),
        ("env", "staging", "an extVar"),
        (
            "greeting",
            "hello from util.libsonnet",
            "an import through libs",
        ),
    ] {
        assert_eq!(str_at(&cm, &format!("/data/{key}")), want, "{why}: {cm:#}");
    }
    assert_eq!(
        str_at(&cm, "/metadata/labels/plumb.dev~1env"),
        "staging",
        "{cm:#}"
    );
    let deployment = object(&deployments(), &ns.name, "web").await?;
    assert_eq!(
        int_at(&deployment, "/spec/replicas"),
        Some(3),
        "code: true passes a number: {deployment:#}"
    );
    Ok(())
}

#[tokio::test]
async fn multi_source_value_file_from_a_second_repository() -> Result<()> {
    let ns = TestNamespace::new("multi").await;
    let charts = GitRepo::new(Some("e2e/helm"))?;
    let values = GitRepo::new(None)?;
    let prod =
        |color: &str| format!("color: {color}\nsidecar:\n  message: from the values repository\n");
    values.write("envs/prod.yaml", &prod("purple"))?;
    values.commit("prod values")?;
    let sources = json!([
        git_source(
            &charts,
            "charts/web",
            json!({"helm": {"releaseName": "multi", "valueFiles": ["$values/envs/prod.yaml"]}}),
        ),
        {"repoURL": values.url(), "targetRevision": "main", "ref": "values"},
    ]);
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application_with(
            &ns.name,
            &ns.name,
            json!({"sources": sources, "syncPolicy": auto()}),
        ),
    )
    .await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(
        app.pointer("/status/sync/revisions"),
        Some(&json!([charts.head()?, values.head()?])),
        "one revision per source, in order: {app:#}"
    );
    let cm = object(&configmaps(), &ns.name, "multi-settings").await?;
    assert_eq!(str_at(&cm, "/data/color"), "purple", "{cm:#}");
    assert_eq!(str_at(&cm, "/data/size"), "small", "the chart's defaults");
    let sidecar = object(&configmaps(), &ns.name, "multi-sidecar").await?;
    assert_eq!(
        str_at(&sidecar, "/data/message"),
        "from the values repository"
    );

    // A commit to the repository of the value file alone redeploys.
    values.write("envs/prod.yaml", &prod("orange"))?;
    let head = values.commit("orange")?;
    wait_configmap(&ns.name, "multi-settings", "color", "orange").await?;
    let want = json!([charts.head()?, head]);
    let app = eventually(
        "the application shows both sources' revisions, and history the new pair",
        WAIT,
        || async {
            let app = plumb.app(&ns.name).await?;
            let last = app["status"]["history"]
                .as_array()
                .and_then(|h| h.last())
                .map(|h| h["revisions"].clone());
            Ok((app.pointer("/status/sync/revisions") == Some(&want)
                && last.as_ref() == Some(&want))
            .then_some(app))
        },
    )
    .await?;
    assert_eq!(str_at(&app, "/status/sync/status"), "Synced", "{app:#}");
    Ok(())
}

#[tokio::test]
async fn a_commit_to_one_value_file_redeploys_only_its_application() -> Result<()> {
    let (dev, prod) = (
        TestNamespace::new("vdev").await,
        TestNamespace::new("vprod").await,
    );
    let repo = GitRepo::new(Some("e2e/helm"))?;
    let with_values =
        |file: &str| git_source(&repo, "charts/web", json!({"helm": {"valueFiles": [file]}}));
    let apps = [
        app(&dev.name, &dev.name, with_values("values-dev.yaml")),
        app(&prod.name, &prod.name, with_values("values-prod.yaml")),
    ]
    .join("---\n");
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&dev.name, "Synced", None).await?;
    plumb.wait_status(&prod.name, "Synced", None).await?;
    // The release name is the application's name.
    let (dev_cm, prod_cm) = (
        format!("{}-settings", dev.name),
        format!("{}-settings", prod.name),
    );
    assert_eq!(
        configmap_value(&dev.name, &dev_cm, "color")
            .await?
            .as_deref(),
        Some("green")
    );
    let version = |o: &Value| str_at(o, "/metadata/resourceVersion").to_string();
    let dev_before = version(&object(&configmaps(), &dev.name, &dev_cm).await?);
    wait_history(&plumb, &dev.name, 1).await?;
    wait_history(&plumb, &prod.name, 1).await?;

    let file = "charts/web/values-prod.yaml";
    let text = std::fs::read_to_string(repo.path().join(file))?;
    anyhow::ensure!(text.contains("color: red"), "{file} sets color: red");
    repo.write(file, &text.replace("color: red", "color: crimson"))?;
    let head = repo.commit("prod turns crimson")?;
    wait_configmap(&prod.name, &prod_cm, "color", "crimson").await?;
    eventually(
        "both applications show the new revision, synced",
        WAIT,
        || async {
            let mut done = true;
            for name in [&dev.name, &prod.name] {
                let app = plumb.app(name).await?;
                done &= str_at(&app, "/status/sync/revision") == head
                    && str_at(&app, "/status/sync/status") == "Synced";
            }
            Ok(done.then_some(()))
        },
    )
    .await?;
    wait_history(&plumb, &prod.name, 2).await?;

    assert_eq!(
        version(&object(&configmaps(), &dev.name, &dev_cm).await?),
        dev_before,
        "dev's ConfigMap was not written again"
    );
    assert_eq!(
        plumb.history_len(&dev.name).await?,
        1,
        "dev was not synced again"
    );
    // Nothing dev's render read changed, so it was not rendered again:
    // helm ran once for it, at the first commit.
    let log = plumb.log_text();
    let renders = |app: &str| {
        log.lines()
            .filter(|l| l.contains(app) && l.contains(" rendered"))
            .count()
    };
    assert_eq!(renders(&dev.name), 1, "dev rendered once:\n{log}");
    assert_eq!(renders(&prod.name), 2, "prod rendered twice:\n{log}");
    Ok(())
}

#[tokio::test]
async fn tool_errors_after_a_good_sync_prune_nothing_and_leave_other_applications_syncing()
-> Result<()> {
    let ns = TestNamespace::new("broken").await;
    // Seven applications share the namespace: it exists before any sync.
    ns.create().await?;
    let repo = GitRepo::new(Some("e2e/helm"))?;
    repo.write("charts/web/values-staging.yaml", "color: yellow\n")?;
    repo.write(
        "charts/broken/Chart.yaml",
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    )?;
    repo.write(
        "charts/broken/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  color: blue\n",
    )?;
    repo.write(
        "kustomize/escape/kustomization.yaml",
        "resources:\n  - configmap.yaml\n",
    )?;
    repo.write(
        "kustomize/escape/configmap.yaml",
        &settings("escape-settings", "blue"),
    )?;
    repo.write(
        "jsonnet/broken/main.jsonnet",
        "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'jsonnet-settings' }, data: { color: 'blue' } }\n",
    )?;
    repo.commit("sources that render")?;
    // The link goes in a repository of its own: however Plumb refuses a
    // commit holding it, the other applications' commits are not that one.
    // No name here says "link" but the link itself.
    let linked = GitRepo::new(None)?;
    linked.write(
        "kustomize/leaky/kustomization.yaml",
        "resources:\n  - configmap.yaml\n",
    )?;
    linked.write(
        "kustomize/leaky/configmap.yaml",
        &settings("leaky-settings", "blue"),
    )?;
    linked.commit("a kustomization")?;

    let name = |suffix: &str| format!("{}-{suffix}", ns.name);
    let chart = |helm: Value| git_source(&repo, "charts/web", json!({ "helm": helm }));
    let apps = [
        app(
            &name("good"),
            &ns.name,
            chart(json!({"valueFiles": ["values-dev.yaml"]})),
        ),
        app(
            &name("template"),
            &ns.name,
            git_source(&repo, "charts/broken", json!({})),
        ),
        app(
            &name("values"),
            &ns.name,
            chart(json!({"valueFiles": ["values-staging.yaml"]})),
        ),
        app(
            &name("ignore"),
            &ns.name,
            chart(json!({"valueFiles": ["values-staging.yaml"], "ignoreMissingValueFiles": true})),
        ),
        app(
            &name("escape"),
            &ns.name,
            git_source(&repo, "kustomize/escape", json!({})),
        ),
        app(
            &name("jsonnet"),
            &ns.name,
            git_source(&repo, "jsonnet/broken", json!({})),
        ),
        app(
            &name("leaky"),
            &ns.name,
            git_source(&linked, "kustomize/leaky", json!({})),
        ),
    ]
    .join("---\n");
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &apps).await?;
    for suffix in [
        "good", "template", "values", "ignore", "escape", "jsonnet", "leaky",
    ] {
        plumb.wait_status(&name(suffix), "Synced", None).await?;
    }
    assert_eq!(
        configmap_value(&ns.name, &format!("{}-settings", name("ignore")), "color")
            .await?
            .as_deref(),
        Some("yellow")
    );

    // One commit breaks four applications and changes two others; one in
    // the other repository breaks the fifth.
    let dev = std::fs::read_to_string(repo.path().join("charts/web/values-dev.yaml"))?;
    anyhow::ensure!(dev.contains("color: green"), "values-dev.yaml sets green");
    repo.write(
        "charts/web/values-dev.yaml",
        &dev.replace("color: green", "color: lime"),
    )?;
    repo.remove("charts/web/values-staging.yaml")?;
    repo.write(
        "charts/broken/templates/fail.yaml",
        "{{ fail \"chart-boom\" }}\n",
    )?;
    repo.write(
        "kustomize/escape/kustomization.yaml",
        "resources:\n  - configmap.yaml\n  - ../../../../etc\n",
    )?;
    repo.write("jsonnet/broken/main.jsonnet", "error 'jsonnet-boom'\n")?;
    let head = repo.commit("break four, change two")?;
    linked.symlink("/etc/passwd", "kustomize/leaky/leak.yaml")?;
    linked.write(
        "kustomize/leaky/kustomization.yaml",
        "resources:\n  - configmap.yaml\n  - leak.yaml\n",
    )?;
    linked.commit("a link out of the repository")?;

    wait_configmap(
        &ns.name,
        &format!("{}-settings", name("good")),
        "color",
        "lime",
    )
    .await?;
    // Without the missing file, ignoreMissingValueFiles falls back to the
    // chart's defaults.
    wait_configmap(
        &ns.name,
        &format!("{}-settings", name("ignore")),
        "color",
        "blue",
    )
    .await?;
    for (suffix, says, kept) in [
        (
            "template",
            &["chart-boom"][..],
            format!("{}-settings", name("template")),
        ),
        (
            "values",
            &["values-staging.yaml", "does not exist"][..],
            format!("{}-settings", name("values")),
        ),
        (
            "escape",
            &["outside the repository"][..],
            "escape-settings".to_string(),
        ),
        (
            "jsonnet",
            &["jsonnet-boom"][..],
            "jsonnet-settings".to_string(),
        ),
        (
            "leaky",
            &["leak.yaml", "link"][..],
            "leaky-settings".to_string(),
        ),
    ] {
        let app = name(suffix);
        let message = wait_comparison_error(&plumb, &app, says).await?;
        assert!(
            !message.contains("root:x:0:0"),
            "{app}: the linked file's content never shows: {message}"
        );
        let cm = object(&configmaps(), &ns.name, &kept).await?;
        assert_eq!(
            str_at(&cm, "/data/color"),
            if suffix == "values" { "yellow" } else { "blue" },
            "{app}: what was synced stays as it was: {cm:#}"
        );
    }
    for suffix in ["good", "ignore"] {
        let app = plumb.wait_status(&name(suffix), "Synced", None).await?;
        assert_eq!(str_at(&app, "/status/sync/revision"), head, "{suffix}");
        assert_eq!(comparison_error(&app), "", "{suffix}: {app:#}");
    }
    Ok(())
}

/// Starts `plumb serve` with `args` and two applications in one namespace
/// (prefix `prefix`): `<ns>` syncs the plain folder `plain`, `<ns>-chart`
/// the plain folder `chart`, which one commit then turns into a Helm chart
/// while changing `plain`. Returns the chart application's ComparisonError
/// once it says every one of `words`, after checking the plain application
/// synced the commit and the chart application's object is still there.
async fn a_folder_that_becomes_a_chart(
    prefix: &str,
    args: &[&str],
    words: &[&str],
) -> Result<String> {
    let ns = TestNamespace::new(prefix).await;
    ns.create().await?;
    let repo = GitRepo::new(None)?;
    repo.write("plain/settings.yaml", &settings("settings", "blue"))?;
    repo.write("chart/settings.yaml", &settings("chart-settings", "blue"))?;
    repo.commit("two plain folders")?;
    let chart = format!("{}-chart", ns.name);
    let apps = [
        app(&ns.name, &ns.name, git_source(&repo, "plain", json!({}))),
        app(&chart, &ns.name, git_source(&repo, "chart", json!({}))),
    ]
    .join("---\n");
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_args(work.path(), &apps, args).await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;
    plumb.wait_status(&chart, "Synced", None).await?;

    repo.remove("chart/settings.yaml")?;
    repo.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
    )?;
    repo.write("chart/values.yaml", "color: green\n")?;
    repo.write(
        "chart/templates/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-settings\ndata:\n  color: {{ .Values.color | quote }}\n",
    )?;
    repo.write("plain/settings.yaml", &settings("settings", "green"))?;
    let head = repo.commit("the folder becomes a chart")?;

    wait_configmap(&ns.name, "settings", "color", "green").await?;
    let message = wait_comparison_error(&plumb, &chart, words).await?;
    assert_eq!(
        configmap_value(&ns.name, "chart-settings", "color")
            .await?
            .as_deref(),
        Some("blue"),
        "nothing of the chart application was pruned or changed"
    );
    let plain = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(str_at(&plain, "/status/sync/revision"), head);
    Ok(message)
}

#[tokio::test]
async fn a_tool_over_its_time_limit_is_an_error_on_its_application_only() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // A helm that answers Plumb's version probe at once and then hangs on
    // every render, as one stuck on a network call would. `exec`, so the
    // process Plumb kills is the one that sleeps.
    let bin = tempfile::tempdir()?;
    let helm = bin.path().join("helm");
    std::fs::write(
        &helm,
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo v4.1.4+g0000000; exit 0; fi\nexec /bin/sleep 30\n",
    )?;
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755))?;
    let helm = helm.to_string_lossy().into_owned();
    let message = a_folder_that_becomes_a_chart(
        "slowtool",
        &["--tool-timeout", "1", "--helm-bin", &helm],
        &["helm"],
    )
    .await?;
    assert!(
        message.contains("1s") || message.contains("time limit"),
        "the message names the limit: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_helm_binary_is_an_error_on_its_application_only() -> Result<()> {
    let message =
        a_folder_that_becomes_a_chart("notool", &["--helm-bin", "/nonexistent/helm"], &["helm"])
            .await?;
    assert!(
        message.contains("helm not found") || message.contains("--helm-bin"),
        "the message says what to install or set: {message}"
    );
    Ok(())
}
