//! Validated declarations. Every value here has passed `check`: names are valid, references
//! resolve and exporters agree. No serde, no locations, no filesystem.

mod cluster_set;
mod export;
mod resilience;
mod wan_policy;
mod wan_route;

pub use cluster_set::{
    Cluster, ClusterId, ClusterSet, Exposure, McsVersion, Sdwan, SecurityMode, Tracing, Vendor,
};
pub use export::{AppProtocol, Callers, Export, Overrides, ServicePort, ServiceType};
pub use resilience::{Millis, Resilience, IDEMPOTENT_METHODS, IDEMPOTENT_RETRY_ON, SAFE_RETRY_ON};
pub use wan_policy::{PolicyId, Sla, WanPolicy, WholeSla};
pub use wan_route::{
    Action, AuthzMatch, HttpMatch, MatchKind, NamedMatch, Rule, StringMatch, WanRoute,
};

/// A service of the clusterset: namespace sameness makes `namespace/name` one service in
/// every cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    #[must_use]
    pub fn new(namespace: &str, name: &str) -> Self {
        ServiceKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// `namespace/name`, as declarations write it.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (namespace, name) = text.split_once('/')?;
        Some(ServiceKey::new(namespace, name))
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An Istio object a user wrote in a cluster directory, copied to that cluster unchanged.
#[derive(Debug, Clone)]
pub struct PassThrough {
    pub cluster: ClusterId,
    pub object: serde_json::Value,
    /// Clusterset hosts a VirtualService claims that no cluster exports: mcwan gives each a
    /// ServiceEntry, so clients can address it (the seed's client-side L7 workaround).
    pub virtual_hosts: Vec<String>,
    /// The imported clusterset hosts it sends to.
    pub destinations: Vec<String>,
}

/// The whole validated clusterset: what `plan` compiles.
#[derive(Debug, Clone)]
pub struct Model {
    pub clusterset: ClusterSet,
    /// Every WAN policy, sorted by name; `PolicyId`s index it.
    pub policies: Vec<WanPolicy>,
    /// Every export, sorted by (namespace, name, cluster order).
    pub exports: Vec<Export>,
    /// User-written Istio objects, by cluster order.
    pub passthrough: Vec<PassThrough>,
    /// A digest of the declarations' content, independent of file names and order.
    pub input_digest: String,
}

impl Model {
    #[must_use]
    pub fn policy(&self, id: PolicyId) -> &WanPolicy {
        &self.policies[id.0]
    }

    /// The policy named `name`, if there is one.
    #[must_use]
    pub fn policy_named(&self, name: &str) -> Option<PolicyId> {
        self.policies
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(PolicyId)
    }
}
