//! A real headless Chromium driven through chromedriver's WebDriver HTTP
//! protocol, for the web UI's end-to-end tests. Only the handful of
//! commands the tests use: open a page, read the text and attributes of
//! the elements a CSS selector matches, click, type, answer a dialog, size
//! the viewport and take a screenshot.
//!
//! Every page it opens records its JavaScript errors (`error` events,
//! unhandled promise rejections, `console.error`, content security policy
//! violations); [`Browser::assert_no_js_errors`] fails a test that saw any.
//!
//! `scripts/browser` installs Chromium and chromedriver (Debian's
//! `chromium` and `chromium-driver`). A test that needs them fails when
//! they are missing; it never skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use serde_json::{Value, json};

use super::{eventually, free_port};

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Run in every document before its own scripts: collects what would show
/// as an error in the console into `window.__plumbErrors`.
const ERROR_TRAP: &str = r#"
window.__plumbErrors = [];
const note = (text) => window.__plumbErrors.push(String(text));
window.addEventListener('error', (e) => {
  const t = e.target;
  note(t && t !== window && (t.src || t.href) ? `failed to load ${t.src || t.href}`
    : `${e.message} at ${e.filename}:${e.lineno}:${e.colno}`);
}, true);
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  note(`unhandled rejection: ${r && (r.stack || r.message) || r}`);
});
window.addEventListener('securitypolicyviolation', (e) => {
  note(`content security policy: ${e.violatedDirective} blocked ${e.blockedURI}`);
});
const consoleError = console.error.bind(console);
console.error = (...args) => { note(`console.error: ${args.map(String).join(' ')}`); consoleError(...args); };
"#;

/// A chromedriver process and one browser session, both ended when dropped.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
    /// The errors of pages left behind (a navigation ends their record).
    errors: Mutex<Vec<String>>,
}

fn binary(variable: &str, default: &str) -> Result<PathBuf> {
    let path = PathBuf::from(std::env::var(variable).unwrap_or_else(|_| default.to_string()));
    if !path.is_file() {
        bail!(
            "the web UI's end-to-end test needs {} (set {variable} to use another); \
             install Chromium and chromedriver with `scripts/browser` \
             (apt-get install chromium chromium-driver)",
            path.display()
        );
    }
    Ok(path)
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    ///
    /// # Errors
    /// When Chromium or chromedriver is missing or does not start.
    pub async fn start() -> Result<Browser> {
        let driver_bin = binary("PLUMB_CHROMEDRIVER", "/usr/bin/chromedriver")?;
        let chromium = binary("PLUMB_CHROMIUM", "/usr/bin/chromium")?;
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", driver_bin.display()))?;
        let profile = tempfile::tempdir()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        // From here on the driver is killed if anything fails.
        let mut browser = Browser {
            http,
            session: String::new(),
            driver,
            _profile: profile,
            errors: Mutex::new(Vec::new()),
        };
        eventually("chromedriver is ready", Duration::from_secs(30), || {
            let (http, status) = (browser.http.clone(), format!("{base}/status"));
            async move {
                let Ok(r) = http.get(&status).send().await else {
                    return Ok(None);
                };
                let body: Value = r.json().await.unwrap_or_default();
                Ok((body.pointer("/value/ready") == Some(&Value::Bool(true))).then_some(()))
            }
        })
        .await?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Dialogs stay open until the test answers them.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root in a container has no user namespaces for the sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        }}});
        let answer = browser
            .call(
                reqwest::Method::POST,
                &format!("{base}/session"),
                Some(capabilities),
            )
            .await
            .context("chromedriver cannot start a Chromium session")?;
        let id = answer
            .get("sessionId")
            .and_then(Value::as_str)
            .context("the new session has an id")?;
        browser.session = format!("{base}/session/{id}");
        browser
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": ERROR_TRAP }),
            )
            .await
            .context("cannot install the JavaScript error trap")?;
        Ok(browser)
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    /// Makes the page's viewport `width` x `height` CSS pixels (the
    /// window's own size includes no browser chrome in headless mode, but
    /// emulation is exact).
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<()> {
        let mobile = width < 600;
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await?;
        Ok(())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("a screenshot is base64 text")?)?;
        ensure!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        Ok(png)
    }

    /// The JavaScript errors of this page and of those opened before it.
    pub async fn js_errors(&self) -> Result<Vec<String>> {
        let mut all = self.errors.lock().expect("not poisoned").clone();
        all.extend(self.page_errors().await?);
        Ok(all)
    }

    async fn page_errors(&self) -> Result<Vec<String>> {
        let v = self
            .execute("return window.__plumbErrors || [];", json!([]))
            .await?;
        Ok(strings(&v))
    }

    /// Fails when any page showed a JavaScript error.
    pub async fn assert_no_js_errors(&self) -> Result<()> {
        let errors = self.js_errors().await?;
        ensure!(
            errors.is_empty(),
            "the page showed JavaScript errors:\n{}",
            errors.join("\n")
        );
        Ok(())
    }

    /// One WebDriver command; returns its `value`.
    async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self.http.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(&body);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let r = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("{method} {url}"))?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "WebDriver {method} {url}: {status}: {} {}",
                value["error"].as_str().unwrap_or_default(),
                value["message"].as_str().unwrap_or_default()
            );
        }
        Ok(value)
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        self.call(method, &format!("{}{path}", self.session), body)
            .await
    }

    /// Opens `url` (keeping the errors the page before it recorded).
    pub async fn goto(&self, url: &str) -> Result<()> {
        if let Ok(errors) = self.page_errors().await {
            self.errors.lock().expect("not poisoned").extend(errors);
        }
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    /// The page's URL.
    pub async fn url(&self) -> Result<String> {
        let v = self.command(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page
    /// and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script` asynchronously: it ends by calling the last of its
    /// `arguments` with the result.
    pub async fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The rendered text of every element matching a CSS selector, in
    /// document order, read at one instant (the page re-renders as events
    /// arrive, so element references go stale between commands).
    pub async fn texts(&self, css: &str) -> Result<Vec<String>> {
        let v = self
            .execute(
                "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText);",
                json!([css]),
            )
            .await?;
        Ok(strings(&v))
    }

    /// An attribute of every element matching a CSS selector that has it.
    pub async fn attributes(&self, css: &str, name: &str) -> Result<Vec<String>> {
        let v = self
            .execute(
                "return [...document.querySelectorAll(arguments[0])]\
                   .map((e) => e.getAttribute(arguments[1])).filter((a) => a !== null);",
                json!([css, name]),
            )
            .await?;
        Ok(strings(&v))
    }

    /// Clicks the first element matching a CSS selector as a user would,
    /// waiting for one (and finding it again when a re-render replaced it).
    pub async fn click(&self, css: &str) -> Result<()> {
        eventually(
            &format!("`{css}` can be clicked"),
            Duration::from_secs(30),
            || async {
                let found = self
                    .command(
                        reqwest::Method::POST,
                        "/elements",
                        Some(json!({"using": "css selector", "value": css})),
                    )
                    .await?;
                let Some(id) = found
                    .get(0)
                    .and_then(|e| e.get(ELEMENT))
                    .and_then(Value::as_str)
                else {
                    return Ok(None);
                };
                // In the middle of the viewport, clear of the sticky top bar
                // (WebDriver scrolls only what is out of view).
                self.execute(
                    "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});",
                    json!([{ ELEMENT: id }]),
                )
                .await?;
                // An error (a re-render replaced the element) is tried again.
                self.command(reqwest::Method::POST, &format!("/element/{id}/click"), None)
                    .await
                    .map(|_| Some(()))
            },
        )
        .await
    }

    /// Sets a cookie of the page's site (open a page of it first).
    pub async fn set_cookie(&self, name: &str, value: &str) -> Result<()> {
        self.command(
            reqwest::Method::POST,
            "/cookie",
            Some(json!({"cookie": {"name": name, "value": value, "path": "/"}})),
        )
        .await?;
        Ok(())
    }

    /// Types `text` into the first element matching `css` as a user would
    /// (WebDriver's key codes, e.g. `\u{E007}` for Enter, work too).
    pub async fn type_text(&self, css: &str, text: &str) -> Result<()> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("no element `{css}`"))?;
        let id = found
            .get(ELEMENT)
            .and_then(Value::as_str)
            .context("an element reference")?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    /// Picks `value` in the `<select>` matching `css`, as a change by the user.
    pub async fn select(&self, css: &str, value: &str) -> Result<()> {
        let done = self
            .execute(
                "const s = document.querySelector(arguments[0]);\
                 if (!s || ![...s.options].some((o) => o.value === arguments[1])) return false;\
                 s.value = arguments[1]; s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
                json!([css, value]),
            )
            .await?;
        ensure!(done == Value::Bool(true), "no option {value:?} in `{css}`");
        Ok(())
    }

    /// Waits until elements matching `css` exist and `accept` takes their
    /// texts; returns the texts.
    pub async fn wait_for<F>(&self, what: &str, css: &str, accept: F) -> Result<Vec<String>>
    where
        F: Fn(&[String]) -> bool,
    {
        let accept = &accept;
        let found = eventually(what, Duration::from_secs(90), || async move {
            let texts = self.texts(css).await?;
            Ok((!texts.is_empty() && accept(&texts)).then_some(texts))
        })
        .await;
        match found {
            Ok(found) => Ok(found),
            Err(e) => {
                let page = self
                    .texts("body")
                    .await
                    .map(|t| t.join("\n"))
                    .unwrap_or_else(|e| format!("{e:#}"));
                Err(e.context(format!("waiting for `{css}`; the page shows:\n{page}")))
            }
        }
    }

    /// The text of the open dialog (`alert`, `confirm`), waiting for one.
    pub async fn dialog_text(&self) -> Result<String> {
        eventually("a dialog opens", Duration::from_secs(30), || async {
            Ok(self
                .command(reqwest::Method::GET, "/alert/text", None)
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_string)))
        })
        .await
    }

    /// Answers the open dialog with OK.
    pub async fn accept_dialog(&self) -> Result<()> {
        self.command(reqwest::Method::POST, "/alert/accept", None)
            .await?;
        Ok(())
    }
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium; killing
        // chromedriver alone would leave Chromium running. Drop cannot
        // await, and a blocking client cannot run on the runtime's thread.
        if !self.session.is_empty() {
            let session = self.session.clone();
            let _ = std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .ok()?;
                client.delete(session).send().ok()
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
