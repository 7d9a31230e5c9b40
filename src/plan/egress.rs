//! The egress gateway of a cluster in egress gateway mode (docs/egress.md). Clients' sidecars
//! send every clusterset request to it, in Istio mutual TLS with the host as SNI; it picks
//! the WAN policy's subset and endpoint with the same VirtualService, DestinationRule and
//! ServiceEntry a sidecar uses in sidecar mode, so the SD-WAN sees its addresses only.

use std::net::IpAddr;

use serde::Serialize;

use super::objects::{AuthorizationRule, From, Operation, Source, To};
use super::{GlobalService, Plan};
use crate::conventions::{stable_hash, EGRESS_NAME, EGRESS_PORT, RESERVED_NAMESPACE};
use crate::model::{ClusterId, SecurityMode};

/// What a cluster's egress gateway is and does.
#[derive(Debug, Serialize)]
pub struct EgressPlan {
    /// Its addresses on the SD-WAN: the fabric's source prefixes.
    pub addresses: Vec<String>,
    /// Every imported host it forwards, in import order.
    pub hosts: Vec<EgressHost>,
    /// Its SPIFFE identity, which clients check; `None` without a trust domain.
    pub identity: Option<String>,
    /// In mutual mode: which workloads of this cluster may send each host through it.
    pub authorization: Vec<AuthorizationRule>,
    /// With a lockdown: one NetworkPolicy per importing namespace.
    pub lockdown: Vec<Lockdown>,
}

/// One host the egress gateway forwards, and the subset of its Service clients pick it by.
#[derive(Debug, Serialize)]
pub struct EgressHost {
    pub namespace: String,
    pub host: String,
    pub subset: String,
}

/// How a client's sidecar reaches the egress gateway for one host.
#[derive(Debug, Serialize)]
pub struct EgressHop {
    /// The Istio Gateway the VirtualService binds, `namespace/name`.
    pub gateway: String,
    /// The egress Service's host.
    pub host: String,
    pub subset: String,
    pub port: u16,
}

/// A namespace whose pods may reach no gateway address: only the egress gateway does.
#[derive(Debug, Serialize)]
pub struct Lockdown {
    pub namespace: String,
    /// The gateways' IPv4 and IPv6 addresses, as /32 and /128 blocks.
    pub except_v4: Vec<String>,
    pub except_v6: Vec<String>,
}

/// The egress Service's subset for `namespace/name`: a DNS label, readable and distinct.
fn subset(namespace: &str, name: &str) -> String {
    let readable = format!("{name}-{namespace}");
    let hash = stable_hash(&format!("{namespace}/{name}")) & 0xff_ffff;
    format!(
        "{}-{hash:06x}",
        readable[..readable.len().min(55)].trim_end_matches('-')
    )
}

impl Plan<'_> {
    /// How cluster `c`'s sidecars reach its egress gateway for `service`, in gateway mode.
    pub(super) fn egress_hop(&self, c: ClusterId, service: &GlobalService) -> Option<EgressHop> {
        self.model.clusterset.cluster(c).egress.as_ref()?;
        Some(EgressHop {
            gateway: format!("{RESERVED_NAMESPACE}/{EGRESS_NAME}"),
            host: format!("{EGRESS_NAME}.{RESERVED_NAMESPACE}.svc.cluster.local"),
            subset: subset(&service.namespace, &service.name),
            port: EGRESS_PORT,
        })
    }

    /// Cluster `c`'s egress gateway, when it is in gateway mode and imports something
    /// (`imports`, in order).
    pub(super) fn egress(&self, c: ClusterId, imports: &[&GlobalService]) -> Option<EgressPlan> {
        let clusterset = &self.model.clusterset;
        let cluster = clusterset.cluster(c);
        let addresses = cluster.egress.clone()?;
        if imports.is_empty() {
            return None;
        }
        let hosts: Vec<EgressHost> = imports
            .iter()
            .map(|s| EgressHost {
                namespace: s.namespace.clone(),
                host: self.host(&s.namespace, &s.name),
                subset: subset(&s.namespace, &s.name),
            })
            .collect();
        let mutual = clusterset.security == SecurityMode::Mutual;
        let authorization = match (&cluster.trust_domain, mutual) {
            (Some(trust_domain), true) => self.egress_authorization(c, trust_domain, imports),
            _ => Vec::new(),
        };
        let mut namespaces: Vec<String> = imports.iter().map(|s| s.namespace.clone()).collect();
        namespaces.dedup();
        let gateways: Vec<IpAddr> = clusterset
            .clusters
            .iter()
            .flat_map(|c| &c.addresses)
            .filter_map(|a| a.parse().ok())
            .collect();
        let blocks = |v6: bool| -> Vec<String> {
            let mut out: Vec<String> = gateways
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| format!("{a}/{}", if v6 { 128 } else { 32 }))
                .collect();
            out.sort();
            out.dedup();
            out
        };
        let lockdown = if clusterset.lockdown {
            let (except_v4, except_v6) = (blocks(false), blocks(true));
            namespaces
                .into_iter()
                .map(|namespace| Lockdown {
                    namespace,
                    except_v4: except_v4.clone(),
                    except_v6: except_v6.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(EgressPlan {
            addresses,
            hosts,
            identity: cluster.trust_domain.as_ref().map(|td| egress_identity(td)),
            authorization,
            lockdown,
        })
    }

    /// Per imported host, the workloads of cluster `c` in the host's namespace that its
    /// export admits (its service-account allow-list; none when its cluster allow-list
    /// leaves `c` out): the checks the exporter's gateway can no longer make, since it sees
    /// the egress gateway's identity.
    fn egress_authorization(
        &self,
        c: ClusterId,
        trust_domain: &str,
        imports: &[&GlobalService],
    ) -> Vec<AuthorizationRule> {
        let mut rules = Vec::new();
        for service in imports {
            let callers = &service.callers;
            if callers.clusters.as_ref().is_some_and(|a| !a.contains(&c)) {
                continue;
            }
            let host = self.host(&service.namespace, &service.name);
            rules.push(AuthorizationRule {
                from: Some([From {
                    source: Source {
                        principals: callers.workloads(trust_domain, &service.namespace),
                    },
                }]),
                to: Some([To {
                    operation: Operation {
                        hosts: vec![host.clone(), format!("{host}:*")],
                        methods: Vec::new(),
                        paths: Vec::new(),
                    },
                }]),
                when: Vec::new(),
            });
        }
        AuthorizationRule::merged(&rules)
    }
}

/// The SPIFFE identity of a cluster's egress gateway: its own ServiceAccount.
#[must_use]
pub fn egress_identity(trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{RESERVED_NAMESPACE}/sa/{EGRESS_NAME}")
}
