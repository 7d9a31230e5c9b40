//! Fuzzes loading, checking, planning and rendering with arbitrary bytes as one declaration
//! file inside an otherwise valid repository (examples/l7-payment). Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcwan::diagnostic::Diagnostics;
use mcwan::load::{self, Content, InputFile, Limits};

const BASE: &[(&str, &str)] = &[
    ("clusterset.yaml", include_str!("../../examples/l7-payment/clusterset.yaml")),
    ("policies/sd-wan-priority-high.yaml", include_str!("../../examples/l7-payment/policies/sd-wan-priority-high.yaml")),
    ("policies/sd-wan-priority-low.yaml", include_str!("../../examples/l7-payment/policies/sd-wan-priority-low.yaml")),
    ("clusters/cluster-1/payment.yaml", include_str!("../../examples/l7-payment/clusters/cluster-1/payment.yaml")),
    ("clusters/cluster-2/logging.yaml", include_str!("../../examples/l7-payment/clusters/cluster-2/logging.yaml")),
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks which file the input replaces, so every place gets fuzzed.
    let Some((&which, bytes)) = data.split_first() else { return };
    let target = ["clusters/cluster-1/fuzz.yaml", "clusterset.yaml", "policies/sd-wan-priority-high.yaml", "clusters/cluster-1/payment.yaml"]
        [usize::from(which) % 4];
    let content = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Content::Text(text),
        Err(error) => Content::NotUtf8(String::from_utf8_lossy(&bytes[..error.utf8_error().valid_up_to()]).into_owned()),
    };
    let mut files: Vec<InputFile> = BASE
        .iter()
        .filter(|(path, _)| *path != target)
        .map(|(path, text)| InputFile { path: (*path).to_string(), content: Content::Text((*text).to_string()) })
        .collect();
    files.push(InputFile { path: target.to_string(), content });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if let Err(error) = mcwan::compile(&files, Limits::default(), &mut Diagnostics::default()) {
        panic!("a valid repository failed to render: {error}");
    }
    let _ = load::place_of(target);
});
