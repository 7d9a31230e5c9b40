//! Sample requests and how the data plane matches them: Istio VirtualService matches, Gateway
//! API HTTPRoute matches and Istio authorization rules, each as the upstream code reads
//! them (references in docs/verify.md). Pure.

use std::collections::BTreeMap;
use std::fmt;

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

/// An Istio authorization string list (`hosts`, `paths`, `methods`, `values`): `*` any,
/// `x*` prefix, `*x` suffix, else exact; hosts compare case-insensitively
/// (pilot/pkg/security/authz/matcher/header.go:59-90 and string.go:99-115, 1.26.0).
fn authz_any(patterns: &Value, value: &str, ignore_case: bool) -> bool {
    let Some(patterns) = patterns.as_array() else {
        return true;
    };
    let value = if ignore_case {
        value.to_ascii_lowercase()
    } else {
        value.to_string()
    };
    patterns.iter().filter_map(Value::as_str).any(|p| {
        let p = if ignore_case {
            p.to_ascii_lowercase()
        } else {
            p.to_string()
        };
        if p == "*" {
            true
        } else if let Some(prefix) = p.strip_suffix('*') {
            value.starts_with(prefix)
        } else if let Some(suffix) = p.strip_prefix('*') {
            value.ends_with(suffix)
        } else {
            p == value
        }
    })
}

/// Whether an Istio AuthorizationPolicy `Rule` matches a request with this Host: any `to`
/// entry, and every `when` condition (only `request.headers[...]` is read).
#[must_use]
pub fn authz_rule_matches(rule: &Value, host: &str, sample: &Sample) -> bool {
    let to = rule["to"].as_array().is_none_or(|to| {
        to.iter().any(|t| {
            let op = &t["operation"];
            authz_any(&op["hosts"], host, true)
                && authz_any(&op["methods"], &sample.method, false)
                && authz_any(&op["paths"], &sample.path, false)
        })
    });
    to && rule["when"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|condition| {
            let key = condition["key"].as_str().unwrap_or_default();
            let name = key
                .strip_prefix("request.headers[")
                .and_then(|k| k.strip_suffix(']'))
                .map(str::to_ascii_lowercase);
            match name.and_then(|n| sample.headers.get(&n)) {
                Some(value) => authz_any(&condition["values"], value, false),
                None => false,
            }
        })
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
        assert!(authz_rule_matches(&rule, "A.example:8080", &sample));
        assert!(!authz_rule_matches(&rule, "b.example", &sample));
        assert!(!authz_rule_matches(&rule, "a.example", &unmatched()));
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
