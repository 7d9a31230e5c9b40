//! A pull request is hostile input: what it plants in the declarations or in a committed
//! OUT must not make mcwan read, print or block on anything outside them, nor take unbounded
//! time or memory.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::test::{Output, Test};
use crate::common::yaml_documents;

/// Values that reach templates cannot inject YAML: an annotation full of YAML syntax
/// comes out as the same string, in the same single object.
#[test]
fn annotation_values_cannot_inject_yaml() {
    let mut test = Test::example("payment");
    let hostile =
        "x\"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: pwned}\n# {{ 7*7 }} {% raw %}";
    test.edit(
        "clusters/cluster-1/payment.yaml",
        "mcw.l7mp.io/mc-wan-policy: sd-wan-priority-high",
        &format!(
            "mcw.l7mp.io/mc-wan-policy: sd-wan-priority-high\n    note: {}",
            serde_json::to_string(hostile).unwrap()
        ),
    );
    test.render().run();
    let exported = test.read("{out}/cluster-1/secure/serviceexport-payment.yaml");
    let documents = yaml_documents(exported.as_bytes());
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["metadata"]["annotations"]["note"], hostile);
    assert!(!test.tree("{out}").keys().any(|k| k.contains("secret")));
}

#[test]
fn hostile_sizes_and_depths_are_bounded() {
    let mut test = Test::example("payment");
    let mut text =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: secure, labels: {x: \"");
    text.push_str(&"a".repeat(50 * 1024 * 1024));
    text.push_str("\"}}\n");
    test.write("clusters/cluster-1/huge.yaml", text).write(
        "clusters/cluster-1/deep.yaml",
        format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
    );
    test.within("{in}")
        .args(&["validate", ".", "--format", "github"])
        .code(1)
        .run()
        .stdout_has(
            "file=clusters/cluster-1/huge.yaml,line=1,col=1,title=file-unreadable::file is 524288",
        )
        .stdout_has("file=clusters/cluster-1/deep.yaml,line=1")
        .stdout_has("title=yaml-limit");
    // The limits are flags.
    let raised = test
        .args(&["validate", "{in}", "--format", "github"])
        .args(&["--max-file-bytes", "60000000"])
        .code(1)
        .run();
    assert!(!raised.stdout.contains("huge.yaml"), "{}", raised.stdout);
    // More than 128 is refused.
    test.args(&["validate", "{in}", "--max-depth", "500"])
        .code(2)
        .run();
}

/// The golden tree's file a pull request replaces by something hostile.
const PLANTED: &str = "{out}/cluster-2/secure/serviceentry-mcw-payment.yaml";

/// Regression: `check` and `diff` read a committed OUT through a symbolic link and printed
/// its target in the diff, so a pull request could dump any file the CI job can read.
#[cfg(unix)]
#[test]
fn check_and_diff_print_nothing_through_a_link_in_out() {
    let mut test = Test::rendered("payment");
    test.write("{temp}/secret", "TOP-SECRET\n")
        .remove(PLANTED)
        .symlink(PLANTED, "{temp}/secret");
    for verb in ["check", "diff"] {
        let output = test.args(&[verb, "{in}", "-o", "{out}"]).code(2).run();
        let text = output.printed();
        assert!(text.contains("not a regular file"), "{verb}: {text}");
        assert!(!text.contains("TOP-SECRET"), "{verb}: {text}");
    }
}

/// Regression: a FIFO in OUT made `check` block forever on opening it.
#[cfg(unix)]
#[test]
fn check_never_opens_a_fifo_in_out() {
    let mut test = Test::rendered("payment");
    test.remove(PLANTED);
    let status = Command::new("mkfifo")
        .arg(test.path(PLANTED))
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let mut child = test.check().spawn();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("check blocked on a FIFO in OUT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(2));
}

/// Regression: a schema message echoed the whole offending value (a list of thousands of
/// items made a diagnostic of megabytes).
#[test]
fn a_huge_value_is_not_echoed_in_a_diagnostic() {
    let mut test = Test::example("payment");
    let namespaces: Vec<String> = (0..5000).map(|i| format!("ns-{i}")).collect();
    test.edit(
        "clusterset.yaml",
        "namespaces: [secure, insecure]",
        &format!("namespaces: {{list: [{}]}}", namespaces.join(", ")),
    );
    let output = test
        .args(&["validate", "{in}", "--format", "github"])
        .code(1)
        .run();
    let text = output.printed();
    assert!(
        text.contains("an object of 1 fields") || text.contains("is not of type"),
        "{text}"
    );
    assert!(
        !text.contains("ns-4999"),
        "the value was echoed: {} bytes",
        text.len()
    );
    assert!(text.len() < 4096, "{} bytes of diagnostics", text.len());
}

/// Regression: `OUT` inside `clusters/` was refused, but not when written with `..` after
/// a directory that does not exist yet, which render creates and then resolves.
#[test]
fn out_inside_the_declarations_is_refused_however_it_is_spelled() {
    let mut test = Test::example("payment");
    let output = test
        .args(&[
            "render",
            "{in}",
            "-o",
            "{in}/missing/../clusters/cluster-1/out",
        ])
        .code(2)
        .run();
    let text = output.printed();
    assert!(text.contains("is inside `clusters`"), "{text}");
    assert!(!test.path("clusters/cluster-1/out").exists());
    assert!(!test.path("missing").exists());
}

/// Regression: the lock file was opened through a symbolic link planted at its name, which
/// created or wrote the link's target.
#[cfg(unix)]
#[test]
fn the_lock_is_never_opened_through_a_link() {
    let mut test = Test::example("payment");
    test.symlink("{temp}/.fresh.mcwan-lock", "{temp}/elsewhere");
    let output = test
        .args(&["render", "{in}", "-o", "{temp}/fresh"])
        .code(2)
        .run();
    assert!(output.printed().contains("not a regular file"));
    assert!(
        !test.path("{temp}/elsewhere").exists(),
        "the lock was created through the link"
    );
    assert!(!test.path("{temp}/fresh").exists());
}

/// Regression: a user's directory named like a staging directory beside OUT was deleted.
#[test]
fn a_directory_named_like_a_staging_one_is_kept() {
    let mut test = Test::example("payment");
    let mine = "{temp}/.fresh.mcwan-staging-notes/keep.txt";
    test.write(mine, "mine");
    test.args(&["render", "{in}", "-o", "{temp}/fresh"]).run();
    assert_eq!(test.read(mine), "mine");
    assert!(
        !test.path("{temp}/fresh/.mcwan-staging").exists(),
        "the staging marker reached OUT"
    );
}

/// Regression: the verbs wrote their temporary file through a link planted at its name,
/// overwriting the link's target.
#[cfg(unix)]
#[test]
fn verbs_never_write_through_a_planted_temporary_link() {
    let mut test = Test::example("payment");
    test.write("{temp}/victim", "untouched");
    // Plant a link at the temporary name of every YAML file the verb may rewrite.
    let mut planted = 0;
    for file in test.tree("{in}").into_keys() {
        if let Some(stem) = file.strip_suffix(".yaml") {
            test.symlink(&format!("{stem}.mcwan-edit"), "{temp}/victim");
            planted += 1;
        }
    }
    assert!(planted > 2);
    test.args(&[
        "unimport",
        "insecure/logging",
        "--cluster",
        "cluster-1",
        "{in}",
    ])
    .run();
    assert_eq!(test.read("{temp}/victim"), "untouched");
    assert!(test.read("clusterset.yaml").contains("insecure/logging"));
}

/// Wall time and peak memory of `mcwan validate --format github` on the payment example
/// plus one hostile file, which must exit 1, with its output. Memory comes from
/// `/usr/bin/time` when the machine has it.
fn validate_with(hostile: &str) -> (Duration, Option<u64>, Output) {
    let mut test = Test::example("payment");
    test.write("clusters/cluster-1/hostile.yaml", hostile);
    let timed = Path::new("/usr/bin/time").exists();
    if timed {
        test.under(&["/usr/bin/time", "-f", "%M", "-o", "{temp}/peak"]);
    }
    let started = Instant::now();
    let output = test
        .args(&["validate", "{in}", "--format", "github"])
        .code(1)
        .run();
    let elapsed = started.elapsed();
    let kib = timed
        .then(|| test.read("{temp}/peak"))
        .and_then(|text| text.lines().last()?.trim().parse().ok());
    (elapsed, kib, output)
}

/// Regression: deep flow nesting was quadratic in both YAML scanners (minutes for 8 MiB),
/// a million tiny documents or a list of millions of items took tens of seconds and
/// gigabytes, and their diagnostics ran to hundreds of megabytes. Each file here is within
/// the 8 MiB file limit; the bounds are generous for a loaded machine and a debug build
/// (bench/hostile.sh measures the release build).
#[test]
fn hostile_files_load_in_bounded_time_and_memory() {
    const BYTES: usize = 8_000_000;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "flow nesting",
            format!("a: {}", "[".repeat(BYTES)),
            "yaml-limit::flow collections",
        ),
        (
            "nesting behind a quote the scanner does not see",
            format!("a: [\"{}\", {}", "]".repeat(1000), "[".repeat(BYTES)),
            "yaml-limit::flow collections",
        ),
        (
            "a million documents",
            "a: 1\n---\n".repeat(BYTES / 9),
            "yaml-limit::file holds more than 10000 documents",
        ),
        (
            "millions of list items",
            format!("a:\n{}", "- a\n".repeat(BYTES / 4)),
            "yaml-limit::file holds more than 500000",
        ),
        (
            "millions of flow items",
            format!("a: [{}]", "a,".repeat(BYTES / 2)),
            "yaml-limit::file holds more than 500000",
        ),
        (
            "long keys nested deep",
            long_keys_nested_deep(BYTES),
            "missing-field",
        ),
        (
            "a hundred thousand unknown fields",
            format!(
                "apiVersion: mcw.l7mp.io/v1alpha1\nkind: WANRoute\nmetadata: {{name: s, namespace: secure}}\nspec:\n{}",
                (0..100_000).fold(String::new(), |mut text, i| {
                    let _ = writeln!(text, "  f{i}: 1");
                    text
                })
            ),
            "title=diagnostics-truncated::99901 more problem(s)",
        ),
    ];
    for (name, text, expected) in cases {
        assert!(
            text.len() <= 8 * 1024 * 1024,
            "{name} is within the file limit"
        );
        let (elapsed, kib, output) = validate_with(&text);
        let printed = output.printed();
        assert!(
            printed.contains(expected),
            "{name}: {}",
            &printed[..printed.len().min(2000)]
        );
        assert!(
            printed.len() < 100_000,
            "{name}: {} bytes of diagnostics",
            printed.len()
        );
        assert!(elapsed < Duration::from_secs(30), "{name}: {elapsed:?}");
        if let Some(kib) = kib {
            assert!(kib < 1024 * 1024, "{name}: {kib} KiB");
        }
    }
}

/// Thirty mappings nested under 100 KB keys (explicit `?` keys, as implicit ones stop at
/// 1024 characters), and as many short keys at the bottom as fit: recorded naively, every
/// field's position would carry a 3 MB path.
fn long_keys_nested_deep(bytes: usize) -> String {
    let key = "k".repeat(100_000);
    let mut text = String::new();
    for depth in 0..30 {
        let indent = " ".repeat(2 * depth);
        let _ = write!(text, "{indent}? {key}\n{indent}:\n");
    }
    let mut i = 0;
    while text.len() + 80 < bytes {
        let _ = writeln!(text, "{}x{i}: 1", " ".repeat(60));
        i += 1;
    }
    text
}

/// Regression: names such as `yes`, `on`, `y` and `off` were written unquoted, and YAML 1.1
/// readers (`kubectl` through go-yaml v2, PyYAML) read them as booleans. The payment example
/// with its namespace, service, cluster and policy renamed so is rendered, and every file
/// is read by PyYAML, a YAML 1.1 reader, which must see the same values YAML 1.2 does.
/// Skipped, saying so, where python3 has no PyYAML, except in CI, which installs it.
#[test]
fn yaml_1_1_words_as_names_read_back_as_strings() {
    let has_pyyaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyyaml {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have PyYAML: .ci/run installs it"
        );
        eprintln!("skipped: python3 with PyYAML (a YAML 1.1 reader) is not installed");
        return;
    }
    let mut test = Test::example("payment");
    fs::rename(test.path("clusters/cluster-1"), test.path("clusters/y")).unwrap();
    rename_everywhere(
        &mut test,
        &[
            ("secure", "yes"),
            ("payment", "on"),
            ("cluster-1", "y"),
            ("sd-wan-priority-high", "off"),
        ],
    );
    test.render().run();
    let script = "import json, sys, yaml\n\
                  print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1]))), sort_keys=True))";
    let mut checked = 0;
    for (file, bytes) in test.tree("{out}") {
        if Path::new(&file).extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let expected = yaml_documents(&bytes);
        let path = test.path(&format!("{{out}}/{file}"));
        let python = Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            python.status.success(),
            "{}{}",
            String::from_utf8_lossy(&python.stdout),
            String::from_utf8_lossy(&python.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&python.stdout).unwrap();
        assert_eq!(
            read,
            serde_json::Value::from(expected),
            "{}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 10, "{checked} files");
}

/// Replaces each `(old, new)` pair, in order, in every file of the declarations.
fn rename_everywhere(test: &mut Test, pairs: &[(&str, &str)]) {
    for (file, bytes) in test.tree("{in}") {
        let mut text = String::from_utf8(bytes).unwrap();
        for (old, new) in pairs {
            text = text.replace(old, new);
        }
        test.write(&file, text);
    }
}

/// Regression: a hand-edited provenance whose `owns` listed `.git`, `README.md` or any
/// directory made render delete them. What it claims beyond the names mcwan writes (the
/// summary, `sdwan/`, cluster directories with their kustomization) is not honoured.
#[test]
fn a_forged_provenance_cannot_make_render_delete_what_mcwan_did_not_write() {
    let mut test = Test::rendered("payment");
    test.write("{out}/.git/HEAD", "ref: refs/heads/main\n")
        .write("{out}/README.md", "mine\n")
        .write("{out}/docs/notes.txt", "mine\n");
    let provenance = "{out}/mcwan-provenance.json";
    let mut recorded: serde_json::Value = serde_json::from_str(&test.read(provenance)).unwrap();
    let owns = recorded["owns"].as_array_mut().unwrap();
    owns.extend([".git", "README.md", "docs"].map(serde_json::Value::from));
    test.write(provenance, recorded.to_string());
    test.render().run();
    assert_eq!(test.read("{out}/.git/HEAD"), "ref: refs/heads/main\n");
    assert_eq!(test.read("{out}/README.md"), "mine\n");
    assert_eq!(test.read("{out}/docs/notes.txt"), "mine\n");
}

/// Regression: foreign entries of OUT were copied into the new OUT, losing their mode,
/// times and hard links, and filling sparse files. They are carried by hard link now: the
/// same inodes come through.
#[cfg(unix)]
#[test]
fn foreign_entries_come_through_a_render_as_the_same_files() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut test = Test::rendered("payment");
    let notes = test.path("{out}/notes");
    test.write("{out}/notes/a.txt", "a\n");
    fs::hard_link(notes.join("a.txt"), notes.join("b.txt")).unwrap();
    fs::set_permissions(notes.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let sparse = fs::File::create(notes.join("sparse")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    sparse.set_modified(old).unwrap();
    drop(sparse);
    fs::set_permissions(&notes, fs::Permissions::from_mode(0o750)).unwrap();
    let before: Vec<_> = ["a.txt", "b.txt", "sparse"]
        .map(|n| fs::metadata(notes.join(n)).unwrap())
        .into();
    test.render().run();
    let after: Vec<_> = ["a.txt", "b.txt", "sparse"]
        .map(|n| fs::metadata(notes.join(n)).unwrap())
        .into();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (a.ino(), a.mode(), a.mtime(), a.nlink()),
            (b.ino(), b.mode(), b.mtime(), b.nlink())
        );
    }
    assert_eq!(after[0].nlink(), 2, "a.txt and b.txt are still one file");
    assert!(after[2].blocks() < 64, "the sparse file was not filled");
    assert_eq!(fs::metadata(&notes).unwrap().mode() & 0o777, 0o750);
}

/// Runs `script` (with `$MCWAN`, `$REPO`, `$OUT` set, `$OUT` to `out`) as root of a new
/// user and mount namespace, where it may mount a tmpfs; `None` where this machine does not
/// allow that.
#[cfg(target_os = "linux")]
fn in_mount_namespace(script: &str, test: &Test, out: &str) -> Option<std::process::Output> {
    let allowed = Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !allowed {
        eprintln!("skipped: `unshare -rm` (user and mount namespaces) is not allowed here");
        return None;
    }
    let output = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("MCWAN", env!("CARGO_BIN_EXE_mcwan"))
        .env("REPO", test.path("{in}"))
        .env("OUT", test.path(out))
        .output()
        .unwrap();
    Some(output)
}

/// Stdout then stderr of a command that is not mcwan.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Regression: a filesystem mounted inside OUT moved with the swap and was then emptied
/// with the previous OUT. Now render refuses, naming the mount point, and it keeps its
/// contents.
#[cfg(target_os = "linux")]
#[test]
fn a_mount_inside_out_is_refused_and_keeps_its_contents() {
    let test = Test::rendered("payment");
    fs::create_dir(test.path("{out}/volume")).unwrap();
    let script = r#"mount -t tmpfs none "$OUT/volume" && echo kept > "$OUT/volume/data" &&
        "$MCWAN" render "$REPO" -o "$OUT"; echo "exit=$?"; cat "$OUT/volume/data""#;
    let Some(output) = in_mount_namespace(script, &test, "{out}") else {
        return;
    };
    let text = printed(&output);
    assert!(text.contains("is a mount point inside OUT"), "{text}");
    assert!(text.contains("exit=2\nkept\n"), "{text}");
}

/// Regression: an OUT that is itself a mount point (a container volume) failed with
/// "Device or resource busy". It is refused with what to do instead.
#[cfg(target_os = "linux")]
#[test]
fn an_out_that_is_a_mount_point_is_refused_with_what_to_do() {
    let test = Test::example("payment");
    fs::create_dir(test.path("{temp}/volume")).unwrap();
    let script =
        r#"mount -t tmpfs none "$OUT" && "$MCWAN" render "$REPO" -o "$OUT"; echo "exit=$?""#;
    let Some(output) = in_mount_namespace(script, &test, "{temp}/volume") else {
        return;
    };
    let text = printed(&output);
    assert!(
        text.contains("is a mount point") && text.contains("render into a directory inside it"),
        "{text}"
    );
    assert!(text.contains("exit=2"), "{text}");
}

/// Regression: a held lock made render wait silently forever. It says that it waits and
/// for whom (the holder records itself in the lock), and `--lock-timeout` bounds the wait.
#[test]
fn a_held_lock_is_announced_and_the_wait_can_be_bounded() {
    let mut test = Test::rendered("payment");
    let lock = "{temp}/.out.mcwan-lock";
    test.write(lock, "mcwan render (process 4242)");
    let held = fs::File::options()
        .read(true)
        .write(true)
        .open(test.path(lock))
        .unwrap();
    held.lock().unwrap();
    let started = Instant::now();
    let output = test.render().args(&["--lock-timeout", "1"]).code(2).run();
    let text = output.printed();
    assert!(
        text.contains("waiting for mcwan render (process 4242) to finish")
            && text.contains("giving up after 1 s")
            && text.contains("still holds"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    held.unlock().unwrap();
    test.render().run();
    let recorded = test.read(lock);
    assert!(recorded.starts_with("mcwan render (process "), "{recorded}");
}

/// Regression: the verbs wrote LF lines into a CRLF file. The file keeps its line endings.
#[test]
fn verbs_keep_a_files_crlf_line_endings() {
    let mut test = Test::example("payment");
    let crlf = test.read("clusterset.yaml").replace('\n', "\r\n");
    test.write("clusterset.yaml", &crlf);
    for verb in ["unimport", "import"] {
        test.args(&[verb, "insecure/logging", "--cluster", "cluster-1", "{in}"])
            .run();
        let text = test.read("clusterset.yaml");
        assert_eq!(
            text.matches('\n').count(),
            text.matches("\r\n").count(),
            "{verb}: {text:?}"
        );
    }
    assert_eq!(
        test.read("clusterset.yaml").lines().count(),
        crlf.lines().count()
    );
}

/// Regression: a NUL byte was reported at line 1, column 1, not where it is.
#[test]
fn a_nul_byte_is_reported_where_it_is() {
    let mut test = Test::example("payment");
    test.write(
        "clusters/cluster-1/nul.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\0y\n",
    );
    test.within("{in}")
        .args(&["validate", ".", "--format", "github"])
        .code(1)
        .run()
        .stdout_has("file=clusters/cluster-1/nul.yaml,line=4,col=10,title=yaml-syntax");
}

/// Regression: links to directories in the declarations (`policies -> /elsewhere`,
/// `clusters/x -> $HOME`) were followed and their files quoted in diagnostics. Each link is
/// reported as `file-symlink` and never read.
#[cfg(unix)]
#[test]
fn linked_directories_in_the_declarations_are_reported_not_read() {
    let mut test = Test::example("payment");
    test.write("{temp}/elsewhere/secret.yaml", "TOP-SECRET: [unclosed\n");
    fs::rename(test.path("policies"), test.path("{temp}/policies")).unwrap();
    let links = ["policies", "clusters/cluster-9", "clusters/cluster-1/more"];
    for link in links {
        test.symlink(link, "{temp}/elsewhere");
    }
    let output = test
        .within("{in}")
        .args(&["validate", ".", "--format", "github"])
        .code(1)
        .run();
    let text = output.printed();
    for link in links {
        assert!(
            text.contains(&format!("file={link},line=1,col=1,title=file-symlink")),
            "{link}: {text}"
        );
    }
    assert!(
        !text.contains("TOP-SECRET") && !text.contains("secret.yaml"),
        "{text}"
    );
}

/// Regression: generated names joined service and policy with `-`, so service `pay` with
/// policy `high-prio` and service `pay-high` with policy `prio` both made
/// `mcw-pay-high-prio`: one file overwrote the other and kustomize failed. Every rendered
/// object now has its own (kind, namespace, name) and its own file.
#[test]
fn service_and_policy_pairs_that_join_alike_get_distinct_objects() {
    let mut test = Test::example("payment");
    let pairs = [
        ("sd-wan-priority-high", "high-prio"),
        ("sd-wan-priority-low", "prio"),
    ];
    rename_everywhere(&mut test, &pairs);
    for (old, new) in pairs {
        fs::rename(
            test.path(&format!("policies/{old}.yaml")),
            test.path(&format!("policies/{new}.yaml")),
        )
        .unwrap();
    }
    let service = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: secure}}\nspec:\n  ports: [{{name: http, port: 8080}}]\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: {name}\n  namespace: secure\n  annotations: {{mcw.l7mp.io/mc-wan-policy: {policy}}}\n---\n"
        )
    };
    test.write(
        "clusters/cluster-1/pairs.yaml",
        service("pay", "high-prio") + &service("pay-high", "prio"),
    );
    test.render().run();
    let mut seen = std::collections::BTreeSet::new();
    let mut files = 0;
    for (file, bytes) in test.tree("{out}/cluster-1") {
        if file.ends_with("kustomization.yaml") {
            continue;
        }
        let object: serde_json::Value =
            yaml_serde::from_str(std::str::from_utf8(&bytes).unwrap()).unwrap();
        let key = (
            object["kind"].to_string(),
            object["metadata"]["namespace"].to_string(),
            object["metadata"]["name"].to_string(),
        );
        assert!(seen.insert(key.clone()), "{key:?} twice");
        files += 1;
    }
    assert_eq!(seen.len(), files);
    for name in ["mcw-pay.high-prio", "mcw-pay-high.prio"] {
        assert!(
            test.path(&format!("{{out}}/cluster-1/secure/httproute-{name}.yaml"))
                .is_file(),
            "{name}"
        );
    }
}

/// Regression: `--max-depth` was parsed and then ignored; only the default applied.
#[test]
fn the_max_depth_flag_is_applied() {
    let mut test = Test::example("payment");
    let deep = "clusters/cluster-1/deep.yaml";
    let validate = |test: &mut Test, depth: &[&str], code: i32| {
        test.args(&["validate", "{in}", "--format", "github"])
            .args(depth)
            .code(code)
            .run()
    };
    test.write(
        deep,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: secure\n  labels: {a: [[[[x]]]]}\n",
    );
    validate(&mut test, &["--max-depth", "5"], 1)
        .stdout_has("title=yaml-limit::document nests more than 5 levels deep");
    test.write(
        deep,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: secure\n  labels:\n    a:\n      b:\n        c:\n          d: x\n",
    );
    validate(&mut test, &["--max-depth", "4"], 1)
        .stdout_has("title=yaml-limit::document nests more than 4 levels deep");
    let default = validate(&mut test, &[], 1);
    assert!(
        !default.printed().contains("yaml-limit"),
        "{}",
        default.printed()
    );
}
