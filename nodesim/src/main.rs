//! `plumb-nodesim`: simulated nodes for Plumb's local control plane.
//!
//! There is no kubelet and no container engine where Plumb is built and
//! tested, so this stands in for the nodes: it registers Nodes that stay
//! Ready (their Leases renewed), and reports the status of the Pods the
//! real kube-scheduler binds to them as a kubelet would, without running
//! anything. The real kube-controller-manager then makes Deployments
//! Available and Jobs Complete or Failed.
//!
//! ```text
//! main ─┬─ keeper  Nodes: register, status, Lease every 10 s   (node: pure)
//!       └─ pods    watch bound Pods ─► pod::decide (pure) ─► write status / delete
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::jiff::Timestamp;
use tokio_util::sync::CancellationToken;

mod keeper;
mod node;
mod pod;
mod pods;

#[derive(Parser)]
#[command(
    name = "plumb-nodesim",
    version,
    about = "Simulated Kubernetes nodes: Ready Nodes and kubelet-style Pod statuses, no containers"
)]
struct Args {
    /// The kubeconfig of the cluster (default: KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// The nodes are named PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "plumb-node")]
    name_prefix: String,
    /// Each node's CPU capacity.
    #[arg(long, default_value = "8")]
    cpu: String,
    /// Each node's memory capacity.
    #[arg(long, default_value = "32Gi")]
    memory: String,
    /// How many Pods each node takes.
    #[arg(long, default_value = "250")]
    pods: String,
    /// How long a container that exits (a Job's) runs first, in seconds.
    #[arg(long, default_value_t = 2)]
    run_seconds: i64,
}

/// Now, in whole seconds: the API keeps no finer times, and a status
/// decided twice in one second must come out the same.
pub(crate) fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLUMB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One TLS provider for the whole process (see DESIGN.md, Dependencies).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();

    let config = match &args.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;

    let nodes: Vec<node::SimNode> = (0..args.nodes)
        .map(|i| node::SimNode::new(&args.name_prefix, i))
        .collect();
    let capacity = node::Capacity {
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
    };
    let timing = pod::Timing {
        run_seconds: args.run_seconds,
        ..Default::default()
    };

    let stop = CancellationToken::new();
    let ready = CancellationToken::new();
    let keeper = tokio::spawn(keeper::keep(
        client.clone(),
        nodes.clone(),
        capacity,
        stop.clone(),
        ready.clone(),
    ));
    let views = nodes.iter().map(|n| n.view.clone()).collect();
    let pods = tokio::spawn(pods::report(client, views, timing, stop.clone()));
    tokio::spawn({
        let ready = ready.clone();
        async move {
            ready.cancelled().await;
            tracing::info!(nodes = nodes.len(), "nodes registered and alive");
        }
    });

    shutdown_signal().await;
    tracing::info!("stopping");
    stop.cancel();
    let _ = keeper.await;
    let _ = pods.await;
    Ok(())
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
