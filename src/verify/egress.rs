//! A cluster's egress gateways as its proxies see them, read from the rendered objects and
//! never from mcwan's plan: an Istio `Gateway` (networking.istio.io), the Deployment whose
//! pods it selects, the Service that selects those pods (where sidecars send), the pods'
//! service account (the gateway's identity) and the AuthorizationPolicies that select them.
//! Pure; docs/verify.md cites the upstream rule behind each step.

use std::collections::BTreeMap;

use serde_json::Value;

use super::facts::Authz;
use super::request::Sample;

/// One egress gateway: an Istio Gateway's workload, reached through a Service.
#[derive(Debug)]
pub struct EgressFacts {
    /// `<namespace>/<name>` of the Istio Gateway: what VirtualServices bind in `gateways`.
    pub gateway: String,
    /// `<service>.<namespace>.svc.cluster.local`: the host sidecars route to.
    pub host: String,
    /// The Service's ports: port → target port.
    ports: BTreeMap<u16, u16>,
    servers: Vec<Server>,
    /// The identity of its pods without trust domain, `ns/<namespace>/sa/<account>`.
    pub workload: String,
    pub(super) authz: Authz,
}

/// An Istio Gateway `Server`, as far as verify reads it.
#[derive(Debug)]
struct Server {
    port: u16,
    protocol: String,
    tls_mode: Option<String>,
    /// `spec.servers[].hosts` with `./` made the Gateway's namespace and `*/` dropped, as
    /// Istio sanitizes them (pilot/pkg/model/gateway.go `sanitizeServerHostNamespace`,
    /// 567-581 / 654-675 at 1.26.0 / 1.30.3).
    hosts: Vec<String>,
}

/// What the sidecar originates to the egress gateway, from the DestinationRule subset.
#[derive(Debug)]
pub struct Origination<'a> {
    /// The Service port the route names.
    pub port: u16,
    pub mode: Option<&'a str>,
    /// The SNI the sidecar sends: the rule's `sni`, else Istio's default, the cluster name.
    pub sni: String,
    /// The identities the sidecar accepts from the gateway; empty checks none.
    pub subject_alt_names: &'a [String],
}

/// Whether the labels include every `selector` label (Istio's `labels.Instance.SubsetOf`).
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn port(value: &Value) -> Option<u16> {
    value.as_u64().and_then(|p| u16::try_from(p).ok())
}

/// Whether a Gateway or VirtualService host pattern takes `host`: exact, `*`, or a `*.`
/// suffix (pkg/config/host/name.go `Matches`).
fn host_matches(pattern: &str, host: &str) -> bool {
    pattern.eq_ignore_ascii_case(host)
        || pattern == "*"
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| suffix.starts_with('.') && host.ends_with(suffix))
}

impl EgressFacts {
    /// Every egress gateway among a cluster's objects: each Istio Gateway with a selector,
    /// each Deployment whose pods it selects (any namespace: Istio's default, without
    /// `PILOT_SCOPE_GATEWAY_TO_NAMESPACE`: pilot/pkg/model/push_context.go `mergeGateways`,
    /// 2397-2426 / 2425-2455 at 1.26.0 / 1.30.3), and each Service
    /// of that namespace that selects the same pods.
    #[must_use]
    pub fn all(objects: &[Value]) -> Vec<Self> {
        let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
        let mut out = Vec::new();
        let istio = of_kind("Gateway")
            .filter(|g| text(&g["apiVersion"]).starts_with("networking.istio.io/"));
        for gateway in istio {
            let pods = of_kind("Deployment").filter(|d| {
                selects(
                    &gateway["spec"]["selector"],
                    &d["spec"]["template"]["metadata"]["labels"],
                )
            });
            for deployment in pods {
                let namespace = text(&deployment["metadata"]["namespace"]);
                let labels = &deployment["spec"]["template"]["metadata"]["labels"];
                let services = of_kind("Service").filter(|s| {
                    s["metadata"]["namespace"] == namespace
                        && selects(&s["spec"]["selector"], labels)
                });
                for service in services {
                    out.push(Self::of(gateway, deployment, service, objects));
                }
            }
        }
        out
    }

    fn of(gateway: &Value, deployment: &Value, service: &Value, objects: &[Value]) -> Self {
        let gateway_namespace = text(&gateway["metadata"]["namespace"]);
        let namespace = text(&deployment["metadata"]["namespace"]);
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let servers = list(&gateway["spec"]["servers"])
            .iter()
            .filter_map(|s| {
                Some(Server {
                    port: port(&s["port"]["number"])?,
                    protocol: text(&s["port"]["protocol"]).to_ascii_uppercase(),
                    tls_mode: s["tls"]["mode"].as_str().map(str::to_owned),
                    hosts: list(&s["hosts"])
                        .iter()
                        .map(|h| match text(h).split_once('/') {
                            Some((".", host)) => format!("{gateway_namespace}/{host}"),
                            Some(("*", host)) => host.to_string(),
                            _ => text(h).to_string(),
                        })
                        .collect(),
                })
            })
            .collect();
        let ports = list(&service["spec"]["ports"])
            .iter()
            .filter_map(|p| {
                let number = port(&p["port"])?;
                // A named target port is resolved against the pods: taken as the port.
                Some((number, port(&p["targetPort"]).unwrap_or(number)))
            })
            .collect();
        // Istio attaches a policy with no targetRefs whose selector, if any, the pods'
        // labels include (pilot/pkg/model/policyattachment.go `isSelected` and
        // `ShouldAttachPolicy`, 109-112 and 123-137 at 1.26.0 and 1.30.3).
        let policies: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "AuthorizationPolicy" && o["metadata"]["namespace"] == namespace
            })
            .filter(|o| {
                list(&o["spec"]["targetRefs"]).is_empty() && o["spec"]["targetRef"].is_null()
            })
            .filter(|o| {
                let selector = &o["spec"]["selector"]["matchLabels"];
                selector.is_null() || selects(selector, labels)
            })
            .collect();
        let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        EgressFacts {
            gateway: format!("{gateway_namespace}/{}", text(&gateway["metadata"]["name"])),
            host: format!(
                "{}.{namespace}.svc.cluster.local",
                text(&service["metadata"]["name"])
            ),
            ports,
            servers,
            workload: format!("ns/{namespace}/sa/{account}"),
            authz: Authz::of(&policies),
        }
    }

    /// The Service's only port, for a route that names none.
    #[must_use]
    pub fn only_port(&self) -> Option<u16> {
        match self.ports.keys().collect::<Vec<_>>().as_slice() {
            [port] => Some(**port),
            _ => None,
        }
    }

    /// Whether its AuthorizationPolicies admit the request from a peer with this identity.
    #[must_use]
    pub fn admits(&self, host: &str, sample: &Sample, principal: Option<&str>) -> bool {
        self.authz.admits(host, sample, principal)
    }

    /// Why a request for `host` (bound by a VirtualService of `namespace`), sent with this
    /// TLS, does not get past the egress gateway's listener: `(result, why)`, or `None`.
    ///
    /// - A Service port, and a server on it (Istio listens on the target port).
    /// - Only an `HTTPS` server in `ISTIO_MUTUAL` is modelled: what clients' sidecars
    ///   originate, and what gives the gateway the caller's identity.
    /// - The sidecar must originate Istio mutual TLS.
    /// - The server's filter chain matches the SNI against its hosts without namespace
    ///   (pilot/pkg/model/gateway.go `GetSNIHostsForServer`, 454-469 / 541-556, as the
    ///   HTTPS filter chain's server names, core/gateway.go:677 / 696): another SNI fails the
    ///   handshake.
    /// - The sidecar accepts the gateway only when its certificate names one of the
    ///   `subjectAltNames` (`identity`: `spiffe://…`, if the trust domain is known).
    /// - The SNI must be the request's host, or one host's server decides for another.
    /// - The server binds the VirtualService only when it lists the host for its namespace
    ///   or for `*` (pkg/config/host/names.go `NamesForNamespace`, 120-133, applied in
    ///   core/gateway.go:426 / 441); else 404 (528-536 / 547-555).
    #[must_use]
    pub fn refuses(
        &self,
        at: &str,
        tls: &Origination,
        host: &str,
        namespace: Option<&str>,
        identity: Option<&str>,
    ) -> Option<(String, String)> {
        let port = tls.port;
        let Some(target) = self.ports.get(&port) else {
            return Some((
                "503 at the sidecar".into(),
                format!("{at}'s Service `{}` has no port {port}", self.host),
            ));
        };
        let Some(server) = self
            .servers
            .iter()
            .find(|s| s.port == *target || s.port == port)
        else {
            return Some((
                format!("no listener on {port} at {at}"),
                format!("{at} has no server on port {port}"),
            ));
        };
        let handshake = format!("TLS handshake fails at {at}");
        let mode = server.tls_mode.as_deref().unwrap_or("none");
        if server.protocol != "HTTPS" || mode != "ISTIO_MUTUAL" {
            return Some((
                format!("{at}'s server on {port} is not modelled"),
                format!("{at}'s server on port {port} is {} with TLS mode {mode}: clients' sidecars reach an egress gateway in Istio mutual TLS (HTTPS, ISTIO_MUTUAL), and verify cannot tell what this one admits", server.protocol),
            ));
        }
        if tls.mode != Some("ISTIO_MUTUAL") {
            return Some((
                handshake,
                format!(
                    "the sidecar sends {} to {at}'s Istio mutual TLS server on port {port}",
                    tls.mode
                        .map_or_else(|| "plaintext".into(), |m| format!("TLS {m}"))
                ),
            ));
        }
        let sni = tls.sni.as_str();
        let names = || {
            server
                .hosts
                .iter()
                .map(|h| h.split_once('/').map_or(h.as_str(), |(_, n)| n))
        };
        if !names().any(|name| host_matches(name, sni)) {
            return Some((
                handshake,
                format!("{at}'s server on port {port} lists no host for the SNI `{sni}` the sidecar sends"),
            ));
        }
        if let Some(identity) = identity {
            let accepted = tls.subject_alt_names;
            if !accepted.is_empty() && !accepted.iter().any(|n| n == identity) {
                return Some((
                    handshake,
                    format!(
                        "the sidecar accepts only {} as {at}, whose certificate names {identity}",
                        accepted.join(", ")
                    ),
                ));
            }
        }
        if !sni.eq_ignore_ascii_case(host) {
            return Some((
                format!("SNI `{sni}` at {at}"),
                format!("the sidecar sends SNI `{sni}` for `{host}`: {at} must be reached with the request's host"),
            ));
        }
        // Without a VirtualService for the host, the gateway's 404 says it.
        let namespace = namespace?;
        let bound = server.hosts.iter().any(|h| match h.split_once('/') {
            Some((ns, name)) => ns == namespace && host_matches(name, host),
            None => host_matches(h, host),
        });
        if !bound {
            return Some((
                format!("404 at {at}"),
                format!("{at}'s server on port {port} does not list `{namespace}/{host}`, so no route of the VirtualService applies there"),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(hosts: &[&str]) -> Vec<Value> {
        vec![
            json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                "metadata": {"name": "eg", "namespace": "gw"},
                "spec": {"selector": {"app": "eg"}, "servers": [{"port": {"number": 8443, "protocol": "HTTPS"}, "tls": {"mode": "ISTIO_MUTUAL"}, "hosts": hosts}]}}),
            json!({"kind": "Deployment", "metadata": {"name": "eg", "namespace": "gw"},
                "spec": {"template": {"metadata": {"labels": {"app": "eg", "x": "y"}}, "spec": {"serviceAccountName": "eg-sa"}}}}),
            json!({"kind": "Service", "metadata": {"name": "eg", "namespace": "gw"},
                "spec": {"selector": {"app": "eg"}, "ports": [{"port": 8443}]}}),
            // Another namespace's Service does not select the pods.
            json!({"kind": "Service", "metadata": {"name": "eg", "namespace": "other"},
                "spec": {"selector": {"app": "eg"}, "ports": [{"port": 8443}]}}),
        ]
    }

    fn refused(hosts: &[&str], sni: &str, namespace: &str) -> Option<String> {
        let egress = EgressFacts::all(&objects(hosts));
        assert_eq!(egress.len(), 1);
        assert_eq!(egress[0].gateway, "gw/eg");
        assert_eq!(egress[0].host, "eg.gw.svc.cluster.local");
        assert_eq!(egress[0].workload, "ns/gw/sa/eg-sa");
        let tls = Origination {
            port: 8443,
            mode: Some("ISTIO_MUTUAL"),
            sni: sni.into(),
            subject_alt_names: &[],
        };
        egress[0]
            .refuses("egress", &tls, "a.example", Some(namespace), None)
            .map(|(result, _)| result)
    }

    /// The server's SNI match ignores the hosts' namespaces; binding the VirtualService
    /// takes its namespace, or `*` (gateway.go `GetSNIHostsForServer`, names.go
    /// `NamesForNamespace`).
    #[test]
    fn the_server_matches_sni_by_host_and_binds_by_namespace() {
        assert_eq!(refused(&["shop/a.example"], "a.example", "shop"), None);
        assert_eq!(refused(&["*/a.example"], "a.example", "shop"), None);
        assert_eq!(refused(&["*/*.example"], "a.example", "shop"), None);
        assert_eq!(
            refused(&["other/a.example"], "a.example", "shop").as_deref(),
            Some("404 at egress")
        );
        assert_eq!(
            refused(&["shop/b.example"], "a.example", "shop").as_deref(),
            Some("TLS handshake fails at egress")
        );
        assert_eq!(
            refused(&["shop/b.example"], "b.example", "shop").as_deref(),
            Some("SNI `b.example` at egress")
        );
    }
}
