//! The declared intent `verify` compares the data plane with: which clusters export and
//! import each service, over which WAN policies, what each WANRoute sends where, and, in
//! mutual mode, who may call each service. Built from the validated model; `render` records
//! it in OUT's provenance, so that `verify OUT` needs no declarations. It says nothing of
//! the objects rendered from it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::{gateway_matches, Sample, Unsure};
use crate::model::{Model, SecurityMode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub domain: String,
    /// How requests cross the WAN. A provenance written before security modes existed has
    /// none, and its tree was rendered in plaintext, so an absent mode reads as plaintext
    /// (unlike the declarations, whose default is mutual).
    #[serde(default)]
    pub security: Security,
    pub clusters: Vec<ClusterIntent>,
    pub policies: BTreeMap<String, PolicyIntent>,
    pub services: Vec<ServiceIntent>,
    /// Lookups by host, address and cluster name, so that verifying stays linear.
    #[serde(skip)]
    index: Index,
}

/// The declared security mode (`spec.security.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Istio mutual TLS from every sidecar to the exporter's gateway, which admits only the
    /// callers the declarations allow.
    Mutual,
    /// Plain HTTP, with no caller identity: any caller that reaches a gateway is admitted.
    #[default]
    Plaintext,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Index {
    services: BTreeMap<String, usize>,
    owners: BTreeMap<String, usize>,
    clusters: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIntent {
    pub name: String,
    pub site: u64,
    /// Where the cluster's ingress gateway is reached: a fact of the network, not of a render.
    pub addresses: Vec<String>,
    pub namespaces: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub skip_imports: BTreeSet<String>,
    /// The trust domain of the cluster's workload identities (SPIFFE
    /// `<trust domain>/ns/<namespace>/sa/<service account>`); absent in plaintext mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// In egress gateway mode, the addresses its egress gateway has on the SD-WAN: its
    /// flows leave from them, and its sidecars must send through the gateway. `None`
    /// (also what a provenance written before egress gateways reads as): sidecar mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyIntent {
    pub tunnel: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceIntent {
    pub namespace: String,
    pub name: String,
    /// The Service port the exporters' gateways send to.
    pub port: u16,
    pub exporters: Vec<String>,
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteIntent>,
    /// Only these importing clusters may call it (`mcw.l7mp.io/allowed-clusters`); `None`
    /// does not narrow the importers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_clusters: Option<Vec<String>>,
    /// Only these service accounts of its namespace may call it
    /// (`mcw.l7mp.io/allowed-service-accounts`); `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_service_accounts: Option<Vec<String>>,
}

/// A WANRoute: ordered rules of Gateway API matches; `None` denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteIntent {
    pub rules: Vec<RuleIntent>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleIntent {
    pub name: String,
    pub matches: Vec<Value>,
    pub policy: Option<String>,
}

impl Intent {
    #[must_use]
    pub fn of(model: &Model) -> Self {
        let clusters = &model.clusterset.clusters;
        let mut services: Vec<ServiceIntent> = Vec::new();
        for export in &model.exports {
            let exporter = model.clusterset.cluster(export.cluster).name.clone();
            match services.last_mut() {
                Some(s) if s.namespace == export.namespace && s.name == export.name => {
                    s.exporters.push(exporter);
                }
                _ => services.push(ServiceIntent {
                    allowed_clusters: export.callers.clusters.as_ref().map(|clusters| {
                        clusters
                            .iter()
                            .map(|&c| model.clusterset.cluster(c).name.clone())
                            .collect()
                    }),
                    allowed_service_accounts: export.callers.service_accounts.clone(),
                    namespace: export.namespace.clone(),
                    name: export.name.clone(),
                    port: export.port.port,
                    exporters: vec![exporter],
                    policies: export
                        .policies
                        .iter()
                        .map(|&p| model.policy(p).name.clone())
                        .collect(),
                    route: export.route.as_ref().map(|r| RouteIntent {
                        rules: r
                            .rules
                            .iter()
                            .map(|rule| RuleIntent {
                                name: rule.name.clone(),
                                matches: rule
                                    .matches
                                    .iter()
                                    .map(|m| {
                                        serde_json::to_value(crate::plan::RouteMatch::of(m))
                                            .unwrap_or_default()
                                    })
                                    .collect(),
                                policy: rule.action.policy().map(|p| model.policy(p).name.clone()),
                            })
                            .collect(),
                        default: r.default.policy().map(|p| model.policy(p).name.clone()),
                    }),
                }),
            }
        }
        Intent {
            index: Index::default(),
            domain: model.clusterset.domain.clone(),
            security: match model.clusterset.security {
                SecurityMode::Mutual => Security::Mutual,
                SecurityMode::Plaintext => Security::Plaintext,
            },
            clusters: clusters
                .iter()
                .map(|c| ClusterIntent {
                    name: c.name.clone(),
                    site: c.sdwan_site,
                    addresses: c.addresses.clone(),
                    namespaces: c.namespaces.clone(),
                    skip_imports: c.skip_imports.iter().map(ToString::to_string).collect(),
                    trust_domain: c.trust_domain.clone(),
                    egress: c.egress.clone(),
                })
                .collect(),
            policies: model
                .policies
                .iter()
                .map(|p| {
                    let intent = PolicyIntent {
                        tunnel: p.tunnel.clone(),
                        port: p.port,
                        fallback: p.fallback.map(|f| model.policy(f).name.clone()),
                    };
                    (p.name.clone(), intent)
                })
                .collect(),
            services,
        }
        .indexed()
    }

    /// Builds the lookups; an intent read back from a provenance needs it too.
    #[must_use]
    pub fn indexed(mut self) -> Self {
        let mut index = Index::default();
        for (i, service) in self.services.iter().enumerate() {
            index.services.insert(self.host(service), i);
        }
        for (c, cluster) in self.clusters.iter().enumerate() {
            index.clusters.insert(cluster.name.clone(), c);
            for address in &cluster.addresses {
                index.owners.entry(address.clone()).or_insert(c);
            }
        }
        self.index = index;
        self
    }

    /// The cluster named `name`.
    #[must_use]
    pub fn cluster(&self, name: &str) -> Option<&ClusterIntent> {
        self.index.clusters.get(name).map(|&c| &self.clusters[c])
    }

    /// `<svc>.<ns>.svc.<domain>`.
    #[must_use]
    pub fn host(&self, service: &ServiceIntent) -> String {
        format!("{}.{}.svc.{}", service.name, service.namespace, self.domain)
    }

    /// The service a clusterset host names, if one is exported.
    #[must_use]
    pub fn service(&self, host: &str) -> Option<&ServiceIntent> {
        self.index.services.get(host).map(|&i| &self.services[i])
    }

    /// Whether cluster `c` imports the service (KEP-1645 namespace sameness).
    #[must_use]
    pub fn imports(&self, c: &ClusterIntent, service: &ServiceIntent) -> bool {
        c.namespaces.contains(&service.namespace)
            && (c.skip_imports.is_empty()
                || !c
                    .skip_imports
                    .contains(&format!("{}/{}", service.namespace, service.name)))
    }

    /// Whether the declarations let cluster `c`'s workloads call the service: it imports it,
    /// and the service's allowed clusters, if any, name it.
    #[must_use]
    pub fn admits(&self, c: &ClusterIntent, service: &ServiceIntent) -> bool {
        self.imports(c, service)
            && service
                .allowed_clusters
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&c.name))
    }

    /// The cluster whose gateway has this address.
    #[must_use]
    pub fn owner(&self, address: &str) -> Option<&ClusterIntent> {
        self.index.owners.get(address).map(|&c| &self.clusters[c])
    }

    /// The WAN policy the declarations send this request over, or `None` where they deny it.
    ///
    /// # Errors
    /// When a regular expression decides and does not compile.
    pub fn expect<'a>(
        &self,
        service: &'a ServiceIntent,
        sample: &Sample,
    ) -> Result<Option<&'a str>, Unsure> {
        let Some(route) = &service.route else {
            return Ok(service.policies.first().map(String::as_str));
        };
        for rule in &route.rules {
            for m in &rule.matches {
                if gateway_matches(m, sample)? {
                    return Ok(rule.policy.as_deref());
                }
            }
        }
        Ok(route.default.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(example: &str) -> Model {
        crate::testing::example(example)
    }

    /// A provenance written before security modes existed records no mode, trust domain or
    /// allow-list: it reads as the plaintext render it was, with every importer admitted.
    #[test]
    fn an_intent_without_security_reads_as_plaintext() {
        let old = serde_json::json!({
            "domain": "clusterset.local",
            "clusters": [{"name": "a", "site": 1, "addresses": ["10.0.0.1"], "namespaces": ["ns"]}],
            "policies": {},
            "services": [{"namespace": "ns", "name": "s", "port": 80, "exporters": ["a"], "policies": []}]
        });
        let intent = serde_json::from_value::<Intent>(old).unwrap().indexed();
        assert_eq!(intent.security, Security::Plaintext);
        assert_eq!(intent.clusters[0].trust_domain, None);
        assert_eq!(intent.clusters[0].egress, None);
        assert_eq!(intent.services[0].allowed_clusters, None);
        assert!(intent.admits(&intent.clusters[0], &intent.services[0]));
    }

    /// Mutual mode is recorded with each cluster's trust domain, and survives the round trip
    /// through the provenance.
    #[test]
    fn mutual_mode_is_recorded_with_trust_domains() {
        let intent = Intent::of(&model("three-clusters"));
        assert_eq!(intent.security, Security::Mutual);
        let json = serde_json::to_value(&intent).unwrap();
        assert_eq!(json["security"], "mutual");
        assert_eq!(
            json["clusters"][2]["trust_domain"],
            "cluster-3.three-clusters.example"
        );
        let read = serde_json::from_value::<Intent>(json).unwrap().indexed();
        assert_eq!(read, intent);
        let payment = read.service("payment.secure.svc.clusterset.local").unwrap();
        let admitted: Vec<&str> = read
            .clusters
            .iter()
            .filter(|c| read.admits(c, payment))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(admitted, ["cluster-1", "cluster-2"]);
    }

    /// Egress gateway mode is recorded per cluster with its gateway's addresses, and only
    /// there: a cluster in sidecar mode records none.
    #[test]
    fn egress_addresses_are_recorded_per_cluster() {
        let intent = Intent::of(&model("egress"));
        let json = serde_json::to_value(&intent).unwrap();
        assert_eq!(
            json["clusters"][0]["egress"],
            serde_json::json!(["10.40.1.20", "10.40.1.21"])
        );
        assert!(json["clusters"][2].get("egress").is_none(), "{json}");
        let read = serde_json::from_value::<Intent>(json).unwrap().indexed();
        assert_eq!(read, intent);
    }
}
