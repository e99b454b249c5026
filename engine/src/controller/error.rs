//! Why a reconcile could not compare an application, typed so that the
//! controller can tell a transient failure (back off and retry) from a
//! permanent one (report it and wait for a change).

use std::time::Duration;

use crate::live::WatchError;
use crate::source::SourceError;
use crate::store::StoreError;

/// The error of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// No application of that name.
    #[error("application {0} not found")]
    NotFound(String),
    /// The application has no source.
    #[error("spec.source.repoURL is required")]
    NoSource,
    /// The source sets fields Plumb does not support (a config management
    /// plugin, say), which would change what is rendered.
    #[error(
        "{0}: not supported by Plumb; nothing is rendered or synced until the field is removed"
    )]
    UnsupportedSource(String),
    /// The destination names no cluster of the catalogue (cluster
    /// Secrets and in-cluster), or one scoped to another project.
    #[error("{0}")]
    Destination(#[from] plumb_core::clusters::DestinationError),
    /// The destination cluster's Secret does not make a client.
    #[error("{0}")]
    DestinationConfig(String),
    /// The destination cluster does not answer (or refuses Plumb): its
    /// prober queues the application again when it answers.
    #[error(
        "cluster '{cluster}' ({server}) is unreachable: {message}; nothing is compared, synced or pruned there until it answers"
    )]
    Unreachable {
        /// The cluster's name.
        cluster: String,
        /// Its server.
        server: String,
        /// What the last probe met (never a credential).
        message: String,
    },
    /// The application's project refuses it (missing project, repository,
    /// destination or namespace not permitted).
    #[error("{0}; nothing is synced or pruned")]
    Project(#[from] plumb_core::project::Refusal),
    /// The project refuses an object of the render (its kind or its
    /// namespace): nothing of the render is applied or pruned.
    #[error("{0}; nothing of the application is applied or pruned")]
    ProjectResource(#[from] plumb_core::project::ResourceRefusal),
    /// Plumb manages only some namespaces of the destination
    /// (`--managed-namespaces`), and the application aims elsewhere or
    /// declares a cluster-scoped object: nothing is applied or pruned.
    #[error("{0}; nothing of the application is applied or pruned")]
    NotManaged(String),
    /// The repository URL, a fetch, the revision or the files failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The fetch did not finish in time; it was abandoned.
    #[error(
        "fetching {url} did not finish within {timeout:?} (--fetch-timeout); it is tried again later"
    )]
    FetchTimeout {
        /// The repository.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// Plumb is stopping.
    #[error("Plumb is stopping")]
    Cancelled,
    /// The application's sources did not render (or could not be read).
    #[error(transparent)]
    Render(#[from] crate::tools::app::AppRenderError),
    /// A rendered object cannot be applied as it is (unknown kind, twice
    /// declared, ...).
    #[error("{0}")]
    Invalid(String),
    /// A hook's annotations cannot be read (an unknown hook type, say):
    /// nothing is synced rather than everything but that hook.
    #[error("{0}")]
    Hooks(String),
    /// An `ignoreDifferences` rule (the application's or the server's)
    /// cannot be used: nothing is compared, synced or pruned with rules
    /// that would compare something else than asked.
    #[error("{0}; nothing is synced or pruned until it is fixed")]
    IgnoreDifferences(#[from] plumb_core::ignore::RuleError),
    /// Discovery failed while resolving kinds.
    #[error("{0}")]
    Discovery(String),
    /// Kinds whose first list did not complete.
    #[error("{}; nothing is synced or pruned until Plumb can list it", list(.0))]
    Unwatched(Vec<WatchError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("{0} task failed")]
    Task(&'static str),
}

impl From<crate::destinations::DestError> for ReconcileError {
    fn from(e: crate::destinations::DestError) -> ReconcileError {
        match e {
            crate::destinations::DestError::Unknown(e) => ReconcileError::Destination(e),
            e @ crate::destinations::DestError::Config { .. } => {
                ReconcileError::DestinationConfig(e.to_string())
            }
        }
    }
}

fn list(errors: &[WatchError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ReconcileError {
    /// Worth trying again without anyone changing anything: the network, the
    /// API server, a fetch that timed out, a kind not listable yet (RBAC may
    /// be fixed). The others wait for a change of the application or of Git.
    pub fn is_spurious(&self) -> bool {
        match self {
            ReconcileError::Source(e) => e.is_spurious(),
            ReconcileError::Render(e) => e.is_spurious(),
            ReconcileError::FetchTimeout { .. }
            | ReconcileError::Discovery(_)
            | ReconcileError::Unwatched(_)
            | ReconcileError::Store(_)
            | ReconcileError::Task(_) => true,
            ReconcileError::NotFound(_)
            | ReconcileError::NoSource
            | ReconcileError::Destination(_)
            | ReconcileError::DestinationConfig(_)
            | ReconcileError::Unreachable { .. }
            | ReconcileError::UnsupportedSource(_)
            | ReconcileError::Cancelled
            | ReconcileError::Invalid(_)
            | ReconcileError::Hooks(_)
            | ReconcileError::Project(_)
            | ReconcileError::ProjectResource(_)
            | ReconcileError::NotManaged(_)
            | ReconcileError::IgnoreDifferences(_) => false,
        }
    }

    /// The type of the condition it becomes on the application.
    pub fn condition_type(&self) -> &'static str {
        match self {
            ReconcileError::NoSource
            | ReconcileError::Destination(_)
            | ReconcileError::UnsupportedSource(_)
            | ReconcileError::Project(_) => "InvalidSpecError",
            _ => "ComparisonError",
        }
    }
}

/// The wait before retrying after `failures` transient failures in a row:
/// 5 s, doubling, at most 5 minutes (jitter is added when queueing).
pub(super) fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(5)
        .saturating_mul(1 << failures.min(6))
        .min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_back_off_to_five_minutes() {
        let waits: Vec<u64> = (0..9).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn only_failures_that_may_pass_by_themselves_are_retried() {
        let timeout = ReconcileError::FetchTimeout {
            url: "u".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.is_spurious());
        assert!(ReconcileError::Unwatched(Vec::new()).is_spurious());
        assert!(!ReconcileError::NoSource.is_spurious());
        assert!(!ReconcileError::Invalid("twice".into()).is_spurious());
        assert_eq!(
            ReconcileError::NoSource.condition_type(),
            "InvalidSpecError"
        );
        assert_eq!(
            ReconcileError::Invalid("x".into()).condition_type(),
            "ComparisonError"
        );
        let unknown = ReconcileError::Destination(
            plumb_core::clusters::DestinationError::UnknownName("prod".into()),
        );
        assert_eq!(unknown.condition_type(), "InvalidSpecError");
        assert!(!unknown.is_spurious());
        // An unreachable cluster is retried by its prober, not by backoff.
        let down = ReconcileError::Unreachable {
            cluster: "prod".into(),
            server: "https://prod".into(),
            message: "connection refused".into(),
        };
        assert_eq!(down.condition_type(), "ComparisonError");
        assert!(!down.is_spurious());
        assert!(down.to_string().contains("cluster 'prod'"), "{down}");
    }
}
