//! Field-level differences between two JSON values, for diagnostics and reviews. Pure.
//!
//! `leaf_differences` compares lists position by position, which suits two copies of one
//! declaration. `differences` is what a reviewer reads: list elements are matched by what
//! identifies them (a route by its `name`, an endpoint by its `address`, a fabric flow by
//! its destination and policy, a scalar by its value), so adding one route is one added
//! element, not every later route changed.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::source::pointer_segment;

/// Every leaf where `here` and `there` differ, as `(pointer, here, there)`; an absent
/// field is `Value::Null`. Numbers compare by value, so `50` equals `50.0`.
#[must_use]
pub fn leaf_differences(here: &Value, there: &Value) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    walk("", here, there, &mut out);
    out
}

fn walk(pointer: &str, here: &Value, there: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (here, there) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{pointer}/{}", pointer_segment(key));
                walk(
                    &child,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{pointer}/{i}"), x, y, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push((pointer.to_string(), a.clone(), b.clone())),
    }
}

/// One step from a value into a part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    /// A list element that has no identity, by its place in the new list.
    Index(usize),
    /// A list element by its identity (`IDENTITIES`).
    Id(String),
    /// Into the YAML document a string holds (a ConfigMap's patch).
    Embedded,
}

/// Where a difference is, printed as YAML reads: `spec.http[orders].timeout`,
/// `data.service|spec.ports[http].port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Step>);

impl Path {
    #[must_use]
    pub fn join(&self, step: Step) -> Path {
        let mut steps = self.0.clone();
        steps.push(step);
        Path(steps)
    }

    /// The steps of `self`, then those of `inner`.
    #[must_use]
    pub fn then(&self, inner: &Path) -> Path {
        Path(self.0.iter().chain(&inner.0).cloned().collect())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        let mut after_field = false;
        for step in &self.0 {
            match step {
                Step::Field(name) => {
                    if after_field {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Step::Index(i) => write!(f, "[{i}]")?,
                Step::Id(id) => write!(f, "[{id}]")?,
                Step::Embedded => f.write_str("|")?,
            }
            after_field = !matches!(step, Step::Embedded);
        }
        Ok(())
    }
}

impl Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One difference a reviewer reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Difference {
    /// A field, or a scalar at a place that is not a list element, whose value changes;
    /// an absent field is `null`.
    Changed {
        path: Path,
        before: Value,
        after: Value,
    },
    /// An element only the new `list` holds; `id` is its identity, if its list has one.
    Added {
        list: Path,
        id: Option<String>,
        element: Value,
    },
    /// An element only the old `list` holds.
    Removed {
        list: Path,
        id: Option<String>,
        element: Value,
    },
    /// The elements both versions hold are in another order: identities before and after.
    /// Order matters in some lists (the first matching route wins).
    Reordered {
        list: Path,
        before: Vec<String>,
        after: Vec<String>,
    },
    /// A multi-line string that is not a YAML document: how many lines differ.
    Lines { path: Path, count: usize },
}

/// What identifies an element of a list of objects: the first of these whose fields every
/// element on both sides has as scalars, and that no two elements of a side share. The
/// identity reads as the fields' values joined by the separator.
const IDENTITIES: &[(&[&str], &str)] = &[
    // A flow of `sdwan/sites/<cluster>/flows.yaml`: one per policy and gateway address.
    (
        &["/destination/cluster", "/destination/address", "/policy"],
        " ",
    ),
    (&["/namespace", "/name"], "/"),
    // A Gateway API parentRef: the same Gateway, another listener.
    (&["/name", "/sectionName"], " "),
    // Routes, listeners, ports, subsets, containers, clusters.
    (&["/name"], ""),
    // A ServiceEntry endpoint.
    (&["/address"], ""),
    // A Gateway address.
    (&["/value"], ""),
    // The SD-WAN classification's classes and sites.
    (&["/policy"], ""),
    (&["/cluster"], ""),
    // An HTTPRoute filter.
    (&["/type"], ""),
];

/// Every difference between `before` and `after`, lists matched element by element.
#[must_use]
pub fn differences(before: &Value, after: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    compare(&Path::default(), before, after, &mut out);
    out
}

fn compare(path: &Path, before: &Value, after: &Value, out: &mut Vec<Difference>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                compare(
                    &path.join(Step::Field(key.clone())),
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => match identities(a, b) {
            Some((ids_a, ids_b)) => compare_identified(path, (a, &ids_a), (b, &ids_b), out),
            None => compare_sequences(path, a, b, out),
        },
        (a, b) if same(a, b) => {}
        (Value::String(a), Value::String(b)) if a.contains('\n') || b.contains('\n') => {
            match (document(a), document(b)) {
                (Some(a), Some(b)) => {
                    let inner = differences(&a, &b);
                    let path = path.join(Step::Embedded);
                    out.extend(inner.into_iter().map(|d| d.under(&path)));
                }
                _ => out.push(Difference::Lines {
                    path: path.clone(),
                    count: lines_changed(a, b),
                }),
            }
        }
        (a, b) => out.push(Difference::Changed {
            path: path.clone(),
            before: a.clone(),
            after: b.clone(),
        }),
    }
}

/// The YAML mapping a string holds, if it holds one.
fn document(text: &str) -> Option<Value> {
    yaml_serde::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

/// How many lines a text diff of `a` and `b` adds or removes.
#[must_use]
pub fn lines_changed(a: &str, b: &str) -> usize {
    similar::TextDiff::from_lines(a, b)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .count()
}

impl Difference {
    /// The same difference, found inside the value at `outer`.
    fn under(self, outer: &Path) -> Difference {
        match self {
            Difference::Changed {
                path,
                before,
                after,
            } => Difference::Changed {
                path: outer.then(&path),
                before,
                after,
            },
            Difference::Added { list, id, element } => Difference::Added {
                list: outer.then(&list),
                id,
                element,
            },
            Difference::Removed { list, id, element } => Difference::Removed {
                list: outer.then(&list),
                id,
                element,
            },
            Difference::Reordered {
                list,
                before,
                after,
            } => Difference::Reordered {
                list: outer.then(&list),
                before,
                after,
            },
            Difference::Lines { path, count } => Difference::Lines {
                path: outer.then(&path),
                count,
            },
        }
    }
}

/// Numbers compare by value, so `50` equals `50.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The identities of both lists' elements, under the first rule of `IDENTITIES` that
/// applies to both; `None` when none does, or a list holds anything but objects.
fn identities(a: &[Value], b: &[Value]) -> Option<(Vec<String>, Vec<String>)> {
    let all: Vec<&Value> = a.iter().chain(b).collect();
    if all.is_empty() || !all.iter().all(|v| v.is_object()) {
        return None;
    }
    IDENTITIES.iter().find_map(|(fields, separator)| {
        let of = |list: &[Value]| -> Option<Vec<String>> {
            let ids = list
                .iter()
                .map(|element| identity(element, fields, separator))
                .collect::<Option<Vec<String>>>()?;
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            (unique.len() == ids.len()).then_some(ids)
        };
        Some((of(a)?, of(b)?))
    })
}

fn identity(element: &Value, fields: &[&str], separator: &str) -> Option<String> {
    let parts = fields
        .iter()
        .map(|field| match element.pointer(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()?;
    Some(parts.join(separator))
}

/// Elements matched by identity: removed ones in the old order, then changed and added
/// ones in the new order, then the order of the common ones if it changed.
fn compare_identified(
    path: &Path,
    (a, ids_a): (&[Value], &[String]),
    (b, ids_b): (&[Value], &[String]),
    out: &mut Vec<Difference>,
) {
    let index = |ids: &[String]| -> BTreeMap<String, usize> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect()
    };
    let (in_a, in_b) = (index(ids_a), index(ids_b));
    for (element, id) in a.iter().zip(ids_a) {
        if !in_b.contains_key(id) {
            out.push(Difference::Removed {
                list: path.clone(),
                id: Some(id.clone()),
                element: element.clone(),
            });
        }
    }
    for (element, id) in b.iter().zip(ids_b) {
        match in_a.get(id) {
            Some(&i) => compare(&path.join(Step::Id(id.clone())), &a[i], element, out),
            None => out.push(Difference::Added {
                list: path.clone(),
                id: Some(id.clone()),
                element: element.clone(),
            }),
        }
    }
    let common_a: Vec<String> = ids_a
        .iter()
        .filter(|id| in_b.contains_key(*id))
        .cloned()
        .collect();
    let common_b: Vec<String> = ids_b
        .iter()
        .filter(|id| in_a.contains_key(*id))
        .cloned()
        .collect();
    if common_a != common_b {
        out.push(Difference::Reordered {
            list: path.clone(),
            before: common_a,
            after: common_b,
        });
    }
}

/// Elements without identity, matched by value as a text diff matches lines: the ones
/// only one side holds are removed or added, except that a run of objects (or lists)
/// replaced by as many is compared pair by pair, by position.
fn compare_sequences(path: &Path, a: &[Value], b: &[Value], out: &mut Vec<Difference>) {
    let key = |v: &Value| v.to_string();
    let ops = similar::capture_diff_slices_by_key(similar::Algorithm::Myers, a, b, key);
    let removed = |out: &mut Vec<Difference>, range: std::ops::Range<usize>| {
        for element in &a[range] {
            out.push(Difference::Removed {
                list: path.clone(),
                id: None,
                element: element.clone(),
            });
        }
    };
    let added = |out: &mut Vec<Difference>, range: std::ops::Range<usize>| {
        for element in &b[range] {
            out.push(Difference::Added {
                list: path.clone(),
                id: None,
                element: element.clone(),
            });
        }
    };
    for op in ops {
        match op {
            similar::DiffOp::Equal { .. } => {}
            similar::DiffOp::Delete {
                old_index, old_len, ..
            } => removed(out, old_index..old_index + old_len),
            similar::DiffOp::Insert {
                new_index, new_len, ..
            } => added(out, new_index..new_index + new_len),
            similar::DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                let (old, new) = (
                    &a[old_index..old_index + old_len],
                    &b[new_index..new_index + new_len],
                );
                let containers = old.iter().chain(new).all(|v| v.is_object() || v.is_array());
                if old_len == new_len && containers {
                    for (i, (x, y)) in old.iter().zip(new).enumerate() {
                        compare(&path.join(Step::Index(new_index + i)), x, y, out);
                    }
                } else {
                    removed(out, old_index..old_index + old_len);
                    added(out, new_index..new_index + new_len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_changed_added_and_removed_leaves() {
        let a = json!({"spec": {"port": 1, "sla": {"jitterMs": 50}, "list": [1, 2], "gone": true}});
        let b = json!({"spec": {"port": 2, "sla": {"jitterMs": 50.0}, "list": [1, 3], "new": "x"}});
        let found: Vec<String> = leaf_differences(&a, &b)
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        assert_eq!(
            found,
            ["/spec/gone", "/spec/list/1", "/spec/new", "/spec/port"]
        );
    }

    /// Each difference as one line, as the tests read them.
    fn lines(before: &Value, after: &Value) -> Vec<String> {
        differences(before, after)
            .into_iter()
            .map(|d| match d {
                Difference::Changed {
                    path,
                    before,
                    after,
                } => format!("~ {path}: {before} → {after}"),
                Difference::Added { list, id, element } => {
                    format!("+ {list} {}", id.unwrap_or_else(|| element.to_string()))
                }
                Difference::Removed { list, id, element } => {
                    format!("- {list} {}", id.unwrap_or_else(|| element.to_string()))
                }
                Difference::Reordered {
                    list,
                    before,
                    after,
                } => format!("order {list}: {} → {}", before.join(","), after.join(",")),
                Difference::Lines { path, count } => format!("~ {path}: {count} lines"),
            })
            .collect()
    }

    /// A route inserted first changes no other route: routes match by name.
    #[test]
    fn routes_match_by_name_not_position() {
        let a = json!({"spec": {"http": [
            {"name": "orders", "timeout": "1s"},
            {"name": "default", "timeout": "2s"},
        ]}});
        let b = json!({"spec": {"http": [
            {"name": "payments", "timeout": "5s"},
            {"name": "orders", "timeout": "3s"},
            {"name": "default", "timeout": "2s"},
        ]}});
        assert_eq!(
            lines(&a, &b),
            [
                "+ spec.http payments",
                "~ spec.http[orders].timeout: \"1s\" → \"3s\""
            ]
        );
        assert_eq!(
            lines(&b, &a),
            [
                "- spec.http payments",
                "~ spec.http[orders].timeout: \"3s\" → \"1s\""
            ]
        );
    }

    /// The first matching route wins: swapping two routes is a change a reviewer sees.
    #[test]
    fn a_new_order_is_a_difference() {
        let a = json!({"http": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
        let b = json!({"http": [{"name": "b"}, {"name": "a"}, {"name": "d"}]});
        assert_eq!(
            lines(&a, &b),
            ["- http c", "+ http d", "order http: a,b → b,a"]
        );
    }

    #[test]
    fn endpoints_match_by_address_and_flows_by_destination_and_policy() {
        let endpoint =
            |address: &str, port: u16| json!({"address": address, "ports": {"http": port}});
        let a = json!({"endpoints": [endpoint("10.0.0.1", 1), endpoint("10.0.0.2", 1)]});
        let b = json!({"endpoints": [endpoint("10.0.0.2", 2)]});
        assert_eq!(
            lines(&a, &b),
            [
                "- endpoints 10.0.0.1",
                "~ endpoints[10.0.0.2].ports.http: 1 → 2"
            ]
        );
        let flow = |to: &str, services: &[&str]| {
            json!({"policy": "gold", "tunnel": "gold", "source": {"cluster": "a", "site": 1},
                "destination": {"cluster": to, "site": 2, "address": "10.0.0.9", "port": 31001},
                "services": services})
        };
        let a = json!({"flows": [flow("b", &["shop/cart"])]});
        let b = json!({"flows": [flow("b", &["shop/cart", "shop/checkout"]), flow("c", &["shop/cart"])]});
        assert_eq!(
            lines(&a, &b),
            [
                "+ flows[b 10.0.0.9 gold].services \"shop/checkout\"",
                "+ flows c 10.0.0.9 gold"
            ]
        );
    }

    /// Scalars match by value; objects without identity pair by position where a run of
    /// them is replaced by as many.
    #[test]
    fn scalars_match_by_value_and_anonymous_objects_by_position() {
        let a = json!({"hosts": ["a", "b", "c"], "rules": [{"from": ["x"]}, {"to": 1}]});
        let b = json!({"hosts": ["b", "c", "d"], "rules": [{"from": ["x", "y"]}, {"to": 1}]});
        assert_eq!(
            lines(&a, &b),
            ["- hosts \"a\"", "+ hosts \"d\"", "+ rules[0].from \"y\""]
        );
    }

    /// Identities must be unique on each side, or elements would be paired wrongly.
    #[test]
    fn a_shared_name_is_no_identity() {
        let a = json!({"refs": [{"name": "gw", "sectionName": "high"}, {"name": "gw", "sectionName": "low"}]});
        let b = json!({"refs": [{"name": "gw", "sectionName": "low"}]});
        assert_eq!(lines(&a, &b), ["- refs gw high"]);
        let a = json!({"list": [{"name": "x", "v": 1}, {"name": "x", "v": 2}]});
        let b = json!({"list": [{"name": "x", "v": 2}]});
        assert_eq!(lines(&a, &b), ["- list {\"name\":\"x\",\"v\":1}"]);
    }

    /// A ConfigMap's patch is a YAML document in a string: compared inside, field by field.
    #[test]
    fn documents_in_strings_are_compared_inside() {
        let a = json!({"data": {"service": "spec:\n  ports:\n  - name: http\n    port: 1\n", "notes": "a\nb\n"}});
        let b = json!({"data": {"service": "spec:\n  ports:\n  - name: http\n    port: 2\n", "notes": "a\nc\n"}});
        assert_eq!(
            lines(&a, &b),
            [
                "~ data.notes: 2 lines",
                "~ data.service|spec.ports[http].port: 1 → 2"
            ]
        );
    }

    #[test]
    fn paths_read_like_yaml() {
        let path = Path(vec![
            Step::Field("data".into()),
            Step::Field("service".into()),
            Step::Embedded,
            Step::Field("spec".into()),
            Step::Field("ports".into()),
            Step::Id("http".into()),
            Step::Field("port".into()),
            Step::Index(0),
        ]);
        assert_eq!(path.to_string(), "data.service|spec.ports[http].port[0]");
        assert_eq!(Path::default().to_string(), "(document)");
    }
}
