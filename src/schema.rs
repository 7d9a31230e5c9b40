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
        /// How to fix the value, where the error says enough to know.
        hint: Option<String>,
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

/// The `$id` of the bundle of every input kind's schema.
pub const BUNDLE_ID: &str = "urn:mcw.l7mp.io:mcwan:declarations";

impl Schemas {
    /// One schema for every input kind, for files that mix kinds: each kind's schema under
    /// `$defs`, applied to the documents whose `kind` names it, and `kind` one of them.
    #[must_use]
    pub fn bundle(&self) -> Value {
        let mut definitions = serde_json::Map::new();
        let mut cases = Vec::new();
        for (kind, source) in self.sources() {
            let mut schema = source.clone();
            if let Some(fields) = schema.as_object_mut() {
                fields.remove("$schema");
            }
            definitions.insert(kind.to_string(), schema);
            cases.push(serde_json::json!({
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": format!("#/$defs/{kind}")},
            }));
        }
        let kinds: Vec<&String> = definitions.keys().collect();
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": BUNDLE_ID,
            "title": "mcwan declarations",
            "description": "Any document of an mcwan declarations repository, checked against the schema of its kind.",
            "type": "object",
            "required": ["apiVersion", "kind"],
            "properties": {"kind": {"enum": kinds}},
            "allOf": cases,
            "$defs": definitions,
        })
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
            kind => found.push(Violation::Invalid {
                pointer,
                message: shortened(&error.to_string(), error.instance()),
                hint: value_hint(kind, error.instance(), schema, error.schema_path().as_str()),
            }),
        }
    }
    found
}

/// A hint for a value the schema refuses: quoting a scalar YAML read as another type, the
/// allowed value that differs only in case or spelling, or the field's description for a
/// value that does not match its pattern.
fn value_hint(
    kind: &ValidationErrorKind,
    instance: &Value,
    schema: &Value,
    schema_pointer: &str,
) -> Option<String> {
    match kind {
        ValidationErrorKind::Type { .. } => {
            let wanted = schema.pointer(schema_pointer)?;
            let scalar = matches!(instance, Value::Number(_) | Value::Bool(_) | Value::Null);
            (scalar && *wanted == "string").then(|| {
                format!(
                    "quote it (`\"{instance}\"`): unquoted, YAML reads it as a {}",
                    json_type(instance)
                )
            })
        }
        ValidationErrorKind::Enum { options } => {
            let given = instance.as_str()?;
            let allowed = options.as_array()?.iter().filter_map(Value::as_str);
            did_you_mean(given, allowed).map(|s| {
                if s.eq_ignore_ascii_case(given) {
                    format!("did you mean `{s}`? values are case-sensitive")
                } else {
                    format!("did you mean `{s}`?")
                }
            })
        }
        ValidationErrorKind::Pattern { .. } => {
            let field = schema_pointer.strip_suffix("/pattern")?;
            let description = schema.pointer(field)?["description"].as_str()?;
            Some(description.to_string())
        }
        _ => None,
    }
}

/// How YAML read an unquoted scalar.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
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

    /// Every document of every example, parsed.
    fn example_documents() -> Vec<Value> {
        use serde::Deserialize as _;
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut documents = Vec::new();
        for entry in walkdir::WalkDir::new(examples).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                for document in yaml_serde::Deserializer::from_str(&text) {
                    let value = Value::deserialize(document).unwrap();
                    if !value.is_null() {
                        documents.push(value);
                    }
                }
            }
        }
        documents
    }

    #[test]
    fn the_bundle_checks_each_document_against_its_kind() {
        let bundle = Schemas::input().bundle();
        let validator = jsonschema::validator_for(&bundle).unwrap();
        let documents = example_documents();
        assert!(documents.len() > 50);
        for document in &documents {
            let errors: Vec<String> = validator
                .iter_errors(document)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{document}: {errors:?}");
        }
        let defined: Vec<&String> = bundle["$defs"].as_object().unwrap().keys().collect();
        let mut kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        kinds.sort_unstable();
        assert_eq!(defined, kinds);
        // A WANPolicy with a ClusterSet's field, a ClusterSet without clusters, an unknown kind.
        let mut policy = documents
            .iter()
            .find(|d| d["kind"] == "WANPolicy")
            .unwrap()
            .clone();
        policy["spec"]["clusters"] = serde_json::json!([]);
        let mut clusterset = documents
            .iter()
            .find(|d| d["kind"] == "ClusterSet")
            .unwrap()
            .clone();
        clusterset["spec"]
            .as_object_mut()
            .unwrap()
            .remove("clusters");
        let mut unknown = policy.clone();
        unknown["kind"] = "WanPolicy".into();
        for wrong in [policy, clusterset, unknown] {
            assert!(!validator.is_valid(&wrong), "{wrong}");
        }
    }

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
