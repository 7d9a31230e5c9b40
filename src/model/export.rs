//! A validated service export: one cluster offering one Service to the clusterset.

use std::collections::BTreeMap;

use super::{ClusterId, Millis, PolicyId, Resilience, WanRoute};

/// The L7 protocol the gateways speak to the service, from the port's `appProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AppProtocol {
    Http,
    Http2,
    Grpc,
}

impl AppProtocol {
    /// The protocol name Istio's ServiceEntry ports use.
    #[must_use]
    pub fn istio(self) -> &'static str {
        match self {
            AppProtocol::Http => "HTTP",
            AppProtocol::Http2 => "HTTP2",
            AppProtocol::Grpc => "GRPC",
        }
    }
}

/// The one Service port an export carries across the SD-WAN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServicePort {
    /// The Service's port name, if it has one.
    pub name: Option<String>,
    pub port: u16,
    pub app_protocol: Option<String>,
    pub protocol: AppProtocol,
}

impl ServicePort {
    /// The name Istio needs for every ServiceEntry port; unnamed ports become `http`.
    #[must_use]
    pub fn istio_name(&self) -> &str {
        self.name.as_deref().unwrap_or("http")
    }
}

/// Per-export resilience settings from annotations; they beat the policy's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub timeout: Option<Millis>,
    pub attempts: Option<u32>,
    pub per_try_timeout: Option<Millis>,
}

impl Overrides {
    /// The policy's resilience with these overrides applied. When retries change but the
    /// timeout is not given, the timeout still covers every try.
    #[must_use]
    pub fn apply(&self, policy: &Resilience) -> Resilience {
        let mut out = policy.clone();
        if let Some(per_try) = self.per_try_timeout {
            out.per_try_timeout = per_try;
        }
        if let Some(attempts) = self.attempts {
            out.attempts = attempts;
        }
        out.timeout = self.timeout.unwrap_or(
            if self.per_try_timeout.is_some() || self.attempts.is_some() {
                Millis(out.per_try_timeout.0 * u64::from(out.attempts + 1))
            } else {
                policy.timeout
            },
        );
        out
    }
}

/// The callers an export admits, beyond being a workload of an importing cluster in the
/// service's namespace: `None` does not narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Callers {
    /// Only these importing clusters (`mcw.l7mp.io/allowed-clusters`), in ClusterSet order.
    pub clusters: Option<Vec<ClusterId>>,
    /// Only these service accounts (`mcw.l7mp.io/allowed-service-accounts`), sorted.
    pub service_accounts: Option<Vec<String>>,
}

impl Callers {
    /// The principals (SPIFFE identities without `spiffe://`) of the workloads, in
    /// `namespace` of the cluster with `trust_domain`, that these callers admit: its allowed
    /// service accounts, or all of them.
    #[must_use]
    pub fn workloads(&self, trust_domain: &str, namespace: &str) -> Vec<String> {
        let all = ["*".to_string()];
        let accounts = self.service_accounts.as_deref().unwrap_or(&all);
        accounts
            .iter()
            .map(|account| format!("{trust_domain}/ns/{namespace}/sa/{account}"))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    ClusterSetIP,
    Headless,
}

impl ServiceType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterSetIP => "ClusterSetIP",
            ServiceType::Headless => "Headless",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Export {
    pub cluster: ClusterId,
    pub namespace: String,
    pub name: String,
    /// The WAN policies this export's traffic may use, sorted.
    pub policies: Vec<PolicyId>,
    pub port: ServicePort,
    pub service_type: ServiceType,
    pub overrides: Overrides,
    /// Who may call it, narrowed from every importer by annotations (mutual mode only).
    pub callers: Callers,
    /// L7 rules that refine the export; without them, every request takes its one policy.
    pub route: Option<WanRoute>,
    /// The ServiceExport's own labels and annotations, kept on the emitted copy.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}
