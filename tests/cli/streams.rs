//! Where each command prints what: its result on stdout, diagnostics on stderr (beside a
//! result) or inside its one JSON document, and every path as seen from the current
//! directory or below `--path-prefix`.

use serde_json::Value;

use crate::common::test::Test;

const HIGH: &str = "policies/sd-wan-priority-high.yaml";

/// The whole of stdout as one JSON value: a second document or a stray line fails.
fn document(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

fn codes(document: &Value) -> Vec<&str> {
    (document["diagnostics"]
        .as_array()
        .expect("a list of diagnostics")
        .iter())
    .map(|d| d["code"].as_str().expect("a code"))
    .collect()
}

/// `graph > graph.mmd` is a Mermaid file, whatever the format of its warnings.
#[test]
fn graph_prints_only_the_graph_on_stdout() {
    let mut test = Test::example("l7-workaround");
    for format in ["human", "github"] {
        let output = test.args(&["graph", "{in}", "--format", format]).run();
        assert!(
            output.stdout.starts_with("flowchart LR\n"),
            "{format}: {}",
            output.stdout
        );
        assert!(
            !output.stdout.contains("plaintext-public-tunnel"),
            "{format}: {}",
            output.stdout
        );
        output.stderr_has("plaintext-public-tunnel");
    }
    test.args(&["graph", "{in}", "--format", "github"])
        .run()
        .stderr_has("::warning file=");
    test.args(&["graph", "{in}", "--format", "json"])
        .code(2)
        .run()
        .stderr_has("no `--format json`");
    assert!(test
        .args(&["graph", "{in}", "--format", "json"])
        .code(2)
        .run()
        .stdout
        .is_empty());
}

/// With a warning, each command's JSON is one document holding it beside the result.
#[test]
fn json_is_one_document_with_warnings() {
    let mut test = Test::example("l7-workaround");
    test.render().run();
    let runs: [(&[&str], &str); 4] = [
        (&["validate", "{in}"], "diagnostics"),
        (&["check", "{in}", "-o", "{out}"], "stale"),
        (&["diff", "{in}", "-o", "{out}"], "changes"),
        (&["status", "secure/payment-low-prio", "{in}"], "status"),
    ];
    for (args, result) in runs {
        let output = test.args(args).args(&["--format", "json"]).run();
        let value = document(&output.stdout);
        assert_eq!(codes(&value), ["plaintext-public-tunnel"], "{args:?}");
        assert_eq!(value["warnings"], 1, "{args:?}");
        assert!(!value[result].is_null(), "{args:?}: no `{result}`");
        assert!(output.stderr.is_empty(), "{args:?}: {}", output.stderr);
    }
    let check = test.check().args(&["--format", "json"]).run();
    let check = document(&check.stdout);
    assert_eq!(
        (&check["upToDate"], &check["stale"]),
        (&Value::Bool(true), &Value::Array(vec![]))
    );
    let status = test
        .args(&[
            "status",
            "secure/payment-low-prio",
            "{in}",
            "--format",
            "json",
        ])
        .run();
    let status = document(&status.stdout);
    assert_eq!(status["status"]["service"], "secure/payment-low-prio");
    assert_eq!(status["status"]["exporters"][0]["cluster"], "cluster-1");
}

/// With invalid input, the one document carries the errors, and the result is null.
#[test]
fn json_is_one_document_with_errors() {
    let mut test = Test::example("payment");
    test.render().run();
    test.edit(HIGH, "port: 31111", "port: 70000");
    let runs: [(&[&str], i32, &str); 4] = [
        (&["validate", "{in}"], 1, "diagnostics"),
        (&["check", "{in}", "-o", "{out}"], 1, "stale"),
        (&["diff", "{in}", "-o", "{out}"], 2, "changes"),
        (&["status", "secure/payment", "{in}"], 1, "status"),
    ];
    for (args, code, result) in runs {
        let output = test.args(args).args(&["--format", "json"]).code(code).run();
        let value = document(&output.stdout);
        assert_eq!(codes(&value), ["invalid-value"], "{args:?}");
        assert_eq!(value["errors"], 1, "{args:?}");
        if result != "diagnostics" {
            assert!(value[result].is_null(), "{args:?}: {value}");
        }
        assert!(output.stderr.is_empty(), "{args:?}: {}", output.stderr);
    }
    // Valid again, but a stale OUT and an unknown service: still one document each.
    test.edit(HIGH, "port: 70000", "port: 31115");
    let check = document(
        &test
            .check()
            .args(&["--format", "json"])
            .code(1)
            .run()
            .stdout,
    );
    assert_eq!(check["upToDate"], false);
    let stale: Vec<(&str, &str)> = (check["stale"].as_array().unwrap().iter())
        .map(|s| (s["path"].as_str().unwrap(), s["change"].as_str().unwrap()))
        .collect();
    let gateway = test.expand("{out}/cluster-1/mcw-system/gateway-mcw-ingress.yaml");
    assert!(stale.contains(&(gateway.as_str(), "changed")), "{stale:?}");
    let diff = document(&test.diff().args(&["--format", "json"]).code(1).run().stdout);
    let gateway_change = (diff["changes"].as_array().unwrap().iter())
        .find(|c| c["path"] == gateway.as_str())
        .expect("the gateway changes");
    assert_eq!(gateway_change["kind"], "Gateway");
    assert_eq!(gateway_change["name"], "mcw-system/mcw-ingress");
    assert_eq!(
        gateway_change["fields"][0],
        "spec.listeners[sd-wan-priority-high].port"
    );
    let unknown = test
        .args(&["status", "secure/paymnt", "{in}", "--format", "json"])
        .code(1)
        .run();
    let unknown = document(&unknown.stdout);
    assert!(unknown["status"].is_null());
    assert!(unknown["error"]
        .as_str()
        .unwrap()
        .contains("did you mean `secure/payment`?"));
}

/// In CI, `check --format github` annotates each stale file, named from the current
/// directory, and its diagnostics go to stderr, where the runner reads them too.
#[test]
fn check_annotates_stale_files_for_github() {
    let mut test = Test::example("l7-workaround");
    test.render().run();
    test.edit(HIGH, "port: 31111", "port: 31115");
    let output = test
        .within("{temp}")
        .args(&["check", "repo", "-o", "./out", "--format", "github"])
        .code(1)
        .run();
    output.stdout_has(
        "::error file=out/cluster-1/mcw-system/gateway-mcw-ingress.yaml,title=out-of-date::`out/cluster-1/mcw-system/gateway-mcw-ingress.yaml` is out of date: `mcwan render` would change it",
    );
    output.stdout_has("+  port: 31115");
    output.stderr_has("::warning file=repo/policies/sd-wan-priority-low.yaml,line=6,col=3,title=plaintext-public-tunnel::");
    output.stderr_has("\n  out/sdwan/classes.yaml\n");
    assert!(!output.stdout.contains("::warning"), "{}", output.stdout);
    let annotated = output
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error file=out/"))
        .count();
    let listed = output
        .stderr
        .lines()
        .filter(|l| l.starts_with("  out/"))
        .count();
    assert!(
        annotated > 1 && annotated == listed,
        "{annotated} annotated, {listed} listed"
    );
}

/// Run from the repository's parent, every format names the files from there, so that
/// GitHub finds them in a monorepo.
#[test]
fn diagnostic_paths_start_at_the_current_directory() {
    let mut test = Test::case("many-problems");
    let github = test
        .within("{temp}")
        .args(&["validate", "./repo/", "--format", "github"])
        .code(1)
        .run();
    github.stdout_has("::error file=repo/clusters/cluster-1/payment.yaml,line=15,col=5,title=export-unknown-policy::");
    let json = test
        .within("{temp}")
        .args(&["validate", "repo", "--format", "json"])
        .code(1)
        .run();
    assert_eq!(
        document(&json.stdout)["diagnostics"][0]["location"]["file"],
        "repo/clusters/cluster-1/payment.yaml"
    );
    let human = test
        .within("{temp}")
        .args(&["validate", "repo"])
        .code(1)
        .run();
    human.stderr_has("┌─ repo/clusters/cluster-1/payment.yaml:15:5");
    // An absolute DIR stays absolute.
    test.args(&["validate", "{in}", "--format", "github"])
        .code(1)
        .run()
        .stdout_has(&test.expand("::error file={in}/clusters/cluster-1/payment.yaml,line=15"));
}

/// `--path-prefix` stands for DIR in printed paths, for a job that runs mcwan elsewhere;
/// OUT is found from DIR, so a prefix covers it too.
#[test]
fn path_prefix_replaces_dir_in_printed_paths() {
    let mut test = Test::case("many-problems");
    test.args(&[
        "validate",
        "{in}",
        "--format",
        "github",
        "--path-prefix",
        "mono/mesh",
    ])
    .code(1)
    .run()
    .stdout_has("::error file=mono/mesh/clusters/cluster-1/payment.yaml,line=15");
    test.args(&[
        "status",
        "secure/payment",
        "{in}",
        "--path-prefix",
        "mono/mesh",
    ])
    .code(1)
    .run()
    .stderr_has("┌─ mono/mesh/policies/sd-wan-priority-low.yaml:5:38");

    let mut test = Test::example("l7-workaround");
    test.args(&["render", "{in}", "-o", "{in}/rendered"]).run();
    test.edit(HIGH, "port: 31111", "port: 31115");
    let check = test
        .args(&[
            "check",
            "{in}",
            "-o",
            "{in}/rendered",
            "--format",
            "github",
            "--path-prefix",
            "mesh",
        ])
        .code(1)
        .run();
    check.stdout_has("::error file=mesh/rendered/sdwan/classes.yaml,title=out-of-date::");
    check.stderr_has("::warning file=mesh/policies/sd-wan-priority-low.yaml,line=6");
    // A sibling OUT, relative while DIR is absolute.
    test.args(&["render", "{in}", "-o", "{temp}/out"]).run();
    test.edit(HIGH, "port: 31115", "port: 31116");
    let diff = test
        .within("{temp}")
        .args(&[
            "diff",
            "{in}",
            "-o",
            "out",
            "--format",
            "json",
            "--path-prefix",
            "mono/mesh",
        ])
        .code(1)
        .run();
    let diff = document(&diff.stdout);
    let paths: Vec<&str> = (diff["changes"].as_array().unwrap().iter())
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"mono/out/sdwan/classes.yaml"), "{paths:?}");
    assert_eq!(
        diff["diagnostics"][0]["location"]["file"],
        "mono/mesh/policies/sd-wan-priority-low.yaml"
    );
}

/// `render` has no result on stdout: its diagnostics go to stderr in every format.
#[test]
fn render_keeps_stdout_empty() {
    let mut test = Test::example("l7-workaround");
    for format in ["human", "json", "github"] {
        let output = test.render().args(&["--format", format]).run();
        assert!(output.stdout.is_empty(), "{format}: {}", output.stdout);
        output.stderr_has("plaintext-public-tunnel");
    }
}
