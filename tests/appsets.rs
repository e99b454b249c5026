//! End-to-end: ApplicationSets on the real control plane with real git
//! repositories. Each test runs its own `plumb serve`, managing a namespace
//! of its own, and deploys into another.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, applications, appsets, eventually, get_object, resource,
};

const WAIT: Duration = Duration::from_secs(90);

/// Creates or replaces an ApplicationSet object (server-side apply).
async fn apply_appset(ns: &str, yaml: &str) -> Result<()> {
    let value: Value = serde_yaml::from_str(yaml)?;
    let name = value["metadata"]["name"]
        .as_str()
        .context("a name")?
        .to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, &appsets());
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

/// The names of the Application objects in `ns` that `appset` generated.
async fn generated(ns: &str, appset: &str) -> Result<Vec<String>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, ns, &applications());
    let list = api
        .list(
            &kube::api::ListParams::default().labels(&format!("plumb.dev/applicationset={appset}")),
        )
        .await?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .filter_map(|o| o.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Waits until `appset` has generated exactly `want`.
async fn wait_generated(ns: &str, appset: &str, want: &[&str]) -> Result<()> {
    eventually(&format!("{appset} generates {want:?}"), WAIT, || async {
        let names = generated(ns, appset).await?;
        Ok((names == want).then_some(()))
    })
    .await
}

/// The `status` and `message` of one condition of an ApplicationSet, as
/// the API shows it.
async fn condition(plumb: &Plumb, appset: &str, type_: &str) -> Result<Option<(String, String)>> {
    let set = plumb
        .get(&format!("/api/v1/applicationsets/{appset}"))
        .await?;
    Ok(set
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        }))
}

/// Waits until a condition of `appset` is `True` with a message holding
/// `needle`; returns the message.
async fn wait_condition(plumb: &Plumb, appset: &str, type_: &str, needle: &str) -> Result<String> {
    eventually(
        &format!("{appset} has {type_} ({needle})"),
        WAIT,
        || async {
            Ok(condition(plumb, appset, type_)
                .await?
                .filter(|(status, message)| status == "True" && message.contains(needle))
                .map(|(_, message)| message))
        },
    )
    .await
}

/// The token a `DeletionHeld` condition's message names.
fn held_token(message: &str) -> Result<String> {
    Ok(message
        .split("plumb.dev/confirm-deletion=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("the condition names the token: {message}"))?
        .to_string())
}

/// A repository with a ConfigMap in `apps/<name>/` for each name.
fn repo_with_apps(names: &[&str]) -> Result<GitRepo> {
    let repo = GitRepo::new(None)?;
    for name in names {
        write_app(&repo, name)?;
    }
    repo.commit("apps")?;
    Ok(repo)
}

fn write_app(repo: &GitRepo, name: &str) -> Result<()> {
    repo.write(
        &format!("apps/{name}/cm.yaml"),
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{name}\ndata:\n  app: {name}\n"
        ),
    )
}

async fn configmap_exists(ns: &str, name: &str) -> Result<bool> {
    Ok(
        get_object(&resource("", "v1", "ConfigMap", "configmaps"), ns, name)
            .await?
            .is_some(),
    )
}

#[tokio::test]
async fn a_matrix_of_git_directories_and_a_list_deploys_and_follows_commits() -> Result<()> {
    let apps_ns = TestNamespace::new("as-dirs").await;
    apps_ns.create().await?;
    let dest = TestNamespace::new("as-dirs-dest").await;
    dest.create().await?;
    let repo = repo_with_apps(&["a", "b"])?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    apply_appset(
        &apps_ns.name,
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: dirs}}
spec:
  generators:
  - matrix:
      generators:
      - git:
          repoURL: {repo}
          revision: main
          directories: [{{path: 'apps/*'}}]
      - list:
          elements: [{{env: one}}]
  template:
    metadata: {{name: '{{{{path.basename}}}}-{{{{env}}}}', labels: {{env: '{{{{env}}}}'}}}}
    spec:
      project: default
      source: {{repoURL: '{repo}', targetRevision: main, path: '{{{{path}}}}'}}
      destination: {{server: 'https://kubernetes.default.svc', namespace: {dest}}}
      syncPolicy: {{automated: {{prune: true}}}}
"#,
            repo = repo.url(),
            dest = dest.name
        ),
    )
    .await?;
    wait_generated(&apps_ns.name, "dirs", &["a-one", "b-one"]).await?;
    plumb
        .wait_status("a-one", "Synced", Some("Healthy"))
        .await?;
    plumb
        .wait_status("b-one", "Synced", Some("Healthy"))
        .await?;
    assert!(configmap_exists(&dest.name, "cm-a").await?);
    assert!(configmap_exists(&dest.name, "cm-b").await?);
    // The generated objects carry the owner reference and the finalizer.
    let a = get_object(&applications(), &apps_ns.name, "a-one")
        .await?
        .context("a-one exists")?;
    assert_eq!(
        a["metadata"]["ownerReferences"][0]["kind"],
        "ApplicationSet"
    );
    assert_eq!(a["metadata"]["ownerReferences"][0]["name"], "dirs");
    assert_eq!(
        a["metadata"]["finalizers"],
        json!(["resources-finalizer.argocd.argoproj.io"])
    );
    assert_eq!(a["metadata"]["labels"]["env"], "one");
    wait_condition(&plumb, "dirs", "ResourcesUpToDate", "successfully").await?;
    let set = eventually(
        "the status lists both applications Synced",
        WAIT,
        || async {
            let set = plumb.get("/api/v1/applicationsets/dirs").await?;
            let synced = set
                .pointer("/status/resources")
                .and_then(Value::as_array)
                .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["status"] == "Synced"));
            Ok(synced.then_some(set))
        },
    )
    .await?;
    assert_eq!(set["status"]["resources"][0]["kind"], "Application");
    let listed = plumb.get("/api/v1/applicationsets").await?;
    assert_eq!(listed["items"][0]["metadata"]["name"], "dirs");

    // A new folder is a new application; a removed one is deleted (one of
    // three is under the share that is held).
    write_app(&repo, "c")?;
    repo.commit("add c")?;
    wait_generated(&apps_ns.name, "dirs", &["a-one", "b-one", "c-one"]).await?;
    plumb
        .wait_status("c-one", "Synced", Some("Healthy"))
        .await?;
    repo.git(&["rm", "-r", "-q", "apps/a"])?;
    repo.commit("remove a")?;
    wait_generated(&apps_ns.name, "dirs", &["b-one", "c-one"]).await?;
    // Its resources finalizer deleted what it deployed, then the object.
    eventually("a-one's ConfigMap and object are gone", WAIT, || async {
        let cm = configmap_exists(&dest.name, "cm-a").await?;
        let app = get_object(&applications(), &apps_ns.name, "a-one").await?;
        Ok((!cm && app.is_none()).then_some(()))
    })
    .await?;
    assert!(configmap_exists(&dest.name, "cm-b").await?);
    Ok(())
}

#[tokio::test]
async fn go_templates_template_patch_and_missing_keys() -> Result<()> {
    let apps_ns = TestNamespace::new("as-go").await;
    apps_ns.create().await?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    let set = |options: &str, element_key: &str| {
        format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: go}}
spec:
  goTemplate: true
  goTemplateOptions: [{options}]
  generators:
  - list:
      elements:
      - {{name: Web_Front, team: {{lead: ana}}, replicas: 2}}
      - {{name: api, team: {{lead: bo}}, replicas: 1}}
  template:
    metadata:
      name: '{{{{ .name | normalize }}}}-{{{{ .{element_key} }}}}'
      annotations: {{lead: '{{{{ .team.lead | upper }}}}'}}
    spec:
      project: default
      source: {{repoURL: 'https://example.invalid/repo.git', path: '{{{{ printf "apps/%s" (.name | lower) }}}}'}}
      destination: {{server: 'https://kubernetes.default.svc', namespace: '{{{{ .name | slugify }}}}'}}
  templatePatch: |
    {{{{- if gt (int .replicas) 1 }}}}
    metadata:
      labels: {{scaled: "true"}}
    spec:
      syncPolicy: {{syncOptions: [CreateNamespace=true]}}
    {{{{- end }}}}
"#
        )
    };
    apply_appset(&apps_ns.name, &set("missingkey=error", "replicas")).await?;
    wait_generated(&apps_ns.name, "go", &["api-1", "web-front-2"]).await?;
    let web = get_object(&applications(), &apps_ns.name, "web-front-2")
        .await?
        .context("web-front-2")?;
    assert_eq!(web["metadata"]["annotations"]["lead"], "ANA");
    assert_eq!(web["metadata"]["labels"]["scaled"], "true");
    assert_eq!(web["spec"]["source"]["path"], "apps/web_front");
    assert_eq!(web["spec"]["destination"]["namespace"], "web-front");
    assert_eq!(
        web["spec"]["syncPolicy"]["syncOptions"],
        json!(["CreateNamespace=true"])
    );
    let api = get_object(&applications(), &apps_ns.name, "api-1")
        .await?
        .context("api-1")?;
    assert!(api["metadata"]["labels"].get("scaled").is_none());

    // A key the parameters lack is an error under missingkey=error, and an
    // error changes nothing.
    apply_appset(&apps_ns.name, &set("missingkey=error", "nope")).await?;
    let message = wait_condition(&plumb, "go", "ErrorOccurred", "nope").await?;
    assert!(message.contains("map has no entry"), "{message}");
    assert_eq!(
        generated(&apps_ns.name, "go").await?,
        ["api-1", "web-front-2"]
    );
    Ok(())
}

#[tokio::test]
async fn merge_of_clusters_and_a_list_and_the_git_files_generator() -> Result<()> {
    let apps_ns = TestNamespace::new("as-merge").await;
    apps_ns.create().await?;
    let work = tempfile::tempdir()?;
    // A cluster Secret, as Argo CD keeps them.
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &apps_ns.name,
        &resource("", "v1", "Secret", "secrets"),
    );
    let secret: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "staging", "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": "staging"}},
        "stringData": {"name": "staging", "server": "https://staging.example:6443", "config": "{\"bearerToken\": \"s3cret\"}"}
    }))?;
    secrets.create(&Default::default(), &secret).await?;
    let repo = GitRepo::new(None)?;
    repo.write(
        "config/dev/config.json",
        r#"{"env": "dev", "owner": {"team": "a"}}"#,
    )?;
    repo.write(
        "config/prod/config.yaml",
        "- env: prod\n  owner: {team: b}\n- env: prod-eu\n  owner: {team: c}\n",
    )?;
    repo.commit("config")?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    apply_appset(
        &apps_ns.name,
        r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: merged}
spec:
  generators:
  - merge:
      mergeKeys: [name]
      generators:
      - clusters: {values: {tier: basic}}
      - list:
          elements: [{name: staging, values.tier: gold}]
  template:
    metadata: {name: 'm-{{nameNormalized}}', annotations: {tier: '{{values.tier}}', server: '{{server}}'}}
    spec:
      project: default
      source: {repoURL: 'https://example.invalid/repo.git', path: apps}
      destination: {server: '{{server}}', namespace: default}
"#,
    )
    .await?;
    wait_generated(&apps_ns.name, "merged", &["m-in-cluster", "m-staging"]).await?;
    let staging = get_object(&applications(), &apps_ns.name, "m-staging")
        .await?
        .context("m-staging")?;
    assert_eq!(staging["metadata"]["annotations"]["tier"], "gold");
    assert_eq!(
        staging["metadata"]["annotations"]["server"],
        "https://staging.example:6443"
    );
    let local = get_object(&applications(), &apps_ns.name, "m-in-cluster")
        .await?
        .context("m-in-cluster")?;
    assert_eq!(local["metadata"]["annotations"]["tier"], "basic");
    // The Secret's token is nowhere in what Plumb serves.
    let text = plumb
        .get("/api/v1/applicationsets/merged")
        .await?
        .to_string();
    assert!(!text.contains("s3cret"));

    apply_appset(
        &apps_ns.name,
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: files}}
spec:
  generators:
  - git:
      repoURL: {repo}
      revision: main
      files: [{{path: 'config/**/config.*'}}]
  template:
    metadata: {{name: 'f-{{{{env}}}}', labels: {{team: '{{{{owner.team}}}}', folder: '{{{{path.basename}}}}'}}}}
    spec:
      project: default
      source: {{repoURL: '{repo}', path: '{{{{path}}}}'}}
      destination: {{server: 'https://kubernetes.default.svc', namespace: default}}
"#,
            repo = repo.url()
        ),
    )
    .await?;
    wait_generated(&apps_ns.name, "files", &["f-dev", "f-prod", "f-prod-eu"]).await?;
    let eu = get_object(&applications(), &apps_ns.name, "f-prod-eu")
        .await?
        .context("f-prod-eu")?;
    assert_eq!(eu["metadata"]["labels"]["team"], "c");
    assert_eq!(eu["metadata"]["labels"]["folder"], "prod");
    assert_eq!(eu["spec"]["source"]["path"], "config/prod");
    Ok(())
}

/// An ApplicationSet over a list with a policy of its own.
fn list_set(name: &str, policy: &str, elements: &[(&str, &str)]) -> String {
    let elements: Vec<Value> = elements
        .iter()
        .map(|(n, v)| json!({"n": n, "v": v}))
        .collect();
    let set = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name},
        "spec": {
            "syncPolicy": {"applicationsSync": policy},
            "generators": [{"list": {"elements": elements}}],
            "template": {
                "metadata": {"name": format!("{name}-{{{{n}}}}")},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://example.invalid/repo.git", "path": "{{v}}"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"}}
            }
        }
    });
    serde_yaml::to_string(&set).expect("JSON is YAML")
}

async fn path_of(ns: &str, app: &str) -> Result<String> {
    let app = get_object(&applications(), ns, app)
        .await?
        .with_context(|| format!("{app} exists"))?;
    Ok(app["spec"]["source"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn each_applications_sync_policy_creates_updates_and_deletes_what_it_allows() -> Result<()> {
    let apps_ns = TestNamespace::new("as-policy").await;
    apps_ns.create().await?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching_with_args(
        work.path(),
        "",
        &apps_ns.name,
        &["--appset-policy-override"],
    )
    .await?;
    // (policy, updates, deletes)
    let cases = [
        ("create-only", false, false),
        ("create-update", true, false),
        ("create-delete", false, true),
        ("sync", true, true),
    ];
    for (policy, _, _) in cases {
        apply_appset(
            &apps_ns.name,
            &list_set(policy, policy, &[("a", "v1"), ("b", "v1"), ("c", "v1")]),
        )
        .await?;
    }
    for (policy, _, _) in cases {
        let all = [
            format!("{policy}-a"),
            format!("{policy}-b"),
            format!("{policy}-c"),
        ];
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        wait_generated(&apps_ns.name, policy, &all).await?;
    }
    // Change a, drop c.
    for (policy, _, _) in cases {
        apply_appset(
            &apps_ns.name,
            &list_set(policy, policy, &[("a", "v2"), ("b", "v1")]),
        )
        .await?;
    }
    for (policy, updates, deletes) in cases {
        // The pass has run when the condition says so.
        eventually(&format!("{policy} has run its pass"), WAIT, || async {
            let names = generated(&apps_ns.name, policy).await?;
            let a = path_of(&apps_ns.name, &format!("{policy}-a")).await?;
            let done = (!deletes || names.len() == 2) && (!updates || a == "v2");
            Ok(done.then_some(()))
        })
        .await?;
    }
    // Passes run again on the poll interval: what a policy forbids stays
    // forbidden.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (policy, updates, deletes) in cases {
        let names = generated(&apps_ns.name, policy).await?;
        assert_eq!(
            names.len(),
            if deletes { 2 } else { 3 },
            "{policy}: {names:?}"
        );
        let a = path_of(&apps_ns.name, &format!("{policy}-a")).await?;
        assert_eq!(a, if updates { "v2" } else { "v1" }, "{policy}");
    }
    drop(plumb);
    Ok(())
}

#[tokio::test]
async fn generator_errors_and_a_drop_to_zero_delete_nothing_until_confirmed() -> Result<()> {
    let apps_ns = TestNamespace::new("as-safe").await;
    apps_ns.create().await?;
    let repo = repo_with_apps(&["a", "b"])?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    let set = |revision: &str, glob: &str| {
        format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: safe}}
spec:
  generators:
  - git: {{repoURL: '{repo}', revision: {revision}, directories: [{{path: '{glob}'}}]}}
  template:
    metadata: {{name: 's-{{{{path.basename}}}}'}}
    spec:
      project: default
      source: {{repoURL: '{repo}', path: '{{{{path}}}}'}}
      destination: {{server: 'https://kubernetes.default.svc', namespace: default}}
"#,
            repo = repo.url()
        )
    };
    apply_appset(&apps_ns.name, &set("main", "apps/*")).await?;
    wait_generated(&apps_ns.name, "safe", &["s-a", "s-b"]).await?;

    // A revision that does not exist: an error, nothing deleted.
    apply_appset(&apps_ns.name, &set("no-such-branch", "apps/*")).await?;
    wait_condition(&plumb, "safe", "ErrorOccurred", "no-such-branch").await?;
    assert_eq!(generated(&apps_ns.name, "safe").await?, ["s-a", "s-b"]);

    // A glob that matches nothing would delete every application: held.
    apply_appset(&apps_ns.name, &set("main", "renamed/*")).await?;
    let message = wait_condition(&plumb, "safe", "DeletionHeld", "would delete 2 of the 2").await?;
    assert_eq!(generated(&apps_ns.name, "safe").await?, ["s-a", "s-b"]);
    let token = held_token(&message)?;
    // A wrong token confirms nothing.
    let (status, _) = plumb
        .post(
            "/api/v1/applicationsets/safe/confirm-deletion",
            json!({"token": "0000"}),
        )
        .await?;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(generated(&apps_ns.name, "safe").await?, ["s-a", "s-b"]);
    let (status, body) = plumb
        .post(
            "/api/v1/applicationsets/safe/confirm-deletion",
            json!({"token": token}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    wait_generated(&apps_ns.name, "safe", &[]).await?;
    let (status, _) = plumb
        .post(
            "/api/v1/applicationsets/nope/confirm-deletion",
            json!({"token": "x"}),
        )
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

/// `--appset-max-delete-percent 50`: a pass deleting less than half of a
/// set's applications goes ahead; one deleting half or more is held until
/// `plumb appset confirm-deletion` (the CLI), and the last one until the
/// set's `plumb.dev/confirm-deletion` annotation names the token.
#[tokio::test]
async fn deletions_over_the_share_are_held_until_the_cli_or_an_annotation_confirms() -> Result<()> {
    let apps_ns = TestNamespace::new("as-share").await;
    apps_ns.create().await?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching_with_args(
        work.path(),
        "",
        &apps_ns.name,
        &["--appset-max-delete-percent", "50"],
    )
    .await?;
    let set = |names: &[&str]| {
        let elements: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v1")).collect();
        list_set("share", "sync", &elements)
    };
    apply_appset(&apps_ns.name, &set(&["a", "b", "c", "d"])).await?;
    wait_generated(
        &apps_ns.name,
        "share",
        &["share-a", "share-b", "share-c", "share-d"],
    )
    .await?;
    // 1 of 4 (25%): deleted at once.
    apply_appset(&apps_ns.name, &set(&["a", "b", "c"])).await?;
    wait_generated(&apps_ns.name, "share", &["share-a", "share-b", "share-c"]).await?;
    assert!(
        condition(&plumb, "share", "DeletionHeld")
            .await?
            .is_none_or(|(status, _)| status != "True")
    );
    // 2 of 3 (67%): held, then confirmed with the CLI.
    apply_appset(&apps_ns.name, &set(&["a"])).await?;
    let message =
        wait_condition(&plumb, "share", "DeletionHeld", "would delete 2 of the 3").await?;
    assert_eq!(
        generated(&apps_ns.name, "share").await?,
        ["share-a", "share-b", "share-c"]
    );
    let token = held_token(&message)?;
    let confirmed = support::cli(&[
        "appset",
        "confirm-deletion",
        "share",
        &token,
        "--server",
        &plumb.url,
    ])?;
    assert!(confirmed.contains("share"), "{confirmed}");
    wait_generated(&apps_ns.name, "share", &["share-a"]).await?;
    // 1 of 1: held, then confirmed by the annotation on the set.
    apply_appset(&apps_ns.name, &set(&[])).await?;
    let message =
        wait_condition(&plumb, "share", "DeletionHeld", "would delete 1 of the 1").await?;
    assert_eq!(generated(&apps_ns.name, "share").await?, ["share-a"]);
    let token = held_token(&message)?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &apps_ns.name, &appsets());
    api.patch(
        "share",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"plumb.dev/confirm-deletion": token}}})),
    )
    .await?;
    wait_generated(&apps_ns.name, "share", &[]).await?;
    Ok(())
}

#[tokio::test]
async fn duplicate_generated_names_and_unsupported_generators_create_nothing() -> Result<()> {
    let apps_ns = TestNamespace::new("as-dup").await;
    apps_ns.create().await?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    apply_appset(
        &apps_ns.name,
        &list_set("dup", "sync", &[("a", "v1"), ("a", "v2"), ("b", "v1")]),
    )
    .await?;
    wait_condition(
        &plumb,
        "dup",
        "ErrorOccurred",
        "two generated applications are named",
    )
    .await?;
    apply_appset(
        &apps_ns.name,
        r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: scm}
spec:
  generators:
  - scmProvider: {github: {organization: example}}
  template: {metadata: {name: x}, spec: {}}
"#,
    )
    .await?;
    wait_condition(&plumb, "scm", "ErrorOccurred", "scmProvider").await?;
    assert!(generated(&apps_ns.name, "dup").await?.is_empty());
    assert!(generated(&apps_ns.name, "scm").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn appset_generate_prints_applications_offline_and_a_plan_from_a_server() -> Result<()> {
    let apps_ns = TestNamespace::new("as-cli").await;
    apps_ns.create().await?;
    let work = tempfile::tempdir()?;
    let repo = repo_with_apps(&["a", "b"])?;
    let file = work.path().join("set.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: cli}}
spec:
  generators:
  - git: {{repoURL: '{repo}', revision: main, directories: [{{path: 'apps/*'}}]}}
  template:
    metadata: {{name: 'cli-{{{{path.basename}}}}'}}
    spec:
      project: default
      source: {{repoURL: '{repo}', path: '{{{{path}}}}'}}
      destination: {{server: 'https://kubernetes.default.svc', namespace: default}}
"#,
            repo = repo.url()
        ),
    )?;
    let run = support::cli;
    let data = work.path().join("cache");
    let data = data.to_str().context("utf-8 path")?;
    let offline = run(&[
        "appset",
        "generate",
        file.to_str().context("path")?,
        "--data-dir",
        data,
    ])?;
    assert!(
        offline.contains("name: cli-a") && offline.contains("name: cli-b"),
        "{offline}"
    );
    assert!(offline.contains("path: apps/b"), "{offline}");

    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    let preview = run(&[
        "appset",
        "generate",
        file.to_str().context("path")?,
        "--server",
        &plumb.url,
    ])?;
    assert!(
        preview.contains("cli-a") && preview.contains("create"),
        "{preview}"
    );
    // The preview changed nothing.
    assert!(generated(&apps_ns.name, "cli").await?.is_empty());
    let listed = run(&["appset", "list", "--server", &plumb.url])?;
    assert!(listed.contains("NAME"), "{listed}");
    Ok(())
}

/// A ConfigMap (and, with `stuck`, a Deployment that never becomes
/// available: its image is on a `.invalid` registry, which the node
/// simulator never pulls) for `env` at `version`.
fn write_env(repo: &GitRepo, env: &str, version: &str, stuck: bool) -> Result<()> {
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{env}\ndata:\n  version: {version}\n"
    );
    if stuck {
        text.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck-{env}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: stuck}}}}\n  template:\n    metadata: {{labels: {{app: stuck}}}}\n    spec: {{containers: [{{name: c, image: example.invalid/none}}]}}\n"
        ));
    }
    repo.write(&format!("envs/{env}/all.yaml"), &text)
}

async fn version_in(ns: &str, env: &str) -> Result<String> {
    Ok(
        support::configmap_value(ns, &format!("cm-{env}"), "version")
            .await?
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_rolling_sync_moves_a_commit_through_three_environments_in_order() -> Result<()> {
    let apps_ns = TestNamespace::new("as-roll").await;
    apps_ns.create().await?;
    let dest = TestNamespace::new("as-roll-dest").await;
    dest.create().await?;
    let repo = GitRepo::new(None)?;
    for env in ["dev", "staging", "prod"] {
        write_env(&repo, env, "v1", false)?;
    }
    repo.commit("v1")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    let step = |env: &str| json!({"matchExpressions": [{"key": "env", "operator": "In", "values": [env]}]});
    let set = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "roll"},
        "spec": {
            "strategy": {"type": "RollingSync", "rollingSync": {"steps": [step("dev"), step("staging"), step("prod")]}},
            "generators": [{"list": {"elements": [{"env": "dev"}, {"env": "staging"}, {"env": "prod"}]}}],
            "template": {
                "metadata": {"name": "roll-{{env}}", "labels": {"env": "{{env}}"}},
                "spec": {"project": "default",
                         "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "envs/{{env}}"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": dest.name},
                         "syncPolicy": {"automated": {"prune": true}}}
            }
        }
    });
    apply_appset(&apps_ns.name, &serde_yaml::to_string(&set)?).await?;
    for env in ["dev", "staging", "prod"] {
        plumb
            .wait_status(&format!("roll-{env}"), "Synced", Some("Healthy"))
            .await?;
        assert_eq!(version_in(&dest.name, env).await?, "v1");
    }

    // v2 everywhere in one commit, but dev's v2 never becomes healthy:
    // staging and prod must wait.
    write_env(&repo, "dev", "v2", true)?;
    write_env(&repo, "staging", "v2", false)?;
    write_env(&repo, "prod", "v2", false)?;
    repo.commit("v2")?;
    eventually("dev is at v2", WAIT, || async {
        Ok((version_in(&dest.name, "dev").await? == "v2").then_some(()))
    })
    .await?;
    let staging = eventually("staging waits for step 1", WAIT, || async {
        let app = plumb.app("roll-staging").await?;
        let waiting = app
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "RolloutWaiting"
                    && c["message"].as_str().is_some_and(|m| m.contains("step 1"))
            });
        Ok(waiting.then_some(app))
    })
    .await?;
    assert_eq!(staging["status"]["sync"]["status"], "OutOfSync");
    // Several polls later, nothing moved past dev.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(version_in(&dest.name, "staging").await?, "v1");
    assert_eq!(version_in(&dest.name, "prod").await?, "v1");
    let set = plumb.get("/api/v1/applicationsets/roll").await?;
    let progress: Vec<(String, String)> = set["status"]["applicationStatus"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["application"].as_str().unwrap_or_default().to_string(),
                a["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        progress.contains(&("roll-dev".into(), "Progressing".into())),
        "{progress:?}"
    );

    // Dev becomes healthy (the stuck Deployment is gone): staging, then
    // prod, move to v2, in that order.
    write_env(&repo, "dev", "v2", false)?;
    repo.commit("dev fixed")?;
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    eventually("every environment is at v2", WAIT, || {
        let order = std::sync::Arc::clone(&order);
        let dest = dest.name.clone();
        async move {
            for env in ["dev", "staging", "prod"] {
                let seen = order.lock().expect("not poisoned").contains(&env);
                if !seen && version_in(&dest, env).await? == "v2" {
                    order.lock().expect("not poisoned").push(env);
                }
            }
            Ok((order.lock().expect("not poisoned").len() == 3).then_some(()))
        }
    })
    .await?;
    let order = order.lock().expect("not poisoned").clone();
    assert_eq!(order, ["dev", "staging", "prod"]);
    for env in ["dev", "staging", "prod"] {
        plumb
            .wait_status(&format!("roll-{env}"), "Synced", Some("Healthy"))
            .await?;
    }
    Ok(())
}
