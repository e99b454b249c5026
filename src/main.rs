//! `plumb`: the command line. Parses arguments and calls into the crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use plumb_cli::{AppCommand, AppSetCommand, Client, Output};
use plumb_engine::appset::plan::ApplicationsSync;
use plumb_engine::cluster;
use plumb_engine::controller::{Controller, ControllerOptions};
use plumb_engine::tools::ToolOptions;
use tokio_util::sync::CancellationToken;

mod appset;
mod render;

/// jemalloc instead of glibc's malloc. glibc gives threads that allocate
/// at the same time arenas of their own (up to eight per core) and keeps
/// what is freed in each: the blocking threads that fetch, generate, render
/// and parse come and go, and at 1,000 applications of one ApplicationSet
/// the process held 159 MiB after 20 commits against a heap that never
/// passed 56 MB (heaptrack; BENCHMARKS.md, round 7). jemalloc reuses freed
/// memory across threads and returns it to the system on a timer (its
/// background thread). `--features system-allocator` builds with glibc's
/// malloc instead, for heap profilers that hook malloc (heaptrack; see
/// scripts/heaptrack-plumb).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "plumb",
    version,
    about = "GitOps for Kubernetes: keeps clusters in plumb with Git"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller and the HTTP API.
    Serve(Box<ServeArgs>),
    /// Talk to a running server.
    App {
        /// The server's URL.
        #[arg(
            long,
            env = "PLUMB_SERVER",
            default_value = "http://127.0.0.1:8080",
            global = true
        )]
        server: String,
        #[command(flatten)]
        token: TokenArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: AppCommand,
    },
    /// ApplicationSets: list and inspect them on a server, or see what a
    /// file would generate.
    Appset {
        /// The server's URL (`generate` works offline without one).
        #[arg(long, env = "PLUMB_SERVER", global = true)]
        server: Option<String>,
        #[command(flatten)]
        token: TokenArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: AppSetCli,
    },
    /// The clusters applications deploy to, on a running server.
    Cluster {
        /// The server's URL.
        #[arg(
            long,
            env = "PLUMB_SERVER",
            default_value = "http://127.0.0.1:8080",
            global = true
        )]
        server: String,
        #[command(flatten)]
        token: TokenArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: plumb_cli::ClusterCommand,
    },
    /// DORA metrics from the deployment history: deployment frequency,
    /// lead time for changes, change failure rate, time to restore.
    Dora {
        /// The server's URL.
        #[arg(long, env = "PLUMB_SERVER", default_value = plumb_cli::DEFAULT_SERVER)]
        server: String,
        #[command(flatten)]
        token: TokenArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// One application only.
        #[arg(long)]
        app: Option<String>,
        /// The applications of one project only.
        #[arg(long)]
        project: Option<String>,
        /// How far back: 30d, 12h, 90m.
        #[arg(long, default_value = "30d")]
        window: String,
        /// How long after a deployment a failed sync or Degraded health
        /// counts against it.
        #[arg(long, default_value = "1h")]
        failure_window: String,
    },
    /// Log in to a server: keeps a session token in ~/.config/plumb/config.
    Login(LoginArgs),
    /// Forget the session token of a server.
    Logout {
        /// The server's URL.
        #[arg(env = "PLUMB_SERVER", default_value = plumb_cli::DEFAULT_SERVER)]
        server: String,
    },
    /// Local accounts: API tokens and passwords.
    Account {
        /// The server's URL.
        #[arg(long, env = "PLUMB_SERVER", default_value = plumb_cli::DEFAULT_SERVER, global = true)]
        server: String,
        #[command(flatten)]
        token: TokenArgs,
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Render an application's sources offline: plain files, Kustomize,
    /// Helm or Jsonnet, from an Application file or from flags.
    Render(Box<render::RenderArgs>),
    /// Print a CRD Plumb installs (as committed in manifests/crds/).
    Crd {
        /// Which one.
        #[arg(value_enum, default_value = "application")]
        which: CrdKind,
    },
    /// Print Plumb's version and, when a cluster is reachable, the cluster's.
    Version {
        /// Path to a kubeconfig.
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
    },
}

/// Where a client command's token comes from: this flag, else
/// `PLUMB_AUTH_TOKEN`, else `ARGOCD_AUTH_TOKEN`, else the config file's
/// token for the server.
#[derive(clap::Args)]
struct TokenArgs {
    /// The token to authenticate with.
    #[arg(long, env = "PLUMB_AUTH_TOKEN", global = true, hide_env_values = true)]
    auth_token: Option<String>,
}

impl TokenArgs {
    /// A client of `server` with the token found.
    fn client(&self, server: &str) -> Result<Client> {
        let client = Client::new(server)?;
        let token = match self
            .auth_token
            .clone()
            .or_else(|| std::env::var("ARGOCD_AUTH_TOKEN").ok())
            .filter(|t| !t.trim().is_empty())
        {
            Some(token) => Some(token),
            None => {
                let path = plumb_cli::config::Config::path()?;
                plumb_cli::config::Config::load(&path)?
                    .token(client.base_url())
                    .map(str::to_string)
            }
        };
        Ok(client.with_token(token.as_deref())?)
    }
}

/// `plumb login`.
#[derive(clap::Args)]
struct LoginArgs {
    /// The server's URL.
    #[arg(env = "PLUMB_SERVER", default_value = plumb_cli::DEFAULT_SERVER)]
    server: String,
    /// The account.
    #[arg(long, default_value = "admin")]
    username: String,
    /// The password (default: asked for, or read from stdin's first line).
    #[arg(long)]
    password: Option<String>,
}

/// `plumb account ...`.
#[derive(Subcommand)]
enum AccountCommand {
    /// Print a new API token of an account (for CI): needs `accounts,
    /// update` on it, and the account the `apiKey` capability.
    GenerateToken {
        /// The account (default: the one logged in).
        #[arg(long)]
        account: Option<String>,
        /// How long it is valid: `30m`, `24h`, `90d`, seconds; 0 for ever.
        #[arg(long, default_value = "0", value_parser = plumb_cli::parse_duration)]
        expires_in: u64,
        /// The token's id (default: a random one); revoke it by this id.
        #[arg(long, default_value = "")]
        id: String,
    },
    /// Revoke an API token of an account by its id.
    RevokeToken {
        /// The account (default: the one logged in).
        #[arg(long)]
        account: Option<String>,
        /// The token's id.
        #[arg(long)]
        id: String,
    },
    /// Change the logged-in account's password (both read from stdin's
    /// first two lines when not given).
    UpdatePassword {
        /// The current password.
        #[arg(long)]
        current_password: Option<String>,
        /// The new password.
        #[arg(long)]
        new_password: Option<String>,
    },
}

/// `plumb appset ...`.
#[derive(Subcommand)]
enum AppSetCli {
    #[command(flatten)]
    Server(AppSetCommand),
    /// Print the Applications an ApplicationSet file generates (offline:
    /// git is read into a local cache, the clusters generator sees only
    /// the in-cluster destination); with --server, what it would create,
    /// update and delete on that server's cluster.
    Generate(Box<appset::GenerateArgs>),
}

/// The CRDs `plumb crd` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    /// `applications.argoproj.io`.
    Application,
    /// `applicationsets.argoproj.io`.
    Applicationset,
    /// `appprojects.argoproj.io`.
    Appproject,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Files or folders of Application manifests (watched).
    #[arg(long, num_args = 1..)]
    apps: Vec<PathBuf>,
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// Address of the HTTP API and UI.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where repositories and history are kept.
    #[arg(long, default_value = "plumb-data")]
    data_dir: PathBuf,
    /// Namespace whose Application objects are managed.
    #[arg(long, default_value = "plumb")]
    namespace: String,
    /// More namespaces whose Application objects are managed (Argo CD's
    /// `application.namespaces`), comma-separated: names, globs (`team-*`)
    /// or regular expressions between slashes. Such an application is named
    /// NAMESPACE/NAME.
    #[arg(long, value_delimiter = ',')]
    app_namespaces: Vec<String>,
    /// Deploy only to these namespaces of Plumb's own cluster,
    /// comma-separated (a namespace-scoped install: a Role in each is all
    /// the RBAC needed). Each kind is watched per namespace, cluster-scoped
    /// kinds not at all; an application aiming elsewhere, or declaring a
    /// cluster-scoped object, gets a ComparisonError and nothing is
    /// written. The CRDs are not installed: an admin applies them.
    #[arg(long, value_delimiter = ',')]
    managed_namespaces: Vec<String>,
    /// Seconds between fetches of each repository.
    #[arg(long, default_value_t = 60)]
    repo_poll_interval: u64,
    /// Applications reconciled at once.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Do not watch Application objects in the cluster (and do not install
    /// their CRD).
    #[arg(long)]
    no_cluster_apps: bool,
    /// The largest manifest file Plumb reads, in bytes; a larger one is an
    /// error on its application.
    #[arg(long, default_value_t = ControllerOptions::default().max_manifest_size)]
    max_manifest_size: u64,
    /// The largest git object (a file's blob) Plumb fetches, in bytes; 0
    /// for no limit. A repository holding a larger one cannot be fetched:
    /// an error on its applications. Bounds memory: each object is held
    /// whole while a fetched pack is indexed.
    #[arg(long, default_value_t = ControllerOptions::default().max_git_object_size)]
    max_git_object_size: u64,
    /// Seconds a repository fetch may take before it is abandoned.
    #[arg(long, default_value_t = ControllerOptions::default().fetch_timeout.as_secs())]
    fetch_timeout: u64,
    /// Seconds the first list of a kind may take; an application whose kind
    /// cannot be listed (RBAC, say) gets a condition, the others go on.
    #[arg(long, default_value_t = ControllerOptions::default().watch_timeout.as_secs())]
    watch_timeout: u64,
    /// Seconds a CustomResourceDefinition of a sync may take to become
    /// Established.
    #[arg(long, default_value_t = ControllerOptions::default().crd_timeout.as_secs())]
    crd_timeout: u64,
    /// Seconds one apply, dry run, read or delete of an object may take.
    #[arg(long, default_value_t = ControllerOptions::default().request_timeout.as_secs())]
    request_timeout: u64,
    /// The window of the `plumb_dora_*` metrics (30d, 12h, or seconds).
    #[arg(long, default_value = "30d", value_parser = plumb_cli::parse_duration)]
    dora_window: u64,
    /// How long after a deployment a failed sync or Degraded health counts
    /// against it in the `plumb_dora_*` metrics.
    #[arg(long, default_value = "1h", value_parser = plumb_cli::parse_duration)]
    dora_failure_window: u64,
    /// Run several replicas: only the holder of the Lease `--lease-name` in
    /// `--namespace` syncs and writes; every replica serves the API.
    #[arg(long)]
    leader_elect: bool,
    /// The Lease of leader election (`NAME-I` for shard I with --shards).
    #[arg(long, default_value = "plumb-controller")]
    lease_name: String,
    /// Spread the applications over this many shards, each held by one
    /// replica through its own Lease (by a stable hash of the name); a
    /// replica's shards go to the others when it disappears. Implies
    /// --leader-elect.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    shards: u16,
    /// This replica's name in the Lease (default: $POD_NAME, else the host
    /// name and the process id).
    #[arg(long)]
    identity: Option<String>,
    /// Seconds without a renewal after which another replica takes over.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Seconds after its last renewal the leader stops writing (less than
    /// --lease-duration).
    #[arg(long, default_value_t = 10)]
    renew_deadline: u64,
    /// Seconds between renewals and attempts.
    #[arg(long, default_value_t = 2)]
    retry_period: u64,
    /// What ApplicationSets may do to the Applications they generate:
    /// create-only, create-update, create-delete or sync.
    #[arg(long, default_value = "sync", value_parser = parse_policy)]
    appset_policy: ApplicationsSync,
    /// Let each ApplicationSet's `syncPolicy.applicationsSync` override
    /// --appset-policy.
    #[arg(long)]
    appset_policy_override: bool,
    /// Hold an ApplicationSet pass that would delete at least this percent
    /// of its applications until a person confirms it (100: only a pass
    /// that would delete all of them).
    #[arg(long, default_value_t = ControllerOptions::default().appset_max_delete_percent,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    appset_max_delete_percent: u8,
    /// A YAML file of Argo CD `argocd-cm` keys (custom health in
    /// `resource.customizations...`), read at start. Its keys win over the
    /// `argocd-cm` ConfigMap's in --namespace.
    #[arg(long)]
    resource_customizations: Option<PathBuf>,
    /// Turn authentication and RBAC off: every request acts as the admin.
    /// Only for a server nobody else can reach.
    #[arg(long)]
    insecure_disable_auth: bool,
    /// Ask for a token on /metrics too (open by default, for Prometheus).
    #[arg(long)]
    metrics_require_auth: bool,
    /// A server-wide ignoreDifferences rule, as Argo CD's `argocd-cm` key
    /// `resource.customizations.ignoreDifferences.GROUP_KIND` (`apps_Deployment`,
    /// `Service`, `all`) with FILE holding its YAML value (repeatable).
    #[arg(long = "ignore-differences", value_name = "GROUP_KIND=FILE")]
    ignore_differences: Vec<String>,
    #[command(flatten)]
    tools: ToolArgs,
}

/// The rules of `--ignore-differences GROUP_KIND=FILE`, checked.
fn server_ignore_rules(
    flags: &[String],
) -> Result<Vec<plumb_engine::model::ResourceIgnoreDifferences>> {
    use plumb_engine::ignore;
    let rules = flags
        .iter()
        .map(|flag| {
            let (group_kind, file) = flag.split_once('=').with_context(|| {
                format!("--ignore-differences {flag}: expected GROUP_KIND=FILE")
            })?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--ignore-differences: cannot read {file}"))?;
            Ok(ignore::server_rule(group_kind, &text)?)
        })
        .collect::<Result<Vec<_>>>()?;
    ignore::IgnoreRules::compile(&rules)?;
    Ok(rules)
}

fn parse_policy(name: &str) -> Result<ApplicationsSync, String> {
    ApplicationsSync::parse(name)
}

/// How Helm, Kustomize and Jsonnet run.
#[derive(clap::Args)]
struct ToolArgs {
    /// The helm binary (default: `helm` on PATH).
    #[arg(long)]
    helm_bin: Option<PathBuf>,
    /// The kustomize binary (default: `kustomize` on PATH, else `kubectl kustomize`).
    #[arg(long)]
    kustomize_bin: Option<PathBuf>,
    /// Seconds one `helm` or `kustomize` run, or one Jsonnet evaluation, may take.
    #[arg(long, default_value_t = ToolOptions::default().timeout.as_secs())]
    tool_timeout: u64,
    /// The most a tool may print, in bytes.
    #[arg(long, default_value_t = ToolOptions::default().max_output)]
    max_tool_output: u64,
    /// Tool runs at once.
    #[arg(long, default_value_t = ToolOptions::default().concurrency)]
    tool_concurrency: usize,
}

impl ToolArgs {
    fn options(self, root: PathBuf) -> ToolOptions {
        ToolOptions {
            helm_bin: self.helm_bin,
            kustomize_bin: self.kustomize_bin,
            timeout: Duration::from_secs(self.tool_timeout.max(1)),
            max_output: self.max_tool_output,
            concurrency: self.tool_concurrency.max(1),
            root,
        }
    }
}

fn main() {
    if let Err(e) = run() {
        // `{:#}` prints the chain of causes: "cannot listen on ...: Address in use".
        eprintln!("plumb: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    // kube (ring) and gix's reqwest both use rustls; one process-wide
    // provider keeps them from disagreeing at the first handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::App {
            server,
            token,
            output,
            command,
        } => {
            let client = token.client(&server)?;
            let outcome =
                plumb_cli::run_app_command(&client, command, output, &mut std::io::stdout())?;
            // `app diff` exits 1 on differences, `app sync` on a failed sync.
            std::process::exit(outcome.exit_code().into());
        }
        Command::Appset {
            server,
            token,
            output,
            command,
        } => match command {
            AppSetCli::Server(command) => {
                let client =
                    token.client(server.as_deref().unwrap_or(plumb_cli::DEFAULT_SERVER))?;
                Ok(plumb_cli::run_appset_command(
                    &client,
                    command,
                    output,
                    &mut std::io::stdout(),
                )?)
            }
            AppSetCli::Generate(args) => {
                appset::generate(&args, server.as_deref(), output, &mut std::io::stdout())
            }
        },
        Command::Cluster {
            server,
            token,
            output,
            command,
        } => {
            let client = token.client(&server)?;
            Ok(plumb_cli::run_cluster_command(
                &client,
                command,
                output,
                &mut std::io::stdout(),
            )?)
        }
        Command::Dora {
            server,
            token,
            output,
            app,
            project,
            window,
            failure_window,
        } => {
            let client = token.client(&server)?;
            let report =
                client.dora(app.as_deref(), project.as_deref(), &window, &failure_window)?;
            Ok(plumb_cli::print_dora(
                &mut std::io::stdout(),
                output,
                &report,
            )?)
        }
        Command::Login(args) => login(args),
        Command::Logout { server } => {
            let client = Client::new(&server)?;
            let path = plumb_cli::config::Config::path()?;
            let mut config = plumb_cli::config::Config::load(&path)?;
            if config.remove(client.base_url()) {
                config.save(&path)?;
                println!("Logged out from {}", client.base_url());
            } else {
                println!("Not logged in to {}", client.base_url());
            }
            Ok(())
        }
        Command::Account {
            server,
            token,
            command,
        } => account(&token.client(&server)?, command),
        Command::Render(args) => emit(&render::render(*args)?),
        Command::Crd { which } => emit(&match which {
            CrdKind::Application => plumb_engine::model::application_crd_yaml(),
            CrdKind::Applicationset => plumb_engine::appset::applicationset_crd_yaml(),
            CrdKind::Appproject => plumb_engine::project::appproject_crd_yaml(),
        }),
        Command::Version { kubeconfig } => runtime()?.block_on(version(kubeconfig)),
        Command::Serve(args) => runtime()?.block_on(serve(*args)),
    }
}

/// `plumb login`: asks the server for a session and keeps its token.
fn login(args: LoginArgs) -> Result<()> {
    let client = Client::new(&args.server)?;
    let password = match args.password {
        Some(password) => password,
        None => read_secret_line("Password: ")?,
    };
    let token = client.login(&args.username, &password)?;
    let path = plumb_cli::config::Config::path()?;
    let mut config = plumb_cli::config::Config::load(&path)?;
    config.set(client.base_url(), &args.username, &token);
    config.save(&path)?;
    println!(
        "Logged in to {} as {} (token kept in {})",
        client.base_url(),
        args.username,
        path.display()
    );
    Ok(())
}

/// `plumb account ...`.
fn account(client: &Client, command: AccountCommand) -> Result<()> {
    let me = |account: Option<String>| -> Result<String> {
        match account {
            Some(a) => Ok(a),
            None => {
                let info = client.userinfo()?;
                info["username"]
                    .as_str()
                    .map(str::to_string)
                    .context("the server did not say who is logged in: pass --account")
            }
        }
    };
    match command {
        AccountCommand::GenerateToken {
            account,
            expires_in,
            id,
        } => {
            let account = me(account)?;
            println!("{}", client.generate_token(&account, expires_in, &id)?);
        }
        AccountCommand::RevokeToken { account, id } => {
            let account = me(account)?;
            client.revoke_token(&account, &id)?;
            println!("Revoked token {id} of {account}");
        }
        AccountCommand::UpdatePassword {
            current_password,
            new_password,
        } => {
            let current = match current_password {
                Some(p) => p,
                None => read_secret_line("Current password: ")?,
            };
            let new = match new_password {
                Some(p) => p,
                None => read_secret_line("New password: ")?,
            };
            client.update_password(&current, &new)?;
            println!("Password updated; log in again with the new one");
        }
    }
    Ok(())
}

/// A line of stdin without its newline; on a terminal, asked for with
/// `prompt` on stderr and not echoed.
fn read_secret_line(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let tty = rustix::termios::isatty(&stdin);
    let saved = if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(attrs) = &saved {
            let mut quiet = attrs.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(attrs) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &attrs);
        eprintln!();
    }
    read.context("cannot read the password from stdin")?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(
        !line.is_empty(),
        "no password given (--password, or a line on stdin)"
    );
    Ok(line)
}

/// Writes to stdout; a reader that went away (`plumb render | head`) is a
/// normal end, not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLUMB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("PLUMB_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn version(kubeconfig: Option<PathBuf>) -> Result<()> {
    println!("plumb {}", env!("CARGO_PKG_VERSION"));
    let client = cluster::connect(kubeconfig.as_deref(), None).await?;
    let info = client
        .apiserver_version()
        .await
        .context("cannot reach the cluster")?;
    println!("cluster {} ({})", info.git_version, info.platform);
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    init_logs();
    let metrics = Arc::new(plumb_engine::metrics::Metrics::default());
    let client = cluster::connect_counted(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        Some(&metrics),
    )
    .await?;
    let cancel = CancellationToken::new();
    let namespaced = args.managed_namespaces.iter().any(|n| !n.trim().is_empty());
    if namespaced && !args.no_cluster_apps {
        // A namespace-scoped install may not read CRDs: an admin applies
        // them once (manifests/crds.yaml).
        tracing::info!("--managed-namespaces: the CRDs are not installed by Plumb");
    }
    if !args.no_cluster_apps && !namespaced {
        let crd_timeout = Duration::from_secs(args.crd_timeout.max(1));
        let crds = [
            plumb_engine::model::application_crd(),
            plumb_engine::appset::applicationset_crd(),
            plumb_engine::project::appproject_crd(),
        ];
        for crd in crds {
            cluster::ensure_crd(&cluster::Cluster::new(client.clone()), crd, crd_timeout)
                .await
                .context(
                    "cannot install the Application, ApplicationSet and AppProject CRDs (use --no-cluster-apps to manage --apps only)",
                )?;
        }
    }
    let auth = if args.insecure_disable_auth {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--insecure-disable-auth): anyone who can reach {} can do anything, as the admin",
            args.listen
        );
        plumb_api::Auth::disabled()
    } else {
        let accounts = plumb_engine::accounts::Accounts::start(
            client.clone(),
            &args.namespace,
            Duration::from_secs(args.watch_timeout.max(1)),
            cancel.clone(),
        )
        .await
        .context("cannot set up accounts (argocd-secret, argocd-cm, argocd-rbac-cm)")?;
        plumb_api::Auth::enabled(accounts, args.metrics_require_auth)
    };
    let shards = if args.leader_elect || args.shards > 1 {
        if args.renew_deadline >= args.lease_duration || args.retry_period >= args.renew_deadline {
            anyhow::bail!(
                "--retry-period ({}s) < --renew-deadline ({}s) < --lease-duration ({}s) is needed",
                args.retry_period,
                args.renew_deadline,
                args.lease_duration
            );
        }
        let identity = args.identity.clone().unwrap_or_else(|| {
            std::env::var("POD_NAME").unwrap_or_else(|_| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "plumb".into());
                format!("{host}_{}", std::process::id())
            })
        });
        tracing::info!(%identity, lease = %args.lease_name, shards = args.shards, "leader election on");
        let mut lease =
            plumb_engine::lease::LeaseOptions::new(&args.namespace, &args.lease_name, &identity);
        lease.lease_duration = Duration::from_secs(args.lease_duration);
        lease.renew_deadline = Duration::from_secs(args.renew_deadline);
        lease.retry_period = Duration::from_secs(args.retry_period.max(1));
        plumb_engine::lease::elect_shards(
            client.clone(),
            lease,
            usize::from(args.shards),
            cancel.clone(),
        )
    } else {
        plumb_engine::lease::Shards::single(plumb_engine::lease::Leadership::always())
    };
    if args.no_cluster_apps && !args.app_namespaces.is_empty() {
        anyhow::bail!("--app-namespaces needs Application objects: drop --no-cluster-apps");
    }
    let options = ControllerOptions {
        namespace: args.namespace,
        app_namespaces: args.app_namespaces,
        managed_namespaces: args.managed_namespaces,
        apps: args.apps,
        repo_poll_interval: Duration::from_secs(args.repo_poll_interval.max(1)),
        workers: args.workers,
        watch_cluster_apps: !args.no_cluster_apps,
        max_manifest_size: args.max_manifest_size,
        max_git_object_size: args.max_git_object_size,
        fetch_timeout: Duration::from_secs(args.fetch_timeout.max(1)),
        watch_timeout: Duration::from_secs(args.watch_timeout.max(1)),
        crd_timeout: Duration::from_secs(args.crd_timeout.max(1)),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        shards,
        dora_window: Duration::from_secs(args.dora_window.max(1)),
        dora_failure_window: Duration::from_secs(args.dora_failure_window.max(1)),
        appset_policy: args.appset_policy,
        appset_policy_override: args.appset_policy_override,
        appset_max_delete_percent: args.appset_max_delete_percent,
        resource_customizations: args.resource_customizations,
        ignore_differences: server_ignore_rules(&args.ignore_differences)?,
        tools: args.tools.options(args.data_dir.join("tools")),
        data_dir: args.data_dir,
        metrics,
        ..Default::default()
    };
    let leadership = options.shards.lease(0).clone();
    let controller = Controller::start(client, options, cancel.clone()).await?;
    tracing::info!(listen = %args.listen, "serving the API and UI at http://{}", args.listen);
    let shutdown = {
        let cancel = cancel.clone();
        async move {
            // SIGINT (Ctrl-C) or SIGTERM (Kubernetes stopping the Pod).
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            cancel.cancel();
        }
    };
    plumb_api::serve(Arc::new(controller), auth, args.listen, shutdown).await?;
    cancel.cancel();
    // A held Lease is released, so that another replica takes over at once.
    let _ = tokio::time::timeout(Duration::from_secs(5), leadership.ended()).await;
    Ok(())
}
