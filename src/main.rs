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
/// background thread).
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
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: plumb_cli::ClusterCommand,
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
            output,
            command,
        } => {
            let client = Client::new(&server)?;
            let outcome =
                plumb_cli::run_app_command(&client, command, output, &mut std::io::stdout())?;
            // `app diff` exits 1 on differences, `app sync` on a failed sync.
            std::process::exit(outcome.exit_code().into());
        }
        Command::Appset {
            server,
            output,
            command,
        } => match command {
            AppSetCli::Server(command) => {
                let client = Client::new(server.as_deref().unwrap_or(plumb_cli::DEFAULT_SERVER))?;
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
            output,
            command,
        } => {
            let client = Client::new(&server)?;
            Ok(plumb_cli::run_cluster_command(
                &client,
                command,
                output,
                &mut std::io::stdout(),
            )?)
        }
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
    if !args.no_cluster_apps {
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
    if args.no_cluster_apps && !args.app_namespaces.is_empty() {
        anyhow::bail!("--app-namespaces needs Application objects: drop --no-cluster-apps");
    }
    let options = ControllerOptions {
        namespace: args.namespace,
        app_namespaces: args.app_namespaces,
        apps: args.apps,
        repo_poll_interval: Duration::from_secs(args.repo_poll_interval.max(1)),
        workers: args.workers,
        watch_cluster_apps: !args.no_cluster_apps,
        max_manifest_size: args.max_manifest_size,
        fetch_timeout: Duration::from_secs(args.fetch_timeout.max(1)),
        watch_timeout: Duration::from_secs(args.watch_timeout.max(1)),
        crd_timeout: Duration::from_secs(args.crd_timeout.max(1)),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
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
    let controller = Controller::start(client, options, cancel.clone()).await?;
    tracing::info!(listen = %args.listen, "serving the API and UI at http://{}", args.listen);
    let shutdown = {
        let cancel = cancel.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        }
    };
    plumb_api::serve(Arc::new(controller), args.listen, shutdown).await?;
    cancel.cancel();
    Ok(())
}
