//! Stage 2: turn loaded documents into a validated `Model`, reporting every problem found.
//! Each pass is a pure function of its inputs and pushes to the shared `Diagnostics`; none
//! stops at the first problem. One file per pass.

mod conflicts;
pub mod documents;
mod exports;
pub mod names;
mod passthrough;
mod policies;
mod re2;
mod routes;
pub mod topology;

use serde_json::Value;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::Model;
use crate::schema::Schemas;
use crate::source::Sources;

/// Options that change what counts as valid.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Resolve MCS conflicts by ClusterSet order instead of failing.
    pub resolve_conflicts: bool,
}

/// Runs every pass. Returns a model only when there is no error.
pub fn check(
    sources: &Sources,
    schemas: &Schemas,
    options: Options,
    diagnostics: &mut Diagnostics,
) -> Option<Model> {
    let declarations = documents::read(sources, schemas, diagnostics);
    let mut topology = topology::check(sources, &declarations, diagnostics)?;
    let policies = policies::check(sources, &declarations, &topology, diagnostics);
    let mut exports = exports::check(
        sources,
        &declarations,
        &mut topology,
        &policies,
        diagnostics,
    );
    routes::check(
        sources,
        &declarations,
        &topology,
        &policies,
        &mut exports,
        diagnostics,
    );
    exports.sort_by(|(a, _), (b, _)| {
        (&a.namespace, &a.name, a.cluster).cmp(&(&b.namespace, &b.name, b.cluster))
    });
    opt_outs(sources, &topology, &exports, diagnostics);
    dns_gateways(sources, &topology, &policies, &exports, diagnostics);
    let passthrough = passthrough::check(sources, &declarations, &topology, &exports, diagnostics);
    conflicts::check(
        sources,
        &topology.clusterset,
        &mut exports,
        options.resolve_conflicts,
        diagnostics,
    );
    if diagnostics.has_errors() {
        return None;
    }
    Some(Model {
        clusterset: topology.clusterset,
        policies: policies
            .into_iter()
            .map(|(name, (policy, _))| (name, policy))
            .collect(),
        exports: exports.into_iter().map(|(export, _)| export).collect(),
        passthrough,
        input_digest: digest(sources),
    })
}

/// Importers rank a service's endpoints when it has several exporters or a fallback tunnel,
/// and Istio ranks only the endpoints of STATIC ServiceEntries: for DNS-resolved ones,
/// `failoverPriority` is ignored in 1.26-1.29 and applies to no subset in 1.30 (docs/mesh.md).
/// So every exporter of such a service needs IP addresses.
fn dns_gateways(
    sources: &Sources,
    topology: &topology::Topology,
    policies: &std::collections::BTreeMap<String, (crate::model::WanPolicy, usize)>,
    exports: &[(crate::model::Export, usize)],
    diagnostics: &mut Diagnostics,
) {
    let clusters = &topology.clusterset.clusters;
    // `exports` is sorted by service, so each service's exports are one run.
    let services =
        exports.chunk_by(|(a, _), (b, _)| (&a.namespace, &a.name) == (&b.namespace, &b.name));
    for service in services {
        for (export, doc) in service {
            let siblings = service.len();
            let fallback = export
                .policies
                .iter()
                .any(|p| policies.get(p).is_some_and(|(p, _)| p.fallback.is_some()));
            let cluster = &clusters[export.cluster];
            let named = cluster
                .addresses
                .iter()
                .position(|a| a.parse::<std::net::IpAddr>().is_err());
            let (Some(j), true) = (named, siblings > 1 || fallback) else {
                continue;
            };
            let pointer = match j {
                0 => format!("/spec/clusters/{}/gateway/address", export.cluster),
                _ => format!(
                    "/spec/clusters/{}/gateway/nodeAddresses/{}",
                    export.cluster,
                    j - 1
                ),
            };
            let why = if fallback {
                "has a fallback tunnel"
            } else {
                "has several exporters"
            };
            diagnostics.push(
            Diagnostic::error(
                Code::GatewayAddressUnranked,
                Some(sources.at(topology.doc, &pointer)),
                format!("gateway address `{}` of cluster `{}` is a DNS name, but `{}/{}` {why}, so importers must rank its endpoints", cluster.addresses[j], cluster.name, export.namespace, export.name),
            )
            .also(Some(sources.at(*doc, "/metadata/name")), "exported here")
            .hint("Istio orders the endpoints of STATIC ServiceEntries only; give the gateway's IP addresses (`address`, `nodeAddresses`)"),
        );
        }
    }
}

/// An opt-out from importing a service no cluster exports is probably a typo.
fn opt_outs(
    sources: &Sources,
    topology: &topology::Topology,
    exports: &[(crate::model::Export, usize)],
    diagnostics: &mut Diagnostics,
) {
    for (c, cluster) in topology.clusterset.clusters.iter().enumerate() {
        for (j, skipped) in cluster.skip_imports.iter().enumerate() {
            if !exports
                .iter()
                .any(|(e, _)| format!("{}/{}", e.namespace, e.name) == *skipped)
            {
                let known: Vec<String> = exports
                    .iter()
                    .map(|(e, _)| format!("{}/{}", e.namespace, e.name))
                    .collect();
                let mut diagnostic = Diagnostic::warning(
                    Code::ImportOptOutUnknown,
                    Some(sources.at(topology.doc, &format!("/spec/clusters/{c}/skipImports/{j}"))),
                    format!(
                        "cluster `{}` opts out of importing `{skipped}`, which no cluster exports",
                        cluster.name
                    ),
                );
                if let Some(s) =
                    crate::diagnostic::did_you_mean(skipped, known.iter().map(String::as_str))
                {
                    diagnostic = diagnostic.hint(format!("did you mean `{s}`?"));
                }
                diagnostics.push(diagnostic);
            }
        }
    }
}

/// A digest of the declarations' content: each document in canonical JSON (keys sorted),
/// the documents sorted. File names, file order, document order and key order do not
/// change it, just as they do not change the output.
fn digest(sources: &Sources) -> String {
    let mut documents: Vec<String> = sources
        .documents
        .iter()
        .map(|d| canonical(&d.value))
        .collect();
    documents.sort();
    let mut hasher = Sha256::new();
    for document in documents {
        hasher.update(document.as_bytes());
        hasher.update([0]);
    }
    let bytes = hasher.finalize();
    format!(
        "sha256:{}",
        bytes.iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
    )
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| *k);
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String((*k).clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}
