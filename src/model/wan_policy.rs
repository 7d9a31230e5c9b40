//! A validated WAN policy: one SD-WAN traffic class.

use serde_json::Number;

use super::Resilience;

#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub jitter_ms: Number,
    pub latency_ms: Number,
    pub loss_percent: Number,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WanPolicy {
    /// A DNS-1123 label: it names a Gateway listener and an Istio subset.
    pub name: String,
    pub tunnel: String,
    /// Unique across policies: the SD-WAN classifies traffic by it.
    pub port: u16,
    pub sla: Sla,
    /// The policy whose tunnel carries this policy's traffic when all of its own
    /// endpoints are ejected; `None` keeps the traffic in its tunnel whatever happens.
    pub fallback: Option<String>,
    pub resilience: Resilience,
}
