//! End-to-end tests through the real `mcwan` binary, one module per feature. The golden
//! trees and the invalid-input cases run in `tests/cases.rs`, one test each.
//! `MCWAN_BLESS=1 cargo test` rewrites the expected outputs from what mcwan produces.

// A `Test` is `test`, beside the `text` it reads and writes.
#![allow(clippy::similar_names)]

#[path = "../common/mod.rs"]
mod common;

mod argocd;
mod ci;
mod determinism;
mod diagnostics;
mod fabric;
mod hostile;
mod output;
mod review;
mod routing;
mod streams;
mod verbs;
