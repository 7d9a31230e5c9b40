//! How diagnostics read: the human format with its snippets, and the JSON format tools
//! consume. (The GitHub format of every code is in `tests/invalid`, run by `tests/cases.rs`.)

use crate::common::test::Test;

/// The human format, as a developer sees it in a terminal: snippets, labels, hints.
#[test]
fn human_diagnostics_show_the_offending_lines() {
    let mut test = Test::case("many-problems");
    let output = test.within("{in}").args(&["validate", "."]).code(1).run();
    assert!(output.stdout.is_empty());
    insta::assert_snapshot!(output.stderr.replace(&test.expand("{temp}"), "[TEMP]"));
}

#[test]
fn json_diagnostics_are_stable() {
    let mut test = Test::case("many-problems");
    let output = test
        .within("{in}")
        .args(&["validate", ".", "--format", "json"])
        .code(1)
        .run();
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&value).unwrap());
}

/// Every diagnostic links to its section of the reference, which `mcwan explain` prints.
#[test]
fn each_diagnostic_links_to_its_explanation() {
    let mut test = Test::case("many-problems");
    let output = test
        .args(&["validate", "{in}", "--format", "json"])
        .code(1)
        .run();
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let diagnostics = value["diagnostics"].as_array().unwrap();
    assert!(!diagnostics.is_empty());
    for diagnostic in diagnostics {
        let code = diagnostic["code"].as_str().unwrap();
        assert_eq!(diagnostic["doc"], format!("docs/diagnostics.md#{code}"));
        let explained = Test::example("payment").args(&["explain", code]).run();
        assert!(
            explained.stdout.starts_with(&format!("### `{code}`\n")),
            "{}",
            explained.stdout
        );
    }
    let unknown = Test::example("payment")
        .args(&["explain", "yaml-sintax"])
        .code(2)
        .run();
    assert!(
        unknown.stderr.contains("did you mean `yaml-syntax`?"),
        "{}",
        unknown.stderr
    );
}
