//! Pass 2: the clusterset topology. Exactly one ClusterSet, unique valid cluster names,
//! reachable gateway addresses, and cluster directories that name real clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::check::documents::{Declarations, Located};
use crate::check::names::{is_address, is_dns1123_label, is_dns1123_subdomain, label_hint};
use crate::conventions::{FABRIC_DIRECTORY, GATEWAY_NAME, RESERVED_NAMESPACE};
use crate::diagnostic::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::model::{Cluster, ClusterSet, Exposure, McsVersion, Sdwan, Tracing};
use crate::source::{Place, Sources};

/// The validated topology and what later passes need to look clusters up.
pub struct Topology {
    pub clusterset: ClusterSet,
    pub by_name: BTreeMap<String, usize>,
    /// The ClusterSet's `defaultWANPolicy`, with its document.
    pub default_policy: Option<Located<String>>,
    /// The ClusterSet's document.
    pub doc: usize,
}

pub fn check(
    sources: &Sources,
    declarations: &Declarations,
    diagnostics: &mut Diagnostics,
) -> Option<Topology> {
    let Some(first) = declarations.clustersets.first() else {
        if declarations.any_broken("ClusterSet") {
            return None;
        }
        diagnostics.push(
            Diagnostic::error(Code::ClustersetMissing, None, "no ClusterSet found")
                .hint("declare the topology as `kind: ClusterSet` in `clusterset.yaml` at the top of the repository"),
        );
        return None;
    };
    for extra in &declarations.clustersets[1..] {
        diagnostics.push(
            Diagnostic::error(
                Code::ClustersetDuplicate,
                Some(sources.at(extra.doc, "/kind")),
                "a second ClusterSet",
            )
            .also(Some(sources.at(first.doc, "/kind")), "the first ClusterSet")
            .hint("a declarations repository describes exactly one clusterset"),
        );
    }
    let doc = first.doc;
    let spec = &first.value.spec;
    let at = |pointer: &str| Some(sources.at(doc, pointer));

    let name = &first.value.metadata.name;
    if !is_dns1123_subdomain(name) {
        diagnostics.push(
            Diagnostic::error(Code::InvalidName, at("/metadata/name"), format!("ClusterSet name `{name}` is not a DNS-1123 name"))
                .hint("the name labels the fabric's classification and policy; use lowercase letters, digits, `-` and `.`"),
        );
    }
    let domain = spec
        .domain
        .clone()
        .unwrap_or_else(|| "clusterset.local".to_string());
    if !is_dns1123_subdomain(&domain) {
        diagnostics.push(Diagnostic::error(
            Code::InvalidName,
            at("/spec/domain"),
            format!("domain `{domain}` is not a DNS name"),
        ));
    }
    let gateway_class_name = spec
        .gateway_class_name
        .clone()
        .unwrap_or_else(|| "istio".to_string());
    let generated = format!("{GATEWAY_NAME}-{gateway_class_name}");
    if !is_dns1123_label(&generated) {
        diagnostics.push(
            Diagnostic::error(
                Code::NameTooLong,
                at("/spec/gatewayClassName"),
                format!("Istio would name the ingress deployment `{generated}`, which is not a valid DNS-1123 label"),
            )
            .hint(label_hint(&generated)),
        );
    }
    let mcs_version = match spec.mcs_api_version.as_deref() {
        Some("multicluster.x-k8s.io/v1beta1") => McsVersion::V1Beta1,
        _ => McsVersion::V1Alpha1,
    };

    let mut clusters = Vec::new();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw) in spec.clusters.iter().enumerate() {
        let base = format!("/spec/clusters/{i}");
        if !is_dns1123_label(&raw.name) {
            diagnostics.push(
                Diagnostic::error(
                    Code::InvalidName,
                    at(&format!("{base}/name")),
                    format!("cluster name `{}` is not a DNS-1123 label", raw.name),
                )
                .hint(label_hint(&raw.name)),
            );
        } else if raw.name == FABRIC_DIRECTORY {
            diagnostics.push(
                Diagnostic::error(
                    Code::InvalidName,
                    at(&format!("{base}/name")),
                    format!("cluster name `{FABRIC_DIRECTORY}` is taken: the output's `{FABRIC_DIRECTORY}/` holds the SD-WAN fabric's files"),
                )
                .hint("rename the cluster"),
            );
        }
        if let Some(&earlier) = by_name.get(&raw.name) {
            diagnostics.push(
                Diagnostic::error(
                    Code::ClusterDuplicate,
                    at(&format!("{base}/name")),
                    format!("cluster `{}` is declared twice", raw.name),
                )
                .also(
                    at(&format!("/spec/clusters/{earlier}/name")),
                    "first declared here",
                ),
            );
            continue;
        }
        let exposure = match raw.gateway.exposure.as_deref() {
            Some("NodePort") => Exposure::NodePort,
            Some("ClusterIP") => Exposure::ClusterIP,
            _ => Exposure::LoadBalancer,
        };
        let mut addresses = vec![raw.gateway.address.clone()];
        let pointers = std::iter::once(format!("{base}/gateway/address")).chain(
            (0..raw.gateway.node_addresses.len())
                .map(|j| format!("{base}/gateway/nodeAddresses/{j}")),
        );
        addresses.extend(raw.gateway.node_addresses.iter().cloned());
        for (address, pointer) in addresses.iter().zip(pointers) {
            if !is_address(address) {
                diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidAddress,
                        at(&pointer),
                        format!("gateway address `{address}` of cluster `{}` is neither an IP address nor a DNS name", raw.name),
                    )
                    .hint("give the address other clusters reach this cluster's east-west ingress at, across the SD-WAN"),
                );
            }
        }
        if !raw.gateway.node_addresses.is_empty() && exposure != Exposure::NodePort {
            diagnostics.push(
                Diagnostic::error(
                    Code::GatewayAddresses,
                    at(&format!("{base}/gateway/nodeAddresses")),
                    format!("cluster `{}` lists node addresses for a {} gateway", raw.name, exposure.as_str()),
                )
                .hint("only a NodePort gateway is reached at several node addresses; a LoadBalancer or ClusterIP gateway has one address"),
            );
        }
        if exposure == Exposure::LoadBalancer && raw.gateway.address.parse::<IpAddr>().is_err() {
            diagnostics.push(
                Diagnostic::warning(
                    Code::GatewayAddressUnpinned,
                    at(&format!("{base}/gateway/address")),
                    format!("the LoadBalancer gateway of cluster `{}` cannot be pinned to the DNS name `{}`", raw.name, raw.gateway.address),
                )
                .hint("Istio pins a LoadBalancer to an IP address only (Gateway `spec.addresses`); give the IP address the load balancer must have, or make sure the name resolves to whatever the cloud assigns"),
            );
        }
        let mut namespaces = BTreeSet::new();
        for (j, namespace) in raw.namespaces.iter().enumerate() {
            let pointer = format!("{base}/namespaces/{j}");
            if check_namespace(namespace, Some(sources.at(doc, &pointer)), diagnostics) {
                namespaces.insert(namespace.clone());
            }
        }
        by_name.insert(raw.name.clone(), clusters.len());
        clusters.push(Cluster {
            name: raw.name.clone(),
            region: raw.region.clone(),
            zone: raw.zone.clone(),
            sdwan_site: raw.sdwan_site,
            address: raw.gateway.address.clone(),
            addresses,
            exposure,
            namespaces,
            skip_imports: raw.skip_imports.iter().cloned().collect(),
        });
    }

    let mut reported = BTreeSet::new();
    for (d, document) in sources.documents.iter().enumerate() {
        if let Place::Cluster(dir) = &document.place {
            if !by_name.contains_key(dir) && reported.insert(dir.clone()) {
                let mut diagnostic = Diagnostic::error(
                    Code::ClusterUnknownDirectory,
                    Some(sources.file_start(document.file)),
                    format!("directory `clusters/{dir}` names no cluster of the ClusterSet"),
                );
                if let Some(s) = did_you_mean(dir, by_name.keys().map(String::as_str)) {
                    diagnostic = diagnostic.hint(format!("did you mean `clusters/{s}`?"));
                } else {
                    diagnostic = diagnostic
                        .hint("add the cluster to `clusterset.yaml`, or rename the directory");
                }
                diagnostics
                    .push(diagnostic.also(Some(sources.at(d, "")), "declared in this directory"));
            }
        }
    }

    let default_policy = spec
        .default_wan_policy
        .clone()
        .map(|value| Located { value, doc });
    let sdwan = Sdwan {
        vpns: spec.sdwan.vpns.clone().unwrap_or_else(|| vec![1]),
        colors: spec.sdwan.colors.clone(),
    };
    let clusterset = ClusterSet {
        name: first.value.metadata.name.clone(),
        domain,
        gateway_class_name,
        mcs_version,
        sdwan,
        tracing: Tracing {
            sampling_percent: spec
                .tracing
                .sampling_percent
                .clone()
                .unwrap_or_else(|| 1.into()),
            provider: spec.tracing.provider.clone(),
        },
        clusters,
    };
    Some(Topology {
        clusterset,
        by_name,
        default_policy,
        doc,
    })
}

/// Checks a namespace name; returns whether it may be used.
pub fn check_namespace(
    namespace: &str,
    location: Option<crate::diagnostic::Location>,
    diagnostics: &mut Diagnostics,
) -> bool {
    if namespace == RESERVED_NAMESPACE {
        diagnostics.push(
            Diagnostic::error(
                Code::ReservedNamespace,
                location,
                format!("namespace `{RESERVED_NAMESPACE}` is reserved for mcwan's own objects"),
            )
            .hint("declare services in another namespace"),
        );
        return false;
    }
    if !is_dns1123_label(namespace) {
        diagnostics.push(
            Diagnostic::error(
                Code::InvalidName,
                location,
                format!("namespace `{namespace}` is not a DNS-1123 label"),
            )
            .hint(label_hint(namespace)),
        );
        return false;
    }
    true
}
