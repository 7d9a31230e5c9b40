//! The commands that read the declarations and change nothing: `check` and `diff` against
//! OUT with their exit codes, `status`, `graph`, `completions` and `schema`.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::test::Test;

const HIGH: &str = "policies/sd-wan-priority-high.yaml";

/// The CI gate: `check` passes on a fresh render; after a WAN policy edit it fails and
/// names exactly the files a render would change, which an independent render confirms.
#[test]
fn check_names_every_file_an_edit_affects() {
    let mut test = Test::example("payment");
    test.render().run();
    let up_to_date = test.check().run();
    assert!(up_to_date.stdout.is_empty());

    test.edit(HIGH, "port: 31111", "port: 31115");
    let stale = test.check().code(1).run();
    // Each is named as OUT was given, joined with its path within OUT.
    let out = test.expand("  {out}/");
    let named: Vec<String> = stale
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix(out.as_str()))
        .map(str::to_string)
        .collect();

    test.args(&["render", "{in}", "-o", "{temp}/fresh"]).run();
    let (old, new) = (test.tree("{out}"), test.tree("{temp}/fresh"));
    let differing: Vec<String> = new
        .keys()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    assert_eq!(named, differing);
    assert!(named.contains(&"cluster-1/mcw-system/gateway-mcw-ingress.yaml".to_string()));
    assert!(named.contains(&"sdwan/classes.yaml".to_string()));
    stale.stdout_has("-  port: 31111\n+  port: 31115");

    test.render().run();
    test.check().run();
}

#[test]
fn check_catches_hand_edits_and_deletions_but_not_foreign_files() {
    let mut test = Test::example("payment");
    test.render().run();
    // A file mcwan does not own is none of its business.
    test.write("{out}/NOTES.md", "ours");
    test.check().run();
    test.edit(
        "{out}/cluster-1/mcw-system/gateway-mcw-ingress.yaml",
        "protocol: HTTP",
        "protocol: HTTPS",
    )
    .remove("{out}/cluster-2/secure/serviceimport-payment.yaml");
    test.check()
        .code(1)
        .run()
        .stderr_has("2 file(s) differ")
        .stdout_has("--- /dev/null\n+++ b/cluster-2/secure/serviceimport-payment.yaml");
}

#[test]
fn exit_codes_of_check_and_diff() {
    let mut test = Test::example("payment");
    // No OUT yet: everything differs.
    test.check().code(1).run();
    test.diff().code(1).run();
    test.render().run();
    test.diff().run();
    // An OUT that mcwan did not create.
    test.write("{temp}/foreign/x.yaml", "x");
    test.args(&["check", "{in}", "-o", "{temp}/foreign"])
        .code(2)
        .run();
    // Invalid input fails check, and is trouble for diff.
    test.edit(HIGH, "port: 31111", "port: 70000");
    test.check().code(1).run();
    test.diff().code(2).run();
    // Usage errors.
    test.args(&["render", "{in}"]).code(2).run();
    test.args(&["frobnicate"]).code(2).run();
}

/// What a reviewer reads: a per-object summary with field-level changes, then the diff.
#[test]
fn diff_summarizes_objects_and_fields() {
    let mut test = Test::example("payment");
    test.render().run();
    test.edit(HIGH, "port: 31111", "port: 31115");
    let output = test.diff().code(1).run();
    let text = output.stdout.replace(&test.expand("{temp}"), "[TEMP]");
    let summary = text.split("\n--- ").next().unwrap().to_string();
    insta::assert_snapshot!(summary);
}

/// The lines `diff` prints under the object `kind name`, in `area`: one per difference.
fn differences_of(summary: &str, area: &str, kind: &str, name: &str) -> Vec<String> {
    let header = |line: &str| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        cells.len() >= 4 && cells[0] == area && cells[2] == kind && cells[3] == name
    };
    summary
        .lines()
        .skip_while(|line| !header(line))
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .map(|line| line.trim().to_string())
        .collect()
}

/// A route added to a WANRoute is one added element in each VirtualService, between the
/// routes it leaves alone, not a list of routes that all moved.
#[test]
fn diff_shows_one_line_for_one_new_route() {
    let mut test = Test::example("l7-payment");
    test.render().run();
    test.edit(
        "clusters/cluster-1/payment.yaml",
        "  - name: stats\n",
        "  - name: health\n    matches:\n    - path: {type: PathPrefix, value: /health}\n    wanPolicy: sd-wan-priority-low\n  - name: stats\n",
    );
    let summary = test.diff().code(1).run().stdout;
    for cluster in ["cluster-1", "cluster-2"] {
        assert_eq!(
            differences_of(&summary, cluster, "VirtualService", "secure/mcw-payment"),
            ["+ spec.http[health]"],
            "{summary}"
        );
    }
    test.render().run();
    test.edit(
        "clusters/cluster-1/payment.yaml",
        "  - name: health\n    matches:\n    - path: {type: PathPrefix, value: /health}\n    wanPolicy: sd-wan-priority-low\n",
        "",
    );
    let summary = test.diff().code(1).run().stdout;
    assert_eq!(
        differences_of(
            &summary,
            "cluster-2",
            "VirtualService",
            "secure/mcw-payment"
        ),
        ["- spec.http[health]"],
        "{summary}"
    );
}

/// An import dropped, then taken back, is one fabric flow removed, then added, printed as
/// the fabric sees it.
#[test]
fn diff_shows_one_line_for_one_import() {
    let mut test = Test::example("three-clusters");
    test.render().run();
    let unimport = ["insecure/logging", "--cluster", "cluster-1", "{in}"];
    test.args(&["unimport"]).args(&unimport).run();
    let flow = "flow cluster-1→cluster-3 10.30.1.10:31112 public-internet insecure/logging";
    let summary = test.diff().code(1).run().stdout;
    assert_eq!(
        differences_of(&summary, "sdwan", "SDWANSiteFlows", "cluster-1"),
        [format!("- {flow}")],
        "{summary}"
    );
    test.render().run();
    test.args(&["import"]).args(&unimport).run();
    let summary = test.diff().code(1).run().stdout;
    assert_eq!(
        differences_of(&summary, "sdwan", "SDWANSiteFlows", "cluster-1"),
        [format!("+ {flow}")],
        "{summary}"
    );
}

#[test]
fn status_describes_a_service() {
    let mut test = Test::example("three-clusters");
    let status = test.args(&["status", "insecure/logging", "{in}"]).run();
    insta::assert_snapshot!(status.stdout);
    test.args(&["status", "secure/paymnt", "{root}/examples/payment"])
        .code(1)
        .run()
        .stderr_has("did you mean `secure/payment`?");
}

#[test]
fn graph_draws_mermaid_and_dot() {
    let mut test = Test::example("three-clusters");
    let mermaid = test.args(&["graph", "{in}"]).run();
    insta::assert_snapshot!("graph_mermaid", mermaid.stdout);
    let dot = test.args(&["graph", "{in}", "--dot"]).run();
    insta::assert_snapshot!("graph_dot", dot.stdout);
}

/// `(importer, exporter, tunnel)` of every flow the fabric's site files list.
fn fabric_triples(test: &Test) -> (BTreeSet<(String, String, String)>, usize) {
    let mut triples = BTreeSet::new();
    let mut services = 0;
    for (path, bytes) in test.tree("{out}/sdwan/sites") {
        let sites: serde_json::Value = yaml_serde::from_slice(&bytes).unwrap();
        for flow in sites["flows"].as_array().unwrap() {
            let text = |pointer: &str| flow.pointer(pointer).unwrap().as_str().unwrap().to_string();
            triples.insert((
                text("/source/cluster"),
                text("/destination/cluster"),
                text("/tunnel"),
            ));
            services += flow["services"].as_array().unwrap().len();
        }
        assert!(path.ends_with("/flows.yaml"), "{path}");
    }
    (triples, services)
}

/// One edge per importing cluster, exporting cluster and tunnel, however many services it
/// carries: here two services go from cluster-1 to cluster-2 over the business tunnel.
#[test]
fn graph_draws_one_edge_per_importer_exporter_and_tunnel() {
    let mut test = Test::example("three-clusters");
    test.write(
        "clusters/cluster-1/orders.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: orders, namespace: secure}\nspec:\n  ports:\n  - {name: http, port: 8080, protocol: TCP}\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: orders\n  namespace: secure\n  annotations: {mcw.l7mp.io/mc-wan-policy: business}\n",
    );
    test.render().run();
    let (triples, services) = fabric_triples(&test);
    assert!(services > triples.len(), "{services} services, {triples:?}");

    let mermaid = test.args(&["graph", "{in}"]).run().stdout;
    let names: BTreeMap<String, String> = mermaid
        .lines()
        .filter_map(|l| l.trim().strip_prefix("subgraph c"))
        .filter_map(|l| l.split_once("[\""))
        .map(|(c, label)| {
            (
                format!("c{c}"),
                label.split(' ').next().unwrap().to_string(),
            )
        })
        .collect();
    let drawn: Vec<(String, String, String)> = mermaid
        .lines()
        .filter(|l| l.contains(" --> "))
        .map(|l| {
            let (from, rest) = l.trim().split_once(" -- \"").unwrap();
            let (label, to) = rest.split_once("\" --> ").unwrap();
            let to = to.strip_suffix("_gw").unwrap();
            (
                names[from].clone(),
                names[to].clone(),
                label.split(' ').next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(drawn.len(), triples.len(), "{mermaid}");
    assert_eq!(drawn.iter().cloned().collect::<BTreeSet<_>>(), triples);
    assert!(
        mermaid.contains("c1 -- \"business · 2 services · :31111\" --> c0_gw"),
        "{mermaid}"
    );
    let styles = mermaid
        .lines()
        .filter(|l| l.trim().starts_with("linkStyle "))
        .count();
    assert_eq!(styles, triples.len(), "{mermaid}");

    let dot = test.args(&["graph", "{in}", "--dot"]).run().stdout;
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(edges.len(), triples.len(), "{dot}");
    for edge in edges {
        let from = edge.trim().split(' ').next().unwrap();
        assert!(edge.contains(&format!("[ltail=cluster_{from},")), "{edge}");
    }
}

/// The Mermaid or DOT statements of a graph, each checked for well-formed strings: every
/// quoted string ends on its line, holds no raw quote (Mermaid) or only escaped ones
/// (DOT), and the braces and brackets outside strings balance. Returns the strings.
fn quoted_strings(text: &str, dot: bool) -> Vec<String> {
    let mut strings = Vec::new();
    let mut depth = 0i32;
    for line in text.lines() {
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    let mut string = String::new();
                    loop {
                        match chars.next() {
                            None => panic!("unterminated string in `{line}`"),
                            Some('"') => break,
                            // The DOT reader turns `\"` into `"` and keeps other pairs.
                            Some('\\') if dot => match chars.next().unwrap() {
                                '"' => string.push('"'),
                                c => string.extend(['\\', c]),
                            },
                            Some(c) => string.push(c),
                        }
                    }
                    strings.push(string);
                }
                '{' | '[' | '(' if dot => depth += 1,
                '}' | ']' | ')' if dot => depth -= 1,
                _ => {}
            }
        }
    }
    assert_eq!(depth, 0, "{text}");
    strings
}

/// A region and a zone may hold any character but `/`: quotes, `#`, HTML, backquotes and
/// line breaks stay inside their labels, and read back as written.
#[test]
fn graph_labels_survive_special_characters() {
    // A region or zone is a Kubernetes label value: one that could break a graph is refused
    // before any is drawn (the escaping itself is unit-tested in `summary`)...
    let mut test = Test::example("three-clusters");
    test.edit(
        "clusterset.yaml",
        "region: eu-west\n",
        "region: \"eu \\\"west\\\" #1 <b>&amp; %% c -->\\nnext\"\n",
    );
    test.args(&["graph", "{in}"])
        .code(1)
        .run()
        .stderr_has("invalid-value");
    // ...and every character a label value may hold reads back from both formats.
    let (region, zone) = ("Eu_West.1-x", "z.1_A");
    let mut test = Test::example("three-clusters");
    test.edit(
        "clusterset.yaml",
        "region: eu-west\n    zone: eu-west-a",
        &format!("region: {region}\n    zone: {zone}"),
    );
    let place = format!("cluster-1 · {region}/{zone} · site 101");

    let mermaid = test.args(&["graph", "{in}"]).run().stdout;
    assert_eq!(mermaid.lines().count(), 25, "{mermaid}");
    assert!(!mermaid.contains("```"));
    let decoded: Vec<String> = quoted_strings(&mermaid, false)
        .iter()
        .map(|s| decode_mermaid(s))
        .collect();
    assert!(decoded.contains(&place), "{decoded:?}");

    let dot = test.args(&["graph", "{in}", "--dot"]).run().stdout;
    let strings = quoted_strings(&dot, true);
    assert!(
        strings.iter().map(|s| dot_label(s)).any(|s| s == place),
        "{strings:?}"
    );

    // SUMMARY.md holds the same graph, inside its Markdown fence.
    test.render().run();
    let summary = test.read("{out}/SUMMARY.md");
    let graph = summary.split("```mermaid\n").nth(1).unwrap();
    assert_eq!(
        graph.split("```").next().unwrap(),
        mermaid.trim_end().to_string() + "\n"
    );
}

/// A DOT label as Graphviz draws it: `\\` is a backslash, `\n` a line break (`escString`),
/// `&amp;` an ampersand.
fn dot_label(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                c => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out.replace("&amp;", "&")
}

/// Mermaid's entity codes (`#34;`) back to their characters.
fn decode_mermaid(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('#') {
        out.push_str(&rest[..start]);
        let (code, after) = rest[start + 1..].split_once(';').unwrap();
        out.push(char::from_u32(code.parse().unwrap()).unwrap());
        rest = after;
    }
    out.push_str(rest);
    out
}

#[test]
fn completions_and_schema() {
    let mut test = Test::empty();
    for shell in ["bash", "zsh", "fish"] {
        let output = test.args(&["completions", shell]).run();
        assert!(
            output.stdout.contains("render") && output.stdout.contains("unimport"),
            "{shell}"
        );
    }
    let schema = test.args(&["schema", "WANPolicy"]).run();
    let value: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    assert_eq!(value["properties"]["kind"]["const"], "WANPolicy");
    test.args(&["schema", "Secret"]).code(2).run();
}
