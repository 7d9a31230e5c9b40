//! Stage 2: turn loaded documents into a validated `Model`, reporting every problem found.
//! Each pass is a pure function of its inputs and pushes to the shared `Diagnostics`; none
//! stops at the first problem. One file per pass.

mod conflicts;
pub mod documents;
mod exports;
pub mod names;
mod passthrough;
pub mod pointer;
mod policies;
mod re2;
mod routes;
#[cfg(test)]
mod tests;
pub mod topology;

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::check::documents::Declarations;
use crate::diagnostic::Diagnostics;
use crate::diags;
use crate::kind::Kind;
use crate::model::{Export, Model, PolicyId, WanPolicy};
use crate::schema::Schemas;
use crate::source::Sources;

use pointer::{fields, Input};

/// Options that change what counts as valid.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Resolve MCS conflicts by ClusterSet order instead of failing.
    pub resolve_conflicts: bool,
}

/// The global WAN policies by name, with the document of each.
pub type Policies = BTreeMap<String, (WanPolicy, usize)>;

/// The names of the policies `ids`, in order.
fn policy_names(policies: &Policies, ids: &[PolicyId]) -> Vec<String> {
    let names: Vec<&String> = policies.keys().collect();
    ids.iter()
        .filter_map(|id| names.get(id.0).map(|name| (*name).clone()))
        .collect()
}

/// Whether the WAN policy `name`, missing from `policies`, was declared all the same:
/// broken, refused by the policies pass (an invalid name), or in a file not read whole.
/// References to it are not reported again.
fn policy_refused(declarations: &Declarations, policies: &Policies, name: &str) -> bool {
    !policies.contains_key(name)
        && (declarations.is_broken(Kind::WanPolicy, None, "", name)
            || declarations
                .policies
                .iter()
                .any(|p| p.value.metadata.name == name))
}

/// The id the model gives the policy named `name`: its place in name order.
fn policy_id(policies: &Policies, name: &str) -> Option<PolicyId> {
    policies.keys().position(|k| k == name).map(PolicyId)
}

/// Runs every pass. Returns a model only when the declarations are valid: when neither
/// `load`, which reported to `diagnostics` before, nor any pass found an error in them.
pub fn check(
    sources: &Sources,
    schemas: &Schemas,
    options: Options,
    diagnostics: &mut Diagnostics,
) -> Option<Model> {
    // The digest reads only the documents: it is taken on another core while the passes run.
    std::thread::scope(|scope| {
        let digest = scope.spawn(|| digest(sources));
        let model = passes(sources, schemas, options, diagnostics)?;
        let input_digest = digest
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Some(Model {
            input_digest,
            ..model
        })
    })
}

/// Every pass of `check`; the model's `input_digest` is left empty.
fn passes(
    sources: &Sources,
    schemas: &Schemas,
    options: Options,
    diagnostics: &mut Diagnostics,
) -> Option<Model> {
    // Whether the passes failed is counted from here; errors before are load's, in these
    // same sources, and make the declarations invalid too.
    let errors_before = diagnostics.errors();
    let input = Input { sources, schemas };
    let declarations = documents::read(sources, schemas, diagnostics);
    let mut topology = topology::Pass {
        input,
        declarations: &declarations,
        diagnostics,
    }
    .check()?;
    let policies = policies::Pass {
        input,
        declarations: &declarations,
        topology: &topology,
        diagnostics,
    }
    .check();
    let mut exports = exports::Pass {
        input,
        declarations: &declarations,
        policies: &policies,
        diagnostics,
    }
    .check(&mut topology);
    routes::Pass {
        input,
        declarations: &declarations,
        topology: &topology,
        policies: &policies,
        diagnostics,
    }
    .check(&mut exports);
    exports.sort_by(|(a, _), (b, _)| {
        (&a.namespace, &a.name, a.cluster).cmp(&(&b.namespace, &b.name, b.cluster))
    });
    let imports = Imports {
        input,
        topology: &topology,
        policies: &policies,
        exports: &exports,
        diagnostics,
    };
    imports.check();
    let passthrough = passthrough::Pass {
        input,
        declarations: &declarations,
        topology: &topology,
        policies: &policies,
        exports: &exports,
        diagnostics,
    }
    .check();
    conflicts::Pass {
        input,
        clusterset: &topology.clusterset,
        policies: &policies,
        resolve: options.resolve_conflicts,
        diagnostics,
    }
    .check(&mut exports);
    let loaded = errors_before == 0;
    if !loaded || diagnostics.errors() > errors_before {
        return None;
    }
    Some(Model {
        clusterset: topology.clusterset,
        policies: policies.into_values().map(|(policy, _)| policy).collect(),
        exports: exports.into_iter().map(|(export, _)| export).collect(),
        passthrough,
        input_digest: String::new(),
    })
}

/// The rules of what clusters import, once every export is known: opt-outs and the
/// gateway addresses importers rank.
struct Imports<'a> {
    input: Input<'a>,
    topology: &'a topology::Topology,
    policies: &'a Policies,
    /// Sorted by service, so each service's exports are one run.
    exports: &'a [(Export, usize)],
    diagnostics: &'a mut Diagnostics,
}

impl Imports<'_> {
    fn check(mut self) {
        self.opt_outs();
        self.dns_gateways();
    }

    /// Importers rank a service's endpoints when it has several exporters or a fallback
    /// tunnel, and Istio ranks only the endpoints of STATIC ServiceEntries: for DNS-resolved
    /// ones, `failoverPriority` is ignored in 1.26-1.29 and applies to no subset in 1.30
    /// (docs/mesh.md). So every exporter of such a service needs IP addresses.
    fn dns_gateways(&mut self) {
        let clusterset = &self.topology.clusterset;
        let exports = self.exports;
        let services =
            exports.chunk_by(|(a, _), (b, _)| (&a.namespace, &a.name) == (&b.namespace, &b.name));
        for service in services {
            for (export, doc) in service {
                let fallback = export.policies.iter().any(|p| {
                    self.policies
                        .values()
                        .nth(p.0)
                        .is_some_and(|(p, _)| p.fallback.is_some())
                });
                let cluster = clusterset.cluster(export.cluster);
                let named = cluster
                    .addresses
                    .iter()
                    .position(|a| a.parse::<std::net::IpAddr>().is_err());
                let (Some(j), true) = (named, service.len() > 1 || fallback) else {
                    continue;
                };
                let gateway = self
                    .topology
                    .cluster_pointer(export.cluster.0)
                    .key("gateway");
                let pointer = match j {
                    0 => gateway.key("address"),
                    _ => gateway.key("nodeAddresses").index(j - 1),
                };
                let diagnostic = diags::gateway_address_unranked(
                    self.input.at(self.topology.doc, &pointer),
                    &cluster.name,
                    &cluster.addresses[j],
                    &format!("{}/{}", export.namespace, export.name),
                    fallback,
                    self.input.at(*doc, &fields("metadata.name")),
                );
                self.diagnostics.push(diagnostic);
            }
        }
    }

    /// Where cluster `c` (an index into the model's clusters) declares that it skips
    /// importing `skipped`: the model keeps the opt-outs sorted, not in declared order.
    fn skip_import_pointer(&self, c: usize, skipped: &str) -> pointer::Pointer {
        let list = self.topology.cluster_pointer(c).key("skipImports");
        let declared = self.input.sources.documents[self.topology.doc]
            .value
            .pointer(list.as_str())
            .and_then(Value::as_array)
            .and_then(|items| items.iter().position(|item| item == skipped))
            .unwrap_or_default();
        list.index(declared)
    }

    /// An opt-out from importing a service no cluster exports is probably a typo.
    fn opt_outs(&mut self) {
        let exported: Vec<String> = self
            .exports
            .iter()
            .map(|(e, _)| format!("{}/{}", e.namespace, e.name))
            .collect();
        for (c, cluster) in self.topology.clusterset.clusters.iter().enumerate() {
            for skipped in cluster.skip_imports.iter().map(ToString::to_string) {
                if exported.contains(&skipped) {
                    continue;
                }
                let pointer = self.skip_import_pointer(c, &skipped);
                self.diagnostics.push(diags::import_opt_out_unknown(
                    self.input.at(self.topology.doc, &pointer),
                    &cluster.name,
                    &skipped,
                    exported.iter().map(String::as_str),
                ));
            }
        }
    }
}

/// A digest of the declarations' content: each document in canonical JSON (keys sorted),
/// the documents sorted. File names, file order, document order and key order do not
/// change it, just as they do not change the output.
fn digest(sources: &Sources) -> String {
    let mut documents: Vec<Vec<u8>> = sources
        .documents
        .iter()
        .map(|d| {
            let mut out = Vec::new();
            canonical(&d.value, &mut out);
            out
        })
        .collect();
    documents.sort();
    let mut hasher = Sha256::new();
    for document in documents {
        hasher.update(&document);
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

/// Writes `value` as compact JSON with every object's keys sorted. (Into memory, a string
/// or a JSON value serializes without fail.)
fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| *k);
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        other => {
            let _ = serde_json::to_writer(out, other);
        }
    }
}
