//! Pass 4: what clusters declare. Services, exports and namespaces are unique per cluster,
//! every export has a Service with one HTTP port, and names a WAN policy that exists.

use std::collections::BTreeMap;

use crate::check::documents::{quoted, Declarations, Located};
use crate::check::names::{is_dns1123_label, label_hint};
use crate::check::topology::{check_namespace, Topology};
use crate::conventions::{
    PER_TRY_TIMEOUT_ANNOTATION, POLICY_ANNOTATION, PORT_ANNOTATION, RETRIES_ANNOTATION,
    TIMEOUT_ANNOTATION,
};
use crate::diagnostic::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::model::{AppProtocol, Export, Millis, Overrides, ServicePort, ServiceType, WanPolicy};
use crate::source::Sources;
use crate::spec;

const KNOWN_ANNOTATIONS: &[&str] = &[
    POLICY_ANNOTATION,
    PORT_ANNOTATION,
    TIMEOUT_ANNOTATION,
    RETRIES_ANNOTATION,
    PER_TRY_TIMEOUT_ANNOTATION,
];

type Key = (usize, String, String);

/// Every valid export, with the document that declared it.
pub fn check(
    sources: &Sources,
    declarations: &Declarations,
    topology: &mut Topology,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    diagnostics: &mut Diagnostics,
) -> Vec<(Export, usize)> {
    let namespaces = index(
        sources,
        topology,
        &declarations.namespaces,
        "Namespace",
        diagnostics,
    );
    let services = index(
        sources,
        topology,
        &declarations.services,
        "Service",
        diagnostics,
    );
    let exports = index(
        sources,
        topology,
        &declarations.exports,
        "ServiceExport",
        diagnostics,
    );

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
        let cluster_name = &topology.clusterset.clusters[*cluster].name;
        let meta = &export.value.metadata;
        let at = |pointer: &str| Some(sources.at(export.doc, pointer));
        for annotation in meta
            .annotations
            .keys()
            .filter(|k| k.starts_with("mcw.l7mp.io/"))
        {
            if !KNOWN_ANNOTATIONS.contains(&annotation.as_str()) {
                let pointer = format!(
                    "/metadata/annotations/{}",
                    crate::source::pointer_segment(annotation)
                );
                let mut diagnostic = Diagnostic::warning(
                    Code::AnnotationUnknown,
                    at(&pointer),
                    format!("unknown mcwan annotation `{annotation}`"),
                );
                if let Some(s) = did_you_mean(annotation, KNOWN_ANNOTATIONS.iter().copied()) {
                    diagnostic = diagnostic.hint(format!("did you mean `{s}`?"));
                }
                diagnostics.push(diagnostic);
            }
        }

        let host = format!("{name}.{namespace}.svc.{}", topology.clusterset.domain);
        if host.len() > 253 {
            diagnostics.push(
                Diagnostic::error(
                    Code::NameTooLong,
                    at("/metadata/name"),
                    format!("the clusterset host `{host}` of export `{namespace}/{name}` has {} characters, more than 253", host.len()),
                )
                .hint("shorten the service, namespace or clusterset domain"),
            );
            continue;
        }
        let key = (*cluster, namespace.clone(), name.clone());
        let Some(service) = services.get(&key) else {
            if declarations.is_broken("Service", Some(cluster_name), namespace, name) {
                continue;
            }
            let nearby = services
                .keys()
                .filter(|(c, n, _)| c == cluster && n == namespace)
                .map(|(_, _, s)| s.as_str());
            let mut diagnostic = Diagnostic::error(
                Code::ExportNoService,
                at("/metadata/name"),
                format!("ServiceExport `{namespace}/{name}` in cluster `{cluster_name}` has no Service of the same name"),
            );
            diagnostic = match did_you_mean(name, nearby) {
                Some(s) => diagnostic.hint(format!(
                    "did you mean Service `{s}`? The export must have the Service's name"
                )),
                None => diagnostic.hint(format!(
                    "declare Service `{namespace}/{name}` in `clusters/{cluster_name}/`"
                )),
            };
            diagnostics.push(diagnostic);
            continue;
        };
        // A WANRoute decides the policies of the export it refines; then the export needs
        // neither the annotation nor a clusterset default.
        let refined = declarations.routes.iter().any(|(c, r)| {
            c == cluster_name
                && r.value.metadata.name == *name
                && r.value.metadata.namespace.as_deref().unwrap_or("default") == namespace
        });
        let policy = if refined && !meta.annotations.contains_key(POLICY_ANNOTATION) {
            Some(String::new())
        } else {
            export_policy(
                sources,
                declarations,
                export,
                topology,
                policies,
                cluster_name,
                diagnostics,
            )
        };
        let port = export_port(sources, export, service, diagnostics);
        let overrides = overrides(sources, export, diagnostics);
        let (Some(policy), Some(port)) = (policy, port) else {
            continue;
        };
        let service_type = if service.value.spec.cluster_ip.as_deref() == Some("None") {
            ServiceType::Headless
        } else {
            ServiceType::ClusterSetIP
        };
        valid.push((
            Export {
                cluster: *cluster,
                namespace: namespace.clone(),
                name: name.clone(),
                // Empty until the WANRoute pass fills it in, for a refined export.
                policies: if policy.is_empty() {
                    Vec::new()
                } else {
                    vec![policy]
                },
                port,
                service_type,
                overrides,
                route: None,
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
            },
            export.doc,
        ));
    }
    valid
}

/// The per-export resilience annotations, each checked.
fn overrides(
    sources: &Sources,
    export: &Located<spec::ServiceExport>,
    diagnostics: &mut Diagnostics,
) -> Overrides {
    let annotations = &export.value.metadata.annotations;
    let mut invalid = |key: &str, value: &str, expected: &str| {
        let pointer = format!(
            "/metadata/annotations/{}",
            crate::source::pointer_segment(key)
        );
        diagnostics.push(
            Diagnostic::error(Code::AnnotationInvalid, Some(sources.at(export.doc, &pointer)), format!("`{key}: {value}` is not {expected}"))
                .hint("durations are a number and a unit (`250ms`, `1.5s`, `2m`); retries a count from 0 to 10"),
        );
    };
    let mut duration = |key: &str| {
        let value = annotations.get(key)?;
        let parsed = Millis::parse(value);
        if parsed.is_none() {
            invalid(key, value, "a duration between 1ms and 24h");
        }
        parsed
    };
    let timeout = duration(TIMEOUT_ANNOTATION);
    let per_try_timeout = duration(PER_TRY_TIMEOUT_ANNOTATION);
    let attempts = annotations.get(RETRIES_ANNOTATION).and_then(|value| {
        let parsed = value.parse::<u32>().ok().filter(|n| *n <= 10);
        if parsed.is_none() {
            invalid(RETRIES_ANNOTATION, value, "a retry count from 0 to 10");
        }
        parsed
    });
    Overrides {
        timeout,
        attempts,
        per_try_timeout,
    }
}

/// Indexes one kind's objects by (cluster, namespace, name), reporting duplicates and bad names.
fn index<'a, T: HasMeta>(
    sources: &Sources,
    topology: &Topology,
    objects: &'a [(String, Located<T>)],
    kind: &str,
    diagnostics: &mut Diagnostics,
) -> BTreeMap<Key, &'a Located<T>> {
    let mut index: BTreeMap<Key, &Located<T>> = BTreeMap::new();
    for (cluster_name, object) in objects {
        let Some(&cluster) = topology.by_name.get(cluster_name) else {
            continue;
        };
        let meta = object.value.meta();
        let (namespace, name) = if kind == "Namespace" {
            (meta.name.clone(), String::new())
        } else {
            (
                meta.namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string()),
                meta.name.clone(),
            )
        };
        let namespace_pointer = if kind == "Namespace" {
            "/metadata/name"
        } else {
            "/metadata/namespace"
        };
        if !check_namespace(
            &namespace,
            Some(sources.at(object.doc, namespace_pointer)),
            diagnostics,
        ) {
            continue;
        }
        if kind != "Namespace" && !is_dns1123_label(&name) {
            diagnostics.push(
                Diagnostic::error(
                    Code::InvalidName,
                    Some(sources.at(object.doc, "/metadata/name")),
                    format!("{kind} name `{name}` is not a DNS-1123 label"),
                )
                .hint(label_hint(&name)),
            );
            continue;
        }
        let key = (cluster, namespace, name);
        if let Some(first) = index.get(&key) {
            let shown = if kind == "Namespace" {
                key.1.clone()
            } else {
                format!("{}/{}", key.1, key.2)
            };
            diagnostics.push(
                Diagnostic::error(
                    Code::ObjectDuplicate,
                    Some(sources.at(object.doc, "/metadata/name")),
                    format!("{kind} `{shown}` is declared twice in cluster `{cluster_name}`"),
                )
                .also(
                    Some(sources.at(first.doc, "/metadata/name")),
                    "first declared here",
                ),
            );
            continue;
        }
        index.insert(key, object);
    }
    index
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

fn export_policy(
    sources: &Sources,
    declarations: &Declarations,
    export: &Located<spec::ServiceExport>,
    topology: &Topology,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    cluster_name: &str,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let meta = &export.value.metadata;
    let shown = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name
    );
    match meta.annotations.get(POLICY_ANNOTATION) {
        Some(policy) if policies.contains_key(policy) => Some(policy.clone()),
        Some(policy) if declarations.is_broken("WANPolicy", None, "", policy) => None,
        Some(policy) => {
            let pointer = format!(
                "/metadata/annotations/{}",
                crate::source::pointer_segment(POLICY_ANNOTATION)
            );
            let mut diagnostic = Diagnostic::error(
                Code::ExportUnknownPolicy,
                Some(sources.at(export.doc, &pointer)),
                format!("export `{shown}` in cluster `{cluster_name}` names unknown WAN policy `{policy}`"),
            );
            diagnostic = match did_you_mean(policy, policies.keys().map(String::as_str)) {
                Some(s) => diagnostic.hint(format!("did you mean `{s}`?")),
                None => diagnostic.hint(format!(
                    "declared policies: {}",
                    quoted(&policies.keys().cloned().collect::<Vec<_>>())
                )),
            };
            diagnostics.push(diagnostic);
            None
        }
        // An unknown default is reported once, by the policies pass.
        None if topology.default_policy.is_some() => topology
            .default_policy
            .as_ref()
            .filter(|default| policies.contains_key(&default.value))
            .map(|default| default.value.clone()),
        None => {
            diagnostics.push(
                    Diagnostic::error(
                        Code::ExportNoPolicy,
                        Some(sources.at(export.doc, "/metadata/name")),
                        format!("export `{shown}` in cluster `{cluster_name}` has no WAN policy"),
                    )
                    .hint(format!("annotate it with `{POLICY_ANNOTATION}: <policy>`, or set `defaultWANPolicy` in the ClusterSet")),
                );
            None
        }
    }
}

fn export_port(
    sources: &Sources,
    export: &Located<spec::ServiceExport>,
    service: &Located<spec::Service>,
    diagnostics: &mut Diagnostics,
) -> Option<ServicePort> {
    let meta = &export.value.metadata;
    let shown = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name
    );
    let service_spec = &service.value.spec;
    if service_spec.kind.as_deref() == Some("ExternalName") {
        diagnostics.push(
            Diagnostic::error(
                Code::ExportExternalname,
                Some(sources.at(export.doc, "/metadata/name")),
                format!("export `{shown}` selects an ExternalName Service, which has no endpoints to export"),
            )
            .also(Some(sources.at(service.doc, "/spec/type")), "the Service is ExternalName here")
            .hint("MCS exports only ClusterIP and headless Services"),
        );
        return None;
    }
    let ports = &service_spec.ports;
    let annotation_pointer = format!(
        "/metadata/annotations/{}",
        crate::source::pointer_segment(PORT_ANNOTATION)
    );
    let chosen = match meta.annotations.get(PORT_ANNOTATION) {
        Some(wanted) => {
            let found = ports
                .iter()
                .enumerate()
                .find(|(_, p)| p.name.as_deref() == Some(wanted) || p.port.to_string() == *wanted);
            if found.is_none() {
                let names: Vec<String> = ports
                    .iter()
                    .map(|p| p.name.clone().unwrap_or_else(|| p.port.to_string()))
                    .collect();
                diagnostics.push(
                    Diagnostic::error(
                        Code::ExportUnknownPort,
                        Some(sources.at(export.doc, &annotation_pointer)),
                        format!("export `{shown}` selects port `{wanted}`, which Service `{shown}` does not have"),
                    )
                    .also(Some(sources.at(service.doc, "/spec/ports")), "the Service's ports")
                    .hint(format!("use one of {}", quoted(&names))),
                );
            }
            found
        }
        None if ports.len() == 1 => Some((0, &ports[0])),
        None => {
            let problem = if ports.is_empty() {
                "has no ports"
            } else {
                "has several ports"
            };
            diagnostics.push(
                Diagnostic::error(
                    Code::ExportAmbiguousPorts,
                    Some(sources.at(export.doc, "/metadata/name")),
                    format!("export `{shown}` is ambiguous: its Service {problem}, and one gateway listener carries one port"),
                )
                .also(Some(sources.at(service.doc, "/spec")), "the Service")
                .hint(format!("annotate the export with `{PORT_ANNOTATION}: <port name or number>`")),
            );
            None
        }
    };
    let (index, port) = chosen?;
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
            diagnostics.push(
                Diagnostic::error(
                    Code::ExportUnsupportedProtocol,
                    Some(sources.at(service.doc, &format!("/spec/ports/{index}"))),
                    format!(
                        "port {} of Service `{shown}` is {}/{}, but east-west gateways route HTTP",
                        port.port,
                        port.protocol.as_deref().unwrap_or("TCP"),
                        port.app_protocol.as_deref().unwrap_or("-")
                    ),
                )
                .hint("export an HTTP, HTTP/2 or gRPC port over TCP"),
            );
            None
        }
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
