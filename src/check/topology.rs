//! Pass 2: the clusterset topology. Exactly one ClusterSet, unique valid cluster names,
//! reachable gateway addresses, and cluster directories that name real clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::check::documents::{Declarations, Located};
use crate::check::names::{is_address, is_dns1123_label, is_dns1123_subdomain};
use crate::check::pointer::{fields, Input, Pointer};
use crate::conventions::{FABRIC_DIRECTORY, GATEWAY_NAME, RESERVED_NAMESPACE};
use crate::diagnostic::{Diagnostics, Location};
use crate::diags::{self, Name, TooLong};
use crate::kind::Kind;
use crate::model::{
    Cluster, ClusterSet, Exposure, McsVersion, Sdwan, SecurityMode, ServiceKey, Tracing, Vendor,
};
use crate::source::Place;
use crate::spec;

/// Istio's default trust domain, the same in every cluster that keeps it.
const ISTIO_DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The validated topology and what later passes need to look clusters up.
pub struct Topology {
    pub clusterset: ClusterSet,
    pub by_name: BTreeMap<String, usize>,
    /// The ClusterSet's `defaultWANPolicy`, with its document.
    pub default_policy: Option<Located<String>>,
    /// The ClusterSet's document.
    pub doc: usize,
    /// Where each cluster of `clusterset.clusters` is declared: its index in `spec.clusters`.
    pub declared_at: Vec<usize>,
}

impl Topology {
    /// The pointer of cluster `cluster` (an index into `clusterset.clusters`).
    #[must_use]
    pub fn cluster_pointer(&self, cluster: usize) -> Pointer {
        fields("spec.clusters").index(self.declared_at[cluster])
    }
}

/// The topology pass's inputs and its sink.
pub struct Pass<'a> {
    pub input: Input<'a>,
    pub declarations: &'a Declarations,
    pub diagnostics: &'a mut Diagnostics,
}

impl Pass<'_> {
    /// The topology, or `None` without a ClusterSet.
    #[must_use]
    pub fn check(mut self) -> Option<Topology> {
        let declarations = self.declarations;
        let Some(first) = declarations.clustersets.first() else {
            if !declarations.any_broken(Kind::ClusterSet) {
                self.diagnostics.push(diags::clusterset_missing());
            }
            return None;
        };
        let name_pointer = fields("kind");
        for extra in &declarations.clustersets[1..] {
            self.diagnostics.push(diags::clusterset_duplicate(
                self.input.at(extra.doc, &name_pointer),
                self.input.at(first.doc, &name_pointer),
            ));
        }
        let doc = first.doc;
        let spec = &first.value.spec;
        let (domain, gateway_class_name) = self.names(first);
        let mut clusters = Vec::new();
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        let mut declared_at = Vec::new();
        let input = self.input;
        let name_at = |i: usize| input.at(doc, &fields("spec.clusters").index(i).key("name"));
        for (i, raw) in spec.clusters.iter().enumerate() {
            self.cluster_name(&raw.name, &name_at(i));
            if let Some(&earlier) = by_name.get(&raw.name) {
                let first = name_at(declared_at[earlier]);
                self.diagnostics
                    .push(diags::cluster_duplicate(name_at(i), &raw.name, first));
                continue;
            }
            by_name.insert(raw.name.clone(), clusters.len());
            declared_at.push(i);
            let egress = self.egress(doc, i, raw, spec.egress.mode.as_deref());
            clusters.push(Cluster {
                egress,
                ..self.cluster(doc, i, raw)
            });
        }
        self.directories(&by_name);
        let security = match spec.security.mode.as_deref() {
            Some("plaintext") => SecurityMode::Plaintext,
            _ => SecurityMode::Mutual,
        };
        if security == SecurityMode::Mutual {
            self.trust_domains(doc, &clusters, &declared_at);
        }
        if spec.egress.lockdown {
            self.lockdown(doc, &clusters, &declared_at);
        }
        Some(Topology {
            clusterset: clusterset(&first.value, domain, gateway_class_name, security, clusters),
            by_name,
            default_policy: spec
                .default_wan_policy
                .clone()
                .map(|value| Located { value, doc }),
            doc,
            declared_at,
        })
    }

    /// Checks the ClusterSet's name, domain and gateway class; returns the domain and the
    /// gateway class, defaults applied.
    fn names(&mut self, clusterset: &Located<spec::ClusterSet>) -> (String, String) {
        let input = self.input;
        let at = |p: &str| input.at(clusterset.doc, &fields(p));
        let spec = &clusterset.value.spec;
        let name = &clusterset.value.metadata.name;
        if !is_dns1123_subdomain(name) {
            let diagnostic = diags::invalid_name(Some(at("metadata.name")), Name::ClusterSet(name));
            self.diagnostics.push(diagnostic);
        }
        let domain = spec
            .domain
            .clone()
            .unwrap_or_else(|| "clusterset.local".to_string());
        if !is_dns1123_subdomain(&domain) {
            let diagnostic = diags::invalid_name(Some(at("spec.domain")), Name::Domain(&domain));
            self.diagnostics.push(diagnostic);
        }
        let gateway_class_name = spec
            .gateway_class_name
            .clone()
            .unwrap_or_else(|| "istio".to_string());
        let generated = format!("{GATEWAY_NAME}-{gateway_class_name}");
        if !is_dns1123_label(&generated) {
            self.diagnostics.push(diags::name_too_long(
                at("spec.gatewayClassName"),
                TooLong::IngressDeployment(&generated),
            ));
        }
        (domain, gateway_class_name)
    }

    /// In mutual mode, every cluster has a trust domain of its own, and not Istio's default:
    /// authorization reads `cluster.local` in a principal as the local trust domain
    /// (docs/security.md).
    fn trust_domains(&mut self, doc: usize, clusters: &[Cluster], declared_at: &[usize]) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (c, cluster) in clusters.iter().enumerate() {
            let base = fields("spec.clusters").index(declared_at[c]);
            let at = |key: &str| self.input.at(doc, &base.clone().key(key));
            let Some(trust_domain) = &cluster.trust_domain else {
                let diagnostic = diags::trust_domain_missing(at("name"), &cluster.name);
                self.diagnostics.push(diagnostic);
                continue;
            };
            if trust_domain == ISTIO_DEFAULT_TRUST_DOMAIN {
                let diagnostic = diags::trust_domain_default(at("trustDomain"), &cluster.name);
                self.diagnostics.push(diagnostic);
            } else if let Some(&first) = seen.get(trust_domain.as_str()) {
                let first_at = self.input.at(
                    doc,
                    &fields("spec.clusters")
                        .index(declared_at[first])
                        .key("trustDomain"),
                );
                self.diagnostics.push(diags::trust_domain_duplicate(
                    at("trustDomain"),
                    &cluster.name,
                    trust_domain,
                    &clusters[first].name,
                    first_at,
                ));
            } else {
                seen.insert(trust_domain, c);
            }
        }
    }

    /// A lockdown denies pods the gateways' addresses by IP: a gateway known by a DNS name
    /// stays reachable past the egress gateway.
    fn lockdown(&mut self, doc: usize, clusters: &[Cluster], declared_at: &[usize]) {
        if clusters.iter().all(|c| c.egress.is_none()) {
            return;
        }
        for (c, cluster) in clusters.iter().enumerate() {
            let gateway = fields("spec.clusters").index(declared_at[c]).key("gateway");
            let pointers = std::iter::once(gateway.clone().key("address")).chain(
                (1..cluster.addresses.len())
                    .map(|j| gateway.clone().key("nodeAddresses").index(j - 1)),
            );
            for (address, pointer) in cluster.addresses.iter().zip(pointers) {
                if address.parse::<IpAddr>().is_err() {
                    let at = self.input.at(doc, &pointer);
                    self.diagnostics
                        .push(diags::lockdown_dns_gateway(at, &cluster.name, address));
                }
            }
        }
    }

    /// A cluster name is a DNS-1123 label, and not the output's fabric directory.
    fn cluster_name(&mut self, name: &str, at: &Location) {
        let problem = if !is_dns1123_label(name) {
            Name::Cluster(name)
        } else if name == FABRIC_DIRECTORY {
            Name::TakenCluster(name)
        } else {
            return;
        };
        self.diagnostics
            .push(diags::invalid_name(Some(at.clone()), problem));
    }

    /// Checks one cluster's gateway and namespaces, `spec.clusters[i]` of document `doc`.
    fn cluster(&mut self, doc: usize, i: usize, raw: &spec::Cluster) -> Cluster {
        let base = fields("spec.clusters").index(i);
        let exposure = match raw.gateway.exposure.as_deref() {
            Some("NodePort") => Exposure::NodePort,
            Some("ClusterIP") => Exposure::ClusterIP,
            _ => Exposure::LoadBalancer,
        };
        let addresses = self.addresses(doc, &base, raw, exposure);
        let mut namespaces = BTreeSet::new();
        for (j, namespace) in raw.namespaces.iter().enumerate() {
            let at = self.input.at(doc, &base.clone().key("namespaces").index(j));
            if check_namespace(namespace, Some(at), self.diagnostics) {
                namespaces.insert(namespace.clone());
            }
        }
        Cluster {
            name: raw.name.clone(),
            region: raw.region.clone(),
            zone: raw.zone.clone(),
            sdwan_site: raw.sdwan_site,
            trust_domain: raw.trust_domain.clone(),
            address: raw.gateway.address.clone(),
            addresses,
            exposure,
            namespaces,
            // The schema's pattern makes every item `namespace/name`.
            skip_imports: raw
                .skip_imports
                .iter()
                .filter_map(|s| ServiceKey::parse(s))
                .collect(),
            egress: None,
        }
    }

    /// In egress gateway mode (the cluster's, else the ClusterSet's), the egress gateway's
    /// SD-WAN addresses: at least one, each an IP address, which the fabric matches on.
    fn egress(
        &mut self,
        doc: usize,
        i: usize,
        raw: &spec::Cluster,
        default: Option<&str>,
    ) -> Option<Vec<String>> {
        if raw.egress.mode.as_deref().or(default) != Some("gateway") {
            return None;
        }
        let base = fields("spec.clusters").index(i);
        let addresses = &raw.egress.addresses;
        if addresses.is_empty() {
            let at = self.input.at(doc, &base.key("name"));
            self.diagnostics
                .push(diags::egress_addresses_missing(at, &raw.name));
            return None;
        }
        for (j, address) in addresses.iter().enumerate() {
            if address.parse::<IpAddr>().is_err() {
                let pointer = base.clone().key("egress").key("addresses").index(j);
                let at = self.input.at(doc, &pointer);
                self.diagnostics
                    .push(diags::egress_address_invalid(at, &raw.name, address));
            }
        }
        Some(addresses.clone())
    }

    /// The gateway's addresses, each an IP address or a DNS name, several only for a
    /// NodePort gateway; a LoadBalancer is pinned to an IP address only.
    fn addresses(
        &mut self,
        doc: usize,
        base: &Pointer,
        raw: &spec::Cluster,
        exposure: Exposure,
    ) -> Vec<String> {
        let gateway = base.clone().key("gateway");
        let input = self.input;
        let at = |p: &Pointer| input.at(doc, p);
        let mut addresses = vec![raw.gateway.address.clone()];
        let pointers = std::iter::once(gateway.clone().key("address")).chain(
            (0..raw.gateway.node_addresses.len())
                .map(|j| gateway.clone().key("nodeAddresses").index(j)),
        );
        addresses.extend(raw.gateway.node_addresses.iter().cloned());
        for (address, pointer) in addresses.iter().zip(pointers) {
            if !is_address(address) {
                self.diagnostics
                    .push(diags::invalid_address(at(&pointer), &raw.name, address));
            }
        }
        if !raw.gateway.node_addresses.is_empty() && exposure != Exposure::NodePort {
            self.diagnostics.push(diags::gateway_addresses(
                at(&gateway.clone().key("nodeAddresses")),
                &raw.name,
                exposure.as_str(),
            ));
        }
        if exposure == Exposure::LoadBalancer && raw.gateway.address.parse::<IpAddr>().is_err() {
            self.diagnostics.push(diags::gateway_address_unpinned(
                at(&gateway.key("address")),
                &raw.name,
                &raw.gateway.address,
            ));
        }
        addresses
    }

    /// Every cluster directory names a cluster of the ClusterSet.
    fn directories(&mut self, by_name: &BTreeMap<String, usize>) {
        let sources = self.input.sources;
        let mut reported = BTreeSet::new();
        for (d, document) in sources.documents.iter().enumerate() {
            if let Place::Cluster(dir) = &document.place {
                if !by_name.contains_key(dir) && reported.insert(dir.clone()) {
                    self.diagnostics.push(diags::cluster_unknown_directory(
                        sources.file_start(document.file),
                        dir,
                        by_name.keys().map(String::as_str),
                        self.input.at(d, &fields("")),
                    ));
                }
            }
        }
    }
}

fn clusterset(
    raw: &spec::ClusterSet,
    domain: String,
    gateway_class_name: String,
    security: SecurityMode,
    clusters: Vec<Cluster>,
) -> ClusterSet {
    let spec = &raw.spec;
    ClusterSet {
        name: raw.metadata.name.clone(),
        domain,
        gateway_class_name,
        mcs_version: match spec.mcs_api_version.as_deref() {
            Some("multicluster.x-k8s.io/v1beta1") => McsVersion::V1Beta1,
            _ => McsVersion::V1Alpha1,
        },
        sdwan: Sdwan {
            vpns: spec.sdwan.vpns.clone().unwrap_or_else(|| vec![1]),
            // The schema admits only the vendors `Vendor::named` knows.
            vendor: spec.sdwan.vendor.as_deref().and_then(Vendor::named),
            colors: spec.sdwan.colors.clone(),
        },
        tracing: Tracing {
            sampling_percent: spec
                .tracing
                .sampling_percent
                .clone()
                .unwrap_or_else(|| 1.into()),
            provider: spec.tracing.provider.clone(),
        },
        security,
        lockdown: spec.egress.lockdown,
        clusters,
    }
}

/// Checks a namespace name; returns whether it may be used.
pub fn check_namespace(
    namespace: &str,
    location: Option<Location>,
    diagnostics: &mut Diagnostics,
) -> bool {
    if namespace == RESERVED_NAMESPACE {
        diagnostics.push(diags::reserved_namespace(location, namespace));
        return false;
    }
    if !is_dns1123_label(namespace) {
        diagnostics.push(diags::invalid_name(location, Name::Namespace(namespace)));
        return false;
    }
    true
}
