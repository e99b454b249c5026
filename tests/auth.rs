//! Authentication and RBAC end to end, against a real `plumb serve` on the
//! real local control plane: the generated admin password, logins (Bearer
//! and cookie), Argo CD's `argocd-cm` accounts and `argocd-rbac-cm`
//! policy, account tokens and their revocation, project role tokens, the
//! CLI's login and tokens, `/metrics` open or closed, the web UI's login
//! in headless Chromium, and that no secret reaches the log or an answer.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::{Value, json};
use support::browser::Browser;
use support::{GitRepo, Plumb, TestNamespace, eventually};

const WAIT: Duration = Duration::from_secs(90);

/// A ConfigMap with `data` in `ns`, created.
async fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(support::client().await, ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm).await?;
    Ok(())
}

/// A key of a Secret in `ns`, decoded.
async fn secret_value(ns: &str, name: &str, key: &str) -> Result<Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(support::client().await, ns);
    let secret = api.get(name).await?;
    secret
        .data
        .and_then(|d| d.get(key).map(|v| v.0.clone()))
        .with_context(|| format!("Secret {name} has no {key}"))
}

/// The `--apps` file: projects team-a (with a role `deploy` that may sync
/// and get team-a's applications) and team-b, and one application in
/// each, both deploying a ConfigMap to `dest`.
fn apps_yaml(a: &str, b: &str, repo: &str, dest: &str) -> String {
    let project = |name: &str, roles: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: {name}\nspec:\n  sourceRepos: ['*']\n  destinations: [{{server: '*', namespace: '*'}}]\n{roles}---\n"
        )
    };
    let role = "  roles:\n    - name: deploy\n      policies:\n        - p, proj:team-a:deploy, applications, sync, team-a/*, allow\n        - p, proj:team-a:deploy, applications, get, team-a/*, allow\n        - p, proj:team-a:deploy, applications, sync, team-b/*, allow\n";
    let app = |name: &str, project: &str, path: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  project: {project}\n  source:\n    repoURL: {repo}\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {dest}\n"
        )
    };
    format!(
        "{}{}{}---\n{}",
        project("team-a", role),
        project("team-b", ""),
        app(a, "team-a", "a"),
        app(b, "team-b", "b"),
    )
}

/// An HTTP client of one server that keeps every answer's text (for the
/// check that no secret is in one).
struct Http {
    base: String,
    http: reqwest::Client,
    answers: std::sync::Mutex<Vec<String>>,
}

/// How a request authenticates.
enum As<'a> {
    Nobody,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Http {
    fn new(base: &str) -> Http {
        Http {
            base: base.to_string(),
            http: reqwest::Client::new(),
            answers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Sends a request; the status and the JSON body (`Null` when none).
    /// `keep`: whether the answer goes to the secrets check (not the ones
    /// that hand out a token).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        who: As<'_>,
        body: Option<Value>,
        keep: bool,
    ) -> Result<(u16, Value, reqwest::header::HeaderMap)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match who {
            As::Nobody => request,
            As::Bearer(token) => request.bearer_auth(token),
            As::Cookie(token) => request.header("Cookie", format!("argocd.token={token}")),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        if keep {
            self.answers
                .lock()
                .expect("never poisoned")
                .push(text.clone());
        }
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        ))
    }

    async fn get(&self, path: &str, who: As<'_>) -> Result<(u16, Value)> {
        let (s, v, _) = self
            .send(reqwest::Method::GET, path, who, None, true)
            .await?;
        Ok((s, v))
    }

    async fn post(&self, path: &str, who: As<'_>, body: Value) -> Result<(u16, Value)> {
        let (s, v, _) = self
            .send(reqwest::Method::POST, path, who, Some(body), true)
            .await?;
        Ok((s, v))
    }

    /// Asks to sync `name`.
    async fn sync(&self, name: &str, token: &str) -> Result<(u16, Value)> {
        self.post(
            &format!("/api/v1/applications/{name}/sync"),
            As::Bearer(token),
            json!({}),
        )
        .await
    }

    /// Logs in; the token.
    async fn login(&self, user: &str, password: &str) -> Result<String> {
        let (status, body, _) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/session",
                As::Nobody,
                Some(json!({"username": user, "password": password})),
                false,
            )
            .await?;
        ensure!(status == 200, "login of {user}: {status} {body}");
        Ok(body["token"].as_str().context("a token")?.to_string())
    }

    /// A token issued through `path` (an account's or a project role's).
    async fn issue(&self, path: &str, admin: &str, body: Value) -> Result<String> {
        let (status, body, _) = self
            .send(
                reqwest::Method::POST,
                path,
                As::Bearer(admin),
                Some(body),
                false,
            )
            .await?;
        ensure!(status == 200, "{path}: {status} {body}");
        Ok(body["token"].as_str().context("a token")?.to_string())
    }

    /// The names of the applications `token` sees, once the list answers 200.
    async fn visible(&self, token: &str) -> Result<Vec<String>> {
        let (status, body) = self.get("/api/v1/applications", As::Bearer(token)).await?;
        ensure!(status == 200, "list: {status} {body}");
        Ok(body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_string))
            .collect())
    }

    /// Waits until `token` sees exactly `names` (the server watches
    /// `argocd-cm` and `argocd-rbac-cm`: an edit arrives soon after).
    async fn wait_visible(&self, token: &str, names: &[&str]) -> Result<()> {
        let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        eventually("the list shows what the caller may get", WAIT, || async {
            let mut seen = self.visible(token).await?;
            seen.sort();
            ensure!(seen == want, "seen {seen:?}, want {want:?}");
            Ok(Some(()))
        })
        .await
    }
}

/// Two applications in two projects, the repository they deploy from, and
/// a namespace holding the accounts; `argocd-cm` and `argocd-rbac-cm` are
/// written before Plumb starts.
struct Setup {
    ns: TestNamespace,
    _repo: GitRepo,
    work: tempfile::TempDir,
    a: String,
    b: String,
    plumb: Plumb,
}

async fn setup(prefix: &str, args: &[&str]) -> Result<Setup> {
    let ns = TestNamespace::new(prefix).await;
    ns.create().await?;
    let suffix = &ns.name[ns.name.len() - 8..];
    let (a, b) = (format!("a-{suffix}"), format!("b-{suffix}"));
    let repo = GitRepo::new(None)?;
    for (path, name) in [("a", "from-a"), ("b", "from-b")] {
        repo.write(
            &format!("{path}/cm.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"),
        )?;
    }
    repo.commit("two applications")?;
    config_map(
        &ns.name,
        "argocd-cm",
        &[
            ("accounts.ci", "apiKey, login"),
            ("accounts.viewer", "apiKey"),
        ],
    )
    .await?;
    config_map(
        &ns.name,
        "argocd-rbac-cm",
        &[
            (
                "policy.csv",
                "p, role:ci, applications, sync, team-a/*, allow\np, role:ci, applications, get, team-a/*, allow\ng, ci, role:ci\n",
            ),
            ("policy.default", ""),
        ],
    )
    .await?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_with_auth(
        work.path(),
        &apps_yaml(&a, &b, &repo.url(), &ns.name),
        &ns.name,
        args,
    )
    .await?;
    Ok(Setup {
        ns,
        _repo: repo,
        work,
        a,
        b,
        plumb,
    })
}

/// The generated admin password, from the Secret the log points to.
async fn admin_password(s: &Setup) -> Result<String> {
    let log = s.plumb.log_text();
    ensure!(
        log.contains("plumb-initial-admin-secret"),
        "the log says where the password is:\n{log}"
    );
    Ok(String::from_utf8(
        secret_value(&s.ns.name, "plumb-initial-admin-secret", "password").await?,
    )?)
}

#[tokio::test]
async fn logins_tokens_and_rbac_decide_who_may_do_what() -> Result<()> {
    let s = setup("auth", &[]).await?;
    let http = Http::new(&s.plumb.url);
    let password = admin_password(&s).await?;

    // Nothing without a token; /healthz and /metrics stay open.
    let (status, body) = http.get("/api/v1/applications", As::Nobody).await?;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], 16, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(http.get("/healthz", As::Nobody).await?.0, 200);
    assert_eq!(http.get("/metrics", As::Nobody).await?.0, 200);
    let (status, info) = http.get("/api/v1/session/userinfo", As::Nobody).await?;
    assert_eq!((status, &info["loggedIn"]), (200, &json!(false)));

    // A wrong password and an unknown user get the same answer.
    let wrong = |user: &'static str| {
        http.post(
            "/api/v1/session",
            As::Nobody,
            json!({"username": user, "password": "not-it"}),
        )
    };
    let (status, known) = wrong("admin").await?;
    let (status2, unknown) = wrong("nobody").await?;
    assert_eq!((status, status2), (401, 401));
    assert_eq!(known, unknown);

    // Admin logs in; the token works as Bearer and as the cookie.
    let (status, body, headers) = http
        .send(
            reqwest::Method::POST,
            "/api/v1/session",
            As::Nobody,
            Some(json!({"username": "admin", "password": password})),
            false,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let admin = body["token"].as_str().context("token")?.to_string();
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("a cookie")?;
    assert!(
        cookie.starts_with(&format!("argocd.token={admin}")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    http.wait_visible(&admin, &[&s.a, &s.b]).await?;
    let (status, body) = http.get("/api/v1/applications", As::Cookie(&admin)).await?;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
    let (_, info) = http
        .get("/api/v1/session/userinfo", As::Cookie(&admin))
        .await?;
    assert_eq!(info["loggedIn"], true);
    assert_eq!(info["username"], "admin");
    let (status, _) = http
        .get("/api/v1/applications", As::Bearer("not.a.token"))
        .await?;
    assert_eq!(status, 401);

    // ci may sync and get team-a's application only.
    let ci = http
        .issue("/api/v1/account/ci/token", &admin, json!({"id": "ci-1"}))
        .await?;
    http.wait_visible(&ci, &[&s.a]).await?;
    let (status, body) = http.sync(&s.a, &ci).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http.sync(&s.b, &ci).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], 7, "{body}");
    let (status, _) = http
        .post(
            &format!("/api/v1/applications/{}/rollback", s.b),
            As::Bearer(&ci),
            json!({"id": 1}),
        )
        .await?;
    assert_eq!(status, 403);
    let (status, _) = http
        .post(
            &format!("/api/v1/applications/{}/confirm-prune", s.a),
            As::Bearer(&ci),
            json!({}),
        )
        .await?;
    assert_eq!(status, 403, "confirming prunes is a delete");
    let (status, _) = http
        .get(&format!("/api/v1/applications/{}", s.b), As::Bearer(&ci))
        .await?;
    assert_eq!(status, 403);
    // ci may not issue tokens.
    let (status, _) = http
        .post("/api/v1/account/ci/token", As::Bearer(&ci), json!({}))
        .await?;
    assert_eq!(status, 403);

    // The account token stops working once revoked.
    let (status, _, _) = http
        .send(
            reqwest::Method::DELETE,
            "/api/v1/account/ci/token/ci-1",
            As::Bearer(&admin),
            None,
            true,
        )
        .await?;
    assert_eq!(status, 200);
    eventually("the revoked token is refused", WAIT, || async {
        let (status, _) = http.get("/api/v1/applications", As::Bearer(&ci)).await?;
        Ok((status == 401).then_some(()))
    })
    .await?;

    // A session of ci (it has `login`) acts as ci too.
    let ci_password = "ci-password-1";
    {
        // Set ci's password by hand, as `argocd account update-password` would.
        let hash = tokio::task::spawn_blocking(move || bcrypt_hash(ci_password)).await??;
        let api: Api<Secret> = Api::namespaced(support::client().await, &s.ns.name);
        api.patch(
            "argocd-secret",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"accounts.ci.password": hash}})),
        )
        .await?;
    }
    let ci_session = http.login("ci", ci_password).await?;
    http.wait_visible(&ci_session, &[&s.a]).await?;

    // policy.default role:readonly: viewer reads everything, syncs nothing.
    let viewer = http
        .issue("/api/v1/account/viewer/token", &admin, json!({}))
        .await?;
    http.wait_visible(&viewer, &[]).await?;
    let rbac: Api<ConfigMap> = Api::namespaced(support::client().await, &s.ns.name);
    rbac.patch(
        "argocd-rbac-cm",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"policy.default": "role:readonly"}})),
    )
    .await?;
    http.wait_visible(&viewer, &[&s.a, &s.b]).await?;
    let (status, _) = http.sync(&s.a, &viewer).await?;
    assert_eq!(status, 403);
    // (policy.default reaches every caller, a project role's token too:
    // back to none for the next part.)
    rbac.patch(
        "argocd-rbac-cm",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"policy.default": ""}})),
    )
    .await?;
    http.wait_visible(&viewer, &[]).await?;

    // A project role's token: its project's applications only, even where
    // its policy names another project.
    let deploy = http
        .issue(
            "/api/v1/projects/team-a/roles/deploy/token",
            &admin,
            json!({"id": "deploy-1"}),
        )
        .await?;
    http.wait_visible(&deploy, &[&s.a]).await?;
    let (status, body) = http.sync(&s.a, &deploy).await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http.sync(&s.b, &deploy).await?;
    assert_eq!(status, 403);
    let (status, _, _) = http
        .send(
            reqwest::Method::DELETE,
            "/api/v1/projects/team-a/roles/deploy/token/deploy-1",
            As::Bearer(&admin),
            None,
            true,
        )
        .await?;
    assert_eq!(status, 200);
    eventually("the revoked project token is refused", WAIT, || async {
        let (status, _) = http
            .get("/api/v1/applications", As::Bearer(&deploy))
            .await?;
        Ok((status == 401).then_some(()))
    })
    .await?;
    let (status, _) = http.get("/api/v1/projects", As::Bearer(&admin)).await?;
    assert_eq!(status, 200);

    // Logging out clears the cookie.
    let (status, _, headers) = http
        .send(
            reqwest::Method::DELETE,
            "/api/v1/session",
            As::Cookie(&admin),
            None,
            true,
        )
        .await?;
    assert_eq!(status, 200);
    let cleared = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cleared.starts_with("argocd.token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // No secret in the log or in any answer but the ones that issue tokens.
    let key = secret_value(&s.ns.name, "argocd-secret", "server.secretkey").await?;
    let key_hex = {
        use std::fmt::Write;
        let mut hex = String::new();
        for b in &key {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    };
    let log = s.plumb.log_text();
    let answers = http.answers.lock().expect("never poisoned").join("\n");
    let secrets: [(&str, &str); 8] = [
        ("the admin password", &password),
        ("ci's password", ci_password),
        ("the admin token", &admin),
        ("ci's token", &ci),
        ("ci's session", &ci_session),
        ("viewer's token", &viewer),
        ("the project token", &deploy),
        ("the signing key (hex)", &key_hex),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "{what} is in the log");
        assert!(!answers.contains(secret), "{what} is in an answer");
    }
    if let Ok(text) = std::str::from_utf8(&key) {
        assert!(
            !log.contains(text) && !answers.contains(text),
            "the signing key leaked"
        );
    }
    drop(s.work);
    Ok(())
}

/// A bcrypt hash, as Argo CD stores passwords.
fn bcrypt_hash(password: &str) -> Result<String> {
    Ok(bcrypt::hash(password, 4)?)
}

#[tokio::test]
async fn metrics_are_open_unless_the_flag_closes_them() -> Result<()> {
    let s = setup("auth-metrics", &["--metrics-require-auth"]).await?;
    let http = Http::new(&s.plumb.url);
    let (status, body) = http.get("/metrics", As::Nobody).await?;
    assert_eq!(status, 401, "{body}");
    let password = admin_password(&s).await?;
    let admin = http.login("admin", &password).await?;
    assert_eq!(http.get("/metrics", As::Bearer(&admin)).await?.0, 200);
    assert_eq!(http.get("/healthz", As::Nobody).await?.0, 200);
    Ok(())
}

/// Runs the `plumb` binary with its config under `config_home`, `stdin`
/// on its standard input; (success, stdout, stderr).
fn plumb_cli(
    config_home: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> Result<(bool, String, String)> {
    use std::io::Write;
    let bin =
        std::env::var_os("PLUMB_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_plumb").into());
    let mut child = std::process::Command::new(bin)
        .args(args)
        .env_remove("PLUMB_SERVER")
        .env_remove("PLUMB_AUTH_TOKEN")
        .env_remove("ARGOCD_AUTH_TOKEN")
        .env("XDG_CONFIG_HOME", config_home)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn the_cli_logs_in_and_generates_a_ci_token() -> Result<()> {
    let s = setup("auth-cli", &[]).await?;
    let password = admin_password(&s).await?;
    let home = tempfile::tempdir()?;
    let url = s.plumb.url.clone();
    let (a, b) = (s.a.clone(), s.b.clone());
    let config = home.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || -> Result<(String, String)> {
        let run =
            |env: &[(&str, &str)], args: &[&str], stdin: &str| plumb_cli(&config, env, args, stdin);
        // Without a login: a 401 that says what to do.
        let (ok, _, err) = run(&[], &["app", "--server", &url, "list"], "")?;
        ensure!(!ok && err.contains("plumb login"), "{err}");
        // The password from stdin; the token kept in the config file, 0600.
        let (ok, out, err) = run(
            &[],
            &["login", &url, "--username", "admin"],
            &format!("{password}\n"),
        )?;
        ensure!(ok, "login: {out}{err}");
        let file = config.join("plumb/config");
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file)?.permissions());
        ensure!(mode & 0o777 == 0o600, "mode {mode:o}");
        let (ok, out, err) = run(&[], &["app", "--server", &url, "list"], "")?;
        ensure!(ok && out.contains(&a) && out.contains(&b), "{out}{err}");
        // A long-lived token for ci.
        let (ok, token, err) = run(
            &[],
            &[
                "account",
                "--server",
                &url,
                "generate-token",
                "--account",
                "ci",
                "--expires-in",
                "24h",
                "--id",
                "cli-1",
            ],
            "",
        )?;
        ensure!(ok, "generate-token: {err}");
        let token = token.trim().to_string();
        ensure!(token.split('.').count() == 3, "a JWT: {token}");
        // A new admin password: the old one no longer logs in, the new one does.
        let (ok, _, err) = run(
            &[],
            &[
                "account",
                "--server",
                &url,
                "update-password",
                "--current-password",
                &password,
                "--new-password",
                "a-new-password-1",
            ],
            "",
        )?;
        ensure!(ok, "update-password: {err}");
        let (ok, _, _) = run(
            &[],
            &[
                "login",
                &url,
                "--username",
                "admin",
                "--password",
                &password,
            ],
            "",
        )?;
        ensure!(!ok, "the old password still logs in");
        let (ok, _, err) = run(
            &[],
            &["login", &url, "--username", "admin"],
            "a-new-password-1\n",
        )?;
        ensure!(ok, "the new password: {err}");
        // After logout, only the token works: flag or either variable.
        let (ok, _, err) = run(&[], &["logout", &url], "")?;
        ensure!(ok, "{err}");
        let (ok, _, err) = run(&[], &["app", "--server", &url, "list"], "")?;
        ensure!(!ok && err.contains("plumb login"), "{err}");
        for env in [
            ("PLUMB_AUTH_TOKEN", token.as_str()),
            ("ARGOCD_AUTH_TOKEN", token.as_str()),
        ] {
            let (ok, out, err) = run(&[env], &["app", "--server", &url, "list"], "")?;
            ensure!(
                ok && out.contains(&a) && !out.contains(&b),
                "{env:?}: {out}{err}"
            );
        }
        let (ok, out, err) = run(
            &[],
            &["app", "--server", &url, "--auth-token", &token, "sync", &a],
            "",
        )?;
        Ok((format!("{ok} {out}"), err))
    })
    .await??;
    assert!(
        out.0.starts_with("true"),
        "ci syncs team-a's application: {out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_web_ui_asks_for_a_login_and_logs_out() -> Result<()> {
    let s = setup("auth-ui", &[]).await?;
    let password = admin_password(&s).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/", s.plumb.url)).await?;
    browser
        .wait_for("the login form", "#login-view:not([hidden]) h1", |t| {
            t.iter().any(|h| h.contains("Log in"))
        })
        .await?;
    let fill = "const [user, password] = arguments;\
        document.getElementById('login-username').value = user;\
        document.getElementById('login-password').value = password;\
        document.getElementById('login-form').requestSubmit();";
    browser.execute(fill, json!(["admin", "wrong"])).await?;
    browser
        .wait_for("a wrong password is refused", "#login-error", |t| {
            t.iter().any(|e| e.contains("Invalid username or password"))
        })
        .await?;
    browser.execute(fill, json!(["admin", password])).await?;
    let a = s.a.clone();
    browser
        .wait_for(
            "the applications after the login",
            "#app-rows .app-row",
            |rows| rows.iter().any(|r| r.contains(&a)),
        )
        .await?;
    browser
        .wait_for("who is logged in", "#user", |t| {
            t.iter().any(|u| u == "admin")
        })
        .await?;
    browser.click("#logout").await?;
    browser
        .wait_for(
            "the login form again",
            "#login-view:not([hidden]) h1",
            |t| t.iter().any(|h| h.contains("Log in")),
        )
        .await?;
    Ok(())
}
