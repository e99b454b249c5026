//! The calls Backstage's Argo CD plugins make to read deployments, against
//! a real `plumb serve` on the real local control plane: the list filtered
//! by label selector, project and application namespace, an application by
//! name, and the metadata of the revision it runs; and, logged in with
//! `POST /api/v1/session` and a Bearer token as they are, the calls they
//! make to create a project and an application, sync and delete them.

mod support;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::Duration;

use support::{GitRepo, Plumb, TestNamespace, application_with, client, configmaps, eventually};

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

/// Backstage's plugin as it talks to Plumb: with the Bearer token
/// `POST /api/v1/session` gave it, once it has one.
#[derive(Default)]
struct Backstage {
    token: Option<String>,
}

impl Backstage {
    /// A request the plugins send, with its status and JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = reqwest::Client::new()
            .request(method, url)
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Starts a sync (again while another operation runs: 409) and
    /// follows it to its end; returns the application then.
    async fn sync(&self, base: &str, name: &str, body: Value) -> Result<Value> {
        let url = format!("{base}/{name}/sync");
        let started = eventually("the sync is accepted", Duration::from_secs(60), || async {
            let (status, app) = self
                .call(reqwest::Method::POST, &url, Some(body.clone()))
                .await?;
            match status {
                200 => Ok(Some(app)),
                409 => Ok(None),
                _ => anyhow::bail!("POST {url}: {status} {app}"),
            }
        })
        .await?;
        let at = started["status"]["operationState"]["startedAt"].clone();
        eventually("the sync ends", Duration::from_secs(120), || async {
            let (_, app) = self
                .call(reqwest::Method::GET, &format!("{base}/{name}"), None)
                .await?;
            let op = &app["status"]["operationState"];
            Ok((op["startedAt"] == at && op["phase"] != "Running").then_some(app))
        })
        .await
    }

    /// Waits until the application's sync status is `sync`.
    async fn wait_sync(&self, base: &str, name: &str, sync: &str) -> Result<()> {
        eventually(
            &format!("{name} is {sync}"),
            Duration::from_secs(90),
            || async {
                let (_, app) = self
                    .call(reqwest::Method::GET, &format!("{base}/{name}"), None)
                    .await?;
                Ok((app["status"]["sync"]["status"] == sync).then_some(()))
            },
        )
        .await
    }
}

/// The password `plumb serve` generated for `admin` (Argo CD's initial
/// admin secret).
async fn admin_password(namespace: &str) -> Result<String> {
    use base64::Engine;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client().await,
        namespace,
        &support::resource("", "v1", "Secret", "secrets"),
    );
    let secret = api.get("plumb-initial-admin-secret").await?;
    let encoded = secret.data["data"]["password"]
        .as_str()
        .context("the initial admin secret has a password")?;
    Ok(String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(encoded)?,
    )?)
}

/// Whether the ConfigMap `name` exists in `namespace`.
async fn configmap_exists(namespace: &str, name: &str) -> Result<bool> {
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client().await, namespace, &configmaps());
    Ok(api.get_opt(name).await?.is_some())
}

#[tokio::test]
async fn the_write_sequence_of_backstage_s_plugins() -> Result<()> {
    use reqwest::Method;
    let (apps, target) = (
        TestNamespace::new("bsw-apps").await,
        TestNamespace::new("bsw-target").await,
    );
    apps.create().await?;
    target.create().await?;
    let repo = GitRepo::new(None)?;
    for name in ["one", "two"] {
        repo.write(
            &format!("svc/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{v: \"1\"}}\n"
            ),
        )?;
    }
    repo.commit("two settings")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_auth(work.path(), "", &apps.name, &[]).await?;
    let base = format!("{}/api/v1/applications", plumb.url);

    // The plugins log in first (`argocd.username`/`password` in their
    // config) and send the token as Bearer; nothing works without it.
    let mut bs = Backstage::default();
    let (status, _) = bs.call(Method::GET, &base, None).await?;
    assert_eq!(status, 401);
    let password = admin_password(&apps.name).await?;
    let (status, session) = bs
        .call(
            Method::POST,
            &format!("{}/api/v1/session", plumb.url),
            Some(json!({"username": "admin", "password": password})),
        )
        .await?;
    assert_eq!(status, 200, "{session:#}");
    let token = session["token"].as_str().context("a token")?.to_string();
    // The cookie works as well as the header.
    let by_cookie = reqwest::Client::new()
        .get(&base)
        .header("Cookie", format!("argocd.token={token}"))
        .send()
        .await?;
    assert_eq!(by_cookie.status(), 200);
    bs.token = Some(token);
    let projects = format!("{}/api/v1/projects", plumb.url);
    let name = format!("{}-svc", apps.name);
    let project = format!("{}-proj", apps.name);

    // Roadie's scaffolder creates a project of the component's own first,
    // with Argo CD's resources finalizer, then the application in it.
    let project_body = json!({"project": {
        "metadata": {"name": project, "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "destinations": [{"name": "local", "namespace": target.name, "server": "https://kubernetes.default.svc"}],
            "sourceRepos": [repo.url()],
        },
    }});
    let (status, answer) = bs
        .call(Method::POST, &projects, Some(project_body.clone()))
        .await?;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["metadata"]["name"], project.as_str());
    let (status, _) = bs
        .call(Method::POST, &projects, Some(project_body.clone()))
        .await?;
    assert_eq!(status, 200, "the same project again is no change");
    let mut other = project_body.clone();
    other["project"]["spec"]["sourceRepos"] = json!(["https://example.com/other.git"]);
    let (status, refused) = bs.call(Method::POST, &projects, Some(other)).await?;
    assert_eq!(status, 400);
    // Roadie looks for these words.
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("existing project spec is different"),
        "{refused:#}"
    );

    // Roadie's create: the scaffolder's payload, automated with prune and
    // self-heal, the resources finalizer, a label the catalog selects on.
    let payload = json!({
        "metadata": {
            "name": name,
            "labels": {"backstage-name": "svc"},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "destination": {"namespace": target.name, "server": "https://kubernetes.default.svc"},
            "project": project,
            "revisionHistoryLimit": 10,
            "source": {"path": "svc", "repoURL": repo.url()},
            "syncPolicy": {
                "automated": {"allowEmpty": true, "prune": true, "selfHeal": true},
                "retry": {"backoff": {"duration": "5s", "factor": 2, "maxDuration": "5m"}, "limit": 10},
                "syncOptions": ["CreateNamespace=false", "FailOnSharedResource=true"],
            },
        },
    });
    let (status, created) = bs.call(Method::POST, &base, Some(payload.clone())).await?;
    assert_eq!(status, 200, "{created:#}");
    assert_eq!(created["metadata"]["name"], name.as_str());
    assert_eq!(created["metadata"]["namespace"], apps.name.as_str());
    bs.wait_sync(&base, &name, "Synced").await?;
    assert!(configmap_exists(&target.name, "one").await?);
    // The same payload again is no change; another spec needs upsert.
    let (status, _) = bs.call(Method::POST, &base, Some(payload.clone())).await?;
    assert_eq!(status, 200);
    let mut changed = payload.clone();
    changed["spec"]["revisionHistoryLimit"] = json!(5);
    let (status, refused) = bs.call(Method::POST, &base, Some(changed.clone())).await?;
    assert_eq!(status, 400, "{refused:#}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("upsert"),
        "{refused:#}"
    );
    let (status, _) = bs
        .call(Method::POST, &format!("{base}?upsert=true"), Some(changed))
        .await?;
    assert_eq!(status, 200);
    // Roadie's update: PUT the application and its project.
    let mut updated = payload.clone();
    updated["spec"]["revisionHistoryLimit"] = json!(7);
    let (status, answer) = bs
        .call(Method::PUT, &format!("{base}/{name}"), Some(updated))
        .await?;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["spec"]["revisionHistoryLimit"], 7, "{answer:#}");
    let (status, answer) = bs
        .call(
            Method::PUT,
            &format!("{projects}/{project}"),
            Some(project_body.clone()),
        )
        .await?;
    assert_eq!(status, 200, "{answer:#}");
    // A project that does not exist: refused before anything is written.
    let mut stray = payload.clone();
    stray["metadata"]["name"] = json!(format!("{name}-stray"));
    stray["spec"]["project"] = json!("no-such-project");
    let (status, refused) = bs.call(Method::POST, &base, Some(stray)).await?;
    assert_eq!(status, 400, "{refused:#}");
    assert_eq!(refused["code"], 3);
    // A destination its project does not list: refused the same way.
    let mut elsewhere = payload.clone();
    elsewhere["metadata"]["name"] = json!(format!("{name}-elsewhere"));
    elsewhere["spec"]["destination"]["namespace"] = json!("kube-system");
    let (status, refused) = bs.call(Method::POST, &base, Some(elsewhere)).await?;
    assert_eq!(status, 400, "{refused:#}");
    // A project in use stays.
    let (status, refused) = bs
        .call(Method::DELETE, &format!("{projects}/{project}"), None)
        .await?;
    assert_eq!(status, 400, "{refused:#}");

    // Roadie's resync: terminate whatever runs (nothing: 400), then sync
    // with the hook strategy forced and `resources: null`.
    let (status, _) = bs
        .call(Method::DELETE, &format!("{base}/{name}/operation"), None)
        .await?;
    assert_eq!(status, 400);
    let synced = bs.sync(&base, &name, json!({"prune": false, "dryRun": false, "strategy": {"hook": {"force": true}}, "resources": null})).await?;
    assert_eq!(
        synced["status"]["operationState"]["phase"], "Succeeded",
        "{synced:#}"
    );
    assert_eq!(
        synced["status"]["operationState"]["operation"]["sync"]["syncStrategy"],
        json!({"hook": {"force": true}})
    );

    // A selective sync writes the object it names and nothing else: both
    // ConfigMaps changed by hand, only `one` is synced back.
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client().await, &target.name, &configmaps());
    // Automated sync would heal both: turn it off first (upsert).
    let mut manual = payload.clone();
    manual["spec"]["syncPolicy"] = json!({});
    let (status, _) = bs
        .call(Method::POST, &format!("{base}?upsert=true"), Some(manual))
        .await?;
    assert_eq!(status, 200);
    eventually("automated sync is off", Duration::from_secs(30), || async {
        let (_, app) = bs
            .call(Method::GET, &format!("{base}/{name}"), None)
            .await?;
        Ok(app["spec"]["syncPolicy"]
            .get("automated")
            .is_none()
            .then_some(()))
    })
    .await?;
    for cm in ["one", "two"] {
        api.patch(
            cm,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"v": "by hand"}})),
        )
        .await?;
    }
    bs.wait_sync(&base, &name, "OutOfSync").await?;
    let selective = bs.sync(&base, &name, json!({"resources": [{"group": "", "kind": "ConfigMap", "name": "one"}], "strategy": {"apply": {}}})).await?;
    let op = &selective["status"]["operationState"];
    assert_eq!(op["phase"], "Succeeded", "{op:#}");
    let results = op["syncResult"]["resources"]
        .as_array()
        .context("results")?;
    assert_eq!(results.len(), 1, "{op:#}");
    assert_eq!(results[0]["name"], "one");
    let data = |cm: &str| {
        let api = api.clone();
        let cm = cm.to_string();
        async move { Ok::<_, anyhow::Error>(api.get(&cm).await?.data["data"]["v"].clone()) }
    };
    assert_eq!(data("one").await?, "1");
    assert_eq!(data("two").await?, "by hand");
    // Names that are not part of the application: nothing is applied.
    let none = bs
        .sync(
            &base,
            &name,
            json!({"resources": [{"kind": "Secret", "name": "one"}]}),
        )
        .await?;
    assert_eq!(none["status"]["operationState"]["phase"], "Failed");
    assert_eq!(data("two").await?, "by hand");

    // Delete with cascade: the resources go, then the application.
    let (status, answer) = bs
        .call(Method::DELETE, &format!("{base}/{name}?cascade=true"), None)
        .await?;
    assert_eq!((status, answer), (200, json!({})));
    eventually(
        "the application is gone",
        Duration::from_secs(90),
        || async {
            let (status, _) = bs
                .call(Method::GET, &format!("{base}/{name}"), None)
                .await?;
            Ok((status == 404).then_some(()))
        },
    )
    .await?;
    assert!(!configmap_exists(&target.name, "one").await?);
    assert!(!configmap_exists(&target.name, "two").await?);
    let (status, _) = bs
        .call(Method::DELETE, &format!("{base}/{name}"), None)
        .await?;
    assert_eq!(status, 404);

    // Without cascade the resources stay.
    let mut kept = payload.clone();
    kept["metadata"]["name"] = json!(format!("{name}-kept"));
    let kept_name = format!("{name}-kept");
    let (status, _) = bs.call(Method::POST, &base, Some(kept)).await?;
    assert_eq!(status, 200);
    bs.wait_sync(&base, &kept_name, "Synced").await?;
    let (status, _) = bs
        .call(
            Method::DELETE,
            &format!("{base}/{kept_name}?cascade=false"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    eventually(
        "the kept application is gone",
        Duration::from_secs(60),
        || async {
            let (status, _) = bs
                .call(Method::GET, &format!("{base}/{kept_name}"), None)
                .await?;
            Ok((status == 404).then_some(()))
        },
    )
    .await?;
    assert!(configmap_exists(&target.name, "one").await?);

    // With no application left in it, the project goes too (its
    // finalizer removed: nothing else would).
    let (status, answer) = bs
        .call(Method::DELETE, &format!("{projects}/{project}"), None)
        .await?;
    assert_eq!((status, answer), (200, json!({})));
    eventually("the project is gone", Duration::from_secs(60), || async {
        let (status, _) = bs
            .call(Method::GET, &format!("{projects}/{project}"), None)
            .await?;
        Ok((status == 404).then_some(()))
    })
    .await?;
    Ok(())
}
