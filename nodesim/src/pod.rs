//! What a kubelet would report for one Pod on a simulated node: a pure
//! function of the Pod, the node it is bound to and the time. It is not the
//! watch nor the writes (`pods` does those), and no container ever runs.
//!
//! The conventions (the README's "The local control plane" says them too):
//!
//! - An image whose registry host ends with `.invalid`
//!   (`registry.invalid/never:1`) can never be pulled: its container waits
//!   in `ImagePullBackOff` and the Pod stays `Pending`, never Ready.
//! - Init containers complete at once (exit code 0).
//! - A container's exit code is the Pod's `plumb.dev/sim-exit-code`
//!   annotation when it is an integer; else 1 when its command (or, without
//!   one, its args) starts with `false`; else `N` when its last word is the
//!   shell's `exit N`; else 0.
//! - Under `restartPolicy: Always` a container whose exit code is 0 runs for
//!   good (a server). Every other container runs for `Timing::run_seconds`,
//!   then exits: under `Never` it stays terminated (the Pod ends `Succeeded`
//!   or `Failed`), under `OnFailure` one that exited 0 stays terminated, and
//!   a container that exits non-zero under `Always` or `OnFailure` restarts
//!   after a back-off that doubles up to a cap (`CrashLoopBackOff`,
//!   `restartCount` grows), as a kubelet restarts it.
//! - `activeDeadlineSeconds` counts from `startTime`; past it the Pod is
//!   `Failed` with reason `DeadlineExceeded`.
//! - A Pod with a `deletionTimestamp` is deleted at once (its containers
//!   "stopped"), as a kubelet finishes a graceful deletion.
//!
//! Times are whole seconds (the API keeps no more), and every time in the
//! status is derived from `startTime`, so deciding again later gives the same
//! status until something really changes: a no-op writes nothing.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The Pod annotation that sets every container's exit code.
pub const EXIT_CODE_ANNOTATION: &str = "plumb.dev/sim-exit-code";

/// How long simulated containers take, in seconds.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How long a container that exits runs before it does.
    pub run_seconds: i64,
    /// The first back-off before a crashed container restarts; it doubles
    /// at each restart.
    pub backoff_seconds: i64,
    /// The longest back-off (a kubelet's is five minutes).
    pub max_backoff_seconds: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            run_seconds: 2,
            backoff_seconds: 10,
            max_backoff_seconds: 300,
        }
    }
}

/// The node a Pod is bound to, as the Pod's status shows it.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// The Node's name (the Pod's `spec.nodeName`).
    pub name: String,
    /// The node's InternalIP, the Pod's `hostIP`.
    pub host_ip: String,
    /// The first three octets of the node's Pod subnet, e.g. `10.244.1`.
    pub pod_subnet: String,
}

/// What to do about one Pod.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// The status is right: write nothing. Look again after this many
    /// seconds (a container exits, a back-off ends, a deadline passes), or
    /// only when the Pod changes (`None`).
    Wait(Option<i64>),
    /// Replace the Pod's status with this one (it differs).
    Write(Box<PodStatus>),
    /// The Pod is being deleted: its containers are stopped, so the Pod
    /// goes now (grace period 0), as a kubelet finishes it.
    Delete,
}

/// Decides what a kubelet would do about `pod` on `node` at `now`.
pub fn decide(pod: &Pod, node: &NodeView, now: Timestamp, timing: &Timing) -> Decision {
    if pod.metadata.deletion_timestamp.is_some() {
        return Decision::Delete;
    }
    let current = pod.status.clone().unwrap_or_default();
    if matches!(current.phase.as_deref(), Some("Succeeded" | "Failed")) {
        // A kubelet never moves a Pod out of a terminal phase.
        return Decision::Wait(None);
    }
    let (desired, recheck) = desired_status(pod, current.clone(), node, now, timing);
    if desired == current {
        Decision::Wait(recheck)
    } else {
        Decision::Write(Box::new(desired))
    }
}

/// A Pod's restart policy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Restart {
    Always,
    OnFailure,
    Never,
}

/// What becomes of one (pullable, initialized) container.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// It runs until the Pod is deleted.
    Runs,
    /// It runs for a while, then exits with this code and stays terminated.
    Exits(i32),
    /// It runs for a while, exits with this (non-zero) code, and is
    /// restarted after a back-off, again and again.
    CrashLoops(i32),
}

fn fate(restart: Restart, exit_code: i32) -> Fate {
    match (restart, exit_code) {
        (Restart::Never, code) => Fate::Exits(code),
        (Restart::Always, 0) => Fate::Runs,
        (Restart::OnFailure, 0) => Fate::Exits(0),
        (_, code) => Fate::CrashLoops(code),
    }
}

/// The earliest of the moments (seconds from now) worth looking again at.
#[derive(Default)]
struct Recheck(Option<i64>);

impl Recheck {
    fn at(&mut self, seconds: i64) {
        let seconds = seconds.max(1);
        self.0 = Some(self.0.map_or(seconds, |s| s.min(seconds)));
    }
}

fn desired_status(
    pod: &Pod,
    mut status: PodStatus,
    node: &NodeView,
    now: Timestamp,
    timing: &Timing,
) -> (PodStatus, Option<i64>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let start = status.start_time.as_ref().map_or(now, |t| t.0);
    let elapsed = now.as_second() - start.as_second();
    let restart = match spec.restart_policy.as_deref() {
        Some("Never") => Restart::Never,
        Some("OnFailure") => Restart::OnFailure,
        _ => Restart::Always,
    };
    let annotated_exit = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXIT_CODE_ANNOTATION))
        .and_then(|v| v.trim().parse::<i32>().ok());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut recheck = Recheck::default();

    // Init containers complete at once, in order, unless one cannot pull.
    let mut blocked = false;
    let mut init_statuses = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let image = c.image.clone().unwrap_or_default();
        let state = if blocked {
            waiting("PodInitializing", None)
        } else if unpullable(&image) {
            blocked = true;
            waiting("ImagePullBackOff", Some(back_off_pulling(&image)))
        } else {
            terminated(0, "Completed", start, start, container_id(&uid, &c.name, 0))
        };
        let id = state
            .terminated
            .as_ref()
            .and_then(|t| t.container_id.clone());
        init_statuses.push(container_status(c, state, None, false, 0, id));
    }
    let initialized = !blocked;

    let mut statuses = Vec::new();
    for c in &spec.containers {
        let image = c.image.clone().unwrap_or_default();
        let s = if !initialized {
            container_status(c, waiting("PodInitializing", None), None, false, 0, None)
        } else if unpullable(&image) {
            let state = waiting("ImagePullBackOff", Some(back_off_pulling(&image)));
            container_status(c, state, None, false, 0, None)
        } else {
            let code = annotated_exit.unwrap_or_else(|| exit_code_of(c));
            let fate = fate(restart, code);
            started_container(c, fate, &uid, start, elapsed, timing, &mut recheck)
        };
        statuses.push(s);
    }

    let deadline_passed = match spec.active_deadline_seconds {
        Some(deadline) if elapsed >= deadline => true,
        Some(deadline) => {
            recheck.at(deadline - elapsed);
            false
        }
        None => false,
    };
    let (phase, reason, message) = if deadline_passed {
        let end = at(start, spec.active_deadline_seconds.unwrap_or_default());
        for s in &mut statuses {
            kill(s, end);
        }
        (
            "Failed",
            Some("DeadlineExceeded".to_string()),
            Some("Pod was active on the node longer than the specified deadline".to_string()),
        )
    } else {
        (phase(initialized, restart, &statuses), None, None)
    };
    if matches!(phase, "Succeeded" | "Failed") {
        // Nothing will change any more.
        recheck.0 = None;
    }

    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = init_statuses
        .iter()
        .filter(|s| !is_terminated_ok(s))
        .map(|s| s.name.as_str())
        .collect();
    let ready = if terminal {
        (false, Some("PodCompleted".to_string()), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let init = if incomplete.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotInitialized".to_string()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };
    let old = status.conditions.take().unwrap_or_default();
    let scheduled = old
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&[], "PodScheduled", (true, None, None), now));
    let mut conditions = vec![
        condition(&old, "Initialized", init, now),
        condition(&old, "Ready", ready.clone(), now),
        condition(&old, "ContainersReady", ready, now),
        scheduled,
    ];
    conditions.extend(old.into_iter().filter(|c| {
        !matches!(
            c.type_.as_str(),
            "Initialized" | "Ready" | "ContainersReady" | "PodScheduled"
        )
    }));

    let pod_ip = format!("{}.{}", node.pod_subnet, 2 + ip_suffix(&uid));
    status.phase = Some(phase.to_string());
    status.reason = reason;
    status.message = message;
    status.conditions = Some(conditions);
    status.host_ip = Some(node.host_ip.clone());
    status.pod_ips = Some(vec![PodIP { ip: pod_ip.clone() }]);
    status.pod_ip = Some(pod_ip);
    status.start_time = Some(Time(start));
    status.init_container_statuses = (!init_statuses.is_empty()).then_some(init_statuses);
    status.container_statuses = Some(statuses);
    (status, recheck.0)
}

/// The status of a container that was pulled and started: what its fate
/// makes of it `elapsed` seconds after the Pod started.
fn started_container(
    c: &Container,
    fate: Fate,
    uid: &str,
    start: Timestamp,
    elapsed: i64,
    timing: &Timing,
    recheck: &mut Recheck,
) -> ContainerStatus {
    let run = timing.run_seconds;
    match fate {
        Fate::Runs => {
            let id = container_id(uid, &c.name, 0);
            container_status(c, running(start), None, true, 0, Some(id))
        }
        Fate::Exits(_) if elapsed < run => {
            recheck.at(run - elapsed);
            let id = container_id(uid, &c.name, 0);
            container_status(c, running(start), None, true, 0, Some(id))
        }
        Fate::Exits(code) => {
            let reason = if code == 0 { "Completed" } else { "Error" };
            let id = container_id(uid, &c.name, 0);
            let state = terminated(code, reason, start, at(start, run), id.clone());
            container_status(c, state, None, false, 0, Some(id))
        }
        Fate::CrashLoops(code) => {
            // Attempt k starts at s_k, runs `run` seconds, exits, and waits
            // min(backoff * 2^k, max) before attempt k + 1.
            let (mut attempt, mut begin) = (0i32, 0i64);
            let back_off = |k: i32| {
                let doubled = timing
                    .backoff_seconds
                    .saturating_mul(1i64.checked_shl(k.min(30) as u32).unwrap_or(i64::MAX));
                doubled.min(timing.max_backoff_seconds)
            };
            while begin + run + back_off(attempt) <= elapsed {
                begin += run + back_off(attempt);
                attempt += 1;
            }
            let exited = |k: i32, from: i64| {
                terminated(
                    code,
                    "Error",
                    at(start, from),
                    at(start, from + run),
                    container_id(uid, &c.name, k),
                )
            };
            if elapsed < begin + run {
                recheck.at(begin + run - elapsed);
                let last = (attempt > 0).then(|| {
                    let previous = begin - back_off(attempt - 1) - run;
                    exited(attempt - 1, previous)
                });
                let id = container_id(uid, &c.name, attempt);
                container_status(c, running(at(start, begin)), last, true, attempt, Some(id))
            } else {
                let wait = back_off(attempt);
                recheck.at(begin + run + wait - elapsed);
                let message = format!("back-off {wait}s restarting failed container={}", c.name);
                let state = waiting("CrashLoopBackOff", Some(message));
                let last = Some(exited(attempt, begin));
                container_status(c, state, last, false, attempt, None)
            }
        }
    }
}

/// The Pod's phase from its containers, by a kubelet's rules.
fn phase(initialized: bool, restart: Restart, statuses: &[ContainerStatus]) -> &'static str {
    if !initialized {
        return "Pending";
    }
    let (mut running, mut stopped, mut succeeded, mut waiting) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            // Waiting to restart after it exited.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == 0 {
        "Pending"
    } else if restart == Restart::Always {
        "Running"
    } else if stopped == succeeded {
        "Succeeded"
    } else if restart == Restart::OnFailure {
        "Running"
    } else {
        "Failed"
    }
}

/// Whether an image can never be pulled: its registry host ends with
/// `.invalid` (RFC 2606's never-resolving top-level domain).
pub fn unpullable(image: &str) -> bool {
    let Some((first, _)) = image.split_once('/') else {
        // One component (`nginx`): an image on the default registry.
        return false;
    };
    let host = first.split(':').next().unwrap_or_default();
    host.to_ascii_lowercase().ends_with(".invalid")
}

/// A container's exit code from its command: `false` exits 1, a last word
/// `exit N` exits N, anything else 0.
fn exit_code_of(c: &Container) -> i32 {
    let words: Vec<&str> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(String::as_str)
        .collect();
    if words
        .first()
        .is_some_and(|w| *w == "false" || w.ends_with("/false"))
    {
        return 1;
    }
    words
        .last()
        .and_then(|w| w.trim().strip_prefix("exit "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn is_terminated_ok(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

/// A running container killed at `end` (exit code 137, as after SIGKILL).
fn kill(s: &mut ContainerStatus, end: Timestamp) {
    let Some(state) = s.state.as_ref() else {
        return;
    };
    if let Some(r) = &state.running {
        let begin = r.started_at.as_ref().map_or(end, |t| t.0);
        let id = s.container_id.clone().unwrap_or_default();
        s.state = Some(terminated(137, "Error", begin, end, id));
        s.ready = false;
        s.started = Some(false);
    }
}

fn container_status(
    c: &Container,
    state: ContainerState,
    last: Option<ContainerState>,
    ready: bool,
    restarts: i32,
    id: Option<String>,
) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    // Only a container that never started lacks a pulled image.
    let pulled = id.is_some() || last.is_some();
    ContainerStatus {
        name: c.name.clone(),
        image_id: if pulled {
            image_id(&image)
        } else {
            String::new()
        },
        image,
        ready,
        restart_count: restarts,
        started: Some(state.running.is_some()),
        container_id: id,
        last_state: Some(last.unwrap_or_default()),
        state: Some(state),
        ..Default::default()
    }
}

fn running(since: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(since)),
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

fn terminated(
    exit_code: i32,
    reason: &str,
    from: Timestamp,
    to: Timestamp,
    id: String,
) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(reason.to_string()),
            started_at: Some(Time(from)),
            finished_at: Some(Time(to)),
            container_id: Some(id),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn back_off_pulling(image: &str) -> String {
    format!("Back-off pulling image \"{image}\"")
}

/// A condition of `type_` with `(status, reason, message)`, keeping the
/// transition time of the old one when its status did not change.
fn condition(
    old: &[PodCondition],
    type_: &str,
    (status, reason, message): (bool, Option<String>, Option<String>),
    now: Timestamp,
) -> PodCondition {
    let status = if status { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(since),
        reason,
        message,
        ..Default::default()
    }
}

fn at(start: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_second(start.as_second().saturating_add(seconds)).unwrap_or(start)
}

fn sha_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A stable image digest, as a runtime reports `repository@sha256:...`.
fn image_id(image: &str) -> String {
    let repository = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    };
    format!("{repository}@sha256:{}", sha_hex(image))
}

/// A stable container ID for attempt `attempt` of container `name`.
fn container_id(uid: &str, name: &str, attempt: i32) -> String {
    format!("plumbsim://{}", sha_hex(&format!("{uid}/{name}/{attempt}")))
}

/// The last octet of a Pod's IP, from its uid: 0..250.
fn ip_suffix(uid: &str) -> u32 {
    let digest = Sha256::digest(uid.as_bytes());
    (u32::from(digest[0]) << 8 | u32::from(digest[1])) % 251
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node() -> NodeView {
        NodeView {
            name: "plumb-node-0".into(),
            host_ip: "10.0.0.2".into(),
            pod_subnet: "10.244.0".into(),
        }
    }

    const START: i64 = 1_800_000_000;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(START + second).expect("a valid time")
    }

    /// A Pod bound to `node()`, with `spec` laid over one `main` container
    /// of `nginx:1.25`, and `annotations`.
    fn pod(spec: Value, annotations: Value) -> Pod {
        let mut full = json!({
            "nodeName": "plumb-node-0",
            "containers": [{"name": "main", "image": "nginx:1.25"}],
        });
        if let (Some(full), Value::Object(spec)) = (full.as_object_mut(), spec) {
            full.extend(spec);
        }
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "annotations": annotations},
            "spec": full,
            "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2027-01-15T08:00:00Z"}
            ]},
        }))
        .expect("a valid Pod")
    }

    /// The Pod after the simulator wrote its status at each of `seconds`
    /// (from the first write), as the watch would bring it back.
    fn run(mut pod: Pod, seconds: &[i64]) -> Pod {
        for &s in seconds {
            if let Decision::Write(status) = decide(&pod, &node(), at(s), &Timing::default()) {
                pod.status = Some(*status);
            }
        }
        pod
    }

    /// phase, Ready, and each container's state as `running`,
    /// `waiting:REASON` or `terminated:CODE`, with its restart count.
    fn summary(pod: &Pod) -> (String, String, Vec<String>) {
        let status = pod.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let containers = status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| {
                let state = c.state.clone().unwrap_or_default();
                let state = if state.running.is_some() {
                    "running".to_string()
                } else if let Some(w) = state.waiting {
                    format!("waiting:{}", w.reason.unwrap_or_default())
                } else if let Some(t) = state.terminated {
                    format!("terminated:{}", t.exit_code)
                } else {
                    "none".to_string()
                };
                format!("{}={state}/{}", c.name, c.restart_count)
            })
            .collect();
        (status.phase.unwrap_or_default(), ready, containers)
    }

    /// What a case expects: phase, Ready, and [`summary`]'s containers.
    type Expected = (&'static str, &'static str, &'static [&'static str]);
    /// A case: what it shows, the Pod's spec and annotations, the seconds
    /// at which the simulator looks, and what it expects then.
    type Case = (&'static str, Value, Value, &'static [i64], Expected);

    #[test]
    fn pods_go_through_the_phases_a_kubelet_reports() {
        let never = json!({"restartPolicy": "Never"});
        let on_failure = json!({"restartPolicy": "OnFailure"});
        let fail = json!({"plumb.dev/sim-exit-code": "1"});
        let none = json!({});
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("a server runs and is ready", json!({}), none.clone(), &[0, 3600],
                ("Running", "True", &["main=running/0"])),
            ("a Job's container runs first", never.clone(), none.clone(), &[0, 1],
                ("Running", "True", &["main=running/0"])),
            ("a Job's container exits 0: Succeeded", never.clone(), none.clone(), &[0, 2],
                ("Succeeded", "False", &["main=terminated:0/0"])),
            ("the annotation fails it: Failed", never.clone(), fail.clone(), &[0, 2],
                ("Failed", "False", &["main=terminated:1/0"])),
            ("`false` fails it",
                json!({"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["false"]}]}),
                none.clone(), &[0, 2], ("Failed", "False", &["main=terminated:1/0"])),
            ("`sh -c 'exit 3'` exits 3",
                json!({"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]}),
                none.clone(), &[0, 2], ("Failed", "False", &["main=terminated:3/0"])),
            ("OnFailure, exit 0: Succeeded", on_failure.clone(), none.clone(), &[0, 5],
                ("Succeeded", "False", &["main=terminated:0/0"])),
            ("OnFailure, exit 1: back-off after the crash", on_failure.clone(), fail.clone(), &[0, 2],
                ("Running", "False", &["main=waiting:CrashLoopBackOff/0"])),
            ("OnFailure, exit 1: restarted after the back-off", on_failure.clone(), fail.clone(), &[0, 2, 12],
                ("Running", "True", &["main=running/1"])),
            ("Always, exit 1: crashes again, longer back-off", json!({}), fail.clone(), &[0, 2, 12, 14, 33],
                ("Running", "False", &["main=waiting:CrashLoopBackOff/1"])),
            ("Always, exit 1: second restart", json!({}), fail.clone(), &[0, 2, 12, 14, 34],
                ("Running", "True", &["main=running/2"])),
            ("an unpullable image never runs",
                json!({"containers": [{"name": "main", "image": "registry.invalid/never:1"}]}),
                none.clone(), &[0, 3600], ("Pending", "False", &["main=waiting:ImagePullBackOff/0"])),
            ("one unpullable image of two keeps the Pod Pending",
                json!({"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "example.invalid/none"}]}),
                none.clone(), &[0], ("Pending", "False", &["a=running/0", "b=waiting:ImagePullBackOff/0"])),
            ("an unpullable init container blocks the rest",
                json!({"initContainers": [{"name": "init", "image": "registry.invalid/x"}]}),
                none.clone(), &[0], ("Pending", "False", &["main=waiting:PodInitializing/0"])),
            ("init containers complete at once",
                json!({"initContainers": [{"name": "init", "image": "busybox"}]}),
                none.clone(), &[0], ("Running", "True", &["main=running/0"])),
            ("past activeDeadlineSeconds: Failed",
                json!({"activeDeadlineSeconds": 30}), none.clone(), &[0, 30],
                ("Failed", "False", &["main=terminated:137/0"])),
            ("before activeDeadlineSeconds: Running",
                json!({"activeDeadlineSeconds": 30}), none.clone(), &[0, 29],
                ("Running", "True", &["main=running/0"])),
        ];
        for (what, spec, annotations, seconds, (phase, ready, containers)) in cases {
            let after = run(pod(spec, annotations), seconds);
            let (p, r, c) = summary(&after);
            assert_eq!(
                (
                    p.as_str(),
                    r.as_str(),
                    c.iter().map(String::as_str).collect::<Vec<_>>()
                ),
                (phase, ready, containers.to_vec()),
                "{what}"
            );
        }
    }

    #[test]
    fn a_status_that_is_right_is_not_written_again() {
        let cases: Vec<(&str, Value, Value, i64, Option<i64>)> = vec![
            (
                "a server: never looked at again",
                json!({}),
                json!({}),
                100,
                None,
            ),
            (
                "a Job's container: looked at when it exits",
                json!({"restartPolicy": "Never"}),
                json!({}),
                0,
                Some(2),
            ),
            (
                "a crash loop: looked at when the back-off ends",
                json!({}),
                json!({"plumb.dev/sim-exit-code": "2"}),
                5,
                Some(7),
            ),
            (
                "a deadline: looked at when it passes",
                json!({"activeDeadlineSeconds": 600}),
                json!({}),
                100,
                Some(500),
            ),
        ];
        for (what, spec, annotations, later, recheck) in cases {
            let written = run(pod(spec, annotations), &[0]);
            let settled = run(written, &[later]);
            assert_eq!(
                decide(&settled, &node(), at(later), &Timing::default()),
                Decision::Wait(recheck),
                "{what}"
            );
        }
    }

    #[test]
    fn a_running_pod_reports_what_a_kubelet_does() {
        let p = run(pod(json!({}), json!({})), &[0]);
        let status = p.status.clone().unwrap_or_default();
        assert_eq!(status.host_ip.as_deref(), Some("10.0.0.2"));
        let ip = status.pod_ip.clone().unwrap_or_default();
        assert!(ip.starts_with("10.244.0."), "{ip}");
        assert_eq!(status.pod_ips.unwrap_or_default()[0].ip, ip);
        assert_eq!(status.start_time, Some(Time(at(0))));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"), "kept");
        let types: Vec<(String, String)> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        let t = |a: &str| (a.to_string(), "True".to_string());
        assert_eq!(
            types,
            [
                t("Initialized"),
                t("Ready"),
                t("ContainersReady"),
                t("PodScheduled")
            ]
        );
        let c = &status.container_statuses.unwrap_or_default()[0];
        assert!(c.ready && c.started == Some(true) && c.restart_count == 0);
        assert!(c.image_id.starts_with("nginx@sha256:"), "{}", c.image_id);
        assert!(c.container_id.is_some());
    }

    #[test]
    fn a_pod_being_deleted_is_deleted_whatever_its_phase() {
        for phase in ["Pending", "Running", "Succeeded", "Failed"] {
            let mut p = run(pod(json!({}), json!({})), &[0]);
            if let Some(s) = p.status.as_mut() {
                s.phase = Some(phase.into());
            }
            p.metadata.deletion_timestamp = Some(Time(at(5)));
            assert_eq!(
                decide(&p, &node(), at(6), &Timing::default()),
                Decision::Delete,
                "{phase}"
            );
        }
    }

    #[test]
    fn a_terminal_pod_is_left_alone() {
        let done = run(pod(json!({"restartPolicy": "Never"}), json!({})), &[0, 2]);
        assert_eq!(
            decide(&done, &node(), at(100), &Timing::default()),
            Decision::Wait(None)
        );
    }

    #[test]
    fn registry_hosts_ending_in_invalid_never_pull() {
        let cases = [
            ("registry.invalid/never:1", true),
            ("example.invalid/none", true),
            ("Registry.INVALID:5000/a/b", true),
            ("nginx:1.25", false),
            ("library/invalid", false),
            ("ghcr.io/x.invalid/y", false),
            ("gcr.io/heptio-images/ks-guestbook-demo:0.2", false),
        ];
        for (image, never) in cases {
            assert_eq!(unpullable(image), never, "{image}");
        }
    }
}
