//! Validated declarations. Every value here has passed `check`: names are valid, references
//! resolve and exporters agree. No serde, no locations, no filesystem.

mod cluster_set;
mod export;
mod resilience;
mod wan_policy;
mod wan_route;

use std::collections::BTreeMap;

pub use cluster_set::{Cluster, ClusterSet, Exposure, McsVersion, Sdwan, Tracing};
pub use export::{AppProtocol, Export, Overrides, ServicePort, ServiceType};
pub use resilience::{Millis, Resilience, DEFAULT_RETRY_ON};
pub use wan_policy::{Sla, WanPolicy};
pub use wan_route::{Action, HttpMatch, MatchKind, NamedMatch, Rule, StringMatch, WanRoute};

/// The whole validated clusterset: what `plan` compiles.
#[derive(Debug, Clone)]
pub struct Model {
    pub clusterset: ClusterSet,
    /// Every WAN policy, by name.
    pub policies: BTreeMap<String, WanPolicy>,
    /// Every export, sorted by (namespace, name, cluster order).
    pub exports: Vec<Export>,
    /// A digest of the declarations' content, independent of file names and order.
    pub input_digest: String,
}
