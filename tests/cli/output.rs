//! Render and OUT: what mcwan owns in OUT and prunes, what it refuses to write over, that a
//! render is all or nothing under crashes and concurrency, and that every cluster directory
//! builds with `kubectl kustomize`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use crate::common::test::Test;
use crate::common::{assert_same_tree, example_names, read_tree, root};

/// What Argo CD and Flux run on each cluster directory must succeed and yield exactly the
/// objects the directory holds.
#[test]
fn every_rendered_cluster_builds_with_kubectl_kustomize() {
    let mut checked = 0;
    for name in example_names() {
        let golden = root().join("golden").join(&name);
        for entry in fs::read_dir(&golden).unwrap() {
            let dir = entry.unwrap().path();
            let kustomization = dir.join("kustomization.yaml");
            if !kustomization.is_file() {
                continue;
            }
            let listed = fs::read_to_string(&kustomization)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("- "))
                .count();
            let files = read_tree(&dir).len() - 1;
            assert_eq!(
                listed,
                files,
                "{}: kustomization lists {listed} of {files} files",
                dir.display()
            );
            let Some(objects) = kustomize_objects(&dir) else {
                return;
            };
            assert_eq!(
                objects,
                listed,
                "{}: kustomize built {objects} objects from {listed} files",
                dir.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} cluster directories checked");
}

/// A render's one line on stderr counts what it wrote and what it changed in OUT, as a
/// comparison of the trees before and after it finds.
#[test]
fn render_says_what_it_changed() {
    let mut test = Test::example("three-clusters");
    let line = |test: &mut Test| {
        let stderr = test.render().run().stderr;
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        lines[0].replace(&test.expand("{out}"), "OUT")
    };
    let expected = |before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>| {
        let objects = after
            .keys()
            .filter(|k| k.starts_with("cluster-") && !k.ends_with("kustomization.yaml"))
            .count();
        let added = after.keys().filter(|k| !before.contains_key(*k)).count();
        let removed = before.keys().filter(|k| !after.contains_key(*k)).count();
        let changed = after
            .iter()
            .filter(|(k, v)| before.get(*k).is_some_and(|old| old != *v))
            .count();
        let files = if added + changed + removed == 0 {
            "no file changed".to_string()
        } else {
            format!("{added} added, {changed} changed, {removed} removed files")
        };
        format!("rendered 3 clusters, {objects} objects to `OUT`: {files}")
    };
    let mut before = BTreeMap::new();
    // A first render, one again, then each after a verb.
    for verb in [None, None, Some("unimport"), Some("import")] {
        if let Some(verb) = verb {
            test.args(&[verb, "insecure/logging", "--cluster", "cluster-1", "{in}"])
                .run();
        }
        let printed = line(&mut test);
        let after = test.tree("{out}");
        assert_eq!(printed, expected(&before, &after));
        before = after;
    }
    // A file of OUT mcwan does not own is carried over, not counted.
    test.write("{out}/NOTES.md", "mine");
    test.edit("{in}/clusterset.yaml", "sdwanSite: 201", "sdwanSite: 202");
    let printed = line(&mut test);
    let mut after = test.tree("{out}");
    after.remove("NOTES.md");
    assert_eq!(printed, expected(&before, &after));
    assert!(!printed.contains(" 0 changed"), "{printed}");
}

#[test]
fn render_refuses_a_directory_it_did_not_create() {
    let mut test = Test::example("payment");
    test.write("{out}/precious.txt", "mine");
    test.render()
        .code(2)
        .run()
        .stderr_has("has no `mcwan-provenance.json`, so mcwan did not create it");
    assert_eq!(test.read("{out}/precious.txt"), "mine");
    assert_eq!(test.tree("{out}").len(), 1);
}

/// mcwan owns the top-level entries of OUT it writes, whole: stale files in them go, and so
/// does a file someone added there (which `check` reports first). Other entries stay, and
/// one mcwan would now write over is refused.
#[test]
fn render_prunes_what_it_owns_and_keeps_the_rest() {
    let mut test = Test::example("payment");
    test.render().run();
    test.write("{out}/README.md", "notes")
        .write("{out}/apps/appset.yaml", "kept")
        .write("{out}/cluster-1/extra.yaml", "not listed anywhere");
    // Drop the logging export: its objects become stale.
    test.remove("clusters/cluster-2/logging.yaml");
    test.check()
        .code(1)
        .run()
        .stdout_has("--- a/cluster-1/extra.yaml\n+++ /dev/null");
    test.render().run();
    let tree = test.tree("{out}");
    assert_eq!(tree["README.md"], b"notes");
    assert_eq!(tree["apps/appset.yaml"], b"kept");
    assert!(!tree.contains_key("cluster-1/extra.yaml"));
    assert!(
        !tree.keys().any(|k| k.contains("logging")),
        "stale logging objects remain"
    );
    assert!(
        !tree.contains_key("cluster-2/mcw-system/gateway-mcw-ingress.yaml"),
        "cluster-2 exports nothing now"
    );
    test.check().run();
    // A third cluster would take the place of a directory mcwan did not write.
    test.write("{out}/cluster-3/notes.txt", "mine");
    assert_refused(
        &mut test,
        "{root}/examples/three-clusters",
        "which it did not write",
    );
    // Nothing is left beside OUT but the lock file.
    let siblings: Vec<_> = fs::read_dir(test.path("{temp}"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        siblings.iter().filter(|s| s.contains("staging")).count(),
        0,
        "{siblings:?}"
    );
}

/// A cluster that leaves the clusterset takes its directory and its SD-WAN site with it:
/// `check` lists every file as removed, and the render prunes them.
#[test]
fn a_removed_cluster_leaves_nothing_behind() {
    let mut test = Test::example("three-clusters");
    test.render().run();
    let gone: Vec<String> = test
        .tree("{out}")
        .into_keys()
        .filter(|k| k.starts_with("cluster-3/") || k.starts_with("sdwan/sites/cluster-3/"))
        .collect();
    assert!(gone.len() > 5, "{gone:?}");
    let payment = "{root}/examples/payment";
    let check = test.args(&["check", payment, "-o", "{out}"]).code(1).run();
    for path in &gone {
        assert!(
            check
                .stdout
                .contains(&format!("--- a/{path}\n+++ /dev/null")),
            "{path} is not reported as removed"
        );
    }
    test.args(&["render", payment, "-o", "{out}"]).run();
    assert_same_tree(
        &test.tree("{out}"),
        &read_tree(&root().join("golden/payment")),
        "OUT after the cluster left",
    );
}

/// A provenance that lists files (from before mcwan owned whole directories) is taken
/// over, but not a file someone put beside mcwan's in a directory it now owns whole.
#[test]
fn an_output_that_lists_its_files_is_taken_over_safely() {
    let mut test = Test::example("payment");
    test.render().run();
    let files: Vec<String> = test
        .tree("{out}")
        .into_keys()
        .filter(|k| k != "mcwan-provenance.json")
        .collect();
    let legacy = serde_json::json!({
        "generator": "mcwan", "version": "0.1.0", "inputDigest": "sha256:0", "files": files,
    });
    test.write("{out}/mcwan-provenance.json", legacy.to_string())
        .write("{out}/cluster-1/notes.txt", "mine");
    assert_refused(&mut test, "{in}", "cluster-1/notes.txt");
    test.remove("{out}/cluster-1/notes.txt");
    test.render().run();
    assert_same_tree(
        &test.tree("{out}"),
        &read_tree(&root().join("golden/payment")),
        "OUT after the take-over",
    );
}

/// Both `check` and `render` of `input` refuse OUT, saying `why`, and OUT stays as it was.
fn assert_refused(test: &mut Test, input: &str, why: &str) {
    let before = test.tree("{out}");
    for verb in ["check", "render"] {
        test.args(&[verb, input, "-o", "{out}"])
            .code(2)
            .run()
            .stderr_has(why);
    }
    assert_same_tree(&before, &test.tree("{out}"), "OUT after a refused render");
}

#[test]
fn render_refuses_output_inside_the_declarations() {
    let mut test = Test::example("payment");
    for bad in ["clusters/out", "policies", "."] {
        let out = format!("{{in}}/{bad}");
        test.args(&["render", "{in}", "-o", &out]).code(2).run();
    }
    // The usual layout, `rendered/` beside the declarations, works and is not read back.
    for _ in 0..2 {
        test.args(&["render", "{in}", "-o", "{in}/rendered"]).run();
    }
}

#[test]
fn out_must_be_a_real_directory() {
    let mut test = Test::example("payment");
    test.write("{out}", "a file");
    test.render()
        .code(2)
        .run()
        .stderr_has("it is not a directory");
    test.remove("{out}");
    test.args(&["render", "{in}", "-o", "{temp}/real"]).run();
    test.symlink("{out}", "{temp}/real");
    test.render().code(2).run().stderr_has("symbolic link");
}

/// Whatever the input, a render writes only inside OUT (and its lock file beside it).
#[test]
fn nothing_is_written_outside_out() {
    let mut test = Test::case("invalid-name");
    let before = test.tree("{temp}");
    test.args(&["render", "{in}", "-o", "{temp}/area/out"])
        .code(1)
        .run();
    test.args(&[
        "render",
        "{root}/examples/l7-payment",
        "-o",
        "{temp}/area/out",
    ])
    .run();
    for path in test.tree("{temp}").keys() {
        let inside = path.starts_with("area/out/") || path == "area/.out.mcwan-lock";
        assert!(
            inside || before.contains_key(path),
            "written outside OUT: {path}"
        );
    }
}

/// A generated clusterset of `clusters` clusters and 200 services, in `dir`.
fn generate(test: &mut Test, dir: &str, clusters: &str) {
    let options = [
        "--clusters",
        clusters,
        "--services",
        "200",
        "--exporters",
        "2",
    ];
    test.generate(dir, &options).run();
}

/// SIGKILL at 20 moments of a large render: OUT is always the previous complete render or
/// the new complete one, never a mix, and the next render cleans up after the killed one.
#[test]
fn a_killed_render_leaves_a_complete_output() {
    let mut test = Test::empty();
    generate(&mut test, "{in}", "8");
    let started = Instant::now();
    test.render().run();
    let duration = started.elapsed();
    let first = test.tree("{out}");
    test.edit("policies/policies.yaml", "port: 31000", "port: 31900");
    test.args(&["render", "{in}", "-o", "{temp}/second"]).run();
    let second = test.tree("{temp}/second");
    assert_ne!(first, second);
    for moment in 0..20u32 {
        let mut child = test.render().spawn();
        std::thread::sleep(duration * moment / 20);
        let _ = child.kill();
        let _ = child.wait();
        let now = test.tree("{out}");
        assert!(
            now == first || now == second,
            "moment {moment}: OUT is neither the old nor the new render"
        );
    }
    test.render().run();
    assert_eq!(test.tree("{out}"), second);
    let leftovers: Vec<_> = fs::read_dir(test.path("{temp}"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Two renders into one OUT at once: the lock serializes them, so OUT ends as one complete
/// render, never a mix of two.
#[test]
fn concurrent_renders_never_mix() {
    let mut test = Test::empty();
    generate(&mut test, "{temp}/a", "6");
    generate(&mut test, "{temp}/b", "6");
    test.edit(
        "{temp}/b/policies/policies.yaml",
        "port: 31000",
        "port: 31900",
    );
    test.args(&["render", "{temp}/a", "-o", "{temp}/expect-a"])
        .run();
    test.args(&["render", "{temp}/b", "-o", "{temp}/expect-b"])
        .run();
    let (tree_a, tree_b) = (test.tree("{temp}/expect-a"), test.tree("{temp}/expect-b"));
    for _ in 0..3 {
        let mut spawn = |input: &str| test.args(&["render", input, "-o", "{out}"]).spawn();
        let (mut one, mut two) = (spawn("{temp}/a"), spawn("{temp}/b"));
        assert!(one.wait().unwrap().success() && two.wait().unwrap().success());
        let now = test.tree("{out}");
        assert!(now == tree_a || now == tree_b, "OUT mixes two renders");
    }
}

/// `kubectl kustomize DIR`, or `None` (saying so) where kubectl is not installed. In CI
/// (`CI` set, as `.ci/run` sets it after installing kubectl) a missing kubectl fails.
pub(crate) fn kubectl_kustomize(dir: &Path) -> Option<Output> {
    match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => Some(output),
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: kubectl is not installed ({error}); .ci/run installs it");
            None
        }
        Err(error) => panic!("kubectl must be installed in CI: {error}"),
    }
}

/// The objects `kubectl kustomize DIR` builds; `None` where kubectl is missing locally.
fn kustomize_objects(dir: &Path) -> Option<usize> {
    let output = kubectl_kustomize(dir)?;
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let built = String::from_utf8(output.stdout).unwrap();
    Some(
        built
            .split("\n---\n")
            .filter(|d| d.contains("kind:"))
            .count(),
    )
}

/// The namespace layout: every namespace directory is a kustomization of its own, and the
/// cluster's still builds the same objects as the default layout.
#[test]
fn namespace_layout_builds_per_namespace_and_per_cluster() {
    let mut test = Test::example("l7-payment");
    test.render().args(&["--layout", "namespace"]).run();
    for cluster in ["cluster-1", "cluster-2"] {
        let dir = test.path(&format!("{{out}}/{cluster}"));
        let Some(whole) = kustomize_objects(&dir) else {
            return;
        };
        assert_eq!(
            Some(whole),
            kustomize_objects(&root().join("golden/l7-payment").join(cluster)),
            "{cluster}"
        );
        let mut parts = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let dir = entry.unwrap().path();
            if dir.is_dir() {
                parts += kustomize_objects(&dir).unwrap_or_default();
            }
        }
        assert_eq!(
            parts, whole,
            "{cluster}: namespace kustomizations do not add up"
        );
    }
    test.check().args(&["--layout", "namespace"]).run();
}

/// A gateway whose exports name more than 512 sets of callers gets its ALLOW rules in
/// several AuthorizationPolicies, none over the CRD's 512 rules, which together admit
/// every exported host; the render's verification (exit 0) finds every flow admitted.
#[test]
fn authorization_rules_are_split_among_policies_of_at_most_512() {
    let mut test = Test::empty();
    // 600 services in as many namespaces: each export has its own callers.
    let options = [
        "--clusters",
        "1",
        "--services",
        "600",
        "--namespaces",
        "600",
    ];
    test.generate("{in}", &options).run();
    test.render().run();
    let tree = test.tree("{out}");
    let cluster = "cluster-0";
    let of_kind = |kind: &str| -> Vec<(String, serde_json::Value)> {
        tree.iter()
            .filter(|(path, _)| path.starts_with(&format!("{cluster}/")))
            .map(|(path, bytes)| (path.clone(), yaml_serde::from_slice(bytes).unwrap()))
            .filter(|(_, object): &(String, serde_json::Value)| object["kind"] == kind)
            .collect()
    };
    let allow: Vec<_> = of_kind("AuthorizationPolicy")
        .into_iter()
        .filter(|(_, p)| p["spec"]["action"] == "ALLOW")
        .collect();
    let names: Vec<&str> = allow
        .iter()
        .map(|(_, p)| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mcw-ingress-allow-2", "mcw-ingress-allow"],
        "{cluster}"
    );
    let mut hosts = std::collections::BTreeSet::new();
    for (path, policy) in &allow {
        let rules = policy["spec"]["rules"].as_array().unwrap();
        assert!(rules.len() <= 512, "{path}: {} rules", rules.len());
        for rule in rules {
            for host in rule["to"][0]["operation"]["hosts"].as_array().unwrap() {
                hosts.insert(host.as_str().unwrap().to_string());
            }
        }
    }
    let exports = of_kind("ServiceExport");
    assert!(exports.len() > 512, "{cluster} exports {}", exports.len());
    for (_, export) in exports {
        let host = format!(
            "{}.{}.svc.clusterset.local",
            export["metadata"]["name"].as_str().unwrap(),
            export["metadata"]["namespace"].as_str().unwrap()
        );
        assert!(hosts.contains(&host), "{cluster}: no ALLOW rule for {host}");
    }
}
