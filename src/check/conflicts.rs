//! Pass 5: MCS conflicts. Every cluster exporting one service must agree on its port, type
//! and WAN policy. With `--resolve-conflicts`, the KEP-1645 rule applies instead: the
//! earliest cluster in ClusterSet order stands in for the oldest export and wins.

use std::collections::BTreeMap;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::{ClusterSet, Export};
use crate::source::Sources;

/// Checks `exports` (sorted by namespace, name, cluster order) and, when resolving, rewrites
/// the overruled exports to the winner's type and policies.
pub fn check(
    sources: &Sources,
    clusterset: &ClusterSet,
    exports: &mut [(Export, usize)],
    resolve: bool,
    diagnostics: &mut Diagnostics,
) {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, (export, _)) in exports.iter().enumerate() {
        groups
            .entry((export.namespace.clone(), export.name.clone()))
            .or_default()
            .push(i);
    }
    for ((namespace, name), members) in groups {
        let (winner, winner_doc) = exports[members[0]].clone();
        for &i in &members[1..] {
            let (export, doc) = &mut exports[i];
            let mut disagreements = Vec::new();
            let describe = |e: &Export| {
                format!(
                    "`{}` {}/{}",
                    e.port.istio_name(),
                    e.port.port,
                    e.port.protocol.istio()
                )
            };
            if (
                export.port.istio_name(),
                export.port.port,
                export.port.protocol,
            ) != (
                winner.port.istio_name(),
                winner.port.port,
                winner.port.protocol,
            ) {
                disagreements.push(format!(
                    "port {} vs {}",
                    describe(export),
                    describe(&winner)
                ));
            }
            if export.service_type != winner.service_type {
                disagreements.push(format!(
                    "type {} vs {}",
                    export.service_type.as_str(),
                    winner.service_type.as_str()
                ));
            }
            if export.policies != winner.policies {
                disagreements.push(format!(
                    "WAN policy `{}` vs `{}`",
                    export.policies.join(","),
                    winner.policies.join(",")
                ));
            }
            if export.route != winner.route {
                disagreements.push("WANRoute rules".to_string());
            }
            if export.overrides != winner.overrides {
                disagreements
                    .push("resilience annotations (timeout, retries, per-try-timeout)".to_string());
            }
            if disagreements.is_empty() {
                continue;
            }
            let here = &clusterset.clusters[export.cluster].name;
            let first = &clusterset.clusters[winner.cluster].name;
            let detail = disagreements.join(", ");
            let location = Some(sources.at(*doc, "/metadata/name"));
            let other = Some(sources.at(winner_doc, "/metadata/name"));
            if resolve {
                diagnostics.push(
                    Diagnostic::warning(
                        Code::McsConflictResolved,
                        location,
                        format!("export `{namespace}/{name}` in cluster `{here}` is overruled by cluster `{first}`: {detail}"),
                    )
                    .also(other, format!("cluster `{first}` comes first in the ClusterSet and wins")),
                );
                export.service_type = winner.service_type;
                export.policies.clone_from(&winner.policies);
                export.overrides = winner.overrides;
                export.route.clone_from(&winner.route);
            } else {
                diagnostics.push(
                    Diagnostic::error(
                        Code::McsConflict,
                        location,
                        format!("clusters `{first}` and `{here}` export `{namespace}/{name}` differently: {detail}"),
                    )
                    .also(other, format!("exported by `{first}` here"))
                    .hint("make the exports agree, or pass `--resolve-conflicts` to let the earlier cluster in the ClusterSet win"),
                );
            }
        }
    }
}
