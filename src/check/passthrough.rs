//! Pass 8: Istio VirtualServices and DestinationRules written in a cluster directory. They
//! are copied to the cluster's output unchanged, so check here what Istio would not: every
//! clusterset host they send to is imported into that cluster, every subset they name
//! exists, and none claims a host mcwan generates objects for in the same namespace.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::check::documents::{Declarations, Located};
use crate::check::names::{is_dns1123_label, is_dns1123_subdomain};
use crate::check::pointer::{fields, Input, Pointer};
use crate::check::topology::{check_namespace, Topology};
use crate::check::{policy_names, Policies};
use crate::conventions::GENERATED_PREFIX;
use crate::diagnostic::{did_you_mean, Diagnostics, Location};
use crate::diags::{self, Name, NotImported};
use crate::kind::Kind;
use crate::model::{ClusterId, ClusterSet, Export, PassThrough, SecurityMode};

/// The pass-through pass's inputs and its sink.
pub struct Pass<'a> {
    pub input: Input<'a>,
    pub declarations: &'a Declarations,
    pub topology: &'a Topology,
    pub policies: &'a Policies,
    pub exports: &'a [(Export, usize)],
    pub diagnostics: &'a mut Diagnostics,
}

/// Every exported clusterset host, and the subsets that user DestinationRules define.
struct Hosts<'a> {
    clusterset: &'a ClusterSet,
    /// `.svc.<domain>`.
    suffix: String,
    /// Each exported host's namespace, name, and the subsets mcwan generates for it.
    exported: BTreeMap<String, (&'a str, &'a str, BTreeSet<String>)>,
    user_subsets: BTreeMap<(usize, String), BTreeSet<String>>,
}

impl<'a> Hosts<'a> {
    fn new(
        topology: &'a Topology,
        policies: &Policies,
        exports: &'a [(Export, usize)],
        declarations: &Declarations,
    ) -> Self {
        let clusterset = &topology.clusterset;
        let suffix = format!(".svc.{}", clusterset.domain);
        let mut exported: BTreeMap<String, (&str, &str, BTreeSet<String>)> = BTreeMap::new();
        for (export, _) in exports {
            let host = format!("{}.{}{suffix}", export.name, export.namespace);
            exported
                .entry(host)
                .or_insert_with(|| (&export.namespace, &export.name, BTreeSet::new()))
                .2
                .extend(policy_names(policies, &export.policies));
        }
        let mut user_subsets: BTreeMap<(usize, String), BTreeSet<String>> = BTreeMap::new();
        for (cluster, object) in &declarations.passthrough {
            if object.value["kind"] != "DestinationRule" {
                continue;
            }
            if let (Some(&c), Some(host)) = (
                topology.by_name.get(cluster),
                object.value["spec"]["host"].as_str(),
            ) {
                let names = object.value["spec"]["subsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["name"].as_str());
                user_subsets
                    .entry((c, host.to_string()))
                    .or_default()
                    .extend(names.map(str::to_owned));
            }
        }
        Hosts {
            clusterset,
            suffix,
            exported,
            user_subsets,
        }
    }

    /// A host cluster `c` imports: its namespace and generated subsets.
    fn imported(&self, c: usize, host: &str) -> Option<(&str, &BTreeSet<String>)> {
        self.exported
            .get(host)
            .filter(|(namespace, name, _)| self.clusterset.clusters[c].imports(namespace, name))
            .map(|(namespace, _, subsets)| (*namespace, subsets))
    }
}

/// One pass-through object being checked.
struct Object<'o> {
    located: &'o Located<Value>,
    cluster: usize,
    cluster_name: &'o str,
    kind: String,
    namespace: String,
    name: String,
}

impl Object<'_> {
    fn value(&self) -> &Value {
        &self.located.value
    }

    /// `namespace/name`.
    fn shown(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl Pass<'_> {
    #[must_use]
    pub fn check(mut self) -> Vec<PassThrough> {
        let hosts = Hosts::new(
            self.topology,
            self.policies,
            self.exports,
            self.declarations,
        );
        let mut seen: BTreeMap<(usize, String, String, String), usize> = BTreeMap::new();
        let mut out = Vec::new();
        for (cluster_name, located) in &self.declarations.passthrough {
            let Some(&cluster) = self.topology.by_name.get(cluster_name) else {
                continue;
            };
            let Some(object) = self.object(located, cluster, cluster_name) else {
                continue;
            };
            let key = (
                cluster,
                object.kind.clone(),
                object.namespace.clone(),
                object.name.clone(),
            );
            if let Some(first) = seen.insert(key, located.doc) {
                let name_at = |doc: usize| self.input.at(doc, &fields("metadata.name"));
                self.diagnostics.push(diags::object_duplicate(
                    name_at(located.doc),
                    &object.kind,
                    &object.shown(),
                    Some(cluster_name),
                    name_at(first),
                ));
                continue;
            }
            let errors_before = self.diagnostics.errors();
            let destinations = self.destinations(&hosts, &object);
            if object.kind == "VirtualService" {
                let imported_host = |host: &str| hosts.imported(cluster, host).is_some();
                let input = self.input;
                let at = |pointer: &Pointer| input.at(located.doc, pointer);
                routes_to_clusterset(located, &imported_host, &at, self.diagnostics);
                if hosts.clusterset.clusters[cluster].egress.is_some() && !destinations.is_empty() {
                    let at = self.at(&object, &fields("spec.hosts"));
                    let diagnostic =
                        diags::virtualservice_bypasses_egress(at, &object.shown(), cluster_name);
                    self.diagnostics.push(diagnostic);
                }
            } else if hosts.clusterset.security == SecurityMode::Mutual && !destinations.is_empty()
            {
                self.mutual_tls(&object);
            }
            let virtual_hosts = self.claims(&hosts, &object, destinations.is_empty());
            if self.diagnostics.errors() > errors_before {
                continue;
            }
            out.push(PassThrough {
                cluster: ClusterId(cluster),
                object: located.value.clone(),
                virtual_hosts,
                destinations: destinations.into_iter().collect(),
            });
        }
        out
    }

    /// In mutual mode, a DestinationRule of an imported host (which takes the place of
    /// mcwan's for its namespace's clients) keeps Istio mutual TLS, at the top and in every
    /// subset: without it, its requests cross the WAN in plaintext to a gateway that only
    /// takes mutual TLS.
    fn mutual_tls(&mut self, object: &Object) {
        let spec = &object.value()["spec"];
        let mut policies = vec![(fields("spec.trafficPolicy"), &spec["trafficPolicy"], true)];
        for (i, subset) in spec["subsets"].as_array().into_iter().flatten().enumerate() {
            let pointer = fields("spec.subsets").index(i).key("trafficPolicy");
            policies.push((pointer, &subset["trafficPolicy"], false));
        }
        for (pointer, policy, top) in policies {
            let mode = policy["tls"]["mode"].as_str();
            // A subset without tls inherits the top-level one.
            if mode == Some("ISTIO_MUTUAL") || (mode.is_none() && !top) {
                continue;
            }
            let (pointer, mode) = match mode {
                Some(mode) => (pointer.key("tls").key("mode"), mode),
                None => (fields("spec.host"), "none"),
            };
            let at = self.at(object, &pointer);
            let diagnostic = diags::destinationrule_tls_not_mutual(at, &object.shown(), mode);
            self.diagnostics.push(diagnostic);
        }
    }

    fn at(&self, object: &Object, pointer: &Pointer) -> Location {
        self.input.at(object.located.doc, pointer)
    }

    /// The object, if its namespace and name are valid.
    fn object<'o>(
        &mut self,
        located: &'o Located<Value>,
        cluster: usize,
        cluster_name: &'o str,
    ) -> Option<Object<'o>> {
        let value = &located.value;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let object = Object {
            located,
            cluster,
            cluster_name,
            kind: text(&value["kind"]),
            namespace: text(&value["metadata"]["namespace"]),
            name: text(&value["metadata"]["name"]),
        };
        let at = self.at(&object, &fields("metadata.namespace"));
        if !check_namespace(&object.namespace, Some(at), self.diagnostics) {
            return None;
        }
        if object.name.starts_with(GENERATED_PREFIX) || !is_dns1123_subdomain(&object.name) {
            let name = Name::PassThrough {
                kind: &object.kind,
                name: &object.name,
                prefix: GENERATED_PREFIX,
            };
            let at = self.at(&object, &fields("metadata.name"));
            self.diagnostics.push(diags::invalid_name(Some(at), name));
            return None;
        }
        Some(object)
    }

    /// The imported clusterset hosts the object sends to; each clusterset host it sends to
    /// must be imported, and each subset it names must be defined.
    fn destinations(&mut self, hosts: &Hosts, object: &Object) -> BTreeSet<String> {
        let mut destinations = BTreeSet::new();
        for destination in destinations_of(object.value()) {
            let host = &destination.host;
            if !host.ends_with(&hosts.suffix) {
                continue;
            }
            let Some((_, generated)) = hosts.imported(object.cluster, host) else {
                self.not_imported(hosts, object, &destination);
                continue;
            };
            destinations.insert(host.clone());
            let (Some(subset), Some(subset_at)) = (&destination.subset, &destination.subset_at)
            else {
                continue;
            };
            let user = hosts.user_subsets.get(&(object.cluster, host.clone()));
            if !generated.contains(subset) && !user.is_some_and(|u| u.contains(subset)) {
                let mut known: Vec<&str> = generated.iter().map(String::as_str).collect();
                known.extend(user.into_iter().flatten().map(String::as_str));
                self.diagnostics.push(diags::virtualservice_unknown_subset(
                    self.at(object, subset_at),
                    &object.kind,
                    &object.shown(),
                    subset,
                    host,
                    &known,
                ));
            }
        }
        destinations
    }

    /// A clusterset host the object sends to that its cluster does not import, unless the
    /// Service or export of that name is declared broken.
    fn not_imported(&mut self, hosts: &Hosts, object: &Object, destination: &Destination) {
        let host = &destination.host;
        let mut labels = host.split('.');
        let (service, namespace) = (
            labels.next().unwrap_or_default(),
            labels.next().unwrap_or_default(),
        );
        if self
            .declarations
            .is_broken(Kind::Service, None, namespace, service)
            || self
                .declarations
                .is_broken(Kind::ServiceExport, None, namespace, service)
        {
            // The export's own diagnostics explain why it is missing.
            return;
        }
        let known = hosts
            .exported
            .keys()
            .filter(|h| hosts.imported(object.cluster, h).is_some());
        let why = NotImported::SendsTo {
            cluster: object.cluster_name,
            suggestion: did_you_mean(host, known.map(String::as_str)),
        };
        // Named with the host's namespace, as it always was.
        let shown = format!("{namespace}/{}", object.name);
        self.diagnostics.push(diags::virtualservice_unknown_import(
            self.at(object, &destination.host_at),
            &object.kind,
            &shown,
            host,
            why,
        ));
    }

    /// The hosts the object claims: none may be one mcwan generates objects for in the same
    /// namespace; a VirtualService's clusterset hosts that no cluster exports are virtual
    /// hosts mcwan registers, which take their ports from the imported hosts it routes to.
    fn claims(&mut self, hosts: &Hosts, object: &Object, routes_nowhere: bool) -> Vec<String> {
        let value = object.value();
        let claimed: Vec<(Pointer, String)> = match object.kind.as_str() {
            "VirtualService" => value["spec"]["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, h)| Some((fields("spec.hosts").index(i), h.as_str()?.to_string())))
                .collect(),
            _ => value["spec"]["host"]
                .as_str()
                .map(|h| (fields("spec.host"), h.to_string()))
                .into_iter()
                .collect(),
        };
        let mut virtual_hosts = Vec::new();
        for (pointer, host) in &claimed {
            match hosts.imported(object.cluster, host) {
                Some((import_namespace, _)) if import_namespace == object.namespace => {
                    self.diagnostics.push(diags::passthrough_host_collision(
                        self.at(object, pointer),
                        &object.kind,
                        &object.shown(),
                        host,
                    ));
                }
                // A clusterset host mcwan registers must be a DNS name of `<svc>.<ns>`
                // labels: it names the ServiceEntry mcwan writes for it.
                None if object.kind == "VirtualService" && host.ends_with(&hosts.suffix) => {
                    let labels: Vec<&str> = host
                        .strip_suffix(&hosts.suffix)
                        .unwrap_or_default()
                        .split('.')
                        .collect();
                    if labels.len() == 2 && labels.iter().all(|l| is_dns1123_label(l)) {
                        virtual_hosts.push(host.clone());
                    } else {
                        let name = Name::ClaimedHost {
                            kind: &object.kind,
                            object: &object.shown(),
                            host,
                            suffix: &hosts.suffix,
                        };
                        let at = self.at(object, pointer);
                        self.diagnostics.push(diags::invalid_name(Some(at), name));
                    }
                }
                _ => {}
            }
        }
        if let (Some(host), true) = (virtual_hosts.first(), routes_nowhere) {
            let index = claimed
                .iter()
                .position(|(_, h)| h == host)
                .unwrap_or_default();
            self.diagnostics.push(diags::virtualservice_unknown_import(
                self.at(object, &fields("spec.hosts").index(index)),
                &object.kind,
                &object.shown(),
                host,
                NotImported::Claims,
            ));
        }
        virtual_hosts
    }
}

/// A sidecar applies one VirtualService per host and does not chain them, so a user route to
/// a clusterset host skips the generated one: it must itself pick one WAN policy (a subset;
/// without one, requests balance over the endpoints of every policy, so every tunnel), and
/// send the Host that the exporter's HTTPRoutes accept: the destination host, through
/// `rewrite.authority` or the destination's `headers.request.set.host`, which Istio turns
/// into the upstream Host (pilot/pkg/networking/core/route/route.go). The policy's timeout
/// and retries do not apply either: a warning says so.
fn routes_to_clusterset(
    located: &Located<Value>,
    imported: &dyn Fn(&str) -> bool,
    at: &dyn Fn(&Pointer) -> Location,
    diagnostics: &mut Diagnostics,
) {
    let value = &located.value;
    let spec = &value["spec"];
    let name = format!(
        "{}/{}",
        value["metadata"]["namespace"].as_str().unwrap_or_default(),
        value["metadata"]["name"].as_str().unwrap_or_default()
    );
    let own: Vec<&str> = spec["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (i, route) in spec["http"].as_array().into_iter().flatten().enumerate() {
        let mut reaches = false;
        for (j, target) in route["route"].as_array().into_iter().flatten().enumerate() {
            let destination = &target["destination"];
            let Some(host) = destination["host"].as_str().filter(|h| imported(h)) else {
                continue;
            };
            reaches = true;
            let pointer = fields("spec.http")
                .index(i)
                .key("route")
                .index(j)
                .fields("destination.host");
            if destination["subset"].is_null() {
                diagnostics.push(diags::virtualservice_no_subset(at(&pointer), &name, host));
            }
            // Istio's precedence: the route's `rewrite.authority`, then a Host the route's
            // headers set, then one the destination's headers set.
            let authority = route["rewrite"]["authority"]
                .as_str()
                .or_else(|| set_host(&route["headers"]))
                .or_else(|| set_host(&target["headers"]));
            let arrives_as_host = own.iter().all(|h| *h == host);
            if authority.map_or(!arrives_as_host, |a| a != host) {
                let sent = authority.unwrap_or(own.first().copied().unwrap_or_default());
                diagnostics.push(diags::virtualservice_host_not_rewritten(
                    at(&pointer),
                    &name,
                    host,
                    sent,
                ));
            }
        }
        if reaches && (route["timeout"].is_null() || route["retries"].is_null()) {
            let at = at(&fields("spec.http").index(i));
            diagnostics.push(diags::virtualservice_no_resilience(at, &name));
        }
    }
}

/// The Host a VirtualService `headers` block sets, if any.
fn set_host(headers: &Value) -> Option<&str> {
    headers["request"]["set"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host") || *k == ":authority")?
        .1
        .as_str()
}

/// A host a VirtualService routes or mirrors to, or the host of a DestinationRule.
struct Destination {
    host: String,
    host_at: Pointer,
    subset: Option<String>,
    /// Where a subset is named; a DestinationRule's host has none.
    subset_at: Option<Pointer>,
}

/// Every host a VirtualService routes or mirrors to, or the host of a DestinationRule.
fn destinations_of(value: &Value) -> Vec<Destination> {
    let mut out = Vec::new();
    let spec = &value["spec"];
    if value["kind"] == "DestinationRule" {
        if let Some(host) = spec["host"].as_str() {
            out.push(Destination {
                host: host.to_string(),
                host_at: fields("spec.host"),
                subset: None,
                subset_at: None,
            });
        }
        return out;
    }
    let mut destination = |pointer: Pointer, d: &Value| {
        if let Some(host) = d["host"].as_str() {
            out.push(Destination {
                host: host.to_string(),
                host_at: pointer.clone().key("host"),
                subset: d["subset"].as_str().map(str::to_owned),
                subset_at: Some(pointer.key("subset")),
            });
        }
    };
    for protocol in ["http", "tcp", "tls"] {
        for (i, route) in spec[protocol].as_array().into_iter().flatten().enumerate() {
            let base = fields("spec").key(protocol).index(i);
            for (j, target) in route["route"].as_array().into_iter().flatten().enumerate() {
                let pointer = base.clone().key("route").index(j).key("destination");
                destination(pointer, &target["destination"]);
            }
            destination(base.clone().key("mirror"), &route["mirror"]);
            for (j, mirror) in route["mirrors"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let pointer = base.clone().key("mirrors").index(j).key("destination");
                destination(pointer, &mirror["destination"]);
            }
        }
    }
    out
}
