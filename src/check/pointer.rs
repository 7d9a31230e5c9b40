//! Where in a document a diagnostic points: JSON pointers built field by field, never
//! formatted by hand, and checked against the document's schema in debug builds. A pointer
//! the schema cannot have is a bug in a pass (a typo would silently point at a parent field);
//! one the schema allows but the document lacks points at its nearest present parent.

use serde_json::Value;

use crate::diagnostic::Location;
use crate::schema::{Lookup, Schemas};
use crate::source::{pointer_segment, Sources};

/// A JSON pointer (RFC 6901) into one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(String);

/// The pointer of a path of plain field names, `"spec.clusters"` for `/spec/clusters`; the
/// whole document for `""`. Keys with dots or slashes (annotations) take `Pointer::key`.
#[must_use]
pub fn fields(path: &str) -> Pointer {
    path.split('.')
        .filter(|s| !s.is_empty())
        .fold(Pointer(String::new()), Pointer::key)
}

impl Pointer {
    /// The field `key` of this object.
    #[must_use]
    pub fn key(mut self, key: &str) -> Self {
        self.0.push('/');
        self.0.push_str(&pointer_segment(key));
        self
    }

    /// Item `index` of this list.
    #[must_use]
    pub fn index(mut self, index: usize) -> Self {
        self.0.push('/');
        self.0.push_str(&index.to_string());
        self
    }

    /// A path of plain field names below this one.
    #[must_use]
    pub fn fields(self, path: &str) -> Self {
        path.split('.')
            .filter(|s| !s.is_empty())
            .fold(self, Pointer::key)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What every pass reads to locate a problem: the documents, and their schemas for the
/// debug check of each pointer asked for.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub sources: &'a Sources,
    pub schemas: &'a Schemas,
}

impl Input<'_> {
    /// Where `pointer` is in document `doc`, or its nearest present parent.
    ///
    /// # Panics
    /// In debug builds, when the schema of the document's kind cannot have `pointer`.
    #[must_use]
    pub fn at(&self, doc: usize, pointer: &Pointer) -> Location {
        if cfg!(debug_assertions) {
            let value = &self.sources.documents[doc].value;
            if let Lookup::Found(_, schema) = self.schemas.lookup(
                value["apiVersion"].as_str().unwrap_or_default(),
                value["kind"].as_str().unwrap_or_default(),
            ) {
                assert!(
                    schema_allows(schema, pointer.as_str()),
                    "pointer `{}` is not a field of {}",
                    pointer.as_str(),
                    value["kind"]
                );
            }
        }
        self.sources.at(doc, pointer.as_str())
    }
}

/// Whether a document valid against `schema` may have a value at `pointer`.
#[must_use]
pub fn schema_allows(schema: &Value, pointer: &str) -> bool {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    allows(schema, &segments)
}

fn allows(schema: &Value, segments: &[String]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return true;
    };
    let branches = ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|k| schema[*k].as_array())
        .flatten();
    let mut children = Vec::new();
    if let Some(child) = schema["properties"].get(first.as_str()) {
        children.push(child);
    }
    match &schema["additionalProperties"] {
        Value::Object(_) => children.push(&schema["additionalProperties"]),
        Value::Bool(false) => {}
        // Anything may be nested below an open object without declared properties.
        _ if schema["type"] == "object" && schema["properties"].is_null() => return true,
        _ => {}
    }
    if first.parse::<usize>().is_ok() && schema["items"].is_object() {
        children.push(&schema["items"]);
    }
    children.iter().any(|child| allows(child, rest))
        || branches
            .into_iter()
            .any(|branch| allows_branch(branch, segments))
}

/// A `oneOf` branch that only requires fields adds none of its own.
fn allows_branch(branch: &Value, segments: &[String]) -> bool {
    let constrains = [
        "properties",
        "items",
        "additionalProperties",
        "oneOf",
        "anyOf",
        "allOf",
    ]
    .iter()
    .any(|k| !branch[*k].is_null());
    constrains && allows(branch, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_keys() {
        let pointer = fields("metadata.annotations").key("mcw.l7mp.io/port");
        assert_eq!(pointer.as_str(), "/metadata/annotations/mcw.l7mp.io~1port");
        assert_eq!(
            fields("spec.clusters")
                .index(2)
                .fields("gateway.address")
                .as_str(),
            "/spec/clusters/2/gateway/address"
        );
        assert_eq!(fields("").as_str(), "");
    }

    #[test]
    fn schemas_tell_possible_fields_from_typos() {
        let schemas = Schemas::input();
        let Lookup::Found(_, clusterset) = schemas.lookup("mcw.l7mp.io/v1alpha1", "ClusterSet")
        else {
            panic!("no ClusterSet schema")
        };
        assert!(schema_allows(
            clusterset,
            "/spec/clusters/0/gateway/nodeAddresses/1"
        ));
        assert!(schema_allows(clusterset, "/spec/defaultWANPolicy"));
        assert!(!schema_allows(
            clusterset,
            "/spec/clusters/0/gateway/adress"
        ));
        assert!(!schema_allows(clusterset, "/spec/clusters/name"));
        let Lookup::Found(_, export) =
            schemas.lookup("multicluster.x-k8s.io/v1alpha1", "ServiceExport")
        else {
            panic!("no ServiceExport schema")
        };
        assert!(schema_allows(
            export,
            "/metadata/annotations/mcw.l7mp.io~1port"
        ));
        let Lookup::Found(_, route) = schemas.lookup("mcw.l7mp.io/v1alpha1", "WANRoute") else {
            panic!("no WANRoute schema")
        };
        assert!(schema_allows(route, "/spec/rules/0/wanPolicy"));
        assert!(schema_allows(route, "/spec/default/wanPolicy"));
        assert!(schema_allows(
            route,
            "/spec/rules/0/matches/1/headers/0/value"
        ));
        assert!(!schema_allows(route, "/spec/rules/0/action/wanPolicy"));
    }
}
