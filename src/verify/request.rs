//! Sample requests and how the data plane matches them: Istio VirtualService matches, Gateway
//! API HTTPRoute matches and Istio authorization rules, each as the upstream code reads
//! them (references in docs/verify.md). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

/// One concrete request: what a request class stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Sample {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        for (name, value) in &self.headers {
            write!(f, " {name}: {value}")?;
        }
        Ok(())
    }
}

/// A request no mcwan route names: a method and path no declaration is expected to use.
#[must_use]
pub fn unmatched() -> Sample {
    Sample {
        method: "PATCH".into(),
        path: "/.mcwan-verify/unmatched".into(),
        headers: BTreeMap::new(),
        query: BTreeMap::new(),
    }
}

/// Why no sample stands for a match: it uses a pattern the verifier does not invert.
pub type Unsure = String;

/// A value a string match accepts, if one can be named: exact, or a prefix extended.
fn satisfy(kind: &str, value: &str) -> Result<String, Unsure> {
    match kind {
        "exact" | "Exact" | "prefix" | "PathPrefix" => Ok(value.to_string()),
        _ => Err(format!("the regular expression `{value}`")),
    }
}

/// A request an Istio `HTTPMatchRequest` takes.
///
/// # Errors
/// When the match uses a regular expression.
pub fn from_istio(m: &Value) -> Result<Sample, Unsure> {
    let mut sample = Sample {
        method: "GET".into(),
        path: "/".into(),
        headers: BTreeMap::new(),
        query: BTreeMap::new(),
    };
    let one = |matcher: &Value| -> Result<String, Unsure> {
        let (kind, value) = matcher
            .as_object()
            .and_then(|o| o.iter().next())
            .ok_or_else(|| "an empty string match".to_string())?;
        satisfy(kind, value.as_str().unwrap_or_default())
    };
    if !m["uri"].is_null() {
        sample.path = one(&m["uri"])?;
    }
    if !m["method"].is_null() {
        sample.method = one(&m["method"])?;
    }
    for (name, matcher) in m["headers"].as_object().into_iter().flatten() {
        sample
            .headers
            .insert(name.to_ascii_lowercase(), one(matcher)?);
    }
    for (name, matcher) in m["queryParams"].as_object().into_iter().flatten() {
        sample.query.insert(name.clone(), one(matcher)?);
    }
    Ok(sample)
}

/// A request a Gateway API `HTTPRouteMatch` takes (the form WANRoutes are declared in).
///
/// # Errors
/// When the match uses a regular expression.
pub fn from_gateway(m: &Value) -> Result<Sample, Unsure> {
    let mut sample = Sample {
        method: m["method"].as_str().unwrap_or("GET").to_string(),
        path: "/".into(),
        headers: BTreeMap::new(),
        query: BTreeMap::new(),
    };
    if let Some(kind) = m["path"]["type"].as_str() {
        sample.path = satisfy(kind, m["path"]["value"].as_str().unwrap_or("/"))?;
    }
    for (list, into) in [
        ("headers", &mut sample.headers),
        ("queryParams", &mut sample.query),
    ] {
        for named in m[list].as_array().into_iter().flatten() {
            let value = satisfy(
                named["type"].as_str().unwrap_or("Exact"),
                named["value"].as_str().unwrap_or_default(),
            )?;
            let name = named["name"].as_str().unwrap_or_default();
            let name = if list == "headers" {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            };
            into.insert(name, value);
        }
    }
    Ok(sample)
}

/// RE2-compatible full match, as Envoy's `safe_regex` matcher does: Istio turns a
/// `regex` StringMatch into one (pilot/pkg/networking/util/util.go, `ConvertToEnvoyMatch`).
fn full_match(pattern: &str, value: &str) -> Result<bool, Unsure> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map(|r| r.is_match(value))
        .map_err(|_| format!("the regular expression `{pattern}`"))
}

/// An Istio `StringMatch` against a value (absent: no match).
fn istio_string(matcher: &Value, value: Option<&str>) -> Result<bool, Unsure> {
    let Some(value) = value else { return Ok(false) };
    if let Some(exact) = matcher["exact"].as_str() {
        return Ok(value == exact);
    }
    if let Some(prefix) = matcher["prefix"].as_str() {
        return Ok(value.starts_with(prefix));
    }
    if let Some(pattern) = matcher["regex"].as_str() {
        return full_match(pattern, value);
    }
    Ok(true)
}

/// Whether an Istio `HTTPMatchRequest` takes the request: every condition it states
/// (istio.io reference, VirtualService `HTTPMatchRequest`: "All conditions inside a single
/// match block have AND semantics"); a header it names must be present.
///
/// # Errors
/// When a regular expression does not compile.
pub fn istio_matches(m: &Value, sample: &Sample) -> Result<bool, Unsure> {
    let path = sample.path.as_str();
    if !m["uri"].is_null() && !istio_string(&m["uri"], Some(path))? {
        return Ok(false);
    }
    if !m["method"].is_null() && !istio_string(&m["method"], Some(&sample.method))? {
        return Ok(false);
    }
    for (name, matcher) in m["headers"].as_object().into_iter().flatten() {
        let value = sample
            .headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str);
        if !istio_string(matcher, value)? {
            return Ok(false);
        }
    }
    for (name, matcher) in m["queryParams"].as_object().into_iter().flatten() {
        if !istio_string(matcher, sample.query.get(name).map(String::as_str))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a Gateway API `HTTPRouteMatch` takes the request. A path prefix matches whole
/// segments (`apis/v1/httproute_types.go`, `PathMatchPathPrefix`).
///
/// # Errors
/// When a regular expression does not compile.
pub fn gateway_matches(m: &Value, sample: &Sample) -> Result<bool, Unsure> {
    let value = m["path"]["value"].as_str().unwrap_or("/");
    let path_ok = match m["path"]["type"].as_str().unwrap_or("PathPrefix") {
        "Exact" => sample.path == value,
        "RegularExpression" => full_match(value, &sample.path)?,
        _ => {
            let prefix = value.trim_end_matches('/');
            prefix.is_empty()
                || sample.path == prefix
                || sample
                    .path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    };
    if !path_ok
        || m["method"]
            .as_str()
            .is_some_and(|method| method != sample.method)
    {
        return Ok(false);
    }
    for (list, values) in [("headers", &sample.headers), ("queryParams", &sample.query)] {
        for named in m[list].as_array().into_iter().flatten() {
            let name = named["name"].as_str().unwrap_or_default();
            let name = if list == "headers" {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            };
            let expected = named["value"].as_str().unwrap_or_default();
            let ok = match (values.get(&name), named["type"].as_str()) {
                (None, _) => false,
                (Some(v), Some("RegularExpression")) => full_match(expected, v)?,
                (Some(v), _) => v == expected,
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// How specific a Gateway API match is, most specific first when sorted: an exact path,
/// then the longest prefix, a method, the most header and then query-parameter matches
/// (`HTTPRouteRule.Matches` precedence).
#[must_use]
pub fn precedence(
    m: &Value,
) -> (
    bool,
    std::cmp::Reverse<usize>,
    bool,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
) {
    let exact = m["path"]["type"] == "Exact";
    let length = m["path"]["value"].as_str().map_or(1, str::len);
    let count = |list: &str| m[list].as_array().map_or(0, Vec::len);
    (
        !exact,
        std::cmp::Reverse(length),
        m["method"].is_null(),
        std::cmp::Reverse(count("headers")),
        std::cmp::Reverse(count("queryParams")),
    )
}

/// One Istio authorization string pattern (`hosts`, `paths`, `methods`, header `values`,
/// `principals`): `*` any, then `*x` suffix (so `*x*` ends with `x*`), `x*` prefix, else exact
/// (pilot/pkg/security/authz/matcher/header.go:25-56 and string.go:99-115, 1.26.0). A host
/// pattern and value come lowercased: hosts compare case-insensitively (header.go:59-90).
fn authz_pattern(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else {
        pattern == value
    }
}

/// A list field: `None` when absent or empty, which Istio reads as no condition
/// (pilot/pkg/security/authz/model/model.go `appendLast`, 390-402 / 401-413 at 1.26.0 /
/// 1.30.3).
fn patterns(value: &Value, lowercase: bool) -> Option<Vec<String>> {
    let list: Vec<String> = value
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(|p| {
            if lowercase {
                p.to_ascii_lowercase()
            } else {
                p.to_string()
            }
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

fn any_pattern(patterns: Option<&Vec<String>>, value: &str) -> bool {
    patterns.is_none_or(|list| list.iter().any(|p| authz_pattern(p, value)))
}

/// An Istio AuthorizationPolicy `Rule`, read once per gateway: the peers it names (`from`),
/// the operations (`to`) and the conditions (`when`). A rule matches when one `from` source,
/// one `to` operation and every `when` condition do (model.go `New`, 78-152 / 79-156 at 1.26.0 / 1.30.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRule {
    /// Its `from` and `when`: which callers it matches once an operation does.
    pub peer: Arc<AuthzPeer>,
    /// `None`: no `to`, any operation.
    to: Option<Vec<AuthzOperation>>,
}

/// The part of a rule that tells callers apart: its `from` sources and `when` conditions.
/// Whole clustersets of gateways name the same callers in rule after rule, so a gateway
/// asked about many callers for one request asks these only (`facts::PeerRules`), and
/// looks them up by their fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzPeer {
    /// A hash of the rest, computed once: equal peers have equal fingerprints.
    fingerprint: u64,
    /// `None`: no `from`, any peer.
    from: Option<Vec<AuthzSource>>,
    when: Vec<AuthzCondition>,
}

impl Hash for AuthzPeer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

/// A `from.source`: only `principals` and `notPrincipals` are read (mcwan writes no other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AuthzSource {
    principals: Option<Vec<String>>,
    not_principals: Option<Vec<String>>,
}

/// A `to.operation`'s hosts (lowercase), methods and paths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthzOperation {
    hosts: Option<Vec<String>>,
    methods: Option<Vec<String>>,
    paths: Option<Vec<String>>,
}

/// A `when` condition on a request header; `header` is `None` for a key verify does not
/// read, which never holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AuthzCondition {
    header: Option<String>,
    values: Option<Vec<String>>,
    not_values: Option<Vec<String>>,
}

impl AuthzRule {
    /// Reads a rule of an AuthorizationPolicy's `spec.rules`.
    #[must_use]
    pub fn of(rule: &Value) -> Self {
        let from = rule["from"].as_array().map(|from| {
            from.iter()
                .map(|f| AuthzSource {
                    principals: patterns(&f["source"]["principals"], false),
                    not_principals: patterns(&f["source"]["notPrincipals"], false),
                })
                .collect()
        });
        let to = rule["to"].as_array().map(|to| {
            to.iter()
                .map(|t| AuthzOperation {
                    hosts: patterns(&t["operation"]["hosts"], true),
                    methods: patterns(&t["operation"]["methods"], false),
                    paths: patterns(&t["operation"]["paths"], false),
                })
                .collect()
        });
        let when = rule["when"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|condition| AuthzCondition {
                header: condition["key"]
                    .as_str()
                    .and_then(|k| k.strip_prefix("request.headers["))
                    .and_then(|k| k.strip_suffix(']'))
                    .map(str::to_ascii_lowercase),
                values: patterns(&condition["values"], false),
                not_values: patterns(&condition["notValues"], false),
            })
            .collect();
        let mut hasher = DefaultHasher::new();
        (&from, &when).hash(&mut hasher);
        AuthzRule {
            peer: Arc::new(AuthzPeer {
                fingerprint: hasher.finish(),
                from,
                when,
            }),
            to,
        }
    }

    /// The hosts the rule is confined to, for an index by host: each `to` operation's
    /// exact hosts, `h:*` counted as `h`. `None` when some operation may match any host.
    #[must_use]
    pub fn hosts(&self) -> Option<BTreeSet<String>> {
        let mut hosts = BTreeSet::new();
        for operation in self.to.as_ref()? {
            for host in operation.hosts.as_ref()? {
                let host = host.strip_suffix(":*").unwrap_or(host);
                if host.contains('*') {
                    return None;
                }
                hosts.insert(host.to_string());
            }
        }
        Some(hosts)
    }

    /// The trust domains of the peers the rule is confined to, for an index by peer: the
    /// part before the first `/` of each `from` principal, exact or a prefix that includes
    /// it. `None` when some source may match a peer of any trust domain.
    #[must_use]
    pub fn trust_domains(&self) -> Option<BTreeSet<String>> {
        let mut domains = BTreeSet::new();
        for source in self.peer.from.as_ref()? {
            for pattern in source.principals.as_ref()? {
                if pattern.starts_with('*') {
                    return None;
                }
                let domain = match pattern.strip_suffix('*') {
                    Some(prefix) => prefix.split_once('/')?.0,
                    None => trust_domain(pattern),
                };
                domains.insert(domain.to_string());
            }
        }
        Some(domains)
    }

    /// Whether the rule matches a request with this Host from a peer with this identity
    /// (the SPIFFE URI without `spiffe://`; `None` for a plaintext peer).
    #[must_use]
    pub fn matches(&self, host: &str, sample: &Sample, principal: Option<&str>) -> bool {
        self.peer.matches(&sample.headers, principal) && self.operation_matches(host, sample)
    }

    /// Whether one `to` operation matches the request's Host, method and path.
    #[must_use]
    pub fn operation_matches(&self, host: &str, sample: &Sample) -> bool {
        self.to.as_ref().is_none_or(|operations| {
            let host = host.to_ascii_lowercase();
            operations.iter().any(|op| {
                any_pattern(op.hosts.as_ref(), &host)
                    && any_pattern(op.methods.as_ref(), &sample.method)
                    && any_pattern(op.paths.as_ref(), &sample.path)
            })
        })
    }
}

impl AuthzPeer {
    /// Whether a peer with this identity, sending a request with these headers (lowercase
    /// names), is one the rule names.
    ///
    /// A principal pattern matches the peer's certificate (generator.go
    /// `srcPrincipalGenerator`, 221-224 / 250-253 at 1.26.0 / 1.30.3, through
    /// `StringMatcherWithPrefix`, string.go:99-115 / 100-116, where `*` is `.+`), so a rule
    /// with `from` never matches a peer without identity. `notPrincipals` and `notValues`
    /// negate any of theirs, and are ANDed with the positive list (model.go `rule.principal`,
    /// 288-342 / 299-353).
    #[must_use]
    pub fn matches(&self, headers: &BTreeMap<String, String>, principal: Option<&str>) -> bool {
        let from = self.from.as_ref().is_none_or(|sources| {
            principal.is_some_and(|peer| {
                sources.iter().any(|s| {
                    any_pattern(s.principals.as_ref(), peer)
                        && s.not_principals
                            .as_ref()
                            .is_none_or(|not| !not.iter().any(|p| authz_pattern(p, peer)))
                })
            })
        });
        from && self.when.iter().all(|condition| condition.holds(headers))
    }
}

impl AuthzCondition {
    /// A header condition: `values` needs the header present and matching one (`*`: present,
    /// header.go:25-34 at 1.26.0 and 1.30.3); `notValues` holds when it is absent or matches none.
    fn holds(&self, headers: &BTreeMap<String, String>) -> bool {
        let Some(name) = &self.header else {
            return false;
        };
        let value = headers.get(name);
        let positive = self
            .values
            .as_ref()
            .is_none_or(|values| value.is_some_and(|v| values.iter().any(|p| authz_pattern(p, v))));
        let negative = self
            .not_values
            .as_ref()
            .is_none_or(|not| value.is_none_or(|v| !not.iter().any(|p| authz_pattern(p, v))));
        positive && negative
    }
}

/// The trust domain of a principal (`<trust domain>/ns/<namespace>/sa/<account>`).
#[must_use]
pub fn trust_domain(principal: &str) -> &str {
    principal
        .split_once('/')
        .map_or(principal, |(domain, _)| domain)
}

/// Whether an Istio AuthorizationPolicy rule matches a request with this Host from a peer
/// with this identity: `AuthzRule::matches` on a rule read once.
#[must_use]
pub fn authz_rule_matches(
    rule: &Value,
    host: &str,
    sample: &Sample,
    principal: Option<&str>,
) -> bool {
    AuthzRule::of(rule).matches(host, sample, principal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_prefixes_match_whole_segments_and_precedence_prefers_exact() {
        let m = json!({"path": {"type": "PathPrefix", "value": "/pay"}});
        let get = |path: &str| Sample {
            path: path.into(),
            ..unmatched()
        };
        assert!(gateway_matches(&m, &get("/pay/x")).unwrap());
        assert!(!gateway_matches(&m, &get("/payment")).unwrap());
        let exact = json!({"path": {"type": "Exact", "value": "/p"}});
        assert!(precedence(&exact) < precedence(&m));
    }

    #[test]
    fn authorization_hosts_ignore_case_and_compare_ports() {
        let rule = json!({"to": [{"operation": {"hosts": ["a.example", "a.example:*"], "paths": ["/x/*"]}}]});
        let sample = Sample {
            path: "/x/1".into(),
            ..unmatched()
        };
        assert!(authz_rule_matches(&rule, "A.example:8080", &sample, None));
        assert!(!authz_rule_matches(&rule, "b.example", &sample, None));
        assert!(!authz_rule_matches(&rule, "a.example", &unmatched(), None));
    }

    #[test]
    fn principals_are_istio_string_patterns_and_need_an_identity() {
        let rule = |principals: &[&str]| json!({"from": [{"source": {"principals": principals}}], "to": [{"operation": {"hosts": ["a.example"]}}]});
        let peer = "td-1.example/ns/secure/sa/default";
        let matches = |principals: &[&str], principal: Option<&str>| {
            authz_rule_matches(&rule(principals), "a.example", &unmatched(), principal)
        };
        assert!(matches(&[peer], Some(peer)));
        assert!(!matches(&[peer], Some("td-1.example/ns/secure/sa/other")));
        assert!(matches(&["td-1.example/ns/secure/sa/*"], Some(peer)));
        assert!(!matches(&["td-1.example/ns/insecure/sa/*"], Some(peer)));
        assert!(matches(&["*/ns/secure/sa/default"], Some(peer)));
        assert!(matches(&["*"], Some(peer)));
        // A plaintext peer has no identity: no `from` matches it, not even `*`.
        assert!(!matches(&["*"], None));
        // `*x*` is a suffix match whose `*` is literal, as Istio reads it.
        assert!(!matches(&["*/ns/secure/sa/*"], Some(peer)));
        // Without `from`, any peer, with identity or not.
        let open = json!({"to": [{"operation": {"hosts": ["a.example"]}}]});
        assert!(authz_rule_matches(&open, "a.example", &unmatched(), None));
        let not = json!({"from": [{"source": {"principals": ["td-1.example/*"], "notPrincipals": ["*/sa/default"]}}]});
        assert!(!authz_rule_matches(
            &not,
            "a.example",
            &unmatched(),
            Some(peer)
        ));
        assert!(authz_rule_matches(
            &not,
            "a.example",
            &unmatched(),
            Some("td-1.example/ns/secure/sa/payer")
        ));
    }

    #[test]
    fn not_values_hold_when_the_header_is_absent_or_matches_none() {
        // The binding rule of cluster `a`: present, and not `a`.
        let binding = json!({"when": [{"key": "request.headers[X-Source]", "values": ["*"], "notValues": ["a"]}]});
        let with = |value: Option<&str>| {
            let mut sample = unmatched();
            if let Some(value) = value {
                sample.headers.insert("x-source".into(), value.into());
            }
            authz_rule_matches(&binding, "h", &sample, Some("td/ns/n/sa/s"))
        };
        assert!(with(Some("b")));
        assert!(!with(Some("a")));
        // `*` needs the header present: without it, the rule does not match.
        assert!(!with(None));
        let only_not =
            json!({"when": [{"key": "request.headers[x-source]", "notValues": ["a", "b*"]}]});
        let sample = |value: Option<&str>| {
            let mut sample = unmatched();
            sample
                .headers
                .extend(value.map(|v| ("x-source".to_string(), v.to_string())));
            sample
        };
        assert!(authz_rule_matches(&only_not, "h", &sample(None), None));
        assert!(authz_rule_matches(&only_not, "h", &sample(Some("c")), None));
        assert!(!authz_rule_matches(
            &only_not,
            "h",
            &sample(Some("a")),
            None
        ));
        assert!(!authz_rule_matches(
            &only_not,
            "h",
            &sample(Some("bee")),
            None
        ));
        // A key verify does not read never holds.
        let other = json!({"when": [{"key": "source.ip", "values": ["10.0.0.1"]}]});
        assert!(!authz_rule_matches(&other, "h", &sample(None), None));
    }

    #[test]
    fn rules_are_indexed_by_host_else_by_trust_domain() {
        let both = AuthzRule::of(&json!({
            "from": [{"source": {"principals": ["td/*"]}}],
            "to": [{"operation": {"hosts": ["A.example", "a.example:*"]}}]
        }));
        assert_eq!(
            both.hosts(),
            Some(BTreeSet::from(["a.example".to_string()]))
        );
        let binding = AuthzRule::of(
            &json!({"from": [{"source": {"principals": ["td/*", "other/ns/x/sa/y"]}}]}),
        );
        assert_eq!(binding.hosts(), None);
        assert_eq!(
            binding.trust_domains(),
            Some(BTreeSet::from(["other".to_string(), "td".to_string()]))
        );
        for wide in ["*", "*/ns/x/sa/y", "td*"] {
            let rule = AuthzRule::of(&json!({"from": [{"source": {"principals": [wide]}}]}));
            assert_eq!(rule.trust_domains(), None, "{wide}");
        }
        assert_eq!(trust_domain("td/ns/x/sa/y"), "td");
    }

    #[test]
    fn samples_from_matches_satisfy_them() {
        let m = json!({"uri": {"prefix": "/stats/"}, "method": {"exact": "GET"}, "headers": {"X-A": {"exact": "1"}}});
        let sample = from_istio(&m).unwrap();
        assert!(istio_matches(&m, &sample).unwrap());
        assert!(from_istio(&json!({"uri": {"regex": "/a.*"}})).is_err());
        let g = json!({"path": {"type": "PathPrefix", "value": "/payment"}, "method": "GET"});
        assert!(gateway_matches(&g, &from_gateway(&g).unwrap()).unwrap());
    }
}
