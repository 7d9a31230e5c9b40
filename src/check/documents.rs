//! Pass 1: each document on its own. Identify its kind, validate it against its input
//! schema, check it sits where its kind may live, and deserialize it into a `spec` type.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::check::pointer::{fields, Input};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::diags::{self, Invalid, Missing, UnknownKind};
use crate::kind::{Kind, Placement};
use crate::schema::{violations, Lookup, Schemas, Violation};
use crate::source::{pointer_segment, Place, Sources};
use crate::spec;

/// The group the seed used for MCS objects. No real cluster serves it.
pub const SEED_MCS_GROUP: &str = "multicluster.k8s.io/";

/// A raw declaration and the document it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub doc: usize,
}

/// Every well-formed declaration, sorted by kind.
#[derive(Debug, Default)]
pub struct Declarations {
    pub clustersets: Vec<Located<spec::ClusterSet>>,
    /// WAN policies in `clusterset.yaml` or `policies/`: the global definitions.
    pub policies: Vec<Located<spec::WanPolicy>>,
    /// Copies of WAN policies in cluster directories, with the cluster directory name.
    pub policy_copies: Vec<(String, Located<spec::WanPolicy>)>,
    pub services: Vec<(String, Located<spec::Service>)>,
    pub exports: Vec<(String, Located<spec::ServiceExport>)>,
    pub namespaces: Vec<(String, Located<spec::Namespace>)>,
    pub routes: Vec<(String, Located<spec::WanRoute>)>,
    /// Istio VirtualServices and DestinationRules to copy to their cluster unchanged.
    pub passthrough: Vec<(String, Located<Value>)>,
    /// Objects that were declared but are invalid. Later passes do not report references
    /// to them as missing: the object's own diagnostics say enough.
    pub broken: BTreeSet<ObjectKey>,
    /// Files that were not read whole, each with its place and the names it mentions: an
    /// object one of them may declare is not reported missing either, so that a syntax
    /// error is the one problem shown for its file.
    pub unread: Vec<(Place, BTreeSet<String>)>,
}

/// Which object: its kind, its cluster directory (empty outside `clusters/`), its
/// namespace (empty for cluster-scoped kinds) and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub cluster: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of a document, from its place and metadata.
    fn of(kind: Kind, document: &crate::source::Document) -> Self {
        let value = &document.value;
        let namespaced = kind.namespaced();
        let namespace = match value["metadata"]["namespace"].as_str() {
            Some(namespace) if namespaced => namespace,
            None if namespaced => "default",
            _ => "",
        };
        ObjectKey {
            cluster: match &document.place {
                Place::Cluster(cluster) => cluster.clone(),
                Place::ClusterSet | Place::Policies => String::new(),
            },
            namespace: namespace.to_string(),
            name: value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind,
        }
    }
}

impl Declarations {
    /// Whether the `kind` object `namespace/name` was declared broken in `cluster` (a
    /// directory name), or in any cluster for `None`, or may be declared in a file that was
    /// not read whole there. Cluster-scoped kinds take `""`.
    #[must_use]
    pub fn is_broken(
        &self,
        kind: Kind,
        cluster: Option<&str>,
        namespace: &str,
        name: &str,
    ) -> bool {
        let declared = self.broken.iter().any(|key| {
            key.kind == kind
                && key.namespace == namespace
                && key.name == name
                && cluster.is_none_or(|c| key.cluster == c)
        });
        declared
            || self
                .unread
                .iter()
                .any(|(place, names)| may_hold(kind, place, cluster) && names.contains(name))
    }

    /// Whether any `kind` object was declared broken, or may be declared in a file that
    /// was not read whole.
    #[must_use]
    pub fn any_broken(&self, kind: Kind) -> bool {
        self.broken.iter().any(|key| key.kind == kind)
            || self
                .unread
                .iter()
                .any(|(place, _)| may_hold(kind, place, None))
    }
}

/// Whether a file at `place` may declare a `kind` object of `cluster` (any for `None`).
fn may_hold(kind: Kind, place: &Place, cluster: Option<&str>) -> bool {
    match (kind.placement(), place) {
        (Placement::ClusterSetFile, Place::ClusterSet) | (Placement::Anywhere, _) => true,
        (Placement::ClusterDirectory, Place::Cluster(c)) => {
            cluster.is_none_or(|wanted| c == wanted)
        }
        _ => false,
    }
}

/// The words of a text that could be names: runs of lowercase letters, digits, `-` and `.`.
fn names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn read(sources: &Sources, schemas: &Schemas, diagnostics: &mut Diagnostics) -> Declarations {
    let mut declarations = Declarations {
        unread: sources
            .unread
            .iter()
            .map(|(file, place)| (place.clone(), names_in(&sources.files[*file].text)))
            .collect(),
        ..Declarations::default()
    };
    for (doc, document) in sources.documents.iter().enumerate() {
        let input = Input { sources, schemas };
        let at = |path: &str| input.at(doc, &fields(path));
        let Value::Object(object) = &document.value else {
            diagnostics.push(diags::document_not_object(at("")));
            continue;
        };
        let (Some(api_version), Some(kind_name)) = (
            object.get("apiVersion").and_then(Value::as_str),
            object.get("kind").and_then(Value::as_str),
        ) else {
            diagnostics.push(diags::missing_field(at(""), Missing::TypeMeta));
            continue;
        };
        let (validator, schema) = match schemas.lookup(api_version, kind_name) {
            Lookup::Found(validator, schema) => (validator, schema),
            Lookup::UnknownKind { suggestion } => {
                let suggestion = suggestion.as_deref();
                let why = UnknownKind::Kind { suggestion };
                diagnostics.push(diags::unknown_kind(at("kind"), kind_name, api_version, why));
                continue;
            }
            Lookup::UnknownVersion { accepted } => {
                let why = UnknownKind::Version {
                    accepted: &accepted,
                };
                diagnostics.push(diags::unknown_kind(
                    at("apiVersion"),
                    kind_name,
                    api_version,
                    why,
                ));
                continue;
            }
        };
        // Every input schema is a registered kind's (`Schemas::input`).
        let Some(kind) = Kind::named(kind_name) else {
            let why = UnknownKind::Kind { suggestion: None };
            diagnostics.push(diags::unknown_kind(at("kind"), kind_name, api_version, why));
            continue;
        };
        if api_version.starts_with(SEED_MCS_GROUP) {
            diagnostics.push(diags::deprecated_mcs_group(at("apiVersion"), api_version));
        }
        let found = violations(validator, schema, &document.value);
        // A merge key is reported where it is, not again as an unknown field.
        let merge_key = |v: &&Violation| {
            let (Violation::UnknownField { pointer, .. }
            | Violation::MissingField { pointer, .. }
            | Violation::Invalid { pointer, .. }) = v;
            document.damaged && pointer.split('/').any(|segment| segment == "<<")
        };
        for violation in found.iter().filter(|v| !merge_key(v)) {
            diagnostics.push(schema_diagnostic(sources, doc, kind.name(), violation));
        }
        if !found.is_empty() || !placed_well(sources, doc, kind, diagnostics) || document.damaged {
            declarations.broken.insert(ObjectKey::of(kind, document));
            continue;
        }
        declarations.add(sources, doc, kind, diagnostics);
    }
    declarations
}

impl Declarations {
    /// Reads a valid, well-placed document of `kind` into its list.
    fn add(&mut self, sources: &Sources, doc: usize, kind: Kind, diagnostics: &mut Diagnostics) {
        let document = &sources.documents[doc];
        let cluster = match &document.place {
            Place::Cluster(name) => name.clone(),
            Place::ClusterSet | Place::Policies => String::new(),
        };
        match kind {
            Kind::ClusterSet => push(
                &mut self.clustersets,
                parse(sources, doc, kind, &mut self.broken, diagnostics),
            ),
            Kind::WanPolicy if cluster.is_empty() => {
                push(
                    &mut self.policies,
                    parse(sources, doc, kind, &mut self.broken, diagnostics),
                );
            }
            Kind::WanPolicy => push_in(
                &mut self.policy_copies,
                &cluster,
                parse(sources, doc, kind, &mut self.broken, diagnostics),
            ),
            Kind::Service => push_in(
                &mut self.services,
                &cluster,
                parse(sources, doc, kind, &mut self.broken, diagnostics),
            ),
            Kind::ServiceExport => push_in(
                &mut self.exports,
                &cluster,
                parse(sources, doc, kind, &mut self.broken, diagnostics),
            ),
            Kind::VirtualService | Kind::DestinationRule => {
                let object = Located {
                    value: document.value.clone(),
                    doc,
                };
                self.passthrough.push((cluster, object));
            }
            Kind::WanRoute => push_in(
                &mut self.routes,
                &cluster,
                parse(sources, doc, kind, &mut self.broken, diagnostics),
            ),
            Kind::Namespace => push_in(
                &mut self.namespaces,
                &cluster,
                parse(sources, doc, kind, &mut self.broken, diagnostics),
            ),
        }
    }
}

fn push<T>(list: &mut Vec<Located<T>>, item: Option<Located<T>>) {
    list.extend(item);
}

fn push_in<T>(list: &mut Vec<(String, Located<T>)>, cluster: &str, item: Option<Located<T>>) {
    list.extend(item.map(|item| (cluster.to_string(), item)));
}

/// Reads a document that passed its schema into its type. What the schema cannot say (a
/// float where a port is expected) is reported at the offending value, and the object is
/// marked broken so that nothing that names it fails again.
fn parse<T: DeserializeOwned>(
    sources: &Sources,
    doc: usize,
    kind: Kind,
    broken: &mut BTreeSet<ObjectKey>,
    diagnostics: &mut Diagnostics,
) -> Option<Located<T>> {
    let value = &sources.documents[doc].value;
    match serde_json::from_value(value.clone()) {
        Ok(value) => Some(Located { value, doc }),
        Err(error) => {
            let message = error.to_string();
            let pointer = quoted_token(&message)
                .and_then(|token| pointer_of(value, token, String::new()))
                .unwrap_or_default();
            diagnostics.push(diags::invalid_value(
                sources.at(doc, &pointer),
                Invalid::Type(&message),
            ));
            broken.insert(ObjectKey::of(kind, &sources.documents[doc]));
            None
        }
    }
}

/// The first `` `token` `` of a serde message: the offending value as serde prints it.
fn quoted_token(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

/// The pointer of the first scalar in `value`, in document order, that prints as `token`.
fn pointer_of(value: &Value, token: &str, pointer: String) -> Option<String> {
    match value {
        Value::Object(fields) => fields.iter().find_map(|(key, field)| {
            pointer_of(field, token, format!("{pointer}/{}", pointer_segment(key)))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| pointer_of(item, token, format!("{pointer}/{i}"))),
        Value::Number(n) if n.to_string() == token => Some(pointer),
        Value::String(s) if s == token => Some(pointer),
        _ => None,
    }
}

/// Checks the directory layout: the topology lives in `clusterset.yaml`, WAN policies there
/// or in `policies/` (copies may sit in cluster directories), and everything else in
/// `clusters/<name>/`.
fn placed_well(sources: &Sources, doc: usize, kind: Kind, diagnostics: &mut Diagnostics) -> bool {
    let place = &sources.documents[doc].place;
    let ok = match kind.placement() {
        Placement::ClusterSetFile => *place == Place::ClusterSet,
        Placement::Anywhere => true,
        Placement::ClusterDirectory => matches!(place, Place::Cluster(_)),
    };
    if !ok {
        diagnostics.push(diags::misplaced_object(
            sources.at(doc, fields("kind").as_str()),
            kind,
        ));
    }
    ok
}

fn schema_diagnostic(
    sources: &Sources,
    doc: usize,
    kind: &str,
    violation: &Violation,
) -> Diagnostic {
    match violation {
        Violation::UnknownField {
            pointer,
            suggestion,
        } => diags::unknown_field(
            sources.at(doc, pointer),
            kind,
            pointer,
            suggestion.as_deref(),
        ),
        Violation::MissingField { pointer, field } => diags::missing_field(
            sources.at(doc, pointer),
            Missing::Field {
                kind,
                pointer,
                field,
            },
        ),
        Violation::Invalid {
            pointer,
            message,
            hint,
        } => diags::invalid_value(
            sources.at(doc, pointer),
            Invalid::Schema {
                kind,
                pointer,
                message,
                hint: hint.as_deref(),
            },
        ),
    }
}
