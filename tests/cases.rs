//! The data-driven tests, one test each, so that each can fail and run alone
//! (`cargo test --test cases -- invalid::yaml-limit`): every example renders to its golden
//! tree, and every `tests/invalid/*.case` reports its diagnostics and keeps a previous OUT.
//! Adding an example or a case adds a test, with no code. `MCWAN_BLESS=1` rewrites them.

// A `Test` is `test`, beside the `text` it reads and writes.
#![allow(clippy::similar_names)]

mod common;

use std::fs;
use std::path::Path;

use libtest_mimic::{Arguments, Trial};

use common::test::Test;
use common::{
    apply_case, assert_same_tree, bless, case_files, example_names, parse_case, read_tree, root,
    write_tree,
};

fn main() {
    let arguments = Arguments::from_args();
    let mut trials: Vec<Trial> = example_names()
        .into_iter()
        .map(|name| {
            Trial::test(format!("golden::{name}"), move || {
                golden(&name);
                Ok(())
            })
        })
        .collect();
    for file in case_files() {
        let name = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        trials.push(Trial::test(format!("invalid::{name}"), move || {
            invalid(&file);
            Ok(())
        }));
    }
    trials.push(Trial::test("every_diagnostic_code_has_a_case", || {
        every_diagnostic_code_has_a_case();
        Ok(())
    }));
    libtest_mimic::run(&arguments, trials).exit();
}

/// `examples/<name>` renders to `golden/<name>`, byte for byte.
fn golden(name: &str) {
    let mut test = Test::example(name);
    test.render().run();
    let actual = test.tree("{out}");
    let golden = root().join("golden").join(name);
    if bless() {
        let _ = fs::remove_dir_all(&golden);
        write_tree(&golden, &actual);
    }
    assert_same_tree(&read_tree(&golden), &actual, &format!("golden/{name}"));
}

/// Every invalid input is reported with its code and `file:line:col`, exits 1, and leaves
/// a previously rendered OUT byte-identical.
fn invalid(file: &Path) {
    let case = parse_case(file);
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let mut test = Test::empty();
    apply_case(&case, &test.path("{in}"));
    // Whether validate must fail is known only from its output, when blessing. Run in the
    // repository, as CI does, so that paths are printed as they are within it.
    let output = test
        .within("{in}")
        .args(&["validate", ".", "--format", "github"])
        .args(&args)
        .command()
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    if bless() {
        let text = fs::read_to_string(file).unwrap();
        let head = text.split("\n--- expect\n").next().unwrap();
        fs::write(file, format!("{head}\n--- expect\n{stdout}")).unwrap();
    } else {
        assert_eq!(
            stdout,
            case.expect,
            "{}: diagnostics differ",
            file.display()
        );
    }
    let has_errors = stdout.lines().any(|l| l.starts_with("::error"));
    assert!(
        !stdout.is_empty(),
        "{}: no diagnostic at all",
        file.display()
    );
    assert_eq!(
        output.status.code(),
        Some(i32::from(has_errors)),
        "{}: validate exit code",
        file.display()
    );
    if has_errors && !bless() {
        let base = format!("{{root}}/examples/{}", case.base);
        test.args(&["render", &base, "-o", "{out}"]).run();
        let before = test.tree("{out}");
        test.render().args(&args).code(1).run();
        assert_same_tree(
            &before,
            &test.tree("{out}"),
            &format!("{}: OUT after a failed render", file.display()),
        );
    }
}

/// Each documented diagnostic code has at least one invalid-input case that produces it.
fn every_diagnostic_code_has_a_case() {
    let docs = fs::read_to_string(root().join("docs/diagnostics.md")).unwrap();
    let codes: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
        .collect();
    let mut seen = String::new();
    for file in case_files() {
        seen.push_str(&parse_case(&file).expect);
    }
    let missing: Vec<_> = codes
        .iter()
        .filter(|c| !seen.contains(&format!("title={c}::")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a case in tests/invalid: {missing:?}"
    );
}
