//! How diagnostics read: the human format with its snippets, and the JSON format tools
//! consume. (The GitHub format of every code is in `tests/invalid`, run by `tests/cases.rs`.)

use crate::common::test::Test;

/// The human format, as a developer sees it in a terminal: snippets, labels, hints.
#[test]
fn human_diagnostics_show_the_offending_lines() {
    let mut test = Test::case("many-problems");
    let output = test.args(&["validate", "{in}"]).code(1).run();
    assert!(output.stdout.is_empty());
    insta::assert_snapshot!(output.stderr.replace(&test.expand("{temp}"), "[TEMP]"));
}

#[test]
fn json_diagnostics_are_stable() {
    let mut test = Test::case("many-problems");
    let output = test
        .args(&["validate", "{in}", "--format", "json"])
        .code(1)
        .run();
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&value).unwrap());
}
