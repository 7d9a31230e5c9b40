//! The names mcwan writes and reads by convention, in one place: directories of OUT, the
//! namespace and Gateway it owns, the prefix of generated names, and its labels and
//! annotations.

/// The review summary mcwan writes at the top of OUT.
pub const SUMMARY: &str = "SUMMARY.md";
/// The output directory of the SD-WAN fabric's files, which no cluster's may replace.
pub const FABRIC_DIRECTORY: &str = "sdwan";

/// The namespace mcwan owns in every cluster.
pub const RESERVED_NAMESPACE: &str = "mcw-system";
/// The shared ingress Gateway's name; Istio derives `<name>-<class>` from it.
pub const GATEWAY_NAME: &str = "mcw-ingress";
/// The ConfigMap Istio reads the Gateway's deployment customizations from.
pub const GATEWAY_OPTIONS_NAME: &str = "mcw-ingress-options";
/// Names mcwan generates start with this; users may not take them.
pub const GENERATED_PREFIX: &str = "mcw-";

/// The label every rendered object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "mcwan");
/// The cluster an object was rendered for.
pub const CLUSTER_LABEL: &str = "mcw.l7mp.io/cluster";
/// The service an object serves.
pub const SERVICE_LABEL: &str = "mcw.l7mp.io/service";
/// The WAN policy an object or endpoint belongs to.
pub const WAN_POLICY_LABEL: &str = "mcw.l7mp.io/wan-policy";

/// A ServiceExport's WAN policy.
pub const POLICY_ANNOTATION: &str = "mcw.l7mp.io/mc-wan-policy";
/// The Service port a ServiceExport exports.
pub const PORT_ANNOTATION: &str = "mcw.l7mp.io/port";
/// A ServiceExport's request timeout.
pub const TIMEOUT_ANNOTATION: &str = "mcw.l7mp.io/timeout";
/// A ServiceExport's retry count.
pub const RETRIES_ANNOTATION: &str = "mcw.l7mp.io/retries";
/// A ServiceExport's timeout per try.
pub const PER_TRY_TIMEOUT_ANNOTATION: &str = "mcw.l7mp.io/per-try-timeout";
/// The importing clusters a ServiceExport admits callers from (mutual mode).
pub const ALLOWED_CLUSTERS_ANNOTATION: &str = "mcw.l7mp.io/allowed-clusters";
/// The service accounts, in the service's namespace, a ServiceExport admits (mutual mode).
pub const ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: &str = "mcw.l7mp.io/allowed-service-accounts";
/// The header a client's sidecar names its cluster in; in mutual mode the ingress admits
/// it only when it names the cluster of the caller's certificate.
pub const SOURCE_CLUSTER_HEADER: &str = "x-mcwan-source-cluster";

/// The egress gateway's name: its Deployment, Service, ServiceAccount and Istio Gateway.
pub const EGRESS_NAME: &str = "mcw-egress";
/// The port clients' sidecars reach the egress gateway on, in Istio mutual TLS.
pub const EGRESS_PORT: u16 = 8443;
/// The NetworkPolicy that keeps an importing namespace's pods off the SD-WAN.
pub const LOCKDOWN_NAME: &str = "mcw-wan-lockdown";
/// The label that selects the egress gateway's pods.
pub const EGRESS_LABEL: (&str, &str) = ("mcw.l7mp.io/gateway", "egress");

/// FNV-1a of `text`: stable across platforms and releases, unlike std's hasher; for names
/// that must stay short and distinct.
#[must_use]
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
