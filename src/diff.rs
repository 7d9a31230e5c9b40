//! What a render would change in OUT, for `check` and `diff`: a per-object summary with
//! the fields and list elements that change (`ObjectChange`, printed by `summary`), and a
//! unified diff. Pure: the bytes come from `emit`.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::value_diff::{differences, lines_changed, Difference, Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

impl ChangeKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Removed => "removed",
        }
    }
}

/// One file of OUT that differs from what render would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    /// Empty when added.
    pub old: Vec<u8>,
    /// Empty when removed.
    pub new: Vec<u8>,
}

/// A unified diff of every change, `a/` being OUT and `b/` what render would write.
#[must_use]
pub fn unified(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        let old = String::from_utf8_lossy(&change.old);
        let new = String::from_utf8_lossy(&change.new);
        let text = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
        let (a, b) = match change.kind {
            ChangeKind::Added => ("/dev/null".to_string(), format!("b/{}", change.path)),
            ChangeKind::Removed => (format!("a/{}", change.path), "/dev/null".to_string()),
            ChangeKind::Changed => (format!("a/{}", change.path), format!("b/{}", change.path)),
        };
        let _ = write!(
            out,
            "{}",
            text.unified_diff().context_radius(3).header(&a, &b)
        );
    }
    out
}

/// What a reviewer reads of one file a render changes: where it is, the object it holds,
/// and what changes in it. `summary` prints these; they serialize as they read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectChange {
    /// The top-level entry of OUT it is in (a cluster, `sdwan`), or `-` at OUT's top.
    pub area: String,
    pub change: ChangeKind,
    /// The object's kind, or `file` for a file that holds no object.
    pub kind: String,
    /// `namespace/name`, or for a file its path below `area`.
    pub name: String,
    pub details: Details,
}

/// What changes inside a changed file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Details {
    /// Added or removed whole.
    Whole,
    /// A YAML or JSON document: every difference, list elements matched by identity.
    Fields(Vec<Difference>),
    /// Text: how many lines are added or removed.
    Lines(usize),
}

/// The object changes of `changes`, in their order.
#[must_use]
pub fn objects(changes: &[Change]) -> Vec<ObjectChange> {
    changes
        .iter()
        .map(|change| {
            let (area, rest) = change
                .path
                .split_once('/')
                .unwrap_or(("-", change.path.as_str()));
            let old = parse(&change.old);
            let new = parse(&change.new);
            let object = new
                .as_ref()
                .or(old.as_ref())
                .filter(|v| v["kind"].is_string());
            let (kind, name) = match object {
                Some(v) => {
                    let name = v["metadata"]["name"].as_str().unwrap_or_default();
                    let name = match v["metadata"]["namespace"].as_str() {
                        Some(ns) => format!("{ns}/{name}"),
                        None => name.to_string(),
                    };
                    (v["kind"].as_str().unwrap_or_default().to_string(), name)
                }
                None => ("file".to_string(), rest.to_string()),
            };
            let details = match (change.kind, &old, &new) {
                (ChangeKind::Changed, Some(a), Some(b)) if a.is_object() && b.is_object() => {
                    Details::Fields(differences(a, b))
                }
                (ChangeKind::Changed, ..) => Details::Lines(lines_changed(
                    &String::from_utf8_lossy(&change.old),
                    &String::from_utf8_lossy(&change.new),
                )),
                _ => Details::Whole,
            };
            ObjectChange {
                area: area.to_string(),
                change: change.kind,
                kind,
                name,
                details,
            }
        })
        .collect()
}

/// One line per changed object (where it is, what it is), each difference in it on a line
/// of its own below (`+ element`, `- element`, `~ path: before → after`), then the flows
/// that change.
#[must_use]
pub fn summary(changes: &[Change]) -> String {
    let objects = objects(changes);
    let cells = |o: &ObjectChange| {
        [
            o.area.clone(),
            o.change.as_str().to_string(),
            o.kind.clone(),
            o.name.clone(),
        ]
    };
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            (objects.iter())
                .map(|o| cells(o)[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for object in &objects {
        let mut line = String::new();
        for (cell, width) in cells(object).iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        if let Details::Lines(count) = object.details {
            let _ = write!(line, "{count} line(s) differ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if let Details::Fields(differences) = &object.details {
            for difference in differences {
                let _ = writeln!(out, "    {}", difference_line(&object.kind, difference));
            }
        }
    }
    if let Some(summary) = changes.iter().find(|c| c.path == crate::SUMMARY) {
        out.push_str(&reachability_changes(&summary.old, &summary.new));
    }
    out
}

impl ObjectChange {
    /// The paths of the fields and lists that change (`spec.listeners[policy-a].port`,
    /// `spec.http[orders]`), for `diff --format json`; empty when the file is added or
    /// removed whole.
    #[must_use]
    pub fn fields(&self) -> Vec<String> {
        let Details::Fields(differences) = &self.details else {
            return Vec::new();
        };
        (differences.iter())
            .map(|difference| match difference {
                Difference::Changed { path, .. } | Difference::Lines { path, .. } => {
                    path.to_string()
                }
                Difference::Added { list, id, .. } | Difference::Removed { list, id, .. } => {
                    match id {
                        Some(id) => format!("{list}[{id}]"),
                        None => list.to_string(),
                    }
                }
                Difference::Reordered { list, .. } => list.to_string(),
            })
            .collect()
    }
}

/// A difference as one line: `+ element`, `- element`, `~ path: before → after`.
fn difference_line(kind: &str, difference: &Difference) -> String {
    match difference {
        Difference::Changed {
            path,
            before,
            after,
        } => format!("~ {path}: {} → {}", show(before), show(after)),
        Difference::Added { list, id, element } => {
            format!("+ {}", element_text(kind, list, id.as_deref(), element))
        }
        Difference::Removed { list, id, element } => {
            format!("- {}", element_text(kind, list, id.as_deref(), element))
        }
        Difference::Reordered {
            list,
            before,
            after,
        } => format!(
            "~ {list} order: {} → {}",
            before.join(", "),
            after.join(", ")
        ),
        Difference::Lines { path, count } => format!("~ {path}: {count} line(s) differ"),
    }
}

/// An added or removed element: a fabric flow as the fabric sees it, an element with an
/// identity by it, anything else by its value.
fn element_text(kind: &str, list: &Path, id: Option<&str>, element: &Value) -> String {
    if kind == "SDWANSiteFlows" && list.to_string() == "flows" {
        if let Some(flow) = flow_text(element) {
            return flow;
        }
    }
    match id {
        Some(id) => format!("{list}[{id}]"),
        None => format!("{list}: {}", show(element)),
    }
}

/// `flow cluster-2→cluster-1 10.10.1.10:31111 business secure/payment`: source and
/// destination cluster, the gateway address and port the fabric classifies by, the tunnel
/// and the services; and the egress gateway's addresses the flow leaves from, if any.
fn flow_text(flow: &Value) -> Option<String> {
    let text = |pointer: &str| flow.pointer(pointer).map(show);
    let services: Vec<String> = flow["services"].as_array()?.iter().map(show).collect();
    let mut line = format!(
        "flow {}→{} {}:{} {} {}",
        text("/source/cluster")?,
        text("/destination/cluster")?,
        text("/destination/address")?,
        text("/destination/port")?,
        text("/tunnel")?,
        services.join(",")
    );
    if let Some(addresses) = flow.pointer("/source/addresses").and_then(Value::as_array) {
        let addresses: Vec<String> = addresses.iter().map(show).collect();
        let _ = write!(line, " from egress {}", addresses.join(","));
    }
    Some(line)
}

/// The reachability matrix of a SUMMARY.md: its header row and its rows.
fn reachability_rows(bytes: &[u8]) -> (Option<String>, BTreeSet<String>) {
    let text = String::from_utf8_lossy(bytes);
    let section = (text.split("\n## Reachability\n").nth(1))
        .map(|section| section.split("\n## ").next().unwrap_or_default())
        .unwrap_or_default();
    let lines = section.lines().filter(|l| l.starts_with("| "));
    let header = lines.clone().find(|l| l.starts_with("| source |"));
    let rows = lines
        .filter(|l| !l.starts_with("| source |"))
        .map(str::to_owned)
        .collect();
    (header.map(str::to_owned), rows)
}

/// What changes for traffic: the rows of SUMMARY.md's reachability matrix that the new
/// render drops (`-`) or adds (`+`).
fn reachability_changes(old: &[u8], new: &[u8]) -> String {
    let ((_, before), (_, after)) = (reachability_rows(old), reachability_rows(new));
    let mut out = String::new();
    for row in before.difference(&after) {
        let _ = writeln!(out, "- flow {row}");
    }
    for row in after.difference(&before) {
        let _ = writeln!(out, "+ flow {row}");
    }
    if !out.is_empty() {
        out.insert_str(0, "reachability:\n");
    }
    out
}

/// Differences listed per object in the Markdown summary; the rest are counted.
const MARKDOWN_DIFFERENCES: usize = 20;

/// The review summary of `changes` in GitHub-flavoured Markdown, for a pull request's
/// comment or a CI job's summary: a table of the objects that change, with their
/// differences; the rows of the reachability matrix that go and come; and the unified diff,
/// folded.
#[must_use]
pub fn markdown(changes: &[Change]) -> String {
    let objects = objects(changes);
    let count = |kind: ChangeKind| changes.iter().filter(|c| c.kind == kind).count();
    let mut out = format!(
        "## mcwan: what this change renders differently\n\n{} file(s): {} added, {} changed, {} removed.\n\n",
        changes.len(),
        count(ChangeKind::Added),
        count(ChangeKind::Changed),
        count(ChangeKind::Removed)
    );
    out.push_str("| where | change | kind | name | what changes |\n|---|---|---|---|---|\n");
    for object in &objects {
        let what = match &object.details {
            Details::Whole => String::new(),
            Details::Lines(count) => format!("{count} line(s) differ"),
            Details::Fields(differences) => {
                let mut lines: Vec<String> = (differences.iter().take(MARKDOWN_DIFFERENCES))
                    .map(|d| markdown_cell(&difference_line(&object.kind, d)))
                    .collect();
                if differences.len() > MARKDOWN_DIFFERENCES {
                    lines.push(format!(
                        "… {} more",
                        differences.len() - MARKDOWN_DIFFERENCES
                    ));
                }
                lines.join("<br>")
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {what} |",
            markdown_cell(&object.area),
            object.change.as_str(),
            markdown_cell(&object.kind),
            markdown_cell(&object.name)
        );
    }
    if let Some(summary) = changes.iter().find(|c| c.path == crate::SUMMARY) {
        let (header_before, before) = reachability_rows(&summary.old);
        let (header_after, after) = reachability_rows(&summary.new);
        if before != after {
            out.push_str("\n### Reachability\n\nRows of the reachability matrix (SUMMARY.md) that this change removes (−) or adds (+).\n\n");
            if let Some(header) = header_after.or(header_before) {
                let columns = header.matches('|').count().saturating_sub(1);
                let _ = writeln!(out, "| |{}", header.trim_start_matches('|'));
                let _ = writeln!(out, "|---|{}", "---|".repeat(columns));
            }
            for row in before.difference(&after) {
                let _ = writeln!(out, "| − {row}");
            }
            for row in after.difference(&before) {
                let _ = writeln!(out, "| + {row}");
            }
        }
    }
    let diff = unified(changes);
    let fence = "`".repeat(longest_run(&diff, '`').max(2) + 1);
    let _ = write!(
        out,
        "\n<details><summary>Unified diff ({} lines)</summary>\n\n{fence}diff\n{diff}{fence}\n\n</details>\n",
        diff.lines().count()
    );
    out
}

/// Text for a Markdown table cell: nothing in it can end the cell, open HTML or format.
fn markdown_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The longest run of `c` in `text`.
fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for d in text.chars() {
        run = if d == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

fn parse(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    yaml_serde::from_str(text).ok()
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "∅".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_objects_and_changed_fields() {
        let changes = vec![
            Change {
                path: "cluster-1/mcw-system/gateway-mcw-ingress.yaml".into(),
                kind: ChangeKind::Changed,
                old: b"kind: Gateway\nmetadata: {name: mcw-ingress, namespace: mcw-system}\nspec: {listeners: [{name: high, port: 31111}]}\n".to_vec(),
                new: b"kind: Gateway\nmetadata: {name: mcw-ingress, namespace: mcw-system}\nspec: {listeners: [{name: high, port: 31115}]}\n".to_vec(),
            },
            Change { path: "SUMMARY.md".into(), kind: ChangeKind::Added, old: vec![], new: b"# x\n".to_vec() },
        ];
        let text = summary(&changes);
        assert_eq!(
            text,
            "cluster-1  changed  Gateway  mcw-system/mcw-ingress\n    ~ spec.listeners[high].port: 31111 → 31115\n-          added    file     SUMMARY.md\n"
        );
        let diff = unified(&changes);
        assert!(
            diff.contains("--- a/cluster-1/mcw-system/gateway-mcw-ingress.yaml")
                && diff.contains("+spec: {listeners: [{name: high, port: 31115}]}")
        );
        assert!(diff.contains("--- /dev/null\n+++ b/SUMMARY.md"));
        let objects = objects(&changes);
        assert_eq!(
            (
                objects[0].kind.as_str(),
                objects[0].name.as_str(),
                objects[0].fields()
            ),
            (
                "Gateway",
                "mcw-system/mcw-ingress",
                vec!["spec.listeners[high].port".to_string()]
            )
        );
        assert_eq!(
            (
                objects[1].change,
                objects[1].kind.as_str(),
                objects[1].name.as_str(),
                objects[1].fields().len()
            ),
            (ChangeKind::Added, "file", "SUMMARY.md", 0)
        );
    }

    fn changed(path: &str, old: &str, new: &str) -> Change {
        Change {
            path: path.into(),
            kind: ChangeKind::Changed,
            old: old.as_bytes().to_vec(),
            new: new.as_bytes().to_vec(),
        }
    }

    /// A route added to a VirtualService is one `+` line, whatever its place among the
    /// routes; an endpoint removed from a ServiceEntry is one `-` line.
    #[test]
    fn list_elements_are_added_and_removed_by_identity() {
        let routes = |names: &[&str]| {
            let http: Vec<String> = names
                .iter()
                .map(|n| format!("{{name: {n}, route: [{{destination: {{host: {n}.shop}}}}]}}"))
                .collect();
            format!("kind: VirtualService\nmetadata: {{name: mcw-shop, namespace: shop}}\nspec: {{http: [{}]}}\n", http.join(", "))
        };
        let endpoints = |addresses: &[&str]| {
            let endpoints: Vec<String> = addresses
                .iter()
                .map(|a| format!("{{address: '{a}', ports: {{http: 31111}}}}"))
                .collect();
            format!("kind: ServiceEntry\nmetadata: {{name: mcw-shop, namespace: shop}}\nspec: {{endpoints: [{}]}}\n", endpoints.join(", "))
        };
        let changes = [
            changed(
                "c/shop/virtualservice-mcw-shop.yaml",
                &routes(&["cart", "default"]),
                &routes(&["orders", "cart", "default"]),
            ),
            changed(
                "c/shop/serviceentry-mcw-shop.yaml",
                &endpoints(&["10.0.0.1", "10.0.0.2"]),
                &endpoints(&["10.0.0.2"]),
            ),
        ];
        let text = summary(&changes);
        assert_eq!(
            text,
            "c  changed  VirtualService  shop/mcw-shop\n    + spec.http[orders]\nc  changed  ServiceEntry    shop/mcw-shop\n    - spec.endpoints[10.0.0.1]\n"
        );
        let objects = objects(&changes);
        assert_eq!(
            objects[0].details,
            Details::Fields(vec![Difference::Added {
                list: Path(vec![
                    crate::value_diff::Step::Field("spec".into()),
                    crate::value_diff::Step::Field("http".into())
                ]),
                id: Some("orders".into()),
                element: serde_json::json!({"name": "orders", "route": [{"destination": {"host": "orders.shop"}}]}),
            }])
        );
    }

    /// A fabric flow reads as the fabric sees it: from where to which gateway, over which
    /// tunnel, for which services.
    #[test]
    fn fabric_flows_read_as_one_line() {
        let flows = |flows: &str| {
            format!("kind: SDWANSiteFlows\nmetadata: {{name: tokyo}}\nsite: 1\nflows: [{flows}]\n")
        };
        let flow = |to: &str, services: &str| {
            format!("{{policy: gold-policy, tunnel: gold, source: {{cluster: tokyo, site: 1}}, destination: {{cluster: {to}, site: 2, address: '10.0.0.9', port: 31001}}, services: [{services}]}}")
        };
        let changes = [changed(
            "sdwan/sites/tokyo/flows.yaml",
            &flows(&flow("paris", "shop/cart")),
            &flows(&format!(
                "{}, {}",
                flow("paris", "shop/cart, shop/checkout"),
                flow("berlin", "shop/checkout")
            )),
        )];
        assert_eq!(
            summary(&changes),
            "sdwan  changed  SDWANSiteFlows  tokyo\n    + flows[paris 10.0.0.9 gold-policy].services: shop/checkout\n    + flow tokyo→berlin 10.0.0.9:31001 gold shop/checkout\n"
        );
    }

    /// No value can end a Markdown cell or the diff's fence, and the reachability rows that
    /// go and come are listed under the matrix's header.
    #[test]
    fn markdown_escapes_cells_and_fences_the_diff() {
        let summary = |verdict: &str| {
            format!(
                "# x\n\n## Reachability\n\n| source | verdict |\n|---|---|\n| c1 | {verdict} |\n"
            )
        };
        let changes = vec![
            changed(
                "cluster-1/ns/configmap-x.yaml",
                "kind: ConfigMap\nmetadata: {name: x, namespace: ns}\ndata: {a: 'p|q'}\n",
                "kind: ConfigMap\nmetadata: {name: x, namespace: ns}\ndata: {a: '<b>````'}\n",
            ),
            changed(crate::SUMMARY, &summary("ok"), &summary("refused")),
        ];
        let text = markdown(&changes);
        assert!(
            text.contains("2 file(s): 0 added, 2 changed, 0 removed."),
            "{text}"
        );
        assert!(
            text.contains("\\~ data.a: p\\|q → &lt;b&gt;\\`\\`\\`\\`"),
            "{text}"
        );
        assert!(
            text.contains(
                "| | source | verdict |\n|---|---|---|\n| − | c1 | ok |\n| + | c1 | refused |"
            ),
            "{text}"
        );
        assert!(text.contains("`````diff\n"), "{text}");
    }
}
