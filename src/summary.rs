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

/// The import edges, one per (importing cluster, exporting cluster, tunnel): the
/// traffic the importer sends to the exporter's gateway over that tunnel.
pub type Edges = BTreeMap<(usize, usize, String), Edge>;

/// What an import edge carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    /// How many services it carries.
    pub services: usize,
    /// The WAN policies' ports: several when policies share the tunnel.
    pub ports: BTreeSet<u16>,
}

/// The import edges of one site's flows.
#[must_use]
pub fn edges(model: &Model, site: &SiteFlows) -> Edges {
    let mut services: BTreeMap<(usize, usize, String), BTreeSet<&str>> = BTreeMap::new();
    let mut edges = Edges::new();
    for ((policy, to), names) in &site.groups {
        let policy = model.policy(*policy);
        let key = (site.from.0, to.0, policy.tunnel.clone());
        services
            .entry(key.clone())
            .or_default()
            .extend(names.iter().map(String::as_str));
        edges.entry(key).or_default().ports.insert(policy.port);
    }
    for (key, names) in services {
        edges.entry(key).or_default().services = names.len();
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

/// The colours edges are drawn in: Tableau 10, distinct for the colour-blind and on light
/// and dark backgrounds. Tunnels take them in name order, and share them beyond ten.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Every tunnel of the clusterset's WAN policies with its colour: from the sorted names,
/// so that a tunnel keeps its colour whichever edges are drawn.
fn tunnel_colors(model: &Model) -> BTreeMap<&str, &'static str> {
    let tunnels: BTreeSet<&str> = model.policies.iter().map(|p| p.tunnel.as_str()).collect();
    tunnels
        .into_iter()
        .zip(PALETTE.iter().cycle())
        .map(|(tunnel, color)| (tunnel, *color))
        .collect()
}

/// `business · 2 services · :31111`: the tunnel, the services and, when they are few, the
/// ports the fabric classifies them by.
fn edge_label(tunnel: &str, edge: &Edge) -> String {
    let services = match edge.services {
        1 => "1 service".to_string(),
        n => format!("{n} services"),
    };
    let mut label = format!("{tunnel} · {services}");
    if edge.ports.len() <= 3 {
        let ports: Vec<String> = edge.ports.iter().map(u16::to_string).collect();
        let _ = write!(label, " · :{}", ports.join(","));
    }
    label
}

/// `cluster-1 · eu-west/eu-west-a · site 101`, unescaped.
fn cluster_label(cluster: &crate::model::Cluster) -> String {
    let place = match &cluster.zone {
        Some(zone) => format!("{}/{zone}", cluster.region),
        None => cluster.region.clone(),
    };
    format!("{} · {place} · site {}", cluster.name, cluster.sdwan_site)
}

/// Text for a Mermaid quoted string: `"` would end it, `#` starts an entity code, `<`, `>`
/// and `&` would be read as HTML, a backquote could close the Markdown fence SUMMARY.md
/// draws it in, and a line break would end the statement. Each of these, and every other
/// control or ASCII punctuation character that means something to Mermaid, is written as
/// the entity code `#NN;` (Mermaid's flowchart syntax, "Entity codes to escape characters").
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || matches!(c, ' ' | '-' | '.' | '/' | ':' | ',' | '·' | '_') {
            out.push(c);
        } else {
            let _ = write!(out, "#{};", u32::from(c));
        }
    }
    out
}

/// Text for a Graphviz quoted string: the DOT language escapes only `"` in it (`\"`);
/// labels read a backslash as the start of an escape sequence (`\n`, `\N`, …: the
/// `escString` type), so it is doubled, a line break is written `\n`, `&` is written
/// `&amp;` since labels decode HTML entities, and other control characters, which would
/// draw nothing, are dropped.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '&' => out.push_str("&amp;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The clusterset as a Mermaid flowchart: one box per cluster holding its gateway and the
/// services it exports, an edge from each importing cluster to each exporter's gateway
/// per tunnel, coloured by tunnel, and a legend of the tunnels' colours.
#[must_use]
pub fn mermaid(plan: &Plan, edges: &Edges) -> String {
    let clusters = &plan.model.clusterset.clusters;
    let exported = exported(plan);
    let colors = tunnel_colors(plan.model);
    let mut out = String::from("flowchart LR\n");
    for (c, cluster) in clusters.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph c{c}[\"{}\"]",
            mermaid_text(&cluster_label(cluster))
        );
        let _ = writeln!(
            out,
            "    c{c}_gw([\"gateway {}\"])",
            mermaid_text(&cluster.address)
        );
        for (s, service) in exported[c].iter().enumerate() {
            let _ = writeln!(out, "    c{c}_s{s}[\"{}\"]", mermaid_text(service));
        }
        out.push_str("  end\n");
    }
    for ((from, to, tunnel), edge) in edges {
        let label = mermaid_text(&edge_label(tunnel, edge));
        let _ = writeln!(out, "  c{from} -- \"{label}\" --> c{to}_gw");
    }
    for (i, ((_, _, tunnel), _)) in edges.iter().enumerate() {
        let color = colors.get(tunnel.as_str()).unwrap_or(&PALETTE[0]);
        let _ = writeln!(out, "  linkStyle {i} stroke:{color},color:{color}");
    }
    let drawn = drawn_tunnels(edges);
    if !drawn.is_empty() {
        out.push_str("  subgraph legend[\"tunnels\"]\n");
        for (t, tunnel) in drawn.iter().enumerate() {
            let _ = writeln!(out, "    legend_{t}[\"{}\"]", mermaid_text(tunnel));
        }
        out.push_str("  end\n");
        for (t, tunnel) in drawn.iter().enumerate() {
            let color = colors.get(tunnel).unwrap_or(&PALETTE[0]);
            let _ = writeln!(
                out,
                "  style legend_{t} stroke:{color},stroke-width:3px,color:{color}"
            );
        }
    }
    out
}

/// The tunnels the edges use, sorted.
fn drawn_tunnels(edges: &Edges) -> BTreeSet<&str> {
    edges.keys().map(|(_, _, tunnel)| tunnel.as_str()).collect()
}

/// The same graph in Graphviz DOT. An edge leaves the importing cluster's box (a point
/// inside it, clipped at the box by `ltail`): the requests leave from its workloads, not
/// from its ingress gateway.
#[must_use]
pub fn dot(plan: &Plan, edges: &Edges) -> String {
    let clusters = &plan.model.clusterset.clusters;
    let exported = exported(plan);
    let colors = tunnel_colors(plan.model);
    let mut out = String::from(
        "digraph clusterset {\n  rankdir=LR;\n  compound=true;\n  node [shape=box];\n",
    );
    for (c, cluster) in clusters.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_c{c} {{");
        let _ = writeln!(out, "    label=\"{}\";", dot_text(&cluster_label(cluster)));
        let _ = writeln!(out, "    c{c} [shape=point, style=invis];");
        let _ = writeln!(
            out,
            "    c{c}_gw [label=\"gateway {}\", shape=ellipse];",
            dot_text(&cluster.address)
        );
        for (s, service) in exported[c].iter().enumerate() {
            let _ = writeln!(out, "    c{c}_s{s} [label=\"{}\"];", dot_text(service));
        }
        out.push_str("  }\n");
    }
    for ((from, to, tunnel), edge) in edges {
        let color = colors.get(tunnel.as_str()).unwrap_or(&PALETTE[0]);
        let _ = writeln!(
            out,
            "  c{from} -> c{to}_gw [ltail=cluster_c{from}, label=\"{}\", color=\"{color}\", fontcolor=\"{color}\"];",
            dot_text(&edge_label(tunnel, edge))
        );
    }
    let drawn = drawn_tunnels(edges);
    if !drawn.is_empty() {
        out.push_str("  subgraph cluster_legend {\n    label=\"tunnels\";\n");
        for (t, tunnel) in drawn.iter().enumerate() {
            let color = colors.get(tunnel).unwrap_or(&PALETTE[0]);
            let _ = writeln!(
                out,
                "    legend_{t} [label=\"{}\", color=\"{color}\", fontcolor=\"{color}\", penwidth=2];",
                dot_text(tunnel)
            );
        }
        out.push_str("  }\n");
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
        let exporters = service.exporter_names(model);
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

    /// A site of cluster `from` sending one service to each of `destinations` clusters
    /// over `policy`.
    fn site(from: usize, destinations: usize, policy: PolicyId) -> SiteFlows {
        let services = BTreeSet::from(["ns/svc".to_string()]);
        SiteFlows {
            from: crate::model::ClusterId(from),
            groups: (0..destinations)
                .map(|to| ((policy, crate::model::ClusterId(to)), services.clone()))
                .collect(),
        }
    }

    #[test]
    fn totals_do_not_depend_on_the_order_sites_arrive_in() {
        let model = payment();
        for (a, b, drawn) in [(150, 20, true), (150, 51, false)] {
            let sites = [site(0, a, PolicyId(0)), site(1, b, PolicyId(1))];
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
                assert_eq!(totals.flows.values().sum::<usize>(), a + b);
            }
            assert_eq!(forward.edges, backward.edges);
        }
    }

    /// Services to one exporter over one tunnel are one edge, whichever policies of that
    /// tunnel they take; another tunnel is another edge.
    #[test]
    fn one_edge_per_importer_exporter_and_tunnel() {
        let mut model = payment();
        model.policies[1].tunnel = model.policies[0].tunnel.clone();
        let (p0, p1) = (PolicyId(0), PolicyId(1));
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_string()).collect::<BTreeSet<_>>();
        let site = SiteFlows {
            from: crate::model::ClusterId(0),
            groups: BTreeMap::from([
                ((p0, crate::model::ClusterId(1)), names(&["a/x", "a/y"])),
                ((p1, crate::model::ClusterId(1)), names(&["a/y", "a/z"])),
            ]),
        };
        let edges = edges(&model, &site);
        let tunnel = model.policies[0].tunnel.clone();
        let ports: BTreeSet<u16> = model.policies.iter().map(|p| p.port).collect();
        assert_eq!(
            edges.into_iter().collect::<Vec<_>>(),
            [((0, 1, tunnel), Edge { services: 3, ports })]
        );
    }

    #[test]
    fn labels_escape_what_each_format_reads() {
        let hostile = "eu \"west\" #1 <b>&amp; `x`\\n\nnext\u{7}";
        let mermaid = mermaid_text(hostile);
        assert_eq!(
            mermaid,
            "eu #34;west#34; #35;1 #60;b#62;#38;amp#59; #96;x#96;#92;n#10;next#7;"
        );
        let dot = dot_text(hostile);
        assert_eq!(dot, "eu \\\"west\\\" #1 <b>&amp;amp; `x`\\\\n\\nnext");
    }
}
