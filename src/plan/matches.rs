//! A WANRoute match in the two languages the output speaks: Gateway API's
//! `HTTPRouteMatch` (the ingress) and Istio's `HTTPMatchRequest` (the sender's sidecar).
//! Typed, so that a field is spelled once; pure.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::model::{HttpMatch, MatchKind, NamedMatch, StringMatch};

/// A Gateway API `HTTPRouteMatch`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    pub path: GatewayMatch,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NamedGatewayMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NamedGatewayMatch>,
}

/// A Gateway API path match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GatewayMatch {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

/// A Gateway API header or query parameter match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamedGatewayMatch {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
}

impl RouteMatch {
    /// Every request.
    #[must_use]
    pub fn everything() -> Self {
        RouteMatch {
            path: GatewayMatch {
                kind: MatchKind::PathPrefix.as_str(),
                value: "/".into(),
            },
            method: None,
            headers: Vec::new(),
            query_params: Vec::new(),
        }
    }

    /// `m`, as the ingress matches it.
    #[must_use]
    pub fn of(m: &HttpMatch) -> Self {
        let named = |list: &[NamedMatch]| {
            list.iter()
                .map(|n| NamedGatewayMatch {
                    kind: n.matcher.kind.as_str(),
                    name: n.name.clone(),
                    value: n.matcher.value.clone(),
                })
                .collect()
        };
        RouteMatch {
            path: GatewayMatch {
                kind: m.path.kind.as_str(),
                value: m.path.value.clone(),
            },
            method: m.method.clone(),
            headers: named(&m.headers),
            query_params: named(&m.query_params),
        }
    }
}

/// An Istio `HTTPMatchRequest`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRequest {
    pub uri: IstioMatch,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<IstioMatch>,
    #[serde(skip_serializing_if = "Named::is_empty")]
    pub headers: Named,
    #[serde(skip_serializing_if = "Named::is_empty")]
    pub query_params: Named,
    /// The proxies the match applies to, by Istio Gateway (`mesh`: sidecars); empty: all
    /// the VirtualService is bound to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}

/// An Istio `StringMatch`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IstioMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

impl IstioMatch {
    fn of(s: &StringMatch) -> Self {
        match s.kind {
            MatchKind::Exact => IstioMatch::Exact(s.value.clone()),
            MatchKind::PathPrefix => IstioMatch::Prefix(s.value.clone()),
            MatchKind::RegularExpression => IstioMatch::Regex(s.value.clone()),
        }
    }
}

/// Istio's map of header (or query parameter) name to match, in the order first named;
/// a name named again keeps its place and takes the later match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Named(Vec<(String, IstioMatch)>);

impl Named {
    fn of(list: &[NamedMatch]) -> Self {
        let mut out: Vec<(String, IstioMatch)> = Vec::new();
        for n in list {
            let matcher = IstioMatch::of(&n.matcher);
            match out.iter_mut().find(|(name, _)| *name == n.name) {
                Some(entry) => entry.1 = matcher,
                None => out.push((n.name.clone(), matcher)),
            }
        }
        Named(out)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, matcher) in &self.0 {
            map.serialize_entry(name, matcher)?;
        }
        map.end()
    }
}

impl MatchRequest {
    /// `m` as the sidecar matches it. A Gateway API path prefix matches whole segments
    /// (`/pay` is not a prefix of `/payment`), Istio's `prefix` does not; so
    /// `PathPrefix /pay` becomes two requests: `exact /pay` or `prefix /pay/`.
    #[must_use]
    pub fn of(m: &HttpMatch) -> Vec<Self> {
        let uris = match m.path.kind {
            MatchKind::PathPrefix => {
                let prefix = m.path.value.trim_end_matches('/');
                if prefix.is_empty() {
                    vec![IstioMatch::Prefix("/".into())]
                } else {
                    vec![
                        IstioMatch::Exact(prefix.into()),
                        IstioMatch::Prefix(format!("{prefix}/")),
                    ]
                }
            }
            _ => vec![IstioMatch::of(&m.path)],
        };
        uris.into_iter()
            .map(|uri| MatchRequest {
                uri,
                method: m.method.clone().map(IstioMatch::Exact),
                headers: Named::of(&m.headers),
                query_params: Named::of(&m.query_params),
                gateways: Vec::new(),
            })
            .collect()
    }
}
