//! `render --cluster` and the Argo CD config management plugin in `deploy/argocd/`: the
//! plugin's generate command, run as Argo CD's CMP server runs it, prints what `kubectl
//! kustomize` builds from the rendered cluster directory; the stream holds the directory's
//! files in kustomize's order; the install files parse and fit together.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::test::Test;
use crate::common::{copy, example_names, read_tree, root, yaml_documents};
use crate::output::kubectl_kustomize;

/// The one document of a file under `deploy/argocd/`.
fn deploy_file(name: &str) -> Value {
    let path = root().join("deploy/argocd").join(name);
    let documents = yaml_documents(&fs::read(&path).unwrap());
    assert_eq!(documents.len(), 1, "{}", path.display());
    documents.into_iter().next().unwrap()
}

/// The plugin's generate command and arguments, as the CMP server joins them
/// (cmpserver/plugin/plugin.go `runCommand`: `command[0]`, then `command[1:]` and `args`).
fn generate_command() -> Vec<String> {
    let plugin = deploy_file("plugin.yaml");
    let generate = &plugin["spec"]["generate"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    let mut command = strings(&generate["command"]);
    command.extend(strings(&generate["args"]));
    assert!(!command.is_empty(), "plugin.yaml has no generate.command");
    command
}

/// The mcwan cluster directories of a golden tree, by name.
fn golden_clusters(example: &str) -> Vec<String> {
    let mut clusters: Vec<String> = fs::read_dir(root().join("golden").join(example))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("kustomization.yaml").is_file())
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    clusters.sort();
    clusters
}

/// The sidecar's user (`runAsUser` in repo-server-patch.yaml).
const SIDECAR_USER: u32 = 999;

/// A scratch directory laid out as the CMP server's: a copy of a declarations repository
/// (the Application's path `mesh/` in it), made read-only, and an empty HOME and TMPDIR,
/// writable as the sidecar's emptyDir is.
struct Sidecar {
    temp: tempfile::TempDir,
    /// Run commands as the sidecar's user: root would write to a read-only copy anyway.
    as_sidecar_user: bool,
}

impl Sidecar {
    fn with_copy_of(example: &str) -> Sidecar {
        let temp = tempfile::tempdir().unwrap();
        let root_user = fs::metadata(temp.path()).unwrap().uid() == 0;
        let sidecar = Sidecar {
            temp,
            as_sidecar_user: root_user && Path::new("/usr/bin/setpriv").is_file(),
        };
        copy(&root().join("examples").join(example), &sidecar.app());
        fs::set_permissions(sidecar.temp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for scratch in ["home", "tmp"] {
            fs::create_dir_all(sidecar.path(scratch)).unwrap();
            fs::set_permissions(sidecar.path(scratch), fs::Permissions::from_mode(0o777)).unwrap();
        }
        set_writable(&sidecar.path("repo"), false);
        if root_user && !sidecar.as_sidecar_user {
            eprintln!("running as root without setpriv: the repository copy is not read-only to the plugin");
        } else {
            let probe = sidecar.run(&["sh", "-c", "echo x > probe"], &[]);
            assert!(!probe.status.success(), "the repository copy is writable");
        }
        sidecar
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.temp.path().join(relative)
    }

    /// The Application's source directory, where the CMP server runs `generate`.
    fn app(&self) -> PathBuf {
        self.path("repo/mesh")
    }

    /// Runs the plugin's generate command as the CMP server does: in the Application's
    /// source directory, with the build environment Argo CD sets and the Application's
    /// plugin env prefixed with `ARGOCD_ENV_`; `mcwan` on PATH.
    fn generate(&self, plugin_env: &[(&str, &str)]) -> Output {
        let command = generate_command();
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        self.run(&command, plugin_env)
    }

    /// Runs `command` in the Application's source directory as the CMP server would.
    fn run(&self, command: &[&str], plugin_env: &[(&str, &str)]) -> Output {
        let binary = Path::new(env!("CARGO_BIN_EXE_mcwan"));
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            binary.parent().unwrap().display()
        );
        let mut run = if self.as_sidecar_user {
            let mut run = Command::new("/usr/bin/setpriv");
            run.arg(format!("--reuid={SIDECAR_USER}"))
                .arg(format!("--regid={SIDECAR_USER}"))
                .arg("--clear-groups")
                .args(command);
            run
        } else {
            let mut run = Command::new(command[0]);
            run.args(&command[1..]);
            run
        };
        run.current_dir(self.app())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .env("ARGOCD_APP_NAME", "mcwan-cluster-1")
            .env("ARGOCD_APP_NAMESPACE", "")
            .env("ARGOCD_APP_PROJECT_NAME", "default")
            .env("ARGOCD_APP_SOURCE_PATH", "mesh")
            .env(
                "ARGOCD_APP_SOURCE_REPO_URL",
                "https://github.com/example-org/mesh-declarations.git",
            )
            .env("ARGOCD_APP_SOURCE_TARGET_REVISION", "HEAD")
            .env("KUBE_VERSION", "1.32.4")
            .env("KUBE_API_VERSIONS", "v1,apps/v1,networking.istio.io/v1")
            .env("NO_COLOR", "1");
        for (name, value) in plugin_env {
            run.env(format!("ARGOCD_ENV_{name}"), value);
        }
        run.output()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
    }

    /// Whether the repository copy, HOME and TMPDIR are as they were made.
    fn untouched(&self, example: &str) {
        assert_eq!(
            read_tree(&self.app()),
            read_tree(&root().join("examples").join(example)),
            "the plugin changed the repository"
        );
        for scratch in ["home", "tmp"] {
            assert_eq!(
                fs::read_dir(self.path(scratch)).unwrap().count(),
                0,
                "the plugin wrote into {scratch}"
            );
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        set_writable(&self.path("repo"), true);
    }
}

/// Makes a tree read-only (files 0444, directories 0555) or writable again.
fn set_writable(dir: &Path, writable: bool) {
    let (file_mode, dir_mode) = if writable {
        (0o644, 0o755)
    } else {
        (0o444, 0o555)
    };
    if writable {
        fs::set_permissions(dir, fs::Permissions::from_mode(dir_mode)).unwrap();
    }
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_writable(&path, writable);
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(file_mode)).unwrap();
        }
    }
    if !writable {
        fs::set_permissions(dir, fs::Permissions::from_mode(dir_mode)).unwrap();
    }
}

/// The plugin, run as Argo CD runs it on a read-only copy of each example, prints for each
/// cluster the objects `kubectl kustomize` builds from its rendered directory, in the same
/// order, and writes nothing. Compared as values: kustomize re-serializes every object with
/// sorted keys, so the bytes differ.
#[test]
fn the_plugin_prints_what_kubectl_kustomize_builds() {
    let mut compared = 0;
    for example in example_names() {
        let sidecar = Sidecar::with_copy_of(&example);
        for cluster in golden_clusters(&example) {
            let output = sidecar.generate(&[("MCWAN_CLUSTER", &cluster)]);
            assert!(
                output.status.success(),
                "{example} {cluster}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let Some(built) =
                kubectl_kustomize(&root().join("golden").join(&example).join(&cluster))
            else {
                return;
            };
            assert!(
                built.status.success(),
                "{}",
                String::from_utf8_lossy(&built.stderr)
            );
            let (streamed, expected) = (
                yaml_documents(&output.stdout),
                yaml_documents(&built.stdout),
            );
            assert_eq!(
                identities(&streamed),
                identities(&expected),
                "{example} {cluster}: not kustomize's objects or order"
            );
            assert_eq!(streamed, expected, "{example} {cluster}");
            compared += 1;
        }
        sidecar.untouched(&example);
    }
    assert!(compared >= 10, "only {compared} clusters compared");
}

/// kustomize compares `<namespace>|<name>` as one string, so `ns-10` sorts before `ns-1`:
/// a generated clusterset has such namespaces and services, in every cluster.
#[test]
fn render_cluster_orders_prefixed_names_as_kubectl_kustomize() {
    let mut test = Test::empty();
    let options = [
        "--clusters",
        "3",
        "--services",
        "40",
        "--namespaces",
        "12",
        "--exporters",
        "2",
    ];
    test.generate("{in}", &options).run();
    test.render().run();
    for cluster in ["cluster-0", "cluster-1", "cluster-2"] {
        let streamed = test
            .args(&["render", "{in}", "--cluster", cluster])
            .run()
            .stdout;
        let Some(built) = kubectl_kustomize(&test.path(&format!("{{out}}/{cluster}"))) else {
            return;
        };
        let expected = yaml_documents(&built.stdout);
        let streamed = yaml_documents(streamed.as_bytes());
        assert!(
            streamed
                .iter()
                .any(|o| o["metadata"]["namespace"] == "ns-10"),
            "no object in `ns-10`"
        );
        assert_eq!(identities(&streamed), identities(&expected), "{cluster}");
        assert_eq!(streamed, expected, "{cluster}");
    }
}

/// The plugin fails, saying why on stderr and printing nothing, when the Application sets no
/// `MCWAN_CLUSTER` (or an empty one), and when it names no cluster of the ClusterSet.
#[test]
fn the_plugin_fails_loudly_without_a_cluster() {
    let sidecar = Sidecar::with_copy_of("payment");
    for env in [&[][..], &[("MCWAN_CLUSTER", "")][..]] {
        let output = sidecar.generate(env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?}: exit 0");
        assert!(output.stdout.is_empty(), "{env:?}: printed something");
        assert!(stderr.contains("MCWAN_CLUSTER"), "{env:?}: {stderr}");
    }
    let output = sidecar.generate(&[("MCWAN_CLUSTER", "cluster-9")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains(
            "no cluster `cluster-9` in the ClusterSet; its clusters are `cluster-1`, `cluster-2`"
        ),
        "{stderr}"
    );
    sidecar.untouched("payment");
}

/// Discovery (`discover.fileName`, a glob joined to the Application's source directory,
/// cmpserver/plugin/plugin.go `matchRepository`) picks every example repository, and neither
/// a rendered tree nor a cluster directory of one.
#[test]
fn discovery_matches_declarations_repositories_only() {
    let plugin = deploy_file("plugin.yaml");
    let pattern = plugin["spec"]["discover"]["fileName"]
        .as_str()
        .expect("discover.fileName");
    assert!(
        !pattern.contains(['*', '?', '[', '\\']),
        "`{pattern}`: this test reads only plain names"
    );
    let matches = |app: &Path| app.join(pattern.trim_start_matches("./")).is_file();
    for example in example_names() {
        assert!(
            matches(&root().join("examples").join(&example)),
            "{example}"
        );
        let golden = root().join("golden").join(&example);
        assert!(!matches(&golden), "golden/{example}");
        for cluster in golden_clusters(&example) {
            assert!(
                !matches(&golden.join(&cluster)),
                "golden/{example}/{cluster}"
            );
        }
    }
}

/// The ApplicationSet names the plugin as plugin.yaml does, and gives it the cluster's label
/// as `MCWAN_CLUSTER`, for the clusters that carry that label.
#[test]
fn the_application_set_passes_the_cluster_label_to_the_plugin() {
    let plugin = deploy_file("plugin.yaml");
    assert_eq!(plugin["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    let set = deploy_file("applicationset.yaml");
    assert_eq!(set["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(set["kind"], "ApplicationSet");
    assert_eq!(set["spec"]["goTemplate"], true);
    let label = "mcw.l7mp.io/cluster";
    let generator = &set["spec"]["generators"][0]["clusters"]["selector"]["matchExpressions"][0];
    assert_eq!(generator["key"], label);
    assert_eq!(generator["operator"], "Exists");
    let template = &set["spec"]["template"];
    let source = &template["spec"]["source"];
    // Without `spec.version`, the plugin's name is its metadata.name.
    assert!(plugin["spec"].get("version").is_none());
    assert_eq!(source["plugin"]["name"], plugin["metadata"]["name"]);
    let env = source["plugin"]["env"].as_array().expect("plugin env");
    let cluster = env
        .iter()
        .find(|e| e["name"] == "MCWAN_CLUSTER")
        .expect("MCWAN_CLUSTER");
    let from_label = format!("{{{{index .metadata.labels \"{label}\"}}}}");
    assert_eq!(cluster["value"], from_label.as_str());
    assert!(generate_command()
        .concat()
        .contains("ARGOCD_ENV_MCWAN_CLUSTER"));
    assert_eq!(template["spec"]["destination"]["server"], "{{.server}}");
}

/// The component, added to a kustomization holding Argo CD's repo-server, yields the
/// sidecar the CMP contract asks for, and a ConfigMap holding plugin.yaml as it is.
#[test]
fn the_component_adds_the_sidecar_to_the_repo_server() {
    let temp = tempfile::tempdir().unwrap();
    copy(&root().join("deploy/argocd"), &temp.path().join("argocd"));
    fs::write(
        temp.path().join("repo-server.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: argocd-repo-server\nspec:\n  selector:\n    matchLabels: {app: repo-server}\n  template:\n    metadata:\n      labels: {app: repo-server}\n    spec:\n      containers:\n      - name: argocd-repo-server\n        image: quay.io/argoproj/argocd:v3.5.1\n      volumes:\n      - {name: var-files, emptyDir: {}}\n      - {name: plugins, emptyDir: {}}\n",
    )
    .unwrap();
    fs::write(
        temp.path().join("kustomization.yaml"),
        "resources: [repo-server.yaml]\ncomponents: [argocd]\nnamespace: argocd\nimages:\n- {name: mcwan, newName: registry.example.com/mcwan, newTag: 0.1.0}\n",
    )
    .unwrap();
    let Some(built) = kubectl_kustomize(temp.path()) else {
        return;
    };
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let objects = yaml_documents(&built.stdout);
    let config = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("a ConfigMap");
    assert_eq!(
        config["data"]["plugin.yaml"],
        fs::read_to_string(root().join("deploy/argocd/plugin.yaml"))
            .unwrap()
            .as_str()
    );
    let pod = &objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the Deployment")["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert!(containers.iter().any(|c| c["name"] == "argocd-repo-server"));
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "mcwan")
        .expect("the sidecar");
    assert_eq!(sidecar["command"][0], "/var/run/argocd/argocd-cmp-server");
    assert_eq!(sidecar["image"], "registry.example.com/mcwan:0.1.0");
    assert_eq!(sidecar["securityContext"]["runAsUser"], 999);
    let volume_of = |path: &str| -> &Value {
        let mount = sidecar["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        let name = &mount["name"];
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == *name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(volume_of("/var/run/argocd")["name"], "var-files");
    assert_eq!(
        volume_of("/home/argocd/cmp-server/plugins")["name"],
        "plugins"
    );
    assert_eq!(
        volume_of("/home/argocd/cmp-server/config/plugin.yaml")["configMap"]["name"],
        config["metadata"]["name"]
    );
    assert!(volume_of("/tmp").get("emptyDir").is_some());
    let config_mount = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/home/argocd/cmp-server/config/plugin.yaml")
        .unwrap();
    assert_eq!(config_mount["subPath"], "plugin.yaml");
}

/// For every example and cluster, and a generated clusterset with namespaces `ns-1` and
/// `ns-10`, `render --cluster` prints the files of the cluster's directory, each byte for
/// byte as render writes it, in kustomize's legacy order (written out here from
/// api/internal/builtins/SortOrderTransformer.go, kustomize v5.5.0): no kubectl needed.
#[test]
fn render_cluster_streams_the_cluster_directory_in_kustomize_order() {
    for example in example_names() {
        let mut test = Test::example(&example);
        let golden = root().join("golden").join(&example);
        for cluster in golden_clusters(&example) {
            assert_streams_directory(&mut test, &golden.join(&cluster), &cluster);
        }
    }
    let mut test = Test::empty();
    let options = ["--clusters", "2", "--services", "30", "--namespaces", "11"];
    test.generate("{in}", &options).run();
    test.render().run();
    for cluster in ["cluster-0", "cluster-1"] {
        let directory = test.path(&format!("{{out}}/{cluster}"));
        assert!(directory.join("ns-10").is_dir() && directory.join("ns-1").is_dir());
        assert_streams_directory(&mut test, &directory, cluster);
    }
}

/// `render {in} --cluster C` prints the object files of `directory`, in kustomize's order.
fn assert_streams_directory(test: &mut Test, directory: &Path, cluster: &str) {
    let stdout = test
        .args(&["render", "{in}", "--cluster", cluster])
        .run()
        .stdout;
    let documents: Vec<&str> = split_stream(&stdout);
    let mut files: Vec<(String, Value)> = read_tree(directory)
        .into_iter()
        .filter(|(path, _)| !path.ends_with("kustomization.yaml"))
        .map(|(_, bytes)| {
            let object = yaml_documents(&bytes).remove(0);
            (String::from_utf8(bytes).unwrap(), object)
        })
        .collect();
    files.sort_by_key(|(_, object)| legacy_key(object));
    let expected: Vec<&str> = files.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(documents, expected, "{}", directory.display());
}

/// The documents of a stream render printed, each with its final newline.
fn split_stream(stream: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    for (at, _) in stream.match_indices("\n---\n") {
        documents.push(&stream[start..=at]);
        start = at + "\n---\n".len();
    }
    documents.push(&stream[start..]);
    documents
}

/// kustomize's legacy sort key of an object: the place of its kind (`defaultOrderFirst`,
/// others, `defaultOrderLast`), `group_version_kind`, then `namespace|name` as one string.
fn legacy_key(object: &Value) -> ((u8, usize), String, String) {
    const FIRST: &[&str] = &[
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "PodSecurityPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: &[&str] = &[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    let kind = object["kind"].as_str().unwrap();
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("~G", api_version));
    // The first list's kinds in its order, then every other kind, then the last list's.
    let rank = match (
        FIRST.iter().position(|k| *k == kind),
        LAST.iter().position(|k| *k == kind),
    ) {
        (Some(i), _) => (0, i),
        (None, Some(i)) => (2, i),
        (None, None) => (1, 0),
    };
    let metadata = &object["metadata"];
    let namespace = metadata["namespace"].as_str().unwrap_or("~X");
    (
        rank,
        format!("{group}_{version}_{kind}"),
        format!("{namespace}|{}", metadata["name"].as_str().unwrap()),
    )
}

/// Each object's kind, namespace and name, for a readable failure.
fn identities(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            let metadata = &o["metadata"];
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                metadata["namespace"].as_str().unwrap_or("-"),
                metadata["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Invalid declarations print nothing on stdout; neither does a cluster whose flows would
/// not work, judged against the other clusters' gateways (here the exporter's routes name
/// another host), unless `--no-verify`.
#[test]
fn render_cluster_prints_nothing_unless_valid_and_verified() {
    let mut test = Test::example("payment");
    test.edit(
        "policies/sd-wan-priority-high.yaml",
        "port: 31111",
        "port: 70000",
    );
    let invalid = test
        .args(&["render", "{in}", "--cluster", "cluster-2"])
        .code(1)
        .run();
    assert!(invalid.stdout.is_empty(), "{}", invalid.stdout);
    assert!(invalid.stderr.contains("70000"), "{}", invalid.stderr);

    let mut test = Test::example("payment");
    let original = fs::read_to_string(root().join("templates/httproute.yaml.j2")).unwrap();
    test.write(
        "{temp}/templates/httproute.yaml.j2",
        original.replace("  - {{ route.host }}", "  - {{ \"x\" ~ route.host }}"),
    );
    let cluster_2 = ["render", "{in}", "--cluster", "cluster-2"];
    let templates = ["--templates", "{temp}/templates"];
    let refused = test.args(&cluster_2).args(&templates).code(1).run();
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    refused
        .stderr_has("cluster-2 → payment.secure.svc.clusterset.local")
        .stderr_has("declared flow(s) from `cluster-2` would not work");
    let unverified = test
        .args(&cluster_2)
        .args(&templates)
        .args(&["--no-verify"])
        .run();
    unverified.stderr_has("warning: --no-verify");
    assert!(unverified.stdout.contains("kind: ServiceEntry"));
}

/// `--cluster` prints, `-o` writes: one of them, not both; a lock timeout is about OUT, and
/// diagnostics in JSON or GitHub's format would go to stdout, into the stream.
#[test]
fn render_takes_either_out_or_cluster() {
    let mut test = Test::example("payment");
    let cluster = ["render", "{in}", "--cluster", "cluster-1"];
    for args in [
        &["-o", "{out}"][..],
        &["--lock-timeout", "1"][..],
        &["--format", "json"][..],
    ] {
        let output = test.args(&cluster).args(args).code(2).run();
        assert!(output.stdout.is_empty());
    }
    let output = test.args(&["render", "{in}"]).code(2).run();
    assert!(output.stdout.is_empty());
    assert!(!test.path("{out}").exists());
}
