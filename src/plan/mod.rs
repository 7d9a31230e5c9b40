//! Stage 3: resolve exports into imports (KEP-1645 namespace sameness) and decide, for one
//! cluster at a time, every object it gets. Pure: a function of the `Model` alone. Plans
//! are built per cluster on demand, so memory holds one cluster's plan per worker.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

mod crd;
mod egress;
mod matches;
mod objects;

use serde::Serialize;
use serde_json::Value;

pub use self::egress::{egress_identity, EgressHop, EgressHost, EgressPlan, Lockdown};
pub use self::matches::{MatchRequest, RouteMatch};
use self::objects::{
    AuthorizationRule, Condition, From, Operation, PolicyView, SlaView, Source, To, TracingView,
};
pub use self::objects::{Object, Shared, Sink};
use crate::conventions::{GATEWAY_NAME, RESERVED_NAMESPACE, SOURCE_CLUSTER_HEADER};
use crate::model::{
    Action, AuthzMatch, Callers, Cluster, ClusterId, Export, Exposure, Model, Overrides,
    PassThrough, PolicyId, Resilience, SecurityMode, ServiceType, WanPolicy, WanRoute,
    IDEMPOTENT_RETRY_ON, SAFE_RETRY_ON,
};

/// One service as the whole clusterset sees it: every exporter, merged.
#[derive(Debug)]
pub struct GlobalService {
    pub namespace: String,
    pub name: String,
    /// Indices into `Model::exports`, in ClusterSet order.
    pub exporters: Vec<usize>,
    pub ports: Vec<ImportPort>,
    pub service_type: ServiceType,
    /// The policies importers route by; after conflict checks, all exporters agree.
    pub policies: Vec<PolicyId>,
    /// Per-export resilience annotations, which all exporters agree on too.
    pub overrides: Overrides,
    /// The L7 rules, which all exporters agree on too.
    pub route: Option<WanRoute>,
    /// Who may call it, which all exporters agree on too.
    pub callers: Callers,
}

impl GlobalService {
    /// The names of the clusters that export it, in ClusterSet order.
    #[must_use]
    pub fn exporter_names<'m>(&self, model: &'m Model) -> Vec<&'m str> {
        (self.exporters.iter())
            .map(|&e| {
                model
                    .clusterset
                    .cluster(model.exports[e].cluster)
                    .name
                    .as_str()
            })
            .collect()
    }
}

/// Endpoint tiers: a fallback endpoint takes traffic only when no primary one is healthy.
const PRIMARY: &str = "primary";
const FALLBACK: &str = "fallback";

/// Gateway API's limits on one HTTPRoute: matches in one rule, and in all its rules.
const MATCHES_PER_RULE: usize = 64;
const MATCHES_PER_ROUTE: usize = 128;

/// The label prefix of the rank thresholds that order an importer's endpoints: an endpoint
/// of rank r carries `<prefix>m: "true"` for every m above r. Istio gives an endpoint the
/// priority `n - k`, where k is how many leading `failoverPriority` entries it matches
/// (pilot/pkg/networking/core/loadbalancer/loadbalancer.go, `applyFailoverPriorityPerLocality`),
/// so the list `[rank-below-n=true, …, rank-below-1=true]` makes priority equal rank.
const RANK_LABEL: &str = "mcw.l7mp.io/rank-below-";

/// The clusterset-wide view `plan` keeps between clusters.
#[derive(Debug)]
pub struct Plan<'m> {
    pub model: &'m Model,
    pub services: Vec<GlobalService>,
    /// What every cluster's objects share.
    shared: Shared,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportPort {
    /// The Service's port name; MCS allows unnamed ports.
    pub name: Option<String>,
    /// The ServiceEntry port name Istio requires.
    pub istio_name: String,
    pub port: u16,
    pub app_protocol: Option<String>,
    /// `HTTP`, `HTTP2` or `GRPC`.
    pub istio_protocol: String,
}

#[derive(Debug)]
pub struct ClusterPlan<'p> {
    shared: &'p Shared,
    pub name: String,
    pub gateway: Option<GatewayPlan>,
    pub exports: Vec<ExportPlan>,
    pub imports: Vec<ImportPlan>,
    /// User-written Istio objects, copied unchanged.
    pub passthrough: Vec<Value>,
    /// Clusterset hosts that user VirtualServices claim, which need a ServiceEntry.
    pub virtual_hosts: Vec<VirtualHost>,
    /// In egress gateway mode, when the cluster imports anything: its egress gateway.
    pub egress: Option<EgressPlan>,
}

/// A host that exists only as a user VirtualService's name for other, imported hosts.
#[derive(Debug, Serialize)]
pub struct VirtualHost {
    pub namespace: String,
    pub name: String,
    pub host: String,
    /// The ports of the imported hosts the VirtualService sends to.
    pub ports: Vec<ImportPort>,
}

#[derive(Debug, Serialize)]
pub struct GatewayPlan {
    pub exposure: &'static str,
    pub listeners: Vec<Listener>,
    /// The namespaces whose routes the listeners admit: those that export something.
    pub namespaces: Vec<String>,
    /// For `NodePort` exposure, each listener's nodePort is pinned to its policy port.
    pub pin_node_ports: bool,
    /// For `LoadBalancer` exposure at an IP address: the address the Service must get.
    pub pinned_address: Option<String>,
    /// Whether the listeners terminate Istio mutual TLS (mutual mode), or take plain HTTP.
    pub mutual_tls: bool,
    /// What the gateway refuses, so that a WANRoute's denies hold at the ingress too.
    pub authorization: Authorization,
}

/// The ingress gateway's AuthorizationPolicies (Istio evaluates DENY before ALLOW, and
/// answers 403 to a refused request). Each rule is an Istio `Rule`.
#[derive(Debug, Default, Serialize)]
pub struct Authorization {
    /// Requests some WANRoute's deny rule matches.
    pub deny: Vec<AuthorizationRule>,
    /// When some WANRoute denies by default: every request the gateway may serve. Empty
    /// when no WANRoute denies by default (no ALLOW policy is rendered then).
    pub allow: Vec<AuthorizationRule>,
}

#[derive(Debug, Serialize)]
pub struct Listener {
    pub name: String,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct ExportPlan {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// One HTTPRoute per policy the export uses.
    pub routes: Vec<IngressRoute>,
}

#[derive(Debug, Serialize)]
pub struct IngressRoute {
    pub name: String,
    pub policy: String,
    /// Gateway API `HTTPRouteMatch`es, in groups of at most 64 (one HTTPRoute rule each).
    pub match_groups: Vec<Vec<RouteMatch>>,
    /// The clusterset host the route answers for.
    pub host: String,
    /// The local Service host the request is rewritten to.
    pub local_host: String,
    pub backend_port: u16,
}

#[derive(Debug, Serialize)]
pub struct ImportPlan {
    pub namespace: String,
    pub name: String,
    pub host: String,
    pub service_type: &'static str,
    pub ports: Vec<ImportPort>,
    /// `DNS` when any endpoint is a hostname, else `STATIC`.
    pub resolution: &'static str,
    pub endpoints: Vec<Endpoint>,
    pub subsets: Vec<Subset>,
    /// Istio `failoverPriority`: the rank thresholds, most preferred last; empty when every
    /// endpoint has the same rank (then nothing is ordered, by locality or otherwise).
    pub failover_priority: Vec<String>,
    /// Outlier detection and connection settings for traffic outside any subset.
    pub defaults: TrafficPolicy,
    /// Routes of the sender-side VirtualService, in order.
    pub routes: Vec<EgressRoute>,
    /// In mutual mode: how the sidecar originates TLS to the exporters' gateways.
    pub tls: Option<Tls>,
    /// In egress gateway mode: how the sidecar reaches the egress gateway, which then
    /// takes `routes` as the sidecar does in sidecar mode.
    pub egress: Option<EgressHop>,
}

/// A DestinationRule's `tls`: Istio mutual TLS, checking that the peer is an exporter's
/// ingress gateway.
#[derive(Debug, Serialize)]
pub struct Tls {
    pub mode: &'static str,
    /// The SPIFFE identities of the exporters' gateways, in ClusterSet order.
    pub subject_alt_names: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub address: String,
    pub ports: BTreeMap<String, u16>,
    pub locality: String,
    pub cluster: String,
    #[serde(skip)]
    pub exporter: ClusterId,
    /// The policy whose tunnel this endpoint's traffic takes (its port's class).
    pub policy: String,
    #[serde(skip)]
    pub via: PolicyId,
    /// The subset (the route's WAN policy) this endpoint serves.
    pub route_policy: String,
    /// `primary`, or `fallback` for an endpoint over another policy's tunnel.
    pub tier: &'static str,
    /// The importer's own export, reached through its own gateway: no SD-WAN hop.
    pub local: bool,
    /// 0 is the most preferred: by tier, then by nearness to the importer (`Nearness`).
    pub rank: usize,
    /// The rank thresholds this endpoint is under (`RANK_LABEL`), as endpoint labels.
    pub rank_labels: BTreeMap<String, String>,
}

/// How near an exporter is to an importer, best first. Decided here, from the ClusterSet,
/// rather than by Istio from the client pod's node labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Nearness {
    SameCluster,
    SameZone,
    SameRegion,
    /// The first other region, in ClusterSet order, that exports the service.
    NextRegion,
    Elsewhere,
}

#[derive(Debug, Serialize)]
pub struct EgressRoute {
    pub name: String,
    /// Any of these requests; `None` matches every request.
    pub matches: Option<Vec<MatchRequest>>,
    /// The policy whose subset the requests go to; `None` denies them (403).
    pub policy: Option<String>,
    /// The destination port, set only when the import has exactly one port.
    pub port: Option<u16>,
    pub timeout: Option<String>,
    pub attempts: Option<u32>,
    pub per_try_timeout: Option<String>,
    /// Envoy retry conditions, comma-separated as Istio takes them.
    pub retry_on: Option<String>,
}

/// One DestinationRule subset: the endpoints of one WAN policy and how to treat them.
#[derive(Debug, Serialize)]
pub struct Subset {
    pub name: String,
    pub traffic: TrafficPolicy,
    /// The fallback policy, whose endpoints are used only when every primary one is out.
    pub fallback: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TrafficPolicy {
    pub connect_timeout: String,
    pub consecutive_gateway_errors: u32,
    pub consecutive_5xx_errors: u32,
    pub interval: String,
    pub base_ejection_time: String,
}

impl TrafficPolicy {
    fn of(resilience: &Resilience) -> Self {
        TrafficPolicy {
            connect_timeout: resilience.connect_timeout.to_string(),
            consecutive_gateway_errors: resilience.consecutive_gateway_errors,
            consecutive_5xx_errors: resilience.consecutive_5xx_errors,
            interval: resilience.interval.to_string(),
            base_ejection_time: resilience.base_ejection_time.to_string(),
        }
    }
}

impl<'m> Plan<'m> {
    /// Merges exports into clusterset services: namespace sameness makes `ns/name` one
    /// service everywhere. Ports are the union by name, the earliest exporter winning.
    ///
    /// # Panics
    /// When the embedded WANPolicy schema is not JSON: a bug in mcwan, caught by every test.
    #[must_use]
    pub fn new(model: &'m Model) -> Self {
        let mut services: Vec<GlobalService> = Vec::new();
        for (i, export) in model.exports.iter().enumerate() {
            match services.last_mut() {
                Some(service)
                    if service.namespace == export.namespace && service.name == export.name =>
                {
                    service.exporters.push(i);
                    if !service
                        .ports
                        .iter()
                        .any(|p| p.istio_name == export.port.istio_name())
                    {
                        service.ports.push(import_port(export));
                    }
                }
                _ => services.push(GlobalService {
                    namespace: export.namespace.clone(),
                    name: export.name.clone(),
                    exporters: vec![i],
                    ports: vec![import_port(export)],
                    service_type: export.service_type,
                    policies: export.policies.clone(),
                    overrides: export.overrides,
                    route: export.route.clone(),
                    callers: export.callers.clone(),
                }),
            }
        }
        for service in &mut services {
            service
                .ports
                .sort_by(|a, b| a.istio_name.cmp(&b.istio_name));
        }
        Plan {
            model,
            services,
            shared: shared(model),
        }
    }

    /// Everything cluster `c` gets.
    #[must_use]
    pub fn cluster(&self, c: ClusterId) -> ClusterPlan<'_> {
        let imported = self.imported(c);
        let passthrough: Vec<&PassThrough> = self
            .model
            .passthrough
            .iter()
            .filter(|p| p.cluster == c)
            .collect();
        ClusterPlan {
            imports: imported.iter().map(|s| self.import(c, s)).collect(),
            virtual_hosts: self.virtual_hosts(&passthrough),
            passthrough: passthrough.iter().map(|p| p.object.clone()).collect(),
            ..self.gateways_of(c, &imported)
        }
    }

    /// What other clusters' requests meet in cluster `c`: its ingress gateway with its
    /// exports' routes, and its egress gateway; none of its imports or user objects. Enough
    /// for `verify` to judge the flows another cluster sends here, without planning every
    /// import of this one.
    #[must_use]
    pub fn gateways(&self, c: ClusterId) -> ClusterPlan<'_> {
        self.gateways_of(c, &self.imported(c))
    }

    /// The clusterset services cluster `c` imports.
    fn imported(&self, c: ClusterId) -> Vec<&GlobalService> {
        let cluster = self.model.clusterset.cluster(c);
        self.services
            .iter()
            .filter(|s| cluster.imports(&s.namespace, &s.name))
            .collect()
    }

    /// `gateways`, given the services `c` imports (which its egress gateway carries).
    fn gateways_of(&self, c: ClusterId, imported: &[&GlobalService]) -> ClusterPlan<'_> {
        let clusterset = &self.model.clusterset;
        let cluster = clusterset.cluster(c);
        let exports: Vec<&Export> = self
            .model
            .exports
            .iter()
            .filter(|e| e.cluster == c)
            .collect();
        let gateway = (!exports.is_empty()).then(|| {
            let mut namespaces: Vec<String> = exports.iter().map(|e| e.namespace.clone()).collect();
            namespaces.dedup();
            GatewayPlan {
                exposure: cluster.exposure.as_str(),
                listeners: self
                    .model
                    .policies
                    .iter()
                    .map(|p| Listener {
                        name: p.name.clone(),
                        port: p.port,
                    })
                    .collect(),
                namespaces,
                pin_node_ports: cluster.exposure == Exposure::NodePort,
                pinned_address: (cluster.exposure == Exposure::LoadBalancer
                    && cluster.address.parse::<IpAddr>().is_ok())
                .then(|| cluster.address.clone()),
                mutual_tls: clusterset.security == SecurityMode::Mutual,
                authorization: self.authorization(&exports),
            }
        });
        let exports = exports
            .into_iter()
            .map(|export| ExportPlan {
                namespace: export.namespace.clone(),
                name: export.name.clone(),
                labels: export.labels.clone(),
                annotations: export.annotations.clone(),
                routes: self
                    .ingress_policies(export)
                    .into_iter()
                    .flat_map(|id| {
                        let matches = self.ingress_matches(export, id);
                        let policy = &self.policy(id).name;
                        // Gateway API: at most 64 matches a rule and 128 a route
                        // (apis/v1/httproute_types.go, v1.2.0 L123, L202). The rest go
                        // to further routes; the same listener merges them.
                        let routes: Vec<Vec<Vec<RouteMatch>>> = matches
                            .chunks(MATCHES_PER_ROUTE)
                            .map(|route| {
                                route
                                    .chunks(MATCHES_PER_RULE)
                                    .map(<[RouteMatch]>::to_vec)
                                    .collect()
                            })
                            .collect();
                        routes
                            .into_iter()
                            .enumerate()
                            .map(move |(i, match_groups)| IngressRoute {
                                // Service and policy names are DNS labels, without dots, so the
                                // dots keep every (service, policy, part) name distinct.
                                name: match i {
                                    0 => format!("mcw-{}.{policy}", export.name),
                                    _ => format!("mcw-{}.{policy}.{}", export.name, i + 1),
                                },
                                policy: policy.clone(),
                                match_groups,
                                host: self.host(&export.namespace, &export.name),
                                local_host: local_host(&export.namespace, &export.name),
                                backend_port: export.port.port,
                            })
                    })
                    .collect(),
            })
            .collect();
        ClusterPlan {
            shared: &self.shared,
            name: cluster.name.clone(),
            gateway,
            exports,
            virtual_hosts: Vec::new(),
            passthrough: Vec::new(),
            egress: self.egress(c, imported),
            imports: Vec::new(),
        }
    }

    /// One ServiceEntry per (namespace, host) that user VirtualServices claim without any
    /// cluster exporting it, on the ports of the imported hosts they send to.
    fn virtual_hosts(&self, passthrough: &[&PassThrough]) -> Vec<VirtualHost> {
        let mut hosts: BTreeMap<(String, String), Vec<ImportPort>> = BTreeMap::new();
        for object in passthrough {
            let namespace = object.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default();
            for host in &object.virtual_hosts {
                let ports = hosts
                    .entry((namespace.to_string(), host.clone()))
                    .or_default();
                for service in self.services.iter().filter(|s| {
                    object
                        .destinations
                        .contains(&self.host(&s.namespace, &s.name))
                }) {
                    ports.extend(service.ports.iter().cloned());
                }
            }
        }
        hosts
            .into_iter()
            .map(|((namespace, host), mut ports)| {
                ports.sort_by_key(|p| p.port);
                ports.dedup_by_key(|p| p.port);
                // The host's first two labels, joined by dots: distinct hosts, distinct names.
                let labels: Vec<&str> = host.split('.').take(2).collect();
                VirtualHost {
                    name: format!("mcw-vhost.{}", labels.join(".")),
                    namespace,
                    host,
                    ports,
                }
            })
            .collect()
    }

    fn import(&self, c: ClusterId, service: &GlobalService) -> ImportPlan {
        let (endpoints, failover_priority) = self.endpoints(c, service);
        let resolution = if endpoints
            .iter()
            .all(|e| e.address.parse::<IpAddr>().is_ok())
        {
            "STATIC"
        } else {
            "DNS"
        };
        let egress = self.egress_hop(c, service);
        let mut routes = self.egress_routes(service);
        // Through an egress gateway, the WAN routes are the gateway's; the sidecar's one
        // route (in the template) sends everything to it.
        if let Some(hop) = &egress {
            for m in routes
                .iter_mut()
                .flat_map(|r| r.matches.iter_mut().flatten())
            {
                m.gateways = vec![hop.gateway.clone()];
            }
        }
        let subsets = service
            .policies
            .iter()
            .map(|&policy| Subset {
                name: self.policy(policy).name.clone(),
                traffic: TrafficPolicy::of(&self.policy(policy).resilience),
                fallback: self
                    .policy(policy)
                    .fallback
                    .map(|f| self.policy(f).name.clone()),
            })
            .collect();
        ImportPlan {
            namespace: service.namespace.clone(),
            name: service.name.clone(),
            host: self.host(&service.namespace, &service.name),
            service_type: service.service_type.as_str(),
            ports: service.ports.clone(),
            resolution,
            endpoints,
            subsets,
            failover_priority,
            defaults: TrafficPolicy::of(&self.policy(service.policies[0]).resilience),
            routes,
            tls: self.tls(service),
            egress,
        }
    }

    /// In mutual mode, Istio mutual TLS to `service`'s exporters, each gateway known by the
    /// service account Istio deploys it with, `<Gateway name>-<class>` (docs/security.md).
    fn tls(&self, service: &GlobalService) -> Option<Tls> {
        let clusterset = &self.model.clusterset;
        if clusterset.security != SecurityMode::Mutual {
            return None;
        }
        let subject_alt_names = service
            .exporters
            .iter()
            .filter_map(|&e| {
                let exporter = clusterset.cluster(self.model.exports[e].cluster);
                let trust_domain = exporter.trust_domain.as_ref()?;
                Some(format!(
                    "spiffe://{trust_domain}/ns/{RESERVED_NAMESPACE}/sa/{GATEWAY_NAME}-{}",
                    clusterset.gateway_class_name
                ))
            })
            .collect();
        Some(Tls {
            mode: "ISTIO_MUTUAL",
            subject_alt_names,
        })
    }

    /// How near each exporter of `service` is to importer `c`.
    fn nearness(
        &self,
        c: ClusterId,
        service: &GlobalService,
    ) -> impl Fn(&Cluster, bool) -> Nearness + 'm {
        let model = self.model;
        let clusterset = &model.clusterset;
        let importer = clusterset.cluster(c);
        let next_region = service
            .exporters
            .iter()
            .map(|&e| &clusterset.cluster(model.exports[e].cluster).region)
            .find(|region| **region != importer.region);
        move |exporter: &Cluster, local: bool| {
            if local {
                Nearness::SameCluster
            } else if exporter.region != importer.region {
                if Some(&exporter.region) == next_region {
                    Nearness::NextRegion
                } else {
                    Nearness::Elsewhere
                }
            } else if exporter.zone.is_some() && exporter.zone == importer.zone {
                Nearness::SameZone
            } else {
                Nearness::SameRegion
            }
        }
    }

    /// Importer `c`'s endpoints of `service`, most preferred first, and the
    /// `failoverPriority` that makes Istio prefer them in that order.
    fn endpoints(&self, c: ClusterId, service: &GlobalService) -> (Vec<Endpoint>, Vec<String>) {
        let nearness = self.nearness(c, service);
        let mut endpoints = Vec::new();
        let mut keys = Vec::new();
        for &e in &service.exporters {
            let export = &self.model.exports[e];
            let exporter = self.model.clusterset.cluster(export.cluster);
            // The importer's own export is reached through its own gateway too: one path for
            // every request, and only gateway addresses, which Istio can rank (STATIC).
            let local = export.cluster == c;
            let near = nearness(exporter, local);
            for &policy in &service.policies {
                let mut tiers = vec![(policy, PRIMARY)];
                if let Some(fallback) = self.policy(policy).fallback.filter(|_| !local) {
                    tiers.push((fallback, FALLBACK));
                }
                for (via, tier) in tiers {
                    let port = self.policy(via).port;
                    for address in &exporter.addresses {
                        keys.push((tier == FALLBACK, near));
                        endpoints.push(Endpoint {
                            address: address.clone(),
                            ports: service
                                .ports
                                .iter()
                                .map(|p| (p.istio_name.clone(), port))
                                .collect(),
                            locality: exporter.locality(),
                            cluster: exporter.name.clone(),
                            exporter: export.cluster,
                            policy: self.policy(via).name.clone(),
                            via,
                            route_policy: self.policy(policy).name.clone(),
                            tier,
                            local,
                            rank: 0,
                            rank_labels: BTreeMap::new(),
                        });
                    }
                }
            }
        }
        // Ranks are the distinct (tier, nearness) pairs present, in order.
        let mut ranks = keys.clone();
        ranks.sort_unstable();
        ranks.dedup();
        let thresholds = ranks.len() - 1;
        for (endpoint, key) in endpoints.iter_mut().zip(&keys) {
            endpoint.rank = ranks.binary_search(key).unwrap_or_default();
            endpoint.rank_labels = (endpoint.rank + 1..=thresholds)
                .map(|m| (format!("{RANK_LABEL}{m}"), "true".to_string()))
                .collect();
        }
        endpoints.sort_by_key(|endpoint| endpoint.rank);
        let failover_priority = (1..=thresholds)
            .rev()
            .map(|m| format!("{RANK_LABEL}{m}=true"))
            .collect();
        (endpoints, failover_priority)
    }

    /// The sender's routes for `service`: one per WANRoute rule, then the default; or one
    /// per policy without a WANRoute.
    fn egress_routes(&self, service: &GlobalService) -> Vec<EgressRoute> {
        let single_port = (service.ports.len() == 1).then(|| service.ports[0].port);
        let egress =
            |name: String, matches: Option<Vec<MatchRequest>>, action: &Action, idempotent| {
                let resilience = action
                    .policy()
                    .map(|p| service.overrides.apply(&self.policy(p).resilience));
                let retry_on = |r: &Resilience| match &r.retry_on {
                    Some(declared) => declared.join(","),
                    None if idempotent => IDEMPOTENT_RETRY_ON.join(","),
                    None => SAFE_RETRY_ON.join(","),
                };
                EgressRoute {
                    name,
                    matches,
                    policy: action.policy().map(|p| self.policy(p).name.clone()),
                    port: single_port,
                    timeout: resilience.as_ref().map(|r| r.timeout.to_string()),
                    attempts: resilience.as_ref().map(|r| r.attempts),
                    per_try_timeout: resilience.as_ref().map(|r| r.per_try_timeout.to_string()),
                    retry_on: resilience.as_ref().map(retry_on),
                }
            };
        match &service.route {
            Some(route) => route
                .rules
                .iter()
                .map(|rule| {
                    egress(
                        rule.name.clone(),
                        Some(rule.matches.iter().flat_map(MatchRequest::of).collect()),
                        &rule.action,
                        rule.idempotent_only(),
                    )
                })
                .chain(std::iter::once(egress(
                    "default".to_string(),
                    None,
                    &route.default,
                    false,
                )))
                .collect(),
            None => service
                .policies
                .iter()
                .map(|&p| egress(self.policy(p).name.clone(), None, &Action::Policy(p), false))
                .collect(),
        }
    }

    /// The ingress gateway's authorization for `exports`, so that it refuses exactly what
    /// their WANRoutes deny: a request is denied where the first rule it matches denies,
    /// or none matches and the default denies. `check::routes` refused every WANRoute
    /// this cannot state (a pattern Istio has no condition for; a deny an earlier rule
    /// may allow), so each deny rule's matches deny, and each allow rule's matches allow.
    ///
    /// In mutual mode every request must also come from an allowed caller (`callers`), and
    /// name the cluster of its certificate in `x-mcwan-source-cluster` (`bindings`).
    fn authorization(&self, exports: &[&Export]) -> Authorization {
        let mut out = Authorization::default();
        let mutual = self.model.clusterset.security == SecurityMode::Mutual;
        let any_default_deny = exports
            .iter()
            .any(|e| e.route.as_ref().is_some_and(|r| r.default == Action::Deny));
        // Exports of one namespace with the same allow-lists, which no cluster opts out of,
        // have the same callers: a cluster that exports hundreds of services lists each
        // importer's principals once per namespace, not once per export.
        let mut shared: HashMap<(&str, &Callers), Option<Vec<String>>> = HashMap::new();
        let opted_out = |export: &Export| {
            self.model
                .clusterset
                .clusters
                .iter()
                .any(|c| c.opts_out(&export.namespace, &export.name))
        };
        let callers: Vec<Option<Vec<String>>> = exports
            .iter()
            .map(|export| {
                if opted_out(export) {
                    return self.callers(export);
                }
                shared
                    .entry((&export.namespace, &export.callers))
                    .or_insert_with(|| self.callers(export))
                    .clone()
            })
            .collect();
        for (export, principals) in exports.iter().zip(callers) {
            let host = self.host(&export.namespace, &export.name);
            let hosts = vec![host.clone(), format!("{host}:*")];
            let rule = |m: &AuthzMatch, from: Option<&Vec<String>>| AuthorizationRule {
                from: from.map(|principals| {
                    [From {
                        source: Source {
                            principals: principals.clone(),
                        },
                    }]
                }),
                to: Some([To {
                    operation: Operation {
                        hosts: hosts.clone(),
                        methods: m.methods.clone(),
                        paths: m.paths.clone(),
                    },
                }]),
                when: m
                    .headers
                    .iter()
                    .map(|(name, value)| Condition {
                        key: format!("request.headers[{name}]"),
                        values: vec![value.clone()],
                        not_values: Vec::new(),
                    })
                    .collect(),
            };
            let matches = |action: &dyn Fn(&Action) -> bool| -> Vec<AuthzMatch> {
                export
                    .route
                    .iter()
                    .flat_map(|r| &r.rules)
                    .filter(|r| action(&r.action))
                    .flat_map(|r| &r.matches)
                    .filter_map(|m| m.authorization().ok())
                    .collect()
            };
            out.deny.extend(
                matches(&|a| *a == Action::Deny)
                    .iter()
                    .map(|m| rule(m, None)),
            );
            // Without callers, no rule admits the host: every request for it is refused.
            let from = match &principals {
                Some(p) if p.is_empty() => continue,
                from => from.as_ref(),
            };
            if any_default_deny || mutual {
                match &export.route {
                    Some(route) if route.default == Action::Deny => out.allow.extend(
                        matches(&|a| *a != Action::Deny)
                            .iter()
                            .map(|m| rule(m, from)),
                    ),
                    _ => out.allow.push(rule(&AuthzMatch::default(), from)),
                }
            }
        }
        if mutual {
            out.deny.extend(self.bindings());
        }
        out.deny = AuthorizationRule::merged(&out.deny);
        out.allow = AuthorizationRule::merged(&out.allow);
        out
    }

    /// In mutual mode, the principals that may call `export`: the workloads, in its
    /// namespace, of every importing cluster (KEP-1645 namespace sameness), narrowed by its
    /// allow-lists. `None` in plaintext mode, where a gateway cannot tell callers apart.
    #[must_use]
    pub fn callers(&self, export: &Export) -> Option<Vec<String>> {
        let clusterset = &self.model.clusterset;
        if clusterset.security != SecurityMode::Mutual {
            return None;
        }
        let mut principals = Vec::new();
        for c in clusterset.ids() {
            let cluster = clusterset.cluster(c);
            let allowed = export
                .callers
                .clusters
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&c));
            if !allowed || !cluster.imports(&export.namespace, &export.name) {
                continue;
            }
            let Some(trust_domain) = &cluster.trust_domain else {
                continue;
            };
            // Through an egress gateway, the exporter sees the egress gateway's identity.
            if cluster.egress.is_some() {
                let egress = egress_identity(trust_domain);
                principals.push(egress.trim_start_matches("spiffe://").to_string());
                continue;
            }
            principals.extend(export.callers.workloads(trust_domain, &export.namespace));
        }
        Some(principals)
    }

    /// One DENY rule per cluster: a request with a certificate of its trust domain whose
    /// `x-mcwan-source-cluster` names another cluster. The header reaching the backend then
    /// names the cluster that authenticated, or is absent (a user route that sets none).
    fn bindings(&self) -> impl Iterator<Item = AuthorizationRule> + '_ {
        self.model.clusterset.clusters.iter().filter_map(|cluster| {
            let trust_domain = cluster.trust_domain.as_ref()?;
            Some(AuthorizationRule {
                from: Some([From {
                    source: Source {
                        principals: vec![format!("{trust_domain}/*")],
                    },
                }]),
                to: None,
                when: vec![Condition {
                    key: format!("request.headers[{SOURCE_CLUSTER_HEADER}]"),
                    // `*`: the header is present (Istio's header matcher).
                    values: vec!["*".to_string()],
                    not_values: vec![cluster.name.clone()],
                }],
            })
        })
    }

    /// The requests the export accepts on `listener`: the matches of the rules whose policy
    /// is the listener's, or falls back to it; everything when the default (or the export's
    /// one policy, without a WANRoute) uses it.
    fn ingress_matches(&self, export: &Export, listener: PolicyId) -> Vec<RouteMatch> {
        let served = |action: &Action| {
            action
                .policy()
                .is_some_and(|p| p == listener || self.policy(p).fallback == Some(listener))
        };
        let everything = || vec![RouteMatch::everything()];
        let Some(route) = &export.route else {
            return everything();
        };
        if served(&route.default) {
            return everything();
        }
        let mut matches: Vec<RouteMatch> = route
            .rules
            .iter()
            .filter(|r| served(&r.action))
            .flat_map(|r| r.matches.iter().map(RouteMatch::of))
            .collect();
        matches.dedup();
        matches
    }

    /// The listeners an export must answer on: its policies and their fallbacks, whose
    /// tunnels carry its traffic when the primary ones fail.
    fn ingress_policies(&self, export: &Export) -> Vec<PolicyId> {
        let mut policies = export.policies.clone();
        policies.extend(
            export
                .policies
                .iter()
                .filter_map(|&p| self.policy(p).fallback),
        );
        policies.sort();
        policies.dedup();
        policies
    }

    fn policy(&self, id: PolicyId) -> &WanPolicy {
        self.model.policy(id)
    }

    /// `<svc>.<ns>.svc.<domain>`: the name importers use.
    #[must_use]
    pub fn host(&self, namespace: &str, name: &str) -> String {
        format!("{name}.{namespace}.svc.{}", self.model.clusterset.domain)
    }
}

/// What every cluster's objects share: the policies, the WANPolicy CRD's schema, the MCS
/// version, the Gateway class and the tracing settings.
fn shared(model: &Model) -> Shared {
    let wan_policy_input: Value =
        serde_json::from_str(include_str!("../../schemas/input/wanpolicy.json"))
            .unwrap_or_else(|e| panic!("schemas/input/wanpolicy.json: {e}"));
    let clusterset = &model.clusterset;
    Shared {
        policies: model
            .policies
            .iter()
            .map(|p| PolicyView {
                name: p.name.clone(),
                tunnel: p.tunnel.clone(),
                port: p.port,
                sla: SlaView {
                    jitter_ms: p.sla.jitter_ms.clone(),
                    latency_ms: p.sla.latency_ms.clone(),
                    loss_percent: p.sla.loss_percent.clone(),
                },
            })
            .collect(),
        wan_policy_schema: crd::wan_policy_schema(&wan_policy_input),
        mcs_api_version: clusterset.mcs_version.api_version(),
        gateway_class_name: clusterset.gateway_class_name.clone(),
        tracing: TracingView {
            sampling_percent: clusterset.tracing.sampling_percent.clone(),
            provider: clusterset.tracing.provider.clone(),
        },
    }
}

fn local_host(namespace: &str, name: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

fn import_port(export: &Export) -> ImportPort {
    ImportPort {
        name: export.port.name.clone(),
        istio_name: export.port.istio_name().to_string(),
        port: export.port.port,
        app_protocol: export.port.app_protocol.clone(),
        istio_protocol: export.port.protocol.istio().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Diagnostics;
    use crate::load::{self, Content, InputFile, Limits};

    /// Merging rules that differ only in their hosts admits and refuses the same requests,
    /// as verify's reading of Istio's rules decides: for every host, path, peer and header
    /// value; and it shortens the list.
    #[test]
    fn merged_rules_match_what_the_rules_matched() {
        use crate::verify::request::{authz_rule_matches, unmatched, Sample};
        let rule = |hosts: &[&str], principals: &[&str], paths: &[&str], when: Option<&str>| {
            AuthorizationRule {
                from: (!principals.is_empty()).then(|| {
                    [From {
                        source: Source {
                            principals: principals.iter().map(ToString::to_string).collect(),
                        },
                    }]
                }),
                to: Some([To {
                    operation: Operation {
                        hosts: hosts.iter().map(ToString::to_string).collect(),
                        methods: Vec::new(),
                        paths: paths.iter().map(ToString::to_string).collect(),
                    },
                }]),
                when: when
                    .map(|value| Condition {
                        key: "request.headers[x-a]".into(),
                        values: vec![value.into()],
                        not_values: Vec::new(),
                    })
                    .into_iter()
                    .collect(),
            }
        };
        let rules = vec![
            rule(&["a", "a:*"], &["td/ns/x/sa/*"], &[], None),
            rule(&["b", "b:*"], &["td/ns/y/sa/*"], &[], None),
            rule(&["c", "c:*"], &["td/ns/x/sa/*"], &[], None),
            rule(&["c", "d"], &["td/ns/x/sa/*"], &[], None),
            rule(&["a"], &["td/ns/x/sa/*"], &["/p/*"], None),
            rule(&["e"], &["td/ns/x/sa/*"], &["/p/*"], Some("1")),
            rule(&["b"], &[], &["/p/*"], None),
            rule(&["b"], &[], &["/p/*"], None),
        ];
        let merged = AuthorizationRule::merged(&rules);
        assert_eq!(merged.len(), 5, "{merged:#?}");
        assert_eq!(
            merged[0],
            rule(&["a", "a:*", "c", "c:*", "d"], &["td/ns/x/sa/*"], &[], None)
        );
        let matches = |rules: &[AuthorizationRule], host: &str, sample: &Sample, peer| {
            rules.iter().any(|r| {
                let value = serde_json::to_value(r).unwrap();
                authz_rule_matches(&value, host, sample, peer)
            })
        };
        let mut compared = 0;
        for host in ["a", "b", "c", "d", "e", "a:80", "c:80", "f"] {
            for path in ["/", "/p/q"] {
                for header in [None, Some("1")] {
                    let mut sample = Sample {
                        path: path.into(),
                        ..unmatched()
                    };
                    sample
                        .headers
                        .extend(header.map(|v| ("x-a".to_string(), v.to_string())));
                    for peer in [None, Some("td/ns/x/sa/default"), Some("td/ns/y/sa/default")] {
                        assert_eq!(
                            matches(&merged, host, &sample, peer),
                            matches(&rules, host, &sample, peer),
                            "{host} {sample} {peer:?}"
                        );
                        compared += usize::from(matches(&rules, host, &sample, peer));
                    }
                }
            }
        }
        assert!(compared > 10, "only {compared} requests match");
    }

    /// Three clusters: `payment` exported in eu-west (cluster-1) and us-east (cluster-3),
    /// imported everywhere; cluster-2 sits in eu-west too.
    fn model() -> Model {
        model_of("", &[("cluster-1", "payment"), ("cluster-3", "payment")])
    }

    /// Three clusters with namespace `secure`, `skip` appended to cluster-2's entry (YAML:
    /// `, skipImports: [...]`), and each (cluster, service) an export of `secure/service`.
    fn model_of(skip: &str, exports: &[(&str, &str)]) -> Model {
        let clusterset = format!("apiVersion: mcw.l7mp.io/v1alpha1\nkind: ClusterSet\nmetadata: {{name: t}}\nspec:\n  defaultWANPolicy: p\n  sdwan: {{colors: {{business: mpls}}}}\n  clusters:\n  - {{name: cluster-1, region: eu-west, zone: a, sdwanSite: 1, trustDomain: cluster-1.t, gateway: {{address: 10.0.1.10, exposure: NodePort}}, namespaces: [secure]}}\n  - {{name: cluster-2, region: eu-west, zone: b, sdwanSite: 2, trustDomain: cluster-2.t, gateway: {{address: 10.0.2.10, exposure: NodePort}}, namespaces: [secure]{skip}}}\n  - {{name: cluster-3, region: us-east, sdwanSite: 3, trustDomain: cluster-3.t, gateway: {{address: 10.0.3.10, exposure: NodePort}}, namespaces: [secure]}}\n");
        let policy = "apiVersion: mcw.l7mp.io/v1alpha1\nkind: WANPolicy\nmetadata: {name: p}\nspec: {tunnel: business, port: 31111, sla: {latencyMs: 100, jitterMs: 50, lossPercent: 1}}\n";
        let export = |name: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: secure}}\nspec: {{ports: [{{name: http, port: 8080}}]}}\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {{name: {name}, namespace: secure}}\n")
        };
        let file = |path: &str, text: &str| InputFile {
            path: path.to_string(),
            content: Content::Text(text.to_string()),
        };
        let mut files: Vec<InputFile> = exports
            .iter()
            .map(|(cluster, name)| file(&format!("clusters/{cluster}/{name}.yaml"), &export(name)))
            .collect();
        files.push(file("clusterset.yaml", &clusterset));
        files.push(file("policies/p.yaml", policy));
        let mut diagnostics = Diagnostics::default();
        let sources = load::parse(&files, Limits::default(), &mut diagnostics);
        let schemas = crate::schema::Schemas::input();
        let model = crate::check::check(
            &sources,
            &schemas,
            crate::check::Options::default(),
            &mut diagnostics,
        );
        assert!(!diagnostics.has_errors(), "{:?}", diagnostics.into_sorted());
        model.unwrap()
    }

    fn endpoints(plan: &ClusterPlan) -> Vec<(String, bool, usize)> {
        plan.imports[0]
            .endpoints
            .iter()
            .map(|e| (e.address.clone(), e.local, e.rank))
            .collect()
    }

    #[test]
    fn importers_rank_the_nearer_region_first_and_exporters_reach_themselves_through_their_gateway()
    {
        let model = model();
        let plan = Plan::new(&model);
        let ten = |n| format!("10.0.{n}.10");
        assert_eq!(
            endpoints(&plan.cluster(ClusterId(1))),
            [(ten(1), false, 0), (ten(3), false, 1)]
        );
        assert_eq!(
            endpoints(&plan.cluster(ClusterId(0))),
            [(ten(1), true, 0), (ten(3), false, 1)]
        );
        assert_eq!(
            endpoints(&plan.cluster(ClusterId(2))),
            [(ten(3), true, 0), (ten(1), false, 1)]
        );
        // Ranks become labels and Istio's failoverPriority: rank 0 is under every threshold.
        assert_eq!(
            plan.cluster(ClusterId(1)).imports[0].failover_priority,
            ["mcw.l7mp.io/rank-below-1=true"]
        );
    }

    /// Exports of one namespace share their callers unless a cluster opts out of one.
    #[test]
    fn a_gateway_admits_the_importers_of_each_export_and_no_cluster_that_opts_out() {
        let exports = [
            ("cluster-1", "payment"),
            ("cluster-1", "ledger"),
            ("cluster-1", "audit"),
        ];
        let model = model_of(", skipImports: [secure/ledger]", &exports);
        let plan = Plan::new(&model);
        let gateway = plan.gateways(ClusterId(0)).gateway.unwrap();
        let admitted = |service: &str| -> Vec<String> {
            let host = plan.host("secure", service);
            let rule = gateway
                .authorization
                .allow
                .iter()
                .find(|r| r.to.as_ref().unwrap()[0].operation.hosts.contains(&host))
                .unwrap();
            rule.from.as_ref().unwrap()[0].source.principals.clone()
        };
        let everyone = [
            "cluster-1.t/ns/secure/sa/*",
            "cluster-2.t/ns/secure/sa/*",
            "cluster-3.t/ns/secure/sa/*",
        ];
        assert_eq!(admitted("payment"), everyone);
        assert_eq!(admitted("audit"), everyone);
        assert_eq!(admitted("ledger"), [everyone[0], everyone[2]]);
    }

    #[test]
    fn every_exporter_gets_an_ingress_route_for_its_export_and_a_listener_per_policy() {
        let model = model();
        let plan = Plan::new(&model);
        let exporter = plan.cluster(ClusterId(0));
        assert_eq!(exporter.exports[0].routes.len(), 1);
        assert_eq!(exporter.exports[0].routes[0].name, "mcw-payment.p");
        assert!(plan.cluster(ClusterId(1)).exports.is_empty());
    }
}
