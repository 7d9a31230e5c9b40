//! The files built into the binary: every template and every schema, listed by
//! `build.rs` from their directories, so that adding one is adding its file.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
