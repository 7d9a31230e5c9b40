//! The SD-WAN fabric's side of the intent: every traffic class (WAN policy) and every flow
//! the mesh sends across the SD-WAN, derived from the imports actually planned. The same
//! `Model` drives the gateways and the fabric, and `verify` checks every rendered gateway
//! and ServiceEntry against the classification, so the two cannot disagree. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::conventions::{CLUSTER_LABEL, WAN_POLICY_LABEL};
use crate::model::{ClusterId, Model, PolicyId, Sla, Vendor, WholeSla};
use crate::plan::ClusterPlan;

/// The flows one site sends across the SD-WAN: for every remote endpoint its cluster
/// imports, one flow to the exporter's gateway. An exporter's own endpoints are local and
/// never cross the fabric. Built per cluster, so memory never holds the whole clusterset's.
#[derive(Debug)]
pub struct SiteFlows {
    /// The source cluster.
    pub from: ClusterId,
    /// (policy, destination cluster) → the services (`namespace/name`) using it.
    pub groups: BTreeMap<(PolicyId, ClusterId), BTreeSet<String>>,
}

impl SiteFlows {
    #[must_use]
    pub fn of(c: ClusterId, plan: &ClusterPlan) -> Self {
        let mut groups: BTreeMap<(PolicyId, ClusterId), BTreeSet<String>> = BTreeMap::new();
        for import in &plan.imports {
            for endpoint in import.endpoints.iter().filter(|e| !e.local) {
                groups
                    .entry((endpoint.via, endpoint.exporter))
                    .or_default()
                    .insert(format!("{}/{}", import.namespace, import.name));
            }
        }
        SiteFlows { from: c, groups }
    }

    /// The flows as the site's files show them: by policy, then destination in ClusterSet
    /// order, one per gateway address (a NodePort gateway may have several nodes).
    #[must_use]
    pub fn views(&self, model: &Model) -> Vec<FlowView> {
        let source = model.clusterset.cluster(self.from);
        self.groups
            .iter()
            .flat_map(|((policy, to), services)| {
                model
                    .clusterset
                    .cluster(*to)
                    .addresses
                    .iter()
                    .map(move |address| (policy, *to, address, services))
            })
            .map(|(policy, to, address, services)| {
                let class = model.policy(*policy);
                let destination = model.clusterset.cluster(to);
                FlowView {
                    policy: class.name.clone(),
                    tunnel: class.tunnel.clone(),
                    source_cluster: source.name.clone(),
                    source_site: source.sdwan_site,
                    source_addresses: source.egress.clone().unwrap_or_default(),
                    destination_cluster: destination.name.clone(),
                    destination_site: destination.sdwan_site,
                    destination_address: address.clone(),
                    destination_port: class.port,
                    services: services.iter().cloned().collect(),
                }
            })
            .collect()
    }
}

/// What `sdwan/` templates receive as `fabric`: the classes and sites, a function of the
/// model alone. Each site's flows are rendered separately, with that site's cluster.
#[derive(Debug, Serialize)]
pub struct Classification {
    pub clusterset: String,
    /// The vendor whose built-in templates render (`fabric.vendor`, its name, in templates).
    #[serde(serialize_with = "vendor_name")]
    pub vendor: Option<Vendor>,
    pub vpns: Vec<u32>,
    pub sites: Vec<Site>,
    pub classes: Vec<Class>,
}

#[derive(Debug, Serialize)]
pub struct Site {
    pub cluster: String,
    pub site: u64,
    pub region: String,
    pub gateway_address: String,
}

#[derive(Debug, Serialize)]
pub struct Class {
    pub policy: String,
    /// The policy name shortened for vendors that limit list and class names to 32
    /// characters: names over 28 keep 21 characters and gain a hash.
    pub short_name: String,
    pub tunnel: String,
    /// The TLOC colour the fabric prefers for this tunnel: always with Cisco; without a
    /// vendor, only when `sdwan.colors` maps the tunnel.
    pub color: Option<String>,
    pub port: u16,
    pub sla: SlaView,
    /// The class whose tunnel carries this class's traffic when all its endpoints fail.
    pub fallback: Option<String>,
    /// The SLA as whole numbers in the ranges vendors accept (latency and jitter 1–1000 ms,
    /// loss 1–100 %), rounded up; `check` warns when this differs from `sla`.
    pub whole_sla: WholeSla,
}

/// A vendor as the ClusterSet names it, for templates.
// serde's `serialize_with` hands over a reference to the field as it is.
#[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)]
fn vendor_name<S: serde::Serializer>(vendor: &Option<Vendor>, out: S) -> Result<S::Ok, S::Error> {
    vendor.map(Vendor::as_str).serialize(out)
}

/// `name` if it fits in 28 characters, else its first 21 characters, `-` and a hash.
#[must_use]
pub fn short_name(name: &str) -> String {
    if name.len() <= 28 {
        return name.to_string();
    }
    let hash = crate::conventions::stable_hash(name);
    format!(
        "{}-{:06x}",
        name[..21].trim_end_matches('-'),
        hash & 0xff_ffff
    )
}

#[derive(Debug, Serialize)]
pub struct SlaView {
    pub jitter_ms: serde_json::Number,
    pub latency_ms: serde_json::Number,
    pub loss_percent: serde_json::Number,
}

impl From<&Sla> for SlaView {
    fn from(sla: &Sla) -> Self {
        SlaView {
            jitter_ms: sla.jitter_ms.clone(),
            latency_ms: sla.latency_ms.clone(),
            loss_percent: sla.loss_percent.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FlowView {
    pub policy: String,
    pub tunnel: String,
    pub source_cluster: String,
    pub source_site: u64,
    /// The egress gateway's addresses, when the source sends through one; empty when its
    /// pods' sidecars send directly (from node or pod addresses).
    pub source_addresses: Vec<String>,
    pub destination_cluster: String,
    pub destination_site: u64,
    pub destination_address: String,
    pub destination_port: u16,
    pub services: Vec<String>,
}

/// Every class (WAN policy, by name) and every site (cluster, in ClusterSet order).
#[must_use]
pub fn classify(model: &Model) -> Classification {
    let classes = model
        .policies
        .iter()
        .map(|policy| Class {
            policy: policy.name.clone(),
            short_name: short_name(&policy.name),
            tunnel: policy.tunnel.clone(),
            color: model
                .clusterset
                .sdwan
                .color(&policy.tunnel)
                .map(str::to_string),
            port: policy.port,
            sla: SlaView::from(&policy.sla),
            whole_sla: WholeSla::of(&policy.sla),
            fallback: policy.fallback.map(|f| model.policy(f).name.clone()),
        })
        .collect();
    Classification {
        clusterset: model.clusterset.name.clone(),
        vendor: model.clusterset.sdwan.vendor,
        vpns: model.clusterset.sdwan.vpns.clone(),
        sites: model
            .clusterset
            .clusters
            .iter()
            .map(|c| Site {
                cluster: c.name.clone(),
                site: c.sdwan_site,
                region: c.region.clone(),
                gateway_address: c.address.clone(),
            })
            .collect(),
        classes,
    }
}

/// Checks one rendered object of cluster `c` against the classification: every Gateway
/// listener is a class on its own port, and every remote ServiceEntry endpoint is the
/// exporter's gateway on its class's port. A failure is a bug in mcwan or in a template
/// override, never a user error.
///
/// # Errors
/// A description of the first disagreement.
pub fn verify(model: &Model, c: ClusterId, object: &Value) -> Result<(), String> {
    let cluster = model.clusterset.cluster(c);
    match object["kind"].as_str() {
        Some("Gateway") => {
            for listener in object["spec"]["listeners"].as_array().into_iter().flatten() {
                let name = listener["name"].as_str().unwrap_or_default();
                let port = listener["port"].as_u64().unwrap_or_default();
                match model.policy_named(name).map(|id| model.policy(id)) {
                    Some(policy) if u64::from(policy.port) == port => {}
                    _ => return Err(format!("cluster `{}`: gateway listener `{name}` on port {port} has no SD-WAN class", cluster.name)),
                }
            }
        }
        Some("ServiceEntry") => {
            for endpoint in object["spec"]["endpoints"].as_array().into_iter().flatten() {
                let labels = &endpoint["labels"];
                let policy_name = labels[WAN_POLICY_LABEL].as_str().unwrap_or_default();
                let target = labels[CLUSTER_LABEL].as_str().unwrap_or_default();
                if target == cluster.name {
                    continue;
                }
                let Some(policy) = model.policy_named(policy_name).map(|id| model.policy(id))
                else {
                    return Err(format!("cluster `{}`: endpoint of `{target}` names no SD-WAN class `{policy_name}`", cluster.name));
                };
                let Some(exporter) = model.clusterset.clusters.iter().find(|x| x.name == target)
                else {
                    return Err(format!(
                        "cluster `{}`: endpoint names unknown cluster `{target}`",
                        cluster.name
                    ));
                };
                let address = endpoint["address"].as_str().unwrap_or_default();
                let ports: Vec<u64> = endpoint["ports"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, p)| p.as_u64())
                    .collect();
                if !exporter.addresses.iter().any(|a| a == address)
                    || ports.is_empty()
                    || ports.iter().any(|p| *p != u64::from(policy.port))
                {
                    return Err(format!(
                        "cluster `{}`: endpoint {address} {ports:?} for `{target}` is not {}:{}, the class of `{policy_name}`",
                        cluster.name, exporter.address, policy.port
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_fit_vendor_limits_and_stay_distinct() {
        assert_eq!(short_name("sd-wan-priority-high"), "sd-wan-priority-high");
        let a = short_name("a-very-long-wan-policy-name-for-the-business-tunnel");
        let b = short_name("a-very-long-wan-policy-name-for-the-internet-tunnel");
        assert!(a.len() <= 28 && b.len() <= 28, "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn whole_sla_rounds_up_into_vendor_ranges() {
        let n = |v: f64| serde_json::Number::from_f64(v).unwrap();
        let sla = Sla {
            jitter_ms: n(0.5),
            latency_ms: n(2500.0),
            loss_percent: n(0.0),
        };
        let whole = WholeSla::of(&sla);
        assert_eq!(
            whole,
            WholeSla {
                jitter_ms: 1,
                latency_ms: 1000,
                loss_percent: 1
            }
        );
        assert!(!whole.is_exact(&sla));
        let exact = Sla {
            jitter_ms: 50.into(),
            latency_ms: 100.into(),
            loss_percent: 1.into(),
        };
        assert!(WholeSla::of(&exact).is_exact(&exact));
    }
}
