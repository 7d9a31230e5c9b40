//! A validated WANRoute: ordered L7 rules that pick a WAN policy (or deny) per request.

use serde::Serialize;

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

/// Where a rule sends its requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Action {
    Policy(String),
    Deny,
}

impl Action {
    #[must_use]
    pub fn policy(&self) -> Option<&str> {
        match self {
            Action::Policy(p) => Some(p),
            Action::Deny => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The declared name, or `rule-<n>` (1-based).
    pub name: String,
    pub matches: Vec<HttpMatch>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WanRoute {
    pub rules: Vec<Rule>,
    pub default: Action,
}

impl WanRoute {
    /// The policies the route uses, sorted: exactly those its rules and default name.
    #[must_use]
    pub fn policies(&self) -> Vec<String> {
        let mut policies: Vec<String> = self
            .rules
            .iter()
            .map(|r| &r.action)
            .chain(std::iter::once(&self.default))
            .filter_map(|a| a.policy().map(str::to_owned))
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
}
