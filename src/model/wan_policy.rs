//! A validated WAN policy: one SD-WAN traffic class.

use serde::Serialize;
use serde_json::Number;

use super::Resilience;

#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub jitter_ms: Number,
    pub latency_ms: Number,
    pub loss_percent: Number,
}

/// A WAN policy, by its place in `Model::policies` (sorted by name): how every stage after
/// `check` names one, so that finding it cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyId(pub usize);

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
    pub fallback: Option<PolicyId>,
    /// The tunnel is private to the organisation, so plaintext on it draws no warning.
    pub private: bool,
    pub resilience: Resilience,
}

/// An SLA in the whole numbers SD-WAN SLA classes take (latency and jitter 1–1000 ms,
/// loss 1–100 %), rounded up.
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
