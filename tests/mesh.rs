//! What the rendered objects do on a real mesh, as properties of every golden tree: each test
//! states one behaviour Istio, Envoy or the API server would show (docs/mesh.md has the
//! upstream references), so that a regression fails with a sentence a reviewer understands.
//! The golden trees are what `examples/` render to (tests/cases.rs checks that).

use std::collections::{BTreeMap, BTreeSet};
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

/// An example's ClusterSet.
fn clusterset(example: &str) -> Value {
    let path = root()
        .join("examples")
        .join(example)
        .join("clusterset.yaml");
    yaml(&fs::read(path).unwrap())
}

/// The declared gateway addresses of each cluster of an example.
fn gateway_addresses(example: &str) -> BTreeMap<String, Vec<String>> {
    list(&clusterset(example)["spec"]["clusters"])
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

/// A request the sample tests: a method and a path, with the Host the sidecar sends; the
/// caller's identity (without `spiffe://`) when it comes over mutual TLS, and its headers.
struct Request<'a> {
    host: &'a str,
    method: &'a str,
    path: &'a str,
    principal: Option<&'a str>,
    headers: &'a [(&'a str, &'a str)],
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

/// An Istio authorization rule: any `from` source (by principal; none matches a caller
/// without identity), any `to` operation, and every `when` header condition (`values`: one
/// matches, `*` meaning present; `notValues`: the header is absent or matches none).
fn rule_matches(rule: &Value, request: &Request) -> bool {
    let from = rule.get("from").is_none()
        || list(&rule["from"]).iter().any(|f| {
            request
                .principal
                .is_some_and(|p| authz_matches(&f["source"]["principals"], p))
        });
    let to = rule.get("to").is_none()
        || list(&rule["to"]).iter().any(|to| {
            let op = &to["operation"];
            authz_matches(&op["hosts"], request.host)
                && authz_matches(&op["methods"], request.method)
                && authz_matches(&op["paths"], request.path)
        });
    let when = list(&rule["when"]).iter().all(|condition| {
        let key = condition["key"].as_str().unwrap();
        let name = key
            .strip_prefix("request.headers[")
            .and_then(|k| k.strip_suffix(']'))
            .unwrap_or_else(|| panic!("unexpected condition key {key}"));
        let value = request
            .headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v);
        let values = condition.get("values").is_none_or(|v| {
            value.is_some_and(|value| list(v).iter().any(|p| p == "*") || authz_matches(v, value))
        });
        let not_values = condition
            .get("notValues")
            .is_none_or(|v| value.is_none_or(|value| !authz_matches(v, value)));
        values && not_values
    });
    from && to && when
}

/// What the gateway's AuthorizationPolicies do: DENY first, then ALLOW (when one exists).
fn gateway_allows(objects: &[(String, Value)], cluster: &str, request: &Request) -> bool {
    let policies: Vec<&Value> = of_kind(objects, "AuthorizationPolicy")
        .into_iter()
        .filter(|(path, p)| cluster_of(path) == cluster && p["spec"].get("targetRefs").is_some())
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
            let request = Request {
                host,
                method,
                path,
                principal: Some("cluster-2.l7-payment.example/ns/secure/sa/checkout"),
                headers: &[("x-mcwan-source-cluster", "cluster-2")],
            };
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

/// Whether an example's ClusterSet asks for mutual TLS across the WAN (the default), and
/// each cluster's trust domain.
fn security(example: &str) -> (bool, BTreeMap<String, String>) {
    let clusterset = clusterset(example);
    let mutual = clusterset["spec"]["security"]["mode"]
        .as_str()
        .is_none_or(|m| m == "mutual");
    let trust_domains = list(&clusterset["spec"]["clusters"])
        .iter()
        .filter_map(|c| {
            let name = c["name"].as_str()?.to_string();
            Some((name, c["trustDomain"].as_str()?.to_string()))
        })
        .collect();
    (mutual, trust_domains)
}

/// The clusters with a ServiceImport of `namespace/name`: the importers.
fn importers(objects: &[(String, Value)], namespace: &str, name: &str) -> BTreeSet<String> {
    of_kind(objects, "ServiceImport")
        .into_iter()
        .filter(|(_, o)| o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == name)
        .map(|(path, _)| cluster_of(path).to_string())
        .collect()
}

/// Issue 17: in mutual mode no listener takes plaintext. Each terminates Istio mutual TLS
/// (Istio's option on a Terminate listener without certificates), for any SNI.
#[test]
fn in_mutual_mode_every_listener_terminates_istio_mutual_tls() {
    let mut modes = BTreeSet::new();
    for (example, objects) in trees() {
        let (mutual, _) = security(&example);
        for (path, gateway) in of_kind(&objects, "Gateway") {
            for listener in list(&gateway["spec"]["listeners"]) {
                let at = format!("{example}/{path}: listener {}", listener["name"]);
                if mutual {
                    assert_eq!(listener["protocol"], "HTTPS", "{at}");
                    assert_eq!(listener["tls"]["mode"], "Terminate", "{at}");
                    assert_eq!(
                        listener["tls"]["options"]["gateway.istio.io/tls-terminate-mode"],
                        "ISTIO_MUTUAL",
                        "{at}"
                    );
                    assert!(listener["tls"].get("certificateRefs").is_none(), "{at}");
                    assert!(
                        listener.get("hostname").is_none(),
                        "{at}: SNI would be filtered"
                    );
                } else {
                    assert_eq!(listener["protocol"], "HTTP", "{at}");
                }
                modes.insert(mutual);
            }
        }
    }
    assert_eq!(modes.len(), 2, "the examples cover both modes");
}

/// Issue 17: every endpoint of an imported host, remote or the importer's own gateway, is
/// reached with Istio mutual TLS (an explicit `ISTIO_MUTUAL`, which no subset overrides),
/// and the client accepts only the identities of the gateways it sends to.
#[test]
fn in_mutual_mode_every_endpoint_is_reached_with_mutual_tls_to_its_gateway() {
    let mut checked = 0;
    for (example, objects) in trees() {
        let (mutual, trust_domains) = security(&example);
        if !mutual {
            continue;
        }
        let class = clusterset(&example)["spec"]["gatewayClassName"]
            .as_str()
            .unwrap_or("istio")
            .to_string();
        for (path, entry) in of_kind(&objects, "ServiceEntry") {
            let endpoints = list(&entry["spec"]["endpoints"]);
            if endpoints.is_empty() {
                continue;
            }
            let host = &entry["spec"]["hosts"][0];
            let (_, rule) = of_kind(&objects, "DestinationRule")
                .into_iter()
                .find(|(p, r)| cluster_of(p) == cluster_of(path) && r["spec"]["host"] == *host)
                .unwrap_or_else(|| panic!("{example}/{path}: no DestinationRule"));
            let tls = &rule["spec"]["trafficPolicy"]["tls"];
            assert_eq!(tls["mode"], "ISTIO_MUTUAL", "{example}/{path}");
            for subset in list(&rule["spec"]["subsets"]) {
                let own = &subset["trafficPolicy"]["tls"];
                assert!(own.is_null(), "{example}/{path}: subset sets its own tls");
                assert!(subset["trafficPolicy"].get("portLevelSettings").is_none());
            }
            let expected: BTreeSet<String> = endpoints
                .iter()
                .map(|e| {
                    let cluster = e["labels"]["mcw.l7mp.io/cluster"].as_str().unwrap();
                    let td = &trust_domains[cluster];
                    format!("spiffe://{td}/ns/mcw-system/sa/mcw-ingress-{class}")
                })
                .collect();
            let names: BTreeSet<String> = list(&tls["subjectAltNames"])
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            assert_eq!(names, expected, "{example}/{path}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} imported hosts checked");
}

/// Issue 17: every principal an ingress admits for a host is a workload, in the host's
/// namespace, of a cluster that imports it; and each cluster's certificates are bound to
/// its name in `x-mcwan-source-cluster`.
#[test]
fn in_mutual_mode_every_principal_belongs_to_an_importer_of_the_namespace() {
    let mut checked = 0;
    for (example, objects) in trees() {
        let (mutual, trust_domains) = security(&example);
        if !mutual {
            continue;
        }
        let cluster_of_td: BTreeMap<&str, &str> = trust_domains
            .iter()
            .map(|(c, td)| (td.as_str(), c.as_str()))
            .collect();
        let egress = egress_addresses(&example);
        for (path, policy) in of_kind(&objects, "AuthorizationPolicy") {
            let at = format!("{example}/{path}");
            for rule in list(&policy["spec"]["rules"]) {
                let principals: Vec<&str> = list(&rule["from"])
                    .iter()
                    .flat_map(|f| list(&f["source"]["principals"]))
                    .map(|p| p.as_str().unwrap())
                    .collect();
                if policy["spec"]["action"] == "DENY" {
                    continue;
                }
                assert!(
                    !principals.is_empty(),
                    "{at}: an ALLOW rule admits any caller"
                );
                for host in list(&rule["to"][0]["operation"]["hosts"]) {
                    let host = host.as_str().unwrap().trim_end_matches(":*");
                    let mut labels = host.split('.');
                    let (name, namespace) = (labels.next().unwrap(), labels.next().unwrap());
                    let importers = importers(&objects, namespace, name);
                    for principal in &principals {
                        let (td, rest) = principal.split_once("/ns/").unwrap();
                        let cluster = cluster_of_td[td];
                        // Through its egress gateway, a cluster calls as the gateway.
                        let expected = if egress.contains_key(cluster)
                            && policy["spec"].get("targetRefs").is_some()
                        {
                            "mcw-system/sa/mcw-egress".to_string()
                        } else {
                            format!("{namespace}/sa/")
                        };
                        assert!(
                            rest.starts_with(&expected),
                            "{at}: {principal} is not in namespace {namespace}"
                        );
                        if policy["spec"].get("selector").is_some() {
                            assert_eq!(
                                cluster,
                                cluster_of(path),
                                "{at}: egress admits {principal}"
                            );
                        }
                        assert!(
                            importers.contains(cluster),
                            "{at}: {principal} of {cluster}, which does not import {host}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        for (path, _) in of_kind(&objects, "Gateway")
            .into_iter()
            .filter(|(_, g)| g["apiVersion"] == "gateway.networking.k8s.io/v1")
        {
            let cluster = cluster_of(path);
            let deny = of_kind(&objects, "AuthorizationPolicy")
                .into_iter()
                .find(|(p, o)| cluster_of(p) == cluster && o["spec"]["action"] == "DENY")
                .unwrap_or_else(|| panic!("{example}/{path}: no DENY binding"));
            for (name, td) in &trust_domains {
                let bound = list(&deny.1["spec"]["rules"]).iter().any(|r| {
                    r["from"][0]["source"]["principals"][0] == format!("{td}/*").as_str()
                        && r["when"][0]["notValues"][0] == name.as_str()
                });
                assert!(bound, "{example}/{path}: {name} is not bound to {td}");
            }
        }
    }
    assert!(checked >= 10, "{checked} principals checked");
}

/// Issue 17: no host is reachable without a rule. For every host an ingress serves, exactly
/// its importers get a request through (with their workload's identity and their own name
/// in the header); a stranger's certificate, a caller without one, an importer's workload
/// of another namespace and an importer claiming another cluster's name all get 403.
#[test]
fn in_mutual_mode_only_the_importers_get_through() {
    let mut checked = 0;
    for (example, objects) in trees() {
        let (mutual, trust_domains) = security(&example);
        if !mutual {
            continue;
        }
        let egress = egress_addresses(&example);
        for (path, route) in of_kind(&objects, "HTTPRoute") {
            let cluster = cluster_of(path);
            let namespace = route["metadata"]["namespace"].as_str().unwrap();
            let host = route["spec"]["hostnames"][0].as_str().unwrap();
            let name = host.split('.').next().unwrap();
            let probes = probes(&objects, cluster, host);
            let passes = |principal: Option<&str>, header: &str| {
                probes.iter().any(|(method, path)| {
                    let request = Request {
                        host,
                        method,
                        path,
                        principal,
                        headers: &[("x-mcwan-source-cluster", header)],
                    };
                    gateway_allows(&objects, cluster, &request)
                })
            };
            let account = allowed_account(&objects, cluster, host);
            // A cluster in egress gateway mode calls as its egress gateway, which checks
            // the namespace itself (in_gateway_mode_the_egress_admits_only_the_namespace).
            let caller_principal = |caller: &str, td: &str, namespace: &str| {
                if egress.contains_key(caller) {
                    format!("{td}/ns/mcw-system/sa/mcw-egress")
                } else {
                    format!("{td}/ns/{namespace}/sa/{account}")
                }
            };
            let admitted: BTreeSet<String> = trust_domains
                .iter()
                .filter(|(caller, td)| {
                    passes(Some(&caller_principal(caller, td, namespace)), caller)
                })
                .map(|(caller, _)| caller.clone())
                .collect();
            let at = format!("{example}/{path}");
            assert_eq!(admitted, importers(&objects, namespace, name), "{at}");
            assert!(
                !passes(None, cluster),
                "{at}: a caller without a certificate"
            );
            let stranger = format!("stranger.example/ns/{namespace}/sa/{account}");
            assert!(!passes(Some(&stranger), cluster), "{at}: a stranger");
            for (caller, td) in &trust_domains {
                let other = caller_principal(caller, td, &format!("not-{namespace}"));
                if !egress.contains_key(caller) {
                    assert!(!passes(Some(&other), caller), "{at}: another namespace");
                }
                let own = caller_principal(caller, td, namespace);
                for claimed in trust_domains.keys().filter(|c| *c != caller) {
                    assert!(
                        !passes(Some(&own), claimed),
                        "{at}: {caller} claims {claimed}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} routes checked");
}

/// Requests that some ALLOW rule of `cluster`'s gateway admits for `host`, if any does: `GET
/// /` and each rule's method and path, with `*` filled in.
fn probes(objects: &[(String, Value)], cluster: &str, host: &str) -> Vec<(String, String)> {
    let mut probes = vec![("GET".to_string(), "/".to_string())];
    for (path, policy) in of_kind(objects, "AuthorizationPolicy") {
        if cluster_of(path) != cluster {
            continue;
        }
        for rule in list(&policy["spec"]["rules"]) {
            let op = &rule["to"][0]["operation"];
            if !list(&op["hosts"]).iter().any(|h| h == host) {
                continue;
            }
            let method = op["methods"][0].as_str().unwrap_or("GET");
            for p in list(&op["paths"]) {
                let p = p.as_str().unwrap().replace('*', "x");
                probes.push((method.to_string(), p));
            }
        }
    }
    probes
}

/// The service account an admitted caller of `host` runs as: the allow-list's first, or any.
fn allowed_account(objects: &[(String, Value)], cluster: &str, host: &str) -> String {
    of_kind(objects, "AuthorizationPolicy")
        .into_iter()
        .filter(|(p, o)| cluster_of(p) == cluster && o["spec"]["action"] == "ALLOW")
        .flat_map(|(_, o)| list(&o["spec"]["rules"]))
        .filter(|r| {
            list(&r["to"][0]["operation"]["hosts"])
                .iter()
                .any(|h| h == host)
        })
        .flat_map(|r| list(&r["from"][0]["source"]["principals"]))
        .filter_map(|p| p.as_str()?.rsplit_once("/sa/").map(|(_, a)| a))
        .find(|a| *a != "*")
        .unwrap_or("default")
        .to_string()
}

/// Each cluster's egress gateway addresses, for the clusters in egress gateway mode.
fn egress_addresses(example: &str) -> BTreeMap<String, Vec<String>> {
    let clusterset = clusterset(example);
    let default = clusterset["spec"]["egress"]["mode"]
        .as_str()
        .unwrap_or("sidecar");
    list(&clusterset["spec"]["clusters"])
        .iter()
        .filter(|c| c["egress"]["mode"].as_str().unwrap_or(default) == "gateway")
        .map(|c| {
            let addresses = list(&c["egress"]["addresses"])
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (c["name"].as_str().unwrap().to_string(), addresses)
        })
        .collect()
}

/// Issue 18: in egress gateway mode, no sidecar route reaches a gateway directly. Every
/// route a sidecar takes (`mesh`) goes to the cluster's egress Service, without retries;
/// every other route applies to the egress gateway only, and the VirtualService binds it.
#[test]
fn in_gateway_mode_sidecars_send_only_to_the_egress_gateway() {
    let mut checked = 0;
    for (example, objects) in trees() {
        let egress = egress_addresses(&example);
        for (path, service) in of_kind(&objects, "VirtualService") {
            let cluster = cluster_of(path);
            let at = format!("{example}/{path}");
            let spec = &service["spec"];
            let sidecar_routes: Vec<&Value> = list(&spec["http"])
                .iter()
                .filter(|r| {
                    let matches = list(&r["match"]);
                    matches.is_empty()
                        || matches.iter().any(|m| {
                            m.get("gateways").is_none()
                                || list(&m["gateways"]).iter().any(|g| g == "mesh")
                        })
                })
                .collect();
            if !egress.contains_key(cluster) {
                assert!(
                    spec.get("gateways").is_none(),
                    "{at}: sidecar mode binds a gateway"
                );
                continue;
            }
            assert_eq!(spec["gateways"][1], "mcw-system/mcw-egress", "{at}");
            assert_eq!(sidecar_routes.len(), 1, "{at}: one sidecar route");
            let route = sidecar_routes[0];
            assert_eq!(
                route["route"][0]["destination"]["host"], "mcw-egress.mcw-system.svc.cluster.local",
                "{at}: a sidecar route bypasses the egress gateway"
            );
            assert_eq!(route["retries"]["attempts"], 0, "{at}: retries on two hops");
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} VirtualServices checked");
}

/// Issue 18: the fabric's flows from a gateway-mode cluster come from its egress gateway's
/// addresses, and only those; from a sidecar-mode cluster they name no source address.
#[test]
fn in_gateway_mode_the_fabric_sources_are_the_egress_addresses() {
    let mut checked = 0;
    for example in trees().keys() {
        let egress = egress_addresses(example);
        let sites = root().join("golden").join(example).join("sdwan/sites");
        for site in fs::read_dir(sites).unwrap() {
            let site = site.unwrap().path();
            let cluster = site.file_name().unwrap().to_string_lossy().to_string();
            let flows = yaml(&fs::read(site.join("flows.yaml")).unwrap());
            for flow in list(&flows["flows"]) {
                let sources: Vec<String> = list(&flow["source"]["addresses"])
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                let expected = egress.get(&cluster).cloned().unwrap_or_default();
                assert_eq!(sources, expected, "{example}/{cluster}: {flow}");
                checked += usize::from(!expected.is_empty());
            }
        }
    }
    assert!(checked >= 2, "{checked} egress flows checked");
}

/// Issue 18: the egress gateway's Kubernetes objects are what the API server and Istio's
/// gateway injection take (crdcheck checks only their metadata): the Deployment's selector
/// is among its pod labels (apps/v1 validation), the pods are injected with the gateway
/// template, the Service and the Istio Gateway select those pods, and a lockdown
/// NetworkPolicy is egress-only with its exceptions inside its blocks.
#[test]
fn egress_gateway_objects_are_valid_kubernetes_and_select_the_same_pods() {
    let mut checked = 0;
    for (example, objects) in trees() {
        for (path, deployment) in of_kind(&objects, "Deployment") {
            let at = format!("{example}/{path}");
            let cluster = cluster_of(path);
            let spec = &deployment["spec"];
            let selector = spec["selector"]["matchLabels"].as_object().unwrap();
            let template = &spec["template"];
            let pod_labels = template["metadata"]["labels"].as_object().unwrap();
            for (k, v) in selector {
                assert_eq!(
                    pod_labels.get(k),
                    Some(v),
                    "{at}: selector not in the pod labels"
                );
            }
            assert_eq!(pod_labels["sidecar.istio.io/inject"], "true", "{at}");
            assert_eq!(
                template["metadata"]["annotations"]["inject.istio.io/templates"], "gateway",
                "{at}"
            );
            let container = &template["spec"]["containers"][0];
            assert_eq!(container["name"], "istio-proxy", "{at}");
            assert_eq!(container["image"], "auto", "{at}");
            let account = template["spec"]["serviceAccountName"].as_str().unwrap();
            let same = |kind: &str| {
                of_kind(&objects, kind)
                    .into_iter()
                    .filter(|(p, _)| cluster_of(p) == cluster)
                    .map(|(_, o)| o)
                    .collect::<Vec<_>>()
            };
            assert!(
                same("ServiceAccount")
                    .iter()
                    .any(|s| s["metadata"]["name"] == account),
                "{at}: no ServiceAccount {account}"
            );
            let selects = |s: &Value| {
                s.as_object()
                    .is_some_and(|s| s.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
            };
            for service in same("Service") {
                assert!(selects(&service["spec"]["selector"]), "{at}: Service");
                for port in list(&service["spec"]["ports"]) {
                    assert_eq!(port["port"], port["targetPort"], "{at}: Gateway port");
                    assert!(port["name"].as_str().unwrap().starts_with("http-"), "{at}");
                }
            }
            let gateways: Vec<&Value> = same("Gateway")
                .into_iter()
                .filter(|g| g["apiVersion"] == "networking.istio.io/v1")
                .collect();
            assert_eq!(gateways.len(), 1, "{at}: one Istio Gateway");
            assert!(
                selects(&gateways[0]["spec"]["selector"]),
                "{at}: Istio Gateway"
            );
            checked += 1;
        }
        for (path, policy) in of_kind(&objects, "NetworkPolicy") {
            let spec = &policy["spec"];
            assert_eq!(spec["policyTypes"][0], "Egress", "{example}/{path}");
            for block in list(&spec["egress"])
                .iter()
                .flat_map(|r| list(&r["to"]))
                .filter_map(|t| t.get("ipBlock"))
            {
                let v6 = block["cidr"].as_str().unwrap().contains(':');
                for except in list(&block["except"]) {
                    let except = except.as_str().unwrap();
                    assert_eq!(except.contains(':'), v6, "{example}/{path}: {except}");
                    let bits = if v6 { "/128" } else { "/32" };
                    assert!(except.ends_with(bits), "{example}/{path}: {except}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "{checked} egress objects checked");
}

/// Issue 18: through an egress gateway, exporters see the gateway's identity, so the egress
/// gateway makes the per-namespace check: for each host it forwards, it admits only the
/// cluster's own workloads of the host's namespace.
#[test]
fn in_gateway_mode_the_egress_admits_only_the_namespace() {
    let mut checked = 0;
    for (example, objects) in trees() {
        let (mutual, trust_domains) = security(&example);
        if !mutual {
            continue;
        }
        for (cluster, _) in egress_addresses(&example) {
            let td = &trust_domains[&cluster];
            let policy = of_kind(&objects, "AuthorizationPolicy")
                .into_iter()
                .find(|(p, o)| cluster_of(p) == cluster && o["spec"].get("selector").is_some())
                .unwrap_or_else(|| panic!("{example}/{cluster}: no egress AuthorizationPolicy"));
            for (path, entry) in of_kind(&objects, "ServiceImport") {
                if cluster_of(path) != cluster {
                    continue;
                }
                let namespace = entry["metadata"]["namespace"].as_str().unwrap();
                let name = entry["metadata"]["name"].as_str().unwrap();
                let host = format!("{name}.{namespace}.svc.clusterset.local");
                let allows = |principal: &str| {
                    list(&policy.1["spec"]["rules"]).iter().any(|r| {
                        rule_matches(
                            r,
                            &Request {
                                host: &host,
                                method: "GET",
                                path: "/",
                                principal: Some(principal),
                                headers: &[],
                            },
                        )
                    })
                };
                let at = format!("{example}/{cluster}: {host}");
                assert!(allows(&format!("{td}/ns/{namespace}/sa/client")), "{at}");
                assert!(
                    !allows(&format!("{td}/ns/not-{namespace}/sa/client")),
                    "{at}"
                );
                assert!(
                    !allows(&format!("stranger.example/ns/{namespace}/sa/client")),
                    "{at}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "{checked} egress hosts checked");
}
