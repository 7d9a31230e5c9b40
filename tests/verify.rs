//! `mcwan verify` on rendered trees: every example verifies clean, and each mutation breaks
//! one object the way real mistakes do (one or more per kind verify reads, each defect of
//! docs/mesh.md reintroduced by hand, each way mutual mode's encryption and callers can
//! fail, and each way the egress gateway's hop can) and must be named as a broken flow.

// A `Test` is `test`, beside the `text` it reads and writes.
#![allow(clippy::similar_names)]

mod common;

use std::fs;

use common::root;
use common::test::Test;

/// The rows of `mcwan verify {out} --format json`.
fn json_rows(test: &mut Test) -> Vec<serde_json::Value> {
    let json = test
        .args(&["verify", "{out}", "--format", "json"])
        .run()
        .stdout;
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    report["rows"].as_array().unwrap().clone()
}

#[test]
fn every_example_verifies_clean() {
    let mut test = Test::empty();
    for entry in fs::read_dir(root().join("golden")).unwrap() {
        let out = entry.unwrap().path();
        test.args(&["verify", out.to_str().unwrap()])
            .run()
            .stdout_has(" 0 problems");
    }
    // The same verdict from the declarations as from the intent the render recorded.
    test.args(&["verify", "{root}/golden/l7-payment"])
        .args(&["--declarations", "{root}/examples/l7-payment"])
        .run();
}

/// Each case: an example, the edits that break the tree the current templates render from
/// it, and what the report must say (a part of the broken flow's line and of its reason).
struct Mutation {
    name: &'static str,
    example: &'static str,
    edits: &'static [(&'static str, &'static str, &'static str)],
    flow: &'static str,
    why: &'static str,
}

const MUTATIONS: &[Mutation] = &[
    Mutation {
        name: "HTTPRoute loses its hostname",
        example: "l7-payment",
        edits: &[("cluster-1/secure/httproute-mcw-payment.sd-wan-priority-high.yaml", "  - payment.secure.svc.clusterset.local", "  - other.secure.svc.clusterset.local")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local [GET /payment]",
        why: "gets 404 at `cluster-1`'s gateway",
    },
    Mutation {
        name: "ServiceEntry endpoint on another port",
        example: "payment",
        edits: &[("cluster-2/secure/serviceentry-mcw-payment.yaml", "http: 31111", "http: 31113")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "takes port 31113",
    },
    Mutation {
        name: "Gateway loses a listener",
        example: "payment",
        edits: &[("cluster-1/mcw-system/gateway-mcw-ingress.yaml", "port: 31111", "port: 31119")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "no listener on 31111",
    },
    Mutation {
        name: "user VirtualService keeps a Host no HTTPRoute accepts (issue 13 #2)",
        example: "canary",
        edits: &[("client/secure/virtualservice-payment-canary.yaml", "            host: payment-v1.secure.svc.clusterset.local", "            host: payment.secure.svc.clusterset.local")],
        flow: "client → payment.secure.svc.clusterset.local [PATCH /.mcwan-verify/unmatched]",
        // Refused before routing: in mutual mode the gateway admits only the hosts exported.
        why: "gets 403 at `prod`'s gateway",
    },
    Mutation {
        name: "user VirtualService without a subset (issue 13 #11)",
        example: "canary",
        edits: &[("client/secure/virtualservice-payment-canary.yaml", "        host: payment-v1.secure.svc.clusterset.local\n        subset: sd-wan-priority-high\n", "        host: payment-v1.secure.svc.clusterset.local\n")],
        flow: "client → payment.secure.svc.clusterset.local [PATCH /.mcwan-verify/unmatched]",
        why: "takes no WAN policy",
    },
    Mutation {
        name: "fallback endpoint given the primary rank",
        example: "failover",
        edits: &[("cluster-2/secure/serviceentry-mcw-payment.yaml", "      mcw.l7mp.io/tier: fallback\n      mcw.l7mp.io/rank-below-3: 'true'", "      mcw.l7mp.io/tier: fallback\n      mcw.l7mp.io/rank-below-1: 'true'\n      mcw.l7mp.io/rank-below-2: 'true'\n      mcw.l7mp.io/rank-below-3: 'true'")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "a fallback endpoint has priority 0",
    },
    Mutation {
        name: "DNS resolution, whose subsets Istio does not rank (issue 13 #4)",
        example: "failover",
        edits: &[("cluster-2/secure/serviceentry-mcw-payment.yaml", "resolution: STATIC", "resolution: DNS")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "a fallback endpoint has priority 0",
    },
    Mutation {
        name: "failover regions that follow node labels (issue 13 #5)",
        example: "failover",
        edits: &[("cluster-2/secure/destinationrule-mcw-payment.yaml", "        failoverPriority:", "        failover:\n        - from: eu-west\n          to: us-east\n        failoverPriority:")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "client's node labels",
    },
    Mutation {
        name: "tlsMode on a gateway endpoint in plaintext mode: mutual TLS to a plain listener",
        example: "l7-workaround",
        edits: &[("cluster-2/secure/serviceentry-mcw-payment-high-prio.yaml", "      mcw.l7mp.io/cluster: cluster-1\n", "      mcw.l7mp.io/cluster: cluster-1\n      security.istio.io/tlsMode: istio\n")],
        flow: "cluster-2 → payment-high-prio.secure.svc.clusterset.local",
        why: "mutual TLS to `cluster-1`'s plain-HTTP listener",
    },
    Mutation {
        name: "an exporter reaching its own Service in plaintext (issue 13 #3)",
        example: "l7-workaround",
        edits: &[("cluster-1/secure/serviceentry-mcw-payment-high-prio.yaml", "  - address: '10.111.1.29'\n    ports:\n      http: 31111", "  - address: payment-high-prio.secure.svc.cluster.local\n    ports:\n      http: 8080")],
        flow: "cluster-1 → payment-high-prio.secure.svc.clusterset.local",
        why: "reached in plaintext",
    },
    Mutation {
        name: "mutual mode: a listener flipped to plain HTTP",
        example: "three-clusters",
        edits: &[("cluster-1/mcw-system/gateway-mcw-ingress.yaml", "    port: 31111\n    protocol: HTTPS\n    tls:\n      mode: Terminate\n      options:\n        gateway.istio.io/tls-terminate-mode: ISTIO_MUTUAL\n", "    port: 31111\n    protocol: HTTP\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "the sidecar sends Istio mutual TLS to `cluster-1`'s plain-HTTP listener on port 31111",
    },
    Mutation {
        name: "mutual mode: a listener that terminates TLS with its own certificates",
        example: "three-clusters",
        edits: &[("cluster-1/mcw-system/gateway-mcw-ingress.yaml", "    port: 31111\n    protocol: HTTPS\n    tls:\n      mode: Terminate\n      options:\n        gateway.istio.io/tls-terminate-mode: ISTIO_MUTUAL\n", "    port: 31111\n    protocol: HTTPS\n    tls:\n      mode: Terminate\n      certificateRefs:\n      - name: ingress-cert\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "neither security mode renders it",
    },
    Mutation {
        name: "mutual mode: a DestinationRule without TLS",
        example: "three-clusters",
        edits: &[("cluster-2/secure/destinationrule-mcw-payment.yaml", "    tls:\n      mode: ISTIO_MUTUAL\n      subjectAltNames:\n      - spiffe://cluster-1.three-clusters.example/ns/mcw-system/sa/mcw-ingress-istio\n", "")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "mutual mode requires Istio mutual TLS to `cluster-1`'s gateway, the sidecar sends plaintext",
    },
    Mutation {
        name: "mutual mode: a DestinationRule that expects another gateway identity",
        example: "three-clusters",
        edits: &[("cluster-2/secure/destinationrule-mcw-payment.yaml", "      - spiffe://cluster-1.three-clusters.example/ns/mcw-system/sa/mcw-ingress-istio\n", "      - spiffe://cluster-1.three-clusters.example/ns/mcw-system/sa/other\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "whose certificate names spiffe://cluster-1.three-clusters.example/ns/mcw-system/sa/mcw-ingress-istio",
    },
    Mutation {
        name: "mutual mode: the ALLOW admits a cluster that does not import the service",
        example: "three-clusters",
        edits: &[("cluster-1/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml", "        - cluster-2.three-clusters.example/ns/secure/sa/*\n", "        - cluster-2.three-clusters.example/ns/secure/sa/*\n        - cluster-3.three-clusters.example/ns/secure/sa/*\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "admits `cluster-3`, which does not import the service",
    },
    Mutation {
        name: "mutual mode: the ALLOW admits every namespace of an importer",
        example: "three-clusters",
        edits: &[("cluster-1/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml", "        - cluster-2.three-clusters.example/ns/secure/sa/*\n", "        - cluster-2.three-clusters.example/*\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "admits `cluster-2`'s workloads of namespace `mcwan-verify-other`",
    },
    Mutation {
        name: "mutual mode: the ALLOW admits any peer",
        example: "three-clusters",
        edits: &[("cluster-1/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml", "        - cluster-2.three-clusters.example/ns/secure/sa/*\n", "        - cluster-2.three-clusters.example/ns/secure/sa/*\n        - '*'\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "workloads of trust domain `mcwan-verify.invalid`",
    },
    Mutation {
        name: "mutual mode: no rule binds the header to the certificate of `cluster-2`",
        example: "three-clusters",
        edits: &[("cluster-1/mcw-system/authorizationpolicy-mcw-ingress-deny.yaml", "  - from:\n    - source:\n        principals:\n        - cluster-2.three-clusters.example/*\n    when:\n    - key: request.headers[x-mcwan-source-cluster]\n      values:\n      - '*'\n      notValues:\n      - cluster-2\n", "")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "admits `cluster-2` naming `cluster-3` in `x-mcwan-source-cluster`",
    },
    Mutation {
        name: "an allow-all rule in the gateway's ALLOW policy (issue 13 #9)",
        example: "l7-payment",
        edits: &[("cluster-1/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml", "  rules:\n", "  rules:\n  - {}\n")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local [PATCH /.mcwan-verify/unmatched]",
        why: "`cluster-1`'s gateway answers 404 on port 31111, the sidecar 403",
    },
    Mutation {
        name: "application 5xx eject a cluster (issue 13 #6)",
        example: "failover",
        edits: &[("cluster-2/secure/destinationrule-mcw-payment.yaml", "        consecutive5xxErrors: 0", "        consecutive5xxErrors: 5")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "eject a whole cluster",
    },
    Mutation {
        name: "no panic threshold (issue 13 #6)",
        example: "payment",
        edits: &[("cluster-2/secure/destinationrule-mcw-payment.yaml", "        minHealthPercent: 1\n", "")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "requests get 503",
    },
    Mutation {
        name: "a retry that may run a request twice (issue 13 #8)",
        example: "failover",
        edits: &[("cluster-2/secure/virtualservice-mcw-payment.yaml", "retryOn: connect-failure,refused-stream", "retryOn: connect-failure,refused-stream,reset")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "may run twice",
    },
    Mutation {
        name: "a LoadBalancer gateway not pinned (issue 13 #7)",
        example: "failover",
        edits: &[("cluster-1/mcw-system/gateway-mcw-ingress.yaml", "  addresses:\n  - type: IPAddress\n    value: '10.20.1.10'\n", "")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "does not request 10.20.1.10",
    },
    Mutation {
        name: "a NodePort not pinned to the policy port",
        example: "payment",
        edits: &[("cluster-1/mcw-system/configmap-mcw-ingress-options.yaml", "nodePort: 31111", "nodePort: 30111")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "no listener on 31111",
    },
    Mutation {
        name: "a ServiceEntry without endpoints that resolves DNS (issue 13 #10)",
        example: "canary",
        edits: &[("client/secure/serviceentry-mcw-vhost.payment.secure.yaml", "resolution: STATIC", "resolution: DNS")],
        flow: "client → payment.secure.svc.clusterset.local",
        why: "resolves a name that does not exist",
    },
    Mutation {
        name: "a deny answered with another status",
        example: "l7-payment",
        edits: &[("cluster-2/secure/virtualservice-mcw-payment.yaml", "status: 403", "status: 404")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local [PATCH /.mcwan-verify/unmatched]",
        why: "denied with 404, not 403",
    },
    Mutation {
        name: "a DestinationRule without the subset a route names",
        example: "payment",
        edits: &[("cluster-2/secure/destinationrule-mcw-payment.yaml", "  - name: sd-wan-priority-high", "  - name: sd-wan-priority-other")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "no subset `sd-wan-priority-high`",
    },
    Mutation {
        name: "a flow missing from the fabric",
        example: "payment",
        edits: &[("sdwan/sites/cluster-2/flows.yaml", "  - secure/payment", "  - secure/other")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "the fabric lists no flow",
    },
    Mutation {
        name: "an import whose VirtualService is gone",
        example: "payment",
        edits: &[("cluster-2/secure/virtualservice-mcw-payment.yaml", "  - payment.secure.svc.clusterset.local", "  - gone.secure.svc.clusterset.local")],
        flow: "cluster-2 → payment.secure.svc.clusterset.local",
        why: "its objects do not route",
    },
    Mutation {
        name: "egress: the VirtualService no longer binds `mesh`, so sidecars take the host's default route",
        example: "egress",
        edits: &[("shop-us/shop/virtualservice-mcw-catalog.yaml", "  gateways:\n  - mesh\n  - mcw-system/mcw-egress\n", "  gateways:\n  - mcw-system/mcw-egress\n")],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → public-internet:31112 → shop-eu",
        why: "bypasses the egress gateway",
    },
    Mutation {
        name: "egress: the route to the egress gateway loses its `gateways: [mesh]` match, so the gateway takes it too",
        example: "egress",
        edits: &[("shop-us/shop/virtualservice-mcw-catalog.yaml", "    match:\n    - gateways:\n      - mesh\n", "")],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress →",
        why: "the egress gateway again: it loops",
    },
    Mutation {
        name: "egress: the egress Gateway's server loses a host",
        example: "egress",
        edits: &[("shop-us/mcw-system/gateway-mcw-egress.yaml", "    - shop/catalog.shop.svc.clusterset.local\n", "")],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress → TLS handshake fails at `shop-us`'s egress gateway",
        why: "lists no host for the SNI `catalog.shop.svc.clusterset.local`",
    },
    Mutation {
        name: "egress: the egress Gateway's server lists the host for another namespace",
        example: "egress",
        edits: &[("shop-us/mcw-system/gateway-mcw-egress.yaml", "    - shop/catalog.shop.svc.clusterset.local\n", "    - other/catalog.shop.svc.clusterset.local\n")],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress → 404 at `shop-us`'s egress gateway",
        why: "does not list `shop/catalog.shop.svc.clusterset.local`",
    },
    Mutation {
        name: "egress: the sidecar sends another host's SNI",
        example: "egress",
        edits: &[("shop-us/mcw-system/destinationrule-mcw-egress.yaml", "sni: catalog.shop.svc.clusterset.local", "sni: checkout.shop.svc.clusterset.local")],
        flow: "shop-us → catalog.shop.svc.clusterset.local",
        why: "sends SNI `checkout.shop.svc.clusterset.local` for `catalog.shop.svc.clusterset.local`",
    },
    Mutation {
        name: "egress: the sidecar expects another identity of the egress gateway",
        example: "egress",
        edits: &[("shop-us/mcw-system/destinationrule-mcw-egress.yaml", "sa/mcw-egress", "sa/other")],
        flow: "shop-us → catalog.shop.svc.clusterset.local",
        why: "whose certificate names spiffe://shop-us.egress.example/ns/mcw-system/sa/mcw-egress",
    },
    Mutation {
        name: "egress: the fabric's flows lose their source addresses",
        example: "egress",
        edits: &[
            ("sdwan/sites/shop-us/flows.yaml", "    addresses:\n    - '10.50.1.20'\n", ""),
            ("sdwan/sites/shop-us/flows.yaml", "    addresses:\n    - '10.50.1.20'\n", ""),
        ],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress → public-internet:31112 → shop-eu",
        why: "names no source addresses, but `shop-us` sends it from its egress gateway's 10.50.1.20",
    },
    Mutation {
        name: "egress: the sidecar's route to the egress gateway retries too",
        example: "egress",
        edits: &[("shop-us/shop/virtualservice-mcw-catalog.yaml", "    retries:\n      attempts: 0\n", "    retries:\n      attempts: 2\n")],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress → public-internet:31112 → shop-eu",
        why: "retries on two hops",
    },
    Mutation {
        name: "egress: the egress gateway admits every namespace",
        example: "egress",
        edits: &[("shop-us/mcw-system/authorizationpolicy-mcw-egress.yaml", "        - shop-us.egress.example/ns/shop/sa/*\n", "        - shop-us.egress.example/*\n")],
        flow: "shop-us → catalog.shop.svc.clusterset.local",
        why: "`shop-us`'s egress gateway admits its workloads of namespace `mcwan-verify-other`",
    },
    Mutation {
        name: "egress: the exporter's gateway no longer admits an importer's egress gateway",
        example: "egress",
        edits: &[("shop-eu/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml", "        - shop-us.egress.example/ns/mcw-system/sa/mcw-egress\n", "")],
        flow: "shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress → public-internet:31112 → shop-eu → 403 at `shop-eu`'s gateway",
        why: "declared to reach `shop/catalog`, gets 403",
    },
    Mutation {
        name: "egress: the exporter's gateway admits an importer's workloads past its egress gateway",
        example: "egress",
        edits: &[("shop-eu/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml", "        - shop-us.egress.example/ns/mcw-system/sa/mcw-egress\n", "        - shop-us.egress.example/ns/mcw-system/sa/mcw-egress\n        - shop-us.egress.example/ns/shop/sa/*\n")],
        flow: "shop-us → catalog.shop.svc.clusterset.local",
        why: "admits `shop-us`'s workloads of namespace `shop`, past its egress gateway",
    },
];

#[test]
fn each_mutation_is_named_as_a_broken_flow() {
    let mut failures = Vec::new();
    for mutation in MUTATIONS {
        // Rendered now, not copied from golden/: the mutations break what the current
        // templates write.
        let mut test = Test::example(mutation.example);
        test.render().run();
        for (file, from, to) in mutation.edits {
            test.edit(&format!("{{out}}/{file}"), from, to);
        }
        // Every mutation is tried, and all that fail are reported together.
        let output = test.args(&["verify", "{out}"]).command().output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let named = stdout.lines().collect::<Vec<_>>().windows(2).any(|pair| {
            pair[0].starts_with(mutation.flow)
                && pair[1].contains("problem:")
                && pair[1].contains(mutation.why)
        });
        if output.status.code() != Some(1) || !named {
            failures.push(format!(
                "{} (exit {:?}):\n{stdout}",
                mutation.name,
                output.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "mutations verify did not name:\n{}",
        failures.join("\n")
    );
}

/// A tree rendered in mutual mode verifies clean, and says for each flow that it is mutual
/// TLS and which clusters the exporter's gateway admits: those that import the service.
#[test]
fn mutual_mode_reports_encryption_and_callers() {
    let mut test = Test::example("three-clusters");
    test.render().run();
    let human = test.args(&["verify", "{out}"]).run();
    human
        .stdout_has("cluster-2 → payment.secure.svc.clusterset.local [GET /] (any request) → business:31111 → cluster-1 → secure/payment:8080 (mtls; callers cluster-1,cluster-2)\n")
        .stdout_has("cluster-3 → logging.insecure.svc.clusterset.local [GET /] (any request) → local:31112 → cluster-3 → insecure/logging:9000 (mtls; callers cluster-1,cluster-3)\n")
        .stdout_has("4 flows, 0 problems, 0 unsure");
    let rows = json_rows(&mut test);
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert_eq!(row["tls"], "mtls", "{row}");
        let expected = if row["host"] == "payment.secure.svc.clusterset.local" {
            "cluster-1,cluster-2"
        } else {
            "cluster-1,cluster-3"
        };
        assert_eq!(row["callers"], expected, "{row}");
    }
    let summary = test.read("{out}/SUMMARY.md");
    assert!(
        summary.contains("| TLS | callers | verdict |")
            && summary.contains("| mtls | cluster-1,cluster-2 | ok |"),
        "{summary}"
    );
}

/// In egress gateway mode (issue 18) each request of `shop-eu` and `shop-us` takes one more
/// hop, through the cluster's egress gateway, and the exporter's gateway admits that gateway
/// for the cluster; `edge`, in sidecar mode, sends straight. Render verifies it and writes.
#[test]
fn egress_gateway_mode_follows_the_extra_hop() {
    let mut test = Test::example("egress");
    test.render().run();
    let human = test.args(&["verify", "{out}"]).run();
    human
        .stdout_has("shop-us → catalog.shop.svc.clusterset.local [GET /] (any request) → egress → public-internet:31112 → shop-eu → shop/catalog:9000 (mtls; callers shop-eu,shop-us,edge)\n")
        .stdout_has("shop-eu → checkout.shop.svc.clusterset.local [GET /] (any request) → egress → local:31111 → shop-eu → shop/checkout:8080 (mtls; callers shop-eu,shop-us,edge)\n")
        .stdout_has("edge → catalog.shop.svc.clusterset.local [GET /] (any request) → public-internet:31112 → shop-eu → shop/catalog:9000 (mtls; callers shop-eu,shop-us,edge)\n")
        .stdout_has("6 flows, 0 problems, 0 unsure");
    let rows = json_rows(&mut test);
    assert_eq!(rows.len(), 6);
    for row in &rows {
        assert_eq!(row["via_egress"], row["source"] != "edge", "{row}");
        assert_eq!(row["verdict"], "ok", "{row}");
    }
    let summary = test.read("{out}/SUMMARY.md");
    assert!(
        summary.contains("| egress → public-internet:31112 | shop-eu | shop/catalog:9000 | mtls | shop-eu,shop-us,edge | ok |"),
        "{summary}"
    );
}

/// A tree rendered in sidecar mode records no egress addresses, as a provenance written
/// before egress gateways does; its requests go straight, and its flows name no source
/// addresses, as before.
#[test]
fn a_tree_without_egress_gateways_verifies_as_before() {
    let mut test = Test::example("three-clusters");
    test.render().run();
    let provenance = test.read("{out}/mcwan-provenance.json");
    assert!(!provenance.contains("\"egress\""), "{provenance}");
    test.args(&["verify", "{out}", "--format", "json"])
        .run()
        .stdout_has("\"via_egress\": false");
}

/// An export's allow-lists narrow its callers: the gateway admits only the clusters and
/// service accounts they name, a left-out importer's requests get 403 as declared, and a
/// gateway that admits more is named.
#[test]
fn allow_lists_narrow_the_callers() {
    let mut test = Test::example("three-clusters");
    test.edit(
        "clusters/cluster-1/services.yaml",
        "annotations: {mcw.l7mp.io/mc-wan-policy: business}",
        "annotations: {mcw.l7mp.io/mc-wan-policy: business, mcw.l7mp.io/allowed-clusters: cluster-2, mcw.l7mp.io/allowed-service-accounts: payer}",
    );
    test.render().run();
    test.args(&["verify", "{out}"])
        .run()
        .stdout_has("cluster-1 → payment.secure.svc.clusterset.local [GET /] (any request) → local:31111 → cluster-1 → 403 at `cluster-1`'s gateway (mtls; callers cluster-2)\n")
        .stdout_has("→ cluster-1 → secure/payment:8080 (mtls; callers cluster-2)\n")
        .stdout_has(" 0 problems");
    let allow = "{out}/cluster-1/mcw-system/authorizationpolicy-mcw-ingress-allow.yaml";
    let payer = "        - cluster-2.three-clusters.example/ns/secure/sa/payer\n";
    for (added, why) in [
        (
            "        - cluster-1.three-clusters.example/ns/secure/sa/payer\n",
            "admits `cluster-1`, which its allowed clusters leave out",
        ),
        (
            "        - cluster-2.three-clusters.example/ns/secure/sa/*\n",
            "admits `cluster-2`'s service account `mcwan-verify-other`",
        ),
    ] {
        let original = test.read(allow);
        test.edit(allow, payer, &format!("{payer}{added}"));
        let output = test.args(&["verify", "{out}"]).code(1).run();
        output.stdout_has(why);
        test.write(allow, original);
    }
}

/// In plaintext mode a gateway cannot tell callers apart: every flow is plain HTTP and
/// admits any caller, which is no problem (render warns about the tunnel instead).
#[test]
fn plaintext_mode_admits_any_caller() {
    let mut test = Test::example("l7-workaround");
    test.render().run();
    let output = test.args(&["verify", "{out}"]).run();
    output
        .stdout_has("cluster-2 → payment-high-prio.secure.svc.clusterset.local [GET /] (any request) → business:31111 → cluster-1 → secure/payment-high-prio:8080 (plaintext; callers any)\n")
        .stdout_has(" 0 problems");
}

/// The JSON report keeps every row, with its verdict.
#[test]
fn json_lists_every_row() {
    let output = Test::empty()
        .args(&["verify", "{root}/golden/l7-payment", "--format", "json"])
        .run();
    let report: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["verdict"] == "ok"));
    assert!(rows.iter().any(|r| r["result"] == "403 at the sidecar"));
}

/// Render refuses to replace OUT when a declared flow would not work, and says which;
/// `--no-verify` writes it with a warning.
#[test]
fn render_refuses_a_tree_whose_flows_fail() {
    let mut test = Test::example("payment");
    let original = fs::read_to_string(root().join("templates/httproute.yaml.j2")).unwrap();
    test.write(
        "{temp}/templates/httproute.yaml.j2",
        original.replace("  - {{ route.host }}", "  - {{ \"x\" ~ route.host }}"),
    );
    let templates = ["--templates", "{temp}/templates"];
    test.render()
        .args(&templates)
        .code(1)
        .run()
        .stderr_has("cluster-2 → payment.secure.svc.clusterset.local");
    assert!(!test.path("{out}").exists(), "OUT was written");
    test.render()
        .args(&templates)
        .args(&["--no-verify"])
        .run()
        .stderr_has("warning: --no-verify");
    let summary = test.read("{out}/SUMMARY.md");
    assert!(summary.contains("Not verified"), "{summary}");
}

/// A tree from a pull request may plant a link to a secret: verify reads no link, and
/// prints nothing of its target.
#[cfg(unix)]
#[test]
fn verify_follows_no_symbolic_link() {
    let mut test = Test::rendered("payment");
    let planted = "{out}/cluster-2/secure/serviceentry-mcw-payment.yaml";
    test.write(
        "{temp}/secret.yaml",
        "apiVersion: v1\nkind: ServiceEntry\nmetadata: {name: TOP-SECRET}\n",
    )
    .remove(planted)
    .symlink(planted, "{temp}/secret.yaml");
    let printed = test.args(&["verify", "{out}"]).code(2).run().printed();
    assert!(printed.contains("not a regular file"), "{printed}");
    assert!(!printed.contains("TOP-SECRET"), "{printed}");
}

/// Gateway API caps an HTTPRoute at 64 matches a rule and 128 in all: a policy with more
/// matches gets further HTTPRoutes, and every request still reaches its backend.
#[test]
fn many_matches_split_into_several_http_routes() {
    let mut test = Test::example("l7-payment");
    // Three rules of 50 matches (a WANRoute rule has at most 64), all over one policy.
    let rules: Vec<String> = (0..3)
        .map(|r| {
            let matches: Vec<String> = (0..50)
                .map(|i| format!("    - path: {{type: Exact, value: /item/{}}}", r * 50 + i))
                .collect();
            format!(
                "  - matches:\n{}\n    wanPolicy: sd-wan-priority-high",
                matches.join("\n")
            )
        })
        .collect();
    let route = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: payment, namespace: secure}}\nspec:\n  ports: [{{name: http, port: 8080}}]\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {{name: payment, namespace: secure}}\n---\napiVersion: mcw.l7mp.io/v1alpha1\nkind: WANRoute\nmetadata: {{name: payment, namespace: secure}}\nspec:\n  rules:\n{}\n  default: {{deny: true}}\n",
        rules.join("\n")
    );
    test.write("clusters/cluster-1/payment.yaml", route);
    test.render().run();
    let count = |name: &str| -> (usize, usize) {
        let text = test.read(&format!("{{out}}/cluster-1/secure/httproute-{name}.yaml"));
        let route: serde_json::Value = yaml_serde::from_str(&text).unwrap();
        let rules = route["spec"]["rules"].as_array().unwrap();
        let matches = rules
            .iter()
            .map(|r| r["matches"].as_array().unwrap().len())
            .sum();
        (rules.len(), matches)
    };
    assert_eq!(count("mcw-payment.sd-wan-priority-high"), (2, 128));
    assert_eq!(count("mcw-payment.sd-wan-priority-high.2"), (1, 22));
    let rows = json_rows(&mut test);
    assert!(rows.iter().any(|r| r["source"] == "cluster-2"
        && r["request"] == "GET /item/149"
        && r["result"] == "secure/payment:8080"));
}
