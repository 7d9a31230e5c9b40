//! What one cluster's rendered objects make its proxies do, read as Istio reads them and
//! never from mcwan's plan: the client side (each VirtualService route a request takes, the
//! headers it sets, the ServiceEntry endpoints its subset selects, their priorities and
//! TLS; through the cluster's egress gateway, the sidecar's hop to it and the gateway's own
//! routes), and the ingress side (listeners and their TLS, attached HTTPRoutes,
//! AuthorizationPolicies). Pure; docs/verify.md cites the upstream rule behind each step.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::egress::{EgressFacts, Origination};
use super::intent::Intent;
use super::request::{self, AuthzPeer, AuthzRule, Sample, Unsure};

/// The name a VirtualService binds sidecars by (`constants.IstioMeshGateway`).
pub const MESH: &str = "mesh";

/// What the client's sidecar does with one request class for one host.
#[derive(Debug, Clone)]
pub struct ClientFlow {
    pub host: String,
    /// Where the class comes from: a route's match, a WANRoute rule, or no match.
    pub class: String,
    pub sample: Result<Sample, Unsure>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// A response from the sidecar itself: a direct response, or 404 for no route.
    Status(u16),
    /// The weighted destinations of the route the request takes.
    Routes(Vec<Destination>),
    /// The samples cannot decide (a pattern, a version-dependent behaviour).
    Unsure(String),
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    /// The Host header sent upstream.
    pub authority: String,
    pub weight: u64,
    /// Selected endpoints, by Envoy priority (0 first).
    pub endpoints: Vec<Endpoint>,
    /// The request headers the route sets (`headers.request.set`, lowercase names, but the
    /// Host, which is `authority`): what the exporter's gateway sees besides the request.
    pub headers: BTreeMap<String, String>,
    /// The DestinationRule's TLS mode for the destination (subset over top level), if set.
    pub tls_mode: Option<String>,
    /// The identities the sidecar accepts from the peer when it originates Istio mutual TLS:
    /// the DestinationRule's `subjectAltNames`, else the ServiceEntry's; empty checks none.
    pub subject_alt_names: Vec<String>,
    /// Why no endpoint can be chosen (no ServiceEntry, no such subset), if so.
    pub broken: Option<String>,
    /// Why the priorities are not known from the objects alone, if so.
    pub order_unsure: Option<String>,
    /// What makes an outage or a retry worse than without the setting (docs/mesh.md §6, §8).
    pub hazards: Vec<String>,
    /// Whether the route retries: Istio's default policy when it sets no `retries`, none
    /// with `attempts` 0 (route/retry/retry.go `ConvertPolicy`).
    pub retries: bool,
    /// When the destination is the cluster's egress gateway: what happens there.
    pub egress: Option<Box<EgressHop>>,
}

/// The hop through the source cluster's egress gateway: the sidecar's TLS to it, and the
/// routes of the same host that the gateway takes (those that apply to it).
#[derive(Debug, Clone)]
pub struct EgressHop {
    /// The Istio Gateway, `<namespace>/<name>`.
    pub gateway: String,
    /// The identity of the gateway's workload without trust domain: the peer exporters'
    /// gateways see.
    pub workload: String,
    /// Why the request does not get past the gateway's listener, `(result, why)`.
    pub refused: Option<(String, String)>,
    /// What the gateway does with the request; its destinations carry the headers both
    /// routes set.
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub priority: usize,
    pub address: String,
    pub port: u16,
    /// Istio mutual TLS: a DestinationRule that asks for it, or, when it sets no TLS, a
    /// MESH_INTERNAL entry's endpoint labelled `security.istio.io/tlsMode: istio`.
    pub mutual_tls: bool,
}

/// What a gateway listener expects on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerTls {
    /// `protocol: HTTP`: plain HTTP, with no peer identity (plaintext mode).
    Plain,
    /// `protocol: HTTPS`, TLS `Terminate` with `gateway.istio.io/tls-terminate-mode:
    /// ISTIO_MUTUAL`: Istio mutual TLS with the mesh's certificates (mutual mode).
    Mutual,
    /// Any other listener (TLS with certificates, passthrough, TCP, ...): neither mode renders
    /// it, and what it admits is not modelled. The text says what it is.
    Other(String),
}

impl ListenerTls {
    /// A Gateway API listener as Istio's gateway conversion reads it: TLS mode `Terminate`
    /// by default, and the terminate-mode option picks Istio's certificates
    /// (pilot/pkg/config/kube/gateway/conversion.go `buildTLS`, 1876-1942 at 1.26.0,
    /// 2186-2316 at 1.30.3).
    fn of(listener: &Value) -> Self {
        let protocol = text(&listener["protocol"]);
        let tls = &listener["tls"];
        let mode = tls["mode"].as_str().unwrap_or("Terminate");
        let option = tls["options"]["gateway.istio.io/tls-terminate-mode"].as_str();
        match (protocol, mode, option) {
            ("HTTP", _, _) => ListenerTls::Plain,
            ("HTTPS", "Terminate", Some("ISTIO_MUTUAL")) => ListenerTls::Mutual,
            ("HTTPS", "Terminate", Some(option)) => {
                ListenerTls::Other(format!("HTTPS terminating `{option}` TLS"))
            }
            ("HTTPS", "Terminate", None) => {
                ListenerTls::Other("HTTPS terminating TLS with its own certificates".into())
            }
            ("HTTPS", mode, _) => ListenerTls::Other(format!("HTTPS in TLS mode `{mode}`")),
            (protocol, _, _) => ListenerTls::Other(format!("of protocol `{protocol}`")),
        }
    }
}

/// What a request arriving at a cluster's ingress gateway gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    NoListener,
    Status(u16),
    Backend {
        namespace: String,
        service: String,
        port: u16,
    },
}

/// One cluster's proxies, as the verifier needs them.
#[derive(Debug, Default)]
pub struct ClusterFacts {
    pub name: String,
    pub flows: Vec<ClientFlow>,
    /// `(host, why)`: objects that break a host whatever the request.
    pub defects: Vec<(String, String)>,
    gateways: Vec<GatewayFacts>,
    /// HTTPRoute rules by hostname.
    routes: BTreeMap<String, Vec<RouteFacts>>,
    egress: Vec<EgressFacts>,
}

#[derive(Debug)]
struct GatewayFacts {
    namespace: String,
    name: String,
    /// For a LoadBalancer gateway: the addresses it requests (`spec.addresses`).
    load_balancer: Option<BTreeSet<String>>,
    /// For a NodePort gateway: listener port → the node port Istio's Service gets, from the
    /// ConfigMap its `infrastructure.parametersRef` names (docs/gateway.md).
    node_ports: Option<BTreeMap<u16, u16>>,
    /// Port → the first listener on it.
    listeners: BTreeMap<u16, ListenerFacts>,
    /// The identity of the gateway's workload without trust domain,
    /// `ns/<namespace>/sa/<service account>`.
    workload: String,
    authz: Authz,
}

/// The AuthorizationPolicies that apply to one workload, by action.
#[derive(Debug, Default)]
pub struct Authz {
    deny: RuleSet,
    allow: RuleSet,
    has_allow: bool,
}

impl Authz {
    /// The rules of these policies (those of other actions are not read).
    #[must_use]
    pub fn of(policies: &[&Value]) -> Self {
        let rules = |action: &str| {
            RuleSet::of(
                policies
                    .iter()
                    .filter(|p| p["spec"]["action"] == action)
                    .flat_map(|p| list(&p["spec"]["rules"])),
            )
        };
        Authz {
            deny: rules("DENY"),
            allow: rules("ALLOW"),
            has_allow: policies.iter().any(|p| p["spec"]["action"] == "ALLOW"),
        }
    }

    /// Whether they admit the request: no DENY rule matches, and an ALLOW rule does when
    /// an ALLOW policy exists (pilot/pkg/security/authz/builder/builder.go:110-139, 1.26.0).
    #[must_use]
    pub fn admits(&self, host: &str, sample: &Sample, principal: Option<&str>) -> bool {
        !self.deny.any(host, sample, principal)
            && (!self.has_allow || self.allow.any(host, sample, principal))
    }

    /// Shares equal peers with the other policies `peers` holds (`RuleSet::share`).
    pub fn share(&mut self, peers: &mut HashSet<Arc<AuthzPeer>>) {
        self.deny.share(peers);
        self.allow.share(peers);
    }

    /// What they ask of the caller of a request with this Host, method and path.
    #[must_use]
    pub fn peer_rules(&self, host: &str, sample: &Sample) -> PeerRules {
        PeerRules {
            deny: self.deny.peers(host, sample),
            allow: self.has_allow.then(|| self.allow.peers(host, sample)),
        }
    }
}

/// What a workload's AuthorizationPolicies ask of the caller of one request, its Host,
/// method and path given: the peers (`from` and `when`) of the DENY and of the ALLOW rules
/// whose operations match it. Every host and gateway whose rules name the same callers has
/// equal `PeerRules`, so verify asks its many sample callers once for all of them
/// (`callers::Answers`); once the clusters share their peers (`ClusterFacts::share_peers`),
/// equal peers are one `AuthzPeer`, and comparing them is comparing pointers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerRules {
    deny: Vec<Arc<AuthzPeer>>,
    /// `None`: no ALLOW policy.
    allow: Option<Vec<Arc<AuthzPeer>>>,
}

impl PeerRules {
    /// Whether the policies admit a caller with this identity sending these headers: as
    /// `Authz::admits`, the request's operation already matched.
    #[must_use]
    pub fn admits(&self, headers: &BTreeMap<String, String>, principal: Option<&str>) -> bool {
        let named = |peer: &Arc<AuthzPeer>| peer.matches(headers, principal);
        !self.deny.iter().any(named) && self.allow.as_ref().is_none_or(|a| a.iter().any(named))
    }
}

#[derive(Debug)]
struct ListenerFacts {
    name: String,
    /// Namespaces whose routes it admits; `None`: all.
    admits: Option<BTreeSet<String>>,
    tls: ListenerTls,
}

/// The rules of a gateway's AuthorizationPolicies of one action, indexed by the exact hosts
/// they are confined to, else by the trust domains of the peers they name, so that a request
/// is matched only against the rules that may match it: verify asks each gateway about many
/// callers (`callers`), and a clusterset has a rule per cluster that names no host.
#[derive(Debug, Default)]
struct RuleSet {
    rules: Vec<AuthzRule>,
    by_host: BTreeMap<String, Vec<usize>>,
    by_trust_domain: BTreeMap<String, Vec<usize>>,
    anywhere: Vec<usize>,
}

impl RuleSet {
    /// The rules, rules that name the same peers sharing one `AuthzPeer`.
    fn of<'a>(rules: impl Iterator<Item = &'a Value>) -> Self {
        let mut set = RuleSet::default();
        for (i, rule) in rules.map(AuthzRule::of).enumerate() {
            if let Some(hosts) = rule.hosts() {
                for host in hosts {
                    set.by_host.entry(host).or_default().push(i);
                }
            } else if let Some(domains) = rule.trust_domains() {
                for domain in domains {
                    set.by_trust_domain.entry(domain).or_default().push(i);
                }
            } else {
                set.anywhere.push(i);
            }
            set.rules.push(rule);
        }
        set.share(&mut HashSet::new());
        set
    }

    /// Gives each rule the `AuthzPeer` in `peers` equal to its own, adding those that are
    /// not there yet.
    fn share(&mut self, peers: &mut HashSet<Arc<AuthzPeer>>) {
        for rule in &mut self.rules {
            match peers.get(&rule.peer) {
                Some(shared) => rule.peer = Arc::clone(shared),
                None => {
                    peers.insert(Arc::clone(&rule.peer));
                }
            }
        }
    }

    /// The rules that may match a request with this Host: those of its host, and those
    /// no host confines.
    fn candidates(&self, host: &str) -> BTreeSet<usize> {
        let host = host.to_ascii_lowercase();
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        bucket(&self.by_host, Some(&host))
            .chain(bucket(&self.by_host, (bare != host).then_some(bare)))
            .chain(self.by_trust_domain.values().flatten())
            .chain(&self.anywhere)
            .copied()
            .collect()
    }

    /// Whether any rule matches the request.
    fn any(&self, host: &str, sample: &Sample, principal: Option<&str>) -> bool {
        let host = host.to_ascii_lowercase();
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        bucket(&self.by_host, Some(&host))
            .chain(bucket(&self.by_host, (bare != host).then_some(bare)))
            .chain(bucket(
                &self.by_trust_domain,
                principal.map(request::trust_domain),
            ))
            .chain(&self.anywhere)
            .any(|&i| self.rules[i].matches(&host, sample, principal))
    }

    /// The peers of the rules whose operations match a request with this Host, method and
    /// path, in the rules' order.
    fn peers(&self, host: &str, sample: &Sample) -> Vec<Arc<AuthzPeer>> {
        let mut peers: Vec<Arc<AuthzPeer>> = Vec::new();
        for i in self.candidates(host) {
            let rule = &self.rules[i];
            if rule.operation_matches(host, sample) {
                peers.push(Arc::clone(&rule.peer));
            }
        }
        peers
    }
}

/// The rules an index holds under `key`, if any.
fn bucket<'a>(
    index: &'a BTreeMap<String, Vec<usize>>,
    key: Option<&str>,
) -> impl Iterator<Item = &'a usize> {
    key.and_then(|k| index.get(k)).into_iter().flatten()
}

impl GatewayFacts {
    /// A Gateway, its AuthorizationPolicies and its Service customizations, as Istio's
    /// gateway deployment reads them.
    fn of(gateway: &Value, objects: &[Value]) -> Self {
        let namespace = text(&gateway["metadata"]["namespace"]).to_string();
        let name = text(&gateway["metadata"]["name"]).to_string();
        let listeners = Self::listeners(gateway, &namespace);
        let policies: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "AuthorizationPolicy"
                    && o["metadata"]["namespace"] == namespace.as_str()
            })
            .filter(|o| {
                list(&o["spec"]["targetRefs"])
                    .iter()
                    .any(|t| t["kind"] == "Gateway" && t["name"] == name.as_str())
            })
            .collect();
        // Istio deploys the gateway with this service account (deploymentcontroller.go:403-413
        // and conversion.go:1524-1529, 1.26.0).
        let account = gateway["metadata"]["annotations"]["gateway.istio.io/service-account"]
            .as_str()
            .map_or_else(
                || format!("{name}-{}", text(&gateway["spec"]["gatewayClassName"])),
                str::to_owned,
            );
        let load_balancer = (gateway["metadata"]["annotations"]
            ["networking.istio.io/service-type"]
            .as_str()
            .unwrap_or("LoadBalancer")
            == "LoadBalancer")
            .then(|| {
                list(&gateway["spec"]["addresses"])
                    .iter()
                    .map(|a| text(&a["value"]).to_string())
                    .collect()
            });
        let node_ports = Self::node_ports(gateway, objects, &namespace);
        GatewayFacts {
            load_balancer,
            node_ports,
            authz: Authz::of(&policies),
            workload: format!("ns/{namespace}/sa/{account}"),
            namespace,
            name,
            listeners,
        }
    }

    /// Port → the first listener on it, of any protocol.
    fn listeners(gateway: &Value, namespace: &str) -> BTreeMap<u16, ListenerFacts> {
        let mut listeners = BTreeMap::new();
        for listener in list(&gateway["spec"]["listeners"]) {
            let allowed = &listener["allowedRoutes"]["namespaces"];
            let admits = match text(&allowed["from"]) {
                "All" => None,
                "Selector" => Some(
                    list(&allowed["selector"]["matchExpressions"])
                        .iter()
                        .filter(|e| {
                            e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "In"
                        })
                        .flat_map(|e| list(&e["values"]).iter().map(|v| text(v).to_string()))
                        .collect(),
                ),
                // `Same`, the default.
                _ => Some(BTreeSet::from([namespace.to_string()])),
            };
            let port = listener["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok());
            if let Some(port) = port {
                listeners.entry(port).or_insert(ListenerFacts {
                    name: text(&listener["name"]).to_string(),
                    admits,
                    tls: ListenerTls::of(listener),
                });
            }
        }
        listeners
    }

    /// Whether its AuthorizationPolicies admit the request (DENY first, then ALLOW).
    fn admits(&self, host: &str, sample: &Sample, principal: Option<&str>) -> bool {
        self.authz.admits(host, sample, principal)
    }

    /// For a NodePort gateway: listener port → node port, from the ConfigMap its
    /// `infrastructure.parametersRef` names.
    fn node_ports(
        gateway: &Value,
        objects: &[Value],
        namespace: &str,
    ) -> Option<BTreeMap<u16, u16>> {
        (gateway["metadata"]["annotations"]["networking.istio.io/service-type"] == "NodePort").then(
            || {
                let reference = &gateway["spec"]["infrastructure"]["parametersRef"];
                objects
                    .iter()
                    .filter(|o| o["kind"] == "ConfigMap" && reference["kind"] == "ConfigMap")
                    .filter(|o| {
                        o["metadata"]["namespace"] == namespace
                            && o["metadata"]["name"] == reference["name"]
                    })
                    .filter_map(|o| {
                        yaml_serde::from_str::<Value>(o["data"]["service"].as_str()?).ok()
                    })
                    .flat_map(|patch| list(&patch["spec"]["ports"]).to_vec())
                    .filter_map(|p| {
                        let port = u16::try_from(p["port"].as_u64()?).ok()?;
                        Some((port, u16::try_from(p["nodePort"].as_u64()?).ok()?))
                    })
                    .collect()
            },
        )
    }
}

#[derive(Debug)]
struct RouteFacts {
    namespace: String,
    /// `(gateway namespace, gateway name, sectionName)`.
    parents: Vec<(String, String, Option<String>)>,
    rules: Vec<RuleFacts>,
}

/// One HTTPRoute rule: its matches (none means `PathPrefix /`) and its backend Service
/// and port.
#[derive(Debug, Clone)]
struct RuleFacts {
    matches: Vec<Value>,
    backend: Option<(String, u16)>,
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The kinds a cluster holds one of per imported service.
const PER_IMPORT: [&str; 3] = ["ServiceEntry", "DestinationRule", "VirtualService"];

/// A cluster's objects as verify keeps them until it reads them. The kinds a cluster holds
/// one of per import (`PER_IMPORT`) are kept as JSON text and parsed again where a flow
/// reads them: a cluster that imports 5,000 services holds 15,000 of them, which take more
/// than 100 MiB parsed and about a tenth of that as text. What indexing them reads is kept
/// beside the text, so that only a flow parses one. Other kinds stay parsed.
#[derive(Debug, Default)]
pub struct Objects {
    parsed: Vec<Value>,
    /// By kind, in the order they came.
    per_import: BTreeMap<&'static str, Vec<Kept>>,
}

/// One object of a per-import kind.
#[derive(Debug)]
struct Kept {
    text: Box<str>,
    /// The hosts it is for: `spec.host` of a DestinationRule, else `spec.hosts`.
    hosts: Box<[Box<str>]>,
    /// A ServiceEntry resolved by DNS that lists no endpoints.
    dns_without_endpoints: bool,
}

impl Objects {
    /// Keeps one object.
    pub fn push(&mut self, object: Value) {
        let Some(kind) = PER_IMPORT.into_iter().find(|kind| object["kind"] == *kind) else {
            self.parsed.push(object);
            return;
        };
        let spec = &object["spec"];
        let hosts = match kind {
            "DestinationRule" => vec![text(&spec["host"]).into()],
            _ => list(&spec["hosts"])
                .iter()
                .map(|h| text(h).into())
                .collect(),
        };
        let kept = Kept {
            text: object.to_string().into_boxed_str(),
            hosts: hosts.into_boxed_slice(),
            dns_without_endpoints: kind == "ServiceEntry"
                && spec["resolution"] == "DNS"
                && list(&spec["endpoints"]).is_empty(),
        };
        self.per_import.entry(kind).or_default().push(kept);
    }

    /// The objects of a per-import kind, unparsed, with their indices.
    fn kept<'a>(&'a self, kind: &str) -> impl Iterator<Item = (usize, &'a Kept)> + 'a {
        self.per_import
            .get(kind)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
    }

    /// The object of a per-import kind at `index`, parsed.
    fn get(&self, kind: &str, index: usize) -> Value {
        self.per_import
            .get(kind)
            .and_then(|kept| kept.get(index))
            // The text is a `Value` printed as JSON, which reads back.
            .and_then(|kept| serde_json::from_str(&kept.text).ok())
            .unwrap_or_default()
    }
}

impl FromIterator<Value> for Objects {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        let mut objects = Objects::default();
        for object in iter {
            objects.push(object);
        }
        objects
    }
}

impl ClusterFacts {
    /// Reads one cluster's objects. Request classes: every match of every VirtualService
    /// route, every match of the host's declared WANRoute, and a request that matches none.
    #[must_use]
    pub fn of(name: &str, objects: &Objects, intent: &Intent) -> Self {
        let suffix = format!(".svc.{}", intent.domain);
        // Host → the index of the first object of `kind` for it.
        let by_host = |kind: &str| {
            let mut out = BTreeMap::new();
            for (i, kept) in objects.kept(kind) {
                for host in &kept.hosts {
                    out.entry(host.to_string()).or_insert(i);
                }
            }
            out
        };
        let mut services: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, kept) in objects.kept("VirtualService") {
            for host in kept.hosts.iter().filter(|h| h.ends_with(&suffix)) {
                services.entry(host.to_string()).or_default().push(i);
            }
        }
        let egress = EgressFacts::all(&objects.parsed);
        let without_endpoints: BTreeSet<usize> = objects
            .kept("ServiceEntry")
            .filter(|(_, kept)| kept.dns_without_endpoints)
            .map(|(i, _)| i)
            .collect();
        let entries = by_host("ServiceEntry");
        let tables = Tables {
            objects,
            entries,
            rules: by_host("DestinationRule"),
            services: &services,
            egress: &egress,
            cluster: name,
            trust_domain: intent.cluster(name).and_then(|c| c.trust_domain.as_deref()),
        };
        let mut flows = Vec::new();
        for (host, claimed) in &services {
            let [service] = claimed.as_slice() else {
                flows.push(ClientFlow {
                    host: host.clone(),
                    class: "any request".into(),
                    sample: Err("several VirtualServices".into()),
                    outcome: Outcome::Unsure(format!(
                        "{} VirtualServices claim the host; Istio merges them by creation time",
                        claimed.len()
                    )),
                });
                continue;
            };
            let service = objects.get("VirtualService", *service);
            for (class, sample) in classes(
                &service,
                intent.service(host).and_then(|s| s.route.as_ref()),
            ) {
                let outcome = match &sample {
                    Ok(sample) => route(&service, MESH, host, sample, &tables),
                    Err(why) => Outcome::Unsure(format!("no sample request for {why}")),
                };
                flows.push(ClientFlow {
                    host: host.clone(),
                    class,
                    sample,
                    outcome,
                });
            }
        }
        let mut facts = ClusterFacts {
            name: name.to_string(),
            flows,
            ..ClusterFacts::default()
        };
        for (host, i) in &tables.entries {
            if without_endpoints.contains(i) {
                facts.defects.push((host.clone(), "a DNS ServiceEntry without endpoints: every sidecar resolves a name that does not exist".into()));
            }
        }
        facts.ingress(&objects.parsed);
        facts.egress = egress;
        facts
    }

    /// Makes the cluster's rules that name the same peers as rules `peers` holds share
    /// their `AuthzPeer`, and adds the others: once every cluster's are shared, equal
    /// `PeerRules` compare by pointer, and a clusterset's gateways, whose rules name the
    /// same callers over and over, hold each once.
    pub fn share_peers(&mut self, peers: &mut HashSet<Arc<AuthzPeer>>) {
        for gateway in &mut self.gateways {
            gateway.authz.share(peers);
        }
        for egress in &mut self.egress {
            egress.authz.share(peers);
        }
    }

    /// The identity, without trust domain, of the cluster's egress gateway's workload
    /// (`ns/<namespace>/sa/<account>`): the peer exporters' gateways see when its clients
    /// send through it.
    #[must_use]
    pub fn egress_workload(&self) -> Option<&str> {
        self.egress.first().map(|e| e.workload.as_str())
    }

    /// Whether the AuthorizationPolicies of the egress gateway `gateway` (`ns/name`) admit
    /// the request from a peer with this identity; `None` for no such gateway.
    #[must_use]
    pub fn egress_admits(
        &self,
        gateway: &str,
        host: &str,
        sample: &Sample,
        principal: Option<&str>,
    ) -> Option<bool> {
        self.egress
            .iter()
            .find(|e| e.gateway == gateway)
            .map(|e| e.admits(host, sample, principal))
    }

    fn ingress(&mut self, objects: &[Value]) {
        // Istio's own `Gateway` kind (networking.istio.io) is an egress gateway's: `egress`.
        let gateway_api = |o: &&Value| {
            o["kind"] == "Gateway" && !text(&o["apiVersion"]).starts_with("networking.istio.io/")
        };
        for gateway in objects.iter().filter(gateway_api) {
            self.gateways.push(GatewayFacts::of(gateway, objects));
        }
        self.http_routes(objects);
    }

    fn http_routes(&mut self, objects: &[Value]) {
        for route in objects.iter().filter(|o| o["kind"] == "HTTPRoute") {
            let namespace = text(&route["metadata"]["namespace"]).to_string();
            let parents = list(&route["spec"]["parentRefs"])
                .iter()
                .filter(|p| p["kind"].as_str().is_none_or(|k| k == "Gateway"))
                .map(|p| {
                    (
                        p["namespace"].as_str().unwrap_or(&namespace).to_string(),
                        text(&p["name"]).to_string(),
                        p["sectionName"].as_str().map(str::to_owned),
                    )
                })
                .collect::<Vec<_>>();
            let rules: Vec<RuleFacts> = list(&route["spec"]["rules"])
                .iter()
                .map(|rule| {
                    let backend = list(&rule["backendRefs"]).first().and_then(|b| {
                        let port = u16::try_from(b["port"].as_u64()?).ok()?;
                        Some((text(&b["name"]).to_string(), port))
                    });
                    RuleFacts {
                        matches: list(&rule["matches"]).to_vec(),
                        backend,
                    }
                })
                .collect();
            for hostname in list(&route["spec"]["hostnames"]).iter().map(text) {
                self.routes
                    .entry(hostname.to_ascii_lowercase())
                    .or_default()
                    .push(RouteFacts {
                        namespace: namespace.clone(),
                        parents: parents.clone(),
                        rules: rules.clone(),
                    });
            }
        }
    }

    /// The gateway listening on `port`, and its listener there. A NodePort gateway is reached
    /// on its node port, which must be the listener's.
    fn listener_on(&self, port: u16) -> Option<(&GatewayFacts, &ListenerFacts)> {
        self.gateways
            .iter()
            .filter(|g| {
                g.node_ports
                    .as_ref()
                    .is_none_or(|n| n.get(&port) == Some(&port))
            })
            .find_map(|g| g.listeners.get(&port).map(|l| (g, l)))
    }

    /// What the listener a request on `port` reaches expects on the wire, if there is one.
    #[must_use]
    pub fn listener_tls(&self, port: u16) -> Option<&ListenerTls> {
        self.listener_on(port).map(|(_, l)| &l.tls)
    }

    /// The identity, without trust domain, of the gateway's workload on `port`
    /// (`ns/<namespace>/sa/<service account>`): what its certificate names.
    #[must_use]
    pub fn gateway_workload(&self, port: u16) -> Option<&str> {
        self.listener_on(port).map(|(g, _)| g.workload.as_str())
    }

    /// Whether the AuthorizationPolicies of the gateway on `port` admit the request from a
    /// peer with this identity: no DENY rule matches, and an ALLOW rule does when an ALLOW
    /// policy exists (pilot/pkg/security/authz/builder/builder.go:110-139, 1.26.0). `None`
    /// without a listener.
    #[must_use]
    pub fn admits(
        &self,
        port: u16,
        host: &str,
        sample: &Sample,
        principal: Option<&str>,
    ) -> Option<bool> {
        let (gateway, _) = self.listener_on(port)?;
        Some(gateway.admits(host, sample, principal))
    }

    /// What the AuthorizationPolicies of the gateway on `port` ask of the caller of a
    /// request with this Host, method and path; `None` without a listener.
    #[must_use]
    pub fn peer_rules(&self, port: u16, host: &str, sample: &Sample) -> Option<PeerRules> {
        let (gateway, _) = self.listener_on(port)?;
        Some(gateway.authz.peer_rules(host, sample))
    }

    /// What this cluster's ingress gateway does with a request on `port` with Host `host`
    /// from a peer with this identity (`None`: plaintext): no listener; 403 from the
    /// AuthorizationPolicies (`admits`), before routing; 404 when no attached rule matches;
    /// else the most specific rule's backend (Gateway API apis/v1/httproute_types.go,
    /// `HTTPRouteRule.Matches`, v1.2.0 L174-199). The caller checks that its TLS is the
    /// listener's (`listener_tls`).
    ///
    /// # Errors
    /// When a regular expression decides and does not compile, or the listener is one verify
    /// does not model.
    pub fn ingress_for(
        &self,
        port: u16,
        host: &str,
        sample: &Sample,
        principal: Option<&str>,
    ) -> Result<Ingress, Unsure> {
        let Some((gateway, listener)) = self.listener_on(port) else {
            return Ok(Ingress::NoListener);
        };
        if let ListenerTls::Other(what) = &listener.tls {
            return Err(format!(
                "the listener on port {port} is {what}, which verify does not model"
            ));
        }
        if !gateway.admits(host, sample, principal) {
            return Ok(Ingress::Status(403));
        }
        let bare = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let mut best: Option<(_, &RouteFacts, &Option<(String, u16)>)> = None;
        for route in self
            .routes
            .get(&bare.to_ascii_lowercase())
            .into_iter()
            .flatten()
        {
            let attached = route.parents.iter().any(|(ns, name, section)| {
                *ns == gateway.namespace
                    && *name == gateway.name
                    && section.as_ref().is_none_or(|s| *s == listener.name)
            });
            if !attached
                || listener
                    .admits
                    .as_ref()
                    .is_some_and(|a| !a.contains(&route.namespace))
            {
                continue;
            }
            for RuleFacts { matches, backend } in &route.rules {
                let everything =
                    [serde_json::json!({"path": {"type": "PathPrefix", "value": "/"}})];
                let matches = if matches.is_empty() {
                    &everything[..]
                } else {
                    matches.as_slice()
                };
                for m in matches {
                    if request::gateway_matches(m, sample)? {
                        let rank = request::precedence(m);
                        if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
                            best = Some((rank, route, backend));
                        }
                    }
                }
            }
        }
        Ok(match best {
            Some((_, route, Some((service, port)))) => Ingress::Backend {
                namespace: route.namespace.clone(),
                service: service.clone(),
                port: *port,
            },
            Some((_, _, None)) => Ingress::Status(500),
            None => Ingress::Status(404),
        })
    }

    /// Whether the gateway listening on `port` may be reached at `address`: a LoadBalancer
    /// gateway must request it, or the cloud assigns another (docs/mesh.md §7).
    #[must_use]
    pub fn pinned(&self, port: u16, address: &str) -> bool {
        self.gateways
            .iter()
            .filter(|g| g.listeners.contains_key(&port))
            .all(|g| match &g.load_balancer {
                Some(requested) => {
                    requested.contains(address) || address.parse::<std::net::IpAddr>().is_err()
                }
                None => true,
            })
    }
}

/// The request classes of a VirtualService, with the declared WANRoute's for its host.
fn classes(
    service: &Value,
    declared: Option<&super::intent::RouteIntent>,
) -> Vec<(String, Result<Sample, Unsure>)> {
    let mut out: Vec<(String, Result<Sample, Unsure>)> = Vec::new();
    for (i, route) in list(&service["spec"]["http"]).iter().enumerate() {
        let name = route["name"]
            .as_str()
            .map_or_else(|| format!("route {}", i + 1), |n| format!("route {n}"));
        // A match that only names gateways says which proxy takes the route, not which
        // requests: it stands for no class of its own.
        let by_proxy = |m: &&Value| {
            m.as_object().is_some_and(|o| {
                o.contains_key("gateways") && o.keys().all(|k| k == "gateways" || k == "name")
            })
        };
        for m in list(&route["match"]).iter().filter(|m| !by_proxy(m)) {
            out.push((name.clone(), request::from_istio(m)));
        }
    }
    for rule in declared.into_iter().flat_map(|r| &r.rules) {
        for m in &rule.matches {
            out.push((format!("rule {}", rule.name), request::from_gateway(m)));
        }
    }
    if out.is_empty() {
        // No route distinguishes requests: one class stands for them all.
        let any = Sample {
            method: "GET".into(),
            path: "/".into(),
            ..request::unmatched()
        };
        out.push(("any request".into(), Ok(any)));
    } else {
        out.push(("no match".into(), Ok(request::unmatched())));
    }
    let mut seen = BTreeSet::new();
    out.retain(|(_, sample)| match sample {
        Ok(sample) => seen.insert(sample.clone()),
        Err(_) => true,
    });
    out
}

/// What a cluster's proxies route by: its ServiceEntries and DestinationRules by host, its
/// VirtualServices by clusterset host, and its egress gateways.
struct Tables<'a> {
    objects: &'a Objects,
    /// Host → its ServiceEntry's index.
    entries: BTreeMap<String, usize>,
    /// Host → its DestinationRule's index.
    rules: BTreeMap<String, usize>,
    /// Host → the indexes of the VirtualServices that claim it.
    services: &'a BTreeMap<String, Vec<usize>>,
    egress: &'a [EgressFacts],
    /// The cluster, and its trust domain: what its egress gateway's certificate names.
    cluster: &'a str,
    trust_domain: Option<&'a str>,
}

impl Tables<'_> {
    /// The ServiceEntry of a host, parsed.
    fn entry(&self, host: &str) -> Option<Value> {
        let index = self.entries.get(host)?;
        Some(self.objects.get("ServiceEntry", *index))
    }

    /// The DestinationRule of a host, parsed.
    fn rule(&self, host: &str) -> Option<Value> {
        let index = self.rules.get(host)?;
        Some(self.objects.get("DestinationRule", *index))
    }
}

/// A gateway as a VirtualService of `namespace` names it, resolved as Istio resolves
/// `gateways` and match `gateways` (pilot/pkg/model/config.go `resolveGatewayName`,
/// virtualservice.go `resolveVirtualServiceShortnames`): `mesh`; `ns/name`, `./name` in
/// the VirtualService's namespace; a short name in that namespace; `name.ns.svc…`.
fn resolve_gateway(name: &str, namespace: &str) -> String {
    match name.split_once('/') {
        _ if name == MESH => name.to_string(),
        Some((".", gateway)) => format!("{namespace}/{gateway}"),
        Some(_) => name.to_string(),
        None => match name.split_once('.') {
            None => format!("{namespace}/{name}"),
            Some((gateway, rest)) => {
                format!("{}/{gateway}", rest.split('.').next().unwrap_or(rest))
            }
        },
    }
}

/// Whether a list of gateway names, as a VirtualService of `namespace` writes them, names
/// the proxy (`mesh`, or an Istio Gateway `ns/name`).
fn names(gateways: &[Value], proxy: &str, namespace: &str) -> bool {
    gateways
        .iter()
        .any(|g| resolve_gateway(text(g), namespace) == proxy)
}

/// The routes of a VirtualService the proxy takes, in order, each with the matches that
/// apply to it (none: a route without matches, which takes every request). A VirtualService
/// binds the gateways it lists, or `mesh` when it lists none (push_context.go
/// `getGatewayNames`, 1847-1854 / 1864-1871 at 1.26.0 / 1.30.3). A match applies when it
/// names no gateway, or names the proxy's (pilot/pkg/networking/core/route/route.go
/// `sourceMatchHTTP`, 435-452 / 447-464; `sourceLabels` and `sourceNamespace` are not read);
/// a route none of whose matches apply is not the proxy's (`TranslateRoute` returns nil for
/// each, 472 / 484).
fn routes_for<'v>(service: &'v Value, proxy: &str) -> Vec<(&'v Value, Vec<&'v Value>)> {
    let namespace = text(&service["metadata"]["namespace"]);
    let bound = list(&service["spec"]["gateways"]);
    if !(bound.is_empty() && proxy == MESH || names(bound, proxy, namespace)) {
        return Vec::new();
    }
    list(&service["spec"]["http"])
        .iter()
        .filter_map(|route| {
            let matches = list(&route["match"]);
            let applying: Vec<&Value> = matches
                .iter()
                .filter(|m| {
                    let gateways = list(&m["gateways"]);
                    gateways.is_empty() || names(gateways, proxy, namespace)
                })
                .collect();
            (matches.is_empty() || !applying.is_empty()).then_some((route, applying))
        })
        .collect()
}

/// The first route of the proxy's whose match takes the request, and where it sends it.
/// Istio keeps the routes' order in Envoy's route table, which takes the first match
/// (VirtualService reference: "the first rule matching an incoming request is used"); no
/// route gives Envoy's 404 NR. When no route of the VirtualService is the proxy's, Istio
/// leaves it out (`BuildHTTPRoutesForVirtualService` errs "no routes matched", route.go:428 /
/// 440): a sidecar takes the host's default route, to every endpoint of the entry
/// (`buildSidecarVirtualHostsForVirtualService` 264-266 / 273-275, and
/// `BuildSidecarVirtualHostWrapper` 120-142 / 123-145, at 1.26.0 / 1.30.3); a gateway has
/// no virtual host for it, 404 (core/gateway.go:528-536 / 547-555).
fn route(service: &Value, proxy: &str, host: &str, sample: &Sample, tables: &Tables) -> Outcome {
    let routes = routes_for(service, proxy);
    if routes.is_empty() {
        if proxy != MESH {
            return Outcome::Status(404);
        }
        let mut default = Destination::to(host, None, host.to_string(), 100);
        default.retries = true;
        return Outcome::Routes(vec![endpoints(default, None, tables)]);
    }
    for (route, matches) in routes {
        let mut taken = matches.is_empty();
        for m in &matches {
            match request::istio_matches(m, sample) {
                Ok(true) => taken = true,
                Ok(false) => {}
                Err(why) => return Outcome::Unsure(why),
            }
        }
        if !taken {
            continue;
        }
        if let Some(status) = route["directResponse"]["status"]
            .as_u64()
            .or_else(|| route["fault"]["abort"]["httpStatus"].as_u64())
        {
            return Outcome::Status(u16::try_from(status).unwrap_or(500));
        }
        return Outcome::Routes(destinations(route, &matches, proxy, host, sample, tables));
    }
    Outcome::Status(404)
}

/// Why the route's retries may run a request twice: it retries on a failure after the
/// request was sent, whatever the sample's method (the route takes every method its
/// matches allow).
fn retry_hazard(route: &Value, matches: &[&Value]) -> Option<String> {
    let retry_on = route["retries"]["retryOn"].as_str().unwrap_or_default();
    let repeats = route["retries"]["attempts"].as_u64().unwrap_or(2) > 0
        && retry_on
            .split(',')
            .any(|c| matches!(c, "reset" | "gateway-error" | "5xx"));
    let idempotent_only = !matches.is_empty()
        && matches.iter().all(|m| {
            m["method"]["exact"]
                .as_str()
                .is_some_and(|method| crate::model::IDEMPOTENT_METHODS.contains(&method))
        });
    (repeats && !idempotent_only).then(|| {
        format!("a request that is not idempotent may run twice: the route retries on `{retry_on}`")
    })
}

/// Whether a route retries at all: without `retries`, Istio's default policy (2 attempts);
/// with it, `attempts` above 0 (route/retry/retry.go `ConvertPolicy`, 85-93 / 98-108 at
/// 1.26.0 / 1.30.3).
fn retries(route: &Value) -> bool {
    let retries = &route["retries"];
    retries.is_null() || retries["attempts"].as_i64().unwrap_or_default() > 0
}

/// The weighted destinations of the route the proxy takes: a sidecar's destination that
/// is the cluster's egress gateway is followed there; a gateway's that is one again loops.
fn destinations(
    route: &Value,
    matches: &[&Value],
    proxy: &str,
    host: &str,
    sample: &Sample,
    tables: &Tables,
) -> Vec<Destination> {
    let hazard = retry_hazard(route, matches);
    let set_host = |headers: &Value| {
        headers["request"]["set"]["host"]
            .as_str()
            .map(str::to_owned)
    };
    let route_authority = route["rewrite"]["authority"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| set_host(&route["headers"]));
    let targets = list(&route["route"]);
    let route_headers = set_headers(&route["headers"]);
    targets
        .iter()
        .map(|target| {
            let d = &target["destination"];
            let authority = route_authority
                .clone()
                .or_else(|| set_host(&target["headers"]))
                .unwrap_or_else(|| host.to_string());
            let weight =
                target["weight"]
                    .as_u64()
                    .unwrap_or(if targets.len() == 1 { 100 } else { 0 });
            let port = d["port"]["number"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok());
            let mut destination =
                Destination::to(text(&d["host"]), d["subset"].as_str(), authority, weight);
            // One destination: Istio appends its headers after the route's, and the last
            // `set` wins; weighted ones: Envoy applies the route's after the cluster's
            // (route.go:686-687, 720-722, 759-762 at 1.30.3; Envoy's route.proto
            // `most_specific_header_mutations_wins`).
            let own = set_headers(&target["headers"]);
            destination.headers = if targets.len() == 1 {
                route_headers.clone().into_iter().chain(own).collect()
            } else {
                own.into_iter().chain(route_headers.clone()).collect()
            };
            destination.retries = retries(route);
            let egress = tables.egress.iter().find(|e| e.host == destination.host);
            let mut destination = match egress {
                Some(egress) if proxy == MESH => {
                    via_egress(destination, egress, port, sample, tables)
                }
                Some(_) => {
                    destination.broken = Some(format!(
                        "the egress gateway sends it to `{}`, the egress gateway again: it loops",
                        destination.host
                    ));
                    destination
                }
                None => endpoints(destination, port, tables),
            };
            destination.hazards.extend(hazard.clone());
            destination
        })
        .collect()
}

/// The TLS the sidecar originates to the egress gateway, from its DestinationRule's `tls`:
/// the mode and the identities it accepts, into `out`, and the SNI it sends: `sni`, else
/// the cluster's name, `outbound|<port>|<subset>|<host>` (cluster_tls.go:149-152 / 151-154
/// at 1.26.0 / 1.30.3).
fn egress_tls(out: &mut Destination, tls: Option<&Value>, port: u16) -> String {
    out.tls_mode = tls.and_then(|t| t["mode"].as_str()).map(str::to_owned);
    out.subject_alt_names = tls
        .map(|t| {
            list(&t["subjectAltNames"])
                .iter()
                .map(|n| text(n).to_string())
                .collect()
        })
        .unwrap_or_default();
    tls.and_then(|t| t["sni"].as_str()).map_or_else(
        || {
            let subset = out.subset.as_deref().unwrap_or_default();
            format!("outbound|{port}|{subset}|{}", out.host)
        },
        str::to_owned,
    )
}

/// What the egress gateway does with a request for `authority`: the routes of the
/// VirtualService for it that apply to the gateway, and that VirtualService's namespace,
/// which the gateway's server must list the host for. Without one: 404.
fn at_egress(
    egress: &EgressFacts,
    authority: &str,
    request: &Sample,
    tables: &Tables,
) -> (Option<String>, Outcome) {
    match tables.services.get(authority).map(Vec::as_slice) {
        Some([service]) => {
            let service = tables.objects.get("VirtualService", *service);
            (
                Some(text(&service["metadata"]["namespace"]).to_string()),
                route(&service, &egress.gateway, authority, request, tables),
            )
        }
        Some([_, _, ..]) => (
            None,
            Outcome::Unsure(
                "several VirtualServices claim the host at the egress gateway; Istio merges them by creation time".into(),
            ),
        ),
        _ => (None, Outcome::Status(404)),
    }
}

/// The hop through the egress gateway: the sidecar's TLS to it (the DestinationRule of the
/// gateway's Service, subset over top level), whether its listener takes it
/// (`EgressFacts::refuses`), and the routes it takes there: those of the VirtualService for
/// the request's Host that apply to the gateway, with the headers the sidecar's route set.
fn via_egress(
    mut out: Destination,
    egress: &EgressFacts,
    port: Option<u16>,
    sample: &Sample,
    tables: &Tables,
) -> Destination {
    let Some(port) = port.or_else(|| egress.only_port()) else {
        out.broken = Some(format!("no single port of `{}` to send to", out.host));
        return out;
    };
    let rule = tables.rule(&out.host);
    let policy = match TrafficPolicy::of(rule.as_ref(), out.subset.as_deref(), &out.host) {
        Ok(policy) => policy,
        Err(why) => {
            out.broken = Some(why);
            return out;
        }
    };
    let sni = egress_tls(&mut out, policy.get("tls"), port);
    let authority = out
        .authority
        .rsplit_once(':')
        .map_or(out.authority.as_str(), |(h, _)| h)
        .to_string();
    let mut request = sample.clone();
    request.headers.extend(out.headers.clone());
    let (namespace, outcome) = at_egress(egress, &authority, &request, tables);
    let at = format!("`{}`'s egress gateway", tables.cluster);
    let identity = tables
        .trust_domain
        .map(|td| format!("spiffe://{td}/{}", egress.workload));
    let origination = Origination {
        port,
        mode: out.tls_mode.as_deref(),
        sni,
        subject_alt_names: &out.subject_alt_names,
    };
    let refused = egress.refuses(
        &at,
        &origination,
        &authority,
        namespace.as_deref(),
        identity.as_deref(),
    );
    let outcome = match outcome {
        Outcome::Routes(destinations) => Outcome::Routes(
            destinations
                .into_iter()
                .map(|mut d| {
                    d.headers = out.headers.clone().into_iter().chain(d.headers).collect();
                    d
                })
                .collect(),
        ),
        other => other,
    };
    out.egress = Some(Box::new(EgressHop {
        gateway: egress.gateway.clone(),
        workload: egress.workload.clone(),
        refused,
        outcome,
    }));
    out
}

/// The request headers a VirtualService `Headers` sets, by lowercase name, but the Host:
/// Istio makes `host` and `:authority` the upstream authority
/// (pilot/pkg/networking/core/route/route.go `translateAppendHeaders` and
/// `isAuthorityHeader`, 922-951 and 967-969 / 971-1000 and 1016-1018 at 1.26.0 / 1.30.3).
fn set_headers(headers: &Value) -> BTreeMap<String, String> {
    headers["request"]["set"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.to_ascii_lowercase(), text(value).to_string()))
        .filter(|(name, _)| name != "host" && name != ":authority")
        .collect()
}

impl Destination {
    /// A destination the route names, before its endpoints are known.
    fn to(host: &str, subset: Option<&str>, authority: String, weight: u64) -> Self {
        Destination {
            host: host.to_string(),
            subset: subset.map(str::to_owned),
            authority,
            weight,
            endpoints: Vec::new(),
            headers: BTreeMap::new(),
            tls_mode: None,
            subject_alt_names: Vec::new(),
            broken: None,
            order_unsure: None,
            hazards: Vec::new(),
            retries: false,
            egress: None,
        }
    }
}

/// A destination's DestinationRule: its subset's labels, and the subset's traffic policy
/// over the top-level one, field by field (pilot/pkg/networking/util/util.go:837-845).
struct TrafficPolicy<'r> {
    labels: Option<&'r Value>,
    top: Option<&'r Value>,
    own: Option<&'r Value>,
}

impl<'r> TrafficPolicy<'r> {
    /// The rule for `host` and its subset; an error names a subset the rule lacks.
    fn of(rule: Option<&'r Value>, subset: Option<&str>, host: &str) -> Result<Self, String> {
        let subset_def = match subset {
            Some(name) => Some(
                rule.into_iter()
                    .flat_map(|r| list(&r["spec"]["subsets"]))
                    .find(|s| s["name"] == name)
                    .ok_or_else(|| format!("no subset `{name}` of `{host}`"))?,
            ),
            None => None,
        };
        Ok(TrafficPolicy {
            labels: subset_def.map(|s| &s["labels"]),
            top: rule.map(|r| &r["spec"]["trafficPolicy"]),
            own: subset_def.map(|s| &s["trafficPolicy"]),
        })
    }

    fn get(&self, field: &str) -> Option<&'r Value> {
        self.own
            .map(|p| &p[field])
            .filter(|v| !v.is_null())
            .or_else(|| self.top.map(|p| &p[field]).filter(|v| !v.is_null()))
    }
}

/// The endpoints a destination reaches, with Istio's priorities: `failoverPriority` on an
/// EDS (STATIC) cluster with outlier detection; on DNS subset clusters Istio applies none
/// (1.26-1.30); `failover` regions and the default locality order depend on the client's
/// node labels, so they make the order unsure.
fn endpoints(mut out: Destination, port: Option<u16>, tables: &Tables) -> Destination {
    let host = out.host.clone();
    let Some(entry) = tables.entry(&host) else {
        out.broken = Some(format!("no ServiceEntry for `{host}`"));
        return out;
    };
    let ports = list(&entry["spec"]["ports"]);
    let service_port = match port {
        Some(number) => ports
            .iter()
            .find(|p| p["number"].as_u64() == Some(u64::from(number))),
        None if ports.len() == 1 => ports.first(),
        None => None,
    };
    let Some(service_port) = service_port else {
        out.broken = Some(format!("no single port of `{host}` to send to"));
        return out;
    };
    let subset = out.subset.clone();
    let rule = tables.rule(&host);
    let policy = match TrafficPolicy::of(rule.as_ref(), subset.as_deref(), &host) {
        Ok(policy) => policy,
        Err(why) => {
            out.broken = Some(why);
            return out;
        }
    };
    let selector = policy.labels;
    let merged = |field: &str| policy.get(field);
    let outlier = merged("outlierDetection");
    out.hazards
        .extend(outlier.into_iter().flat_map(outlier_hazards));
    let outlier = outlier.is_some();
    let setting = merged("loadBalancer").map(|lb| &lb["localityLbSetting"]);
    let tls = merged("tls");
    origination(&mut out, tls, &entry);
    let mutual_dr = out.tls_mode.as_deref() == Some("ISTIO_MUTUAL");
    let internal = entry["spec"]["location"] == "MESH_INTERNAL";
    let dns = entry["spec"]["resolution"] == "DNS";
    let selected: Vec<&Value> = list(&entry["spec"]["endpoints"])
        .iter()
        .filter(|e| {
            selector
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .all(|(k, v)| e["labels"][k] == *v)
        })
        .collect();
    let (priorities, order_unsure) =
        priorities(&selected, setting, outlier, dns && out.subset.is_some());
    out.order_unsure = order_unsure;
    let port_name = text(&service_port["name"]);
    let default_port = service_port["number"].as_u64().unwrap_or_default();
    out.endpoints = selected
        .iter()
        .zip(priorities)
        .map(|(e, priority)| Endpoint {
            priority,
            address: text(&e["address"]).to_string(),
            port: u16::try_from(e["ports"][port_name].as_u64().unwrap_or(default_port))
                .unwrap_or_default(),
            mutual_tls: mutual_dr
                || (tls.is_none()
                    && internal
                    && e["labels"]["security.istio.io/tlsMode"] == "istio"),
        })
        .collect();
    out.endpoints.sort();
    out
}

/// The TLS the sidecar originates, from the DestinationRule's `tls` (subset over top
/// level): its mode, and for Istio mutual TLS the identities it accepts, the rule's
/// `subjectAltNames` or else the ServiceEntry's (pilot/pkg/networking/core/cluster_tls.go
/// `buildUpstreamTLSSettings`, 393-426 / 427-461 at 1.26.0 / 1.30.3). Without a `tls`,
/// Istio's auto mutual TLS follows the endpoints' labels (428-438 / 463-472).
fn origination(out: &mut Destination, tls: Option<&Value>, entry: &Value) {
    out.tls_mode = tls.and_then(|t| t["mode"].as_str()).map(str::to_owned);
    if out.tls_mode.as_deref() != Some("ISTIO_MUTUAL") {
        return;
    }
    let names =
        |v: &Value| -> Vec<String> { list(v).iter().map(|n| text(n).to_string()).collect() };
    out.subject_alt_names = tls
        .map(|t| names(&t["subjectAltNames"]))
        .unwrap_or_default();
    if out.subject_alt_names.is_empty() {
        out.subject_alt_names = names(&entry["spec"]["subjectAltNames"]);
    }
}

/// Problems of an outlier detection setting that turn one failure into an outage.
fn outlier_hazards(od: &Value) -> Vec<String> {
    let mut hazards = Vec::new();
    if od["consecutive5xxErrors"].as_u64().is_none_or(|n| n > 0) {
        hazards.push(
            "an application's 5xx responses eject a whole cluster (consecutive5xxErrors is not 0)"
                .into(),
        );
    }
    if od["minHealthPercent"].as_u64().unwrap_or_default() == 0 {
        hazards.push("with every endpoint ejected, requests get 503 (no panic threshold: minHealthPercent is 0)".into());
    }
    hazards
}

/// Istio's priority of each selected endpoint (0 first), and why the order is unsure
/// when it depends on the client's node labels. `dns_subset`: a subset of a DNS
/// ServiceEntry, on which Istio applies no `failoverPriority`.
fn priorities(
    selected: &[&Value],
    setting: Option<&Value>,
    outlier: bool,
    dns_subset: bool,
) -> (Vec<usize>, Option<String>) {
    let mut order_unsure = None;
    let order = setting
        .map(|s| list(&s["failoverPriority"]))
        .unwrap_or_default();
    let localities: BTreeSet<&str> = selected.iter().map(|e| text(&e["locality"])).collect();
    let by_node_labels =
        "ordered by the client's node labels (locality), which the objects do not show";
    let ranked = match setting {
        Some(s) if s["enabled"] == false => false,
        _ if !outlier => false,
        Some(s) if !list(&s["failover"]).is_empty() => {
            order_unsure = Some(by_node_labels.into());
            false
        }
        Some(_) if !order.is_empty() => !dns_subset,
        _ => {
            if localities.len() > 1 {
                order_unsure = Some(by_node_labels.into());
            }
            false
        }
    };
    let mut priorities: Vec<usize> = selected
        .iter()
        .map(|e| {
            if !ranked {
                return 0;
            }
            let n = order.len();
            order
                .iter()
                .enumerate()
                .find(|(_, entry)| {
                    let (label, value) = text(entry).split_once('=').unwrap_or((text(entry), ""));
                    e["labels"][label].as_str() != Some(value)
                })
                .map_or(0, |(j, _)| n - j)
        })
        .collect();
    // Istio renumbers the priorities present from 0.
    let mut present = priorities.clone();
    present.sort_unstable();
    present.dedup();
    for p in &mut priorities {
        *p = present.binary_search(p).unwrap_or_default();
    }
    (priorities, order_unsure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `PeerRules` asks of a caller is what the policies ask: for every host, request,
    /// identity and claimed cluster, and whatever indexes the rules (a host, a trust domain,
    /// neither); and two hosts whose rules name the same callers ask the same.
    #[test]
    fn peer_rules_admit_whom_the_policies_admit() {
        let principals = |domain: &str| json!([format!("{domain}/ns/shop/sa/*")]);
        let allow = json!({"spec": {"action": "ALLOW", "rules": [
            {"from": [{"source": {"principals": principals("td-a")}}],
             "to": [{"operation": {"hosts": ["a.example", "a.example:*"]}}]},
            {"from": [{"source": {"principals": principals("td-a")}}],
             "to": [{"operation": {"hosts": ["b.example"]}}]},
            {"from": [{"source": {"principals": principals("td-b"), "notPrincipals": ["*/sa/intruder"]}}],
             "to": [{"operation": {"hosts": ["c.example"], "methods": ["GET"], "paths": ["/open/*"]}}]},
            {"to": [{"operation": {"paths": ["/public"]}}]}
        ]}});
        let deny = json!({"spec": {"action": "DENY", "rules": [
            {"from": [{"source": {"principals": ["td-a/*"]}}],
             "when": [{"key": "request.headers[x-source]", "values": ["*"], "notValues": ["a"]}]},
            {"to": [{"operation": {"methods": ["DELETE"]}}]}
        ]}});
        let authz = Authz::of(&[&allow, &deny]);
        let open = Authz::of(&[&deny]);
        let requests: Vec<Sample> = [("GET", "/open/x"), ("GET", "/public"), ("DELETE", "/x")]
            .into_iter()
            .map(|(method, path)| Sample {
                method: method.into(),
                path: path.into(),
                ..request::unmatched()
            })
            .collect();
        let peers = [
            None,
            Some("td-a/ns/shop/sa/default"),
            Some("td-a/ns/other/sa/default"),
            Some("td-b/ns/shop/sa/default"),
            Some("td-b/ns/shop/sa/intruder"),
        ];
        let mut asked = 0;
        for authz in [&authz, &open] {
            for host in [
                "a.example",
                "A.example:8080",
                "b.example",
                "c.example",
                "d.example",
            ] {
                for request in &requests {
                    let rules = authz.peer_rules(host, request);
                    for claim in [None, Some("a"), Some("b")] {
                        let mut sample = request.clone();
                        sample
                            .headers
                            .extend(claim.map(|c| ("x-source".to_string(), c.to_string())));
                        for peer in peers {
                            let expected = authz.admits(host, &sample, peer);
                            assert_eq!(
                                rules.admits(&sample.headers, peer),
                                expected,
                                "{host} {sample} {peer:?}"
                            );
                            asked += usize::from(expected);
                        }
                    }
                }
            }
        }
        assert!(asked > 0, "some caller is admitted");
        let get = &requests[0];
        assert_eq!(
            authz.peer_rules("a.example", get),
            authz.peer_rules("b.example", get)
        );
        assert_ne!(
            authz.peer_rules("a.example", get),
            authz.peer_rules("c.example", get)
        );
    }

    #[test]
    fn gateway_names_resolve_as_istio_resolves_them() {
        assert_eq!(resolve_gateway("mesh", "shop"), "mesh");
        assert_eq!(
            resolve_gateway("mcw-system/mcw-egress", "shop"),
            "mcw-system/mcw-egress"
        );
        assert_eq!(resolve_gateway("./egress", "shop"), "shop/egress");
        assert_eq!(resolve_gateway("egress", "shop"), "shop/egress");
        assert_eq!(
            resolve_gateway("egress.mcw-system.svc.cluster.local", "shop"),
            "mcw-system/egress"
        );
        assert_eq!(
            resolve_gateway("egress.mcw-system", "shop"),
            "mcw-system/egress"
        );
    }

    /// A sidecar takes only the routes whose matches apply to `mesh`, a gateway only those
    /// that apply to it; a route without matches applies to both, and a VirtualService
    /// applies only to what it binds (route.go `sourceMatchHTTP`).
    #[test]
    fn each_proxy_takes_the_routes_that_apply_to_it() {
        let service = json!({
            "metadata": {"namespace": "shop"},
            "spec": {
                "gateways": ["mesh", "mcw-system/mcw-egress"],
                "http": [
                    {"name": "to-egress", "match": [{"gateways": ["mesh"]}]},
                    {"name": "both", "match": [{"uri": {"prefix": "/a"}, "gateways": ["mcw-system/mcw-egress"]}, {"uri": {"prefix": "/b"}}]},
                    {"name": "any"}
                ]
            }
        });
        let names = |proxy: &str| -> Vec<(String, usize)> {
            routes_for(&service, proxy)
                .into_iter()
                .map(|(r, m)| (text(&r["name"]).to_string(), m.len()))
                .collect()
        };
        assert_eq!(
            names(MESH),
            [
                ("to-egress".into(), 1),
                ("both".into(), 1),
                ("any".into(), 0)
            ]
        );
        assert_eq!(
            names("mcw-system/mcw-egress"),
            [("both".into(), 2), ("any".into(), 0)]
        );
        assert!(names("mcw-system/other").is_empty());
        let unbound =
            json!({"metadata": {"namespace": "shop"}, "spec": {"http": [{"name": "any"}]}});
        assert_eq!(routes_for(&unbound, MESH).len(), 1);
        assert!(routes_for(&unbound, "mcw-system/mcw-egress").is_empty());
    }

    #[test]
    fn a_route_retries_unless_its_attempts_are_zero() {
        assert!(retries(&json!({})));
        assert!(retries(&json!({"retries": {"attempts": 2}})));
        assert!(!retries(&json!({"retries": {"attempts": 0}})));
        assert!(!retries(&json!({"retries": {"perTryTimeout": "1s"}})));
    }
}
