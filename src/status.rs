//! `mcwan status NS/NAME`: the seed's `mcwanctl status`, answered from the declarations:
//! who exports and imports a service, its WAN policy, tunnel, port, SLA and gateways. Pure.

use std::fmt::Write;

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

/// Describes one service, or says why it cannot (with the closest exported service).
///
/// # Errors
/// When `service` is not `NS/NAME` or nothing exports it.
pub fn describe(model: &Model, service: &str) -> Result<String, String> {
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
    let mut out = String::new();
    let _ = writeln!(out, "service   {namespace}/{name}");
    let _ = writeln!(out, "host      {}", plan.host(namespace, name));
    let ports: Vec<String> = global
        .ports
        .iter()
        .map(|p| format!("{}/{} ({})", p.istio_name, p.port, p.istio_protocol))
        .collect();
    let _ = writeln!(out, "ports     {}", ports.join(", "));
    let _ = writeln!(out, "type      {}", global.service_type.as_str());
    // Exporters agree on their callers (`check::conflicts`), so the first one's speak for all.
    let security = match plan.callers(&model.exports[global.exporters[0]]) {
        None => "plaintext: any caller that reaches a gateway".to_string(),
        Some(principals) if principals.is_empty() => "mutual TLS; no caller admitted".to_string(),
        Some(principals) => format!("mutual TLS; callers {}", principals.join(", ")),
    };
    let _ = writeln!(out, "security  {security}");
    policies(model, global, &mut out);
    if let Some(route) = &global.route {
        wan_route(model, route, &mut out);
    }
    exporters(model, global, &mut out);
    importers(model, global, &mut out);
    Ok(out)
}

fn policies(model: &Model, global: &GlobalService, out: &mut String) {
    let sdwan = &model.clusterset.sdwan;
    out.push_str("\nWAN policies\n");
    for &id in &global.policies {
        let p = model.policy(id);
        let policy = &p.name;
        let _ = writeln!(
            out,
            "  {policy}: tunnel {} (colour {}), port {}, SLA latency {} ms, jitter {} ms, loss {} %",
            p.tunnel,
            sdwan.color(&p.tunnel),
            p.port,
            p.sla.latency_ms,
            p.sla.jitter_ms,
            p.sla.loss_percent
        );
    }
}

fn wan_route(model: &Model, route: &WanRoute, out: &mut String) {
    out.push_str("\nWANRoute rules (first match wins)\n");
    let describe = |action: &crate::model::Action| match action.policy() {
        Some(id) => {
            let p = model.policy(id);
            format!("{} (tunnel {}, port {})", p.name, p.tunnel, p.port)
        }
        None => "denied (403)".to_string(),
    };
    for rule in &route.rules {
        let matches: Vec<String> = rule.matches.iter().map(describe_match).collect();
        let _ = writeln!(
            out,
            "  {:<12} {} -> {}",
            rule.name,
            matches.join(" | "),
            describe(&rule.action)
        );
    }
    let _ = writeln!(
        out,
        "  {:<12} anything else -> {}",
        "default",
        describe(&route.default)
    );
}

fn exporters(model: &Model, global: &GlobalService, out: &mut String) {
    out.push_str("\nexported by\n");
    for &e in &global.exporters {
        let export = &model.exports[e];
        let cluster = model.clusterset.cluster(export.cluster);
        let gateways: Vec<String> = global
            .policies
            .iter()
            .map(|&p| format!("{}:{}", cluster.address, model.policy(p).port))
            .collect();
        let _ = writeln!(
            out,
            "  {:<16} {:<24} site {:<6} gateway {}  ({} {}/{})",
            cluster.name,
            cluster.locality(),
            cluster.sdwan_site,
            gateways.join(", "),
            cluster.exposure.as_str(),
            export.port.istio_name(),
            export.port.port
        );
    }
}

fn importers(model: &Model, global: &GlobalService, out: &mut String) {
    let clusters = &model.clusterset.clusters;
    let (namespace, name) = (global.namespace.as_str(), global.name.as_str());
    out.push_str("\nimported by\n");
    let importers: Vec<&str> = clusters
        .iter()
        .filter(|c| c.imports(namespace, name))
        .map(|c| c.name.as_str())
        .collect();
    for importer in &importers {
        let local = global
            .exporters
            .iter()
            .any(|&e| model.clusterset.cluster(model.exports[e].cluster).name == *importer);
        let how = if local {
            "local endpoints first, then the other exporters' gateways"
        } else {
            "through the exporters' gateways"
        };
        let _ = writeln!(out, "  {importer:<16} {how}");
    }
    for cluster in clusters.iter().filter(|c| !c.imports(namespace, name)) {
        let why = if cluster.namespaces.contains(namespace) {
            "opted out with skipImports".to_string()
        } else {
            format!("has no `{namespace}` namespace")
        };
        let _ = writeln!(out, "  (not {}: {why})", cluster.name);
    }
}
