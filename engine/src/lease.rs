//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does it: one holder at a time, renewed every
//! `retry_period`; a candidate takes the Lease over only when it has seen
//! no renewal for `lease_duration` (measured on its own clock since it
//! last saw the record change, so clock skew between replicas does not
//! matter); every write of the record is conditional on its
//! `resourceVersion`, so two candidates never both win.
//!
//! The holder counts as leader only until `renew_deadline` after its last
//! successful renewal, shorter than `lease_duration`: a replica cut off
//! from the API server stops writing before anyone else may start.
//! [`Leadership::is_leader`] is read before every write (the [`Fence`]
//! of `cluster`, the status writer, ApplicationSets), so losing the Lease
//! stops writes at once. A replica shutting down releases the Lease, so
//! that another takes over without waiting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How an election runs.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// The Lease's namespace (`--namespace`).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its holderIdentity).
    pub identity: String,
    /// How long a holder's silence lets another take over.
    pub lease_duration: Duration,
    /// How long after its last renewal the holder still writes.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate tries.
    pub retry_period: Duration,
}

impl LeaseOptions {
    /// client-go's defaults (15 s, 10 s, 2 s) for `identity`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseOptions {
        LeaseOptions {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
struct State {
    /// Until when this replica may write; `None` when it does not hold
    /// the Lease.
    valid_until: Mutex<Option<Instant>>,
    /// The holder last seen (this replica's identity when it leads).
    holder: Mutex<String>,
    /// Whether this replica leads, as the election loop last decided.
    changes: watch::Sender<bool>,
    /// Always leader (no election).
    always: bool,
    /// Told when the election has ended (the Lease released).
    ended: tokio::sync::Notify,
}

/// Whether this replica may write; cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: Arc<State>,
}

impl Leadership {
    /// No election: this replica always writes (one `plumb serve`).
    pub fn always() -> Leadership {
        Leadership {
            state: Arc::new(State {
                valid_until: Mutex::new(None),
                holder: Mutex::new(String::new()),
                changes: watch::channel(true).0,
                always: true,
                ended: tokio::sync::Notify::new(),
            }),
        }
    }

    fn elected() -> Leadership {
        Leadership {
            state: Arc::new(State {
                valid_until: Mutex::new(None),
                holder: Mutex::new(String::new()),
                changes: watch::channel(false).0,
                always: false,
                ended: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Whether this replica may write now.
    pub fn is_leader(&self) -> bool {
        self.state.always
            || self
                .state
                .valid_until
                .lock()
                .expect("lease lock is never poisoned")
                .is_some_and(|until| Instant::now() < until)
    }

    /// Whether leader election is on.
    pub fn elects(&self) -> bool {
        !self.state.always
    }

    /// The holder last seen (empty before the first read, or with no
    /// election).
    pub fn holder(&self) -> String {
        self.state
            .holder
            .lock()
            .expect("lease lock is never poisoned")
            .clone()
    }

    /// Waits until the election has ended after its cancellation (every
    /// held Lease released); at once without an election.
    pub async fn ended(&self) {
        if self.state.always {
            return;
        }
        self.state.ended.notified().await;
    }

    /// Told each time this replica becomes or stops being the leader.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.changes.subscribe()
    }

    fn set(&self, valid_until: Option<Instant>, holder: &str) {
        *self
            .state
            .valid_until
            .lock()
            .expect("lease lock is never poisoned") = valid_until;
        holder.clone_into(
            &mut self
                .state
                .holder
                .lock()
                .expect("lease lock is never poisoned"),
        );
        let leads = valid_until.is_some();
        self.state.changes.send_if_modified(|now| {
            let changed = *now != leads;
            *now = leads;
            changed
        });
    }
}

fn lease_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"),
        "leases",
    )
}

/// A Lease time: RFC 3339 with microseconds, as MicroTime is written.
fn micro_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// What a candidate reads of the Lease: who holds it and what changes
/// with each renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: String,
    renew: String,
    transitions: i64,
}

fn record_of(lease: &Value) -> Record {
    let spec = &lease["spec"];
    Record {
        holder: spec["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        renew: spec["renewTime"].as_str().unwrap_or_default().to_string(),
        transitions: spec["leaseTransitions"].as_i64().unwrap_or(0),
    }
}

/// Starts the election; the returned [`Leadership`] follows it until
/// `cancel`, when a held Lease is released.
pub fn elect(client: kube::Client, options: LeaseOptions, cancel: CancellationToken) -> Leadership {
    let shards = elect_shards(client, options, 1, cancel);
    shards.leases[0].clone()
}

/// Applications spread over `count` shards, each with its Lease, and
/// which of them this replica holds.
#[derive(Clone, Debug)]
pub struct Shards {
    leases: Arc<Vec<Leadership>>,
}

impl Shards {
    /// One shard, held as `leadership` says.
    pub fn single(leadership: Leadership) -> Shards {
        Shards {
            leases: Arc::new(vec![leadership]),
        }
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.leases.len()
    }

    /// The shard of an application: a stable hash of its name (FNV-1a,
    /// as Argo CD's legacy sharding hashes) modulo the shard count.
    pub fn of(&self, app: &str) -> usize {
        plumb_core::shard::shard_of(app, self.leases.len())
    }

    /// The Lease of shard `index`.
    pub fn lease(&self, index: usize) -> &Leadership {
        &self.leases[index.min(self.leases.len() - 1)]
    }

    /// The Lease of an application's shard.
    pub fn lease_of(&self, app: &str) -> &Leadership {
        self.lease(self.of(app))
    }

    /// Whether this replica writes for `app` now.
    pub fn owns(&self, app: &str) -> bool {
        self.lease_of(app).is_leader()
    }

    /// The shards this replica holds now.
    pub fn held(&self) -> Vec<usize> {
        (0..self.count())
            .filter(|&i| self.lease(i).is_leader())
            .collect()
    }
}

/// The name of shard `index`'s Lease: `name` alone with one shard,
/// `name-INDEX` with several.
fn shard_lease_name(name: &str, index: usize, count: usize) -> String {
    if count == 1 {
        name.to_string()
    } else {
        format!("{name}-{index}")
    }
}

/// Starts the election of `count` shards, each over its own Lease: the
/// holder renews it; a free or expired one is taken by a replica that
/// holds no shard at once, and by one holding `k` shards only after `k`
/// lease durations more, so that replicas started together take one
/// shard each, and the shards of a replica that disappears go to the
/// others. Until `cancel`, when the held Leases are released.
pub fn elect_shards(
    client: kube::Client,
    options: LeaseOptions,
    count: usize,
    cancel: CancellationToken,
) -> Shards {
    let count = count.max(1);
    let shards = Shards {
        leases: Arc::new((0..count).map(|_| Leadership::elected()).collect()),
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, &options.namespace, &lease_resource());
    let handles = shards.clone();
    // Each replica looks at the shards in its own order, so that replicas
    // starting together go for different ones first.
    let first = plumb_core::shard::shard_of(&options.identity, count);
    tokio::spawn(async move {
        let mut observed: Vec<Option<(Record, Instant)>> = vec![None; count];
        loop {
            for step in 0..count {
                let index = (first + step) % count;
                let name = shard_lease_name(&options.name, index, count);
                let handle = handles.lease(index).clone();
                let held = handles.held().len() - usize::from(handle.is_leader());
                let extra = options.lease_duration * u32::try_from(held).unwrap_or(u32::MAX);
                let started = Instant::now();
                match try_once(&api, &options, &name, extra, &mut observed[index]).await {
                    Ok(Some(holder)) if holder == options.identity => {
                        if !handle.is_leader() {
                            tracing::info!(identity = %options.identity, lease = %name, "took the lease");
                        }
                        handle.set(Some(started + options.renew_deadline), &holder);
                    }
                    Ok(holder) => {
                        if handle.is_leader() {
                            tracing::warn!(identity = %options.identity, lease = %name, "lost the lease; writes stop");
                        }
                        handle.set(None, holder.as_deref().unwrap_or_default());
                    }
                    Err(e) => {
                        // The deadline of the last renewal still holds;
                        // past it, is_leader is false on its own.
                        tracing::warn!(lease = %name, error = %e, "cannot read or renew the lease");
                        let until = *handle
                            .state
                            .valid_until
                            .lock()
                            .expect("lease lock is never poisoned");
                        if until.is_some_and(|until| Instant::now() >= until) {
                            tracing::warn!(identity = %options.identity, lease = %name, "lease not renewed in time; writes stop");
                            let holder = handle.holder();
                            handle.set(None, &holder);
                        }
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(options.retry_period) => {}
            }
        }
        for index in 0..count {
            let handle = handles.lease(index).clone();
            if handle.is_leader() {
                handle.set(None, "");
                release(
                    &api,
                    &options,
                    &shard_lease_name(&options.name, index, count),
                )
                .await;
            }
        }
        // Told once every held Lease is released.
        for index in 0..count {
            handles.lease(index).state.ended.notify_one();
        }
    });
    shards
}

/// One round: reads the Lease, renews or takes it when it may. Returns
/// the holder after the round (`None`: nobody).
async fn try_once(
    api: &Api<DynamicObject>,
    options: &LeaseOptions,
    name: &str,
    extra: Duration,
    observed: &mut Option<(Record, Instant)>,
) -> Result<Option<String>, kube::Error> {
    let now = micro_time(time::OffsetDateTime::now_utc());
    let duration = options.lease_duration.as_secs().max(1);
    let Some(current) = api.get_opt(name).await? else {
        // Taken only by a candidate that waits no longer, or after it saw
        // it missing for `extra`.
        let missing = Record {
            holder: String::new(),
            renew: String::new(),
            transitions: -1,
        };
        if observed.as_ref().is_none_or(|(seen, _)| *seen != missing) {
            *observed = Some((missing, Instant::now()));
        }
        if observed
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < extra)
        {
            return Ok(None);
        }
        let lease: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": options.namespace},
            "spec": {
                "holderIdentity": options.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0,
            },
        }))
        .expect("a Lease is a DynamicObject");
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Some(options.identity.clone())),
            // Another candidate created it first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(e),
        };
    };
    let value = serde_json::to_value(&current).expect("a DynamicObject always serializes");
    let record = record_of(&value);
    if observed.as_ref().is_none_or(|(seen, _)| *seen != record) {
        *observed = Some((record.clone(), Instant::now()));
    }
    let ours = record.holder == options.identity;
    // Free (released) or silent for the lease duration, and for `extra`
    // on top (a candidate holding shards already lets others go first).
    let silent = observed
        .as_ref()
        .map_or(Duration::ZERO, |(_, at)| at.elapsed());
    let expired = if record.holder.is_empty() {
        silent >= extra
    } else {
        silent >= options.lease_duration + extra
    };
    if !ours && !expired {
        return Ok(Some(record.holder));
    }
    let mut lease = value;
    let spec = &mut lease["spec"];
    spec["renewTime"] = json!(now);
    spec["leaseDurationSeconds"] = json!(duration);
    if !ours {
        spec["holderIdentity"] = json!(options.identity);
        spec["acquireTime"] = json!(now);
        spec["leaseTransitions"] = json!(record.transitions + 1);
    }
    let lease: DynamicObject = serde_json::from_value(lease).expect("a Lease is a DynamicObject");
    // Conditional on the resourceVersion read: a write in between (a
    // renewal, another candidate) makes this one fail with 409.
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Some(options.identity.clone())),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (holder emptied), so that a successor need not wait
/// for it to expire.
async fn release(api: &Api<DynamicObject>, options: &LeaseOptions, name: &str) {
    let Ok(Some(current)) = api.get_opt(name).await else {
        return;
    };
    let mut lease = serde_json::to_value(&current).expect("a DynamicObject always serializes");
    if record_of(&lease).holder != options.identity {
        return;
    }
    lease["spec"]["holderIdentity"] = json!("");
    lease["spec"]["leaseDurationSeconds"] = json!(1);
    if let Ok(lease) = serde_json::from_value::<DynamicObject>(lease) {
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => {
                tracing::info!(identity = %options.identity, lease = %name, "released the lease")
            }
            Err(e) => tracing::warn!(error = %e, "cannot release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_leads_and_an_election_starts_as_a_follower() {
        assert!(Leadership::always().is_leader());
        assert!(!Leadership::always().elects());
        let elected = Leadership::elected();
        assert!(!elected.is_leader());
        elected.set(Some(Instant::now() + Duration::from_secs(5)), "me");
        assert!(elected.is_leader());
        assert_eq!(elected.holder(), "me");
        // Past the renew deadline, it stops leading without being told.
        elected.set(Some(Instant::now()), "me");
        assert!(!elected.is_leader());
    }

    #[test]
    fn lease_times_have_microseconds() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_764_756_000_123_456_789)
            .expect("a time");
        assert_eq!(micro_time(t), "2025-12-03T10:00:00.123456Z");
    }
}
