//! A pull request is hostile input: what it plants in the declarations or in a committed
//! OUT must not make mcwan read, print or block on anything outside them.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{copy, root};

fn mcwan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcwan"))
        .args(args)
        .output()
        .unwrap()
}

/// The payment example and its golden output, in a scratch directory.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    let out = temp.path().join("out");
    copy(&root().join("examples/payment"), &input);
    copy(&root().join("golden/payment"), &out);
    (temp, input, out)
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Regression: `check` and `diff` read a committed OUT through a symbolic link and printed
/// its target in the diff, so a pull request could dump any file the CI job can read.
#[cfg(unix)]
#[test]
fn check_and_diff_print_nothing_through_a_link_in_out() {
    let (temp, input, out) = scratch();
    let secret = temp.path().join("secret");
    fs::write(&secret, "TOP-SECRET\n").unwrap();
    let planted = out.join("cluster-2/secure/serviceentry-mcw-payment.yaml");
    fs::remove_file(&planted).unwrap();
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    for verb in ["check", "diff"] {
        let output = mcwan(&[verb, input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let text = printed(&output);
        assert_eq!(output.status.code(), Some(2), "{verb}: {text}");
        assert!(text.contains("not a regular file"), "{verb}: {text}");
        assert!(!text.contains("TOP-SECRET"), "{verb}: {text}");
    }
}

/// Regression: a FIFO in OUT made `check` block forever on opening it.
#[cfg(unix)]
#[test]
fn check_never_opens_a_fifo_in_out() {
    let (_temp, input, out) = scratch();
    let planted = out.join("cluster-2/secure/serviceentry-mcw-payment.yaml");
    fs::remove_file(&planted).unwrap();
    let status = Command::new("mkfifo").arg(&planted).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcwan"))
        .args([
            "check",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
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
    let (_temp, input, _) = scratch();
    let namespaces: Vec<String> = (0..5000).map(|i| format!("ns-{i}")).collect();
    let path = input.join("clusterset.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "namespaces: [secure, insecure]",
        &format!("namespaces: {{list: [{}]}}", namespaces.join(", ")),
        1,
    );
    fs::write(&path, text).unwrap();
    let output = mcwan(&["validate", input.to_str().unwrap(), "--format", "github"]);
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
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
    let (_temp, input, _) = scratch();
    let sneaky = input.join("missing/../clusters/cluster-1/out");
    let output = mcwan(&[
        "render",
        input.to_str().unwrap(),
        "-o",
        sneaky.to_str().unwrap(),
    ]);
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("is inside `clusters`"), "{text}");
    assert!(!input.join("clusters/cluster-1/out").exists());
    assert!(!input.join("missing").exists());
}

/// Regression: the lock file was opened through a symbolic link planted at its name, which
/// created or wrote the link's target.
#[cfg(unix)]
#[test]
fn the_lock_is_never_opened_through_a_link() {
    let (temp, input, _) = scratch();
    let out = temp.path().join("fresh");
    let target = temp.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, temp.path().join(".fresh.mcwan-lock")).unwrap();
    let output = render(&input, &out);
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    assert!(printed(&output).contains("not a regular file"));
    assert!(!target.exists(), "the lock was created through the link");
    assert!(!out.exists());
}

/// Regression: a user's directory named like a staging directory beside OUT was deleted.
#[test]
fn a_directory_named_like_a_staging_one_is_kept() {
    let (temp, input, _) = scratch();
    let out = temp.path().join("fresh");
    let mine = temp.path().join(".fresh.mcwan-staging-notes");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join("keep.txt"), "mine").unwrap();
    let output = render(&input, &out);
    assert!(output.status.success(), "{}", printed(&output));
    assert_eq!(fs::read_to_string(mine.join("keep.txt")).unwrap(), "mine");
    assert!(
        !out.join(".mcwan-staging").exists(),
        "the staging marker reached OUT"
    );
}

/// Regression: the verbs wrote their temporary file through a link planted at its name,
/// overwriting the link's target.
#[cfg(unix)]
#[test]
fn verbs_never_write_through_a_planted_temporary_link() {
    let (temp, input, _) = scratch();
    let victim = temp.path().join("victim");
    fs::write(&victim, "untouched").unwrap();
    // Plant a link at the temporary name of every YAML file the verb may rewrite.
    let mut planted = 0;
    for entry in walk(&input) {
        if entry.extension().is_some_and(|e| e == "yaml") {
            std::os::unix::fs::symlink(&victim, entry.with_extension("mcwan-edit")).unwrap();
            planted += 1;
        }
    }
    assert!(planted > 2);
    let output = mcwan(&[
        "unimport",
        "insecure/logging",
        "--cluster",
        "cluster-1",
        input.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", printed(&output));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(fs::read_to_string(input.join("clusterset.yaml"))
        .unwrap()
        .contains("insecure/logging"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Wall time and peak memory of `mcwan validate --format github` on the payment example
/// plus one hostile file, with its output. Memory comes from `/usr/bin/time` when the
/// machine has it.
fn validate_with(hostile: &str) -> (Duration, Option<u64>, Output) {
    let (_temp, input, _) = scratch();
    fs::write(input.join("clusters/cluster-1/hostile.yaml"), hostile).unwrap();
    let time = Path::new("/usr/bin/time");
    let started = Instant::now();
    let args = ["validate", input.to_str().unwrap(), "--format", "github"];
    let output = if time.exists() {
        let temp = tempfile::NamedTempFile::new().unwrap();
        let output = Command::new(time)
            .args(["-f", "%M", "-o", temp.path().to_str().unwrap()])
            .arg(env!("CARGO_BIN_EXE_mcwan"))
            .args(args)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let kib = fs::read_to_string(temp.path()).unwrap();
        let kib = kib.lines().last().and_then(|l| l.trim().parse().ok());
        return (elapsed, kib, output);
    } else {
        mcwan(&args)
    };
    (started.elapsed(), None, output)
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
        let printed = printed(&output);
        assert_eq!(output.status.code(), Some(1), "{name}");
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
    let temp = tempfile::tempdir().unwrap();
    let (input, out) = (temp.path().join("repo"), temp.path().join("out"));
    copy(&root().join("examples/payment"), &input);
    fs::rename(input.join("clusters/cluster-1"), input.join("clusters/y")).unwrap();
    for file in walk(&input) {
        let text = fs::read_to_string(&file).unwrap();
        let renamed = text
            .replace("secure", "yes")
            .replace("payment", "on")
            .replace("cluster-1", "y")
            .replace("sd-wan-priority-high", "off");
        fs::write(&file, renamed).unwrap();
    }
    let output = render(&input, &out);
    assert!(output.status.success(), "{}", printed(&output));
    let script = "import json, sys, yaml\n\
                  print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1]))), sort_keys=True))";
    let mut checked = 0;
    for file in walk(&out) {
        if file.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let expected: Vec<serde_json::Value> = yaml_serde::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let python = Command::new("python3")
            .args(["-c", script, file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(python.status.success(), "{}", printed(&python));
        let read: serde_json::Value = serde_json::from_slice(&python.stdout).unwrap();
        assert_eq!(
            read,
            serde_json::Value::from(expected),
            "{}",
            file.display()
        );
        checked += 1;
    }
    assert!(checked > 10, "{checked} files");
}

fn render(input: &Path, out: &Path) -> Output {
    mcwan(&[
        "render",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

/// Regression: a hand-edited provenance whose `owns` listed `.git`, `README.md` or any
/// directory made render delete them. What it claims beyond the names mcwan writes (the
/// summary, `sdwan/`, cluster directories with their kustomization) is not honoured.
#[test]
fn a_forged_provenance_cannot_make_render_delete_what_mcwan_did_not_write() {
    let (_temp, input, out) = scratch();
    fs::create_dir_all(out.join(".git")).unwrap();
    fs::write(out.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::write(out.join("README.md"), "mine\n").unwrap();
    fs::create_dir_all(out.join("docs")).unwrap();
    fs::write(out.join("docs/notes.txt"), "mine\n").unwrap();
    let provenance = out.join("mcwan-provenance.json");
    let mut recorded: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&provenance).unwrap()).unwrap();
    let owns = recorded["owns"].as_array_mut().unwrap();
    owns.extend([".git", "README.md", "docs"].map(serde_json::Value::from));
    fs::write(&provenance, recorded.to_string()).unwrap();
    let output = render(&input, &out);
    assert!(output.status.success(), "{}", printed(&output));
    assert_eq!(
        fs::read_to_string(out.join(".git/HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    assert_eq!(fs::read_to_string(out.join("README.md")).unwrap(), "mine\n");
    assert_eq!(
        fs::read_to_string(out.join("docs/notes.txt")).unwrap(),
        "mine\n"
    );
}

/// Regression: foreign entries of OUT were copied into the new OUT, losing their mode,
/// times and hard links, and filling sparse files. They are carried by hard link now: the
/// same inodes come through.
#[cfg(unix)]
#[test]
fn foreign_entries_come_through_a_render_as_the_same_files() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (_temp, input, out) = scratch();
    let notes = out.join("notes");
    fs::create_dir(&notes).unwrap();
    fs::write(notes.join("a.txt"), "a\n").unwrap();
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
    let output = render(&input, &out);
    assert!(output.status.success(), "{}", printed(&output));
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

/// Runs `script` (with `$MCWAN`, `$REPO`, `$OUT` set) as root of a new user and mount
/// namespace, where it may mount a tmpfs; `None` where this machine does not allow that.
#[cfg(target_os = "linux")]
fn in_mount_namespace(script: &str, input: &Path, out: &Path) -> Option<Output> {
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
        .env("REPO", input)
        .env("OUT", out)
        .output()
        .unwrap();
    Some(output)
}

/// Regression: a filesystem mounted inside OUT moved with the swap and was then emptied
/// with the previous OUT. Now render refuses, naming the mount point, and it keeps its
/// contents.
#[cfg(target_os = "linux")]
#[test]
fn a_mount_inside_out_is_refused_and_keeps_its_contents() {
    let (_temp, input, out) = scratch();
    fs::create_dir(out.join("volume")).unwrap();
    let script = r#"mount -t tmpfs none "$OUT/volume" && echo kept > "$OUT/volume/data" &&
        "$MCWAN" render "$REPO" -o "$OUT"; echo "exit=$?"; cat "$OUT/volume/data""#;
    let Some(output) = in_mount_namespace(script, &input, &out) else {
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
    let (temp, input, _) = scratch();
    let out = temp.path().join("volume");
    fs::create_dir(&out).unwrap();
    let script =
        r#"mount -t tmpfs none "$OUT" && "$MCWAN" render "$REPO" -o "$OUT"; echo "exit=$?""#;
    let Some(output) = in_mount_namespace(script, &input, &out) else {
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
    let (temp, input, out) = scratch();
    let path = temp.path().join(".out.mcwan-lock");
    fs::write(&path, "mcwan render (process 4242)").unwrap();
    let held = fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    held.lock().unwrap();
    let started = Instant::now();
    let output = mcwan(&[
        "render",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--lock-timeout",
        "1",
    ]);
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("waiting for mcwan render (process 4242) to finish")
            && text.contains("giving up after 1 s")
            && text.contains("still holds"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    held.unlock().unwrap();
    let output = render(&input, &out);
    assert!(output.status.success(), "{}", printed(&output));
    let recorded = fs::read_to_string(&path).unwrap();
    assert!(recorded.starts_with("mcwan render (process "), "{recorded}");
}

/// Regression: the verbs wrote LF lines into a CRLF file. The file keeps its line endings.
#[test]
fn verbs_keep_a_files_crlf_line_endings() {
    let (_temp, input, _) = scratch();
    let clusterset = input.join("clusterset.yaml");
    let crlf = fs::read_to_string(&clusterset)
        .unwrap()
        .replace('\n', "\r\n");
    fs::write(&clusterset, &crlf).unwrap();
    let dir = input.to_str().unwrap();
    for verb in ["unimport", "import"] {
        let output = mcwan(&[verb, "insecure/logging", "--cluster", "cluster-1", dir]);
        assert!(output.status.success(), "{verb}: {}", printed(&output));
        let text = fs::read_to_string(&clusterset).unwrap();
        assert_eq!(
            text.matches('\n').count(),
            text.matches("\r\n").count(),
            "{verb}: {text:?}"
        );
    }
    assert_eq!(
        fs::read_to_string(&clusterset).unwrap().lines().count(),
        crlf.lines().count()
    );
}

/// Regression: a NUL byte was reported at line 1, column 1, not where it is.
#[test]
fn a_nul_byte_is_reported_where_it_is() {
    let (_temp, input, _) = scratch();
    let file = input.join("clusters/cluster-1/nul.yaml");
    fs::write(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\0y\n",
    )
    .unwrap();
    let output = mcwan(&["validate", input.to_str().unwrap(), "--format", "github"]);
    assert!(
        printed(&output)
            .contains("file=clusters/cluster-1/nul.yaml,line=4,col=10,title=yaml-syntax"),
        "{}",
        printed(&output)
    );
}

/// Regression: links to directories in the declarations (`policies -> /elsewhere`,
/// `clusters/x -> $HOME`) were followed and their files quoted in diagnostics. Each link is
/// reported as `file-symlink` and never read.
#[cfg(unix)]
#[test]
fn linked_directories_in_the_declarations_are_reported_not_read() {
    let (temp, input, _) = scratch();
    let elsewhere = temp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("secret.yaml"), "TOP-SECRET: [unclosed\n").unwrap();
    fs::rename(input.join("policies"), temp.path().join("policies")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, input.join("policies")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, input.join("clusters/cluster-9")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, input.join("clusters/cluster-1/more")).unwrap();
    let output = mcwan(&["validate", input.to_str().unwrap(), "--format", "github"]);
    let text = printed(&output);
    for link in ["policies", "clusters/cluster-9", "clusters/cluster-1/more"] {
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
    let temp = tempfile::tempdir().unwrap();
    let (input, out) = (temp.path().join("repo"), temp.path().join("out"));
    copy(&root().join("examples/payment"), &input);
    for file in walk(&input) {
        let text = fs::read_to_string(&file).unwrap();
        let renamed = text
            .replace("sd-wan-priority-high", "high-prio")
            .replace("sd-wan-priority-low", "prio");
        fs::write(&file, renamed).unwrap();
    }
    for (old, new) in [
        ("sd-wan-priority-high", "high-prio"),
        ("sd-wan-priority-low", "prio"),
    ] {
        fs::rename(
            input.join(format!("policies/{old}.yaml")),
            input.join(format!("policies/{new}.yaml")),
        )
        .unwrap();
    }
    let service = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: secure}}\nspec:\n  ports: [{{name: http, port: 8080}}]\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: {name}\n  namespace: secure\n  annotations: {{mcw.l7mp.io/mc-wan-policy: {policy}}}\n---\n"
        )
    };
    fs::write(
        input.join("clusters/cluster-1/pairs.yaml"),
        service("pay", "high-prio") + &service("pay-high", "prio"),
    )
    .unwrap();
    let output = render(&input, &out);
    assert!(output.status.success(), "{}", printed(&output));
    let mut seen = std::collections::BTreeSet::new();
    let mut files = 0;
    for file in walk(&out.join("cluster-1")) {
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let object: serde_json::Value =
            yaml_serde::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
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
            out.join(format!("cluster-1/secure/httproute-{name}.yaml"))
                .is_file(),
            "{name}"
        );
    }
}

/// Regression: `--max-depth` was parsed and then ignored; only the default applied.
#[test]
fn the_max_depth_flag_is_applied() {
    let (_temp, input, _) = scratch();
    let labels =
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: secure\n  labels: {a: [[[[x]]]]}\n";
    fs::write(input.join("clusters/cluster-1/deep.yaml"), labels).unwrap();
    let dir = input.to_str().unwrap();
    let shallow = mcwan(&["validate", dir, "--format", "github", "--max-depth", "5"]);
    assert!(
        printed(&shallow).contains("title=yaml-limit::document nests more than 5 levels deep"),
        "{}",
        printed(&shallow)
    );
    let block = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: secure\n  labels:\n    a:\n      b:\n        c:\n          d: x\n";
    fs::write(input.join("clusters/cluster-1/deep.yaml"), block).unwrap();
    let shallow = mcwan(&["validate", dir, "--format", "github", "--max-depth", "4"]);
    assert!(
        printed(&shallow).contains("title=yaml-limit::document nests more than 4 levels deep"),
        "{}",
        printed(&shallow)
    );
    let default = mcwan(&["validate", dir, "--format", "github"]);
    assert!(
        !printed(&default).contains("yaml-limit"),
        "{}",
        printed(&default)
    );
}
