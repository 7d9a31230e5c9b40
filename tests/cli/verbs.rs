//! The verbs that edit the declarations: `export`, `unexport`, `import`, `unimport`.

use crate::common::test::Test;

/// The seed's verbs edit the repository and undo each other byte for byte; a verb whose
/// result would not validate changes nothing.
#[test]
fn verbs_round_trip_and_keep_the_repository_valid() {
    let mut test = Test::example("three-clusters");
    let before = test.tree("{in}");

    // cluster-3 has the `insecure` namespace but no Service `secure/payment`.
    test.args(&[
        "export",
        "insecure/payment",
        "--cluster",
        "cluster-3",
        "{in}",
    ])
    .code(1)
    .run();
    assert_eq!(
        test.tree("{in}"),
        before,
        "a refused verb changed the repository"
    );

    // cluster-2 has no logging Service.
    test.args(&[
        "export",
        "insecure/logging",
        "--cluster",
        "cluster-2",
        "--wan-policy",
        "internet",
        "{in}",
    ])
    .code(1)
    .run();

    test.write(
        "clusters/cluster-2/logging.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: logging, namespace: insecure}\nspec:\n  ports: [{name: http, port: 9000}]\n",
    );
    let with_service = test.tree("{in}");
    test.args(&[
        "export",
        "insecure/logging",
        "--cluster",
        "cluster-2",
        "{in}",
    ])
    .run();
    assert!(test
        .path("clusters/cluster-2/mcwan-export-insecure-logging.yaml")
        .is_file());
    test.render().run();
    assert!(test
        .path("{out}/cluster-2/insecure/httproute-mcw-logging.internet.yaml")
        .is_file());
    test.args(&[
        "unexport",
        "insecure/logging",
        "--cluster",
        "cluster-2",
        "{in}",
    ])
    .run();
    assert_eq!(
        test.tree("{in}"),
        with_service,
        "export then unexport is not byte-identical"
    );

    test.args(&[
        "unimport",
        "secure/payment",
        "--cluster",
        "cluster-2",
        "{in}",
    ])
    .run();
    test.render().run();
    assert!(!test
        .path("{out}/cluster-2/secure/serviceentry-mcw-payment.yaml")
        .exists());
    test.args(&["import", "secure/payment", "--cluster", "cluster-2", "{in}"])
        .run();
    assert_eq!(
        test.tree("{in}"),
        with_service,
        "unimport then import is not byte-identical"
    );

    // cluster-3 lacks `secure`: import adds the namespace, and it then imports payment.
    test.args(&["import", "secure/payment", "--cluster", "cluster-3", "{in}"])
        .run();
    assert!(test
        .read("clusterset.yaml")
        .contains("namespaces: [insecure, secure]"));
    test.render().run();
    assert!(test
        .path("{out}/cluster-3/secure/serviceentry-mcw-payment.yaml")
        .is_file());
}

/// Two more services of `secure`, exported from cluster-1 over the default policy.
const MORE_SECURE_SERVICES: &str = "---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: secure}
spec:
  ports:
  - {name: http, port: 8080}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: ledger, namespace: secure}
---
apiVersion: v1
kind: Service
metadata: {name: audit, namespace: secure}
spec:
  ports:
  - {name: http, port: 8080}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: audit, namespace: secure}
";

fn with_more_secure_services() -> Test {
    let mut test = Test::example("three-clusters");
    let services = test.read("clusters/cluster-1/services.yaml") + MORE_SECURE_SERVICES;
    test.write("clusters/cluster-1/services.yaml", services);
    test
}

/// Adding a namespace to a cluster imports every service of it: `import` says which, with
/// exporters, policy and tunnel, and that the namespace must exist on the cluster; `--only`
/// opts out of the others instead.
#[test]
fn import_lists_every_service_it_adds_and_only_opts_out_of_the_others() {
    let mut test = with_more_secure_services();
    let done = test
        .args(&["import", "secure/payment", "--cluster", "cluster-3", "{in}"])
        .run();
    done.stderr_has("`cluster-3` imports from now on:\n")
        .stderr_has(
            "  secure/audit    exported by cluster-1, over internet (tunnel public-internet)\n",
        )
        .stderr_has(
            "  secure/ledger   exported by cluster-1, over internet (tunnel public-internet)\n",
        )
        .stderr_has("  secure/payment  exported by cluster-1, over business (tunnel business)\n")
        .stderr_has("warning: namespace `secure` must exist on `cluster-3`");
    test.render().run();
    for service in ["audit", "ledger", "payment"] {
        assert!(test
            .path(&format!(
                "{{out}}/cluster-3/secure/serviceentry-mcw-{service}.yaml"
            ))
            .is_file());
    }

    let mut test = with_more_secure_services();
    let done = test
        .args(&[
            "import",
            "secure/payment",
            "--cluster",
            "cluster-3",
            "--only",
            "{in}",
        ])
        .run();
    done.stderr_has("  secure/payment  exported by cluster-1, over business (tunnel business)\n")
        .stderr_has("`cluster-3` opts out of (`skipImports`):\n  secure/audit   exported by cluster-1\n  secure/ledger  exported by cluster-1\n")
        .stderr_has("warning: namespace `secure` must exist on `cluster-3`");
    assert!(!done
        .stderr
        .contains("secure/audit    exported by cluster-1, over"));
    let clusterset = test.read("clusterset.yaml");
    assert!(clusterset
        .contains("  - name: cluster-3\n    skipImports: [secure/audit, secure/ledger]\n"));
    assert!(clusterset.contains("namespaces: [insecure, secure]"));
    test.render().run();
    assert!(test
        .path("{out}/cluster-3/secure/serviceentry-mcw-payment.yaml")
        .is_file());
    assert!(!test
        .path("{out}/cluster-3/secure/serviceentry-mcw-audit.yaml")
        .exists());

    // Undoing an opt-out imports that one service, and says so.
    test.args(&["import", "secure/audit", "--cluster", "cluster-3", "{in}"])
        .run()
        .stderr_has("removed `secure/audit` from its `skipImports`")
        .stderr_has("  secure/audit  exported by cluster-1, over internet");
    assert!(test
        .read("clusterset.yaml")
        .contains("skipImports: [secure/ledger]"));

    // A service nobody exports would import the namespace's others for nothing.
    let before = test.tree("{in}");
    test.args(&["import", "secure/lodger", "--cluster", "cluster-2", "{in}"])
        .code(1)
        .run()
        .stderr_has("no cluster exports `secure/lodger` (did you mean `secure/ledger`?)");
    assert_eq!(test.tree("{in}"), before);
}

/// Every example declares its exports beside their Services, in one file: `unexport`
/// removes the one document and keeps every other byte of the file.
#[test]
fn unexport_removes_its_document_from_a_file_of_several() {
    let mut test = Test::example("three-clusters");
    let file = "clusters/cluster-1/services.yaml";
    let original = test.read(file);
    let payment = "---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: payment\n  namespace: secure\n  annotations: {mcw.l7mp.io/mc-wan-policy: business}\n";
    assert!(original.contains(payment));
    let done = test
        .args(&[
            "unexport",
            "secure/payment",
            "--cluster",
            "cluster-1",
            "{in}",
        ])
        .run();
    done.stderr_has("removed its ServiceExport from `clusters/cluster-1/services.yaml`, which keeps its 3 other document(s)");
    assert_eq!(test.read(file), original.replacen(payment, "", 1));
    test.render().run();
    assert!(!test
        .path("{out}/cluster-1/secure/serviceexport-payment.yaml")
        .exists());
    assert!(test
        .path("{out}/cluster-1/insecure/serviceexport-logging.yaml")
        .is_file());

    // The last document, with its comment, in a CRLF file.
    let mut test = Test::example("three-clusters");
    let crlf = original.replace('\n', "\r\n");
    test.write(file, &crlf);
    test.args(&[
        "unexport",
        "insecure/logging",
        "--cluster",
        "cluster-1",
        "{in}",
    ])
    .run();
    let logging = crlf.find("---\r\n# logging has two ports").unwrap();
    assert_eq!(test.read(file), crlf[..logging]);

    // A leading `---`, document end markers and comments between the documents.
    let mut test = Test::example("payment");
    let file = "clusters/cluster-2/logging.yaml";
    let text = "---\n# The logging Service.\napiVersion: v1\nkind: Service\nmetadata: {name: logging, namespace: insecure}\nspec:\n  ports: [{name: http, port: 8080}]\n...\n# Its export.\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: logging, namespace: insecure}\n...\n# What follows is kept.\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: insecure}\n...\n";
    test.write(file, text);
    test.args(&[
        "unexport",
        "insecure/logging",
        "--cluster",
        "cluster-2",
        "{in}",
    ])
    .run();
    assert_eq!(
        test.read(file),
        "---\n# The logging Service.\napiVersion: v1\nkind: Service\nmetadata: {name: logging, namespace: insecure}\nspec:\n  ports: [{name: http, port: 8080}]\n...\n# What follows is kept.\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: insecure}\n...\n"
    );
}

/// An export a WANRoute refines cannot go alone: the refusal names the route and its file.
#[test]
fn unexport_refuses_while_a_wanroute_refines_the_export() {
    let mut test = Test::example("l7-payment");
    let before = test.tree("{in}");
    test.args(&["unexport", "secure/payment", "--cluster", "cluster-1", "{in}"])
        .code(1)
        .run()
        .stderr_has("error: cannot unexport `secure/payment` from `cluster-1`: the WANRoute `secure/payment` in `clusters/cluster-1/payment.yaml` refines this export, and would refine nothing without it: remove the WANRoute first");
    assert_eq!(test.tree("{in}"), before);
}

/// `--wan-policy` takes a policy's name, or a part of it that names one policy only.
#[test]
fn wan_policy_is_a_name_or_a_part_of_exactly_one() {
    let mut test = Test::example("three-clusters");
    test.write(
        "policies/business-eu.yaml",
        "apiVersion: mcw.l7mp.io/v1alpha1\nkind: WANPolicy\nmetadata: {name: business-eu}\nspec:\n  tunnel: business\n  port: 31120\n  sla: {latencyMs: 100, jitterMs: 50, lossPercent: 1}\n",
    );
    test.write(
        "clusters/cluster-2/ledger.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: ledger, namespace: secure}\nspec:\n  ports: [{name: http, port: 8080}]\n",
    );
    let export = "clusters/cluster-2/mcwan-export-secure-ledger.yaml";
    let before = test.tree("{in}");
    let args = |policy: &'static str| {
        [
            "export",
            "secure/ledger",
            "--cluster",
            "cluster-2",
            "--wan-policy",
            policy,
            "{in}",
        ]
    };
    test.args(&args("busi"))
        .code(1)
        .run()
        .stderr_has("`busi` is part of the names of several WAN policies: `business`, `business-eu`; name one of them");
    test.args(&args("zz"))
        .code(1)
        .run()
        .stderr_has("no WAN policy name contains `zz` (policies: `archive`, `business`, `business-eu`, `internet`)");
    assert_eq!(test.tree("{in}"), before);
    // An exact name wins over the longer names that contain it.
    test.args(&args("business")).run();
    assert!(test
        .read(export)
        .contains("mcw.l7mp.io/mc-wan-policy: \"business\"\n"));
    test.remove(export);
    // Not a suffix: any part of one name.
    test.args(&args("chiv"))
        .run()
        .stderr_has("over WAN policy `archive`");
    assert!(test
        .read(export)
        .contains("mcw.l7mp.io/mc-wan-policy: \"archive\"\n"));
}

/// The modification time of `file`, after setting it to a fixed point in the past.
fn aged(test: &Test, file: &str) -> std::time::SystemTime {
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(test.path(file))
        .unwrap()
        .set_modified(past)
        .unwrap();
    past
}

fn modified(test: &Test, file: &str) -> std::time::SystemTime {
    std::fs::metadata(test.path(file))
        .unwrap()
        .modified()
        .unwrap()
}

/// `export` again with the same policy, or none, changes nothing; with another policy it
/// changes the export's annotation, and nothing else of its file.
#[test]
fn export_again_changes_nothing_or_only_the_policy() {
    let mut test = Test::example("three-clusters");
    let file = "clusters/cluster-1/services.yaml";
    let original = test.read(file);
    let past = aged(&test, file);
    for policy in [
        &["--wan-policy", "business"][..],
        &["--wan-policy", "bus"],
        &[],
    ] {
        test.args(&["export", "secure/payment", "--cluster", "cluster-1", "{in}"])
            .args(policy)
            .run()
            .stderr_has("`secure/payment` is already exported from `cluster-1` over WAN policy `business`, in `clusters/cluster-1/services.yaml`: nothing changed");
        assert_eq!(modified(&test, file), past, "a no-op export wrote {file}");
    }
    test.args(&[
        "export",
        "secure/payment",
        "--cluster",
        "cluster-1",
        "--wan-policy",
        "archive",
        "{in}",
    ])
    .run()
    .stderr_has("`secure/payment` is exported from `cluster-1` over WAN policy `archive` now, no longer over WAN policy `business`");
    assert_eq!(
        test.read(file),
        original.replacen(
            "{mcw.l7mp.io/mc-wan-policy: business}",
            "{mcw.l7mp.io/mc-wan-policy: archive}",
            1
        )
    );
    test.render().run();
    assert!(test
        .path("{out}/cluster-1/secure/httproute-mcw-payment.archive.yaml")
        .is_file());

    // An export without the annotation gains it, beside its other metadata.
    let mut test = Test::example("payment");
    let file = "clusters/cluster-2/logging.yaml";
    let original = test.read(file);
    let args = [
        "export",
        "insecure/logging",
        "--cluster",
        "cluster-2",
        "--wan-policy",
        "sd-wan-priority-low",
        "{in}",
    ];
    test.args(&args)
        .run()
        .stderr_has("over the default WAN policy `sd-wan-priority-low`, in `clusters/cluster-2/logging.yaml`: nothing changed");
    test.args(&args[..5]).args(&["high", "{in}"]).run();
    assert_eq!(
        test.read(file),
        format!(
            "{original}  annotations:\n    mcw.l7mp.io/mc-wan-policy: \"sd-wan-priority-high\"\n"
        )
    );
}

/// A refused change writes nothing, and its diagnostics say which files were only
/// proposed: a new file that does not exist, an edit that is not on disk.
#[test]
fn a_refused_change_says_its_files_were_not_written() {
    let mut test = Test::example("three-clusters");
    let before = test.tree("{in}");
    // cluster-3 has no Service `insecure/payment`.
    let refused = test
        .args(&[
            "export",
            "insecure/payment",
            "--cluster",
            "cluster-3",
            "{in}",
        ])
        .code(1)
        .run();
    refused
        .stderr_has("has no Service of the same name (in the proposed new file, which was not written)")
        .stderr_has("error: refusing to export `insecure/payment` from `cluster-3`: the repository would not validate with the change (the error(s) above); nothing was written: `clusters/cluster-3/mcwan-export-insecure-payment.yaml` was not created");
    assert!(!test
        .path("clusters/cluster-3/mcwan-export-insecure-payment.yaml")
        .exists());
    test.args(&[
        "export",
        "insecure/payment",
        "--cluster",
        "cluster-3",
        "--format",
        "github",
        "{in}",
    ])
    .code(1)
    .run()
    .stderr_has("(in the proposed new file, which was not written)");

    // cluster-1 and cluster-3 would export `insecure/logging` over different policies: the
    // diagnostic in the edited file says so, the one in the file left alone does not.
    let refused = test
        .args(&[
            "export",
            "insecure/logging",
            "--cluster",
            "cluster-3",
            "--wan-policy",
            "business",
            "{in}",
        ])
        .code(1)
        .run();
    refused
        .stderr_has("WAN policy `internet` vs `business` (in the proposed edit of this file, which was not written)")
        .stderr_has("exported by `cluster-1` here\n")
        .stderr_has("nothing was written: `clusters/cluster-3/logging.yaml` is unchanged");
    // The other way round, the place in the edited file is marked.
    test.args(&[
        "export",
        "insecure/logging",
        "--cluster",
        "cluster-1",
        "--wan-policy",
        "business",
        "{in}",
    ])
    .code(1)
    .run()
    .stderr_has("exported by `cluster-1` here (proposed, not written)\n");
    assert_eq!(test.tree("{in}"), before);
}

/// A verb shows the repository's diagnostics once: the edited repository's are only those
/// the change brings.
#[test]
fn a_verb_shows_a_warning_the_repository_had_once() {
    let mut test = Test::example("l7-workaround");
    let done = test
        .args(&[
            "unimport",
            "secure/payment-high-prio",
            "--cluster",
            "cluster-1",
            "{in}",
        ])
        .run();
    assert_eq!(
        done.stderr
            .matches("warning[plaintext-public-tunnel]")
            .count(),
        1,
        "{}",
        done.stderr
    );
    done.stderr_has("`cluster-1` no longer imports `secure/payment-high-prio`");
}

/// An export whose annotation cannot be changed on its own line (a flow mapping over
/// several lines, an anchor other fields refer to) is left to the user, untouched.
#[test]
fn export_leaves_an_annotation_it_cannot_change_alone_to_the_user() {
    let file = "clusters/cluster-2/logging.yaml";
    let export_metadata = "metadata:\n  name: logging\n  namespace: insecure\n";
    let layouts = [
        "metadata: {name: logging,\n  namespace: insecure}\n".to_string(),
        format!("{export_metadata}  annotations: {{mcw.l7mp.io/mc-wan-policy: &p sd-wan-priority-low}}\n  labels: {{policy: *p}}\n"),
    ];
    for layout in layouts {
        let mut test = Test::example("payment");
        let text = test.read(file);
        let at = text.rfind(export_metadata).unwrap();
        test.write(file, format!("{}{layout}", &text[..at]));
        let before = test.tree("{in}");
        test.args(&[
            "export",
            "insecure/logging",
            "--cluster",
            "cluster-2",
            "--wan-policy",
            "high",
            "{in}",
        ])
        .code(1)
        .run()
        .stderr_has("cannot change the `mcw.l7mp.io/mc-wan-policy` annotation of the export in `clusters/cluster-2/logging.yaml` without touching anything else: set it to `sd-wan-priority-high` by hand");
        assert_eq!(test.tree("{in}"), before, "{layout}");
    }
}
