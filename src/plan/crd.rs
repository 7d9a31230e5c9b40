//! The WANPolicy CRD's openAPIV3Schema, derived from the input JSON Schema so that the API
//! server and `mcwan validate` enforce the same contract.

use serde_json::{json, Map, Value};

/// Converts the WANPolicy input schema (JSON Schema 2020-12) into a structural OpenAPI v3
/// schema as Kubernetes accepts it: a `type` at every level, no `const`, no
/// `additionalProperties: false` (the API server prunes unknown fields instead), no
/// `uniqueItems` (`x-kubernetes-list-type: set` instead), and `exclusiveMinimum` as a
/// boolean. The rules are apiextensions' structural-schema rules (docs/mesh.md).
#[must_use]
pub fn wan_policy_schema(input: &Value) -> Value {
    json!({
        "type": "object",
        "description": input["description"],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(&input["properties"]["spec"]),
        },
    })
}

fn structural(schema: &Value) -> Value {
    let Value::Object(source) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in source {
        match key.as_str() {
            "properties" => {
                let properties = value
                    .as_object()
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), structural(v))).collect());
                out.insert(key.clone(), Value::Object(properties.unwrap_or_default()));
            }
            "items" => {
                out.insert(key.clone(), structural(value));
            }
            // The API server refuses `uniqueItems` in a CRD schema; a list of unique
            // scalars is `x-kubernetes-list-type: set` there.
            "uniqueItems" if *value == Value::Bool(true) => {
                out.insert("x-kubernetes-list-type".into(), Value::from("set"));
            }
            "exclusiveMinimum" => {
                out.insert("minimum".into(), value.clone());
                out.insert("exclusiveMinimum".into(), Value::Bool(true));
            }
            "type" | "required" | "description" | "minimum" | "maximum" | "minLength"
            | "maxLength" | "pattern" | "enum" | "default" | "minItems" | "maxItems" | "format" => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_schema_keeps_fields_and_drops_json_schema_only_keywords() {
        let input: Value =
            serde_json::from_str(include_str!("../../schemas/input/wanpolicy.json")).unwrap();
        let schema = wan_policy_schema(&input);
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["required"], json!(["tunnel", "port", "sla"]));
        assert_eq!(spec["properties"]["port"]["maximum"], json!(65535));
        let jitter = &spec["properties"]["sla"]["properties"]["jitterMs"];
        assert_eq!(jitter["exclusiveMinimum"], json!(true));
        assert_eq!(jitter["minimum"], json!(0));
        assert!(!schema.to_string().contains("additionalProperties"));
        assert!(!schema.to_string().contains("const"));
    }

    /// Regression: `retryOn.items` had an `enum` and no `type`, and `retryOn` had
    /// `uniqueItems`; the API server refused the CRD, so no WANPolicy could be created.
    /// tests/mesh.rs walks every rendered CRD for a type at every level.
    #[test]
    fn retry_on_is_a_typed_set() {
        let input: Value =
            serde_json::from_str(include_str!("../../schemas/input/wanpolicy.json")).unwrap();
        let schema = wan_policy_schema(&input);
        let retry_on = &schema["properties"]["spec"]["properties"]["resilience"]["properties"]
            ["retries"]["properties"]["retryOn"];
        assert_eq!(retry_on["x-kubernetes-list-type"], json!("set"));
        assert_eq!(retry_on["items"]["type"], json!("string"));
        assert!(retry_on.get("uniqueItems").is_none());
    }
}
