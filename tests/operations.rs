//! Operations owned by the controller and waits that end, end to end: a real
//! `plumb serve`, real git repositories, the real local control plane (with
//! its RBAC). Each test starts with a defect that the controller had: a sync
//! that lived inside its HTTP request, waits without an end, a prune by name
//! only, and a folder read whole.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application, configmaps, eventually, get_object, resource,
    str_at,
};

const MANUAL: &str = "  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n";
const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";

fn crds() -> kube::core::ApiResource {
    resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
}

/// A repository whose folder `app` holds `count` ConfigMaps: a sync of it
/// takes long enough to be cut off in the middle.
fn many_configmaps(count: usize) -> Result<GitRepo> {
    let repo = GitRepo::new(None)?;
    let mut text = String::new();
    for i in 0..count {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  n: \"{i}\"\n"
        ));
    }
    repo.write("app/configmaps.yaml", &text)?;
    repo.commit("many configmaps")?;
    Ok(repo)
}

/// A `plumb serve` with one manually synced application of `count`
/// ConfigMaps, compared and OutOfSync.
async fn out_of_sync_with_many_configmaps(
    ns: &TestNamespace,
    work: &std::path::Path,
    count: usize,
) -> Result<(Plumb, GitRepo)> {
    let repo = many_configmaps(count)?;
    let plumb = Plumb::start(
        work,
        &application(&ns.name, &repo.url(), "app", &ns.name, MANUAL),
    )
    .await?;
    plumb.wait_status(&ns.name, "OutOfSync", None).await?;
    Ok((plumb, repo))
}

/// A CRD manifest of kind `kind` in `group` under `plural`.
fn crd(group: &str, plural: &str, kind: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: {plural}\n    kind: {kind}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
    )
}

/// Creates a CRD `widgets.<group>` (kind Widget) directly and returns the
/// manifest of a second CRD, `gadgets.<group>`, that also says kind Widget:
/// the API server never accepts its names, so it never becomes Established
/// and a sync that applies it waits.
async fn crd_that_never_becomes_established(group: &str) -> Result<String> {
    let api: Api<DynamicObject> = Api::all_with(support::client().await, &crds());
    let first: DynamicObject = serde_yaml::from_str(&crd(group, "widgets", "Widget"))?;
    api.create(&PostParams::default(), &first).await?;
    Ok(crd(group, "gadgets", "Widget"))
}

async fn delete_crds(group: &str) {
    let api: Api<DynamicObject> = Api::all_with(support::client().await, &crds());
    for plural in ["widgets", "gadgets"] {
        let _ = api
            .delete(&format!("{plural}.{group}"), &Default::default())
            .await;
    }
}

/// Waits until a condition of the application says `text`; returns all
/// its conditions as text.
async fn wait_condition(plumb: &Plumb, name: &str, text: &str) -> Result<String> {
    eventually(
        &format!("{name} has a condition saying {text:?}"),
        Duration::from_secs(90),
        || async move {
            let app = plumb.app(name).await?;
            let conditions = app["status"]["conditions"].to_string();
            Ok(conditions.contains(text).then_some(conditions))
        },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

#[tokio::test]
async fn a_client_that_goes_away_mid_sync_leaves_the_application_free() -> Result<()> {
    let ns = TestNamespace::new("gone").await;
    let work = tempfile::tempdir()?;
    let (plumb, _repo) = out_of_sync_with_many_configmaps(&ns, work.path(), 400).await?;

    // A client that gives up (Ctrl-C, a proxy's timeout) before the sync
    // could have ended.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()?;
    let _ = impatient
        .post(format!(
            "{}/api/v1/applications/{}/sync",
            plumb.url, ns.name
        ))
        .json(&json!({}))
        .send()
        .await;

    // The next sync is accepted (once the first has ended) and completes.
    let app = plumb
        .operate(&format!("/api/v1/applications/{}/sync", ns.name), json!({}))
        .await?;
    assert_eq!(
        str_at(&app, "/status/operationState/phase"),
        "Succeeded",
        "{app:#}"
    );
    plumb.wait_status(&ns.name, "Synced", None).await?;
    assert!(
        get_object(&configmaps(), &ns.name, "cm-399")
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn two_concurrent_sync_requests_start_exactly_one_operation() -> Result<()> {
    let ns = TestNamespace::new("twice").await;
    let work = tempfile::tempdir()?;
    let (plumb, _repo) = out_of_sync_with_many_configmaps(&ns, work.path(), 300).await?;

    let path = format!("/api/v1/applications/{}/sync", ns.name);
    let (a, b) = tokio::join!(plumb.post(&path, json!({})), plumb.post(&path, json!({})));
    let (a, b) = (a?, b?);
    let mut codes = [a.0, b.0];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "answers: {a:?} {b:?}");
    let (started, refused) = if a.0 == 200 { (a.1, b.1) } else { (b.1, a.1) };
    assert_eq!(
        str_at(&started, "/status/operationState/phase"),
        "Running",
        "the answer comes at once, with the operation running: {started:#}"
    );
    assert!(
        str_at(&refused, "/message").contains("another operation is already in progress"),
        "{refused:#}"
    );

    let app = plumb.wait_operation(&started).await?;
    assert_eq!(str_at(&app, "/status/operationState/phase"), "Succeeded");
    assert_eq!(plumb.history_len(&ns.name).await?, 1, "one operation ran");
    Ok(())
}

#[tokio::test]
async fn a_running_operation_is_terminated_on_request_and_a_restart_ends_a_cut_off_one()
-> Result<()> {
    let ns = TestNamespace::new("term").await;
    let group = format!("{}.e2e.plumb.dev", ns.name);
    let stuck = crd_that_never_becomes_established(&group).await?;
    let repo = GitRepo::new(None)?;
    repo.write("app/crd.yaml", &stuck)?;
    repo.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after-the-crd\n",
    )?;
    repo.commit("a CRD that waits")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, MANUAL),
    )
    .await?;
    plumb.wait_status(&ns.name, "OutOfSync", None).await?;
    let sync = format!("/api/v1/applications/{}/sync", ns.name);
    let operation = format!("{}/api/v1/applications/{}/operation", plumb.url, ns.name);

    // Terminate-op ends the sync that waits for the CRD; nothing after it
    // was applied.
    let started = plumb.start_operation(&sync, json!({})).await?;
    let http = reqwest::Client::new();
    let answer = eventually("terminate-op is accepted", Duration::from_secs(30), || {
        let (http, operation) = (http.clone(), operation.clone());
        async move {
            let r = http.delete(&operation).send().await?;
            Ok(r.status().is_success().then_some(()))
        }
    })
    .await;
    answer?;
    let app = plumb.wait_operation(&started).await?;
    assert_eq!(str_at(&app, "/status/operationState/phase"), "Failed");
    assert_eq!(
        str_at(&app, "/status/operationState/message"),
        "Operation terminated"
    );
    assert!(
        get_object(&configmaps(), &ns.name, "after-the-crd")
            .await?
            .is_none()
    );
    let (code, body) = plumb
        .post(
            &format!("/api/v1/applications/{}/sync", ns.name),
            json!({"dryRun": true}),
        )
        .await?;
    assert_eq!(code, 200, "the application is free again: {body}");
    plumb.wait_operation(&body).await?;
    let answer = http.delete(&operation).send().await?;
    assert_eq!(answer.status().as_u16(), 400, "nothing left to terminate");

    // A restart while an operation runs records it as not finished.
    plumb.start_operation(&sync, json!({})).await?;
    let plumb = plumb.restart().await?;
    let app = plumb.app(&ns.name).await?;
    assert_eq!(str_at(&app, "/status/operationState/phase"), "Failed");
    assert!(
        str_at(&app, "/status/operationState/message").contains("Plumb stopped while"),
        "{app:#}"
    );
    delete_crds(&group).await;
    Ok(())
}

#[tokio::test]
async fn a_crd_that_never_becomes_established_fails_the_sync_when_its_time_is_up() -> Result<()> {
    let ns = TestNamespace::new("crdwait").await;
    let group = format!("{}.e2e.plumb.dev", ns.name);
    let stuck = crd_that_never_becomes_established(&group).await?;
    let repo = GitRepo::new(None)?;
    repo.write("app/crd.yaml", &stuck)?;
    repo.commit("a CRD that waits")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_args(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, MANUAL),
        &["--crd-timeout", "3"],
    )
    .await?;
    plumb.wait_status(&ns.name, "OutOfSync", None).await?;
    let app = plumb
        .operate(&format!("/api/v1/applications/{}/sync", ns.name), json!({}))
        .await?;
    assert_eq!(str_at(&app, "/status/operationState/phase"), "Failed");
    assert!(
        str_at(&app, "/status/operationState/message")
            .contains("did not become Established within 3s"),
        "{app:#}"
    );
    delete_crds(&group).await;
    Ok(())
}

#[tokio::test]
async fn an_object_re_created_under_the_same_name_is_not_pruned() -> Result<()> {
    use plumb_engine::cluster::Cluster;
    use plumb_engine::live::LiveState;
    use plumb_engine::model::ResourceKey;
    use plumb_engine::plan::{self, PlanOptions, Tracked};
    use plumb_engine::sync::{self, Execution};

    let ns = TestNamespace::new("recreate").await;
    ns.create().await?;
    let client = support::client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &configmaps());
    let key = ResourceKey {
        group: String::new(),
        kind: "ConfigMap".into(),
        namespace: ns.name.clone(),
        name: "reused".into(),
    };
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "reused", "annotations": {
            "argocd.argoproj.io/tracking-id": key.tracking_id("recreate")
        }},
        "data": {"owner": "plumb"}
    });
    let apply = PatchParams::apply("e2e").force();
    let compared = api.patch("reused", &apply, &Patch::Apply(&object)).await?;
    let compared_uid = compared.metadata.uid.clone().context("a uid")?;

    // Plumb compared the object and planned to prune it; meanwhile someone
    // deleted it and made a new one under the same name.
    let plan = plan::plan(
        &[],
        &[Tracked {
            key: key.clone(),
            api_version: "v1".into(),
            sync_options: None,
            uid: compared_uid.clone(),
            wave: 0,
        }],
        &PlanOptions {
            prune: true,
            allow_empty: true,
            ..Default::default()
        },
    )?;
    api.delete("reused", &Default::default()).await?;
    eventually(
        "the old object is gone",
        Duration::from_secs(30),
        || async { Ok(api.get_opt("reused").await?.is_none().then_some(())) },
    )
    .await?;
    let mut replacement = object.clone();
    replacement["data"]["owner"] = json!("someone else");
    let replaced = api
        .patch("reused", &apply, &Patch::Apply(&replacement))
        .await?;
    assert_ne!(
        replaced.metadata.uid.as_deref(),
        Some(compared_uid.as_str())
    );

    let cancel = tokio_util::sync::CancellationToken::new();
    let live = LiveState::new(client.clone(), Default::default(), cancel.clone());
    let outcome = sync::execute(
        &Cluster::new(client),
        &live,
        &plan.stages().collect::<Vec<_>>(),
        &Execution {
            cancel: &cancel,
            progress: &|_| {},
            crd_timeout: Duration::from_secs(30),
        },
    )
    .await;
    cancel.cancel();
    let kept = api
        .get_opt("reused")
        .await?
        .context("the new object stays")?;
    assert_eq!(kept.data["data"]["owner"], "someone else");
    assert_eq!(outcome.resources.len(), 1);
    assert_eq!(outcome.resources[0].status, "PruneSkipped", "{outcome:?}");
    assert!(outcome.resources[0].message.contains("re-created"));
    Ok(())
}

#[tokio::test]
async fn a_large_file_beside_the_manifests_is_not_read_and_an_oversized_manifest_is_an_error()
-> Result<()> {
    let (a, b) = (
        TestNamespace::new("bigbeside").await,
        TestNamespace::new("bigyaml").await,
    );
    let repo = GitRepo::new(None)?;
    repo.write(
        "small/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: small\n",
    )?;
    // 3 MiB of something that is not a manifest, beside one.
    let blob: String = (0..3 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    repo.write("small/archive.bin", &blob)?;
    // A manifest file over the limit.
    repo.write(
        "big/cm.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n# {blob}\n"),
    )?;
    repo.commit("files of every size")?;
    let work = tempfile::tempdir()?;
    let apps = [
        application(&a.name, &repo.url(), "small", &a.name, AUTO),
        application(&b.name, &repo.url(), "big", &b.name, AUTO),
    ]
    .join("---\n");
    let plumb = Plumb::start_with_args(
        work.path(),
        &apps,
        &["--max-manifest-size", &(1024 * 1024).to_string()],
    )
    .await?;
    plumb
        .wait_status(&a.name, "Synced", Some("Healthy"))
        .await?;
    let conditions = wait_condition(&plumb, &b.name, "1048576-byte limit").await?;
    assert!(conditions.contains("cm.yaml"), "{conditions}");
    Ok(())
}

#[tokio::test]
async fn a_fetch_that_hangs_is_abandoned_and_other_applications_sync() -> Result<()> {
    let (a, b) = (
        TestNamespace::new("hang").await,
        TestNamespace::new("nohang").await,
    );
    // A "git daemon" that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(20) {
            match stream {
                Ok(s) => open.push(s),
                Err(_) => break,
            }
        }
        open
    });
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let apps = [
        application(
            &a.name,
            &format!("git://127.0.0.1:{port}/silent.git"),
            ".",
            &a.name,
            AUTO,
        ),
        application(&b.name, &repo.url(), ".", &b.name, AUTO),
    ]
    .join("---\n");
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_args(
        work.path(),
        &apps,
        &["--fetch-timeout", "2", "--workers", "1"],
    )
    .await?;
    // One worker: if the hung fetch held it, the other application would
    // never be reconciled.
    plumb.wait_status(&b.name, "Synced", None).await?;
    wait_condition(&plumb, &a.name, "did not finish within 2s").await?;
    drop(plumb);
    drop(held);
    Ok(())
}

/// A `git daemon` serving the repositories under `base` on a loopback port;
/// killed on drop.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &std::path::Path) -> Result<GitDaemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start git daemon")?;
        let daemon = GitDaemon { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(daemon);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        anyhow::bail!("git daemon did not listen on {port}")
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_hung_fetch_does_not_keep_the_repository_from_the_next_fetch() -> Result<()> {
    let ns = TestNamespace::new("hungonce").await;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let base = repo.path().parent().context("a parent folder")?.to_owned();
    let name = repo
        .path()
        .file_name()
        .context("a folder name")?
        .to_string_lossy()
        .into_owned();
    let daemon = GitDaemon::start(&base)?;
    // In front of the daemon: the first connection is accepted and never
    // answered (its fetch blocks in a read for good); the others reach the
    // daemon.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let upstream = daemon.port;
    std::thread::spawn(move || {
        let mut silent = Vec::new();
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(client) = stream else { break };
            if i == 0 {
                silent.push(client);
                continue;
            }
            std::thread::spawn(move || {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (Ok(mut client_read), Ok(mut server_write)) =
                    (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                let (mut server_read, mut client_write) = (server, client);
                std::thread::spawn(move || std::io::copy(&mut client_read, &mut server_write));
                let _ = std::io::copy(&mut server_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    let apps = application(
        &ns.name,
        &format!("git://127.0.0.1:{port}/{name}"),
        ".",
        &ns.name,
        AUTO,
    );
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_args(work.path(), &apps, &["--fetch-timeout", "2"]).await?;
    // The first fetch hangs and is abandoned after 2 s; its thread stays
    // blocked, but the next fetch of the same URL goes through.
    plumb.wait_status(&ns.name, "Synced", None).await?;
    drop(plumb);
    drop(daemon);
    Ok(())
}

/// Creates the ServiceAccount `name` in `namespace` and writes a
/// kubeconfig for the test cluster as it.
async fn kubeconfig_as(
    namespace: &str,
    name: &str,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf> {
    let client = support::client().await;
    let accounts: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("", "v1", "ServiceAccount", "serviceaccounts"),
    );
    let account: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}
    }))?;
    accounts.create(&PostParams::default(), &account).await?;
    support::service_account_kubeconfig(namespace, name, dir).await
}

#[tokio::test]
async fn a_kind_plumb_may_not_list_is_a_condition_on_its_own_application_only() -> Result<()> {
    let (a, b) = (
        TestNamespace::new("listable").await,
        TestNamespace::new("unlistable").await,
    );
    a.create().await?;
    b.create().await?;
    // Plumb may do everything it needs with ConfigMaps, but may only read
    // and write ServiceAccounts one by one, never list or watch them.
    let work = tempfile::tempdir()?;
    let (kubeconfig, grant) = limited_identity(
        &b.name,
        json!([
            {"apiGroups": [""], "resources": ["configmaps", "namespaces", "secrets"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create", "patch", "update", "delete"]}
        ]),
        work.path(),
    )
    .await?;

    let repo = GitRepo::new(None)?;
    repo.write(
        "configmaps/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: listable\n",
    )?;
    repo.write(
        "accounts/sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: robot\n",
    )?;
    repo.commit("two applications")?;
    let apps = [
        application(&a.name, &repo.url(), "configmaps", &a.name, AUTO),
        application(&b.name, &repo.url(), "accounts", &b.name, AUTO),
    ]
    .join("---\n");
    let plumb = Plumb::start_as(
        work.path(),
        &apps,
        &["--watch-timeout", "3", "--workers", "1"],
        Some(kubeconfig),
    )
    .await?;
    let conditions = wait_condition(&plumb, &b.name, "cannot list ServiceAccount").await?;
    assert!(conditions.contains("forbidden"), "{conditions}");
    plumb
        .wait_status(&a.name, "Synced", Some("Healthy"))
        .await?;
    assert!(
        get_object(
            &resource("", "v1", "ServiceAccount", "serviceaccounts"),
            &b.name,
            "robot"
        )
        .await?
        .is_none(),
        "nothing of the application that cannot be compared is applied"
    );
    grant.remove().await;
    Ok(())
}

/// A ClusterRole with `rules` bound to the ServiceAccount `plumb` of
/// `namespace`; [`Grant::remove`] deletes both.
struct Grant {
    name: String,
    roles: Api<DynamicObject>,
    bindings: Api<DynamicObject>,
}

impl Grant {
    async fn remove(self) {
        let _ = self.bindings.delete(&self.name, &Default::default()).await;
        let _ = self.roles.delete(&self.name, &Default::default()).await;
    }
}

/// A kubeconfig for Plumb as the ServiceAccount `plumb` of `namespace`,
/// allowed `rules` (cluster-wide) and nothing else.
async fn limited_identity(
    namespace: &str,
    rules: Value,
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, Grant)> {
    let client = support::client().await;
    let name = format!("plumb-limited-{namespace}");
    let role: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules
    }))?;
    let binding: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "plumb", "namespace": namespace}]
    }))?;
    let rbac = |kind: &str, plural: &str| resource("rbac.authorization.k8s.io", "v1", kind, plural);
    let grant = Grant {
        roles: Api::all_with(client.clone(), &rbac("ClusterRole", "clusterroles")),
        bindings: Api::all_with(client, &rbac("ClusterRoleBinding", "clusterrolebindings")),
        name,
    };
    grant.roles.create(&PostParams::default(), &role).await?;
    grant
        .bindings
        .create(&PostParams::default(), &binding)
        .await?;
    let kubeconfig = kubeconfig_as(namespace, "plumb", dir).await?;
    Ok((kubeconfig, grant))
}

#[tokio::test]
async fn a_live_object_plumb_may_not_read_is_an_error_in_its_diff_not_missing() -> Result<()> {
    let ns = TestNamespace::new("noget").await;
    ns.create().await?;
    // Everything with ConfigMaps but reading one by one.
    let work = tempfile::tempdir()?;
    let (kubeconfig, grant) = limited_identity(
        &ns.name,
        json!([
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch", "create", "patch", "update", "delete"]},
            {"apiGroups": [""], "resources": ["namespaces", "secrets"], "verbs": ["*"]}
        ]),
        work.path(),
    )
    .await?;
    let repo = GitRepo::new(None)?;
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unreadable\n",
    )?;
    repo.commit("one ConfigMap")?;
    let apps = application(&ns.name, &repo.url(), ".", &ns.name, AUTO);
    let plumb = Plumb::start_as(work.path(), &apps, &[], Some(kubeconfig)).await?;
    plumb
        .wait_status(&ns.name, "Synced", Some("Healthy"))
        .await?;
    let managed = plumb
        .get(&format!(
            "/api/v1/applications/{}/managed-resources",
            ns.name
        ))
        .await?;
    grant.remove().await;
    let items = managed["items"].as_array().context("items")?;
    assert_eq!(items.len(), 1, "{managed:#}");
    let diff = items[0]["diff"].as_str().unwrap_or_default();
    assert!(
        diff.starts_with("# cannot read the live object"),
        "{managed:#}"
    );
    assert!(diff.contains("forbidden"), "{managed:#}");
    Ok(())
}

/// `plumb app sync` shows a hook when it starts and again when it ends
/// (a PreSync Job the node simulator runs for about two seconds), and the
/// operation's message while it waits for it.
#[tokio::test]
async fn plumb_app_sync_shows_a_hook_running_then_succeeded() -> Result<()> {
    let ns = TestNamespace::new("follow-hook").await;
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/migrate.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox:1.36\n",
    )?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {k: v}\n",
    )?;
    repo.commit("a migration before the settings")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, MANUAL),
    )
    .await?;
    plumb.wait_status(&ns.name, "OutOfSync", None).await?;
    let server = plumb.url.clone();
    let name = ns.name.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args(["app", "--server", &server, "sync", &name])
            .output()
    })
    .await??;
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let line = |start: &str, rest: &str| {
        out.lines()
            .position(|l| l.starts_with(start) && l.contains(rest))
            .with_context(|| format!("a line {start:?} with {rest:?} in:\n{out}"))
    };
    let job = format!("Job {}/migrate (PreSync hook)", ns.name);
    let running = line("Running ", &job)?;
    let waiting = line(
        " ",
        "to be healthy before Sync wave 0: Job migrate is Progressing",
    )?;
    let succeeded = line("Succeeded ", &job)?;
    let settings = line("Synced ", &format!("ConfigMap {}/settings", ns.name))?;
    assert!(
        running < waiting && waiting < succeeded && succeeded < settings,
        "{out}"
    );
    Ok(())
}

#[tokio::test]
async fn plumb_app_sync_follows_the_operation_resource_by_resource() -> Result<()> {
    let ns = TestNamespace::new("follow").await;
    let work = tempfile::tempdir()?;
    let (plumb, _repo) = out_of_sync_with_many_configmaps(&ns, work.path(), 200).await?;
    let server = plumb.url.clone();
    let cli = move |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args(["app", "--server", &server])
            .args(args)
            .output()
            .context("run plumb app")?;
        anyhow::Ok((
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    };
    let name = ns.name.clone();
    let (code, out) = tokio::task::spawn_blocking(move || cli(&["sync", &name])).await??;
    assert_eq!(code, Some(0), "{out}");
    // One progress line per resource, then the outcome.
    let progress = out
        .lines()
        .filter(|l| l.starts_with("Synced ") && l.contains("ConfigMap"))
        .count();
    assert!(progress >= 200, "{out}");
    assert!(out.contains("Succeeded"), "{out}");
    plumb
        .history_len(&ns.name)
        .await
        .map(|n| assert_eq!(n, 1))?;
    Ok(())
}
