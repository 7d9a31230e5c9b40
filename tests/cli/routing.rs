//! What the routing objects say, read from the golden trees: fallback over another policy,
//! timeouts and retries, observability headers and tracing, WANRoute's per-tunnel routes,
//! and user objects passed through.

use std::fs;

use crate::common::test::Test;
use crate::common::{class, read_tree, root, yaml_documents};

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
    assert_eq!(class(&classes, "business")["fallback"], "internet");

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
    let route = |test: &mut Test| {
        test.render().run();
        let service = test.read("{out}/cluster-2/secure/virtualservice-mcw-payment.yaml");
        yaml_documents(service.as_bytes()).remove(0)["spec"]["http"][0].clone()
    };
    let mut test = Test::example("failover");
    // Annotation timeout 3s; policy attempts 3; derived per-try timeout 2(2*60+20)+1000 ms.
    let all = route(&mut test);
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
        let path = format!("clusters/{cluster}/payment.yaml");
        test.edit(&path, "    mcw.l7mp.io/timeout: 3s\n", "");
    }
    let policy_wins = route(&mut test);
    assert_eq!(
        (&policy_wins["timeout"], &policy_wins["retries"]["attempts"]),
        (&"5120ms".into(), &3.into())
    );
    test.edit(
        "policies/business.yaml",
        "  resilience:\n    retries:\n      attempts: 3\n",
        "",
    );
    let derived = route(&mut test);
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
