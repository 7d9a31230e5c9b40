//! Timeouts, retries, outlier detection and connection limits for one WAN policy: either
//! declared in `spec.resilience`, or derived from the SLA. Pure arithmetic; see
//! docs/resilience.md for why each default is what it is.

use std::fmt;

use serde_json::Number;

use super::Sla;

/// A duration in whole milliseconds, printed the way Istio reads durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl Millis {
    /// Parses Istio's duration form: a number and `ms`, `s`, `m` or `h` (`250ms`, `1.5s`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return None,
        };
        let value: f64 = number.parse().ok()?;
        let millis = (value * scale).round();
        // Durations above a day are nonsense for a request; reject rather than overflow.
        if !(1.0..=86_400_000.0).contains(&millis) {
            return None;
        }
        // In range 1..=86.4e6 and rounded, so the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(Millis(millis as u64))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1_000) {
            write!(f, "{}s", self.0 / 1_000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

/// Everything the importer's VirtualService and DestinationRule need for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resilience {
    pub timeout: Millis,
    pub attempts: u32,
    pub per_try_timeout: Millis,
    /// Envoy retry conditions the policy declares. `None` lets each route choose:
    /// `SAFE_RETRY_ON`, or `IDEMPOTENT_RETRY_ON` for a route that only idempotent methods reach.
    pub retry_on: Option<Vec<String>>,
    pub consecutive_gateway_errors: u32,
    pub consecutive_5xx_errors: u32,
    pub interval: Millis,
    pub base_ejection_time: Millis,
    pub connect_timeout: Millis,
}

/// The Envoy retry conditions mcwan retries any request on: the request never reached a
/// service (no connection; an HTTP/2 stream the upstream refused unprocessed), so another
/// cluster may serve it without running it twice.
pub const SAFE_RETRY_ON: &[&str] = &["connect-failure", "refused-stream"];

/// The conditions for a route only idempotent methods reach: also a reset or a 502/503/504,
/// which may follow a request a service already ran (RFC 9110 section 9.2.2 lets a client
/// repeat those methods).
pub const IDEMPOTENT_RETRY_ON: &[&str] = &[
    "connect-failure",
    "refused-stream",
    "reset",
    "gateway-error",
];

/// Methods RFC 9110 section 9.2.2 defines as idempotent.
pub const IDEMPOTENT_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];

impl Resilience {
    /// Defaults derived from the SLA. With L the one-way latency bound and J the jitter
    /// bound, a round trip across the tunnel takes at most `R = 2L + J`:
    /// - connect timeout `max(1s, 2R)`: a handshake is one round trip, twice over;
    /// - per-try timeout `2R + 1s`: two round trips plus a second for the service;
    /// - 2 retries (3 on tunnels that may lose more than 10 %), and a total timeout that
    ///   covers every try;
    /// - eject a gateway after 3 consecutive gateway errors (5 above 1 % loss), scanning
    ///   every `clamp(5R, 1s, 10s)`, for `max(30s, 3 × interval)`; never for application
    ///   5xx responses (0 disables Envoy's default of 5).
    #[must_use]
    pub fn derive(sla: &Sla) -> Self {
        let ms = |n: &Number| n.as_f64().unwrap_or(1_000.0).max(0.0);
        let round_trip = 2.0 * ms(&sla.latency_ms) + ms(&sla.jitter_ms);
        // Bounded by the clamp, so the conversion is exact enough for milliseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = |v: f64| v.clamp(1.0, 86_400_000.0).ceil() as u64;
        let loss = ms(&sla.loss_percent);
        let attempts = if loss > 10.0 { 3 } else { 2 };
        let per_try_timeout = Millis(whole(2.0 * round_trip + 1_000.0));
        let interval = Millis(whole((5.0 * round_trip).clamp(1_000.0, 10_000.0)));
        Resilience {
            timeout: Millis(per_try_timeout.0 * u64::from(attempts + 1)),
            attempts,
            per_try_timeout,
            retry_on: None,
            consecutive_gateway_errors: if loss > 1.0 { 5 } else { 3 },
            consecutive_5xx_errors: 0,
            interval,
            base_ejection_time: Millis(interval.0.saturating_mul(3).max(30_000)),
            connect_timeout: Millis(whole((2.0 * round_trip).max(1_000.0))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_as_istio_reads_them() {
        assert_eq!(Millis::parse("250ms"), Some(Millis(250)));
        assert_eq!(Millis::parse("1.5s"), Some(Millis(1_500)));
        assert_eq!(Millis::parse("2m"), Some(Millis(120_000)));
        for bad in ["", "5", "s", "1.5", "-1s", "0s", "1x", "1 s", "2d"] {
            assert_eq!(Millis::parse(bad), None, "{bad}");
        }
        assert_eq!(Millis(1_500).to_string(), "1500ms");
        assert_eq!(Millis(30_000).to_string(), "30s");
    }

    #[test]
    fn business_and_internet_slas_get_different_defaults() {
        let business = Resilience::derive(&Sla {
            jitter_ms: 50.into(),
            latency_ms: 100.into(),
            loss_percent: 1.into(),
        });
        assert_eq!(
            (
                business.per_try_timeout,
                business.attempts,
                business.timeout
            ),
            (Millis(1_500), 2, Millis(4_500))
        );
        assert_eq!(
            (business.interval, business.base_ejection_time),
            (Millis(1_250), Millis(30_000))
        );
        assert_eq!(
            (
                business.consecutive_gateway_errors,
                business.connect_timeout
            ),
            (3, Millis(1_000))
        );
        let internet = Resilience::derive(&Sla {
            jitter_ms: 1000.into(),
            latency_ms: 1000.into(),
            loss_percent: 100.into(),
        });
        assert_eq!(
            (
                internet.per_try_timeout,
                internet.attempts,
                internet.timeout
            ),
            (Millis(7_000), 3, Millis(28_000))
        );
        assert_eq!(
            (internet.interval, internet.base_ejection_time),
            (Millis(10_000), Millis(30_000))
        );
        assert_eq!(
            (
                internet.consecutive_gateway_errors,
                internet.connect_timeout
            ),
            (5, Millis(6_000))
        );
    }
}
