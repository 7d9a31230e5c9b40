//! A validated WANRoute: ordered L7 rules that pick a WAN policy (or deny) per request.

use serde::Serialize;

use super::PolicyId;

/// How a string is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum MatchKind {
    Exact,
    /// Gateway API path prefix: whole `/`-separated segments.
    PathPrefix,
    /// RE2 syntax, as Envoy evaluates it.
    RegularExpression,
}

impl MatchKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "Exact",
            MatchKind::PathPrefix => "PathPrefix",
            MatchKind::RegularExpression => "RegularExpression",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StringMatch {
    pub kind: MatchKind,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NamedMatch {
    /// Header names are lowercase: HTTP header names are case-insensitive and Istio wants them so.
    pub name: String,
    pub matcher: StringMatch,
}

/// One HTTP match: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpMatch {
    pub path: StringMatch,
    pub method: Option<String>,
    pub headers: Vec<NamedMatch>,
    pub query_params: Vec<NamedMatch>,
}

impl HttpMatch {
    /// Whether every request this match accepts, `other` accepts too. Conservative: a
    /// regular expression covers only the identical expression.
    #[must_use]
    pub fn covered_by(&self, other: &HttpMatch) -> bool {
        let path = match (other.path.kind, self.path.kind) {
            (MatchKind::PathPrefix, MatchKind::Exact | MatchKind::PathPrefix) => {
                let prefix = other.path.value.trim_end_matches('/');
                prefix.is_empty()
                    || self.path.value == prefix
                    || self
                        .path
                        .value
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            _ => other.path == self.path,
        };
        path && other
            .method
            .as_ref()
            .is_none_or(|m| self.method.as_ref() == Some(m))
            && other.headers.iter().all(|h| self.headers.contains(h))
            && other
                .query_params
                .iter()
                .all(|q| self.query_params.contains(q))
    }
}

/// A match as an Istio AuthorizationPolicy can state it: conditions on the method, the path
/// and exact header values, all of which must hold (Istio `Operation` and `Condition`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthzMatch {
    pub methods: Vec<String>,
    /// Istio `paths`: exact, or `/prefix/*`; empty means any path.
    pub paths: Vec<String>,
    /// `(header name, exact value)`.
    pub headers: Vec<(String, String)>,
}

impl HttpMatch {
    /// The same match as an AuthorizationPolicy rule, or why it has none: Istio's
    /// `paths` and header `values` know exact, prefix (`x*`), suffix (`*x`) and presence
    /// matches only, with no regular expressions and no query parameters.
    ///
    /// # Errors
    /// The part of the match an AuthorizationPolicy cannot state.
    pub fn authorization(&self) -> Result<AuthzMatch, String> {
        // A `*` at either end, or a path template, would be read as a wildcard.
        let literal = |v: &str| !v.starts_with('*') && !v.ends_with('*') && !v.contains('{');
        if !self.query_params.is_empty() {
            return Err("a query parameter match".into());
        }
        let paths = match self.path.kind {
            MatchKind::RegularExpression => {
                return Err(format!("the regular expression path `{}`", self.path.value))
            }
            _ if !literal(&self.path.value) => {
                return Err(format!(
                    "the path `{}`, which Istio reads as a pattern",
                    self.path.value
                ))
            }
            MatchKind::Exact => vec![self.path.value.clone()],
            MatchKind::PathPrefix => {
                let prefix = self.path.value.trim_end_matches('/');
                if prefix.is_empty() {
                    vec![]
                } else {
                    vec![prefix.to_string(), format!("{prefix}/*")]
                }
            }
        };
        let mut headers = Vec::new();
        for header in &self.headers {
            if header.matcher.kind != MatchKind::Exact || !literal(&header.matcher.value) {
                return Err(format!("the header match on `{}`", header.name));
            }
            headers.push((header.name.clone(), header.matcher.value.clone()));
        }
        Ok(AuthzMatch {
            methods: self.method.iter().cloned().collect(),
            paths,
            headers,
        })
    }

    /// Whether no request can satisfy both matches. Conservative: `false` unless a method,
    /// the paths or an exact header value tell them apart.
    #[must_use]
    pub fn disjoint(&self, other: &HttpMatch) -> bool {
        let methods = matches!((&self.method, &other.method), (Some(a), Some(b)) if a != b);
        let under = |exact: &str, prefix: &str| {
            let prefix = prefix.trim_end_matches('/');
            prefix.is_empty()
                || exact == prefix
                || exact
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let (a, b) = (&self.path, &other.path);
        let paths = match (a.kind, b.kind) {
            (MatchKind::Exact, MatchKind::Exact) => a.value != b.value,
            (MatchKind::Exact, MatchKind::PathPrefix) => !under(&a.value, &b.value),
            (MatchKind::PathPrefix, MatchKind::Exact) => !under(&b.value, &a.value),
            (MatchKind::PathPrefix, MatchKind::PathPrefix) => {
                !under(&a.value, &b.value) && !under(&b.value, &a.value)
            }
            _ => false,
        };
        let headers = self.headers.iter().any(|h| {
            h.matcher.kind == MatchKind::Exact
                && other.headers.iter().any(|o| {
                    o.name == h.name
                        && o.matcher.kind == MatchKind::Exact
                        && o.matcher.value != h.matcher.value
                })
        });
        methods || paths || headers
    }
}

/// Where a rule sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Policy(PolicyId),
    Deny,
}

impl Action {
    #[must_use]
    pub fn policy(self) -> Option<PolicyId> {
        match self {
            Action::Policy(p) => Some(p),
            Action::Deny => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The declared name, or `rule-<n>` (1-based).
    pub name: String,
    pub matches: Vec<HttpMatch>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanRoute {
    pub rules: Vec<Rule>,
    pub default: Action,
}

impl Rule {
    /// Whether every request this rule accepts is one an idempotent method makes
    /// (RFC 9110 section 9.2.2), so that a retry cannot run a request twice for harm.
    #[must_use]
    pub fn idempotent_only(&self) -> bool {
        self.matches.iter().all(|m| {
            m.method
                .as_deref()
                .is_some_and(|method| super::IDEMPOTENT_METHODS.contains(&method))
        })
    }

    /// Whether no request can match both rules.
    #[must_use]
    pub fn disjoint(&self, other: &Rule) -> bool {
        self.matches
            .iter()
            .all(|a| other.matches.iter().all(|b| a.disjoint(b)))
    }
}

impl WanRoute {
    /// Whether the ingress gateway must refuse some of the route's requests: it has a
    /// deny rule, or denies by default.
    #[must_use]
    pub fn denies(&self) -> bool {
        self.default == Action::Deny || self.rules.iter().any(|r| r.action == Action::Deny)
    }

    /// The policies the route uses, sorted: exactly those its rules and default name.
    #[must_use]
    pub fn policies(&self) -> Vec<PolicyId> {
        let mut policies: Vec<PolicyId> = self
            .rules
            .iter()
            .map(|r| r.action)
            .chain(std::iter::once(self.default))
            .filter_map(Action::policy)
            .collect();
        policies.sort();
        policies.dedup();
        policies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(kind: MatchKind, value: &str) -> HttpMatch {
        HttpMatch {
            path: StringMatch {
                kind,
                value: value.into(),
            },
            method: None,
            headers: vec![],
            query_params: vec![],
        }
    }

    #[test]
    fn prefixes_cover_whole_segments() {
        let stats = path(MatchKind::PathPrefix, "/stats");
        assert!(path(MatchKind::Exact, "/stats/daily").covered_by(&stats));
        assert!(path(MatchKind::PathPrefix, "/stats/").covered_by(&stats));
        assert!(!path(MatchKind::Exact, "/statsd").covered_by(&stats));
        assert!(path(MatchKind::Exact, "/x").covered_by(&path(MatchKind::PathPrefix, "/")));
        let mut get = path(MatchKind::PathPrefix, "/payment");
        get.method = Some("GET".into());
        assert!(get.covered_by(&path(MatchKind::PathPrefix, "/")));
        assert!(!path(MatchKind::PathPrefix, "/payment").covered_by(&get));
        let regex = path(MatchKind::RegularExpression, "/a.*");
        assert!(regex.covered_by(&regex.clone()));
        assert!(!regex.covered_by(&path(MatchKind::RegularExpression, "/a.+")));
    }

    #[test]
    fn disjoint_only_when_method_path_or_exact_header_tells_apart() {
        let stats = path(MatchKind::PathPrefix, "/stats");
        assert!(stats.disjoint(&path(MatchKind::PathPrefix, "/statsd")));
        assert!(stats.disjoint(&path(MatchKind::Exact, "/payment")));
        assert!(!stats.disjoint(&path(MatchKind::Exact, "/stats/x")));
        assert!(!stats.disjoint(&path(MatchKind::PathPrefix, "/")));
        assert!(!stats.disjoint(&path(MatchKind::RegularExpression, "/x")));
        let mut get = path(MatchKind::PathPrefix, "/");
        get.method = Some("GET".into());
        let mut post = get.clone();
        post.method = Some("POST".into());
        assert!(get.disjoint(&post));
        assert!(!get.disjoint(&stats));
    }

    #[test]
    fn authorization_states_prefixes_as_istio_paths_and_refuses_patterns() {
        let stats = path(MatchKind::PathPrefix, "/stats/");
        assert_eq!(
            stats.authorization().unwrap().paths,
            vec!["/stats".to_string(), "/stats/*".to_string()]
        );
        assert!(path(MatchKind::PathPrefix, "/")
            .authorization()
            .unwrap()
            .paths
            .is_empty());
        assert!(path(MatchKind::RegularExpression, "/a.*")
            .authorization()
            .is_err());
        assert!(path(MatchKind::Exact, "/a*").authorization().is_err());
        assert!(path(MatchKind::Exact, "/{*}").authorization().is_err());
    }
}
