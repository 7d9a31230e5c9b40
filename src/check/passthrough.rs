//! Pass 8: Istio VirtualServices and DestinationRules written in a cluster directory. They
//! are copied to the cluster's output unchanged, so check here what Istio would not: every
//! clusterset host they send to is imported into that cluster, every subset they name
//! exists, and none claims a host mcwan generates objects for in the same namespace.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::check::documents::Declarations;
use crate::check::topology::{check_namespace, Topology};
use crate::conventions::GENERATED_PREFIX;
use crate::diagnostic::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::model::{Export, PassThrough};
use crate::source::Sources;

pub fn check(
    sources: &Sources,
    declarations: &Declarations,
    topology: &Topology,
    exports: &[(Export, usize)],
    diagnostics: &mut Diagnostics,
) -> Vec<PassThrough> {
    let clusterset = &topology.clusterset;
    let suffix = format!(".svc.{}", clusterset.domain);
    // Every exported host: its namespace, name, and the subsets mcwan generates for it.
    let mut exported: BTreeMap<String, (&str, &str, BTreeSet<String>)> = BTreeMap::new();
    for (export, _) in exports {
        let host = format!("{}.{}{suffix}", export.name, export.namespace);
        exported
            .entry(host)
            .or_insert_with(|| (&export.namespace, &export.name, BTreeSet::new()))
            .2
            .extend(export.policies.iter().cloned());
    }
    // A host cluster `c` imports: its namespace and generated subsets.
    let imported = |c: usize, host: &str| {
        exported
            .get(host)
            .filter(|(namespace, name, _)| clusterset.clusters[c].imports(namespace, name))
            .map(|(namespace, _, subsets)| (*namespace, subsets))
    };
    let mut user_subsets: BTreeMap<(usize, String), BTreeSet<String>> = BTreeMap::new();
    for (cluster, object) in &declarations.passthrough {
        if object.value["kind"] == "DestinationRule" {
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
    }

    let mut seen: BTreeMap<(usize, String, String, String), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (cluster_name, object) in &declarations.passthrough {
        let Some(&c) = topology.by_name.get(cluster_name) else {
            continue;
        };
        let value = &object.value;
        let at = |pointer: &str| Some(sources.at(object.doc, pointer));
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !check_namespace(&namespace, at("/metadata/namespace"), diagnostics) {
            continue;
        }
        if name.starts_with(GENERATED_PREFIX) || !crate::check::names::is_dns1123_subdomain(&name) {
            diagnostics.push(
                Diagnostic::error(Code::InvalidName, at("/metadata/name"), format!("{kind} name `{name}` is not a DNS-1123 name outside the `{GENERATED_PREFIX}` prefix"))
                    .hint(format!("names starting with `{GENERATED_PREFIX}` are mcwan's; rename the object")),
            );
            continue;
        }
        if let Some(first) = seen.insert(
            (c, kind.clone(), namespace.clone(), name.clone()),
            object.doc,
        ) {
            diagnostics.push(
                Diagnostic::error(
                    Code::ObjectDuplicate,
                    at("/metadata/name"),
                    format!(
                        "{kind} `{namespace}/{name}` is declared twice in cluster `{cluster_name}`"
                    ),
                )
                .also(
                    Some(sources.at(first, "/metadata/name")),
                    "first declared here",
                ),
            );
            continue;
        }
        let errors_before = diagnostics.errors();
        let mut destinations = BTreeSet::new();
        for (pointer, host, subset) in destinations_of(value) {
            if !host.ends_with(&suffix) {
                continue;
            }
            let Some((_, generated)) = imported(c, &host) else {
                let mut labels = host.split('.');
                let (service, namespace) = (
                    labels.next().unwrap_or_default(),
                    labels.next().unwrap_or_default(),
                );
                if declarations.is_broken("Service", None, namespace, service)
                    || declarations.is_broken("ServiceExport", None, namespace, service)
                {
                    // The export's own diagnostics explain why it is missing.
                    continue;
                }
                let mut diagnostic = Diagnostic::error(
                    Code::VirtualserviceUnknownImport,
                    at(&pointer),
                    format!("{kind} `{namespace}/{name}` sends to `{host}`, which cluster `{cluster_name}` does not import"),
                );
                let known = exported.keys().filter(|h| imported(c, h).is_some());
                diagnostic = match did_you_mean(&host, known.map(String::as_str)) {
                    Some(s) => diagnostic.hint(format!("did you mean `{s}`?")),
                    None => diagnostic.hint(
                        "export the service from some cluster, and give this cluster its namespace",
                    ),
                };
                diagnostics.push(diagnostic);
                continue;
            };
            destinations.insert(host.clone());
            if let Some(subset) = subset {
                let user = user_subsets.get(&(c, host.clone()));
                if !generated.contains(&subset) && !user.is_some_and(|u| u.contains(&subset)) {
                    let mut known: Vec<&str> = generated.iter().map(String::as_str).collect();
                    known.extend(user.into_iter().flatten().map(String::as_str));
                    diagnostics.push(
                        Diagnostic::error(
                            Code::VirtualserviceUnknownSubset,
                            at(&format!("{}/subset", pointer.trim_end_matches("/host"))),
                            format!("{kind} `{namespace}/{name}` routes to subset `{subset}` of `{host}`, which no DestinationRule defines"),
                        )
                        .hint(format!("subsets of `{host}`: {}", known.join(", "))),
                    );
                }
            }
        }
        if kind == "VirtualService" {
            let imported_host = |host: &str| imported(c, host).is_some();
            routes_to_clusterset(value, &imported_host, &|pointer| at(pointer), diagnostics);
        }
        let claimed: Vec<(String, String)> = match kind.as_str() {
            "VirtualService" => value["spec"]["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, h)| Some((format!("/spec/hosts/{i}"), h.as_str()?.to_string())))
                .collect(),
            _ => value["spec"]["host"]
                .as_str()
                .map(|h| ("/spec/host".to_string(), h.to_string()))
                .into_iter()
                .collect(),
        };
        let claimed_hosts: Vec<String> = claimed.iter().map(|(_, h)| h.clone()).collect();
        let mut virtual_hosts = Vec::new();
        for (pointer, host) in claimed {
            match imported(c, &host) {
                Some((import_namespace, _)) if import_namespace == namespace => diagnostics.push(
                    Diagnostic::error(
                        Code::PassthroughHostCollision,
                        at(&pointer),
                        format!("{kind} `{namespace}/{name}` claims `{host}`, for which mcwan generates a {kind} in the same namespace"),
                    )
                    .hint("Istio merges such objects unpredictably; route to the imported host from another host, or refine the export with a WANRoute"),
                ),
                // A clusterset host mcwan registers must be a DNS name of `<svc>.<ns>` labels:
                // it names the ServiceEntry mcwan writes for it.
                None if kind == "VirtualService" && host.ends_with(&suffix) => {
                    let labels: Vec<&str> = host.strip_suffix(&suffix).unwrap_or_default().split('.').collect();
                    if labels.len() == 2 && labels.iter().all(|l| crate::check::names::is_dns1123_label(l)) {
                        virtual_hosts.push(host);
                    } else {
                        diagnostics.push(
                            Diagnostic::error(
                                Code::InvalidName,
                                at(&pointer),
                                format!("{kind} `{namespace}/{name}` claims `{host}`, which is not `<service>.<namespace>{suffix}` with DNS-1123 labels"),
                            )
                            .hint("clusterset hosts name a service and a namespace, in lowercase letters, digits and `-`"),
                        );
                    }
                }
                _ => {}
            }
        }
        // A registered host takes its ports from the imported hosts the object routes to.
        if let (Some(host), true) = (virtual_hosts.first(), destinations.is_empty()) {
            let index = claimed_hosts
                .iter()
                .position(|h| h == host)
                .unwrap_or_default();
            diagnostics.push(
                Diagnostic::error(
                    Code::VirtualserviceUnknownImport,
                    at(&format!("/spec/hosts/{index}")),
                    format!("{kind} `{namespace}/{name}` claims `{host}`, which no cluster exports, and routes to no imported host, so mcwan cannot tell which ports to register it on"),
                )
                .hint("route it to an imported host, such as `<service>.<namespace>` of an export"),
            );
        }
        if diagnostics.errors() > errors_before {
            continue;
        }
        out.push(PassThrough {
            cluster: c,
            object: value.clone(),
            virtual_hosts,
            destinations: destinations.into_iter().collect(),
        });
    }
    out
}

/// A sidecar applies one VirtualService per host and does not chain them, so a user route to
/// a clusterset host skips the generated one: it must itself pick one WAN policy (a subset;
/// without one, requests balance over the endpoints of every policy, so every tunnel), and
/// send the Host that the exporter's HTTPRoutes accept: the destination host, through
/// `rewrite.authority` or the destination's `headers.request.set.host`, which Istio turns
/// into the upstream Host (pilot/pkg/networking/core/route/route.go). The policy's timeout
/// and retries do not apply either: a warning says so.
fn routes_to_clusterset(
    value: &Value,
    imported: &dyn Fn(&str) -> bool,
    at: &dyn Fn(&str) -> Option<crate::diagnostic::Location>,
    diagnostics: &mut Diagnostics,
) {
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
            let pointer = format!("/spec/http/{i}/route/{j}/destination/host");
            if destination["subset"].is_null() {
                diagnostics.push(
                    Diagnostic::error(
                        Code::VirtualserviceNoSubset,
                        at(&pointer),
                        format!("VirtualService `{name}` sends to `{host}` without a subset, so its requests would take the endpoints of every WAN policy, over every tunnel"),
                    )
                    .hint("name the subset of the WAN policy these requests must take (the DestinationRule `mcw-<service>` lists them)"),
                );
            }
            // Istio's precedence: the route's `rewrite.authority`, then a Host the route's
            // headers set, then one the destination's headers set.
            let authority = route["rewrite"]["authority"]
                .as_str()
                .or_else(|| set_host(&route["headers"]))
                .or_else(|| set_host(&target["headers"]));
            let arrives_as_host = own.iter().all(|h| *h == host);
            if authority.map_or(!arrives_as_host, |a| a != host) {
                diagnostics.push(
                    Diagnostic::error(
                        Code::VirtualserviceHostNotRewritten,
                        at(&pointer),
                        format!("VirtualService `{name}` sends to `{host}` with the Host `{}`, which no HTTPRoute of the exporters accepts (they answer 404)", authority.unwrap_or(own.first().copied().unwrap_or_default())),
                    )
                    .hint(format!("set the Host to the destination: `headers: {{request: {{set: {{host: {host}}}}}}}` on this destination, or `rewrite: {{authority: {host}}}` on the route when it has one destination")),
                );
            }
        }
        if reaches && (route["timeout"].is_null() || route["retries"].is_null()) {
            diagnostics.push(
                Diagnostic::warning(
                    Code::VirtualserviceNoResilience,
                    at(&format!("/spec/http/{i}")),
                    format!("VirtualService `{name}` sends to clusterset hosts without its own `timeout` and `retries`; the WAN policy's, which mcwan's generated route carries, do not apply to it"),
                )
                .hint("copy `timeout` and `retries` from the generated VirtualService `mcw-<service>` of the destination"),
            );
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

/// Every `(pointer, host, subset)` a VirtualService routes or mirrors to, or the host of a
/// DestinationRule.
fn destinations_of(value: &Value) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let spec = &value["spec"];
    if value["kind"] == "DestinationRule" {
        if let Some(host) = spec["host"].as_str() {
            out.push(("/spec/host".to_string(), host.to_string(), None));
        }
        return out;
    }
    let mut destination = |pointer: String, d: &Value| {
        if let Some(host) = d["host"].as_str() {
            out.push((
                format!("{pointer}/host"),
                host.to_string(),
                d["subset"].as_str().map(str::to_owned),
            ));
        }
    };
    for protocol in ["http", "tcp", "tls"] {
        for (i, route) in spec[protocol].as_array().into_iter().flatten().enumerate() {
            let base = format!("/spec/{protocol}/{i}");
            for (j, target) in route["route"].as_array().into_iter().flatten().enumerate() {
                destination(
                    format!("{base}/route/{j}/destination"),
                    &target["destination"],
                );
            }
            destination(format!("{base}/mirror"), &route["mirror"]);
            for (j, mirror) in route["mirrors"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                destination(
                    format!("{base}/mirrors/{j}/destination"),
                    &mirror["destination"],
                );
            }
        }
    }
    out
}
