//! Pass 5: MCS conflicts. Every cluster exporting one service must agree on its port, type
//! and WAN policy. With `--resolve-conflicts`, the KEP-1645 rule applies instead: the
//! earliest cluster in ClusterSet order stands in for the oldest export and wins.

use std::collections::BTreeMap;

use crate::check::pointer::{fields, Input};
use crate::check::{policy_names, Policies};
use crate::diagnostic::Diagnostics;
use crate::diags::{self, Conflict, Disagreement};
use crate::model::{ClusterSet, Export};

/// The conflicts pass's inputs and its sink.
pub struct Pass<'a> {
    pub input: Input<'a>,
    pub clusterset: &'a ClusterSet,
    pub policies: &'a Policies,
    /// Let the earliest cluster win instead of failing.
    pub resolve: bool,
    pub diagnostics: &'a mut Diagnostics,
}

impl Pass<'_> {
    /// Checks `exports` (sorted by namespace, name, cluster order) and, when resolving,
    /// rewrites the overruled exports to the winner's type and policies.
    pub fn check(self, exports: &mut [(Export, usize)]) {
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
                let differences = disagreements(self.policies, export, &winner);
                if differences.is_empty() {
                    continue;
                }
                let service = format!("{namespace}/{name}");
                let conflict = Conflict {
                    at: self.input.at(*doc, &fields("metadata.name")),
                    service: &service,
                    here: &self.clusterset.cluster(export.cluster).name,
                    first: &self.clusterset.cluster(winner.cluster).name,
                    differences,
                    first_at: self.input.at(winner_doc, &fields("metadata.name")),
                };
                if self.resolve {
                    self.diagnostics
                        .push(diags::mcs_conflict_resolved(conflict));
                    export.service_type = winner.service_type;
                    export.policies.clone_from(&winner.policies);
                    export.overrides = winner.overrides;
                    export.callers.clone_from(&winner.callers);
                    export.route.clone_from(&winner.route);
                } else {
                    self.diagnostics.push(diags::mcs_conflict(conflict));
                }
            }
        }
    }
}

/// How `export` differs from `winner`, the first export of its service: each value pair
/// is the winner's, then the export's, the order the messages name their clusters in.
fn disagreements<'e>(
    policies: &Policies,
    export: &'e Export,
    winner: &'e Export,
) -> Vec<Disagreement<'e>> {
    let shape = |e: &Export| {
        (
            e.port.istio_name().to_string(),
            e.port.port,
            e.port.protocol,
        )
    };
    let mut out = Vec::new();
    if shape(export) != shape(winner) {
        out.push(Disagreement::Port(&winner.port, &export.port));
    }
    if export.service_type != winner.service_type {
        out.push(Disagreement::Type(
            winner.service_type.as_str(),
            export.service_type.as_str(),
        ));
    }
    if export.policies != winner.policies {
        out.push(Disagreement::Policies(
            policy_names(policies, &winner.policies),
            policy_names(policies, &export.policies),
        ));
    }
    if export.route != winner.route {
        out.push(Disagreement::Route);
    }
    if export.overrides != winner.overrides {
        out.push(Disagreement::Overrides);
    }
    if export.callers != winner.callers {
        out.push(Disagreement::Callers);
    }
    out
}
