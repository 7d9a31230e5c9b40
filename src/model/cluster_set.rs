//! The validated clusterset topology.

use std::collections::{BTreeMap, BTreeSet};

use super::ServiceKey;

/// How a cluster's east-west ingress is reachable, and so which Service type Istio generates
/// for its Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    NodePort,
    LoadBalancer,
    ClusterIP,
}

impl Exposure {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::NodePort => "NodePort",
            Exposure::LoadBalancer => "LoadBalancer",
            Exposure::ClusterIP => "ClusterIP",
        }
    }
}

/// The MCS API version of emitted ServiceExports and ServiceImports. Upstream serves both
/// with the same fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McsVersion {
    V1Alpha1,
    V1Beta1,
}

impl McsVersion {
    #[must_use]
    pub fn api_version(self) -> &'static str {
        match self {
            McsVersion::V1Alpha1 => "multicluster.x-k8s.io/v1alpha1",
            McsVersion::V1Beta1 => "multicluster.x-k8s.io/v1beta1",
        }
    }
}

/// A cluster, by its place in `ClusterSet::clusters`: how every stage after `check` names
/// one (by name only in files and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(pub usize);

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub region: String,
    pub zone: Option<String>,
    pub sdwan_site: u64,
    /// The trust domain of the cluster's Istio: its workloads' SPIFFE identities are
    /// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. Set (and distinct)
    /// in mutual mode.
    pub trust_domain: Option<String>,
    /// The gateway's address: the one a LoadBalancer gateway is pinned to, the first node
    /// of a NodePort one.
    pub address: String,
    /// Every address importers reach the gateway at: `address`, then any further nodes.
    pub addresses: Vec<String>,
    pub exposure: Exposure,
    /// The namespaces the cluster has: listed in the topology or declared in its directory.
    pub namespaces: BTreeSet<String>,
    /// Services the cluster opted out of importing.
    pub skip_imports: BTreeSet<ServiceKey>,
    /// In egress gateway mode: the addresses its egress gateway has on the SD-WAN. `None`:
    /// clients' sidecars send straight to the exporters' gateways.
    pub egress: Option<Vec<String>>,
}

impl Cluster {
    /// Whether the cluster imports `namespace/name`: it has the namespace (KEP-1645
    /// namespace sameness) and did not opt out.
    #[must_use]
    pub fn imports(&self, namespace: &str, name: &str) -> bool {
        self.namespaces.contains(namespace) && !self.opts_out(namespace, name)
    }

    /// Whether the cluster lists `namespace/name` in its `skipImports`.
    #[must_use]
    pub fn opts_out(&self, namespace: &str, name: &str) -> bool {
        // Asked for every cluster and service: no key is built when nothing is skipped.
        !self.skip_imports.is_empty()
            && self
                .skip_imports
                .contains(&ServiceKey::new(namespace, name))
    }

    /// Istio's locality string, `region` or `region/zone`.
    #[must_use]
    pub fn locality(&self) -> String {
        match &self.zone {
            Some(zone) => format!("{}/{zone}", self.region),
            None => self.region.clone(),
        }
    }
}

/// An SD-WAN vendor whose configuration is rendered beside the vendor-neutral files
/// (`spec.sdwan.vendor`). Vendors are opt-in: without one, the fabric gets only the
/// classes and the sites' flows, and no vendor's rules (colours, SLA ranges) apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Cisco SD-WAN (Viptela): a vSmart app-route policy, each tunnel a TLOC colour.
    Cisco,
}

impl Vendor {
    /// Every vendor, as the ClusterSet schema's `spec.sdwan.vendor` enum lists them.
    pub const ALL: &'static [Vendor] = &[Vendor::Cisco];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Cisco => "cisco",
        }
    }

    #[must_use]
    pub fn named(name: &str) -> Option<Vendor> {
        Vendor::ALL.iter().copied().find(|v| v.as_str() == name)
    }
}

/// How the SD-WAN fabric is addressed: the service VPNs mesh traffic travels in, the
/// vendor whose configuration is rendered, if any, and the TLOC colour preferred for
/// each tunnel.
#[derive(Debug, Clone, Default)]
pub struct Sdwan {
    pub vpns: Vec<u32>,
    pub vendor: Option<Vendor>,
    /// Tunnel → colour. With Cisco, a tunnel named after a colour needs no entry.
    pub colors: BTreeMap<String, String>,
}

impl Sdwan {
    /// The TLOC colour of `tunnel`: its mapping; else, with Cisco, the tunnel's own name
    /// (`check` makes it a colour). Without a vendor a name is only a name, so an
    /// unmapped tunnel has none.
    #[must_use]
    pub fn color<'a>(&'a self, tunnel: &'a str) -> Option<&'a str> {
        match (self.colors.get(tunnel), self.vendor) {
            (Some(color), _) => Some(color),
            (None, Some(Vendor::Cisco)) => Some(tunnel),
            (None, None) => None,
        }
    }
}

/// How requests cross the WAN (docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// Istio mutual TLS from the client's sidecar to the exporter's gateway, which admits
    /// only the importing clusters' workloads of the service's namespace.
    #[default]
    Mutual,
    /// HTTP, with no caller identity.
    Plaintext,
}

impl SecurityMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Mutual => "mutual",
            SecurityMode::Plaintext => "plaintext",
        }
    }
}

/// Tracing on the east-west ingress gateways.
#[derive(Debug, Clone)]
pub struct Tracing {
    pub sampling_percent: serde_json::Number,
    pub provider: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClusterSet {
    pub name: String,
    pub domain: String,
    pub gateway_class_name: String,
    pub mcs_version: McsVersion,
    pub sdwan: Sdwan,
    pub tracing: Tracing,
    pub security: SecurityMode,
    /// In egress gateway mode, deny importing namespaces' pods the gateways' addresses.
    pub lockdown: bool,
    /// In declaration order, which is also the precedence order for conflicts and failover.
    pub clusters: Vec<Cluster>,
}

impl ClusterSet {
    #[must_use]
    pub fn cluster(&self, id: ClusterId) -> &Cluster {
        &self.clusters[id.0]
    }

    /// The id of the cluster of this name, if there is one.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<ClusterId> {
        self.clusters
            .iter()
            .position(|c| c.name == name)
            .map(ClusterId)
    }

    /// Every cluster's id, in ClusterSet order.
    pub fn ids(&self) -> impl Iterator<Item = ClusterId> {
        (0..self.clusters.len()).map(ClusterId)
    }
}
