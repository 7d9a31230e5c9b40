//! `mcwan status NS/NAME`: the seed's `mcwanctl status`, answered from the declarations:
//! who exports and imports a service, its WAN policy, tunnel, port, SLA and gateways. Pure:
//! the facts are gathered once into `Status`, which prints as text or serializes as JSON.

use std::fmt::Write;

use serde::Serialize;
use serde_json::Number;

use crate::diagnostic::did_you_mean;
use crate::model::{Model, WanRoute};
use crate::plan::{GlobalService, Plan};

fn describe_match(m: &crate::model::HttpMatch) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        parts.push(method.clone());
    }
    parts.push(format!("{} {}", m.path.kind.as_str(), m.path.value));
    let headers = m.headers.iter().map(|h| ("header", h));
    for (what, named) in headers.chain(m.query_params.iter().map(|q| ("query", q))) {
        let matcher = &named.matcher;
        parts.push(format!(
            "{what} {} {} {}",
            named.name,
            matcher.kind.as_str(),
            matcher.value
        ));
    }
    parts.join(" ")
}

/// What `status` knows of one exported service.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `NAMESPACE/NAME`.
    pub service: String,
    pub host: String,
    pub ports: Vec<Port>,
    #[serde(rename = "type")]
    pub service_type: &'static str,
    pub security: Security,
    pub policies: Vec<Policy>,
    /// The service's WANRoute, when it has one.
    pub route: Option<Route>,
    pub exporters: Vec<Exporter>,
    pub importers: Vec<Importer>,
    /// The clusters that do not import it, each with why.
    #[serde(rename = "notImportedBy")]
    pub not_imported_by: Vec<NotImporter>,
}

#[derive(Debug, Serialize)]
pub struct Port {
    pub name: String,
    pub port: u16,
    pub protocol: String,
}

#[derive(Debug, Serialize)]
pub struct Security {
    /// `mutual` or `plaintext`.
    pub mode: &'static str,
    /// The principals the exporters' gateways admit; `None` in plaintext (anyone).
    pub callers: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub name: String,
    pub tunnel: String,
    /// The TLOC colour, when the vendor or the ClusterSet's `sdwan.colors` gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    pub port: u16,
    pub latency_ms: Number,
    pub jitter_ms: Number,
    pub loss_percent: Number,
}

#[derive(Debug, Serialize)]
pub struct Route {
    /// In order: the first that matches wins.
    pub rules: Vec<Rule>,
    pub default: Action,
}

#[derive(Debug, Serialize)]
pub struct Rule {
    pub name: String,
    /// Each match as `status` prints it (`GET PathPrefix /api header x Exact y`).
    pub matches: Vec<String>,
    pub action: Action,
}

/// Where a WANRoute rule sends a request: over a WAN policy, or nowhere (403).
#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    Send {
        policy: String,
        tunnel: String,
        port: u16,
    },
    Deny,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exporter {
    pub cluster: String,
    pub locality: String,
    pub site: u64,
    /// `address:port`, one per WAN policy.
    pub gateways: Vec<String>,
    pub exposure: &'static str,
    /// The exported Service port, by the name Istio gives it.
    pub port_name: String,
    pub port: u16,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Importer {
    pub cluster: String,
    /// It exports the service too, and sends to its own endpoints first.
    pub local_first: bool,
}

#[derive(Debug, Serialize)]
pub struct NotImporter {
    pub cluster: String,
    pub why: String,
}

impl Status {
    /// The facts of one service, or why there are none (with the closest exported service).
    ///
    /// # Errors
    /// When `service` is not `NS/NAME` or nothing exports it.
    pub fn of(model: &Model, service: &str) -> Result<Status, String> {
        let Some((namespace, name)) = service.split_once('/') else {
            return Err(format!("`{service}` is not NAMESPACE/NAME"));
        };
        let plan = Plan::new(model);
        let Some(global) = plan
            .services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
        else {
            let known: Vec<String> = plan
                .services
                .iter()
                .map(|s| format!("{}/{}", s.namespace, s.name))
                .collect();
            let hint = did_you_mean(service, known.iter().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!("no cluster exports `{service}`{hint}"));
        };
        let ports = global
            .ports
            .iter()
            .map(|p| Port {
                name: p.istio_name.clone(),
                port: p.port,
                protocol: p.istio_protocol.clone(),
            })
            .collect();
        // Exporters agree on their callers (`check::conflicts`), so the first one's speak for all.
        let callers = plan.callers(&model.exports[global.exporters[0]]);
        let security = Security {
            mode: if callers.is_some() {
                "mutual"
            } else {
                "plaintext"
            },
            callers,
        };
        Ok(Status {
            service: format!("{namespace}/{name}"),
            host: plan.host(namespace, name),
            ports,
            service_type: global.service_type.as_str(),
            security,
            policies: policies(model, global),
            route: global.route.as_ref().map(|r| route(model, r)),
            exporters: exporters(model, global),
            importers: importers(model, global),
            not_imported_by: not_importers(model, global),
        })
    }

    /// The facts as `mcwan status` prints them.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "service   {}", self.service);
        let _ = writeln!(out, "host      {}", self.host);
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("{}/{} ({})", p.name, p.port, p.protocol))
            .collect();
        let _ = writeln!(out, "ports     {}", ports.join(", "));
        let _ = writeln!(out, "type      {}", self.service_type);
        let security = match &self.security.callers {
            None => "plaintext: any caller that reaches a gateway".to_string(),
            Some(principals) if principals.is_empty() => {
                "mutual TLS; no caller admitted".to_string()
            }
            Some(principals) => format!("mutual TLS; callers {}", principals.join(", ")),
        };
        let _ = writeln!(out, "security  {security}");
        out.push_str("\nWAN policies\n");
        for p in &self.policies {
            let colour = (p.colour.as_ref())
                .map(|c| format!(" (colour {c})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}: tunnel {}{colour}, port {}, SLA latency {} ms, jitter {} ms, loss {} %",
                p.name, p.tunnel, p.port, p.latency_ms, p.jitter_ms, p.loss_percent
            );
        }
        if let Some(route) = &self.route {
            out.push_str("\nWANRoute rules (first match wins)\n");
            for rule in &route.rules {
                let _ = writeln!(
                    out,
                    "  {:<12} {} -> {}",
                    rule.name,
                    rule.matches.join(" | "),
                    rule.action.text()
                );
            }
            let _ = writeln!(
                out,
                "  {:<12} anything else -> {}",
                "default",
                route.default.text()
            );
        }
        out.push_str("\nexported by\n");
        for e in &self.exporters {
            let _ = writeln!(
                out,
                "  {:<16} {:<24} site {:<6} gateway {}  ({} {}/{})",
                e.cluster,
                e.locality,
                e.site,
                e.gateways.join(", "),
                e.exposure,
                e.port_name,
                e.port
            );
        }
        out.push_str("\nimported by\n");
        for i in &self.importers {
            let how = if i.local_first {
                "local endpoints first, then the other exporters' gateways"
            } else {
                "through the exporters' gateways"
            };
            let _ = writeln!(out, "  {:<16} {how}", i.cluster);
        }
        for n in &self.not_imported_by {
            let _ = writeln!(out, "  (not {}: {})", n.cluster, n.why);
        }
        out
    }
}

impl Action {
    fn text(&self) -> String {
        match self {
            Action::Send {
                policy,
                tunnel,
                port,
            } => format!("{policy} (tunnel {tunnel}, port {port})"),
            Action::Deny => "denied (403)".to_string(),
        }
    }
}

fn policies(model: &Model, global: &GlobalService) -> Vec<Policy> {
    let sdwan = &model.clusterset.sdwan;
    global
        .policies
        .iter()
        .map(|&id| {
            let p = model.policy(id);
            Policy {
                name: p.name.clone(),
                tunnel: p.tunnel.clone(),
                colour: sdwan.color(&p.tunnel).map(str::to_owned),
                port: p.port,
                latency_ms: p.sla.latency_ms.clone(),
                jitter_ms: p.sla.jitter_ms.clone(),
                loss_percent: p.sla.loss_percent.clone(),
            }
        })
        .collect()
}

fn route(model: &Model, route: &WanRoute) -> Route {
    let action = |action: &crate::model::Action| match action.policy() {
        Some(id) => {
            let p = model.policy(id);
            Action::Send {
                policy: p.name.clone(),
                tunnel: p.tunnel.clone(),
                port: p.port,
            }
        }
        None => Action::Deny,
    };
    Route {
        rules: (route.rules.iter())
            .map(|rule| Rule {
                name: rule.name.clone(),
                matches: rule.matches.iter().map(describe_match).collect(),
                action: action(&rule.action),
            })
            .collect(),
        default: action(&route.default),
    }
}

fn exporters(model: &Model, global: &GlobalService) -> Vec<Exporter> {
    (global.exporters.iter())
        .map(|&e| {
            let export = &model.exports[e];
            let cluster = model.clusterset.cluster(export.cluster);
            Exporter {
                cluster: cluster.name.clone(),
                locality: cluster.locality(),
                site: cluster.sdwan_site,
                gateways: (global.policies.iter())
                    .map(|&p| format!("{}:{}", cluster.address, model.policy(p).port))
                    .collect(),
                exposure: cluster.exposure.as_str(),
                port_name: export.port.istio_name().to_string(),
                port: export.port.port,
            }
        })
        .collect()
}

fn importers(model: &Model, global: &GlobalService) -> Vec<Importer> {
    let (namespace, name) = (global.namespace.as_str(), global.name.as_str());
    let exporters = global.exporter_names(model);
    (model.clusterset.clusters.iter())
        .filter(|c| c.imports(namespace, name))
        .map(|c| Importer {
            cluster: c.name.clone(),
            local_first: exporters.contains(&c.name.as_str()),
        })
        .collect()
}

fn not_importers(model: &Model, global: &GlobalService) -> Vec<NotImporter> {
    let namespace = global.namespace.as_str();
    (model.clusterset.clusters.iter())
        .filter(|c| !c.imports(namespace, &global.name))
        .map(|c| NotImporter {
            cluster: c.name.clone(),
            why: if c.namespaces.contains(namespace) {
                "opted out with skipImports".to_string()
            } else {
                format!("has no `{namespace}` namespace")
            },
        })
        .collect()
}
