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
