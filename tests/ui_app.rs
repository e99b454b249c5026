//! The web UI's list and application page end to end, in a real headless
//! Chromium against a real `plumb serve` on the real local control plane:
//! status counts and filters kept in the URL, the resource tree as a graph
//! (Deployment → ReplicaSet → Pod), a Secret's diff masked, side by side or
//! unified, a sync watched to its end, history with its commits and a
//! rollback after a confirmation, the keyboard, a phone-width window, the
//! DORA charts, a condition in words, and what a read-only user is not
//! offered. Each test fails when the page shows a JavaScript error.
//!
//! With `PLUMB_SCREENSHOTS=DIR` the tests also write the README's
//! screenshots (1280x720 PNGs) into DIR (`docs` for the committed ones).

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use serde_json::{Value, json};
use support::browser::Browser;
use support::{GitRepo, Plumb, TestNamespace, eventually, wait_configmap};

/// The Secret's value in Git: it must never reach the page.
const SECRET: &str = "hunter2-in-git";

fn manifests(colour: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "app/settings.yaml",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  colour: {colour}\n"
            ),
        ),
        (
            "app/creds.yaml",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: Opaque\nstringData:\n  password: {password}\n"
            ),
        ),
        (
            "app/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: main\n          image: busybox:1.36\n".to_string(),
        ),
    ]
}

/// Two applications: `a` in project team-a labelled env=prod (the
/// ConfigMap, the Secret and the Deployment), `b` in default labelled
/// env=dev (a ConfigMap). `automated` adds an automated sync policy.
fn apps_yaml(a: &str, b: &str, repo: &str, dest: &str, automated: bool) -> String {
    let policy = if automated {
        "  syncPolicy:\n    automated: {}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: team-a\nspec:\n  sourceRepos: ['*']\n  destinations: [{{server: '*', namespace: '*'}}]\n---\n\
         apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {a}\n  labels:\n    env: prod\nspec:\n  project: team-a\n  source:\n    repoURL: {repo}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {dest}\n{policy}---\n\
         apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {b}\n  labels:\n    env: dev\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    targetRevision: main\n    path: other\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {dest}\n{policy}"
    )
}

fn repo_with(colour: &str, password: &str) -> Result<GitRepo> {
    let repo = GitRepo::new(None)?;
    for (path, text) in manifests(colour, password) {
        repo.write(path, &text)?;
    }
    repo.write(
        "other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  k: v\n",
    )?;
    commit_as(
        &repo,
        "Ada Lovelace <ada@example.com>",
        "First settings: blue",
    )?;
    Ok(repo)
}

/// Commits everything with `author`.
fn commit_as(repo: &GitRepo, author: &str, message: &str) -> Result<()> {
    repo.git(&["add", "-A"])?;
    repo.git(&["commit", "-q", "--author", author, "-m", message])?;
    Ok(())
}

/// Commits the manifests with another colour and password, by Grace.
fn change(repo: &GitRepo, colour: &str, password: &str, message: &str) -> Result<()> {
    for (path, text) in manifests(colour, password) {
        repo.write(path, &text)?;
    }
    commit_as(repo, "Grace Hopper <grace@example.com>", message)
}

/// Writes a screenshot into `$PLUMB_SCREENSHOTS/NAME.png` when that is set;
/// checks it is a 1280x720 PNG either way.
async fn screenshot(browser: &Browser, name: &str) -> Result<()> {
    screenshot_sized(browser, name, (1280, 720)).await
}

async fn screenshot_sized(browser: &Browser, name: &str, size: (u32, u32)) -> Result<()> {
    let png = browser.screenshot().await?;
    // The IHDR chunk: width and height, big-endian, at bytes 16..24.
    ensure!(png.len() > 24, "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into()?);
    let height = u32::from_be_bytes(png[20..24].try_into()?);
    ensure!(
        (width, height) == size,
        "{name}: {width}x{height}, not {size:?}"
    );
    if let Ok(dir) = std::env::var("PLUMB_SCREENSHOTS") {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(format!("{dir}/{name}.png"), png)?;
    }
    Ok(())
}

/// The page's URL fragment.
async fn hash(browser: &Browser) -> Result<String> {
    let url = browser.url().await?;
    Ok(url
        .split_once('#')
        .map(|(_, h)| h.to_string())
        .unwrap_or_default())
}

/// Whether the page is wider than its viewport (a sideways scroll).
async fn overflows(browser: &Browser) -> Result<bool> {
    let v = browser
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            json!([]),
        )
        .await?;
    Ok(v == Value::Bool(true))
}

#[tokio::test]
async fn the_list_filters_in_the_url_and_the_app_page_shows_tree_diff_sync_and_rollback()
-> Result<()> {
    let ns = TestNamespace::new("ui-app").await;
    ns.create().await?;
    let sfx = &ns.name[ns.name.len() - 8..];
    let (a, b) = (format!("shop-{sfx}"), format!("blog-{sfx}"));
    let repo = repo_with("blue", SECRET)?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &apps_yaml(&a, &b, &repo.url(), &ns.name, false),
    )
    .await?;
    plumb.wait_status(&a, "OutOfSync", None).await?;
    plumb.wait_status(&b, "OutOfSync", None).await?;

    // The API masks the Secret in every state it sends.
    let managed = plumb
        .get(&format!("/api/v1/applications/{a}/managed-resources"))
        .await?
        .to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
    ensure!(
        !managed.contains(SECRET) && !managed.contains(&encoded),
        "managed-resources shows the Secret's value: {managed}"
    );

    let browser = Browser::start().await?;
    browser.set_viewport(1280, 720).await?;
    browser.goto(&format!("{}/", plumb.url)).await?;
    browser
        .wait_for("both applications", "#app-rows .app-row", |rows| {
            rows.len() == 2
        })
        .await?;
    browser
        .wait_for(
            "the counts",
            "#counts button[data-value='OutOfSync']",
            |t| t[0].contains('2'),
        )
        .await?;
    screenshot(&browser, "ui-list").await?;

    // A count filters; so do the label and project filters; all in the URL.
    browser
        .click("#counts button[data-value='OutOfSync']")
        .await?;
    browser.type_text("#f-label", "env=prod").await?;
    let rows = browser
        .wait_for("only the prod application", "#app-rows .app-row", |rows| {
            rows.len() == 1
        })
        .await?;
    ensure!(rows[0].contains(&a), "{rows:?}");
    browser.select("#f-project", "team-a").await?;
    let fragment = hash(&browser).await?;
    ensure!(
        fragment.contains("sync=OutOfSync")
            && fragment.contains("label=env%3Dprod")
            && fragment.contains("project=team-a"),
        "the filters are in the URL: {fragment}"
    );
    // A text that matches nothing says so.
    browser.type_text("#filter", "no-such-app").await?;
    browser
        .wait_for("nothing matches", "#list-empty:not([hidden])", |t| {
            t[0].contains("No application matches")
        })
        .await?;
    browser
        .execute(
            "const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));",
            json!([]),
        )
        .await?;
    // A reload (a shared URL) shows the same view.
    browser.execute("location.reload();", json!([])).await?;
    let rows = browser
        .wait_for(
            "the same view after a reload",
            "#app-rows .app-row",
            |rows| rows.len() == 1,
        )
        .await?;
    ensure!(rows[0].contains(&a), "{rows:?}");
    let label = browser
        .execute(
            "return document.getElementById('f-label').value;",
            json!([]),
        )
        .await?;
    ensure!(label == "env=prod", "the label filter is restored: {label}");
    browser
        .wait_for(
            "the count stays pressed",
            "#counts button[aria-pressed='true']",
            |t| t[0].contains("OutOfSync"),
        )
        .await?;

    // Keyboard: "/" goes to the search box.
    browser.type_text("body", "/").await?;
    let focused = browser
        .execute("return document.activeElement.id;", json!([]))
        .await?;
    ensure!(focused == "filter", "focus is on the search box: {focused}");

    // The application's page: its tree before the sync (objects missing).
    browser
        .click(&format!("#app-rows a[href='#/apps/{a}']"))
        .await?;
    browser
        .wait_for("the application's page", "#detail-view h1", |t| t[0] == a)
        .await?;
    browser
        .wait_for("the tree's nodes", "#detail-view .tree-node", |nodes| {
            ["ConfigMap", "Secret", "Deployment"]
                .iter()
                .all(|k| nodes.iter().any(|n| n.contains(k)))
                && nodes.iter().any(|n| n.contains("OutOfSync"))
        })
        .await?;

    // The Secret's diff, from its node: masked, unified then side by side.
    browser
        .click("#detail-view .tree-node[data-kind='Secret']")
        .await?;
    let diff = browser
        .wait_for("the Secret's diff", "#detail-view .diff", |t| {
            t[0].contains("Secret") && t[0].contains("creds") && t[0].contains("++++++++")
        })
        .await?;
    ensure!(
        !diff[0].contains(SECRET) && !diff[0].contains(&encoded),
        "the page shows the Secret's value: {diff:?}"
    );
    browser
        .click("#detail-view button.mode[data-mode='split']")
        .await?;
    browser
        .wait_for(
            "the diff side by side",
            "#detail-view table.diff-split",
            |t| t[0].to_lowercase().contains("desired (git)") && t[0].contains("password"),
        )
        .await?;
    browser
        .click(&format!(
            "#detail-view button.resource[data-resource='/ConfigMap/{}/settings']",
            ns.name
        ))
        .await?;
    browser
        .wait_for(
            "the ConfigMap's diff",
            "#detail-view table.diff-split td.add",
            |t| t.iter().any(|c| c.contains("colour: blue")),
        )
        .await?;
    browser
        .click("#detail-view button.mode[data-mode='unified']")
        .await?;
    browser
        .wait_for("the diff unified", "#detail-view pre.diff-unified", |t| {
            t[0].contains("+  colour: blue") || t[0].contains("colour: blue")
        })
        .await?;

    // Sync, and watch the operation to its end, resource by resource.
    browser.click("#detail-view button.sync").await?;
    browser
        .wait_for(
            "the operation succeeded",
            "#detail-view .operation .op-phase",
            |t| t[0].contains("Succeeded"),
        )
        .await?;
    browser
        .wait_for(
            "each resource's result",
            "#detail-view tr.op-result",
            |rows| {
                ["settings", "creds", "web"]
                    .iter()
                    .all(|n| rows.iter().any(|r| r.contains(n)))
            },
        )
        .await?;
    // The tree now reaches the Pods: Deployment → ReplicaSet → Pod.
    browser
        .wait_for(
            "the Deployment's ReplicaSet and Pod in the tree",
            "#detail-view .tree-node",
            |nodes| {
                nodes.iter().any(|n| n.starts_with("ReplicaSet"))
                    && nodes.iter().any(|n| n.starts_with("Pod"))
                    && nodes
                        .iter()
                        .any(|n| n.contains("settings") && n.contains("Synced"))
            },
        )
        .await
        .with_context(|| plumb.log_text())?;
    browser
        .execute(
            "document.querySelector('#detail-view .tree-card').scrollIntoView({block: 'center'});",
            json!([]),
        )
        .await?;
    screenshot(&browser, "ui-app").await?;

    // Live in the cluster now: still masked in every state the API sends.
    let managed = plumb
        .get(&format!("/api/v1/applications/{a}/managed-resources"))
        .await?
        .to_string();
    ensure!(
        managed.contains("creds") && !managed.contains(SECRET) && !managed.contains(&encoded),
        "managed-resources shows the live Secret's value: {managed}"
    );

    // A second commit, synced: the history shows both with their commits.
    change(&repo, "green", "another-secret", "Settings: green")?;
    browser.click("#detail-view button.refresh").await?;
    browser
        .wait_for("the change is seen", "#detail-view .badges", |t| {
            t[0].contains("OutOfSync")
        })
        .await?;
    // The change side by side: blue live, green in Git.
    browser
        .click("#detail-view button.mode[data-mode='split']")
        .await?;
    browser
        .click(&format!(
            "#detail-view button.resource[data-resource='/ConfigMap/{}/settings']",
            ns.name
        ))
        .await?;
    browser
        .wait_for(
            "the change in the diff",
            "#detail-view table.diff-split tr",
            |rows| {
                rows.iter()
                    .any(|r| r.contains("colour: blue") && r.contains("colour: green"))
            },
        )
        .await?;
    browser
        .execute(
            "document.querySelector('#detail-view .diff-card').scrollIntoView({block: 'start'});\
             window.scrollBy(0, -64);",
            json!([]),
        )
        .await?;
    screenshot(&browser, "ui-diff").await?;
    browser.click("#detail-view button.sync").await?;
    wait_configmap(&ns.name, "settings", "colour", "green").await?;
    let history = browser
        .wait_for(
            "the history with its commits",
            "#detail-view .history-card tbody tr",
            |rows| {
                rows.len() == 2
                    && rows[0].contains("Settings: green")
                    && rows[0].contains("Grace Hopper")
                    && rows[1].contains("First settings: blue")
                    && rows[1].contains("Ada Lovelace")
            },
        )
        .await?;
    ensure!(history[0].contains("current"), "{history:?}");

    // Roll back to the first, after confirming, once the sync is over (a
    // rollback is refused while an operation runs).
    eventually(
        "the second sync is over",
        Duration::from_secs(90),
        || async {
            let app = plumb.app(&a).await?;
            let op = &app["status"]["operationState"];
            Ok((op["phase"] == "Succeeded" && op["finishedAt"].is_string()).then_some(()))
        },
    )
    .await?;
    browser
        .click("#detail-view .history-card button.rollback")
        .await?;
    let question = browser.dialog_text().await?;
    ensure!(
        question.contains("Roll back") && question.contains(&a),
        "the dialog says what happens: {question}"
    );
    browser.accept_dialog().await?;
    if let Err(e) = wait_configmap(&ns.name, "settings", "colour", "blue").await {
        let page = browser.texts("#toast, #detail-view .operation").await?;
        return Err(e.context(format!("the page shows {page:?}")));
    }
    browser
        .wait_for(
            "the page says it rolled back",
            "#detail-view .rolled-back",
            |t| t[0].contains("Rolled back"),
        )
        .await?;

    // The DORA card: three deployments (the rollback is one) this week, the
    // one rolled back from a failure.
    browser.execute("location.reload();", json!([])).await?;
    let dora = eventually(
        "the application's DORA chart: three deployments this week, one failed",
        Duration::from_secs(90),
        || async {
            let labels = browser
                .attributes("#detail-view .dora-card svg[role='img']", "aria-label")
                .await?;
            Ok(labels
                .iter()
                .any(|l| l.contains("2 good, 1 failed"))
                .then_some(labels))
        },
    )
    .await;
    if let Err(e) = dora {
        let api = plumb.get(&format!("/api/v1/dora?app={a}")).await?;
        let page = browser.texts("#detail-view .dora-card").await?;
        return Err(e.context(format!("the API says {api}; the page shows {page:?}")));
    }
    browser
        .wait_for("the DORA figures", "#detail-view .dora-card .stat", |t| {
            t.iter().any(|s| s.contains("deployments / day"))
        })
        .await?;

    // Escape leaves the page for the list, its filters still set.
    browser.type_text("body", "\u{E00C}").await?;
    // The application is synced now: OutOfSync matches nothing, until the
    // count is pressed again.
    browser
        .wait_for(
            "back on the filtered list",
            "#list-empty:not([hidden])",
            |t| t[0].contains("No application matches"),
        )
        .await?;
    ensure!(hash(&browser).await?.contains("label=env%3Dprod"));
    browser
        .click("#counts button[data-value='OutOfSync'][aria-pressed='true']")
        .await?;
    browser
        .wait_for(
            "the prod application, synced",
            "#app-rows .app-row",
            |rows| rows.len() == 1 && rows[0].contains(&a) && rows[0].contains("Synced"),
        )
        .await?;

    // All projects in the DORA view.
    browser.click("#nav-dora").await?;
    browser
        .wait_for("the DORA view", "#dora-view .card", |cards| {
            cards.iter().any(|c| c.contains("team-a"))
        })
        .await?;

    // A phone-width window: the list and the page fit, nothing sideways.
    browser.set_viewport(390, 844).await?;
    browser.goto(&format!("{}/?phone=1#/", plumb.url)).await?;
    browser
        .wait_for("the list on a phone", "#app-rows .app-row", |rows| {
            rows.len() == 2
        })
        .await?;
    ensure!(
        !overflows(&browser).await?,
        "the list scrolls sideways at 390px"
    );
    screenshot_sized(&browser, "ui-phone", (390, 844)).await?;
    browser
        .click(&format!("#app-rows a[href='#/apps/{a}']"))
        .await?;
    browser
        .wait_for("the page on a phone", "#detail-view .tree-node", |n| {
            n.len() > 3
        })
        .await?;
    ensure!(
        !overflows(&browser).await?,
        "the page scrolls sideways at 390px"
    );

    let body = browser.texts("body").await?.join("\n");
    ensure!(
        !body.contains(SECRET) && !body.contains(&encoded),
        "the page shows the Secret's value"
    );
    browser.assert_no_js_errors().await?;
    Ok(())
}

/// A condition in words: what went wrong and what to do.
#[tokio::test]
async fn a_condition_says_what_to_do() -> Result<()> {
    let ns = TestNamespace::new("ui-cond").await;
    ns.create().await?;
    let name = format!("lost-{}", &ns.name[ns.name.len() - 8..]);
    let repo = repo_with("blue", SECRET)?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &support::application(&name, &repo.url(), "no/such/folder", &ns.name, ""),
    )
    .await?;
    let browser = Browser::start().await?;
    browser
        .goto(&format!("{}/#/apps/{name}", plumb.url))
        .await?;
    let conditions = browser
        .wait_for(
            "the comparison error, in words",
            "#detail-view .conditions li[data-type='ComparisonError']",
            |c| c[0].contains("cannot compare Git with the cluster"),
        )
        .await
        .with_context(|| plumb.log_text())?;
    ensure!(
        conditions[0].contains("Refresh") && conditions[0].contains("ComparisonError:"),
        "it says what to do and keeps the message: {conditions:?}"
    );
    browser.assert_no_js_errors().await?;
    Ok(())
}

/// `argocd-cm` with a `viewer` account (API keys) and `argocd-rbac-cm`
/// with `policy.default: role:readonly`.
async fn accounts(ns: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ObjectMeta, PostParams};
    let api: Api<ConfigMap> = Api::namespaced(support::client().await, ns);
    for (name, data) in [
        ("argocd-cm", [("accounts.viewer", "apiKey")]),
        ("argocd-rbac-cm", [("policy.default", "role:readonly")]),
    ] {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await?;
    }
    Ok(())
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Value,
) -> Result<Value> {
    let r = http
        .request(method.clone(), url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    ensure!(status.is_success(), "{method} {url}: {status}: {body}");
    Ok(body)
}

#[tokio::test]
async fn a_read_only_user_is_not_offered_sync_rollback_or_delete() -> Result<()> {
    let ns = TestNamespace::new("ui-rbac").await;
    ns.create().await?;
    accounts(&ns.name).await?;
    let sfx = &ns.name[ns.name.len() - 8..];
    let (a, b) = (format!("shop-{sfx}"), format!("blog-{sfx}"));
    let repo = repo_with("blue", SECRET)?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_auth(
        work.path(),
        &apps_yaml(&a, &b, &repo.url(), &ns.name, true),
        &ns.name,
        &[],
    )
    .await?;
    let http = reqwest::Client::new();
    let password = eventually(
        "the initial admin password",
        Duration::from_secs(60),
        || async {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(support::client().await, &ns.name);
            Ok(api
                .get_opt("plumb-initial-admin-secret")
                .await?
                .and_then(|s| s.data)
                .and_then(|d| d.get("password").map(|p| p.0.clone()))
                .map(String::from_utf8)
                .transpose()?)
        },
    )
    .await?;
    let r = http
        .post(format!("{}/api/v1/session", plumb.url))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await?;
    let admin = r.json::<Value>().await?["token"]
        .as_str()
        .context("admin's session token")?
        .to_string();
    let viewer = call(
        &http,
        reqwest::Method::POST,
        &format!("{}/api/v1/account/viewer/token", plumb.url),
        &admin,
        json!({}),
    )
    .await?["token"]
        .as_str()
        .context("viewer's token")?
        .to_string();

    // Two deployments, so that the history has one to roll back to.
    eventually("the first deployment", Duration::from_secs(90), || async {
        let app = call(
            &http,
            reqwest::Method::GET,
            &format!("{}/api/v1/applications/{a}", plumb.url),
            &admin,
            Value::Null,
        )
        .await?;
        Ok((app["status"]["history"].as_array().map_or(0, Vec::len) == 1).then_some(()))
    })
    .await?;
    change(&repo, "green", "another-secret", "Settings: green")?;
    wait_configmap(&ns.name, "settings", "colour", "green").await?;

    // What can-i answers each.
    for (token, action, want) in [
        (&viewer, "get", "yes"),
        (&viewer, "sync", "no"),
        (&viewer, "delete", "no"),
        (&admin, "sync", "yes"),
    ] {
        let v = call(
            &http,
            reqwest::Method::GET,
            &format!(
                "{}/api/v1/account/can-i/applications/{action}/team-a/{a}",
                plumb.url
            ),
            token,
            Value::Null,
        )
        .await?;
        ensure!(v["value"] == want, "{action}: {v}");
    }

    let browser = Browser::start().await?;
    browser.goto(&format!("{}/", plumb.url)).await?;
    browser
        .wait_for("the login form", "#login-view:not([hidden]) h1", |t| {
            t[0].contains("Log in")
        })
        .await?;
    let page = format!("{}/?as=viewer#/apps/{a}", plumb.url);

    // The viewer reads the page, its history and its diff, and is offered
    // no sync, rollback or delete.
    browser.set_cookie("argocd.token", &viewer).await?;
    browser.goto(&page).await?;
    browser
        .wait_for(
            "the history of two",
            "#detail-view .history-card tbody tr",
            |rows| rows.len() == 2,
        )
        .await?;
    browser
        .wait_for("the read-only mark", "#detail-view .read-only", |t| {
            t[0] == "read-only"
        })
        .await?;
    for offered in [
        "button.sync",
        "button.delete",
        "button.rollback",
        "#opt-prune",
    ] {
        ensure!(
            browser
                .texts(&format!("#detail-view {offered}"))
                .await?
                .is_empty(),
            "the viewer is offered {offered}"
        );
    }
    ensure!(
        !browser
            .texts("#detail-view button.refresh")
            .await?
            .is_empty(),
        "refresh only reads: offered"
    );

    // admin is offered all of them.
    browser.set_cookie("argocd.token", &admin).await?;
    browser
        .goto(&format!("{}/?as=admin#/apps/{a}", plumb.url))
        .await?;
    browser
        .wait_for("admin's rollback", "#detail-view button.rollback", |t| {
            t[0].contains("Rollback")
        })
        .await?;
    for offered in ["button.sync", "button.delete", "#opt-prune"] {
        browser
            .wait_for(
                &format!("admin is offered {offered}"),
                &format!("#detail-view {offered}"),
                |_| true,
            )
            .await?;
    }
    ensure!(browser.texts("#detail-view .read-only").await?.is_empty());
    browser.assert_no_js_errors().await?;
    Ok(())
}
