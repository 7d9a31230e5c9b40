//! Pass 3: WAN policies. Valid unique names, one port per policy and no shared port, ports
//! the gateways can open, and cluster copies that equal the global definition field by field.

use std::collections::BTreeMap;

use crate::check::documents::Declarations;
use crate::check::names::is_dns1123_label;
use crate::check::pointer::{fields, Input};
use crate::check::topology::Topology;
use crate::check::{policy_id, policy_refused, Policies};
use crate::diagnostic::{Diagnostics, Location};
use crate::diags::{self, Invalid, Name};
use crate::model::{Exposure, Millis, Resilience, SecurityMode, Sla, Vendor, WanPolicy};
use crate::spec;
use crate::value_diff::leaf_differences;

/// Ports Istio's proxies listen on themselves (admin, capture, HBONE, status, telemetry).
const ISTIO_RESERVED_PORTS: std::ops::RangeInclusive<u16> = 15000..=15090;
/// The default Kubernetes NodePort range.
const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Gateway API's limit on listeners in one Gateway.
const MAX_LISTENERS: usize = 64;

/// The WAN policies pass's inputs and its sink.
pub struct Pass<'a> {
    pub input: Input<'a>,
    pub declarations: &'a Declarations,
    pub topology: &'a Topology,
    pub diagnostics: &'a mut Diagnostics,
}

impl Pass<'_> {
    /// The global WAN policies by name, with the document of each.
    #[must_use]
    pub fn check(mut self) -> Policies {
        let mut policies = Policies::new();
        for raw in &self.declarations.policies {
            if let Some(policy) = self.policy(raw, &policies) {
                policies.insert(policy.name.clone(), (policy, raw.doc));
            }
        }
        self.check_fallbacks(&mut policies);
        self.check_ports(&policies);
        self.check_fabric(&policies);
        self.check_plaintext(&policies);
        self.check_copies(&policies);
        self.check_count(&policies);
        self.check_default(&policies);
        policies
    }

    /// One global policy, unless its name is invalid or taken.
    fn policy(
        &mut self,
        raw: &crate::check::documents::Located<spec::WanPolicy>,
        policies: &Policies,
    ) -> Option<WanPolicy> {
        let name = &raw.value.metadata.name;
        let name_at = self.input.at(raw.doc, &fields("metadata.name"));
        if !is_dns1123_label(name) {
            let diagnostic = diags::invalid_name(Some(name_at), Name::WanPolicy(name));
            self.diagnostics.push(diagnostic);
            return None;
        }
        if let Some((_, first)) = policies.get(name) {
            let first = self.input.at(*first, &fields("metadata.name"));
            let diagnostic = diags::object_duplicate(name_at, "WANPolicy", name, None, first);
            self.diagnostics.push(diagnostic);
            return None;
        }
        let spec = &raw.value.spec;
        let sla = Sla {
            jitter_ms: spec.sla.jitter_ms.clone(),
            latency_ms: spec.sla.latency_ms.clone(),
            loss_percent: spec.sla.loss_percent.clone(),
        };
        let input = self.input;
        let resilience = resilience(
            &spec.resilience,
            &sla,
            &|p| input.at(raw.doc, &fields(p)),
            self.diagnostics,
        );
        Some(WanPolicy {
            name: name.clone(),
            tunnel: spec.tunnel.clone(),
            port: spec.port,
            sla,
            // Set by `check_fallbacks`, once every policy is known.
            fallback: None,
            private: spec.private,
            resilience,
        })
    }

    /// Each policy is a listener of every ingress Gateway, which Gateway API caps at 64
    /// (apis/v1/gateway_types.go, `Listeners` MaxItems, v1.2.0 L188-189).
    fn check_count(&mut self, policies: &Policies) {
        if let Some((name, (_, doc))) = policies.iter().nth(MAX_LISTENERS) {
            self.diagnostics.push(diags::wanpolicy_too_many(
                self.input.at(*doc, &fields("metadata.name")),
                name,
                policies.len(),
                MAX_LISTENERS,
            ));
        }
    }

    /// The ClusterSet's default policy is declared.
    fn check_default(&mut self, policies: &Policies) {
        let Some(default) = &self.topology.default_policy else {
            return;
        };
        if !policies.contains_key(&default.value)
            && !policy_refused(self.declarations, policies, &default.value)
        {
            self.diagnostics.push(diags::default_policy_unknown(
                self.input.at(default.doc, &fields("spec.defaultWANPolicy")),
                &default.value,
                policies.keys().map(String::as_str),
            ));
        }
    }

    /// Each policy has its own port, outside Istio's and, with NodePort gateways, inside
    /// the NodePort range.
    fn check_ports(&mut self, policies: &Policies) {
        let node_port_clusters: Vec<String> = self
            .topology
            .clusterset
            .clusters
            .iter()
            .filter(|c| c.exposure == Exposure::NodePort)
            .map(|c| c.name.clone())
            .collect();
        let port_at = |doc: usize| self.input.at(doc, &fields("spec.port"));
        let mut by_port: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, (policy, doc)) in policies {
            let at = port_at(*doc);
            if let Some(other) = by_port.get(&policy.port) {
                self.diagnostics.push(diags::wanpolicy_port_clash(
                    at.clone(),
                    other,
                    name,
                    policy.port,
                    port_at(policies[*other].1),
                ));
            } else {
                by_port.insert(policy.port, name);
            }
            if ISTIO_RESERVED_PORTS.contains(&policy.port) {
                self.diagnostics.push(diags::wanpolicy_port_reserved(
                    at.clone(),
                    name,
                    policy.port,
                ));
            }
            if !node_port_clusters.is_empty() && !NODE_PORT_RANGE.contains(&policy.port) {
                self.diagnostics.push(diags::wanpolicy_port_not_nodeport(
                    at,
                    name,
                    policy.port,
                    &node_port_clusters,
                ));
            }
        }
    }

    /// A fallback names another declared policy.
    fn check_fallbacks(&mut self, policies: &mut Policies) {
        let mut resolved = Vec::new();
        for (name, (_, doc)) in policies.iter() {
            let raw = self.declarations.policies.iter().find(|r| r.doc == *doc);
            let Some(fallback) = raw.and_then(|r| r.value.spec.fallback.as_ref()) else {
                continue;
            };
            match policy_id(policies, fallback).filter(|_| fallback != name) {
                Some(id) => resolved.push((name.clone(), id)),
                None => self.diagnostics.push(diags::wanpolicy_unknown_fallback(
                    self.input.at(*doc, &fields("spec.fallback")),
                    name,
                    fallback,
                    policies.keys().map(String::as_str).filter(|p| p != name),
                )),
            }
        }
        for (name, id) in resolved {
            if let Some((policy, _)) = policies.get_mut(&name) {
                policy.fallback = Some(id);
            }
        }
    }

    /// Cisco's rules, with `vendor: cisco` only: its app-route policy prefers a TLOC colour
    /// for every tunnel, and its SLA classes take whole numbers within fixed ranges.
    /// Without a vendor the fabric's files carry the tunnels and SLAs as declared, so
    /// neither applies.
    fn check_fabric(&mut self, policies: &Policies) {
        let sdwan = &self.topology.clusterset.sdwan;
        if sdwan.vendor != Some(Vendor::Cisco) {
            return;
        }
        for (name, (policy, doc)) in policies {
            let color = sdwan.color(&policy.tunnel);
            if !color.is_some_and(|c| TLOC_COLORS.contains(&c)) {
                self.diagnostics.push(diags::sdwan_tunnel_no_color(
                    self.input.at(*doc, &fields("spec.tunnel")),
                    name,
                    &policy.tunnel,
                    TLOC_COLORS.iter().copied(),
                ));
            }
            let whole = crate::model::WholeSla::of(&policy.sla);
            if !whole.is_exact(&policy.sla) {
                self.diagnostics.push(diags::sdwan_sla_rounded(
                    self.input.at(*doc, &fields("spec.sla")),
                    name,
                    whole.latency_ms,
                    whole.loss_percent,
                    whole.jitter_ms,
                ));
            }
        }
    }

    /// In plaintext mode, requests cross every tunnel in clear text: each tunnel not marked
    /// private draws a warning.
    fn check_plaintext(&mut self, policies: &Policies) {
        if self.topology.clusterset.security != SecurityMode::Plaintext {
            return;
        }
        for (name, (policy, doc)) in policies.iter().filter(|(_, (p, _))| !p.private) {
            self.diagnostics.push(diags::plaintext_public_tunnel(
                self.input.at(*doc, &fields("spec.tunnel")),
                name,
                &policy.tunnel,
            ));
        }
    }

    /// Copies of a policy in cluster directories equal its global definition, field by
    /// field; a policy declared only in cluster directories lacks the global one.
    fn check_copies(&mut self, policies: &Policies) {
        let input = self.input;
        let name_at = |doc: usize| input.at(doc, &fields("metadata.name"));
        let mut orphans: BTreeMap<&str, Vec<(&str, Location)>> = BTreeMap::new();
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (cluster, copy) in &self.declarations.policy_copies {
            let name = copy.value.metadata.name.as_str();
            if let Some(first) = seen.insert((cluster, name), copy.doc) {
                self.diagnostics.push(diags::object_duplicate(
                    name_at(copy.doc),
                    "WANPolicy",
                    name,
                    Some(cluster),
                    name_at(first),
                ));
                continue;
            }
            let Some((_, global_doc)) = policies.get(name) else {
                orphans
                    .entry(name)
                    .or_default()
                    .push((cluster, name_at(copy.doc)));
                continue;
            };
            self.compare_copy(name, cluster, copy.doc, *global_doc);
        }
        for (name, copies) in orphans {
            self.diagnostics
                .push(diags::wanpolicy_missing_global(name, copies));
        }
    }

    fn compare_copy(&mut self, name: &str, cluster: &str, doc: usize, global_doc: usize) {
        let documents = &self.input.sources.documents;
        let differences = leaf_differences(
            &documents[doc].value["spec"],
            &documents[global_doc].value["spec"],
        );
        // The pointers are the documents' own, so they need no check against the schema.
        let sources = self.input.sources;
        for (pointer, here, global) in differences {
            let pointer = format!("/spec{pointer}");
            self.diagnostics.push(diags::wanpolicy_inconsistent(
                sources.at(doc, &pointer),
                name,
                cluster,
                &pointer,
                &here,
                &global,
                sources.at(global_doc, &pointer),
            ));
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
    let mut duration = |value: &Option<String>, path: &str, target: &mut Millis| {
        if let Some(text) = value {
            match Millis::parse(text) {
                Some(parsed) => *target = parsed,
                None => diagnostics.push(diags::invalid_value(
                    at(&format!("spec.resilience.{path}")),
                    Invalid::Duration(text),
                )),
            }
        }
    };
    let retries = &declared.retries;
    let outlier = &declared.outlier_detection;
    duration(&declared.timeout, "timeout", &mut out.timeout);
    duration(
        &retries.per_try_timeout,
        "retries.perTryTimeout",
        &mut out.per_try_timeout,
    );
    duration(
        &outlier.interval,
        "outlierDetection.interval",
        &mut out.interval,
    );
    duration(
        &outlier.base_ejection_time,
        "outlierDetection.baseEjectionTime",
        &mut out.base_ejection_time,
    );
    duration(
        &declared.connection_pool.connect_timeout,
        "connectionPool.connectTimeout",
        &mut out.connect_timeout,
    );
    if let Some(attempts) = retries.attempts {
        out.attempts = attempts;
    }
    // As for the annotations: changed retries keep a timeout that covers every try.
    let retries_changed = retries.attempts.is_some() || retries.per_try_timeout.is_some();
    if declared.timeout.is_none() && retries_changed {
        out.timeout = Millis(out.per_try_timeout.0 * u64::from(out.attempts + 1));
    }
    if let Some(retry_on) = &retries.retry_on {
        out.retry_on = Some(retry_on.clone());
    }
    if let Some(errors) = outlier.consecutive_gateway_errors {
        out.consecutive_gateway_errors = errors;
    }
    if let Some(errors) = outlier.consecutive_5xx_errors {
        out.consecutive_5xx_errors = errors;
    }
    out
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

#[cfg(test)]
mod tests {
    use super::TLOC_COLORS;
    use crate::model::Vendor;

    #[test]
    fn vendors_match_the_clusterset_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/input/clusterset.json")).unwrap();
        let listed =
            &schema["properties"]["spec"]["properties"]["sdwan"]["properties"]["vendor"]["enum"];
        let known: Vec<&str> = Vendor::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(listed, &serde_json::json!(known));
    }

    #[test]
    fn colours_match_the_clusterset_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/input/clusterset.json")).unwrap();
        let listed = &schema["properties"]["spec"]["properties"]["sdwan"]["properties"]["colors"]
            ["additionalProperties"]["enum"];
        assert_eq!(listed, &serde_json::json!(TLOC_COLORS));
    }
}
