//! The calls Backstage's Argo CD plugins make to read deployments, against
//! a real `plumb serve` on the real local control plane: the list filtered
//! by label selector, project and application namespace, an application by
//! name, and the metadata of the revision it runs. (Their login and
//! project calls come with authentication and projects.)

mod support;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use support::{GitRepo, Plumb, TestNamespace, application_with};

#[tokio::test]
async fn the_read_sequence_of_backstage_s_plugins() -> Result<()> {
    let ns = TestNamespace::new("backstage").await;
    let repo = GitRepo::new(None)?;
    repo.write(
        "api/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api-settings\ndata: {k: v}\n",
    )?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {k: v}\n",
    )?;
    repo.write(
        "app/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      initContainers:\n        - name: init\n          image: busybox:1.36\n      containers:\n        - name: web\n          image: nginx:1.27\n",
    )?;
    let sha = repo.commit("Deploy settings\n\nWith a body.")?;
    repo.git(&["tag", "v1.0.0"])?;
    let labeled = |name: &str, component: &str, path: &str| -> Result<String> {
        let mut doc: Value = serde_yaml::from_str(&application_with(
            name,
            &ns.name,
            json!({
                "source": {"repoURL": repo.url(), "targetRevision": "main", "path": path},
                "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
            }),
        ))?;
        doc["metadata"]["labels"] = json!({"backstage-name": component});
        Ok(serde_yaml::to_string(&doc)?)
    };
    let (web, api) = (format!("{}-web", ns.name), format!("{}-api", ns.name));
    let apps = [labeled(&web, "web", "app")?, labeled(&api, "api", "api")?].join("---\n");
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&web, "Synced", Some("Healthy")).await?;

    // The list, as the catalog's entity page asks for its component.
    let listed = plumb
        .get(
            "/api/v1/applications?selector=backstage-name%3Dweb&project=default&appNamespace=plumb",
        )
        .await?;
    let items = listed["items"].as_array().context("items")?;
    assert_eq!(items.len(), 1, "{listed:#}");
    let app = &items[0];
    assert_eq!(app["metadata"]["name"], web.as_str());
    // What the plugins read without checking: always present.
    assert_eq!(app["metadata"]["namespace"], "plumb");
    assert_eq!(app["spec"]["destination"]["namespace"], ns.name.as_str());
    assert_eq!(
        app["spec"]["destination"]["server"],
        "https://kubernetes.default.svc"
    );
    assert_eq!(app["status"]["sync"]["status"], "Synced");
    assert_eq!(app["status"]["health"]["status"], "Healthy");
    let history = app["status"]["history"].as_array().context("history")?;
    assert!(history[0]["id"].is_number(), "{app:#}");
    assert!(
        app["status"]["operationState"]["startedAt"].is_string(),
        "{app:#}"
    );
    assert_eq!(
        app["status"]["summary"]["images"],
        json!(["busybox:1.36", "nginx:1.27"]),
        "{app:#}"
    );

    // By name, in both of Argo CD's forms.
    let by_name = plumb
        .get(&format!("/api/v1/applications?name={web}"))
        .await?;
    assert_eq!(by_name["items"].as_array().map(Vec::len), Some(1));
    let one = plumb
        .get(&format!("/api/v1/applications/{web}?appNamespace=plumb"))
        .await?;
    assert_eq!(one["metadata"]["name"], web.as_str());

    // The revision it runs: who, when, what, which tags.
    let revision = one["status"]["sync"]["revision"]
        .as_str()
        .context("a revision")?;
    assert_eq!(revision, sha);
    let meta = plumb
        .get(&format!(
            "/api/v1/applications/{web}/revisions/{revision}/metadata"
        ))
        .await?;
    assert_eq!(
        meta["author"], "Plumb Test <test@plumb.invalid>",
        "{meta:#}"
    );
    assert_eq!(meta["message"], "Deploy settings\n\nWith a body.");
    assert_eq!(meta["tags"], json!(["v1.0.0"]));
    let date = meta["date"].as_str().unwrap_or_default();
    assert!(
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339).is_ok(),
        "{date}"
    );

    // A revision the repository does not have is a 400, an unknown
    // application a 404.
    let missing = reqwest::get(format!(
        "{}/api/v1/applications/{web}/revisions/0123456789abcdef0123456789abcdef01234567/metadata",
        plumb.url
    ))
    .await?;
    assert_eq!(missing.status(), 400);
    let unknown = reqwest::get(format!(
        "{}/api/v1/applications/nothing-here/revisions/{revision}/metadata",
        plumb.url
    ))
    .await?;
    assert_eq!(unknown.status(), 404);
    Ok(())
}
