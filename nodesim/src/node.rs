//! The simulated Nodes as objects: what each registers, the status it
//! reports and its Lease. Pure; `keeper` writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::pod::NodeView;

/// The label every simulated Node carries (`dev-cluster` waits for them).
pub const NODE_LABEL: &str = "plumb.dev/sim-node";

/// The namespace of the nodes' Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What each simulated node offers.
#[derive(Clone, Debug)]
pub struct Capacity {
    pub cpu: String,
    pub memory: String,
    pub pods: String,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            cpu: "8".into(),
            memory: "32Gi".into(),
            pods: "250".into(),
        }
    }
}

/// One simulated node: its name and addresses.
#[derive(Clone, Debug)]
pub struct SimNode {
    pub view: NodeView,
    /// The node's Pod CIDR, `10.244.<index>.0/24`.
    pub pod_cidr: String,
}

impl SimNode {
    /// Node `index` (0-based) of the simulator whose nodes are `prefix-N`.
    pub fn new(prefix: &str, index: usize) -> SimNode {
        let octet = index % 250;
        SimNode {
            view: NodeView {
                name: format!("{prefix}-{index}"),
                host_ip: format!("10.0.0.{}", octet + 2),
                pod_subnet: format!("10.244.{octet}"),
            },
            pod_cidr: format!("10.244.{octet}.0/24"),
        }
    }

    pub fn name(&self) -> &str {
        &self.view.name
    }

    /// The Node to register (its status is written separately, as a
    /// kubelet does).
    pub fn object(&self) -> Node {
        let labels = BTreeMap::from([
            (
                "kubernetes.io/hostname".to_string(),
                self.name().to_string(),
            ),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            (NODE_LABEL.to_string(), "true".to_string()),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some(self.name().to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some(self.pod_cidr.clone()),
                pod_cidrs: Some(vec![self.pod_cidr.clone()]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// The status the node should report, or `None` when `current` is
    /// right. The heartbeats move only when `heartbeat_every` seconds have
    /// passed since the last (the Lease is what keeps the node alive; this
    /// is a kubelet's slower status report).
    pub fn status(
        &self,
        capacity: &Capacity,
        current: Option<&NodeStatus>,
        now: Timestamp,
        heartbeat_every: i64,
    ) -> Option<NodeStatus> {
        let old = current.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
        let heartbeat = old
            .iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_heartbeat_time.clone())
            .filter(|t| now.as_second() - t.0.as_second() < heartbeat_every)
            .unwrap_or(Time(now));
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: Some(heartbeat.clone()),
                last_transition_time: Some(since),
            }
        };
        let resources = BTreeMap::from([
            ("cpu".to_string(), Quantity(capacity.cpu.clone())),
            ("memory".to_string(), Quantity(capacity.memory.clone())),
            ("pods".to_string(), Quantity(capacity.pods.clone())),
        ]);
        let mut desired = current.cloned().unwrap_or_default();
        desired.capacity = Some(resources.clone());
        desired.allocatable = Some(resources);
        desired.conditions = Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "plumb-nodesim is posting ready status (no containers run)",
            ),
        ]);
        desired.addresses = Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: self.view.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: self.name().to_string(),
            },
        ]);
        desired.daemon_endpoints = Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint { port: 10250 }),
        });
        desired.node_info = Some(NodeSystemInfo {
            architecture: "amd64".to_string(),
            operating_system: "linux".to_string(),
            os_image: "plumb-nodesim".to_string(),
            kernel_version: "simulated".to_string(),
            container_runtime_version: "plumbsim://0.1.0".to_string(),
            kubelet_version: "v1.20.2-plumb-nodesim".to_string(),
            kube_proxy_version: "v1.20.2-plumb-nodesim".to_string(),
            machine_id: self.name().to_string(),
            system_uuid: self.name().to_string(),
            boot_id: self.name().to_string(),
            ..Default::default()
        });
        (current != Some(&desired)).then_some(desired)
    }

    /// The node's Lease renewed at `now` (over `current` when there is one).
    pub fn lease(&self, current: Option<Lease>, now: Timestamp, duration_seconds: i32) -> Lease {
        let mut lease = current.unwrap_or_else(|| Lease {
            metadata: ObjectMeta {
                name: Some(self.name().to_string()),
                namespace: Some(LEASE_NAMESPACE.to_string()),
                ..Default::default()
            },
            spec: None,
        });
        let mut spec = lease.spec.take().unwrap_or_default();
        spec.holder_identity = Some(self.name().to_string());
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(MicroTime(now));
        lease.spec = Some(spec);
        lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("a valid time")
    }

    #[test]
    fn a_new_node_reports_ready_with_its_capacity() {
        let node = SimNode::new("plumb-node", 1);
        let status = node
            .status(&Capacity::default(), None, at(0), 60)
            .expect("a first status is written");
        let conditions = status.conditions.clone().unwrap_or_default();
        let ready = conditions.iter().find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status.as_str()), Some("True"));
        let capacity = status.capacity.clone().unwrap_or_default();
        assert_eq!(capacity.get("pods"), Some(&Quantity("250".into())));
        assert_eq!(node.view.host_ip, "10.0.0.3");
        assert_eq!(node.pod_cidr, "10.244.1.0/24");
    }

    #[test]
    fn the_status_is_written_again_only_when_a_heartbeat_is_due() {
        let node = SimNode::new("n", 0);
        let capacity = Capacity::default();
        let first = node.status(&capacity, None, at(0), 60);
        let cases = [
            (0, false),
            (30, false),
            (59, false),
            (60, true),
            (600, true),
        ];
        for (later, written) in cases {
            let again = node.status(&capacity, first.as_ref(), at(later), 60);
            assert_eq!(again.is_some(), written, "{later} s later");
            if let Some(again) = again {
                let ready = again.conditions.unwrap_or_default();
                let ready = ready.iter().find(|c| c.type_ == "Ready").cloned();
                let ready = ready.expect("a Ready condition");
                assert_eq!(ready.last_heartbeat_time, Some(Time(at(later))));
                assert_eq!(
                    ready.last_transition_time,
                    Some(Time(at(0))),
                    "no transition"
                );
            }
        }
    }

    #[test]
    fn a_lease_is_renewed_in_place() {
        let node = SimNode::new("n", 0);
        let first = node.lease(None, at(0), 40);
        let mut stored = first.clone();
        stored.metadata.resource_version = Some("7".into());
        let renewed = node.lease(Some(stored), at(10), 40);
        assert_eq!(renewed.metadata.resource_version.as_deref(), Some("7"));
        let spec = renewed.spec.expect("a spec");
        assert_eq!(spec.renew_time, Some(MicroTime(at(10))));
        assert_eq!(spec.holder_identity.as_deref(), Some("n-0"));
    }
}
