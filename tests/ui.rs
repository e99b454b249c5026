//! The web UI end to end, in a real headless Chromium driven over
//! WebDriver: the ApplicationSets view (a set, its applications, a held
//! deletion confirmed from the page), a parent application's children, and
//! an operation's hooks as they run, against a real `plumb serve` on the real local control plane.
//!
//! Each test fails when the page showed a JavaScript error. With
//! `PLUMB_SCREENSHOTS=DIR` the ApplicationSets view's screenshot (1280x720)
//! goes into DIR.
//!
//! Needs Chromium and chromedriver (`scripts/browser` installs them); fails
//! when they are missing.

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::browser::Browser;
use support::{GitRepo, Plumb, TestNamespace, applications, appsets, eventually};

const WAIT: Duration = Duration::from_secs(90);

/// Creates or replaces an object of `ar` from JSON (server-side apply).
async fn apply(ar: &kube::core::ApiResource, ns: &str, value: Value) -> Result<()> {
    let name = value["metadata"]["name"]
        .as_str()
        .context("a name")?
        .to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, ar);
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

/// An ApplicationSet whose list generator makes `<name>-<n>` from
/// `apps/<n>` for each of `names`.
fn appset(name: &str, names: &[&str], repo: &str, dest: &str) -> Value {
    let elements: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": name},
        "spec": {
            "generators": [{"list": {"elements": elements}}],
            "template": {
                "metadata": {"name": format!("{name}-{{{{name}}}}")},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo, "targetRevision": "main", "path": "apps/{{name}}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                    "syncPolicy": {"automated": {"prune": true}}
                }
            }
        }
    })
}

/// An Application object deploying `path` of `repo` to `dest`, automated.
fn application(name: &str, namespace: &str, repo: &str, path: &str, dest: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
            "syncPolicy": {"automated": {"prune": true}}
        }
    })
}

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  from: {name}\n")
}

/// The server's log without the ApplicationSet passes' lines, which a
/// failure's own context would otherwise be all of.
fn log_excerpt(plumb: &Plumb) -> String {
    let log = plumb.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("ApplicationSet pass"))
        .collect();
    format!(
        "plumb log (without ApplicationSet passes):\n{}",
        lines[lines.len().saturating_sub(80)..].join("\n")
    )
}

/// What the API shows of a set, and the server's log: a failure's context.
async fn api_view(plumb: &Plumb, set_name: &str) -> String {
    let api = plumb
        .get(&format!("/api/v1/applicationsets/{set_name}"))
        .await
        .map(|v| v["status"].to_string())
        .unwrap_or_else(|e| e.to_string());
    format!("the API shows: {api}\n{}", log_excerpt(plumb))
}

#[tokio::test]
async fn the_ui_shows_applicationsets_with_their_applications_and_a_parents_children() -> Result<()>
{
    let apps_ns = TestNamespace::new("ui-apps").await;
    apps_ns.create().await?;
    let dest = TestNamespace::new("ui-dest").await;
    dest.create().await?;
    // kid-b lives in another namespace of --app-namespaces: the UI names it
    // NAMESPACE/NAME and finds its page.
    let team = TestNamespace::new("ui-team").await;
    team.create().await?;
    // Tracking ids hold application names, and other tests' namespaces may
    // still be going away: names of this test's own.
    let sfx = &apps_ns.name[apps_ns.name.len() - 8..];
    let set_name = format!("uiset-{sfx}");
    let (one, two) = (format!("{set_name}-one"), format!("{set_name}-two"));
    let parent = format!("parent-{sfx}");
    let (kid_a, kid_b) = (format!("kid-a-{sfx}"), format!("kid-b-{sfx}"));

    // One repository: two folders for the set's applications, two for the
    // children, and the parent's folder of child Applications.
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    for n in ["one", "two"] {
        repo.write(
            &format!("apps/{n}/cm.yaml"),
            &configmap(&format!("set-{n}")),
        )?;
    }
    for (kid, kid_ns) in [(&kid_a, &apps_ns.name), (&kid_b, &team.name)] {
        repo.write(&format!("kids/{kid}/cm.yaml"), &configmap(kid))?;
        let child = application(kid, kid_ns, &url, &format!("kids/{kid}"), &dest.name);
        repo.write(
            &format!("parent/{kid}.yaml"),
            &serde_yaml::to_string(&child)?,
        )?;
    }
    repo.commit("apps")?;

    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching_with_args(
        work.path(),
        "",
        &apps_ns.name,
        &["--app-namespaces", &team.name],
    )
    .await?;
    let team_kid_b = format!("{}/{kid_b}", team.name);
    apply(
        &appsets(),
        &apps_ns.name,
        appset(&set_name, &["one", "two"], &url, &dest.name),
    )
    .await?;
    apply(
        &applications(),
        &apps_ns.name,
        application(&parent, &apps_ns.name, &url, "parent", &apps_ns.name),
    )
    .await?;
    for name in [&one, &two, &parent, &kid_a, &team_kid_b] {
        if let Err(e) = plumb.wait_status(name, "Synced", Some("Healthy")).await {
            let doc = plumb.app(name).await.unwrap_or_default();
            return Err(e.context(format!("{name}: {}", doc["status"])));
        }
    }

    let browser = Browser::start().await?;
    browser.goto(&format!("{}/", plumb.url)).await?;
    let rows = browser
        .wait_for("the applications list", "#app-rows .app-row", |rows| {
            rows.len() >= 5
        })
        .await?;
    ensure!(
        rows.iter().any(|r| r.contains(&team_kid_b)),
        "the list names the application of the other namespace NAMESPACE/NAME: {rows:?}"
    );

    // The ApplicationSets view, reached from the navigation: the set, its
    // state and its applications with their sync and health.
    browser.click("#nav-appsets").await?;
    let set = format!(r#"section.appset[data-appset="{set_name}"]"#);
    browser
        .wait_for(
            "the set is up to date",
            &format!("{set} .appset-head"),
            |t| t[0].contains(&set_name) && t[0].contains("Up to date"),
        )
        .await?;
    let rows = browser
        .wait_for(
            "the set lists its applications, synced and healthy",
            &format!("{set} .appset-apps tbody tr"),
            |rows| {
                rows.len() == 2
                    && rows
                        .iter()
                        .all(|r| r.contains("Synced") && r.contains("Healthy"))
            },
        )
        .await?;
    ensure!(rows[0].contains(&one) && rows[1].contains(&two), "{rows:?}");
    let links = browser
        .attributes(&format!("{set} .appset-apps tbody a"), "href")
        .await?;
    ensure!(
        links.iter().any(|h| h.ends_with(&format!("#/apps/{one}")))
            && links.iter().any(|h| h.ends_with(&format!("#/apps/{two}"))),
        "each application links to its page: {links:?}"
    );
    // Its generator's parameters: the list's elements.
    browser
        .click(&format!("{set} details.generators summary"))
        .await?;
    let generator = browser
        .wait_for(
            "the set's generator",
            &format!("{set} .generator[data-generator='list']"),
            |t| t[0].contains("one") && t[0].contains("two"),
        )
        .await?;
    ensure!(
        generator[0].to_lowercase().contains("name"),
        "the parameter's name heads its column: {generator:?}"
    );
    browser.set_viewport(1280, 720).await?;
    let png = browser.screenshot().await?;
    if let Ok(dir) = std::env::var("PLUMB_SCREENSHOTS") {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(format!("{dir}/ui-appsets.png"), png)?;
    }
    let conditions = browser
        .wait_for(
            "the set's conditions",
            &format!("{set} .conditions li"),
            |c| c.iter().any(|c| c.contains("ResourcesUpToDate")),
        )
        .await?;
    ensure!(
        !conditions.iter().any(|c| c.contains("DeletionHeld")),
        "{conditions:?}"
    );

    // An application's link leads to its page, which links back to its set.
    browser
        .click(&format!("{set} a[href='#/apps/{one}']"))
        .await?;
    browser
        .wait_for("the application's page", "#detail-view h1", |t| t[0] == one)
        .await?;
    browser
        .wait_for("the link to the set", "#detail-view a.generated-by", |t| {
            t[0] == set_name
        })
        .await?;
    browser.click("#detail-view a.generated-by").await?;
    browser
        .wait_for(
            "the set's own page",
            "#appsets-view section.appset",
            |sets| sets.len() == 1 && sets[0].contains(&set_name),
        )
        .await?;
    ensure!(
        browser
            .url()
            .await?
            .ends_with(&format!("#/appsets/{set_name}"))
    );

    // The parent's page lists its children with their own sync and health,
    // each linking to its page; an application without children has no
    // such section.
    browser
        .goto(&format!("{}/#/apps/{parent}", plumb.url))
        .await?;
    let children = browser
        .wait_for("the parent's children", "#detail-view tr.child", |rows| {
            rows.len() == 2
                && rows
                    .iter()
                    .all(|r| r.contains("Synced") && r.contains("Healthy"))
        })
        .await?;
    ensure!(
        children[0].contains(&kid_a) && children[1].contains(&kid_b),
        "{children:?}"
    );
    // The tree draws both children as nodes of the graph, each linking to
    // its page.
    let kids = browser
        .wait_for(
            "the children in the resource tree",
            "#detail-view a.tree-node.child-app",
            |nodes| {
                nodes.len() == 2
                    && nodes
                        .iter()
                        .all(|n| n.contains("Synced") && n.contains("Healthy"))
            },
        )
        .await?;
    ensure!(
        kids.iter().any(|n| n.contains(&kid_a)) && kids.iter().any(|n| n.contains(&kid_b)),
        "{kids:?}"
    );
    let titles = browser.texts("#detail-view .card h2").await?;
    ensure!(
        titles.iter().any(|t| t.eq_ignore_ascii_case("Children")),
        "{titles:?}"
    );
    browser
        .click(&format!(
            "#detail-view tr.child a[href='#/apps/{}%2F{kid_b}']",
            team.name
        ))
        .await?;
    browser
        .wait_for("the child's page", "#detail-view h1", |t| {
            t[0] == team_kid_b
        })
        .await?;
    browser
        .wait_for("the child's summary", "#detail-view .fields", |t| {
            !t[0].is_empty()
        })
        .await?;
    ensure!(
        browser.texts("#detail-view tr.child").await?.is_empty(),
        "a child without children shows none"
    );
    ensure!(
        browser
            .texts("#detail-view a.generated-by")
            .await?
            .is_empty()
    );

    // Emptying the list would delete every application of the set: held.
    // The page shows why and confirms it, after asking.
    apply(
        &appsets(),
        &apps_ns.name,
        appset(&set_name, &[], &url, &dest.name),
    )
    .await?;
    browser
        .goto(&format!("{}/#/appsets/{set_name}", plumb.url))
        .await?;
    browser
        .wait_for("the held deletion", &format!("{set} li.held"), |t| {
            t[0].contains("DeletionHeld") && t[0].contains("would delete 2 of the 2")
        })
        .await?;
    browser
        .wait_for("the set's state", &format!("{set} .appset-head"), |t| {
            t[0].contains("DeletionHeld")
        })
        .await?;
    browser
        .click(&format!("{set} li.held button.confirm-deletion"))
        .await?;
    let question = browser.dialog_text().await?;
    ensure!(
        question.contains(&set_name) && question.contains("would delete 2 of the 2"),
        "the dialog says what is deleted: {question}"
    );
    browser.accept_dialog().await?;
    eventually("the set's applications are deleted", WAIT, || async {
        let items = plumb.get("/api/v1/applications").await?;
        let left = items["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["metadata"]["name"] == one.as_str() || a["metadata"]["name"] == two.as_str()
            })
            .count();
        Ok((left == 0).then_some(()))
    })
    .await
    .with_context(|| log_excerpt(&plumb))?;
    // The page as it is, without a reload, lets them go too: no answer of
    // a request sent before a deletion brings a deleted application back.
    let live = browser
        .wait_for("the live view lets the applications go", &set, |t| {
            t[0].contains("No applications generated") && !t[0].contains("DeletionHeld")
        })
        .await;
    if let Err(e) = live {
        return Err(e.context(api_view(&plumb, &set_name).await));
    }
    // And so does a fresh load of the page, once the set's status is empty.
    eventually(
        "the API shows the set without applications",
        Duration::from_secs(90),
        || async {
            let set = plumb
                .get(&format!("/api/v1/applicationsets/{set_name}"))
                .await?;
            let none = set["status"]["resources"]
                .as_array()
                .is_none_or(Vec::is_empty);
            Ok(none.then_some(()))
        },
    )
    .await?;
    // A query string makes it a new document, not a move within the page.
    browser
        .goto(&format!("{}/?fresh=1#/appsets/{set_name}", plumb.url))
        .await?;
    let gone = browser
        .wait_for("the set has no applications left", &set, |t| {
            t[0].contains("No applications generated") && !t[0].contains("DeletionHeld")
        })
        .await;
    if let Err(e) = gone {
        return Err(e.context(api_view(&plumb, &set_name).await));
    }
    browser.assert_no_js_errors().await?;
    Ok(())
}

/// The application's page shows the operation step by step: a PreSync hook
/// Running while it waits, then Succeeded, then the objects the sync
/// applied after it. The hook is a Deployment whose image cannot be pulled
/// (the node simulator never pulls from `.invalid`) until the test changes
/// it: Progressing for as long as the test needs. (This API server, 1.20,
/// has no `suspend` for Jobs.)
#[tokio::test]
async fn the_operation_card_shows_a_hook_running_then_succeeded() -> Result<()> {
    let ns = TestNamespace::new("ui-hook").await;
    ns.create().await?;
    let name = format!("uihook-{}", &ns.name[ns.name.len() - 8..]);
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/migrate.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: warmup\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: warmup}\n  template:\n    metadata:\n      labels: {app: warmup}\n    spec:\n      containers:\n        - name: main\n          image: registry.invalid/warmup:1\n",
    )?;
    repo.write("app/settings.yaml", &configmap("settings"))?;
    repo.commit("a warm-up before the settings")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &support::application(&name, &repo.url(), "app", &ns.name, ""),
    )
    .await?;
    plumb.wait_status(&name, "OutOfSync", None).await?;

    let browser = Browser::start().await?;
    browser
        .goto(&format!("{}/#/apps/{name}", plumb.url))
        .await?;
    browser
        .wait_for("the application's page", "#detail-view h1", |t| {
            t[0] == name
        })
        .await?;
    browser.click("#detail-view button.primary").await?;
    let rows = browser
        .wait_for(
            "the hook is shown running",
            "#detail-view tr.op-result",
            |rows| {
                rows.iter().any(|r| {
                    r.contains("warmup") && r.contains("Running") && r.contains("PreSync hook")
                })
            },
        )
        .await
        .with_context(|| log_excerpt(&plumb))?;
    ensure!(
        !rows.iter().any(|r| r.contains("settings")),
        "nothing after the hook is applied yet: {rows:?}"
    );
    browser
        .wait_for(
            "the operation says what it waits for",
            "#detail-view .card p",
            |t| {
                t.iter()
                    .any(|p| p.contains("Running") && p.contains("Deployment warmup"))
            },
        )
        .await?;

    // Its image can now be pulled: the hook becomes Healthy and succeeds,
    // then the settings are applied.
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &ns.name,
        &support::resource("apps", "v1", "Deployment", "deployments"),
    );
    deployments
        .patch(
            "warmup",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": "busybox:1.36"}
            ]}}}})),
        )
        .await?;
    let rows = browser
        .wait_for(
            "the hook succeeded and the settings are applied",
            "#detail-view tr.op-result",
            |rows| {
                rows.iter()
                    .any(|r| r.contains("warmup") && r.contains("Succeeded"))
                    && rows
                        .iter()
                        .any(|r| r.contains("settings") && r.contains("Synced"))
            },
        )
        .await
        .with_context(|| log_excerpt(&plumb))?;
    let hook = rows.iter().position(|r| r.contains("warmup"));
    let settings = rows.iter().position(|r| r.contains("settings"));
    ensure!(hook < settings, "the hook comes first: {rows:?}");
    browser
        .wait_for("the operation succeeded", "#detail-view .card p", |t| {
            t.iter().any(|p| p.contains("Succeeded"))
        })
        .await?;
    browser.assert_no_js_errors().await?;
    Ok(())
}

/// A RollingSync's steps on the set's own page: each step's selector and
/// the applications it moves, with where they are; and the list
/// generator's parameters.
#[tokio::test]
async fn the_appset_page_shows_a_rolling_syncs_steps_and_its_parameters() -> Result<()> {
    let apps_ns = TestNamespace::new("ui-roll").await;
    apps_ns.create().await?;
    let dest = TestNamespace::new("ui-roll-dest").await;
    dest.create().await?;
    let sfx = &apps_ns.name[apps_ns.name.len() - 8..];
    let set_name = format!("roll-{sfx}");
    let repo = GitRepo::new(None)?;
    for env in ["dev", "prod"] {
        repo.write(
            &format!("envs/{env}/cm.yaml"),
            &configmap(&format!("{set_name}-{env}")),
        )?;
    }
    repo.commit("two environments")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;
    let step = |env: &str| json!({"matchExpressions": [{"key": "env", "operator": "In", "values": [env]}]});
    apply(
        &appsets(),
        &apps_ns.name,
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": set_name},
            "spec": {
                "strategy": {"type": "RollingSync", "rollingSync": {"steps": [step("dev"), step("prod")]}},
                "generators": [{"list": {"elements": [{"env": "dev"}, {"env": "prod"}]}}],
                "template": {
                    "metadata": {"name": format!("{set_name}-{{{{env}}}}"), "labels": {"env": "{{env}}"}},
                    "spec": {"project": "default",
                             "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "envs/{{env}}"},
                             "destination": {"server": "https://kubernetes.default.svc", "namespace": dest.name},
                             "syncPolicy": {"automated": {"prune": true}}}
                }
            }
        }),
    )
    .await?;
    for env in ["dev", "prod"] {
        plumb
            .wait_status(&format!("{set_name}-{env}"), "Synced", Some("Healthy"))
            .await?;
    }

    let browser = Browser::start().await?;
    browser
        .goto(&format!("{}/#/appsets/{set_name}", plumb.url))
        .await?;
    let set = format!(r#"section.appset[data-appset="{set_name}"]"#);
    let steps = browser
        .wait_for("the two steps", &format!("{set} li.step"), |steps| {
            steps.len() == 2
                && steps[0].contains("env In (dev)")
                && steps[0].contains(&format!("{set_name}-dev"))
                && steps[1].contains("env In (prod)")
                && steps[1].contains(&format!("{set_name}-prod"))
        })
        .await
        .with_context(|| log_excerpt(&plumb))?;
    ensure!(
        steps.iter().all(|s| s.contains("Healthy")),
        "both steps are done: {steps:?}"
    );
    // On the set's own page its generators are open: the list's elements.
    browser
        .wait_for(
            "the generator's parameters",
            &format!("{set} .generator[data-generator='list'] tbody tr"),
            |rows| rows.len() == 2 && rows[0] == "dev" && rows[1] == "prod",
        )
        .await?;
    browser.assert_no_js_errors().await?;
    Ok(())
}
