//! End-to-end tests through the real `mcwan` binary. The golden trees and the invalid-input
//! cases run in `tests/cases.rs`, one test each; permutations and the rest run here.
//! `MCWAN_BLESS=1 cargo test` rewrites the expected outputs from what mcwan produces.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{
    apply_case, assert_same_tree, example_names, mcwan, parse_case, path_str, read_tree, render,
    root, write_tree,
};
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
            let Some(output) = kubectl_kustomize(&dir) else {
                return;
            };
            assert!(
                output.status.success(),
                "kubectl kustomize {}: {}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            let built = String::from_utf8(output.stdout).unwrap();
            let objects = built
                .split("\n---\n")
                .filter(|d| d.contains("kind:"))
                .count();
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

/// A tiny deterministic generator, so permutations are reproducible without a crate.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap();
            items.swap(i, j);
        }
    }
}

/// Splits every input file into documents, then deals them into new files with random
/// names, in random order, within the same place (`policies/`, `clusters/<c>/`).
fn permute(source: &Path, target: &Path, rng: &mut Shuffle) {
    let mut by_place: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (relative, bytes) in read_tree(source) {
        let text = String::from_utf8(bytes).unwrap();
        if relative == "clusterset.yaml" {
            fs::create_dir_all(target).unwrap();
            fs::write(target.join(&relative), text).unwrap();
            continue;
        }
        let parts: Vec<&str> = relative.split('/').collect();
        let place = if parts[0] == "clusters" {
            format!("clusters/{}", parts[1])
        } else {
            parts[0].to_string()
        };
        let documents = by_place.entry(place).or_default();
        documents.extend(
            text.split("\n---\n")
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
        );
    }
    for (place, mut documents) in by_place {
        rng.shuffle(&mut documents);
        let files = 1 + usize::try_from(rng.next() % 3).unwrap();
        for (i, chunk) in documents
            .chunks(documents.len().div_ceil(files))
            .enumerate()
        {
            let name = format!("{place}/{:x}/{i}-{:x}.yaml", rng.next() % 4, rng.next());
            let path = target.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, chunk.join("\n---\n") + "\n").unwrap();
        }
    }
}

#[test]
fn render_refuses_a_directory_it_did_not_create() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("precious.txt"), "mine").unwrap();
    let output = render(&root().join("examples/payment"), &out);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("has no `mcwan-provenance.json`, so mcwan did not create it"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(out.join("precious.txt")).unwrap(),
        "mine"
    );
    assert_eq!(read_tree(&out).len(), 1);
}

/// mcwan owns the top-level entries of OUT it writes, whole: stale files in them go, and so
/// does a file someone added there (which `check` reports first). Other entries stay, and
/// one mcwan would now write over is refused.
#[test]
fn render_prunes_what_it_owns_and_keeps_the_rest() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    assert!(render(&root().join("examples/payment"), &out)
        .status
        .success());
    fs::write(out.join("README.md"), "notes").unwrap();
    fs::create_dir(out.join("apps")).unwrap();
    fs::write(out.join("apps/appset.yaml"), "kept").unwrap();
    fs::write(out.join("cluster-1/extra.yaml"), "not listed anywhere").unwrap();
    // Drop the logging export: its objects become stale.
    let input = temp.path().join("repo");
    write_tree(&input, &read_tree(&root().join("examples/payment")));
    fs::remove_file(input.join("clusters/cluster-2/logging.yaml")).unwrap();
    let check = mcwan(&["check", path_str(&input), "-o", path_str(&out)]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("--- a/cluster-1/extra.yaml\n+++ /dev/null"),
        "{}",
        stdout(&check)
    );
    assert!(render(&input, &out).status.success());
    let tree = read_tree(&out);
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
    assert_eq!(
        mcwan(&["check", path_str(&input), "-o", path_str(&out)])
            .status
            .code(),
        Some(0)
    );
    // A third cluster would take the place of a directory mcwan did not write.
    fs::create_dir(out.join("cluster-3")).unwrap();
    fs::write(out.join("cluster-3/notes.txt"), "mine").unwrap();
    let three_clusters = root().join("examples/three-clusters");
    assert_refused(&three_clusters, &out, "which it did not write");
    // Nothing is left beside OUT but the lock file.
    let siblings: Vec<_> = fs::read_dir(temp.path())
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
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    assert!(render(&root().join("examples/three-clusters"), &out)
        .status
        .success());
    let gone: Vec<String> = read_tree(&out)
        .into_keys()
        .filter(|k| k.starts_with("cluster-3/") || k.starts_with("sdwan/sites/cluster-3/"))
        .collect();
    assert!(gone.len() > 5, "{gone:?}");
    let payment = root().join("examples/payment");
    let check = mcwan(&["check", path_str(&payment), "-o", path_str(&out)]);
    assert_eq!(check.status.code(), Some(1));
    for path in &gone {
        assert!(
            stdout(&check).contains(&format!("--- a/{path}\n+++ /dev/null")),
            "{path} is not reported as removed"
        );
    }
    assert!(render(&payment, &out).status.success());
    assert_same_tree(
        &read_tree(&out),
        &read_tree(&root().join("golden/payment")),
        "OUT after the cluster left",
    );
}

/// A provenance that lists files (from before mcwan owned whole directories) is taken
/// over, but not a file someone put beside mcwan's in a directory it now owns whole.
#[test]
fn an_output_that_lists_its_files_is_taken_over_safely() {
    let (_temp, input, out) = scratch("payment");
    assert!(render(&input, &out).status.success());
    let files: Vec<String> = read_tree(&out)
        .into_keys()
        .filter(|k| k != "mcwan-provenance.json")
        .collect();
    let legacy = serde_json::json!({
        "generator": "mcwan", "version": "0.1.0", "inputDigest": "sha256:0", "files": files,
    });
    fs::write(out.join("mcwan-provenance.json"), legacy.to_string()).unwrap();
    fs::write(out.join("cluster-1/notes.txt"), "mine").unwrap();
    assert_refused(&input, &out, "cluster-1/notes.txt");
    fs::remove_file(out.join("cluster-1/notes.txt")).unwrap();
    assert!(render(&input, &out).status.success());
    assert_same_tree(
        &read_tree(&out),
        &read_tree(&root().join("golden/payment")),
        "OUT after the take-over",
    );
}

#[test]
fn render_refuses_output_inside_the_declarations() {
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    write_tree(&input, &read_tree(&root().join("examples/payment")));
    for bad in ["clusters/out", "policies", "."] {
        let output = render(&input, &input.join(bad));
        assert_eq!(output.status.code(), Some(2), "{bad}");
    }
    // The usual layout, `rendered/` beside the declarations, works and is not read back.
    assert!(render(&input, &input.join("rendered")).status.success());
    assert!(render(&input, &input.join("rendered")).status.success());
}

/// Values that reach templates cannot inject YAML: an annotation full of YAML syntax
/// comes out as the same string, in the same single object.
#[test]
fn annotation_values_cannot_inject_yaml() {
    let (_temp, input, out) = scratch("payment");
    let hostile =
        "x\"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: pwned}\n# {{ 7*7 }} {% raw %}";
    let path = input.join("clusters/cluster-1/payment.yaml");
    replace_in(
        &path,
        "mcw.l7mp.io/mc-wan-policy: sd-wan-priority-high",
        &format!(
            "mcw.l7mp.io/mc-wan-policy: sd-wan-priority-high\n    note: {}",
            serde_json::to_string(hostile).unwrap()
        ),
    );
    let output = render(&input, &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exported =
        fs::read_to_string(out.join("cluster-1/secure/serviceexport-payment.yaml")).unwrap();
    let documents: Vec<serde_json::Value> = yaml_serde::Deserializer::from_str(&exported)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["metadata"]["annotations"]["note"], hostile);
    assert!(!read_tree(&out).keys().any(|k| k.contains("secret")));
}

/// The human format, as a developer sees it in a terminal: snippets, labels, hints.
#[test]
fn human_diagnostics_show_the_offending_lines() {
    let case = parse_case(&root().join("tests/invalid/many-problems.case"));
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    apply_case(&case, &input);
    let output = mcwan(&["validate", path_str(&input)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    insta::assert_snapshot!(stderr.replace(path_str(temp.path()), "[TEMP]"));
}

fn yaml_documents(bytes: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    yaml_serde::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// The gateways and the fabric come from one intent: changing a policy's port moves the
/// listener, the pinned nodePort, every importer's endpoints and the fabric's
/// classification together, in one render.
#[test]
fn a_policy_port_change_moves_gateways_and_fabric_together() {
    let (_temp, input, out) = scratch("payment");
    set_port(&input, "port: 31111", "port: 31115");
    assert!(render(&input, &out).status.success());
    let tree = read_tree(&out);
    let text = |path: &str| String::from_utf8(tree[path].clone()).unwrap();
    assert!(
        !tree
            .values()
            .any(|b| String::from_utf8_lossy(b).contains("31111")),
        "the old port survives somewhere"
    );
    assert!(text("cluster-1/mcw-system/gateway-mcw-ingress.yaml").contains("port: 31115"));
    assert!(
        text("cluster-1/mcw-system/configmap-mcw-ingress-options.yaml").contains("nodePort: 31115")
    );
    assert!(text("cluster-2/secure/serviceentry-mcw-payment.yaml").contains("http: 31115"));
    let classes = &yaml_documents(&tree["sdwan/classes.yaml"])[0];
    let high = classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["policy"] == "sd-wan-priority-high")
        .unwrap();
    assert_eq!(high["port"], 31115);
    let flows = &yaml_documents(&tree["sdwan/sites/cluster-2/flows.yaml"])[0];
    assert_eq!(flows["flows"][0]["policy"], "sd-wan-priority-high");
    assert_eq!(flows["flows"][0]["destination"]["port"], 31115);
    let cisco = text("sdwan/cisco-app-route-policy.txt");
    assert!(
        cisco.contains("destination-port 31115") && cisco.contains("source-port 31115"),
        "{cisco}"
    );
}

/// Derives the fabric's flows on its own, from the rendered ServiceEntries (a remote
/// endpoint is one flow from the importing cluster to the exporter's gateway), and
/// compares them with the sites' `flows.yaml`, whose ports must be their classes'.
#[test]
fn classification_flows_match_the_rendered_service_entries() {
    for name in example_names() {
        let tree = read_tree(&root().join("golden").join(&name));
        let classes = &yaml_documents(&tree["sdwan/classes.yaml"])[0];
        let site = |cluster: &str| {
            classes["sites"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["cluster"] == cluster)
                .unwrap()["site"]
                .as_u64()
                .unwrap()
        };
        let mut derived = std::collections::BTreeSet::new();
        for (path, bytes) in &tree {
            let Some(cluster) = path
                .split('/')
                .next()
                .filter(|_| path.contains("/serviceentry-"))
            else {
                continue;
            };
            let entry = &yaml_documents(bytes)[0];
            let service = format!(
                "{}/{}",
                entry["metadata"]["namespace"].as_str().unwrap(),
                entry["spec"]["hosts"][0]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
            );
            for endpoint in entry["spec"]["endpoints"].as_array().into_iter().flatten() {
                let target = endpoint["labels"]["mcw.l7mp.io/cluster"].as_str().unwrap();
                if target == cluster {
                    continue;
                }
                for port in endpoint["ports"].as_object().unwrap().values() {
                    derived.insert((
                        endpoint["labels"]["mcw.l7mp.io/wan-policy"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                        (cluster.to_string(), site(cluster)),
                        (target.to_string(), site(target)),
                        endpoint["address"].as_str().unwrap().to_string(),
                        port.as_u64().unwrap(),
                        service.clone(),
                    ));
                }
            }
        }
        let port = |policy: &serde_json::Value| {
            classes["classes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["policy"] == *policy)
                .unwrap()["port"]
                .clone()
        };
        let mut listed = std::collections::BTreeSet::new();
        for (path, bytes) in &tree {
            let Some(cluster) = path
                .strip_prefix("sdwan/sites/")
                .and_then(|p| p.strip_suffix("/flows.yaml"))
            else {
                continue;
            };
            let flows = &yaml_documents(bytes)[0];
            assert_eq!(flows["metadata"]["name"], cluster);
            assert_eq!(flows["site"].as_u64(), Some(site(cluster)));
            for flow in flows["flows"].as_array().unwrap() {
                assert_eq!(flow["source"]["cluster"], cluster);
                assert_eq!(
                    flow["destination"]["port"],
                    port(&flow["policy"]),
                    "{name}: flow port is not its class's port"
                );
                for service in flow["services"].as_array().unwrap() {
                    listed.insert((
                        flow["policy"].as_str().unwrap().to_string(),
                        (
                            flow["source"]["cluster"].as_str().unwrap().to_string(),
                            flow["source"]["site"].as_u64().unwrap(),
                        ),
                        (
                            flow["destination"]["cluster"].as_str().unwrap().to_string(),
                            flow["destination"]["site"].as_u64().unwrap(),
                        ),
                        flow["destination"]["address"].as_str().unwrap().to_string(),
                        flow["destination"]["port"].as_u64().unwrap(),
                        service.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
        assert!(!derived.is_empty(), "{name}: no flow crosses the SD-WAN");
        assert_eq!(
            derived, listed,
            "{name}: the sites' flows disagree with the rendered ServiceEntries"
        );
    }
}

/// A template override that breaks the agreement between gateways and fabric is a bug,
/// and the render fails loudly without touching OUT.
#[test]
fn an_override_that_disagrees_with_the_fabric_fails_the_render() {
    let temp = tempfile::tempdir().unwrap();
    let templates = temp.path().join("templates");
    fs::create_dir_all(&templates).unwrap();
    let original = fs::read_to_string(root().join("templates/serviceentry.yaml.j2")).unwrap();
    let broken = original.replace("ports: {{ endpoint.ports }}", "ports: {http: 31999}");
    assert_ne!(broken, original);
    fs::write(templates.join("serviceentry.yaml.j2"), broken).unwrap();
    let out = temp.path().join("out");
    assert!(render(&root().join("examples/payment"), &out)
        .status
        .success());
    let before = read_tree(&out);
    let output = mcwan(&[
        "render",
        path_str(&root().join("examples/payment")),
        "-o",
        path_str(&out),
        "--templates",
        path_str(&templates),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("disagrees with the SD-WAN classification"),
        "{stderr}"
    );
    assert_same_tree(&before, &read_tree(&out), "OUT after a failed render");
}

/// Another vendor is a template: an override directory may add `sdwan/*.j2`, rendered once,
/// and `sdwan/sites/*.j2`, rendered once per site. Values in text templates must be plain
/// tokens, so a crafted value cannot change their syntax.
#[test]
fn vendor_templates_can_be_added_and_cannot_be_injected() {
    let temp = tempfile::tempdir().unwrap();
    let templates = temp.path().join("templates");
    fs::create_dir_all(templates.join("sdwan/sites")).unwrap();
    fs::write(
        templates.join("sdwan/acme.conf.j2"),
        "{% for class in fabric.classes %}class {{ class.policy }} port {{ class.port }} region {{ fabric.sites[0].region }}\n{% endfor %}",
    )
    .unwrap();
    fs::write(
        templates.join("sdwan/sites/acme-site.conf.j2"),
        "site {{ site.site }}\n{% for flow in flows %}permit {{ flow.destination_address }} {{ flow.destination_port }}\n{% endfor %}",
    )
    .unwrap();
    let out = temp.path().join("out");
    let args = |input: &Path| {
        vec![
            "render".to_string(),
            input.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--templates".into(),
            templates.display().to_string(),
        ]
    };
    let run = |input: &Path| {
        Command::new(env!("CARGO_BIN_EXE_mcwan"))
            .args(args(input))
            .output()
            .unwrap()
    };
    let output = run(&root().join("examples/payment"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        fs::read_to_string(out.join("sdwan/acme.conf")).unwrap(),
        "class sd-wan-priority-high port 31111 region eu-west\nclass sd-wan-priority-low port 31112 region eu-west\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("sdwan/sites/cluster-2/acme-site.conf")).unwrap(),
        "site 200\npermit 10.111.1.29 31111\n"
    );
    let input = temp.path().join("repo");
    write_tree(&input, &read_tree(&root().join("examples/payment")));
    let clusterset = input.join("clusterset.yaml");
    fs::write(
        &clusterset,
        fs::read_to_string(&clusterset).unwrap().replacen(
            "region: eu-west",
            "region: \"eu-west\\napply-policy evil\"",
            1,
        ),
    )
    .unwrap();
    let output = run(&input);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a plain token"));
    assert!(fs::read_to_string(out.join("sdwan/acme.conf"))
        .unwrap()
        .lines()
        .all(|l| !l.contains("evil")));

    // Neither a once-per-render `sdwan/sites` file, which would take the sites' directory,
    // nor a per-site template in a subdirectory.
    for bad in ["sdwan/sites.j2", "sdwan/sites/deeper/x.j2"] {
        let path = templates.join(bad);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "x\n").unwrap();
        let output = run(&root().join("examples/payment"));
        assert_eq!(output.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&output).contains("is not a plain file name directly in"),
            "{bad}: {}",
            stderr(&output)
        );
        fs::remove_file(&path).unwrap();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Both `check` and `render` of `input` refuse OUT, saying `why`, and OUT stays as it was.
fn assert_refused(input: &Path, out: &Path, why: &str) {
    let before = read_tree(out);
    for output in [
        mcwan(&["check", path_str(input), "-o", path_str(out)]),
        render(input, out),
    ] {
        assert_eq!(output.status.code(), Some(2));
        assert!(stderr(&output).contains(why), "{}", stderr(&output));
    }
    assert_same_tree(&before, &read_tree(out), "OUT after a refused render");
}

/// A copy of an example in a temporary repository, with `out` beside it.
fn scratch(example: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    write_tree(&input, &read_tree(&root().join("examples").join(example)));
    let out = temp.path().join("out");
    (temp, input, out)
}

/// Replaces `from` by `to` in the file at `path`, which must contain it.
fn replace_in(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    fs::write(path, text.replace(from, to)).unwrap();
}

fn set_port(input: &Path, from: &str, to: &str) {
    replace_in(&input.join("policies/sd-wan-priority-high.yaml"), from, to);
}

/// The CI gate: `check` passes on a fresh render; after a WAN policy edit it fails and
/// names exactly the files a render would change, which an independent render confirms.
#[test]
fn check_names_every_file_an_edit_affects() {
    let (temp, input, out) = scratch("payment");
    assert!(render(&input, &out).status.success());
    let up_to_date = mcwan(&["check", path_str(&input), "-o", path_str(&out)]);
    assert_eq!(up_to_date.status.code(), Some(0), "{}", stderr(&up_to_date));
    assert!(stdout(&up_to_date).is_empty());

    set_port(&input, "port: 31111", "port: 31115");
    let stale = mcwan(&["check", path_str(&input), "-o", path_str(&out)]);
    assert_eq!(stale.status.code(), Some(1));
    let named: Vec<String> = stderr(&stale)
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(str::to_string)
        .collect();

    let fresh = temp.path().join("fresh");
    assert!(render(&input, &fresh).status.success());
    let (old, new) = (read_tree(&out), read_tree(&fresh));
    let differing: Vec<String> = new
        .keys()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    assert_eq!(named, differing);
    assert!(named.contains(&"cluster-1/mcw-system/gateway-mcw-ingress.yaml".to_string()));
    assert!(named.contains(&"sdwan/classes.yaml".to_string()));
    assert!(
        stdout(&stale).contains("-  port: 31111\n+  port: 31115"),
        "{}",
        stdout(&stale)
    );

    assert!(render(&input, &out).status.success());
    assert_eq!(
        mcwan(&["check", path_str(&input), "-o", path_str(&out)])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn check_catches_hand_edits_and_deletions_but_not_foreign_files() {
    let (_temp, input, out) = scratch("payment");
    assert!(render(&input, &out).status.success());
    let check = || mcwan(&["check", path_str(&input), "-o", path_str(&out)]);
    fs::write(out.join("NOTES.md"), "ours").unwrap();
    assert_eq!(
        check().status.code(),
        Some(0),
        "a file mcwan does not own is none of its business"
    );
    let gateway = out.join("cluster-1/mcw-system/gateway-mcw-ingress.yaml");
    replace_in(&gateway, "protocol: HTTP", "protocol: HTTPS");
    fs::remove_file(out.join("cluster-2/secure/serviceimport-payment.yaml")).unwrap();
    let output = check();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("2 file(s) differ"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output)
        .contains("--- /dev/null\n+++ b/cluster-2/secure/serviceimport-payment.yaml"));
}

#[test]
fn exit_codes_of_check_and_diff() {
    let (temp, input, out) = scratch("payment");
    let args = |command: &str, out: &Path| mcwan(&[command, path_str(&input), "-o", path_str(out)]);
    assert_eq!(
        args("check", &out).status.code(),
        Some(1),
        "no OUT yet: everything differs"
    );
    assert_eq!(args("diff", &out).status.code(), Some(1));
    assert!(render(&input, &out).status.success());
    assert_eq!(args("diff", &out).status.code(), Some(0));
    let foreign = temp.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("x.yaml"), "x").unwrap();
    assert_eq!(
        args("check", &foreign).status.code(),
        Some(2),
        "OUT that mcwan did not create"
    );
    set_port(&input, "port: 31111", "port: 70000");
    assert_eq!(
        args("check", &out).status.code(),
        Some(1),
        "invalid input fails check"
    );
    assert_eq!(
        args("diff", &out).status.code(),
        Some(2),
        "invalid input is trouble for diff"
    );
    assert_eq!(
        mcwan(&["render", path_str(&input)]).status.code(),
        Some(2),
        "usage error"
    );
    assert_eq!(mcwan(&["frobnicate"]).status.code(), Some(2));
}

/// What a reviewer reads: a per-object summary with field-level changes, then the diff.
#[test]
fn diff_summarizes_objects_and_fields() {
    let (temp, input, out) = scratch("payment");
    assert!(render(&input, &out).status.success());
    set_port(&input, "port: 31111", "port: 31115");
    let output = mcwan(&["diff", path_str(&input), "-o", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output).replace(path_str(temp.path()), "[TEMP]");
    let summary = text.split("\n--- ").next().unwrap().to_string();
    insta::assert_snapshot!(summary);
}

#[test]
fn status_describes_a_service() {
    let output = mcwan(&[
        "status",
        "insecure/logging",
        path_str(&root().join("examples/three-clusters")),
    ]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
    let unknown = mcwan(&[
        "status",
        "secure/paymnt",
        path_str(&root().join("examples/payment")),
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("did you mean `secure/payment`?"));
}

#[test]
fn graph_draws_mermaid_and_dot() {
    let dir = root().join("examples/three-clusters");
    let mermaid = mcwan(&["graph", path_str(&dir)]);
    assert_eq!(mermaid.status.code(), Some(0));
    insta::assert_snapshot!("graph_mermaid", stdout(&mermaid));
    let dot = mcwan(&["graph", path_str(&dir), "--dot"]);
    assert_eq!(dot.status.code(), Some(0));
    insta::assert_snapshot!("graph_dot", stdout(&dot));
}

#[test]
fn completions_and_schema() {
    for shell in ["bash", "zsh", "fish"] {
        let output = mcwan(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0));
        assert!(
            stdout(&output).contains("render") && stdout(&output).contains("unimport"),
            "{shell}"
        );
    }
    let schema = mcwan(&["schema", "WANPolicy"]);
    assert_eq!(schema.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_str(&stdout(&schema)).unwrap();
    assert_eq!(value["properties"]["kind"]["const"], "WANPolicy");
    assert_eq!(mcwan(&["schema", "Secret"]).status.code(), Some(2));
}

#[test]
fn json_diagnostics_are_stable() {
    let case = parse_case(&root().join("tests/invalid/many-problems.case"));
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    apply_case(&case, &input);
    let output = mcwan(&["validate", path_str(&input), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&value).unwrap());
}

/// The seed's verbs edit the repository and undo each other byte for byte; a verb whose
/// result would not validate changes nothing.
#[test]
fn verbs_round_trip_and_keep_the_repository_valid() {
    let (_temp, input, out) = scratch("three-clusters");
    let before = read_tree(&input);
    let verb = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push(path_str(&input));
        mcwan(&all)
    };

    // cluster-3 has the `insecure` namespace but no Service `secure/payment`.
    let refused = verb(&["export", "insecure/payment", "--cluster", "cluster-3"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert_eq!(
        read_tree(&input),
        before,
        "a refused verb changed the repository"
    );

    let exported = verb(&[
        "export",
        "insecure/logging",
        "--cluster",
        "cluster-2",
        "--wan-policy",
        "internet",
    ]);
    assert_eq!(
        exported.status.code(),
        Some(1),
        "cluster-2 has no logging Service: {}",
        stderr(&exported)
    );

    fs::write(
        input.join("clusters/cluster-2/logging.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: logging, namespace: insecure}\nspec:\n  ports: [{name: http, port: 9000}]\n",
    )
    .unwrap();
    let with_service = read_tree(&input);
    let exported = verb(&["export", "insecure/logging", "--cluster", "cluster-2"]);
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
    assert!(input
        .join("clusters/cluster-2/mcwan-export-insecure-logging.yaml")
        .is_file());
    assert!(render(&input, &out).status.success());
    assert!(out
        .join("cluster-2/insecure/httproute-mcw-logging.internet.yaml")
        .is_file());
    assert_eq!(
        verb(&["unexport", "insecure/logging", "--cluster", "cluster-2"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        read_tree(&input),
        with_service,
        "export then unexport is not byte-identical"
    );

    let unimported = verb(&["unimport", "secure/payment", "--cluster", "cluster-2"]);
    assert_eq!(unimported.status.code(), Some(0), "{}", stderr(&unimported));
    assert!(render(&input, &out).status.success());
    assert!(!out
        .join("cluster-2/secure/serviceentry-mcw-payment.yaml")
        .exists());
    assert_eq!(
        verb(&["import", "secure/payment", "--cluster", "cluster-2"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        read_tree(&input),
        with_service,
        "unimport then import is not byte-identical"
    );

    // cluster-3 lacks `secure`: import adds the namespace, and it then imports payment.
    assert_eq!(
        verb(&["import", "secure/payment", "--cluster", "cluster-3"])
            .status
            .code(),
        Some(0)
    );
    assert!(fs::read_to_string(input.join("clusterset.yaml"))
        .unwrap()
        .contains("namespaces: [insecure, secure]"));
    assert!(render(&input, &out).status.success());
    assert!(out
        .join("cluster-3/secure/serviceentry-mcw-payment.yaml")
        .is_file());
}

fn golden_object(example: &str, path: &str) -> serde_json::Value {
    yaml_documents(&fs::read(root().join("golden").join(example).join(path)).unwrap()).remove(0)
}

/// Fallback endpoints exist only for a policy that opts in, only through remote gateways,
/// on the fallback's port, and the fabric carries their flows on the fallback's class.
#[test]
fn fallback_is_opt_in_and_reaches_the_fabric() {
    let entry = golden_object("failover", "cluster-2/secure/serviceentry-mcw-payment.yaml");
    let endpoints = entry["spec"]["endpoints"].as_array().unwrap();
    let fallback: Vec<_> = endpoints
        .iter()
        .filter(|e| e["labels"]["mcw.l7mp.io/tier"] == "fallback")
        .collect();
    assert_eq!(fallback.len(), 2);
    for endpoint in &fallback {
        assert_eq!(endpoint["labels"]["mcw.l7mp.io/route-policy"], "business");
        assert_eq!(endpoint["labels"]["mcw.l7mp.io/wan-policy"], "internet");
        assert_eq!(endpoint["ports"]["http"], 8444);
    }
    let exporter = golden_object("failover", "cluster-1/secure/serviceentry-mcw-payment.yaml");
    let local: Vec<_> = exporter["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["labels"]["mcw.l7mp.io/cluster"] == "cluster-1")
        .collect();
    assert_eq!(
        local.len(),
        1,
        "the exporter reaches itself directly, with no fallback"
    );
    assert!(
        root()
            .join("golden/failover/cluster-1/secure/httproute-mcw-payment.internet.yaml")
            .is_file(),
        "the exporter must accept fallback traffic"
    );
    let flows = golden_object("failover", "sdwan/sites/cluster-2/flows.yaml");
    assert!(flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["policy"] == "internet" && f["services"][0] == "secure/payment"));
    let classes = golden_object("failover", "sdwan/classes.yaml");
    let business = classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["policy"] == "business")
        .unwrap();
    assert_eq!(business["fallback"], "internet");

    for (path, bytes) in read_tree(&root().join("golden/payment")) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains("tier: fallback"),
            "{path}: no policy of payment opts in"
        );
    }
}

/// Timeouts and retries: an export annotation beats the policy's `spec.resilience`, which
/// beats the default derived from the SLA.
#[test]
fn resilience_precedence_annotation_policy_default() {
    let route = |input: &Path| {
        let out = input.parent().unwrap().join("out");
        assert!(render(input, &out).status.success());
        let service = yaml_documents(
            &fs::read(out.join("cluster-2/secure/virtualservice-mcw-payment.yaml")).unwrap(),
        )
        .remove(0);
        service["spec"]["http"][0].clone()
    };
    let (_temp, input, _) = scratch("failover");
    // Annotation timeout 3s; policy attempts 3; derived per-try timeout 2(2*60+20)+1000 ms.
    let all = route(&input);
    assert_eq!(
        (
            &all["timeout"],
            &all["retries"]["attempts"],
            &all["retries"]["perTryTimeout"]
        ),
        (&"3s".into(), &3.into(), &"1280ms".into())
    );
    assert_eq!(all["retries"]["retryRemoteLocalities"], true);
    for cluster in ["cluster-1", "cluster-3"] {
        let path = input.join(format!("clusters/{cluster}/payment.yaml"));
        replace_in(&path, "    mcw.l7mp.io/timeout: 3s\n", "");
    }
    let policy_wins = route(&input);
    assert_eq!(
        (&policy_wins["timeout"], &policy_wins["retries"]["attempts"]),
        (&"5120ms".into(), &3.into())
    );
    let path = input.join("policies/business.yaml");
    replace_in(
        &path,
        "  resilience:\n    retries:\n      attempts: 3\n",
        "",
    );
    let derived = route(&input);
    assert_eq!(
        (&derived["timeout"], &derived["retries"]["attempts"]),
        (&"3840ms".into(), &2.into())
    );
}

/// What the receiver sees: who sent the request, over which policy, with a per-hop span
/// id, and the ingress gateway traces with those as tags.
#[test]
fn observability_headers_and_tracing() {
    let service = golden_object(
        "failover",
        "cluster-2/secure/virtualservice-mcw-payment.yaml",
    );
    let set = &service["spec"]["http"][0]["headers"]["request"]["set"];
    assert_eq!(set["x-mcwan-source-cluster"], "cluster-2");
    assert_eq!(set["x-mcwan-wan-policy"], "business");
    assert_eq!(set["x-mcwan-span-id"], "%UNIQUE_ID%");
    assert!(
        set.get("x-request-id").is_none(),
        "x-request-id must pass through untouched"
    );
    let route = golden_object(
        "failover",
        "cluster-1/secure/httproute-mcw-payment.internet.yaml",
    );
    let headers = &route["spec"]["rules"][0]["filters"][1]["requestHeaderModifier"]["set"];
    assert_eq!(
        headers,
        &serde_json::json!([{"name": "x-mcwan-ingress-cluster", "value": "cluster-1"}, {"name": "x-mcwan-ingress-policy", "value": "internet"}])
    );
    let telemetry = golden_object(
        "failover",
        "cluster-1/mcw-system/telemetry-mcw-ingress.yaml",
    );
    assert_eq!(
        telemetry["spec"]["targetRefs"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "mcw-ingress"}])
    );
    let tracing = &telemetry["spec"]["tracing"][0];
    assert_eq!(tracing["randomSamplingPercentage"], 5);
    assert_eq!(
        tracing["customTags"]["mcwan.ingress_cluster"]["literal"]["value"],
        "cluster-1"
    );
    assert_eq!(
        tracing["customTags"]["mcwan.wan_policy"]["header"]["name"],
        "x-mcwan-wan-policy"
    );
    assert!(
        !root()
            .join("golden/failover/cluster-2/mcw-system/telemetry-mcw-ingress.yaml")
            .exists(),
        "cluster-2 has no gateway"
    );
}

/// The seed's L7 story: each tunnel's HTTPRoute carries exactly its rules' matches, and the
/// sender's VirtualService tries the rules in order, then denies.
#[test]
fn wanroute_compiles_to_per_tunnel_routes_and_an_ordered_virtualservice() {
    let high = golden_object(
        "l7-payment",
        "cluster-1/secure/httproute-mcw-payment.sd-wan-priority-high.yaml",
    );
    assert_eq!(
        high["spec"]["parentRefs"][0]["sectionName"],
        "sd-wan-priority-high"
    );
    assert_eq!(
        high["spec"]["rules"][0]["matches"],
        serde_json::json!([{"path": {"type": "PathPrefix", "value": "/payment"}, "method": "GET"}])
    );
    let low = golden_object(
        "l7-payment",
        "cluster-1/secure/httproute-mcw-payment.sd-wan-priority-low.yaml",
    );
    assert_eq!(
        low["spec"]["rules"][0]["matches"],
        serde_json::json!([{"path": {"type": "PathPrefix", "value": "/stats"}}])
    );
    let service = golden_object(
        "l7-payment",
        "cluster-2/secure/virtualservice-mcw-payment.yaml",
    );
    let routes = service["spec"]["http"].as_array().unwrap();
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["payments", "stats", "default"]);
    assert_eq!(
        routes[0]["match"][0],
        serde_json::json!({"uri": {"exact": "/payment"}, "method": {"exact": "GET"}})
    );
    assert_eq!(
        routes[0]["match"][1]["uri"],
        serde_json::json!({"prefix": "/payment/"}),
        "a path prefix matches whole segments"
    );
    assert_eq!(
        routes[0]["route"][0]["destination"]["subset"],
        "sd-wan-priority-high"
    );
    assert_eq!(
        routes[1]["route"][0]["destination"]["subset"],
        "sd-wan-priority-low"
    );
    assert_eq!(routes[2]["directResponse"]["status"], 403);
    assert!(routes[2].get("match").is_none());
    let entry = golden_object(
        "l7-payment",
        "cluster-2/secure/serviceentry-mcw-payment.yaml",
    );
    let ports: Vec<&serde_json::Value> = entry["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["ports"]["http"])
        .collect();
    assert_eq!(
        ports,
        [&serde_json::json!(31111), &serde_json::json!(31112)],
        "one endpoint per policy the WANRoute uses"
    );
}

/// User VirtualServices pass through unchanged (but for serialization), and a clusterset
/// host only they define gets a ServiceEntry so that clients can address it.
#[test]
fn passthrough_objects_are_copied_and_their_hosts_registered() {
    let input = yaml_documents(
        &fs::read(root().join("examples/canary/clusters/client/canary.yaml")).unwrap(),
    )
    .remove(0);
    let output = golden_object("canary", "client/secure/virtualservice-payment-canary.yaml");
    assert_eq!(input, output);
    let host = golden_object(
        "canary",
        "client/secure/serviceentry-mcw-vhost.payment.secure.yaml",
    );
    assert_eq!(
        host["spec"]["hosts"][0],
        "payment.secure.svc.clusterset.local"
    );
    // Regression: with no endpoints, DNS resolution made every sidecar resolve a name that
    // does not exist; STATIC has nothing to resolve.
    assert_eq!(host["spec"]["resolution"], "STATIC");
    assert!(host["spec"].get("endpoints").is_none());
    let workaround = golden_object(
        "l7-workaround",
        "cluster-2/secure/virtualservice-payment.yaml",
    );
    assert_eq!(
        workaround["spec"]["http"][0]["route"][0]["destination"]["host"],
        "payment-high-prio.secure.svc.clusterset.local"
    );
}

// Reliability: hostile input, the filesystem, crashes, concurrency, determinism, network.

#[test]
fn hostile_sizes_and_depths_are_bounded() {
    let (_temp, input, _) = scratch("payment");
    let huge = input.join("clusters/cluster-1/huge.yaml");
    let mut text =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: secure, labels: {x: \"");
    text.push_str(&"a".repeat(50 * 1024 * 1024));
    text.push_str("\"}}\n");
    fs::write(&huge, text).unwrap();
    fs::write(
        input.join("clusters/cluster-1/deep.yaml"),
        format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
    )
    .unwrap();
    let output = mcwan(&["validate", path_str(&input), "--format", "github"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "file=clusters/cluster-1/huge.yaml,line=1,col=1,title=file-unreadable::file is 524288"
        ),
        "{text}"
    );
    assert!(
        text.contains("file=clusters/cluster-1/deep.yaml,line=1")
            && text.contains("title=yaml-limit"),
        "{text}"
    );
    // The limits are flags.
    let raised = mcwan(&[
        "validate",
        path_str(&input),
        "--format",
        "github",
        "--max-file-bytes",
        "60000000",
    ]);
    assert!(
        !stdout(&raised).contains("huge.yaml"),
        "{}",
        stdout(&raised)
    );
    assert_eq!(
        mcwan(&["validate", path_str(&input), "--max-depth", "500"])
            .status
            .code(),
        Some(2),
        "more than 128 is refused"
    );
}

#[test]
fn out_must_be_a_real_directory() {
    let (temp, input, out) = scratch("payment");
    fs::write(&out, "a file").unwrap();
    let output = render(&input, &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("it is not a directory"),
        "{}",
        stderr(&output)
    );
    fs::remove_file(&out).unwrap();
    let real = temp.path().join("real");
    assert!(render(&input, &real).status.success());
    std::os::unix::fs::symlink(&real, &out).unwrap();
    let output = render(&input, &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
}

/// Whatever the input, a render writes only inside OUT (and its lock file beside it).
#[test]
fn nothing_is_written_outside_out() {
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    let case = parse_case(&root().join("tests/invalid/invalid-name.case"));
    apply_case(&case, &input);
    let before = read_tree(temp.path());
    let out = temp.path().join("area/out");
    assert_eq!(render(&input, &out).status.code(), Some(1));
    assert!(render(&root().join("examples/l7-payment"), &out)
        .status
        .success());
    for path in read_tree(temp.path()).keys() {
        let inside = path.starts_with("area/out/") || path == "area/.out.mcwan-lock";
        assert!(
            inside || before.contains_key(path),
            "written outside OUT: {path}"
        );
    }
}

fn generate(dir: &Path, clusters: &str, services: &str) {
    let output = mcwan(&[
        "generate",
        "-o",
        path_str(dir),
        "--clusters",
        clusters,
        "--services",
        services,
        "--exporters",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// SIGKILL at 20 moments of a large render: OUT is always the previous complete render or
/// the new complete one, never a mix, and the next render cleans up after the killed one.
#[test]
fn a_killed_render_leaves_a_complete_output() {
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("repo");
    generate(&input, "8", "200");
    let out = temp.path().join("out");
    let started = std::time::Instant::now();
    assert!(render(&input, &out).status.success());
    let duration = started.elapsed();
    let first = read_tree(&out);
    let policies = input.join("policies/policies.yaml");
    replace_in(&policies, "port: 31000", "port: 31900");
    let second_out = temp.path().join("second");
    assert!(render(&input, &second_out).status.success());
    let second = read_tree(&second_out);
    assert_ne!(first, second);
    for moment in 0..20u32 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcwan"))
            .args(["render", path_str(&input), "-o", path_str(&out)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(duration * moment / 20);
        let _ = child.kill();
        let _ = child.wait();
        let now = read_tree(&out);
        assert!(
            now == first || now == second,
            "moment {moment}: OUT is neither the old nor the new render"
        );
    }
    assert!(render(&input, &out).status.success());
    assert_eq!(read_tree(&out), second);
    let leftovers: Vec<_> = fs::read_dir(temp.path())
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
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = (temp.path().join("a"), temp.path().join("b"));
    generate(&a, "6", "200");
    generate(&b, "6", "200");
    let policies = b.join("policies/policies.yaml");
    replace_in(&policies, "port: 31000", "port: 31900");
    let (expect_a, expect_b) = (temp.path().join("expect-a"), temp.path().join("expect-b"));
    assert!(render(&a, &expect_a).status.success() && render(&b, &expect_b).status.success());
    let (tree_a, tree_b) = (read_tree(&expect_a), read_tree(&expect_b));
    let out = temp.path().join("out");
    for _ in 0..3 {
        let spawn = |input: &Path| {
            Command::new(env!("CARGO_BIN_EXE_mcwan"))
                .args(["render", path_str(input), "-o", path_str(&out)])
                .spawn()
                .unwrap()
        };
        let (mut one, mut two) = (spawn(&a), spawn(&b));
        assert!(one.wait().unwrap().success() && two.wait().unwrap().success());
        let now = read_tree(&out);
        assert!(now == tree_a || now == tree_b, "OUT mixes two renders");
    }
}

/// Rewrites a YAML document with its mapping keys in another order (as JSON, which is YAML).
fn shuffle_keys(value: &serde_json::Value, rng: &mut Shuffle) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            rng.shuffle(&mut entries);
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), shuffle_keys(v, rng)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|v| shuffle_keys(v, rng)).collect())
        }
        other => other.clone(),
    }
}

/// 20 permutations of every example (file names, files, document order, key order), and
/// other locales and time zones: the same bytes every time.
#[test]
fn output_does_not_depend_on_key_order_locale_or_time_zone() {
    let mut rng = Shuffle(0x2545_f491_4f6c_dd1d);
    for name in example_names() {
        let golden = read_tree(&root().join("golden").join(&name));
        for round in 0..20 {
            let temp = tempfile::tempdir().unwrap();
            let permuted = temp.path().join("permuted");
            permute(&root().join("examples").join(&name), &permuted, &mut rng);
            let input = temp.path().join("repo");
            for (path, bytes) in read_tree(&permuted) {
                let documents = yaml_documents(&bytes);
                let text: Vec<String> = documents
                    .iter()
                    .map(|d| serde_json::to_string(&shuffle_keys(d, &mut rng)).unwrap())
                    .collect();
                let target = input.join(&path);
                fs::create_dir_all(target.parent().unwrap()).unwrap();
                fs::write(target, text.join("\n---\n") + "\n").unwrap();
            }
            let out = temp.path().join("out");
            let (locale, zone) = [
                ("C", "UTC"),
                ("tr_TR.UTF-8", "Pacific/Chatham"),
                ("de_DE.UTF-8", "America/St_Johns"),
            ][round % 3];
            let output = Command::new(env!("CARGO_BIN_EXE_mcwan"))
                .args(["render", path_str(&input), "-o", path_str(&out)])
                .env("LC_ALL", locale)
                .env("LANG", locale)
                .env("TZ", zone)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{name} round {round}: {}",
                stderr(&output)
            );
            assert_same_tree(
                &golden,
                &read_tree(&out),
                &format!("{name} with shuffled keys, round {round}"),
            );
        }
    }
}

/// mcwan never needs the network: in a network namespace with no interfaces, every command
/// behaves exactly as outside it.
#[test]
fn renders_without_any_network() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    let example = root().join("examples/l7-payment");
    let isolated = |flag: &str| {
        Command::new("unshare")
            .args([
                flag,
                env!("CARGO_BIN_EXE_mcwan"),
                "render",
                path_str(&example),
                "-o",
                path_str(&out),
            ])
            .output()
            .expect("unshare (util-linux) must be installed")
    };
    let mut output = isolated("--net");
    if !output.status.success() && stderr(&output).contains("unshare failed") {
        output = isolated("-rn");
    }
    assert!(output.status.success(), "{}", stderr(&output));
    assert_same_tree(
        &read_tree(&root().join("golden/l7-payment")),
        &read_tree(&out),
        "render without network",
    );
}

/// `kubectl kustomize DIR`, or `None` (saying so) where kubectl is not installed. In CI
/// (`CI` set, as `.ci/run` sets it after installing kubectl) a missing kubectl fails.
fn kubectl_kustomize(dir: &Path) -> Option<Output> {
    match Command::new("kubectl")
        .args(["kustomize", path_str(dir)])
        .output()
    {
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
        stderr(&output)
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
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    let example = root().join("examples/l7-payment");
    let output = mcwan(&[
        "render",
        path_str(&example),
        "-o",
        path_str(&out),
        "--layout",
        "namespace",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for cluster in ["cluster-1", "cluster-2"] {
        let Some(whole) = kustomize_objects(&out.join(cluster)) else {
            return;
        };
        assert_eq!(
            Some(whole),
            kustomize_objects(&root().join("golden/l7-payment").join(cluster)),
            "{cluster}"
        );
        let mut parts = 0;
        for entry in fs::read_dir(out.join(cluster)).unwrap() {
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
    let check = mcwan(&[
        "check",
        path_str(&example),
        "-o",
        path_str(&out),
        "--layout",
        "namespace",
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
}
