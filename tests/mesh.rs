//! What the rendered objects do on a real mesh, as properties of every golden tree: each test
//! states one behaviour Istio, Envoy or the API server would show (docs/mesh.md has the
//! upstream references), so that a regression fails with a sentence a reviewer understands.
//! The golden trees are what `examples/` render to (tests/cases.rs checks that).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(bytes: &[u8]) -> Value {
    yaml_serde::from_slice(bytes).unwrap()
}

/// Every rendered object of every golden tree, by example, as (path, object).
fn trees() -> BTreeMap<String, Vec<(String, Value)>> {
    let mut out = BTreeMap::new();
    for example in fs::read_dir(root().join("golden")).unwrap() {
        let example = example.unwrap().path();
        let name = example.file_name().unwrap().to_string_lossy().to_string();
        let mut objects = Vec::new();
        collect(&example, &example, &mut objects);
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        out.insert(name, objects);
    }
    assert!(out.len() >= 6, "golden trees are missing");
    out
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, Value)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path
            .strip_prefix(base)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if path.is_dir() {
            if relative != "sdwan" {
                collect(base, &path, out);
            }
        } else if relative.contains('/')
            && path.extension().is_some_and(|e| e == "yaml")
            && !relative.ends_with("kustomization.yaml")
        {
            out.push((relative, yaml(&fs::read(&path).unwrap())));
        }
    }
}

fn of_kind<'a>(objects: &'a [(String, Value)], kind: &str) -> Vec<&'a (String, Value)> {
    objects.iter().filter(|(_, o)| o["kind"] == kind).collect()
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn cluster_of(path: &str) -> &str {
    path.split('/').next().unwrap()
}

/// The declared gateway addresses of each cluster of an example.
fn gateway_addresses(example: &str) -> BTreeMap<String, Vec<String>> {
    let clusterset = yaml(
        &fs::read(
            root()
                .join("examples")
                .join(example)
                .join("clusterset.yaml"),
        )
        .unwrap(),
    );
    list(&clusterset["spec"]["clusters"])
        .iter()
        .map(|c| {
            let gateway = &c["gateway"];
            let mut addresses = vec![gateway["address"].as_str().unwrap().to_string()];
            addresses.extend(
                list(&gateway["nodeAddresses"])
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string()),
            );
            (c["name"].as_str().unwrap().to_string(), addresses)
        })
        .collect()
}

/// Issue 1: the API server refuses a CRD whose schema is not structural (a `type` at every
/// level) or uses `uniqueItems`; then no WANPolicy can be created at all.
#[test]
fn the_wanpolicy_crd_is_structural() {
    fn walk(schema: &Value, path: &str, problems: &mut Vec<String>) {
        let Value::Object(map) = schema else { return };
        if !map.contains_key("type") {
            problems.push(format!("{path}: no type"));
        }
        if map.contains_key("uniqueItems") {
            problems.push(format!("{path}: uniqueItems"));
        }
        for (name, child) in map
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            walk(child, &format!("{path}.{name}"), problems);
        }
        if let Some(items) = map.get("items") {
            walk(items, &format!("{path}[]"), problems);
        }
    }
    for (example, objects) in trees() {
        for (path, crd) in of_kind(&objects, "CustomResourceDefinition") {
            let mut problems = Vec::new();
            for version in list(&crd["spec"]["versions"]) {
                walk(&version["schema"]["openAPIV3Schema"], "", &mut problems);
            }
            assert!(
                problems.is_empty(),
                "{example}/{path}: not a structural schema: {problems:?}"
            );
        }
    }
}

/// Issues 2 and 11: a user route to a clusterset host replaces mcwan's route for it, so it
/// must pick one WAN policy (a subset) and send the Host the exporter's HTTPRoutes accept.
#[test]
fn user_routes_send_the_destination_host_and_pick_one_policy() {
    let mut seen = 0;
    for (example, objects) in trees() {
        for (path, service) in of_kind(&objects, "VirtualService") {
            if service["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("mcw-")
            {
                continue;
            }
            for route in list(&service["spec"]["http"]) {
                for target in list(&route["route"]) {
                    let host = target["destination"]["host"].as_str().unwrap();
                    if !host.ends_with(".svc.clusterset.local") {
                        continue;
                    }
                    seen += 1;
                    assert!(
                        target["destination"]["subset"].is_string(),
                        "{example}/{path}: `{host}` over every tunnel (no subset)"
                    );
                    let authority = route["rewrite"]["authority"]
                        .as_str()
                        .or_else(|| route["headers"]["request"]["set"]["host"].as_str())
                        .or_else(|| target["headers"]["request"]["set"]["host"].as_str())
                        .or_else(|| service["spec"]["hosts"][0].as_str());
                    assert_eq!(authority, Some(host), "{example}/{path}: the exporter of `{host}` gets another Host and answers 404");
                }
            }
        }
    }
    assert!(
        seen >= 4,
        "the canary and workaround examples route to clusterset hosts"
    );
}

/// Issue 3: an endpoint inside the mesh without `security.istio.io/tlsMode: istio` gets
/// plaintext, which STRICT mTLS drops. Every endpoint is a declared gateway address (the
/// gateway listeners are plain HTTP), never a workload of the mesh.
#[test]
fn every_endpoint_is_a_gateway_or_carries_the_tls_mode_label() {
    for (example, objects) in trees() {
        let gateways = gateway_addresses(&example);
        for (path, entry) in of_kind(&objects, "ServiceEntry") {
            for endpoint in list(&entry["spec"]["endpoints"]) {
                let address = endpoint["address"].as_str().unwrap();
                let cluster = endpoint["labels"]["mcw.l7mp.io/cluster"].as_str().unwrap();
                let is_gateway = gateways[cluster].iter().any(|a| a == address);
                let in_mesh = endpoint["labels"]["security.istio.io/tlsMode"] == "istio";
                assert!(
                    is_gateway || in_mesh,
                    "{example}/{path}: endpoint {address} is a mesh workload reached in plaintext"
                );
            }
        }
    }
}

/// Istio's priority for an endpoint under `failoverPriority` (loadbalancer.go,
/// `applyFailoverPriorityPerLocality`): the number of entries after the first it fails.
fn priority(endpoint: &Value, failover_priority: &[Value]) -> usize {
    let n = failover_priority.len();
    for (j, entry) in failover_priority.iter().enumerate() {
        let (label, value) = entry.as_str().unwrap().split_once('=').unwrap();
        if endpoint["labels"][label].as_str() != Some(value) {
            return n - j;
        }
    }
    0
}

/// Issues 4 and 5: endpoints are ordered by mcwan, by tier and then nearness, through
/// explicit `failoverPriority` values on STATIC ServiceEntries, the only kind Istio ranks in
/// subsets; never by `failover` regions, which Istio compares with the client's node labels.
#[test]
fn endpoints_are_ranked_without_node_labels_and_fallback_comes_last() {
    let mut ranked = 0;
    for (example, objects) in trees() {
        let rules: BTreeMap<(&str, &str), &Value> = of_kind(&objects, "DestinationRule")
            .into_iter()
            .map(|(path, rule)| {
                (
                    (cluster_of(path), rule["spec"]["host"].as_str().unwrap()),
                    rule,
                )
            })
            .collect();
        for (path, entry) in of_kind(&objects, "ServiceEntry") {
            let host = entry["spec"]["hosts"][0].as_str().unwrap();
            let Some(rule) = rules.get(&(cluster_of(path), host)) else {
                continue;
            };
            let setting = &rule["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"];
            assert!(
                setting.get("failover").is_none(),
                "{example}/{path}: failover by region depends on node labels"
            );
            for subset in list(&rule["spec"]["subsets"]) {
                assert!(
                    subset["trafficPolicy"].get("loadBalancer").is_none(),
                    "{example}/{path}: a subset overrides the ranking"
                );
            }
            let order = list(&setting["failoverPriority"]);
            if order.is_empty() {
                assert_eq!(
                    setting["enabled"], false,
                    "{example}/{path}: unranked endpoints ordered by the client's locality"
                );
                continue;
            }
            ranked += 1;
            assert_eq!(
                entry["spec"]["resolution"], "STATIC",
                "{example}/{path}: Istio ignores failoverPriority in DNS subsets"
            );
            for subset in list(&rule["spec"]["subsets"]) {
                let name = subset["name"].as_str().unwrap();
                let members: Vec<&Value> = list(&entry["spec"]["endpoints"])
                    .iter()
                    .filter(|e| e["labels"]["mcw.l7mp.io/route-policy"] == name)
                    .collect();
                assert!(
                    !members.is_empty(),
                    "{example}/{path}: subset {name} is empty"
                );
                let key = |e: &Value| {
                    let local = e["labels"]["mcw.l7mp.io/cluster"] == cluster_of(path);
                    (e["labels"]["mcw.l7mp.io/tier"] == "fallback", !local)
                };
                for a in &members {
                    for b in &members {
                        if key(a) < key(b) {
                            assert!(
                                priority(a, order) < priority(b, order),
                                "{example}/{path}: {} does not come before {} in subset {name}",
                                a["address"],
                                b["address"]
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(ranked >= 4, "the failover examples rank their endpoints");
}

/// Issue 6: outlier detection never makes an outage worse: an application's 5xx ejects
/// nothing (0 disables Envoy's default of 5), and when every endpoint is ejected Envoy's
/// panic threshold still sends requests (Istio sets it from `minHealthPercent`, 0 disabling it).
#[test]
fn outlier_detection_never_takes_the_last_endpoint_out() {
    for (example, objects) in trees() {
        for (path, rule) in of_kind(&objects, "DestinationRule") {
            let policies = std::iter::once(&rule["spec"]["trafficPolicy"]).chain(
                list(&rule["spec"]["subsets"])
                    .iter()
                    .map(|s| &s["trafficPolicy"]),
            );
            for policy in policies {
                let outlier = &policy["outlierDetection"];
                if outlier.is_null() {
                    continue;
                }
                assert_eq!(
                    outlier["consecutive5xxErrors"], 0,
                    "{example}/{path}: application 500s eject a cluster"
                );
                assert!(outlier["minHealthPercent"].as_u64() >= Some(1), "{example}/{path}: no panic threshold, so all-ejected means no healthy upstream");
            }
        }
    }
}

/// Issue 7: a LoadBalancer gateway at an IP is pinned to it (one `IPAddress`, which Istio
/// makes the Service's loadBalancerIP); more addresses would make the Gateway unmanaged.
#[test]
fn load_balancer_gateways_are_pinned_to_their_declared_address() {
    let mut pinned = 0;
    for (example, objects) in trees() {
        let gateways = gateway_addresses(&example);
        for (path, gateway) in of_kind(&objects, "Gateway") {
            let addresses = list(&gateway["spec"]["addresses"]);
            assert!(
                addresses.len() <= 1,
                "{example}/{path}: several addresses make the Gateway unmanaged"
            );
            if gateway["metadata"]["annotations"]["networking.istio.io/service-type"]
                != "LoadBalancer"
            {
                assert!(addresses.is_empty(), "{example}/{path}");
                continue;
            }
            let declared = &gateways[cluster_of(path)][0];
            if declared.parse::<std::net::IpAddr>().is_ok() {
                pinned += 1;
                assert_eq!(addresses[0]["type"], "IPAddress", "{example}/{path}");
                assert_eq!(
                    addresses[0]["value"].as_str(),
                    Some(declared.as_str()),
                    "{example}/{path}"
                );
            }
        }
    }
    assert!(pinned >= 4);
}

/// Issue 8: `reset` and `gateway-error` may follow a request a service already ran; only a
/// route that idempotent methods alone reach retries on them.
#[test]
fn retries_never_repeat_a_request_that_may_have_run() {
    const IDEMPOTENT: &[&str] = &["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];
    for (example, objects) in trees() {
        for (path, service) in of_kind(&objects, "VirtualService") {
            for route in list(&service["spec"]["http"]) {
                let retry_on = route["retries"]["retryOn"].as_str().unwrap_or_default();
                let unsafe_retry = retry_on
                    .split(',')
                    .any(|c| matches!(c, "reset" | "gateway-error" | "5xx"));
                if !unsafe_retry {
                    continue;
                }
                let matches = list(&route["match"]);
                let idempotent = !matches.is_empty()
                    && matches.iter().all(|m| {
                        m["method"]["exact"]
                            .as_str()
                            .is_some_and(|v| IDEMPOTENT.contains(&v))
                    });
                assert!(
                    idempotent,
                    "{example}/{path}: route {} may run a request twice",
                    route["name"]
                );
            }
        }
    }
}

/// A request the sample tests: a method and a path, with the Host the sidecar sends.
struct Request<'a> {
    host: &'a str,
    method: &'a str,
    path: &'a str,
}

/// Istio `StringMatch` on a VirtualService `uri` or `method` (no regex in these samples).
fn string_matches(matcher: &Value, value: &str) -> bool {
    if let Some(exact) = matcher["exact"].as_str() {
        return value == exact;
    }
    if let Some(prefix) = matcher["prefix"].as_str() {
        return value.starts_with(prefix);
    }
    matcher.is_null()
}

/// What the client's sidecar does: the first route whose match takes the request; 403 for
/// a direct response, otherwise the subset it picks.
fn sidecar(service: &Value, request: &Request) -> Result<String, u64> {
    for route in list(&service["spec"]["http"]) {
        let matches = list(&route["match"]);
        let taken = matches.is_empty()
            || matches.iter().any(|m| {
                string_matches(&m["uri"], request.path)
                    && string_matches(&m["method"], request.method)
            });
        if taken {
            return match route["directResponse"]["status"].as_u64() {
                Some(status) => Err(status),
                None => Ok(route["route"][0]["destination"]["subset"]
                    .as_str()
                    .unwrap()
                    .to_string()),
            };
        }
    }
    Err(404)
}

/// Istio's authorization string match: `*x` suffix, `x*` prefix, else exact.
fn authz_matches(patterns: &Value, value: &str) -> bool {
    let Some(patterns) = patterns.as_array() else {
        return true;
    };
    patterns.iter().filter_map(Value::as_str).any(|p| {
        if let Some(prefix) = p.strip_suffix('*') {
            value.starts_with(prefix)
        } else if let Some(suffix) = p.strip_prefix('*') {
            value.ends_with(suffix)
        } else {
            p == value
        }
    })
}

fn rule_matches(rule: &Value, request: &Request) -> bool {
    assert!(rule.get("when").is_none(), "samples carry no headers");
    list(&rule["to"]).iter().any(|to| {
        let op = &to["operation"];
        authz_matches(&op["hosts"], request.host)
            && authz_matches(&op["methods"], request.method)
            && authz_matches(&op["paths"], request.path)
    })
}

/// What the gateway's AuthorizationPolicies do: DENY first, then ALLOW (when one exists).
fn gateway_allows(objects: &[(String, Value)], cluster: &str, request: &Request) -> bool {
    let policies: Vec<&Value> = of_kind(objects, "AuthorizationPolicy")
        .into_iter()
        .filter(|(path, _)| cluster_of(path) == cluster)
        .map(|(_, p)| p)
        .collect();
    let any = |action: &str| {
        policies
            .iter()
            .filter(|p| p["spec"]["action"] == action)
            .flat_map(|p| list(&p["spec"]["rules"]))
            .any(|r| rule_matches(r, request))
    };
    let has_allow = policies.iter().any(|p| p["spec"]["action"] == "ALLOW");
    !any("DENY") && (!has_allow || any("ALLOW"))
}

/// Issue 9: what a WANRoute denies, the exporter's gateway refuses too (403 from Istio's
/// RBAC filter), and what it allows, the gateway lets through, for a request of each route
/// of the client's VirtualService and one that matches none. A Host with a port counts too.
#[test]
fn the_gateway_refuses_what_the_client_denies_and_nothing_else() {
    let objects = &trees()["l7-payment"];
    let service = &objects
        .iter()
        .find(|(p, _)| p == "cluster-2/secure/virtualservice-mcw-payment.yaml")
        .unwrap()
        .1;
    let host = "payment.secure.svc.clusterset.local";
    let with_port = format!("{host}:8080");
    let samples = [
        ("GET", "/payment"),
        ("GET", "/payment/42"),
        ("POST", "/payment"),
        ("GET", "/paymentx"),
        ("PUT", "/stats/daily"),
        ("GET", "/admin"),
    ];
    let mut denied = 0;
    for (method, path) in samples {
        for host in [host, with_port.as_str()] {
            let request = Request { host, method, path };
            let client = sidecar(service, &request);
            let gateway = gateway_allows(objects, "cluster-1", &request);
            assert_eq!(
                client.is_ok(),
                gateway,
                "{method} {host}{path}: sidecar {client:?}, gateway allows: {gateway}"
            );
            if let Err(status) = client {
                assert_eq!(status, 403, "{method} {path}: the gateway answers 403");
                denied += 1;
            }
        }
    }
    assert!(denied >= 4, "the samples exercise the default deny");
}

/// The ingress overwrites the `x-mcwan-ingress-*` headers it adds (`set`, never `add`), and
/// the sender overwrites its `x-mcwan-*` headers, so a caller cannot make them say otherwise.
#[test]
fn mcwan_headers_are_overwritten_not_appended() {
    for (example, objects) in trees() {
        for (path, route) in of_kind(&objects, "HTTPRoute") {
            for rule in list(&route["spec"]["rules"]) {
                let modifier = list(&rule["filters"])
                    .iter()
                    .find(|f| f["type"] == "RequestHeaderModifier")
                    .unwrap();
                let set: Vec<&str> = list(&modifier["requestHeaderModifier"]["set"])
                    .iter()
                    .filter_map(|h| h["name"].as_str())
                    .collect();
                assert_eq!(
                    set,
                    ["x-mcwan-ingress-cluster", "x-mcwan-ingress-policy"],
                    "{example}/{path}"
                );
                assert!(
                    modifier["requestHeaderModifier"].get("add").is_none(),
                    "{example}/{path}"
                );
            }
        }
    }
}

/// Issue 10: a ServiceEntry with no endpoints has nothing to resolve; with DNS resolution
/// every sidecar would keep resolving a name that does not exist.
#[test]
fn service_entries_without_endpoints_are_static() {
    let mut seen = 0;
    for (example, objects) in trees() {
        for (path, entry) in of_kind(&objects, "ServiceEntry") {
            if list(&entry["spec"]["endpoints"]).is_empty() {
                seen += 1;
                assert_eq!(entry["spec"]["resolution"], "STATIC", "{example}/{path}");
            }
        }
    }
    assert!(seen >= 2);
}
