//! mcwan: an offline compiler from multi-cluster SD-WAN declarations to per-cluster GitOps
//! directories. The pipeline is `load` → `check` → `plan` → `render` → `emit`; only `load`
//! and `emit` touch the filesystem. See ARCHITECTURE.md.

#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod conventions;
pub mod diagnostic;
pub mod diags;
pub mod diff;
pub mod edit;
mod embedded;
pub mod emit;
pub mod error;
pub mod fabric;
pub mod generate;
pub mod kind;
pub mod load;
pub mod model;
mod parallel;
pub mod paths;
mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
mod run;
pub mod schema;
pub mod source;
pub mod spec;
pub mod status;
pub mod summary;
#[cfg(test)]
mod testing;
pub mod value_diff;
pub mod verify;

pub use conventions::SUMMARY;
pub use pipeline::{compare, compile, render};
pub use run::run;
