//! Review aids, pure: `SUMMARY.md` (what each cluster exports and imports, over which
//! tunnels) and the clusterset graph in Mermaid or Graphviz DOT. Built from the plan, the
//! fabric classification and each site's flows, so they show exactly what the render
//! produces.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::fabric::{Classification, SiteFlows};
use crate::model::{Model, SecurityMode};
use crate::plan::Plan;

/// Mermaid diagrams beyond this many edges are too large for GitHub to draw; SUMMARY.md
/// then points at `mcwan graph` instead.
const MAX_SUMMARY_EDGES: usize = 200;

/// An import edge: importer cluster → (exporter cluster, service), over a tunnel.
pub type Edges = BTreeSet<(usize, usize, String, String)>;

/// The import edges of one site's flows.
#[must_use]
pub fn edges(model: &Model, site: &SiteFlows) -> Edges {
    let mut edges = Edges::new();
    for ((policy, to), services) in &site.groups {
        let tunnel = &model.policy(*policy).tunnel;
        for service in services {
            edges.insert((site.from.0, to.0, service.clone(), tunnel.clone()));
        }
    }
    edges
}

/// What `SUMMARY.md` needs of the fabric's flows, gathered one site at a time: the flows
/// of each class, and the import edges while they are few enough to draw.
#[derive(Debug, Default)]
pub struct Totals {
    flows: BTreeMap<String, usize>,
    edge_count: usize,
    edges: Edges,
}

impl Totals {
    pub fn add(&mut self, model: &Model, site: &SiteFlows) {
        for (policy, _) in site.groups.keys() {
            *self
                .flows
                .entry(model.policy(*policy).name.clone())
                .or_default() += 1;
        }
        // Edges of different sites differ in their importer, so counts add up.
        let edges = edges(model, site);
        self.edge_count += edges.len();
        if self.edge_count <= MAX_SUMMARY_EDGES {
            self.edges.extend(edges);
        } else {
            self.edges.clear();
        }
    }
}

/// The services each cluster exports, as `namespace/name`, in ClusterSet order.
fn exported(plan: &Plan) -> Vec<Vec<String>> {
    let mut by_cluster = vec![Vec::new(); plan.model.clusterset.clusters.len()];
    for export in &plan.model.exports {
        by_cluster[export.cluster.0].push(format!("{}/{}", export.namespace, export.name));
    }
    by_cluster
}

/// The clusterset as a Mermaid flowchart: one box per cluster holding the services it
/// exports, and an edge from each importing cluster to each remote service it reaches,
/// labelled with the tunnel.
#[must_use]
pub fn mermaid(plan: &Plan, edges: &Edges) -> String {
    let clusters = &plan.model.clusterset.clusters;
    let exported = exported(plan);
    let mut out = String::from("flowchart LR\n");
    for (c, cluster) in clusters.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph c{c}[\"{} · {} · site {}\"]",
            cluster.name, cluster.region, cluster.sdwan_site
        );
        let _ = writeln!(out, "    c{c}_gw([\"gateway {}\"])", cluster.address);
        for (s, service) in exported[c].iter().enumerate() {
            let _ = writeln!(out, "    c{c}_s{s}[\"{service}\"]");
        }
        out.push_str("  end\n");
    }
    for (from, to, service, tunnel) in edges {
        let s = exported[*to]
            .iter()
            .position(|x| x == service)
            .unwrap_or_default();
        let _ = writeln!(out, "  c{from} -- \"{tunnel}\" --> c{to}_s{s}");
    }
    out
}

/// The same graph in Graphviz DOT.
#[must_use]
pub fn dot(plan: &Plan, edges: &Edges) -> String {
    let clusters = &plan.model.clusterset.clusters;
    let exported = exported(plan);
    let mut out = String::from("digraph clusterset {\n  rankdir=LR;\n  node [shape=box];\n");
    for (c, cluster) in clusters.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_c{c} {{");
        let _ = writeln!(
            out,
            "    label=\"{} · {} · site {}\";",
            cluster.name, cluster.region, cluster.sdwan_site
        );
        let _ = writeln!(
            out,
            "    c{c} [label=\"gateway {}\", shape=ellipse];",
            cluster.address
        );
        for (s, service) in exported[c].iter().enumerate() {
            let _ = writeln!(out, "    c{c}_s{s} [label=\"{service}\"];");
        }
        out.push_str("  }\n");
    }
    for (from, to, service, tunnel) in edges {
        let s = exported[*to]
            .iter()
            .position(|x| x == service)
            .unwrap_or_default();
        let _ = writeln!(out, "  c{from} -> c{to}_s{s} [label=\"{tunnel}\"];");
    }
    out.push_str("}\n");
    out
}

/// The clusters, one row each: where they are, their identity, gateway and egress.
fn clusters_table(plan: &Plan, exported: &[Vec<String>], out: &mut String) {
    let clusters = &plan.model.clusterset.clusters;
    out.push_str("## Clusters\n\n| cluster | region | zone | SD-WAN site | trust domain | gateway | exposure | egress | exports | imports |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (c, cluster) in clusters.iter().enumerate() {
        let imports = plan
            .services
            .iter()
            .filter(|s| cluster.imports(&s.namespace, &s.name))
            .count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {imports} |",
            cluster.name,
            cluster.region,
            cluster.zone.as_deref().unwrap_or("-"),
            cluster.sdwan_site,
            cluster.trust_domain.as_deref().unwrap_or("-"),
            cluster.address,
            cluster.exposure.as_str(),
            cluster.egress.as_ref().map_or_else(
                || "sidecar".to_string(),
                |a| format!("gateway {}", a.join(", "))
            ),
            exported[c].len(),
        );
    }
}

/// `SUMMARY.md`: tables of clusters, services and tunnels, the Mermaid graph, and where
/// the output came from.
#[must_use]
pub fn markdown(
    plan: &Plan,
    classification: &Classification,
    totals: &Totals,
    version: &str,
) -> String {
    let model = plan.model;
    let clusters = &model.clusterset.clusters;
    let exported = exported(plan);
    let mut out = format!("# Clusterset `{}`\n\nGenerated by mcwan {version} from declarations `{}`. Do not edit: run `mcwan render`.\n\n", model.clusterset.name, model.input_digest);

    out.push_str(match model.clusterset.security {
        SecurityMode::Mutual => "Across the WAN: **Istio mutual TLS**; each gateway admits, per service, only the importing clusters' workloads in its namespace.\n\n",
        SecurityMode::Plaintext => "Across the WAN: **plaintext** HTTP, with no caller identity.\n\n",
    });
    clusters_table(plan, &exported, &mut out);

    out.push_str("\n## Services\n\n| service | exported by | WAN policy | tunnel | port | imported by |\n|---|---|---|---|---|---|\n");
    for service in &plan.services {
        let exporters: Vec<&str> = service
            .exporters
            .iter()
            .map(|&e| {
                model
                    .clusterset
                    .cluster(model.exports[e].cluster)
                    .name
                    .as_str()
            })
            .collect();
        let importers: Vec<&str> = clusters
            .iter()
            .filter(|c| c.imports(&service.namespace, &service.name))
            .map(|c| c.name.as_str())
            .collect();
        let policies: Vec<&str> = service
            .policies
            .iter()
            .map(|&p| model.policy(p).name.as_str())
            .collect();
        let tunnels: Vec<&str> = service
            .policies
            .iter()
            .map(|&p| model.policy(p).tunnel.as_str())
            .collect();
        let ports: Vec<String> = service
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.istio_name, p.port))
            .collect();
        let _ = writeln!(
            out,
            "| {}/{} | {} | {} | {} | {} | {} |",
            service.namespace,
            service.name,
            exporters.join(", "),
            policies.join(", "),
            tunnels.join(", "),
            ports.join(", "),
            importers.join(", "),
        );
    }

    // Colours are a vendor's notion: shown when some tunnel has one (`-` for the others).
    let colours = classification.classes.iter().any(|c| c.color.is_some());
    out.push_str(if colours {
        "\n## Tunnels\n\n| WAN policy | tunnel | colour | port | latency ms | jitter ms | loss % | flows |\n|---|---|---|---|---|---|---|---|\n"
    } else {
        "\n## Tunnels\n\n| WAN policy | tunnel | port | latency ms | jitter ms | loss % | flows |\n|---|---|---|---|---|---|---|\n"
    });
    for class in &classification.classes {
        let colour = match (&class.color, colours) {
            (Some(colour), _) => format!(" {colour} |"),
            (None, true) => " - |".to_string(),
            (None, false) => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} |{colour} {} | {} | {} | {} | {} |",
            class.policy,
            class.tunnel,
            class.port,
            class.sla.latency_ms,
            class.sla.jitter_ms,
            class.sla.loss_percent,
            totals.flows.get(&class.policy).copied().unwrap_or_default()
        );
    }

    out.push_str("\n## Graph\n\n");
    let edge_count = totals.edge_count;
    if edge_count <= MAX_SUMMARY_EDGES {
        let _ = write!(out, "```mermaid\n{}```\n", mermaid(plan, &totals.edges));
    } else {
        let _ = writeln!(
            out,
            "{edge_count} import edges are too many to draw here; run `mcwan graph --dot`."
        );
    }
    out
}

/// Rows of the reachability matrix beyond which SUMMARY.md aggregates it.
const MAX_SUMMARY_FLOWS: usize = 200;

/// The reachability section: every flow `verify` followed, and its verdict; `None` for a
/// render that skipped verification.
#[must_use]
pub fn reachability(report: Option<&crate::verify::Report>) -> String {
    let Some(report) = report else {
        return "\n## Reachability\n\nNot verified: rendered with `--no-verify`.\n".into();
    };
    format!(
        "\n## Reachability\n\nWhere each request class goes, read from the rendered objects (`mcwan verify`): {} flows, {} problems, {} unsure.\n\n{}",
        report.rows.len(),
        report.problems(),
        report.unsure(),
        report.markdown(MAX_SUMMARY_FLOWS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PolicyId;

    fn payment() -> Model {
        crate::testing::example("payment")
    }

    /// A site of cluster `from` sending `services` to cluster `to` over `policy`.
    fn site(from: usize, to: usize, policy: PolicyId, services: usize) -> SiteFlows {
        let services = (0..services).map(|s| format!("ns/svc-{s}")).collect();
        SiteFlows {
            from: crate::model::ClusterId(from),
            groups: BTreeMap::from([((policy, crate::model::ClusterId(to)), services)]),
        }
    }

    #[test]
    fn totals_do_not_depend_on_the_order_sites_arrive_in() {
        let model = payment();
        for (a, b, drawn) in [(150, 20, true), (150, 51, false)] {
            let sites = [site(0, 1, PolicyId(0), a), site(1, 0, PolicyId(1), b)];
            let (mut forward, mut backward) = (Totals::default(), Totals::default());
            for s in &sites {
                forward.add(&model, s);
            }
            for s in sites.iter().rev() {
                backward.add(&model, s);
            }
            for totals in [&forward, &backward] {
                assert_eq!(totals.edge_count, a + b);
                assert_eq!(totals.edges.len(), if drawn { a + b } else { 0 });
                assert_eq!(totals.flows.values().sum::<usize>(), 2);
            }
            assert_eq!(forward.edges, backward.edges);
        }
    }
}
