//! The CLI's side of the API: a blocking HTTP [`Client`] of a running
//! `plumb serve`, and [`run_app_command`], which carries out one
//! `plumb app ...` command and prints its answer as a table, JSON or YAML.
//! A crate of its own, so the server (`plumb-api`) does not carry a
//! blocking HTTP client.
//!
//! Not here: argument parsing of the whole binary (only the [`AppCommand`]
//! subcommand is defined here) and the choice of exit status, which
//! [`CommandOutcome`] informs.
//!
//! The client uses reqwest's blocking API: call it from plain threads, never
//! from inside a tokio runtime.

pub mod config;
mod format;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use plumb_engine::appset::ApplicationSet;
use plumb_engine::model::{Application, OperationPhase, OperationState, ResourceResult};
use plumb_engine::service::{
    AppSetPreview, DoraReport, ManagedResource, Refresh, ResourceTree, SyncRequest,
};
use reqwest::Url;
use reqwest::blocking::{RequestBuilder, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The server `plumb app` talks to when neither `--server` nor
/// `PLUMB_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// How long reads may take (a hard refresh fetches the repository first).
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The error of a client call or of [`run_app_command`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not an `http://` or `https://` URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answers at the server's address.
    #[error("cannot reach Plumb at {url}: is `plumb serve` running?")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The connection error.
        #[source]
        source: reqwest::Error,
    },
    /// The request failed after connecting (timeout, connection reset).
    #[error("request to {url} failed")]
    Transport {
        /// The request's URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server wants a token, or refused the one sent.
    #[error("{message} (HTTP 401): run `plumb login` (or pass --auth-token / PLUMB_AUTH_TOKEN)")]
    Unauthenticated {
        /// The server's message.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{message} (HTTP {status})")]
    Server {
        /// The HTTP status code.
        status: u16,
        /// The server's `message`, or the body or status text when it sent
        /// no JSON error.
        message: String,
    },
    /// The server's answer is not the document expected (not Plumb, or a
    /// different version).
    #[error("unexpected answer from {url}: not the JSON document Plumb sends")]
    Decode {
        /// The request's URL.
        url: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// Encoding the output as JSON failed.
    #[error("cannot encode the output as JSON")]
    Json(#[source] serde_json::Error),
    /// Encoding the output as YAML failed.
    #[error("cannot encode the output as YAML")]
    Yaml(#[source] serde_yaml::Error),
    /// The input file cannot be read or is not what the command takes.
    #[error("{0}")]
    Input(String),
    /// Writing the output failed (closed pipe, full disk).
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

/// A blocking client of one Plumb server.
#[derive(Clone, Debug)]
pub struct Client {
    /// The server's URL, ending in `/`.
    base: Url,
    /// The connection pool.
    http: reqwest::blocking::Client,
}

/// Argo CD's list documents.
#[derive(Deserialize)]
struct Items<T> {
    /// Absent or `null` when empty, in Argo CD's API.
    #[serde(default = "Option::default")]
    items: Option<Vec<T>>,
}

/// Seconds in a duration as `plumb account generate-token --expires-in`
/// takes it: `0`, `90` or `90s`, `30m`, `24h`, `7d`.
///
/// # Errors
/// Anything else.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30m, 24h, 7d or seconds"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: the unit is s, m, h or d"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("invalid duration {text:?}: too long"))
}

/// `{"token": "..."}`.
#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
}

/// The fields of Argo CD's error body the client reads.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error: String,
}

impl Client {
    /// A client of the server at `base` (`http://host:port`, optionally with
    /// a path prefix; `host:port` alone means `http://host:port`).
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when `base` is not an http(s) URL;
    /// [`ClientError::Transport`] when the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Client, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: base.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = base.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let mut url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a server URL has no query or fragment"));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(READ_TIMEOUT)
            .user_agent(concat!("plumb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport {
                url: url.to_string(),
                source,
            })?;
        Ok(Client { base: url, http })
    }

    /// The server's URL, as used in messages.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The same client sending `token` as `Authorization: Bearer` with
    /// every request (none when `None`).
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when the token cannot be a header;
    /// [`ClientError::Transport`] when the HTTP client cannot be built.
    pub fn with_token(mut self, token: Option<&str>) -> Result<Client, ClientError> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(self);
        };
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::InvalidUrl {
                url: self.base.to_string(),
                reason: "the auth token has characters a header cannot hold".into(),
            })?;
        value.set_sensitive(true);
        let headers =
            reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        self.http = reqwest::blocking::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(READ_TIMEOUT)
            .user_agent(concat!("plumb/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .build()
            .map_err(|source| ClientError::Transport {
                url: self.base.to_string(),
                source,
            })?;
        Ok(self)
    }

    /// Logs in (`POST /api/v1/session`) and returns the session token.
    ///
    /// # Errors
    /// As [`Client::list`]; `Unauthenticated` for a wrong password.
    pub fn login(&self, username: &str, password: &str) -> Result<String, ClientError> {
        let answer: TokenAnswer = self.call(
            self.http
                .post(self.url(&["session"]))
                .json(&serde_json::json!({"username": username, "password": password})),
        )?;
        Ok(answer.token)
    }

    /// A new API token of `account` (`POST /api/v1/account/NAME/token`):
    /// `expires_in` seconds (0: never), `id` (the server picks one when
    /// empty).
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn generate_token(
        &self,
        account: &str,
        expires_in: u64,
        id: &str,
    ) -> Result<String, ClientError> {
        let answer: TokenAnswer = self.call(
            self.http
                .post(self.url(&["account", account, "token"]))
                .json(&serde_json::json!({"expiresIn": expires_in, "id": id})),
        )?;
        Ok(answer.token)
    }

    /// Revokes the API token `id` of `account`.
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn revoke_token(&self, account: &str, id: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self.call(
            self.http
                .delete(self.url(&["account", account, "token", id])),
        )?;
        Ok(())
    }

    /// Changes the logged-in account's password.
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn update_password(&self, current: &str, new: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self.call(
            self.http
                .put(self.url(&["account", "password"]))
                .json(&serde_json::json!({"currentPassword": current, "newPassword": new})),
        )?;
        Ok(())
    }

    /// Who the token sent is (`GET /api/v1/session/userinfo`).
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn userinfo(&self) -> Result<serde_json::Value, ClientError> {
        self.call(self.http.get(self.url(&["session", "userinfo"])))
    }

    /// Every application with its status, sorted by name.
    ///
    /// # Errors
    /// Any [`ClientError`] but `InvalidUrl` and `Output`.
    pub fn list(&self) -> Result<Vec<Application>, ClientError> {
        let items: Items<Application> = self.call(self.http.get(self.url(&["applications"])))?;
        Ok(items.items.unwrap_or_default())
    }

    /// The server's application namespace (`GET /api/v1/settings`): an
    /// application elsewhere is named `NAMESPACE/NAME`.
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn app_namespace(&self) -> Result<String, ClientError> {
        #[derive(serde::Deserialize)]
        struct Settings {
            #[serde(rename = "controllerNamespace")]
            controller_namespace: String,
        }
        let settings: Settings = self.call(self.http.get(self.url(&["settings"])))?;
        Ok(settings.controller_namespace)
    }

    /// One application with its full history (`NAMESPACE/NAME` for one
    /// outside the application namespace).
    ///
    /// # Errors
    /// As [`Client::list`]; `Server` with status 404 for an unknown name.
    pub fn get(&self, name: &str) -> Result<Application, ClientError> {
        self.call(self.http.get(self.url(&["applications", name])))
    }

    /// One application, after a normal or hard refresh.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn refresh(&self, name: &str, refresh: Refresh) -> Result<Application, ClientError> {
        let value = match refresh {
            Refresh::Normal => "normal",
            Refresh::Hard => "hard",
        };
        self.call(
            self.http
                .get(self.url(&["applications", name]))
                .query(&[("refresh", value)]),
        )
    }

    /// Starts a sync; the answer carries the operation, `Running`. Follow
    /// it with [`Client::follow`].
    ///
    /// # Errors
    /// As [`Client::get`]; `Server` with 409 while another operation runs.
    pub fn sync(&self, name: &str, request: &SyncRequest) -> Result<Application, ClientError> {
        self.call(
            self.http
                .post(self.url(&["applications", name, "sync"]))
                .json(request),
        )
    }

    /// Starts a rollback to history entry `id`; returns at once like
    /// [`Client::sync`].
    ///
    /// # Errors
    /// As [`Client::get`]; `Server` with 400 for an unknown id.
    pub fn rollback(&self, name: &str, id: i64) -> Result<Application, ClientError> {
        self.call(
            self.http
                .post(self.url(&["applications", name, "rollback"]))
                .json(&serde_json::json!({ "id": id })),
        )
    }

    /// Creates the Application `app` (YAML or JSON, as a value); with
    /// `upsert`, replaces the spec of one that exists and differs.
    ///
    /// # Errors
    /// As [`Client::get`]; `Server` with 400 for an invalid application or
    /// a different existing spec without `upsert`.
    pub fn create(
        &self,
        app: &serde_json::Value,
        upsert: bool,
    ) -> Result<Application, ClientError> {
        let mut url = self.url(&["applications"]);
        if upsert {
            url.query_pairs_mut().append_pair("upsert", "true");
        }
        self.call(self.http.post(url).json(app))
    }

    /// Deletes an application: its resources first (`cascade`, foreground
    /// unless `background`), else only the Application object.
    ///
    /// # Errors
    /// As [`Client::get`]; `Server` with 400 for an application of a file.
    pub fn delete(&self, name: &str, cascade: bool, background: bool) -> Result<(), ClientError> {
        let mut url = self.url(&["applications", name]);
        url.query_pairs_mut()
            .append_pair("cascade", if cascade { "true" } else { "false" });
        if background {
            url.query_pairs_mut()
                .append_pair("propagationPolicy", "background");
        }
        self.call::<serde_json::Value>(self.http.delete(url))
            .map(|_| ())
    }

    /// Terminates the running operation of an application.
    ///
    /// # Errors
    /// As [`Client::get`]; `Server` with 400 when none is running.
    pub fn terminate_operation(&self, name: &str) -> Result<Application, ClientError> {
        self.call(
            self.http
                .delete(self.url(&["applications", name, "operation"])),
        )
    }

    /// Confirms the prunes that `Prune=confirm` holds in an application's
    /// sync.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn confirm_prune(&self, name: &str) -> Result<Application, ClientError> {
        self.call(
            self.http
                .post(self.url(&["applications", name, "confirm-prune"])),
        )
    }

    /// Polls the application until the operation that `started` shows has
    /// ended, handing `progress` each resource result when it appears and
    /// again when its status, hook phase or message changes (a hook that
    /// was Running and Succeeded), and the operation's message when it
    /// changes while it runs (waiting for a wave, retrying). Returns the
    /// application as it was when the operation ended.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn follow(
        &self,
        started: &Application,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<Application, ClientError> {
        let name = started.metadata.name.clone().unwrap_or_default();
        let Some(ours) = operation_of(started).map(|o| o.started_at.clone()) else {
            return Ok(started.clone());
        };
        let mut shown = Shown::default();
        loop {
            let app = self.get(&name)?;
            let Some(op) = operation_of(&app) else {
                return Ok(app);
            };
            // The status may still show the previous operation for a moment;
            // a later one means ours has ended and another began.
            if op.started_at < ours {
                std::thread::sleep(FOLLOW_EVERY);
                continue;
            }
            if op.started_at == ours {
                shown.news(op).into_iter().for_each(&mut progress);
            }
            if op.phase != OperationPhase::Running || op.started_at > ours {
                return Ok(app);
            }
            std::thread::sleep(FOLLOW_EVERY);
        }
    }

    /// Target, live and predicted state of every resource, with diffs.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn managed_resources(&self, name: &str) -> Result<Vec<ManagedResource>, ClientError> {
        let items: Items<ManagedResource> =
            self.call(
                self.http
                    .get(self.url(&["applications", name, "managed-resources"])),
            )?;
        Ok(items.items.unwrap_or_default())
    }

    /// The application's objects and the objects they own.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn resource_tree(&self, name: &str) -> Result<ResourceTree, ClientError> {
        self.call(
            self.http
                .get(self.url(&["applications", name, "resource-tree"])),
        )
    }

    /// Every ApplicationSet with its status.
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn appsets(&self) -> Result<Vec<ApplicationSet>, ClientError> {
        let items: Items<ApplicationSet> =
            self.call(self.http.get(self.url(&["applicationsets"])))?;
        Ok(items.items.unwrap_or_default())
    }

    /// The DORA metrics (`GET /api/v1/dora`) of one application, one
    /// project's or all, over `window` (`30d`, `12h`).
    ///
    /// # Errors
    /// As [`Client::list`]; `Server` with 400 for a malformed window.
    pub fn dora(
        &self,
        app: Option<&str>,
        project: Option<&str>,
        window: &str,
        failure_window: &str,
    ) -> Result<DoraReport, ClientError> {
        let mut url = self.url(&["dora"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("window", window);
            query.append_pair("failureWindow", failure_window);
            if let Some(app) = app {
                query.append_pair("app", app);
            }
            if let Some(project) = project {
                query.append_pair("project", project);
            }
        }
        self.call(self.http.get(url))
    }

    /// Every cluster applications may deploy to, with its connection
    /// state (`GET /api/v1/clusters`; no credentials).
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn clusters(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        let items: Items<serde_json::Value> = self.call(self.http.get(self.url(&["clusters"])))?;
        Ok(items.items.unwrap_or_default())
    }

    /// One ApplicationSet with its status.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn appset(&self, name: &str) -> Result<ApplicationSet, ClientError> {
        self.call(self.http.get(self.url(&["applicationsets", name])))
    }

    /// Confirms the deletions an ApplicationSet holds (`token` from its
    /// `DeletionHeld` condition).
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn confirm_appset_deletion(
        &self,
        name: &str,
        token: &str,
    ) -> Result<ApplicationSet, ClientError> {
        self.call(
            self.http
                .post(self.url(&["applicationsets", name, "confirm-deletion"]))
                .json(&serde_json::json!({ "token": token })),
        )
    }

    /// What an ApplicationSet manifest would create, update and delete on
    /// the server's cluster now.
    ///
    /// # Errors
    /// As [`Client::list`]; `Server` with 400 when its generators fail.
    pub fn preview_appset(&self, set: &serde_json::Value) -> Result<AppSetPreview, ClientError> {
        self.call(
            self.http
                .post(self.url(&["applicationsets", "generate"]))
                .json(set),
        )
    }

    /// `<base>api/v1/<segments...>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // An http(s) URL (checked in `new`) always has path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// Sends a request and decodes its JSON answer, or its error.
    fn call<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, ClientError> {
        let response = builder.send().map_err(|e| self.send_error(e))?;
        let url = response.url().to_string();
        let response = error_for_status(response)?;
        let body = response.bytes().map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode { url, source })
    }

    /// The error of a request that got no answer.
    fn send_error(&self, source: reqwest::Error) -> ClientError {
        if source.is_connect() {
            ClientError::Unreachable {
                url: self.base_url().trim_end_matches('/').to_owned(),
                source,
            }
        } else {
            let url = source
                .url()
                .map_or_else(|| self.base.to_string(), Url::to_string);
            ClientError::Transport { url, source }
        }
    }
}

/// How often [`Client::follow`] asks for the application.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The application's current (or last) operation.
/// Something a followed operation did.
#[derive(Debug, PartialEq)]
pub enum Progress<'a> {
    /// A resource result, new or changed.
    Resource(&'a ResourceResult),
    /// The operation's message, changed while it runs.
    Message(&'a str),
}

/// What has been shown of one operation: each result's (status, hook
/// phase, message) by its phase and object, and the last message.
#[derive(Default)]
struct Shown {
    resources: HashMap<[String; 5], [String; 3]>,
    message: String,
}

impl Shown {
    /// What `op` shows that was not shown yet, resources first, in order.
    fn news<'a>(&mut self, op: &'a OperationState) -> Vec<Progress<'a>> {
        let results = op
            .sync_result
            .as_ref()
            .map(|r| r.resources.as_slice())
            .unwrap_or_default();
        let mut news: Vec<Progress<'a>> = results
            .iter()
            .filter(|r| {
                let key =
                    [&r.sync_phase, &r.group, &r.kind, &r.namespace, &r.name].map(|s| s.clone());
                let now = [&r.status, &r.hook_phase, &r.message].map(|s| s.clone());
                self.resources.insert(key, now.clone()) != Some(now)
            })
            .map(Progress::Resource)
            .collect();
        if op.phase == OperationPhase::Running
            && !op.message.is_empty()
            && op.message != self.message
        {
            self.message.clone_from(&op.message);
            news.push(Progress::Message(&op.message));
        }
        news
    }
}

fn operation_of(app: &Application) -> Option<&OperationState> {
    app.status.as_ref()?.operation_state.as_ref()
}

/// The response, or a [`ClientError::Server`] with the server's message.
fn error_for_status(response: Response) -> Result<Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().unwrap_or_default();
    let message = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) if !body.message.is_empty() => body.message,
        Ok(body) if !body.error.is_empty() => body.error,
        _ if !text.trim().is_empty() => text.trim().chars().take(500).collect(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(ClientError::Unauthenticated { message });
    }
    Err(ClientError::Server {
        status: status.as_u16(),
        message,
    })
}

/// How `plumb app` prints answers (`-o`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable tables, like `argocd app`.
    #[default]
    Table,
    /// The API's JSON documents.
    Json,
    /// The API's documents as YAML.
    Yaml,
}

/// `plumb app ...`: commands against a running Plumb server.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum AppCommand {
    /// List applications with their sync and health status.
    List,
    /// Show an application: source, status, conditions and resources.
    Get {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
    },
    /// Show the differences between Git and the cluster; exits 1 when there
    /// are some.
    Diff {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
    },
    /// Sync an application to Git (or to --revision) and follow the
    /// operation until it ends; exits 1 when it fails.
    Sync {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
        /// Sync to this revision instead of the target revision.
        #[arg(long)]
        revision: Option<String>,
        /// Delete tracked objects that are no longer in Git.
        #[arg(long)]
        prune: bool,
        /// Show what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Return once the operation has started, without following it.
        #[arg(long = "async")]
        no_wait: bool,
        /// Retry a failed attempt this many times (default: the
        /// application's syncPolicy.retry).
        #[arg(long)]
        retry_limit: Option<i64>,
        /// The first wait between attempts, a duration like 5s or 1m.
        #[arg(long, requires = "retry_limit")]
        retry_backoff_duration: Option<String>,
        /// Sync only this object, `GROUP:KIND:NAME` or
        /// `GROUP:KIND:NAMESPACE/NAME` (empty group for the core API);
        /// repeatable. Hooks do not run in a selective sync.
        #[arg(long = "resource", value_parser = parse_resource)]
        resources: Vec<plumb_engine::model::SyncOperationResource>,
        /// `hook` (the default: hooks run) or `apply` (no hooks).
        #[arg(long, value_parser = ["apply", "hook"])]
        strategy: Option<String>,
        /// Delete and create again an object an apply cannot change.
        #[arg(long)]
        force: bool,
        /// A sync option for this sync only (e.g. `Replace=true`);
        /// repeatable.
        #[arg(long = "sync-option")]
        sync_options: Vec<String>,
    },
    /// Show the deployment history (the IDs `rollback` takes).
    History {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
    },
    /// Sync to the revision of history entry ID, pin it and suspend
    /// automated sync until the next manual sync.
    Rollback {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
        /// History ID, from `plumb app history`.
        id: i64,
        /// Return once the operation has started, without following it.
        #[arg(long = "async")]
        no_wait: bool,
    },
    /// Terminate the running sync or rollback of an application.
    TerminateOp {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
    },
    /// Create an Application object from a YAML or JSON file (`-` for
    /// standard input).
    Create {
        /// The file holding one Application.
        #[arg(short = 'f', long = "file")]
        file: String,
        /// Replace the spec of an application that exists and differs.
        #[arg(long)]
        upsert: bool,
    },
    /// Delete an application: its resources first, then the Application
    /// object (as Argo CD's resources finalizer does).
    Delete {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
        /// `false` deletes only the Application object; its resources stay.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        cascade: bool,
        /// `foreground` (the default) or `background`.
        #[arg(long, value_parser = ["foreground", "background"])]
        propagation_policy: Option<String>,
    },
    /// Confirm the prunes a sync waits for (objects marked Prune=confirm),
    /// as annotating the application with argocd.argoproj.io/deletion-approved.
    ConfirmPrune {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
    },
    /// Compare again now (with --hard, fetch the repository first).
    Refresh {
        /// Application name (NAMESPACE/NAME outside the application namespace).
        name: String,
        /// Fetch and render again, not only compare.
        #[arg(long)]
        hard: bool,
    },
}

/// `plumb appset ...` commands against a running server (`generate` is
/// the binary's: it also works offline).
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum AppSetCommand {
    /// List ApplicationSets with their state and applications.
    List,
    /// Show an ApplicationSet: conditions and the applications it owns.
    Get {
        /// ApplicationSet name.
        name: String,
    },
    /// Let deletions an ApplicationSet holds go ahead (the token is in its
    /// DeletionHeld condition).
    ConfirmDeletion {
        /// ApplicationSet name.
        name: String,
        /// The token the condition names.
        token: String,
    },
}

/// Runs one `plumb appset` command against `client` and prints its answer.
///
/// # Errors
/// Any [`ClientError`] of the calls it makes; `Output` when `out` fails.
pub fn run_appset_command(
    client: &Client,
    command: AppSetCommand,
    output: Output,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    match command {
        AppSetCommand::List => {
            let sets = client.appsets()?;
            print(out, output, &sets, || format::appset_list(&sets))
        }
        AppSetCommand::Get { name } => {
            let set = client.appset(&name)?;
            print(out, output, &set, || format::appset_details(&set))
        }
        AppSetCommand::ConfirmDeletion { name, token } => {
            let set = client.confirm_appset_deletion(&name, &token)?;
            print(out, output, &set, || format::appset_details(&set))
        }
    }
}

/// `plumb cluster ...` commands against a running server.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum ClusterCommand {
    /// List the clusters applications may deploy to, with their
    /// connection state.
    List,
}

/// Runs one `plumb cluster` command against `client` and prints its answer.
///
/// # Errors
/// Any [`ClientError`] of the calls it makes; `Output` when `out` fails.
pub fn run_cluster_command(
    client: &Client,
    command: ClusterCommand,
    output: Output,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    match command {
        ClusterCommand::List => {
            let clusters = client.clusters()?;
            print(out, output, &clusters, || format::cluster_list(&clusters))
        }
    }
}

/// Prints DORA metrics: a table (in all, per project, per application) or
/// the report as JSON or YAML.
///
/// # Errors
/// `Output` when `out` fails.
pub fn print_dora(
    out: &mut impl Write,
    output: Output,
    report: &DoraReport,
) -> Result<(), ClientError> {
    print(out, output, report, || format::dora(report))
}

/// Prints what `plumb appset generate` found: the Applications (YAML, or
/// JSON with `-o json`) or, with a preview from a server, a table of what
/// would change.
///
/// # Errors
/// `Output` when `out` fails.
pub fn print_appset_preview(
    out: &mut impl Write,
    output: Output,
    preview: &AppSetPreview,
) -> Result<(), ClientError> {
    print(out, output, preview, || format::appset_preview(preview))
}

/// How a command ended, for the binary's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    /// The command did what was asked.
    Success,
    /// `diff` found differences (`argocd app diff` exits 1 then).
    DiffFound,
    /// `sync` or `rollback` ran, but the operation ended Failed or Error.
    OperationFailed,
}

impl CommandOutcome {
    /// Whether `diff` found differences.
    pub fn differences_found(self) -> bool {
        self == CommandOutcome::DiffFound
    }

    /// The exit status the binary should end with: 0 for success, 1 otherwise.
    pub fn exit_code(self) -> u8 {
        match self {
            CommandOutcome::Success => 0,
            CommandOutcome::DiffFound | CommandOutcome::OperationFailed => 1,
        }
    }
}

/// `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME`, as Argo CD's
/// `--resource`.
fn parse_resource(text: &str) -> Result<plumb_engine::model::SyncOperationResource, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(group), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "{text:?}: expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME"
        ));
    };
    let (namespace, name) = rest.split_once('/').unwrap_or(("", rest));
    if kind.is_empty() || name.is_empty() {
        return Err(format!("{text:?}: the kind and the name are required"));
    }
    Ok(plumb_engine::model::SyncOperationResource {
        group: group.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: namespace.to_string(),
    })
}

/// The request's `strategy` from `--strategy` and `--force`.
fn sync_strategy(strategy: Option<&str>, force: bool) -> Option<plumb_engine::model::SyncStrategy> {
    use plumb_engine::model::{SyncStrategy, SyncStrategyForce};
    let chosen = Some(SyncStrategyForce { force });
    match strategy {
        Some("apply") => Some(SyncStrategy {
            apply: chosen,
            hook: None,
        }),
        Some(_) => Some(SyncStrategy {
            apply: None,
            hook: chosen,
        }),
        None if force => Some(SyncStrategy {
            apply: None,
            hook: chosen,
        }),
        None => None,
    }
}

/// Runs one `plumb app` command against `client` and prints its answer to `out`.
///
/// # Errors
/// Any [`ClientError`] of the calls it makes; `Output` when `out` fails.
pub fn run_app_command(
    client: &Client,
    command: AppCommand,
    output: Output,
    out: &mut impl Write,
) -> Result<CommandOutcome, ClientError> {
    match command {
        AppCommand::List => {
            let apps = client.list()?;
            // Names outside the application namespace are qualified; a
            // server that does not say which one it is shows names alone.
            let home = client.app_namespace().ok();
            print(out, output, &apps, || {
                format::app_list(&apps, home.as_deref())
            })?;
            Ok(CommandOutcome::Success)
        }
        AppCommand::Get { name } => {
            let app = client.get(&name)?;
            print(out, output, &app, || format::app_details(&app))?;
            Ok(CommandOutcome::Success)
        }
        AppCommand::Refresh { name, hard } => {
            let app = client.refresh(&name, if hard { Refresh::Hard } else { Refresh::Normal })?;
            print(out, output, &app, || format::app_details(&app))?;
            Ok(CommandOutcome::Success)
        }
        AppCommand::Diff { name } => {
            let modified: Vec<ManagedResource> = client
                .managed_resources(&name)?
                .into_iter()
                .filter(|r| r.modified)
                .collect();
            print(out, output, &modified, || format::diff(&modified))?;
            Ok(if modified.is_empty() {
                CommandOutcome::Success
            } else {
                CommandOutcome::DiffFound
            })
        }
        AppCommand::Sync {
            name,
            revision,
            prune,
            dry_run,
            no_wait,
            retry_limit,
            retry_backoff_duration,
            resources,
            strategy,
            force,
            sync_options,
        } => {
            let retry_strategy = retry_limit.map(|limit| plumb_engine::model::RetryStrategy {
                limit,
                backoff: retry_backoff_duration.map(|d| plumb_engine::model::Backoff {
                    duration: Some(d),
                    ..Default::default()
                }),
            });
            let started = client.sync(
                &name,
                &SyncRequest {
                    revision,
                    prune,
                    dry_run,
                    retry_strategy,
                    strategy: sync_strategy(strategy.as_deref(), force),
                    resources: (!resources.is_empty()).then_some(resources),
                    sync_options: (!sync_options.is_empty()).then_some(
                        plumb_engine::service::SyncOptionItems {
                            items: sync_options,
                        },
                    ),
                },
            )?;
            finish_operation(client, &started, no_wait, output, out)
        }
        AppCommand::Rollback { name, id, no_wait } => {
            let started = client.rollback(&name, id)?;
            finish_operation(client, &started, no_wait, output, out)
        }
        AppCommand::Create { file, upsert } => {
            let text = if file == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| ClientError::Input(format!("standard input: {e}")))?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| ClientError::Input(format!("{file}: {e}")))?
            };
            let app: serde_json::Value = serde_yaml::from_str(&text)
                .map_err(|e| ClientError::Input(format!("{file}: not an Application: {e}")))?;
            let created = client.create(&app, upsert)?;
            let name = created.metadata.name.clone().unwrap_or_default();
            print(out, output, &created, || {
                format!("application '{name}' created\n")
            })?;
            Ok(CommandOutcome::Success)
        }
        AppCommand::Delete {
            name,
            cascade,
            propagation_policy,
        } => {
            let background = propagation_policy.as_deref() == Some("background");
            client.delete(&name, cascade, background)?;
            let how = if cascade {
                "its resources are deleted first"
            } else {
                "its resources stay"
            };
            print(out, output, &serde_json::json!({}), || {
                format!("application '{name}' is being deleted; {how}\n")
            })?;
            Ok(CommandOutcome::Success)
        }
        AppCommand::TerminateOp { name } => {
            let app = client.terminate_operation(&name)?;
            if output == Output::Table {
                out.write_all(format!("operation of {name} terminated\n").as_bytes())
                    .map_err(ClientError::Output)?;
                Ok(CommandOutcome::Success)
            } else {
                print(out, output, &app, String::new)?;
                Ok(CommandOutcome::Success)
            }
        }
        AppCommand::ConfirmPrune { name } => {
            let app = client.confirm_prune(&name)?;
            let message = app
                .status
                .as_ref()
                .and_then(|s| s.operation_state.as_ref())
                .filter(|op| op.phase == OperationPhase::Running)
                .map(|op| format!(" (its sync: {})", op.message))
                .unwrap_or_default();
            print(out, output, &app, || {
                format!("prunes of {name} confirmed{message}\n")
            })?;
            Ok(CommandOutcome::Success)
        }
        AppCommand::History { name } => {
            let app = client.get(&name)?;
            let history = app
                .status
                .as_ref()
                .map(|s| s.history.as_slice())
                .unwrap_or_default();
            print(out, output, &history, || format::history(&app))?;
            Ok(CommandOutcome::Success)
        }
    }
}

/// Follows a started operation (unless `no_wait`), showing each resource as
/// it is done, then prints the outcome.
fn finish_operation(
    client: &Client,
    started: &Application,
    no_wait: bool,
    output: Output,
    out: &mut impl Write,
) -> Result<CommandOutcome, ClientError> {
    if no_wait {
        print(out, output, started, || format::operation_result(started))?;
        return Ok(CommandOutcome::Success);
    }
    let mut failed_write = None;
    let app = client.follow(started, |p| {
        if output == Output::Table && failed_write.is_none() {
            let line = format::progress_line(&p);
            if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                failed_write = Some(e);
            }
        }
    })?;
    if let Some(e) = failed_write {
        return Err(ClientError::Output(e));
    }
    print(out, output, &app, || format::operation_result(&app))?;
    Ok(operation_outcome(&app))
}

/// Failed when the application's last operation did not succeed.
fn operation_outcome(app: &Application) -> CommandOutcome {
    let phase = app
        .status
        .as_ref()
        .and_then(|s| s.operation_state.as_ref())
        .map(|o| o.phase);
    match phase {
        Some(OperationPhase::Failed | OperationPhase::Error | OperationPhase::Terminating) => {
            CommandOutcome::OperationFailed
        }
        _ => CommandOutcome::Success,
    }
}

/// Writes `document` as JSON or YAML, or the table `table` makes.
fn print<T: serde::Serialize + ?Sized>(
    out: &mut impl Write,
    output: Output,
    document: &T,
    table: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    let text = match output {
        Output::Table => table(),
        Output::Json => {
            let mut json = serde_json::to_string_pretty(document).map_err(ClientError::Json)?;
            json.push('\n');
            json
        }
        Output::Yaml => serde_yaml::to_string(document).map_err(ClientError::Yaml)?,
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(ClientError::Output)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use plumb_api::fake::FakeService;

    /// A server of `service` on its own thread and runtime (the blocking
    /// client must not run inside a runtime); dropping it stops the server.
    struct TestServer {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<thread::JoinHandle<()>>,
    }

    impl TestServer {
        fn start(service: FakeService) -> TestServer {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (ready, addr) = mpsc::channel();
            let thread = thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    ready
                        .send(listener.local_addr().expect("addr"))
                        .expect("test waits");
                    plumb_api::serve_on(
                        Arc::new(service),
                        plumb_api::Auth::disabled(),
                        listener,
                        async {
                            let _ = stopped.await;
                        },
                    )
                    .await
                    .expect("serve");
                });
            });
            let addr = addr.recv().expect("server started");
            TestServer {
                addr,
                stop: Some(stop),
                thread: Some(thread),
            }
        }

        fn url(&self) -> String {
            format!("http://{}", self.addr)
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn run(client: &Client, command: AppCommand, output: Output) -> (CommandOutcome, String) {
        let mut out = Vec::new();
        let outcome = run_app_command(client, command, output, &mut out).expect("command succeeds");
        (outcome, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn commands_work_end_to_end_against_a_real_server() {
        let server = TestServer::start(FakeService::with_fixtures().busy("busy-app"));
        let client = Client::new(&server.url()).expect("client");

        let (outcome, text) = run(&client, AppCommand::List, Output::Table);
        assert_eq!(outcome, CommandOutcome::Success);
        assert_eq!(
            text,
            format::app_list(
                &[plumb_api::fake::guestbook(), plumb_api::fake::shop()],
                Some("plumb")
            )
        );

        let (_, json) = run(&client, AppCommand::List, Output::Json);
        let apps: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(apps[1]["metadata"]["name"], "shop");

        let (_, text) = run(
            &client,
            AppCommand::Get {
                name: "shop".into(),
            },
            Output::Table,
        );
        assert!(text.starts_with("Name:               shop\n"), "{text}");

        let (_, yaml) = run(
            &client,
            AppCommand::Get {
                name: "shop".into(),
            },
            Output::Yaml,
        );
        assert!(yaml.contains("kind: Application"), "{yaml}");

        let (outcome, text) = run(
            &client,
            AppCommand::Diff {
                name: "shop".into(),
            },
            Output::Table,
        );
        assert_eq!(outcome, CommandOutcome::DiffFound);
        assert!(
            text.starts_with("===== apps/Deployment shop/api ======\n"),
            "{text}"
        );
        let (outcome, text) = run(
            &client,
            AppCommand::Diff {
                name: "guestbook".into(),
            },
            Output::Table,
        );
        assert_eq!((outcome, text.as_str()), (CommandOutcome::Success, ""));

        let sync = AppCommand::Sync {
            name: "shop".into(),
            revision: Some("v2".into()),
            prune: true,
            dry_run: false,
            no_wait: false,
            retry_limit: None,
            retry_backoff_duration: None,
            resources: Vec::new(),
            strategy: None,
            force: false,
            sync_options: Vec::new(),
        };
        let (outcome, text) = run(&client, sync, Output::Table);
        assert_eq!(outcome, CommandOutcome::Success);
        assert!(text.contains("Phase:              Succeeded"), "{text}");

        let (_, text) = run(
            &client,
            AppCommand::History {
                name: "shop".into(),
            },
            Output::Table,
        );
        assert!(text.contains("\n1   2024-05-02T12:00:03Z  v2"), "{text}");

        let (_, text) = run(
            &client,
            AppCommand::Rollback {
                name: "guestbook".into(),
                id: 1,
                no_wait: false,
            },
            Output::Table,
        );
        assert!(text.contains("Rollback:"), "{text}");

        let (_, json) = run(
            &client,
            AppCommand::Refresh {
                name: "guestbook".into(),
                hard: true,
            },
            Output::Json,
        );
        assert!(json.contains("\"name\": \"guestbook\""));

        assert_eq!(
            client.resource_tree("guestbook").expect("tree").nodes.len(),
            2
        );
    }

    #[test]
    fn server_errors_carry_the_message_and_status() {
        let server = TestServer::start(FakeService::with_fixtures().busy("shop"));
        let client = Client::new(&server.url()).expect("client");
        let error = client.get("nope").expect_err("unknown app");
        assert_eq!(error.to_string(), "application nope not found (HTTP 404)");
        let error = client
            .sync("shop", &SyncRequest::default())
            .expect_err("busy");
        assert_eq!(
            error.to_string(),
            "another sync is running for shop (HTTP 409)"
        );
        let error = client.rollback("guestbook", 9).expect_err("no such id");
        assert_eq!(
            error.to_string(),
            "history id 9 not found for guestbook (HTTP 400)"
        );
    }

    #[test]
    fn a_server_that_is_not_running_is_named_with_a_hint() {
        // Bind then free a port so that nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let client = Client::new(&format!("127.0.0.1:{port}")).expect("client");
        let error = client.list().expect_err("nothing listens");
        assert_eq!(
            error.to_string(),
            format!("cannot reach Plumb at http://127.0.0.1:{port}: is `plumb serve` running?")
        );
    }

    #[test]
    fn server_urls_are_checked_and_paths_kept() {
        assert!(matches!(
            Client::new("ftp://x"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::new("http://"),
            Err(ClientError::InvalidUrl { .. })
        ));
        let client = Client::new("https://plumb.example.com/prefix").expect("client");
        assert_eq!(
            client.url(&["applications", "a b"]).as_str(),
            "https://plumb.example.com/prefix/api/v1/applications/a%20b"
        );
        let client = Client::new(DEFAULT_SERVER).expect("client");
        assert_eq!(
            client.url(&["applications"]).as_str(),
            "http://127.0.0.1:8080/api/v1/applications"
        );
    }

    #[test]
    fn app_commands_parse_like_argo_cd() {
        use clap::Parser;

        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: AppCommand,
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        assert_eq!(
            parse(&[
                "app",
                "sync",
                "web",
                "--revision",
                "abc",
                "--prune",
                "--dry-run"
            ])
            .expect("parses"),
            AppCommand::Sync {
                name: "web".into(),
                revision: Some("abc".into()),
                prune: true,
                dry_run: true,
                no_wait: false,
                retry_limit: None,
                retry_backoff_duration: None,
                resources: Vec::new(),
                strategy: None,
                force: false,
                sync_options: Vec::new(),
            }
        );
        assert_eq!(
            parse(&[
                "app",
                "sync",
                "web",
                "--retry-limit",
                "3",
                "--retry-backoff-duration",
                "2s"
            ])
            .expect("parses"),
            AppCommand::Sync {
                name: "web".into(),
                revision: None,
                prune: false,
                dry_run: false,
                no_wait: false,
                retry_limit: Some(3),
                retry_backoff_duration: Some("2s".into()),
                resources: Vec::new(),
                strategy: None,
                force: false,
                sync_options: Vec::new(),
            }
        );
        assert_eq!(
            parse(&[
                "app",
                "sync",
                "web",
                "--resource",
                "apps:Deployment:team/web",
                "--resource",
                ":ConfigMap:settings",
                "--strategy",
                "apply",
                "--force",
                "--sync-option",
                "Replace=true"
            ])
            .expect("parses"),
            AppCommand::Sync {
                name: "web".into(),
                revision: None,
                prune: false,
                dry_run: false,
                no_wait: false,
                retry_limit: None,
                retry_backoff_duration: None,
                resources: vec![
                    plumb_engine::model::SyncOperationResource {
                        group: "apps".into(),
                        kind: "Deployment".into(),
                        name: "web".into(),
                        namespace: "team".into(),
                    },
                    plumb_engine::model::SyncOperationResource {
                        group: String::new(),
                        kind: "ConfigMap".into(),
                        name: "settings".into(),
                        namespace: String::new(),
                    },
                ],
                strategy: Some("apply".into()),
                force: true,
                sync_options: vec!["Replace=true".into()],
            }
        );
        assert!(parse(&["app", "sync", "web", "--resource", "Deployment/web"]).is_err());
        assert_eq!(
            parse(&["app", "delete", "web", "--cascade=false"]).expect("parses"),
            AppCommand::Delete {
                name: "web".into(),
                cascade: false,
                propagation_policy: None,
            }
        );
        assert_eq!(
            sync_strategy(Some("apply"), true),
            Some(plumb_engine::model::SyncStrategy {
                apply: Some(plumb_engine::model::SyncStrategyForce { force: true }),
                hook: None,
            })
        );
        assert_eq!(sync_strategy(None, false), None);
        assert_eq!(
            parse(&["app", "rollback", "web", "3", "--async"]).expect("parses"),
            AppCommand::Rollback {
                name: "web".into(),
                id: 3,
                no_wait: true
            }
        );
        assert_eq!(
            parse(&["app", "terminate-op", "web"]).expect("parses"),
            AppCommand::TerminateOp { name: "web".into() }
        );
        assert_eq!(
            parse(&["app", "confirm-prune", "web"]).expect("parses"),
            AppCommand::ConfirmPrune { name: "web".into() }
        );
        assert_eq!(
            parse(&["app", "refresh", "web", "--hard"]).expect("parses"),
            AppCommand::Refresh {
                name: "web".into(),
                hard: true
            }
        );
        assert!(parse(&["app", "rollback", "web", "x"]).is_err());
    }

    #[test]
    fn failed_operations_have_a_failing_outcome() {
        let mut app = plumb_api::fake::shop();
        assert_eq!(operation_outcome(&app), CommandOutcome::Success);
        app.status.get_or_insert_default().operation_state =
            Some(plumb_engine::model::OperationState {
                phase: OperationPhase::Failed,
                ..Default::default()
            });
        assert_eq!(operation_outcome(&app), CommandOutcome::OperationFailed);
        assert_eq!(CommandOutcome::OperationFailed.exit_code(), 1);
        assert_eq!(CommandOutcome::DiffFound.exit_code(), 1);
        assert_eq!(CommandOutcome::Success.exit_code(), 0);
        assert!(CommandOutcome::DiffFound.differences_found());
        assert!(!CommandOutcome::OperationFailed.differences_found());
    }

    fn result(kind: &str, name: &str, status: &str, hook: Option<(&str, &str)>) -> ResourceResult {
        ResourceResult {
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
            status: status.into(),
            sync_phase: hook.map_or("Sync", |(t, _)| t).into(),
            hook_type: hook.map_or("", |(t, _)| t).into(),
            hook_phase: hook.map_or("", |(_, p)| p).into(),
            ..ResourceResult::default()
        }
    }

    fn running(message: &str, resources: Vec<ResourceResult>) -> OperationState {
        OperationState {
            phase: OperationPhase::Running,
            message: message.into(),
            sync_result: Some(plumb_engine::model::SyncResult {
                resources,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn following_shows_new_results_changed_hooks_and_new_messages_once() {
        let mut shown = Shown::default();
        let migrate = result("Job", "migrate", "Synced", Some(("PreSync", "Running")));
        let first = running("waiting for hooks to complete", vec![migrate.clone()]);
        assert_eq!(
            shown.news(&first),
            [
                Progress::Resource(&migrate),
                Progress::Message("waiting for hooks to complete")
            ]
        );
        assert_eq!(shown.news(&first), []);

        let done = result("Job", "migrate", "Synced", Some(("PreSync", "Succeeded")));
        let web = result("Deployment", "web", "Synced", None);
        let second = running(
            "waiting for hooks to complete",
            vec![done.clone(), web.clone()],
        );
        assert_eq!(
            shown.news(&second),
            [Progress::Resource(&done), Progress::Resource(&web)]
        );

        // An ended operation's message is the outcome, printed after.
        let ended = OperationState {
            phase: OperationPhase::Succeeded,
            message: "successfully synced".into(),
            ..second.clone()
        };
        assert_eq!(shown.news(&ended), []);
    }

    #[test]
    fn a_hook_shows_its_phase_and_type() {
        let hook = result("Job", "migrate", "Synced", Some(("PreSync", "Succeeded")));
        assert_eq!(
            format::progress_line(&Progress::Resource(&hook)),
            "Succeeded    Job ns/migrate (PreSync hook): \n"
        );
        let plain = result("ConfigMap", "settings", "Synced", None);
        assert_eq!(
            format::progress_line(&Progress::Resource(&plain)),
            "Synced       ConfigMap ns/settings: \n"
        );
        assert_eq!(
            format::progress_line(&Progress::Message("waiting for wave 0")),
            "             waiting for wave 0\n"
        );
    }
}
