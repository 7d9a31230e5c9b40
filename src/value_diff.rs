//! Field-level differences between two JSON values, for diagnostics and reviews. Pure.

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
}
