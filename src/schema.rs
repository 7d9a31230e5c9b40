//! JSON Schemas of the input kinds and of every rendered kind, embedded in the binary so
//! that `mcwan` needs nothing at run time but its inputs. Each schema is compiled once.
//! Schemas never resolve a remote `$ref`: `jsonschema` is built without its HTTP client.

use std::collections::BTreeMap;
use std::fmt::Write;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value;

use crate::diagnostic::did_you_mean;
use crate::kind::{self, Kind};

/// The input schemas, by file name under `schemas/input/`; `Kind::schema` names each
/// kind's.
pub const INPUT: &[(&str, &str)] = crate::embedded::INPUT_SCHEMA_FILES;

/// The output schemas, by file name under `schemas/output/`: the upstream APIs' fields,
/// and mcwan's own formats. A rendered WANPolicy meets the same schema as an input one.
pub const OUTPUT: &[(&str, &str)] = crate::embedded::OUTPUT_SCHEMA_FILES;

/// The embedded file `name` of `files`.
fn embedded(files: &[(&'static str, &'static str)], name: &str) -> (&'static str, &'static str) {
    files
        .iter()
        .copied()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no embedded schema {name}"))
}

/// What is wrong with one value, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A field the schema does not define, with the closest defined name.
    UnknownField {
        pointer: String,
        suggestion: Option<String>,
    },
    MissingField {
        pointer: String,
        field: String,
    },
    Invalid {
        pointer: String,
        message: String,
    },
}

struct Compiled {
    api_versions: Vec<String>,
    source: Value,
    validator: Validator,
}

/// Compiled schemas, indexed by kind and then by the apiVersions each accepts.
pub struct Schemas {
    by_kind: BTreeMap<String, Vec<Compiled>>,
}

/// The result of looking up a document's schema.
pub enum Lookup<'a> {
    Found(&'a Validator, &'a Value),
    UnknownKind { suggestion: Option<String> },
    UnknownVersion { accepted: Vec<String> },
}

impl Schemas {
    /// Compiles embedded schemas.
    ///
    /// # Panics
    /// When an embedded schema does not compile: a bug in mcwan, caught by the unit test
    /// below, never by input.
    #[must_use]
    pub fn compile(files: &[(&str, &str)]) -> Self {
        let parsed = files.iter().map(|(name, text)| {
            let source: Value =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("schema {name}: {e}"));
            ((*name).to_string(), source)
        });
        Self::compile_values(parsed)
    }

    fn compile_values(files: impl IntoIterator<Item = (String, Value)>) -> Self {
        let mut by_kind: BTreeMap<String, Vec<Compiled>> = BTreeMap::new();
        for (name, source) in files {
            let validator =
                jsonschema::validator_for(&source).unwrap_or_else(|e| panic!("schema {name}: {e}"));
            let properties = &source["properties"];
            let kind = properties["kind"]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("schema {name}: no kind const"));
            let api_version = &properties["apiVersion"];
            let api_versions = match (&api_version["const"], &api_version["enum"]) {
                (Value::String(one), _) => vec![one.clone()],
                (_, Value::Array(many)) => many
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => panic!("schema {name}: no apiVersion const or enum"),
            };
            by_kind.entry(kind.to_string()).or_default().push(Compiled {
                api_versions,
                source,
                validator,
            });
        }
        Schemas { by_kind }
    }

    /// Compiles every input schema: mcwan's kinds, and the Istio kinds users may write in a
    /// cluster directory to pass through, at every version Istio serves them.
    ///
    /// # Panics
    /// When an embedded schema does not compile (a bug in mcwan, caught by unit tests).
    #[must_use]
    pub fn input() -> Self {
        let parse = |(name, text): (&str, &str)| -> (String, Value) {
            (
                name.to_string(),
                serde_json::from_str(text).unwrap_or_else(|e| panic!("schema {name}: {e}")),
            )
        };
        let files = Kind::ALL.iter().map(|kind| match kind.schema() {
            kind::Schema::Input(name) => parse(embedded(INPUT, name)),
            kind::Schema::PassThrough(name) => {
                let (name, mut schema) = parse(embedded(OUTPUT, name));
                schema["properties"]["apiVersion"] =
                    serde_json::json!({ "enum": kind::PASS_THROUGH_VERSIONS });
                (name, schema)
            }
        });
        Self::compile_values(files)
    }

    /// Compiles every schema a rendered object may be checked against.
    ///
    /// # Panics
    /// When an embedded schema does not compile (a bug in mcwan, caught by unit tests).
    #[must_use]
    pub fn output() -> Self {
        let wan_policy = embedded(INPUT, "wanpolicy.json");
        Self::compile(&[OUTPUT, &[wan_policy]].concat())
    }

    #[must_use]
    pub fn lookup(&self, api_version: &str, kind: &str) -> Lookup<'_> {
        let Some(candidates) = self.by_kind.get(kind) else {
            let suggestion =
                did_you_mean(kind, self.by_kind.keys().map(String::as_str)).map(str::to_owned);
            return Lookup::UnknownKind { suggestion };
        };
        candidates
            .iter()
            .find(|c| c.api_versions.iter().any(|v| v == api_version))
            .map_or_else(
                || Lookup::UnknownVersion {
                    accepted: candidates
                        .iter()
                        .flat_map(|c| c.api_versions.clone())
                        .collect(),
                },
                |c| Lookup::Found(&c.validator, &c.source),
            )
    }

    /// Every schema, for `mcwan schema`.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.by_kind
            .iter()
            .flat_map(|(kind, all)| all.iter().map(move |c| (kind.as_str(), &c.source)))
    }
}

/// Validates `value`, turning each schema error into a `Violation` that names the field.
#[must_use]
pub fn violations(validator: &Validator, schema: &Value, value: &Value) -> Vec<Violation> {
    let mut found = Vec::new();
    for error in validator.iter_errors(value) {
        let pointer = error.instance_path().as_str().to_string();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let schema_pointer = error.schema_path().as_str();
                let parent = schema_pointer
                    .strip_suffix("/additionalProperties")
                    .unwrap_or(schema_pointer);
                let known: Vec<&str> = schema
                    .pointer(parent)
                    .and_then(|s| s["properties"].as_object())
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                for field in unexpected {
                    found.push(Violation::UnknownField {
                        pointer: format!("{pointer}/{}", crate::source::pointer_segment(field)),
                        suggestion: did_you_mean(field, known.iter().copied()).map(str::to_owned),
                    });
                }
            }
            ValidationErrorKind::Required { property } => found.push(Violation::MissingField {
                pointer,
                field: property.as_str().unwrap_or_default().to_string(),
            }),
            _ => found.push(Violation::Invalid {
                pointer,
                message: shortened(&error.to_string(), error.instance()),
            }),
        }
    }
    found
}

/// A schema message without a long offending value echoed in it: the value is at the
/// field's location already, and a hostile file may make it megabytes long.
fn shortened(message: &str, instance: &Value) -> String {
    const LONGEST: usize = 60;
    let shown = instance.to_string();
    if shown.len() <= LONGEST {
        return message.to_string();
    }
    let summary = match instance {
        Value::Array(items) => format!("a list of {} items", items.len()),
        Value::Object(fields) => format!("an object of {} fields", fields.len()),
        Value::String(s) => format!("a string of {} characters", s.chars().count()),
        _ => "the value".to_string(),
    };
    message.replacen(&shown, &summary, 1)
}

/// `/spec/clusters/0/name` as `spec.clusters[0].name`, the way users read field paths.
#[must_use]
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            let _ = write!(out, "[{segment}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile() {
        let input = Schemas::input();
        assert!(matches!(
            input.lookup("mcw.l7mp.io/v1alpha1", "WANPolicy"),
            Lookup::Found(..)
        ));
        let output = Schemas::output();
        assert!(matches!(
            output.lookup("mcw.l7mp.io/v1alpha1", "WANPolicy"),
            Lookup::Found(..)
        ));
        assert!(matches!(
            output.lookup("gateway.networking.k8s.io/v1", "Gateway"),
            Lookup::Found(..)
        ));
    }

    #[test]
    fn unknown_fields_get_a_suggestion() {
        let schemas = Schemas::input();
        let Lookup::Found(validator, schema) = schemas.lookup("mcw.l7mp.io/v1alpha1", "WANPolicy")
        else {
            panic!()
        };
        let value = serde_json::json!({
            "apiVersion": "mcw.l7mp.io/v1alpha1", "kind": "WANPolicy", "metadata": {"name": "x"},
            "spec": {"tunnel": "t", "port": 70000, "sla": {"jitter-ms": 1, "latencyMs": 1, "lossPercent": 1}}
        });
        let found = violations(validator, schema, &value);
        assert!(found.contains(&Violation::UnknownField {
            pointer: "/spec/sla/jitter-ms".into(),
            suggestion: Some("jitterMs".into())
        }));
        assert!(found.contains(&Violation::MissingField {
            pointer: "/spec/sla".into(),
            field: "jitterMs".into()
        }));
        assert!(found
            .iter()
            .any(|v| matches!(v, Violation::Invalid { pointer, .. } if pointer == "/spec/port")));
    }

    #[test]
    fn field_paths_read_like_yaml() {
        assert_eq!(field_path("/spec/clusters/0/name"), "spec.clusters[0].name");
        assert_eq!(
            field_path("/metadata/annotations/mcw.l7mp.io~1port"),
            "metadata.annotations.mcw.l7mp.io/port"
        );
    }
}
