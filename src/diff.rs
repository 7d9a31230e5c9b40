//! What a render would change in OUT, for `check` and `diff`: a per-object summary with
//! the fields that change, and a unified diff. Pure: the bytes come from `emit`.

use std::fmt::Write;

use serde_json::Value;

use crate::schema::field_path;
use crate::value_diff::leaf_differences;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// One line per changed object: where it is, what it is, and which fields change.
#[must_use]
pub fn summary(changes: &[Change]) -> String {
    let mut rows = Vec::new();
    for change in changes {
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
        let fields = match (change.kind, &old, &new) {
            (ChangeKind::Changed, Some(a), Some(b)) if a.is_object() && b.is_object() => {
                field_changes("", a, b).join("; ")
            }
            (ChangeKind::Changed, ..) => lines_changed(&change.old, &change.new),
            _ => String::new(),
        };
        rows.push([
            area.to_string(),
            change.kind.as_str().to_string(),
            kind,
            name,
            fields,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(4) {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        line.push_str(&row[4]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let Some(summary) = changes.iter().find(|c| c.path == crate::SUMMARY) {
        out.push_str(&reachability_changes(&summary.old, &summary.new));
    }
    out
}

/// One changed file as data, for `diff --format json`: the object it holds and the paths of
/// its fields that change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Within OUT.
    pub path: String,
    pub change: ChangeKind,
    /// The object's kind and `namespace/name`; for a file that holds no object, `file` and
    /// its path below its top directory, as the summary names it.
    pub kind: String,
    pub name: String,
    /// The changed fields (`spec.listeners[0].port`); a field holding embedded YAML adds the
    /// path inside it after `|`. Empty unless the file changes and holds an object on both
    /// sides.
    pub fields: Vec<String>,
}

/// The summary's facts, one `Row` per change, without the values.
#[must_use]
pub fn rows(changes: &[Change]) -> Vec<Row> {
    let mut rows = Vec::new();
    for change in changes {
        let (old, new) = (parse(&change.old), parse(&change.new));
        let rest = (change.path.split_once('/')).map_or(change.path.as_str(), |(_, r)| r);
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
        let fields = match (change.kind, &old, &new) {
            (ChangeKind::Changed, Some(a), Some(b)) if a.is_object() && b.is_object() => {
                changed_fields("", a, b)
            }
            _ => Vec::new(),
        };
        rows.push(Row {
            path: change.path.clone(),
            change: change.kind,
            kind,
            name,
            fields,
        });
    }
    rows
}

/// The path of every changed field, looking into embedded YAML as `field_changes` does.
fn changed_fields(prefix: &str, a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (pointer, before, after) in leaf_differences(a, b) {
        let path = format!("{prefix}{}", field_path(&pointer));
        let inner = match (&before, &after) {
            (Value::String(x), Value::String(y)) if x.contains('\n') || y.contains('\n') => {
                parse(x.as_bytes())
                    .zip(parse(y.as_bytes()))
                    .filter(|(x, y)| x.is_object() && y.is_object())
            }
            _ => None,
        };
        match inner {
            Some((x, y)) => out.extend(changed_fields(&format!("{path}|"), &x, &y)),
            None => out.push(path),
        }
    }
    out
}

/// What changes for traffic: the rows of SUMMARY.md's reachability matrix that the new
/// render drops (`-`) or adds (`+`).
fn reachability_changes(old: &[u8], new: &[u8]) -> String {
    let rows = |bytes: &[u8]| -> std::collections::BTreeSet<String> {
        let text = String::from_utf8_lossy(bytes);
        text.split("\n## Reachability\n")
            .nth(1)
            .map(|section| section.split("\n## ").next().unwrap_or_default())
            .into_iter()
            .flat_map(str::lines)
            .filter(|l| l.starts_with("| ") && !l.starts_with("| source |"))
            .map(str::to_owned)
            .collect()
    };
    let (before, after) = (rows(old), rows(new));
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

/// `path: before → after` for every changed field. A string holding embedded YAML (a
/// ConfigMap's patch) is compared field by field inside it, as `field|inner.path`.
fn field_changes(prefix: &str, a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (pointer, before, after) in leaf_differences(a, b) {
        let path = format!("{prefix}{}", field_path(&pointer));
        match (&before, &after) {
            (Value::String(x), Value::String(y)) if x.contains('\n') || y.contains('\n') => {
                match (parse(x.as_bytes()), parse(y.as_bytes())) {
                    (Some(inner_a), Some(inner_b))
                        if inner_a.is_object() && inner_b.is_object() =>
                    {
                        out.extend(field_changes(&format!("{path}|"), &inner_a, &inner_b));
                    }
                    _ => out.push(format!(
                        "{path}: {}",
                        lines_changed(x.as_bytes(), y.as_bytes())
                    )),
                }
            }
            _ => out.push(format!("{path}: {} → {}", show(&before), show(&after))),
        }
    }
    out
}

fn lines_changed(old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
    let changed = diff
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .count();
    format!("{changed} line(s) differ")
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
                old: b"kind: Gateway\nmetadata: {name: mcw-ingress, namespace: mcw-system}\nspec: {listeners: [{port: 31111}]}\n".to_vec(),
                new: b"kind: Gateway\nmetadata: {name: mcw-ingress, namespace: mcw-system}\nspec: {listeners: [{port: 31115}]}\n".to_vec(),
            },
            Change { path: "SUMMARY.md".into(), kind: ChangeKind::Added, old: vec![], new: b"# x\n".to_vec() },
        ];
        let text = summary(&changes);
        assert!(text.contains("cluster-1  changed  Gateway  mcw-system/mcw-ingress  spec.listeners[0].port: 31111 → 31115"), "{text}");
        assert!(
            text.contains("-          added    file     SUMMARY.md"),
            "{text}"
        );
        let diff = unified(&changes);
        assert!(
            diff.contains("--- a/cluster-1/mcw-system/gateway-mcw-ingress.yaml")
                && diff.contains("+spec: {listeners: [{port: 31115}]}")
        );
        assert!(diff.contains("--- /dev/null\n+++ b/SUMMARY.md"));
        let rows = rows(&changes);
        assert_eq!(
            (
                rows[0].kind.as_str(),
                rows[0].name.as_str(),
                rows[0].fields.clone()
            ),
            (
                "Gateway",
                "mcw-system/mcw-ingress",
                vec!["spec.listeners[0].port".to_string()]
            )
        );
        assert_eq!(
            (rows[1].change, rows[1].kind.as_str(), rows[1].name.as_str()),
            (ChangeKind::Added, "file", "SUMMARY.md")
        );
    }
}
