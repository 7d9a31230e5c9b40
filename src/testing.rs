//! What unit tests share: the validated model of a bundled example.

use std::path::Path;

use crate::diagnostic::Diagnostics;
use crate::model::Model;
use crate::{check, load, schema};

/// The model of `examples/<name>`, which validates.
///
/// # Panics
/// When the example cannot be read or does not validate.
#[must_use]
pub fn example(name: &str) -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let limits = load::Limits::default();
    let mut diagnostics = Diagnostics::default();
    let sources = load::parse(&load::read(&dir, limits).unwrap(), limits, &mut diagnostics);
    let schemas = schema::Schemas::input();
    let options = check::Options::default();
    let model = check::check(&sources, &schemas, options, &mut diagnostics);
    assert!(
        !diagnostics.has_errors(),
        "examples/{name} does not validate"
    );
    model.unwrap()
}
