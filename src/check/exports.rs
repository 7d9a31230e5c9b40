//! Pass 4: what clusters declare. Services, exports and namespaces are unique per cluster,
//! every export has a Service with one HTTP port, and names a WAN policy that exists.

use std::collections::BTreeMap;

use crate::check::documents::{Declarations, Located};
use crate::check::names::{is_dns1123_label, is_dns1123_subdomain};
use crate::check::pointer::{fields, Input, Pointer};
use crate::check::topology::{check_namespace, Topology};
use crate::check::{policy_id, policy_refused, Policies};
use crate::conventions::{
    ALLOWED_CLUSTERS_ANNOTATION, ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, PER_TRY_TIMEOUT_ANNOTATION,
    POLICY_ANNOTATION, PORT_ANNOTATION, RETRIES_ANNOTATION, TIMEOUT_ANNOTATION,
};
use crate::diagnostic::Diagnostics;
use crate::diags::{self, Expected, Name, NotImporter, TooLong};
use crate::kind::Kind;
use crate::model::{
    AppProtocol, Callers, ClusterId, Export, Millis, Overrides, PolicyId, SecurityMode,
    ServicePort, ServiceType,
};
use crate::spec;

const KNOWN_ANNOTATIONS: &[&str] = &[
    POLICY_ANNOTATION,
    PORT_ANNOTATION,
    TIMEOUT_ANNOTATION,
    RETRIES_ANNOTATION,
    PER_TRY_TIMEOUT_ANNOTATION,
    ALLOWED_CLUSTERS_ANNOTATION,
    ALLOWED_SERVICE_ACCOUNTS_ANNOTATION,
];

type Key = (usize, String, String);

fn annotation(key: &str) -> Pointer {
    fields("metadata.annotations").key(key)
}

fn name_pointer() -> Pointer {
    fields("metadata.name")
}

/// The exports pass's inputs and its sink.
pub struct Pass<'a> {
    pub input: Input<'a>,
    pub declarations: &'a Declarations,
    pub policies: &'a Policies,
    pub diagnostics: &'a mut Diagnostics,
}

/// One export being checked: its cluster's name and its `namespace/name`.
struct Exported<'e> {
    export: &'e Located<spec::ServiceExport>,
    cluster: &'e str,
    shown: String,
}

impl Exported<'_> {
    fn meta(&self) -> &spec::Meta {
        &self.export.value.metadata
    }
}

impl Pass<'_> {
    /// Every valid export, with the document that declared it. Adds the namespaces that
    /// clusters declare objects in to `topology`.
    #[must_use]
    pub fn check(mut self, topology: &mut Topology) -> Vec<(Export, usize)> {
        let declarations = self.declarations;
        let namespaces = self.index(topology, &declarations.namespaces, "Namespace");
        let services = self.index(topology, &declarations.services, "Service");
        let exports = self.index(topology, &declarations.exports, "ServiceExport");
        for (cluster, namespace, _) in namespaces
            .keys()
            .chain(services.keys())
            .chain(exports.keys())
        {
            topology.clusterset.clusters[*cluster]
                .namespaces
                .insert(namespace.clone());
        }
        let mut valid = Vec::new();
        for ((cluster, namespace, name), export) in &exports {
            let exported = Exported {
                export,
                cluster: &topology.clusterset.clusters[*cluster].name,
                shown: format!("{namespace}/{name}"),
            };
            self.check_annotations(&exported);
            let host = format!("{name}.{namespace}.svc.{}", topology.clusterset.domain);
            if host.len() > 253 {
                self.diagnostics.push(diags::name_too_long(
                    self.input.at(export.doc, &name_pointer()),
                    TooLong::ClustersetHost {
                        host: &host,
                        export: &exported.shown,
                    },
                ));
                continue;
            }
            let key = (*cluster, namespace.clone(), name.clone());
            let Some(service) = services.get(&key) else {
                self.no_service(&exported, &key, &services);
                continue;
            };
            let export = self.export(topology, &key, &exported, service);
            valid.extend(export.map(|export| (export, exported.export.doc)));
        }
        valid
    }

    /// The export `key`, with its policy, port and resilience overrides, each checked;
    /// `None` if one is invalid.
    fn export(
        &mut self,
        topology: &Topology,
        (cluster, namespace, name): &Key,
        exported: &Exported,
        service: &Located<spec::Service>,
    ) -> Option<Export> {
        let meta = exported.meta();
        // A WANRoute decides the policies of the export it refines; then the export needs
        // neither the annotation nor a clusterset default.
        let refined = self.declarations.routes.iter().any(|(c, r)| {
            c == exported.cluster
                && r.value.metadata.name == *name
                && r.value.metadata.namespace.as_deref().unwrap_or("default") == namespace
        });
        // Empty until the WANRoute pass fills it in, for a refined export.
        let policies = if refined && !meta.annotations.contains_key(POLICY_ANNOTATION) {
            Some(Vec::new())
        } else {
            self.export_policy(exported, topology).map(|id| vec![id])
        };
        let port = self.export_port(exported, service);
        let overrides = self.overrides(exported.export);
        let callers = self.callers(topology, exported, namespace, name);
        let (Some(policies), Some(port)) = (policies, port) else {
            return None;
        };
        let service_type = if service.value.spec.cluster_ip.as_deref() == Some("None") {
            ServiceType::Headless
        } else {
            ServiceType::ClusterSetIP
        };
        Some(Export {
            cluster: ClusterId(*cluster),
            namespace: namespace.clone(),
            name: name.clone(),
            policies,
            port,
            service_type,
            overrides,
            callers,
            route: None,
            labels: meta.labels.clone(),
            annotations: meta.annotations.clone(),
        })
    }

    /// mcwan's own annotations are ones it knows.
    fn check_annotations(&mut self, exported: &Exported) {
        for key in exported
            .meta()
            .annotations
            .keys()
            .filter(|k| k.starts_with("mcw.l7mp.io/"))
        {
            if !KNOWN_ANNOTATIONS.contains(&key.as_str()) {
                self.diagnostics.push(diags::annotation_unknown(
                    self.input.at(exported.export.doc, &annotation(key)),
                    key,
                    KNOWN_ANNOTATIONS.iter().copied(),
                ));
            }
        }
    }

    /// An export without a Service of its name, unless that Service is declared broken.
    fn no_service(
        &mut self,
        exported: &Exported,
        key: &Key,
        services: &BTreeMap<Key, &Located<spec::Service>>,
    ) {
        let (cluster, namespace, name) = key;
        if self
            .declarations
            .is_broken(Kind::Service, Some(exported.cluster), namespace, name)
        {
            return;
        }
        let nearby = services
            .keys()
            .filter(|(c, n, _)| c == cluster && n == namespace)
            .map(|(_, _, s)| s.as_str());
        self.diagnostics.push(diags::export_no_service(
            self.input.at(exported.export.doc, &name_pointer()),
            namespace,
            name,
            exported.cluster,
            nearby,
        ));
    }

    /// The per-export resilience annotations, each checked.
    fn overrides(&mut self, export: &Located<spec::ServiceExport>) -> Overrides {
        let annotations = &export.value.metadata.annotations;
        let input = self.input;
        let diagnostics = &mut *self.diagnostics;
        let mut invalid = |key: &str, value: &str, expected: Expected| {
            diagnostics.push(diags::annotation_invalid(
                input.at(export.doc, &annotation(key)),
                key,
                value,
                expected,
            ));
        };
        let mut duration = |key: &str| {
            let value = annotations.get(key)?;
            let parsed = Millis::parse(value);
            if parsed.is_none() {
                invalid(key, value, Expected::Duration);
            }
            parsed
        };
        let timeout = duration(TIMEOUT_ANNOTATION);
        let per_try_timeout = duration(PER_TRY_TIMEOUT_ANNOTATION);
        let attempts = annotations.get(RETRIES_ANNOTATION).and_then(|value| {
            let parsed = value.parse::<u32>().ok().filter(|n| *n <= 10);
            if parsed.is_none() {
                invalid(RETRIES_ANNOTATION, value, Expected::RetryCount);
            }
            parsed
        });
        Overrides {
            timeout,
            attempts,
            per_try_timeout,
        }
    }

    /// The allow-list annotations: clusters that import the service, and service account
    /// names; both need mutual mode, where the gateway knows who calls.
    fn callers(
        &mut self,
        topology: &Topology,
        exported: &Exported,
        namespace: &str,
        name: &str,
    ) -> Callers {
        let doc = exported.export.doc;
        let annotations = &exported.meta().annotations;
        let mut list = |key: &str, valid: fn(&str) -> bool| -> Option<Vec<String>> {
            let value = annotations.get(key)?;
            let at = self.input.at(doc, &annotation(key));
            if topology.clusterset.security != SecurityMode::Mutual {
                self.diagnostics
                    .push(diags::callers_need_mutual_tls(at, key));
                return None;
            }
            let names: Vec<String> = value.split(',').map(|n| n.trim().to_string()).collect();
            if !names.iter().all(|n| valid(n)) {
                let diagnostic = diags::annotation_invalid(at, key, value, Expected::Names);
                self.diagnostics.push(diagnostic);
                return None;
            }
            Some(names)
        };
        let clusters = list(ALLOWED_CLUSTERS_ANNOTATION, is_dns1123_label);
        // Service account names are DNS-1123 subdomains.
        let mut service_accounts = list(ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, is_dns1123_subdomain);
        let clusters = clusters.map(|names| {
            let at = self.input.at(doc, &annotation(ALLOWED_CLUSTERS_ANNOTATION));
            let mut ids = Vec::new();
            for cluster in &names {
                let Some(&c) = topology.by_name.get(cluster) else {
                    self.diagnostics.push(diags::allowed_cluster_not_importer(
                        at.clone(),
                        &exported.shown,
                        cluster,
                        NotImporter::Unknown,
                    ));
                    continue;
                };
                let importer = &topology.clusterset.clusters[c];
                let why = if !importer.namespaces.contains(namespace) {
                    NotImporter::NoNamespace(namespace)
                } else if importer.opts_out(namespace, name) {
                    NotImporter::OptedOut
                } else {
                    ids.push(ClusterId(c));
                    continue;
                };
                self.diagnostics.push(diags::allowed_cluster_not_importer(
                    at.clone(),
                    &exported.shown,
                    cluster,
                    why,
                ));
            }
            ids.sort_unstable();
            ids.dedup();
            ids
        });
        if let Some(accounts) = &mut service_accounts {
            accounts.sort();
            accounts.dedup();
        }
        Callers {
            clusters,
            service_accounts,
        }
    }

    /// Indexes one kind's objects by (cluster, namespace, name), reporting duplicates and
    /// bad names.
    fn index<'o, T: HasMeta>(
        &mut self,
        topology: &Topology,
        objects: &'o [(String, Located<T>)],
        kind: &str,
    ) -> BTreeMap<Key, &'o Located<T>> {
        let mut index: BTreeMap<Key, &Located<T>> = BTreeMap::new();
        for (cluster_name, object) in objects {
            let Some(&cluster) = topology.by_name.get(cluster_name) else {
                continue;
            };
            let Some((namespace, name)) = self.names(object, kind) else {
                continue;
            };
            let key = (cluster, namespace, name);
            if let Some(first) = index.get(&key) {
                let shown = if kind == "Namespace" {
                    key.1.clone()
                } else {
                    format!("{}/{}", key.1, key.2)
                };
                self.diagnostics.push(diags::object_duplicate(
                    self.input.at(object.doc, &name_pointer()),
                    kind,
                    &shown,
                    Some(cluster_name),
                    self.input.at(first.doc, &name_pointer()),
                ));
                continue;
            }
            index.insert(key, object);
        }
        index
    }

    /// An object's namespace and name (a Namespace's name and `""`), if both are valid.
    fn names<T: HasMeta>(&mut self, object: &Located<T>, kind: &str) -> Option<(String, String)> {
        let meta = object.value.meta();
        let (namespace, name, namespace_pointer) = if kind == "Namespace" {
            (meta.name.clone(), String::new(), name_pointer())
        } else {
            (
                meta.namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string()),
                meta.name.clone(),
                fields("metadata.namespace"),
            )
        };
        let at = self.input.at(object.doc, &namespace_pointer);
        if !check_namespace(&namespace, Some(at), self.diagnostics) {
            return None;
        }
        if kind != "Namespace" && !is_dns1123_label(&name) {
            let at = self.input.at(object.doc, &name_pointer());
            let diagnostic = diags::invalid_name(Some(at), Name::Object { kind, name: &name });
            self.diagnostics.push(diagnostic);
            return None;
        }
        Some((namespace, name))
    }

    /// The export's WAN policy: its annotation's, or the clusterset default.
    fn export_policy(&mut self, exported: &Exported, topology: &Topology) -> Option<PolicyId> {
        let policies = self.policies;
        let doc = exported.export.doc;
        match exported.meta().annotations.get(POLICY_ANNOTATION) {
            Some(policy) if policies.contains_key(policy) => policy_id(policies, policy),
            Some(policy) if policy_refused(self.declarations, policies, policy) => None,
            Some(policy) => {
                let known: Vec<&str> = policies.keys().map(String::as_str).collect();
                self.diagnostics.push(diags::export_unknown_policy(
                    self.input.at(doc, &annotation(POLICY_ANNOTATION)),
                    &exported.shown,
                    exported.cluster,
                    policy,
                    &known,
                ));
                None
            }
            // An unknown default is reported once, by the policies pass.
            None if topology.default_policy.is_some() => topology
                .default_policy
                .as_ref()
                .and_then(|default| policy_id(policies, &default.value)),
            None => {
                self.diagnostics.push(diags::export_no_policy(
                    self.input.at(doc, &name_pointer()),
                    &exported.shown,
                    exported.cluster,
                    POLICY_ANNOTATION,
                ));
                None
            }
        }
    }

    /// The one HTTP port of the Service the export carries.
    fn export_port(
        &mut self,
        exported: &Exported,
        service: &Located<spec::Service>,
    ) -> Option<ServicePort> {
        let input = self.input;
        let at = |doc: usize, pointer: &Pointer| input.at(doc, pointer);
        let export_at = at(exported.export.doc, &name_pointer());
        if service.value.spec.kind.as_deref() == Some("ExternalName") {
            self.diagnostics.push(diags::export_externalname(
                export_at,
                &exported.shown,
                at(service.doc, &fields("spec.type")),
            ));
            return None;
        }
        let (index, port) = self.chosen_port(exported, service)?;
        let protocol = protocol(port);
        let unsupported = port.protocol.as_deref().is_some_and(|p| p != "TCP");
        match protocol {
            Some(protocol) if !unsupported => Some(ServicePort {
                name: port.name.clone(),
                port: port.port,
                app_protocol: port.app_protocol.clone(),
                protocol,
            }),
            _ => {
                self.diagnostics.push(diags::export_unsupported_protocol(
                    at(service.doc, &fields("spec.ports").index(index)),
                    &exported.shown,
                    port.port,
                    port.protocol.as_deref(),
                    port.app_protocol.as_deref(),
                ));
                None
            }
        }
    }

    /// The port the export's annotation names, or the Service's only port.
    fn chosen_port<'s>(
        &mut self,
        exported: &Exported,
        service: &'s Located<spec::Service>,
    ) -> Option<(usize, &'s spec::ServicePort)> {
        let input = self.input;
        let at = |doc: usize, pointer: &Pointer| input.at(doc, pointer);
        let ports = &service.value.spec.ports;
        let doc = exported.export.doc;
        match exported.meta().annotations.get(PORT_ANNOTATION) {
            Some(wanted) => {
                let found = ports.iter().enumerate().find(|(_, p)| {
                    p.name.as_deref() == Some(wanted) || p.port.to_string() == *wanted
                });
                if found.is_none() {
                    let names: Vec<String> = ports
                        .iter()
                        .map(|p| p.name.clone().unwrap_or_else(|| p.port.to_string()))
                        .collect();
                    self.diagnostics.push(diags::export_unknown_port(
                        at(doc, &annotation(PORT_ANNOTATION)),
                        &exported.shown,
                        wanted,
                        &names,
                        at(service.doc, &fields("spec.ports")),
                    ));
                }
                found
            }
            None if ports.len() == 1 => Some((0, &ports[0])),
            None => {
                self.diagnostics.push(diags::export_ambiguous_ports(
                    at(doc, &name_pointer()),
                    &exported.shown,
                    ports.is_empty(),
                    at(service.doc, &fields("spec")),
                    PORT_ANNOTATION,
                ));
                None
            }
        }
    }
}

trait HasMeta {
    fn meta(&self) -> &spec::Meta;
}

impl HasMeta for spec::Service {
    fn meta(&self) -> &spec::Meta {
        &self.metadata
    }
}

impl HasMeta for spec::ServiceExport {
    fn meta(&self) -> &spec::Meta {
        &self.metadata
    }
}

impl HasMeta for spec::Namespace {
    fn meta(&self) -> &spec::Meta {
        &self.metadata
    }
}

/// The L7 protocol of a port: `appProtocol` if set, else Istio's port-name convention
/// (`<protocol>[-<suffix>]`). A name that follows no convention is taken as HTTP.
fn protocol(port: &spec::ServicePort) -> Option<AppProtocol> {
    const NOT_HTTP: &[&str] = &[
        "tcp", "tls", "https", "mongo", "mysql", "redis", "udp", "sctp",
    ];
    let (declared, explicit) = match (&port.app_protocol, &port.name) {
        (Some(app_protocol), _) => (app_protocol.to_ascii_lowercase(), true),
        (None, Some(name)) => (
            name.split('-').next().unwrap_or(name).to_ascii_lowercase(),
            false,
        ),
        (None, None) => return Some(AppProtocol::Http),
    };
    match declared.as_str() {
        "http2" | "h2c" | "kubernetes.io/h2c" => Some(AppProtocol::Http2),
        "grpc" | "grpc-web" => Some(AppProtocol::Grpc),
        "http" | "kubernetes.io/http" => Some(AppProtocol::Http),
        other if explicit || NOT_HTTP.contains(&other) => None,
        _ => Some(AppProtocol::Http),
    }
}
