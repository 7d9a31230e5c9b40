//! Stage 3: resolve exports into imports (KEP-1645 namespace sameness) and decide, for one
//! cluster at a time, every object it gets. Pure: a function of the `Model` alone. Plans
//! are built per cluster on demand, so memory holds one cluster's plan per worker.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use serde_json::{json, Value};

use crate::model::{
    Action, Export, Exposure, HttpMatch, MatchKind, Model, NamedMatch, Overrides, PassThrough,
    Resilience, ServiceType, StringMatch, WanPolicy, WanRoute,
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
    pub policies: Vec<String>,
    /// Per-export resilience annotations, which all exporters agree on too.
    pub overrides: Overrides,
    /// The L7 rules, which all exporters agree on too.
    pub route: Option<WanRoute>,
}

/// Endpoint tiers: a fallback endpoint takes traffic only when no primary one is healthy.
const PRIMARY: &str = "primary";
const FALLBACK: &str = "fallback";

/// The clusterset-wide view `plan` keeps between clusters.
#[derive(Debug)]
pub struct Plan<'m> {
    pub model: &'m Model,
    pub services: Vec<GlobalService>,
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

#[derive(Debug, Serialize)]
pub struct ClusterPlan {
    pub name: String,
    pub gateway: Option<GatewayPlan>,
    pub exports: Vec<ExportPlan>,
    pub imports: Vec<ImportPlan>,
    /// User-written Istio objects, copied unchanged.
    pub passthrough: Vec<Value>,
    /// Clusterset hosts that user VirtualServices claim, which need a ServiceEntry.
    pub virtual_hosts: Vec<VirtualHost>,
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
    pub match_groups: Vec<Vec<Value>>,
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
    pub failover: Vec<Failover>,
    /// Outlier detection and connection settings for traffic outside any subset.
    pub defaults: TrafficPolicy,
    /// Routes of the sender-side VirtualService, in order.
    pub routes: Vec<EgressRoute>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub address: String,
    pub ports: BTreeMap<String, u16>,
    pub locality: String,
    pub cluster: String,
    /// The policy whose tunnel this endpoint's traffic takes (its port's class).
    pub policy: String,
    /// The subset (the route's WAN policy) this endpoint serves.
    pub route_policy: String,
    /// `primary`, or `fallback` for an endpoint over another policy's tunnel.
    pub tier: &'static str,
    /// The importer's own export, reached directly rather than through its gateway.
    pub local: bool,
}

#[derive(Debug, Serialize)]
pub struct Failover {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize)]
pub struct EgressRoute {
    pub name: String,
    /// Istio `HTTPMatchRequest`s (any may match); `None` matches every request.
    pub matches: Option<Vec<Value>>,
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
                }),
            }
        }
        for service in &mut services {
            service
                .ports
                .sort_by(|a, b| a.istio_name.cmp(&b.istio_name));
        }
        Plan { model, services }
    }

    /// Everything cluster `c` gets.
    #[must_use]
    pub fn cluster(&self, c: usize) -> ClusterPlan {
        let clusterset = &self.model.clusterset;
        let cluster = &clusterset.clusters[c];
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
                    .values()
                    .map(|p| Listener {
                        name: p.name.clone(),
                        port: p.port,
                    })
                    .collect(),
                namespaces,
                pin_node_ports: cluster.exposure == Exposure::NodePort,
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
                    .iter()
                    .map(|policy| IngressRoute {
                        name: format!("mcw-{}-{policy}", export.name),
                        policy: policy.clone(),
                        match_groups: self
                            .ingress_matches(export, policy)
                            .chunks(64)
                            .map(<[Value]>::to_vec)
                            .collect(),
                        host: self.host(&export.namespace, &export.name),
                        local_host: local_host(&export.namespace, &export.name),
                        backend_port: export.port.port,
                    })
                    .collect(),
            })
            .collect();
        let imports = self
            .services
            .iter()
            .filter(|s| cluster.imports(&s.namespace, &s.name))
            .map(|service| self.import(c, service))
            .collect();
        let passthrough: Vec<&PassThrough> = self
            .model
            .passthrough
            .iter()
            .filter(|p| p.cluster == c)
            .collect();
        ClusterPlan {
            name: cluster.name.clone(),
            gateway,
            exports,
            imports,
            virtual_hosts: self.virtual_hosts(&passthrough),
            passthrough: passthrough.iter().map(|p| p.object.clone()).collect(),
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
                let labels: Vec<&str> = host.split('.').take(2).collect();
                VirtualHost {
                    name: format!("mcw-vhost-{}", labels.join("-")),
                    namespace,
                    host,
                    ports,
                }
            })
            .collect()
    }

    fn import(&self, c: usize, service: &GlobalService) -> ImportPlan {
        let clusterset = &self.model.clusterset;
        let importer = &clusterset.clusters[c];
        let mut endpoints = Vec::new();
        for &e in &service.exporters {
            let export = &self.model.exports[e];
            let exporter = &clusterset.clusters[export.cluster];
            let local = export.cluster == c;
            let endpoint =
                |address: String, port: u16, policy: &str, route_policy: &str, tier| Endpoint {
                    address,
                    ports: service
                        .ports
                        .iter()
                        .map(|p| (p.istio_name.clone(), port))
                        .collect(),
                    locality: exporter.locality(),
                    cluster: exporter.name.clone(),
                    policy: policy.to_string(),
                    route_policy: route_policy.to_string(),
                    tier,
                    local,
                };
            for policy in &service.policies {
                if local {
                    let address = local_host(&service.namespace, &service.name);
                    endpoints.push(endpoint(address, export.port.port, policy, policy, PRIMARY));
                    continue;
                }
                endpoints.push(endpoint(
                    exporter.address.clone(),
                    self.policy(policy).port,
                    policy,
                    policy,
                    PRIMARY,
                ));
                if let Some(fallback) = &self.policy(policy).fallback {
                    let port = self.policy(fallback).port;
                    endpoints.push(endpoint(
                        exporter.address.clone(),
                        port,
                        fallback,
                        policy,
                        FALLBACK,
                    ));
                }
            }
        }
        // In an exporter, its own endpoints come first.
        endpoints.sort_by_key(|endpoint| !endpoint.local);
        let resolution = if endpoints
            .iter()
            .all(|e| e.address.parse::<IpAddr>().is_ok())
        {
            "STATIC"
        } else {
            "DNS"
        };

        // Envoy already prefers the client's own region; name the region to fail over to
        // when it has no healthy endpoint: the first other exporting region in ClusterSet
        // order. Istio uses only the first entry whose `from` matches, so there is one.
        let failover = service
            .exporters
            .iter()
            .map(|&e| &clusterset.clusters[self.model.exports[e].cluster].region)
            .find(|region| **region != importer.region)
            .map(|to| Failover {
                from: importer.region.clone(),
                to: to.clone(),
            })
            .into_iter()
            .collect();
        let single_port = (service.ports.len() == 1).then(|| service.ports[0].port);
        let subsets = service
            .policies
            .iter()
            .map(|policy| Subset {
                name: policy.clone(),
                traffic: TrafficPolicy::of(&self.policy(policy).resilience),
                fallback: self.policy(policy).fallback.clone(),
            })
            .collect();
        let egress = |name: String, matches: Option<Vec<Value>>, action: &Action| {
            let resilience = action
                .policy()
                .map(|p| service.overrides.apply(&self.policy(p).resilience));
            EgressRoute {
                name,
                matches,
                policy: action.policy().map(str::to_owned),
                port: single_port,
                timeout: resilience.as_ref().map(|r| r.timeout.to_string()),
                attempts: resilience.as_ref().map(|r| r.attempts),
                per_try_timeout: resilience.as_ref().map(|r| r.per_try_timeout.to_string()),
                retry_on: resilience.as_ref().map(|r| r.retry_on.join(",")),
            }
        };
        let routes = match &service.route {
            Some(route) => route
                .rules
                .iter()
                .map(|rule| {
                    egress(
                        rule.name.clone(),
                        Some(rule.matches.iter().flat_map(istio_matches).collect()),
                        &rule.action,
                    )
                })
                .chain(std::iter::once(egress(
                    "default".to_string(),
                    None,
                    &route.default,
                )))
                .collect(),
            None => service
                .policies
                .iter()
                .map(|p| egress(p.clone(), None, &Action::Policy(p.clone())))
                .collect(),
        };
        ImportPlan {
            namespace: service.namespace.clone(),
            name: service.name.clone(),
            host: self.host(&service.namespace, &service.name),
            service_type: service.service_type.as_str(),
            ports: service.ports.clone(),
            resolution,
            endpoints,
            subsets,
            failover,
            defaults: TrafficPolicy::of(&self.policy(&service.policies[0]).resilience),
            routes,
        }
    }

    /// The requests the export accepts on `listener`: the matches of the rules whose policy
    /// is the listener's, or falls back to it; everything when the default (or the export's
    /// one policy, without a WANRoute) uses it.
    fn ingress_matches(&self, export: &Export, listener: &str) -> Vec<Value> {
        let served = |action: &Action| {
            action.policy().is_some_and(|p| {
                p == listener || self.policy(p).fallback.as_deref() == Some(listener)
            })
        };
        let everything = || vec![json!({"path": {"type": "PathPrefix", "value": "/"}})];
        let Some(route) = &export.route else {
            return everything();
        };
        if served(&route.default) {
            return everything();
        }
        let mut matches: Vec<Value> = route
            .rules
            .iter()
            .filter(|r| served(&r.action))
            .flat_map(|r| r.matches.iter().map(gateway_match))
            .collect();
        matches.dedup();
        matches
    }

    /// The listeners an export must answer on: its policies and their fallbacks, whose
    /// tunnels carry its traffic when the primary ones fail.
    fn ingress_policies(&self, export: &Export) -> Vec<String> {
        let mut policies = export.policies.clone();
        policies.extend(
            export
                .policies
                .iter()
                .filter_map(|p| self.policy(p).fallback.clone()),
        );
        policies.sort();
        policies.dedup();
        policies
    }

    fn policy(&self, name: &str) -> &WanPolicy {
        &self.model.policies[name]
    }

    /// `<svc>.<ns>.svc.<domain>`: the name importers use.
    #[must_use]
    pub fn host(&self, namespace: &str, name: &str) -> String {
        format!("{name}.{namespace}.svc.{}", self.model.clusterset.domain)
    }
}

/// A match as a Gateway API `HTTPRouteMatch`.
fn gateway_match(m: &HttpMatch) -> Value {
    let named = |list: &[NamedMatch]| -> Vec<Value> {
        list.iter().map(|n| json!({"type": n.matcher.kind.as_str(), "name": n.name, "value": n.matcher.value})).collect()
    };
    let mut out = json!({"path": {"type": m.path.kind.as_str(), "value": m.path.value}});
    if let Some(method) = &m.method {
        out["method"] = json!(method);
    }
    if !m.headers.is_empty() {
        out["headers"] = json!(named(&m.headers));
    }
    if !m.query_params.is_empty() {
        out["queryParams"] = json!(named(&m.query_params));
    }
    out
}

/// A match as Istio `HTTPMatchRequest`s with the same meaning. A Gateway API path prefix
/// matches whole segments (`/pay` is not a prefix of `/payment`), Istio's `prefix` does
/// not; so `PathPrefix /pay` becomes two requests: `exact /pay` or `prefix /pay/`.
fn istio_matches(m: &HttpMatch) -> Vec<Value> {
    let string = |s: &StringMatch| match s.kind {
        MatchKind::Exact => json!({"exact": s.value}),
        MatchKind::PathPrefix => json!({"prefix": s.value}),
        MatchKind::RegularExpression => json!({"regex": s.value}),
    };
    let mut base = serde_json::Map::new();
    if let Some(method) = &m.method {
        base.insert("method".into(), json!({"exact": method}));
    }
    if !m.headers.is_empty() {
        base.insert(
            "headers".into(),
            m.headers
                .iter()
                .map(|h| (h.name.clone(), string(&h.matcher)))
                .collect(),
        );
    }
    if !m.query_params.is_empty() {
        base.insert(
            "queryParams".into(),
            m.query_params
                .iter()
                .map(|q| (q.name.clone(), string(&q.matcher)))
                .collect(),
        );
    }
    let uris = match m.path.kind {
        MatchKind::PathPrefix => {
            let prefix = m.path.value.trim_end_matches('/');
            if prefix.is_empty() {
                vec![json!({"prefix": "/"})]
            } else {
                vec![
                    json!({"exact": prefix}),
                    json!({"prefix": format!("{prefix}/")}),
                ]
            }
        }
        _ => vec![string(&m.path)],
    };
    uris.into_iter()
        .map(|uri| {
            let mut request = serde_json::Map::new();
            request.insert("uri".into(), uri);
            request.extend(base.clone());
            Value::Object(request)
        })
        .collect()
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
