//! The SD-WAN fabric's side of the intent: every traffic class (WAN policy) and every flow
//! the mesh sends across the SD-WAN, derived from the imports actually planned. The same
//! `Model` drives the gateways and the fabric, and `verify` checks every rendered gateway
//! and ServiceEntry against the classification, so the two cannot disagree. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::{Model, Sla};
use crate::plan::ClusterPlan;

/// One service's traffic from an importing cluster to an exporting cluster's gateway.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub policy: String,
    /// Cluster indices, in ClusterSet order.
    pub from: usize,
    pub to: usize,
    /// `namespace/name`.
    pub service: String,
}

/// The flows cluster `c` sends across the SD-WAN: one per remote endpoint it imports.
/// An exporter's own endpoints are local and never cross the fabric.
#[must_use]
pub fn flows(model: &Model, c: usize, plan: &ClusterPlan) -> Vec<Flow> {
    let index: BTreeMap<&str, usize> = model
        .clusterset
        .clusters
        .iter()
        .enumerate()
        .map(|(i, cl)| (cl.name.as_str(), i))
        .collect();
    let mut flows = Vec::new();
    for import in &plan.imports {
        for endpoint in import.endpoints.iter().filter(|e| !e.local) {
            flows.push(Flow {
                policy: endpoint.policy.clone(),
                from: c,
                to: index[endpoint.cluster.as_str()],
                service: format!("{}/{}", import.namespace, import.name),
            });
        }
    }
    flows
}

/// What `sdwan/` templates receive: the vendor-neutral classification.
#[derive(Debug, Serialize)]
pub struct Classification {
    pub clusterset: String,
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
    /// The TLOC colour the fabric prefers for this tunnel.
    pub color: String,
    pub port: u16,
    pub sla: SlaView,
    /// The class whose tunnel carries this class's traffic when all its endpoints fail.
    pub fallback: Option<String>,
    /// The SLA as whole numbers in the ranges vendors accept (latency and jitter 1–1000 ms,
    /// loss 1–100 %), rounded up; `check` warns when this differs from `sla`.
    pub whole_sla: WholeSla,
    pub flows: Vec<FlowView>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct WholeSla {
    pub jitter_ms: u64,
    pub latency_ms: u64,
    pub loss_percent: u64,
}

impl WholeSla {
    #[must_use]
    pub fn of(sla: &Sla) -> Self {
        let whole = |n: &serde_json::Number, max: f64| {
            let value = n.as_f64().unwrap_or(max).ceil().clamp(1.0, max);
            // The value is a whole number in 1..=1000, so the conversion is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let value = value as u64;
            value
        };
        WholeSla {
            jitter_ms: whole(&sla.jitter_ms, 1000.0),
            latency_ms: whole(&sla.latency_ms, 1000.0),
            loss_percent: whole(&sla.loss_percent, 100.0),
        }
    }

    /// Whether the whole numbers say exactly what the SLA says.
    #[must_use]
    pub fn is_exact(&self, sla: &Sla) -> bool {
        let same = |n: &serde_json::Number, w: u64| n.as_u64() == Some(w);
        same(&sla.jitter_ms, self.jitter_ms)
            && same(&sla.latency_ms, self.latency_ms)
            && same(&sla.loss_percent, self.loss_percent)
    }
}

/// `name` if it fits in 28 characters, else its first 21 characters, `-` and a hash.
#[must_use]
pub fn short_name(name: &str) -> String {
    if name.len() <= 28 {
        return name.to_string();
    }
    // FNV-1a: stable across platforms and releases, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
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
    pub source_cluster: String,
    pub source_site: u64,
    pub destination_cluster: String,
    pub destination_site: u64,
    pub destination_address: String,
    pub destination_port: u16,
    pub services: Vec<String>,
}

/// Groups flows by (policy, source, destination), in ClusterSet order. Every policy is
/// listed, with no flows if no import uses it.
#[must_use]
pub fn classify(model: &Model, flows: impl IntoIterator<Item = Flow>) -> Classification {
    let clusters = &model.clusterset.clusters;
    let mut grouped: BTreeMap<(String, usize, usize), BTreeSet<String>> = BTreeMap::new();
    for flow in flows {
        grouped
            .entry((flow.policy, flow.from, flow.to))
            .or_default()
            .insert(flow.service);
    }
    let classes = model
        .policies
        .values()
        .map(|policy| Class {
            policy: policy.name.clone(),
            short_name: short_name(&policy.name),
            tunnel: policy.tunnel.clone(),
            color: model.clusterset.sdwan.color(&policy.tunnel).to_string(),
            port: policy.port,
            sla: SlaView::from(&policy.sla),
            whole_sla: WholeSla::of(&policy.sla),
            fallback: policy.fallback.clone(),
            flows: grouped
                .range((policy.name.clone(), 0, 0)..=(policy.name.clone(), usize::MAX, usize::MAX))
                .map(|((_, from, to), services)| FlowView {
                    source_cluster: clusters[*from].name.clone(),
                    source_site: clusters[*from].sdwan_site,
                    destination_cluster: clusters[*to].name.clone(),
                    destination_site: clusters[*to].sdwan_site,
                    destination_address: clusters[*to].address.clone(),
                    destination_port: policy.port,
                    services: services.iter().cloned().collect(),
                })
                .collect(),
        })
        .collect();
    Classification {
        clusterset: model.clusterset.name.clone(),
        vpns: model.clusterset.sdwan.vpns.clone(),
        sites: clusters
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
pub fn verify(model: &Model, c: usize, object: &Value) -> Result<(), String> {
    let cluster = &model.clusterset.clusters[c];
    match object["kind"].as_str() {
        Some("Gateway") => {
            for listener in object["spec"]["listeners"].as_array().into_iter().flatten() {
                let name = listener["name"].as_str().unwrap_or_default();
                let port = listener["port"].as_u64().unwrap_or_default();
                match model.policies.get(name) {
                    Some(policy) if u64::from(policy.port) == port => {}
                    _ => return Err(format!("cluster `{}`: gateway listener `{name}` on port {port} has no SD-WAN class", cluster.name)),
                }
            }
        }
        Some("ServiceEntry") => {
            for endpoint in object["spec"]["endpoints"].as_array().into_iter().flatten() {
                let labels = &endpoint["labels"];
                let policy_name = labels["mcw.l7mp.io/wan-policy"]
                    .as_str()
                    .unwrap_or_default();
                let target = labels["mcw.l7mp.io/cluster"].as_str().unwrap_or_default();
                if target == cluster.name {
                    continue;
                }
                let Some(policy) = model.policies.get(policy_name) else {
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
                if address != exporter.address
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
