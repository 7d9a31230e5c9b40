//! The CI integrations: the script the GitHub Action runs (`deploy/ci/pull-request.sh`),
//! run the way a runner runs it, and the pre-commit hooks.

use std::path::Path;
use std::process::Command;

use crate::common::test::Test;
use crate::common::{copy, root};

/// Runs `git` in `dir`, quietly, and returns what it printed.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// What one run of the script left: its exit code, what it printed, the step summary and
/// the step outputs.
struct Run {
    code: Option<i32>,
    stdout: String,
    summary: String,
    outputs: String,
}

/// Runs the CI script in `workspace` as a GitHub runner does: the declarations in
/// `decl/`, mcwan on PATH, and the `GITHUB_*` files in a scratch directory.
fn pull_request(test: &Test, workspace: &Path, envs: &[(&str, &str)]) -> Run {
    let summary = test.path("{temp}/step-summary.md");
    let outputs = test.path("{temp}/step-outputs");
    for file in [&summary, &outputs] {
        std::fs::write(file, "").unwrap();
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_mcwan"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(root().join("deploy/ci/pull-request.sh"))
        .current_dir(workspace)
        .env_clear()
        .env("PATH", path)
        .env("HOME", test.path("{temp}"))
        .env("NO_COLOR", "1")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env("MCWAN_DIR", "decl")
        .envs(envs.iter().copied())
        .output()
        .expect("the script runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        summary: std::fs::read_to_string(&summary).unwrap(),
        outputs: std::fs::read_to_string(&outputs).unwrap(),
    }
}

/// A workspace whose base commit holds examples/payment in `decl/`, with a change on top
/// that moves `secure/payment` to the low-priority policy.
fn workspace(test: &Test) -> (std::path::PathBuf, String) {
    let workspace = test.path("{temp}/workspace");
    copy(&root().join("examples/payment"), &workspace.join("decl"));
    git(&workspace, &["init", "-q"]);
    git(&workspace, &["add", "."]);
    git(&workspace, &["commit", "-q", "-m", "base"]);
    let base = git(&workspace, &["rev-parse", "HEAD"]);
    let exports = workspace.join("decl/clusters/cluster-1/payment.yaml");
    let text = std::fs::read_to_string(&exports).unwrap();
    assert!(text.contains("sd-wan-priority-high"));
    std::fs::write(
        &exports,
        text.replace("sd-wan-priority-high", "sd-wan-priority-low"),
    )
    .unwrap();
    (workspace, base)
}

#[test]
fn the_action_summarises_what_a_change_renders_differently() {
    let test = Test::empty();
    let (workspace, base) = workspace(&test);
    let run = pull_request(&test, &workspace, &[("MCWAN_BASE", &base)]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.summary);
    assert_eq!(
        run.outputs, "changed=true\n",
        "{}\n{}",
        run.stdout, run.summary
    );
    // The per-object table names the route that moved to the other listener.
    assert!(run.summary.contains("| "), "{}", run.summary);
    assert!(
        run.summary
            .contains("httproute-mcw-payment.sd-wan-priority-high.yaml"),
        "{}",
        run.summary
    );
    assert!(
        run.summary
            .contains("httproute-mcw-payment.sd-wan-priority-low.yaml"),
        "{}",
        run.summary
    );

    // The flows that move to the other tunnel, as rows of the reachability matrix.
    assert!(run.summary.contains("### Reachability"), "{}", run.summary);
    assert!(
        run.summary.contains("| + | cluster-2 | payment.secure"),
        "{}",
        run.summary
    );

    // Without the base commit in the clone, the summary says how to get one.
    let run = pull_request(
        &test,
        &workspace,
        &[("MCWAN_BASE", "0123456789abcdef0123456789abcdef01234567")],
    );
    assert_eq!(run.code, Some(0));
    assert!(run.summary.contains("fetch-depth: 0"), "{}", run.summary);
    assert_eq!(run.outputs, "changed=false\n");
}

#[test]
fn the_action_annotates_problems_and_stale_output() {
    let test = Test::empty();
    let (workspace, base) = workspace(&test);
    // The committed output is the base's: stale after the change.
    git(&workspace, &["stash", "-q"]);
    let status = Command::new(env!("CARGO_BIN_EXE_mcwan"))
        .args(["render", "decl", "-o", "rendered"])
        .current_dir(&workspace)
        .status()
        .unwrap();
    assert!(status.success());
    git(&workspace, &["stash", "pop", "-q"]);
    let stale = pull_request(
        &test,
        &workspace,
        &[("MCWAN_BASE", &base), ("MCWAN_OUT", "rendered")],
    );
    assert_eq!(stale.code, Some(1), "{}", stale.stdout);
    assert!(
        stale.stdout.contains("::error file=rendered/"),
        "{}",
        stale.stdout
    );
    assert!(stale.summary.contains("stale"), "{}", stale.summary);

    // An invalid declaration is annotated at its line, with the path from the workspace.
    std::fs::write(
        workspace.join("decl/policies/broken.yaml"),
        "kind: WANPolicy\nspec: [\n",
    )
    .unwrap();
    let invalid = pull_request(&test, &workspace, &[("MCWAN_BASE", &base)]);
    assert_eq!(invalid.code, Some(1), "{}", invalid.stdout);
    assert!(
        invalid
            .stdout
            .contains("::error file=decl/policies/broken.yaml,line="),
        "{}",
        invalid.stdout
    );
}

/// The action runs the script with the inputs the script reads, and the hooks run the
/// commands they name.
#[test]
fn the_action_and_hooks_name_what_exists() {
    let action: serde_json::Value =
        yaml_serde::from_str(&std::fs::read_to_string(root().join("action.yml")).unwrap()).unwrap();
    assert_eq!(action["runs"]["using"], "composite");
    let steps = action["runs"]["steps"].as_array().unwrap();
    let script = std::fs::read_to_string(root().join("deploy/ci/pull-request.sh")).unwrap();
    let check = steps.iter().find(|s| s["id"] == "check").unwrap();
    assert!(check["run"]
        .as_str()
        .unwrap()
        .contains("deploy/ci/pull-request.sh"));
    for name in check["env"].as_object().unwrap().keys() {
        assert!(
            script.contains(&format!("${{{name}:-")),
            "the script does not read {name}"
        );
    }
    for step in steps {
        assert_eq!(step["shell"], "bash", "a composite run step needs a shell");
    }
    let hooks: serde_json::Value = yaml_serde::from_str(
        &std::fs::read_to_string(root().join(".pre-commit-hooks.yaml")).unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = hooks
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mcwan-validate", "mcwan-check"]);
    for hook in hooks.as_array().unwrap() {
        let entry = hook["entry"].as_str().unwrap();
        let verb = entry.strip_prefix("mcwan ").unwrap();
        let mut test = Test::rendered("payment");
        let mut args = vec![verb, "{in}"];
        if verb == "check" {
            args.extend(["-o", "{out}"]);
        }
        test.args(&args).run();
    }
}
