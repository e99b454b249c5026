//! The web UI's list page with 10,000 applications, measured in a real
//! headless Chromium: time to the first rows and to a filtered view, read
//! from the page's own `performance.now()` over WebDriver.
//!
//! A benchmark target (`cargo bench --bench ui`), not part of the test
//! suite. Run it with `scripts/bench-ui [--apps N]`. `plumb serve`
//! gets the applications from an `--apps` file: most deploy a folder with
//! no manifests (Synced, Healthy, nothing in the cluster), one in ten a
//! missing folder (a ComparisonError), so that the shared control plane
//! gets no objects; labels, projects and namespaces vary for the filters.
//! `PLUMB_TEST_BIN` picks the `plumb` binary (a release build, say).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use support::browser::Browser;
use support::{GitRepo, Plumb, eventually};

fn apps_yaml(n: usize, repo: &str) -> String {
    let mut out = String::from(
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: team-a\nspec:\n  sourceRepos: ['*']\n  destinations: [{server: '*', namespace: '*'}]\n",
    );
    for i in 0..n {
        let path = if i % 10 == 9 { "missing" } else { "empty" };
        let project = if i % 2 == 0 { "team-a" } else { "default" };
        let env = ["prod", "staging", "dev"][i % 3];
        let _ = write!(
            out,
            "---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: app-{i:05}\n  labels:\n    team: t{team}\n    env: {env}\nspec:\n  project: {project}\n  source:\n    repoURL: {repo}\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: bench-ns-{ns}\n",
            team = i % 20,
            ns = i % 50,
        );
    }
    out
}

/// Applies a change to the filters and times it: until the list is
/// rendered, and until the frame after it.
const FILTER: &str = r#"
const [id, value, done] = arguments;
const input = document.getElementById(id);
const t0 = performance.now();
input.value = value;
input.dispatchEvent(new Event(input.tagName === 'SELECT' ? 'change' : 'input'));
const rendered = performance.now() - t0;
requestAnimationFrame(() => setTimeout(() => done({
  rendered, painted: performance.now() - t0,
  shown: Plumb.state.shown.length, rows: document.querySelectorAll('#app-rows .app-row').length,
}), 0));
"#;

const SCROLL: &str = r#"
const [fraction, done] = arguments;
const t0 = performance.now();
window.scrollTo(0, document.documentElement.scrollHeight * fraction);
requestAnimationFrame(() => setTimeout(() => done({
  painted: performance.now() - t0,
  rows: document.querySelectorAll('#app-rows .app-row').length,
  first: (document.querySelector('#app-rows .app-row a') || {}).textContent,
}), 0));
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let n: usize = std::env::var("PLUMB_BENCH_UI_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let repo = GitRepo::new(None)?;
    repo.write("empty/README.md", "No manifests here.\n")?;
    repo.commit("an empty folder")?;
    let work = tempfile::tempdir()?;
    let started = Instant::now();
    // A long poll interval: the bench measures the page, not the polling.
    let plumb = Plumb::start_polling_every(work.path(), &apps_yaml(n, &repo.url()), 600).await?;
    eventually(
        "every application is compared",
        Duration::from_secs(1200),
        || async {
            let list = plumb.get("/api/v1/applications").await?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            // Every application but the ones of the missing folder
            // (Unknown for good) has been compared.
            let compared = items
                .iter()
                .filter(|a| {
                    a["status"]["sync"]["status"]
                        .as_str()
                        .is_some_and(|s| s != "Unknown")
                })
                .count();
            Ok(
                (items.len() == n && compared == (0..n).filter(|i| i % 10 != 9).count())
                    .then_some(()),
            )
        },
    )
    .await?;
    let ready = started.elapsed();
    let bytes = reqwest::get(format!("{}/api/v1/applications", plumb.url))
        .await?
        .bytes()
        .await?
        .len();

    let browser = Browser::start().await?;
    browser.set_viewport(1280, 720).await?;
    let mut loads = Vec::new();
    for round in 0..3 {
        browser
            .goto(&format!("{}/?round={round}#/", plumb.url))
            .await?;
        let perf = eventually("the first rows", Duration::from_secs(120), || async {
            let p = browser
                .execute("return window.Plumb && Plumb.state.perf;", json!([]))
                .await?;
            Ok((!p["firstRows"].is_null() && !p["listLoaded"].is_null()).then_some(p))
        })
        .await?;
        loads.push(perf);
    }
    let first = |key: &str| {
        median(
            loads
                .iter()
                .map(|p| p[key].as_f64().unwrap_or(0.0))
                .collect(),
        )
    };
    let mut rows = Vec::new();
    let mut timed = |what: &str, results: Vec<Value>| {
        let rendered = median(
            results
                .iter()
                .map(|r| r["rendered"].as_f64().unwrap_or(0.0))
                .collect(),
        );
        let painted = median(
            results
                .iter()
                .map(|r| r["painted"].as_f64().unwrap_or(0.0))
                .collect(),
        );
        let last = results.last().cloned().unwrap_or_default();
        rows.push(format!(
            "| {what} | {rendered:.1} | {painted:.1} | {} | {} |",
            last["shown"], last["rows"]
        ));
    };
    for (what, id, value) in [
        ("text `app-0421`", "filter", "app-0421"),
        ("clear the text", "filter", ""),
        ("label `team=t7,env=prod`", "f-label", "team=t7,env=prod"),
        ("clear the label", "f-label", ""),
        ("sync status `Unknown`", "f-sync", "Unknown"),
        ("all again", "f-sync", ""),
    ] {
        let mut results = Vec::new();
        for _ in 0..5 {
            // From the view before, each time.
            if !value.is_empty() {
                browser.execute_async(FILTER, json!([id, "",])).await?;
            }
            results.push(browser.execute_async(FILTER, json!([id, value])).await?);
        }
        timed(what, results);
    }
    let mut scrolls = Vec::new();
    for fraction in [0.5, 0.9, 0.1, 0.7, 0.3] {
        scrolls.push(browser.execute_async(SCROLL, json!([fraction])).await?);
    }
    let scroll = median(
        scrolls
            .iter()
            .map(|r| r["painted"].as_f64().unwrap_or(0.0))
            .collect(),
    );
    browser.assert_no_js_errors().await?;

    let mut report = format!(
        "## Web UI list page, {n} applications\n\n\
         `plumb serve` ready (all compared) after {:.1} s; `GET /api/v1/applications` is {:.1} MB.\n\
         Headless Chromium, viewport 1280x720, median of 3 loads (ms since navigation start):\n\n\
         | first rows rendered | list fetched and parsed |\n|---|---|\n| {:.0} | {:.0} |\n\n\
         (The first rows may come from the event stream, which starts with every application, before the list's answer.)\n\n\
         Filters (median of 5, ms): until rendered / until the next frame; applications shown; rows in the DOM\n\n\
         | change | rendered | next frame | shown | rows in DOM |\n|---|---|---|---|---|\n{}\n\n\
         Scrolling to another part of the list (median of 5): {scroll:.1} ms to the next frame.\n",
        ready.as_secs_f64(),
        bytes as f64 / 1e6,
        first("firstRows"),
        first("listLoaded"),
        rows.join("\n"),
    );
    report.push_str(&format!(
        "\nrows on screen after the last scroll: {}\n",
        scrolls.last().cloned().unwrap_or_default()["rows"]
    ));
    println!("{report}");
    let dir = support::root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("ui-{n}.md")), report)?;
    Ok(())
}
