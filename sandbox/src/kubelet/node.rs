//! What the simulated kubelet needs from a cluster, so one kubelet runs the
//! pods of the sandbox (through its store, in process) and of any real API
//! server (through HTTP, see the `polysync-clusters` crate's node agent).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::controllers::events::record;
use crate::resources::Kind;
use crate::store::{Key, Mutation, Store};

/// A Secret or a ConfigMap, for `env` references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Secret,
    ConfigMap,
}

impl RefKind {
    /// The word the kubelet uses in its messages.
    pub fn word(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configmap",
        }
    }
}

/// A kubelet's view of the cluster: its pods, their status, events, and the
/// Secrets and ConfigMaps that pods reference.
pub trait NodeApi: Send + Sync + 'static {
    /// The Node whose pods this kubelet runs.
    fn node_name(&self) -> &str;
    /// Whether the kubelet binds pods to its node itself (no scheduler).
    fn binds_pods(&self) -> bool;
    /// The pod as it is now; `None` once it is gone.
    fn get(&self, key: &Key) -> impl Future<Output = Option<Value>> + Send;
    /// Read-modify-write the pod (status, and `spec.nodeName` when binding);
    /// `f` may run more than once on conflicts. `None` once the pod is gone.
    fn update(&self, key: &Key, f: impl Fn(&mut Value) + Send + Sync) -> impl Future<Output = Option<Value>> + Send;
    /// Record an event about `pod`.
    fn event(&self, pod: &Value, warning: bool, reason: &str, message: &str) -> impl Future<Output = ()> + Send;
    /// The data of a Secret or ConfigMap (decoded), `None` if it does not exist.
    fn lookup(
        &self,
        kind: RefKind,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Option<BTreeMap<String, String>>> + Send;
}

/// The sandbox's own store: the kubelet binds pods itself, and there are no
/// Secrets or ConfigMaps.
#[derive(Debug, Clone)]
pub struct StoreNode(pub Arc<Store>);

/// The sandbox's single node.
pub const SANDBOX_NODE: &str = "sandbox-node";

impl NodeApi for StoreNode {
    fn node_name(&self) -> &str {
        SANDBOX_NODE
    }

    fn binds_pods(&self) -> bool {
        true
    }

    async fn get(&self, key: &Key) -> Option<Value> {
        self.0.get(Kind::Pod, key).map(|p| (*p).clone())
    }

    async fn update(&self, key: &Key, f: impl Fn(&mut Value) + Send + Sync) -> Option<Value> {
        self.0
            .mutate(Kind::Pod, key, |pod| {
                let before = pod.clone();
                f(pod);
                Ok(if *pod == before { Mutation::Unchanged } else { Mutation::Changed })
            })
            .ok()
            .map(|p| (*p).clone())
    }

    async fn event(&self, pod: &Value, warning: bool, reason: &str, message: &str) {
        record(&self.0, "kubelet", pod, warning, reason, message);
    }

    async fn lookup(&self, _: RefKind, _: &str, _: &str) -> Option<BTreeMap<String, String>> {
        None
    }
}
