//! The commands that read the declarations and change nothing: `check` and `diff` against
//! OUT with their exit codes, `status`, `graph`, `completions` and `schema`.

use crate::common::test::Test;

const HIGH: &str = "policies/sd-wan-priority-high.yaml";

/// The CI gate: `check` passes on a fresh render; after a WAN policy edit it fails and
/// names exactly the files a render would change, which an independent render confirms.
#[test]
fn check_names_every_file_an_edit_affects() {
    let mut test = Test::example("payment");
    test.render().run();
    let up_to_date = test.check().run();
    assert!(up_to_date.stdout.is_empty());

    test.edit(HIGH, "port: 31111", "port: 31115");
    let stale = test.check().code(1).run();
    // Each is named as OUT was given, joined with its path within OUT.
    let out = test.expand("  {out}/");
    let named: Vec<String> = stale
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix(out.as_str()))
        .map(str::to_string)
        .collect();

    test.args(&["render", "{in}", "-o", "{temp}/fresh"]).run();
    let (old, new) = (test.tree("{out}"), test.tree("{temp}/fresh"));
    let differing: Vec<String> = new
        .keys()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    assert_eq!(named, differing);
    assert!(named.contains(&"cluster-1/mcw-system/gateway-mcw-ingress.yaml".to_string()));
    assert!(named.contains(&"sdwan/classes.yaml".to_string()));
    stale.stdout_has("-  port: 31111\n+  port: 31115");

    test.render().run();
    test.check().run();
}

#[test]
fn check_catches_hand_edits_and_deletions_but_not_foreign_files() {
    let mut test = Test::example("payment");
    test.render().run();
    // A file mcwan does not own is none of its business.
    test.write("{out}/NOTES.md", "ours");
    test.check().run();
    test.edit(
        "{out}/cluster-1/mcw-system/gateway-mcw-ingress.yaml",
        "protocol: HTTP",
        "protocol: HTTPS",
    )
    .remove("{out}/cluster-2/secure/serviceimport-payment.yaml");
    test.check()
        .code(1)
        .run()
        .stderr_has("2 file(s) differ")
        .stdout_has("--- /dev/null\n+++ b/cluster-2/secure/serviceimport-payment.yaml");
}

#[test]
fn exit_codes_of_check_and_diff() {
    let mut test = Test::example("payment");
    // No OUT yet: everything differs.
    test.check().code(1).run();
    test.diff().code(1).run();
    test.render().run();
    test.diff().run();
    // An OUT that mcwan did not create.
    test.write("{temp}/foreign/x.yaml", "x");
    test.args(&["check", "{in}", "-o", "{temp}/foreign"])
        .code(2)
        .run();
    // Invalid input fails check, and is trouble for diff.
    test.edit(HIGH, "port: 31111", "port: 70000");
    test.check().code(1).run();
    test.diff().code(2).run();
    // Usage errors.
    test.args(&["render", "{in}"]).code(2).run();
    test.args(&["frobnicate"]).code(2).run();
}

/// What a reviewer reads: a per-object summary with field-level changes, then the diff.
#[test]
fn diff_summarizes_objects_and_fields() {
    let mut test = Test::example("payment");
    test.render().run();
    test.edit(HIGH, "port: 31111", "port: 31115");
    let output = test.diff().code(1).run();
    let text = output.stdout.replace(&test.expand("{temp}"), "[TEMP]");
    let summary = text.split("\n--- ").next().unwrap().to_string();
    insta::assert_snapshot!(summary);
}

#[test]
fn status_describes_a_service() {
    let mut test = Test::example("three-clusters");
    let status = test.args(&["status", "insecure/logging", "{in}"]).run();
    insta::assert_snapshot!(status.stdout);
    test.args(&["status", "secure/paymnt", "{root}/examples/payment"])
        .code(1)
        .run()
        .stderr_has("did you mean `secure/payment`?");
}

#[test]
fn graph_draws_mermaid_and_dot() {
    let mut test = Test::example("three-clusters");
    let mermaid = test.args(&["graph", "{in}"]).run();
    insta::assert_snapshot!("graph_mermaid", mermaid.stdout);
    let dot = test.args(&["graph", "{in}", "--dot"]).run();
    insta::assert_snapshot!("graph_dot", dot.stdout);
}

#[test]
fn completions_and_schema() {
    let mut test = Test::empty();
    for shell in ["bash", "zsh", "fish"] {
        let output = test.args(&["completions", shell]).run();
        assert!(
            output.stdout.contains("render") && output.stdout.contains("unimport"),
            "{shell}"
        );
    }
    let schema = test.args(&["schema", "WANPolicy"]).run();
    let value: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    assert_eq!(value["properties"]["kind"]["const"], "WANPolicy");
    test.args(&["schema", "Secret"]).code(2).run();
}
