//! Pass 3: WAN policies. Valid unique names, one port per policy and no shared port, ports
//! the gateways can open, and cluster copies that equal the global definition field by field.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::check::documents::{quoted, Declarations};
use crate::check::names::{is_dns1123_label, label_hint};
use crate::check::topology::Topology;
use crate::diagnostic::Location;
use crate::diagnostic::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::model::{Exposure, Millis, Resilience, Sla, WanPolicy};
use crate::schema::field_path;
use crate::source::Sources;
use crate::spec;
use crate::value_diff::leaf_differences;

/// Ports Istio's proxies listen on themselves (admin, capture, HBONE, status, telemetry).
const ISTIO_RESERVED_PORTS: std::ops::RangeInclusive<u16> = 15000..=15090;
/// The default Kubernetes NodePort range.
const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// The global WAN policies by name, with the document of each.
/// Gateway API's limit on listeners in one Gateway.
const MAX_LISTENERS: usize = 64;

pub fn check(
    sources: &Sources,
    declarations: &Declarations,
    topology: &Topology,
    diagnostics: &mut Diagnostics,
) -> BTreeMap<String, (WanPolicy, usize)> {
    let mut policies: BTreeMap<String, (WanPolicy, usize)> = BTreeMap::new();
    for raw in &declarations.policies {
        let name = &raw.value.metadata.name;
        let at = |pointer: &str| Some(sources.at(raw.doc, pointer));
        if !is_dns1123_label(name) {
            diagnostics.push(
                Diagnostic::error(
                    Code::InvalidName,
                    at("/metadata/name"),
                    format!("WAN policy name `{name}` is not a DNS-1123 label"),
                )
                .hint(format!(
                    "{}; the name becomes a Gateway listener and an Istio subset",
                    label_hint(name)
                )),
            );
            continue;
        }
        if let Some((_, first)) = policies.get(name) {
            diagnostics.push(
                Diagnostic::error(
                    Code::ObjectDuplicate,
                    at("/metadata/name"),
                    format!("WAN policy `{name}` is declared twice"),
                )
                .also(
                    Some(sources.at(*first, "/metadata/name")),
                    "first declared here",
                ),
            );
            continue;
        }
        let spec = &raw.value.spec;
        let sla = Sla {
            jitter_ms: spec.sla.jitter_ms.clone(),
            latency_ms: spec.sla.latency_ms.clone(),
            loss_percent: spec.sla.loss_percent.clone(),
        };
        let resilience = resilience(
            &spec.resilience,
            &sla,
            &|p| sources.at(raw.doc, p),
            diagnostics,
        );
        let policy = WanPolicy {
            name: name.clone(),
            tunnel: spec.tunnel.clone(),
            port: spec.port,
            sla,
            fallback: spec.fallback.clone(),
            resilience,
        };
        policies.insert(name.clone(), (policy, raw.doc));
    }

    check_fallbacks(sources, &policies, diagnostics);
    check_ports(sources, &policies, topology, diagnostics);
    check_fabric(sources, &policies, topology, diagnostics);
    check_copies(sources, declarations, &policies, diagnostics);
    // Each policy is a listener of every ingress Gateway, which Gateway API caps at 64
    // (apis/v1/gateway_types.go, `Listeners` MaxItems, v1.2.0 L188-189).
    if let Some((name, (_, doc))) = policies.iter().nth(MAX_LISTENERS) {
        diagnostics.push(
            Diagnostic::error(
                Code::WanpolicyTooMany,
                Some(sources.at(*doc, "/metadata/name")),
                format!("WAN policy `{name}` is one of {} WAN policies; a Gateway has at most {MAX_LISTENERS} listeners, one per policy", policies.len()),
            )
            .hint("merge policies that share a tunnel and SLA; the SD-WAN classifies by port, so each policy needs its own listener"),
        );
    }

    if let Some(default) = &topology.default_policy {
        if !policies.contains_key(&default.value)
            && !declarations.is_broken("WANPolicy", None, "", &default.value)
        {
            let mut diagnostic = Diagnostic::error(
                Code::DefaultPolicyUnknown,
                Some(sources.at(default.doc, "/spec/defaultWANPolicy")),
                format!("default WAN policy `{}` is not declared", default.value),
            );
            if let Some(s) = did_you_mean(&default.value, policies.keys().map(String::as_str)) {
                diagnostic = diagnostic.hint(format!("did you mean `{s}`?"));
            }
            diagnostics.push(diagnostic);
        }
    }
    policies
}

fn check_ports(
    sources: &Sources,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    topology: &Topology,
    diagnostics: &mut Diagnostics,
) {
    let node_port_clusters: Vec<String> = topology
        .clusterset
        .clusters
        .iter()
        .filter(|c| c.exposure == Exposure::NodePort)
        .map(|c| c.name.clone())
        .collect();
    let mut by_port: BTreeMap<u16, &str> = BTreeMap::new();
    for (name, (policy, doc)) in policies {
        let at = Some(sources.at(*doc, "/spec/port"));
        if let Some(other) = by_port.get(&policy.port) {
            diagnostics.push(
                Diagnostic::error(
                    Code::WanpolicyPortClash,
                    at.clone(),
                    format!("WAN policies `{other}` and `{name}` both use port {}", policy.port),
                )
                .also(Some(sources.at(policies[*other].1, "/spec/port")), format!("`{other}` uses it here"))
                .hint("the SD-WAN classifies traffic by destination port, so every policy needs its own"),
            );
        } else {
            by_port.insert(policy.port, name);
        }
        if ISTIO_RESERVED_PORTS.contains(&policy.port) {
            diagnostics.push(
                Diagnostic::error(
                    Code::WanpolicyPortReserved,
                    at.clone(),
                    format!(
                        "port {} of WAN policy `{name}` is in Istio's reserved range 15000-15090",
                        policy.port
                    ),
                )
                .hint("Istio's proxies listen on these ports themselves; pick another port"),
            );
        }
        if !node_port_clusters.is_empty() && !NODE_PORT_RANGE.contains(&policy.port) {
            diagnostics.push(
                Diagnostic::error(
                    Code::WanpolicyPortNotNodeport,
                    at,
                    format!(
                        "port {} of WAN policy `{name}` is outside the NodePort range 30000-32767, but {} expose their gateway as NodePort",
                        policy.port,
                        quoted(&node_port_clusters)
                    ),
                )
                .hint("NodePort gateways pin each listener's nodePort to its policy port; choose a port in 30000-32767"),
            );
        }
    }
}

/// The SLA-derived defaults, replaced field by field by what `spec.resilience` declares.
fn resilience(
    declared: &spec::Resilience,
    sla: &Sla,
    at: &dyn Fn(&str) -> Location,
    diagnostics: &mut Diagnostics,
) -> Resilience {
    let mut out = Resilience::derive(sla);
    let mut duration = |value: &Option<String>, pointer: &str, target: &mut Millis| {
        if let Some(text) = value {
            match Millis::parse(text) {
                Some(parsed) => *target = parsed,
                None => diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        Some(at(pointer)),
                        format!("`{text}` is not a duration between 1ms and 24h"),
                    )
                    .hint("write a number and a unit: `250ms`, `1.5s`, `2m`"),
                ),
            }
        }
    };
    let base = "/spec/resilience";
    duration(
        &declared.timeout,
        &format!("{base}/timeout"),
        &mut out.timeout,
    );
    duration(
        &declared.retries.per_try_timeout,
        &format!("{base}/retries/perTryTimeout"),
        &mut out.per_try_timeout,
    );
    duration(
        &declared.outlier_detection.interval,
        &format!("{base}/outlierDetection/interval"),
        &mut out.interval,
    );
    duration(
        &declared.outlier_detection.base_ejection_time,
        &format!("{base}/outlierDetection/baseEjectionTime"),
        &mut out.base_ejection_time,
    );
    duration(
        &declared.connection_pool.connect_timeout,
        &format!("{base}/connectionPool/connectTimeout"),
        &mut out.connect_timeout,
    );
    if let Some(attempts) = declared.retries.attempts {
        out.attempts = attempts;
    }
    // As for the annotations: changed retries keep a timeout that covers every try.
    let retries_changed =
        declared.retries.attempts.is_some() || declared.retries.per_try_timeout.is_some();
    if declared.timeout.is_none() && retries_changed {
        out.timeout = Millis(out.per_try_timeout.0 * u64::from(out.attempts + 1));
    }
    if let Some(retry_on) = &declared.retries.retry_on {
        out.retry_on = Some(retry_on.clone());
    }
    if let Some(errors) = declared.outlier_detection.consecutive_gateway_errors {
        out.consecutive_gateway_errors = errors;
    }
    if let Some(errors) = declared.outlier_detection.consecutive_5xx_errors {
        out.consecutive_5xx_errors = errors;
    }
    out
}

/// A fallback names another declared policy.
fn check_fallbacks(
    sources: &Sources,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    diagnostics: &mut Diagnostics,
) {
    for (name, (policy, doc)) in policies {
        let Some(fallback) = &policy.fallback else {
            continue;
        };
        if fallback == name || !policies.contains_key(fallback) {
            let mut diagnostic = Diagnostic::error(
                Code::WanpolicyUnknownFallback,
                Some(sources.at(*doc, "/spec/fallback")),
                format!("WAN policy `{name}` falls back to `{fallback}`, which is not another declared WAN policy"),
            );
            if let Some(s) = did_you_mean(
                fallback,
                policies.keys().map(String::as_str).filter(|p| p != name),
            ) {
                diagnostic = diagnostic.hint(format!("did you mean `{s}`?"));
            }
            diagnostics.push(diagnostic);
        }
    }
}

/// The colours a Cisco SD-WAN TLOC may have; a tunnel maps to one of them.
pub const TLOC_COLORS: &[&str] = &[
    "3g",
    "biz-internet",
    "blue",
    "bronze",
    "custom1",
    "custom2",
    "custom3",
    "default",
    "gold",
    "green",
    "lte",
    "metro-ethernet",
    "mpls",
    "private1",
    "private2",
    "private3",
    "private4",
    "private5",
    "private6",
    "public-internet",
    "red",
    "silver",
];

/// Every tunnel needs a TLOC colour for the fabric's policy, and vendors take the SLA in
/// whole numbers within fixed ranges.
fn check_fabric(
    sources: &Sources,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    topology: &Topology,
    diagnostics: &mut Diagnostics,
) {
    let sdwan = &topology.clusterset.sdwan;
    for (name, (policy, doc)) in policies {
        let color = sdwan.color(&policy.tunnel);
        if !TLOC_COLORS.contains(&color) {
            let mut diagnostic = Diagnostic::error(
                Code::SdwanTunnelNoColor,
                Some(sources.at(*doc, "/spec/tunnel")),
                format!(
                    "tunnel `{}` of WAN policy `{name}` has no SD-WAN colour",
                    policy.tunnel
                ),
            );
            diagnostic = match did_you_mean(&policy.tunnel, TLOC_COLORS.iter().copied()) {
                Some(s) => diagnostic.hint(format!("did you mean the colour `{s}`? Otherwise map it in the ClusterSet: `sdwan.colors.{}: <colour>`", policy.tunnel)),
                None => diagnostic.hint(format!("map it in the ClusterSet: `sdwan.colors.{}: <colour>`, e.g. `biz-internet`", policy.tunnel)),
            };
            diagnostics.push(diagnostic);
        }
        let whole = crate::fabric::WholeSla::of(&policy.sla);
        if !whole.is_exact(&policy.sla) {
            diagnostics.push(
                Diagnostic::warning(
                    Code::SdwanSlaRounded,
                    Some(sources.at(*doc, "/spec/sla")),
                    format!(
                        "the SLA of WAN policy `{name}` is not whole numbers within vendor ranges; the Cisco policy uses latency {} ms, loss {} %, jitter {} ms",
                        whole.latency_ms, whole.loss_percent, whole.jitter_ms
                    ),
                )
                .hint("Cisco SD-WAN SLA classes take whole numbers: latency and jitter 1-1000 ms, loss 1-100 %"),
            );
        }
    }
}

fn check_copies(
    sources: &Sources,
    declarations: &Declarations,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    diagnostics: &mut Diagnostics,
) {
    let mut orphans: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (cluster, copy) in &declarations.policy_copies {
        let name = copy.value.metadata.name.as_str();
        if let Some(first) = seen.insert((cluster, name), copy.doc) {
            diagnostics.push(
                Diagnostic::error(
                    Code::ObjectDuplicate,
                    Some(sources.at(copy.doc, "/metadata/name")),
                    format!("WAN policy `{name}` is declared twice in cluster `{cluster}`"),
                )
                .also(
                    Some(sources.at(first, "/metadata/name")),
                    "first declared here",
                ),
            );
            continue;
        }
        let Some((_, global_doc)) = policies.get(name) else {
            orphans.entry(name).or_default().push((cluster, copy.doc));
            continue;
        };
        let differences = leaf_differences(
            &sources.documents[copy.doc].value["spec"],
            &sources.documents[*global_doc].value["spec"],
        );
        for (pointer, here, global) in differences {
            let (pointer, here, global) = (format!("/spec{pointer}"), show(&here), show(&global));
            diagnostics.push(
                Diagnostic::error(
                    Code::WanpolicyInconsistent,
                    Some(sources.at(copy.doc, &pointer)),
                    format!(
                        "WAN policy `{name}` in cluster `{cluster}` differs from the global definition: `{}` is {here} here but {global} globally",
                        field_path(&pointer)
                    ),
                )
                .also(Some(sources.at(*global_doc, &pointer)), "global definition")
                .hint("every cluster must see the same WAN policy; fix or delete the copy (mcwan emits the global one everywhere)"),
            );
        }
    }
    for (name, copies) in orphans {
        let clusters: Vec<String> = copies.iter().map(|(c, _)| (*c).to_string()).collect();
        let mut diagnostic = Diagnostic::error(
            Code::WanpolicyMissingGlobal,
            Some(sources.at(copies[0].1, "/metadata/name")),
            format!(
                "WAN policy `{name}` is declared only in {} {}, so the other clusters lack it",
                if clusters.len() == 1 {
                    "cluster"
                } else {
                    "clusters"
                },
                quoted(&clusters)
            ),
        )
        .hint("move the definition to `policies/`, so that every cluster gets the same policy");
        for (cluster, doc) in &copies[1..] {
            diagnostic = diagnostic.also(
                Some(sources.at(*doc, "/metadata/name")),
                format!("also in cluster `{cluster}`"),
            );
        }
        diagnostics.push(diagnostic);
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "absent".to_string(),
        other => format!("`{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::TLOC_COLORS;

    #[test]
    fn colours_match_the_clusterset_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/input/clusterset.json")).unwrap();
        let listed = &schema["properties"]["spec"]["properties"]["sdwan"]["properties"]["colors"]
            ["additionalProperties"]["enum"];
        assert_eq!(listed, &serde_json::json!(TLOC_COLORS));
    }
}
