//! Raw declarations: serde mirrors of the input YAML, deserialized only after the document
//! passed its JSON Schema. They carry no invariants; `check` turns them into `model` types.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Number;

#[derive(Debug, Clone, Deserialize)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSet {
    pub metadata: Meta,
    pub spec: ClusterSetSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSetSpec {
    pub domain: Option<String>,
    pub gateway_class_name: Option<String>,
    #[serde(rename = "mcsAPIVersion")]
    pub mcs_api_version: Option<String>,
    #[serde(rename = "defaultWANPolicy")]
    pub default_wan_policy: Option<String>,
    #[serde(default)]
    pub sdwan: Sdwan,
    #[serde(default)]
    pub tracing: Tracing,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub egress: Egress,
    pub clusters: Vec<Cluster>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Egress {
    pub mode: Option<String>,
    #[serde(default)]
    pub lockdown: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClusterEgress {
    pub mode: Option<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Security {
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    pub sampling_percent: Option<serde_json::Number>,
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sdwan {
    #[serde(default)]
    pub vpns: Option<Vec<u32>>,
    pub vendor: Option<String>,
    #[serde(default)]
    pub colors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub region: String,
    pub zone: Option<String>,
    pub sdwan_site: u64,
    pub trust_domain: Option<String>,
    pub gateway: Gateway,
    #[serde(default)]
    pub egress: ClusterEgress,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub skip_imports: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    pub address: String,
    #[serde(default)]
    pub node_addresses: Vec<String>,
    pub exposure: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WanPolicy {
    pub metadata: Meta,
    pub spec: WanPolicySpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WanPolicySpec {
    pub tunnel: String,
    pub port: u16,
    pub sla: Sla,
    pub fallback: Option<String>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub resilience: Resilience,
}

/// Declared overrides of the derived resilience defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resilience {
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Retries,
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    #[serde(default)]
    pub connection_pool: ConnectionPool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    pub attempts: Option<u32>,
    pub per_try_timeout: Option<String>,
    pub retry_on: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    pub consecutive_gateway_errors: Option<u32>,
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    pub interval: Option<String>,
    pub base_ejection_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPool {
    pub connect_timeout: Option<String>,
}

/// SLA numbers are kept as written, so that the fabric receives exactly what was declared.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sla {
    pub jitter_ms: Number,
    pub latency_ms: Number,
    pub loss_percent: Number,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub metadata: Meta,
    #[serde(default)]
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceExport {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: Meta,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Namespace {
    pub metadata: Meta,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WanRoute {
    pub metadata: Meta,
    pub spec: WanRouteSpec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WanRouteSpec {
    pub rules: Vec<WanRouteRule>,
    pub default: Option<RouteAction>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WanRouteRule {
    pub name: Option<String>,
    pub matches: Vec<HttpMatch>,
    #[serde(flatten)]
    pub action: RouteAction,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteAction {
    pub wan_policy: Option<String>,
    pub deny: Option<bool>,
}

/// A Gateway API `HTTPRouteMatch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    pub path: Option<PathMatch>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
    #[serde(default)]
    pub query_params: Vec<ValueMatch>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ValueMatch {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: String,
    pub value: String,
}
