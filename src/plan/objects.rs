//! Stage 3's output: one typed context per template, and the list of objects a cluster
//! gets, in `ClusterPlan::objects`. This is the whole contract between plan and render:
//! a template sees its context's fields and nothing else, and every object's name and
//! labels are decided here. A new rendered kind is its template, its output schema and
//! one context type below, handed to the sink in `objects`.
//!
//! Field names are what the templates (and `--templates` overrides) read, so they are
//! stable; field order is the order maps and lists are printed in.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::{
    ClusterPlan, EgressPlan, ExportPlan, GatewayPlan, ImportPlan, IngressRoute, Lockdown,
    VirtualHost,
};
use crate::conventions::{
    CLUSTER_LABEL, EGRESS_LABEL, EGRESS_NAME, EGRESS_PORT, GATEWAY_NAME, GATEWAY_OPTIONS_NAME,
    GENERATED_PREFIX, LOCKDOWN_NAME, MANAGED_BY, RESERVED_NAMESPACE, SERVICE_LABEL,
    WAN_POLICY_LABEL,
};
use crate::error::Error;

/// Egress gateway pods, so that one can restart while the other serves.
const EGRESS_REPLICAS: u32 = 2;

/// An object's labels.
pub type Labels = BTreeMap<String, String>;

/// A template's context.
pub trait Object: Serialize {
    /// The templates under `templates/` that render this context, one object each.
    const TEMPLATES: &'static [&'static str];
}

/// Where a cluster's objects go: render turns each into a file.
pub trait Sink {
    /// One object per template of `O`.
    ///
    /// # Errors
    /// When a template fails or renders an object that breaks a rule.
    fn object<O: Object>(&mut self, context: &O) -> Result<(), Error>;

    /// A user-written object, copied unchanged.
    ///
    /// # Errors
    /// When it cannot be written.
    fn passthrough(&mut self, object: &Value) -> Result<(), Error>;
}

/// The namespace mcwan's own objects live in.
#[derive(Serialize)]
pub struct Namespace {
    pub namespace: &'static str,
    pub labels: Labels,
}

impl Object for Namespace {
    const TEMPLATES: &'static [&'static str] = &["namespace.yaml.j2"];
}

/// The WANPolicy CRD.
#[derive(Serialize)]
pub struct WanPolicyCrd<'p> {
    /// Its `openAPIV3Schema`.
    pub schema: &'p Value,
    pub labels: Labels,
}

impl Object for WanPolicyCrd<'_> {
    const TEMPLATES: &'static [&'static str] = &["wanpolicy-crd.yaml.j2"];
}

/// One WAN policy, the same in every cluster.
#[derive(Serialize)]
pub struct WanPolicy<'p> {
    pub policy: &'p PolicyView,
    pub labels: Labels,
}

impl Object for WanPolicy<'_> {
    const TEMPLATES: &'static [&'static str] = &["wanpolicy.yaml.j2"];
}

/// A WAN policy's fields as its custom resource spells them.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub name: String,
    pub tunnel: String,
    pub port: u16,
    pub sla: SlaView,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaView {
    pub jitter_ms: serde_json::Number,
    pub latency_ms: serde_json::Number,
    pub loss_percent: serde_json::Number,
}

/// The cluster's east-west ingress Gateway.
#[derive(Serialize)]
pub struct IngressGateway<'p> {
    pub name: &'static str,
    pub namespace: &'static str,
    pub gateway: &'p GatewayPlan,
    pub gateway_class_name: &'p str,
    /// The ConfigMap of the Gateway's deployment customizations, when it has one.
    pub options_name: &'static str,
    pub labels: Labels,
}

impl Object for IngressGateway<'_> {
    const TEMPLATES: &'static [&'static str] = &["gateway.yaml.j2"];
}

/// Tracing on the ingress Gateway.
#[derive(Serialize)]
pub struct Telemetry<'p> {
    pub name: &'static str,
    pub namespace: &'static str,
    pub gateway_name: &'static str,
    pub cluster: &'p str,
    pub tracing: &'p TracingView,
    pub labels: Labels,
}

/// The ClusterSet's tracing settings.
#[derive(Debug, Serialize)]
pub struct TracingView {
    pub sampling_percent: serde_json::Number,
    pub provider: Option<String>,
}

impl Object for Telemetry<'_> {
    const TEMPLATES: &'static [&'static str] = &["telemetry.yaml.j2"];
}

/// One of the ingress Gateway's AuthorizationPolicies.
#[derive(Serialize)]
pub struct AuthorizationPolicy<'p> {
    pub name: String,
    pub namespace: &'static str,
    pub gateway_name: &'static str,
    /// `DENY` or `ALLOW`.
    pub action: &'static str,
    pub rules: &'p [AuthorizationRule],
    pub labels: Labels,
}

impl Object for AuthorizationPolicy<'_> {
    const TEMPLATES: &'static [&'static str] = &["authorizationpolicy.yaml.j2"];
}

/// An Istio authorization `Rule`: requests from these peers (any, without `from`) to these
/// hosts (methods, paths; any, without `to`), when these headers have these values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizationRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<[From; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<[To; 1]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// The most rules an AuthorizationPolicy may hold: `spec.rules` has `maxItems: 512` in
/// Istio's CRD (1.26 to 1.30), so a workload's rules are split among policies of at most
/// this many, which Istio applies alike (`AuthorizationRule::merged`).
pub const MAX_AUTHORIZATION_RULES: usize = 512;

impl AuthorizationRule {
    /// The rules, those that differ only in their operation's hosts merged into the first
    /// of them, which lists the hosts of all, each once; a rule equal to an earlier one is
    /// dropped. Istio matches a request against a rule's hosts as against any of them, and
    /// against a policy's rules, and the policies of one action on a workload, as against
    /// any of them (docs/security.md, section 4), so the same requests are admitted and
    /// refused. A gateway whose exports share their callers then holds a rule per set of
    /// callers instead of one per export.
    #[must_use]
    pub fn merged(rules: &[AuthorizationRule]) -> Vec<AuthorizationRule> {
        // A rule but for its hosts.
        type Alike<'r> = (
            &'r Option<[From; 1]>,
            Option<(&'r [String], &'r [String])>,
            &'r [Condition],
        );
        let mut out: Vec<AuthorizationRule> = Vec::new();
        // Each rule of `out` → its place, and the hosts it lists.
        let mut merged: HashMap<Alike, (usize, HashSet<&str>)> = HashMap::new();
        for rule in rules {
            let to = rule.to.as_ref().map(|[to]| &to.operation);
            let alike = (
                &rule.from,
                to.map(|o| (&o.methods[..], &o.paths[..])),
                &rule.when[..],
            );
            let hosts = to.map_or(&[][..], |o| &o.hosts[..]);
            match merged.entry(alike) {
                Entry::Occupied(mut first) => {
                    let (i, listed) = first.get_mut();
                    if let Some([to]) = out[*i].to.as_mut() {
                        let added = hosts.iter().filter(|h| listed.insert(h.as_str()));
                        to.operation.hosts.extend(added.cloned());
                    }
                }
                Entry::Vacant(first) => {
                    first.insert((out.len(), hosts.iter().map(String::as_str).collect()));
                    out.push(rule.clone());
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct From {
    pub source: Source,
}

/// The peers a rule admits, by the SPIFFE identity of their certificate without
/// `spiffe://`; never empty, which Istio would read as any peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Source {
    pub principals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct To {
    pub operation: Operation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// A `when` condition: the key has one of `values`, or none of `notValues`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Condition {
    pub key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(rename = "notValues", skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

/// The Gateway's deployment customizations: each NodePort pinned to its listener's port.
#[derive(Serialize)]
pub struct GatewayOptions {
    pub name: &'static str,
    pub namespace: &'static str,
    pub service_patch: ServicePatch,
    pub labels: Labels,
}

impl Object for GatewayOptions {
    const TEMPLATES: &'static [&'static str] = &["gateway-options.yaml.j2"];
}

/// A strategic-merge patch of the Gateway's Service.
#[derive(Serialize)]
pub struct ServicePatch {
    pub spec: ServicePatchSpec,
}

#[derive(Serialize)]
pub struct ServicePatchSpec {
    pub ports: Vec<PinnedPort>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedPort {
    pub port: u16,
    pub node_port: u16,
    pub protocol: &'static str,
}

/// A user's ServiceExport, normalized.
#[derive(Serialize)]
pub struct ServiceExport<'p> {
    pub export: &'p ExportPlan,
    pub mcs_api_version: &'static str,
    pub labels: Labels,
}

impl Object for ServiceExport<'_> {
    const TEMPLATES: &'static [&'static str] = &["serviceexport.yaml.j2"];
}

/// One ingress HTTPRoute of an export.
#[derive(Serialize)]
pub struct HttpRoute<'p> {
    pub route: &'p IngressRoute,
    pub namespace: &'p str,
    pub service: &'p str,
    pub cluster: &'p str,
    pub gateway_name: &'static str,
    pub gateway_namespace: &'static str,
    pub labels: Labels,
}

impl Object for HttpRoute<'_> {
    const TEMPLATES: &'static [&'static str] = &["httproute.yaml.j2"];
}

/// An imported service: its ServiceImport, and the ServiceEntry, DestinationRule and
/// VirtualService that route to its exporters' gateways. The four share one name.
#[derive(Serialize)]
pub struct ImportedService<'p> {
    pub import: &'p ImportPlan,
    pub name: String,
    pub cluster: &'p str,
    pub labels: Labels,
    pub mcs_api_version: &'static str,
    /// The ServiceImport's ports.
    pub ports: Vec<ServiceImportPort<'p>>,
}

impl Object for ImportedService<'_> {
    const TEMPLATES: &'static [&'static str] = &[
        "serviceimport.yaml.j2",
        "serviceentry.yaml.j2",
        "destinationrule.yaml.j2",
        "virtualservice.yaml.j2",
    ];
}

/// An MCS `ServicePort`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportPort<'p> {
    pub port: u16,
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<&'p str>,
}

/// A host only a user VirtualService gives meaning to.
#[derive(Serialize)]
pub struct VirtualHostEntry<'p> {
    pub vhost: &'p VirtualHost,
    pub labels: Labels,
}

impl Object for VirtualHostEntry<'_> {
    const TEMPLATES: &'static [&'static str] = &["virtualhost.yaml.j2"];
}

/// A cluster's egress gateway: its identity, pods, Service, Istio Gateway and the
/// DestinationRule clients reach it with.
#[derive(Serialize)]
pub struct EgressGateway<'p> {
    pub name: &'static str,
    pub namespace: &'static str,
    pub egress: &'p EgressPlan,
    /// The label that selects its pods.
    pub selector: Labels,
    pub pod_labels: Labels,
    pub replicas: u32,
    pub port: u16,
    /// Its Service's host.
    pub service_host: String,
    pub labels: Labels,
}

impl Object for EgressGateway<'_> {
    const TEMPLATES: &'static [&'static str] = &[
        "egress-serviceaccount.yaml.j2",
        "egress-deployment.yaml.j2",
        "egress-service.yaml.j2",
        "egress-gateway.yaml.j2",
        "egress-destinationrule.yaml.j2",
    ];
}

/// Who may send through the egress gateway, in mutual mode.
#[derive(Serialize)]
pub struct EgressAuthorization<'p> {
    pub name: String,
    pub namespace: &'static str,
    pub rules: &'p [AuthorizationRule],
    pub selector: Labels,
    pub labels: Labels,
}

impl Object for EgressAuthorization<'_> {
    const TEMPLATES: &'static [&'static str] = &["egress-authorizationpolicy.yaml.j2"];
}

/// One importing namespace's lockdown NetworkPolicy.
#[derive(Serialize)]
pub struct WanLockdown<'p> {
    pub name: &'static str,
    pub lockdown: &'p Lockdown,
    pub labels: Labels,
}

impl Object for WanLockdown<'_> {
    const TEMPLATES: &'static [&'static str] = &["networkpolicy.yaml.j2"];
}

/// What is the same for every cluster's objects, computed once per render.
#[derive(Debug)]
pub struct Shared {
    pub policies: Vec<PolicyView>,
    pub wan_policy_schema: Value,
    pub mcs_api_version: &'static str,
    pub gateway_class_name: String,
    pub tracing: TracingView,
}

/// The name of the `i`th (from 0) of a workload's AuthorizationPolicies of one kind:
/// `name`, then `name-2`, `name-3`…
fn numbered(name: &str, i: usize) -> String {
    match i {
        0 => name.to_string(),
        i => format!("{name}-{}", i + 1),
    }
}

impl ClusterPlan<'_> {
    /// Hands every object of this cluster to `sink`, in a fixed order.
    ///
    /// # Errors
    /// The sink's.
    pub fn objects(&self, sink: &mut impl Sink) -> Result<(), Error> {
        let shared = self.shared;
        sink.object(&Namespace {
            namespace: RESERVED_NAMESPACE,
            labels: self.labels(&[]),
        })?;
        sink.object(&WanPolicyCrd {
            schema: &shared.wan_policy_schema,
            labels: self.labels(&[]),
        })?;
        for policy in &shared.policies {
            sink.object(&WanPolicy {
                policy,
                labels: self.labels(&[(WAN_POLICY_LABEL, &policy.name)]),
            })?;
        }
        if let Some(gateway) = &self.gateway {
            self.gateway_objects(gateway, sink)?;
        }
        for export in &self.exports {
            self.export_objects(export, sink)?;
        }
        for import in &self.imports {
            sink.object(&self.import(import))?;
        }
        if let Some(egress) = &self.egress {
            self.egress_objects(egress, sink)?;
        }
        for vhost in &self.virtual_hosts {
            sink.object(&VirtualHostEntry {
                vhost,
                labels: self.labels(&[]),
            })?;
        }
        for object in &self.passthrough {
            sink.passthrough(object)?;
        }
        Ok(())
    }

    fn gateway_objects(&self, gateway: &GatewayPlan, sink: &mut impl Sink) -> Result<(), Error> {
        let shared = self.shared;
        sink.object(&IngressGateway {
            name: GATEWAY_NAME,
            namespace: RESERVED_NAMESPACE,
            gateway,
            gateway_class_name: &shared.gateway_class_name,
            options_name: GATEWAY_OPTIONS_NAME,
            labels: self.labels(&[]),
        })?;
        sink.object(&Telemetry {
            name: GATEWAY_NAME,
            namespace: RESERVED_NAMESPACE,
            gateway_name: GATEWAY_NAME,
            cluster: &self.name,
            tracing: &shared.tracing,
            labels: self.labels(&[]),
        })?;
        let policies = [
            ("DENY", "deny", &gateway.authorization.deny),
            ("ALLOW", "allow", &gateway.authorization.allow),
        ];
        for (action, suffix, rules) in policies {
            for (i, rules) in rules.chunks(MAX_AUTHORIZATION_RULES).enumerate() {
                sink.object(&AuthorizationPolicy {
                    name: numbered(&format!("{GATEWAY_NAME}-{suffix}"), i),
                    namespace: RESERVED_NAMESPACE,
                    gateway_name: GATEWAY_NAME,
                    action,
                    rules,
                    labels: self.labels(&[]),
                })?;
            }
        }
        if gateway.pin_node_ports {
            let ports = gateway.listeners.iter().map(|l| PinnedPort {
                port: l.port,
                node_port: l.port,
                protocol: "TCP",
            });
            sink.object(&GatewayOptions {
                name: GATEWAY_OPTIONS_NAME,
                namespace: RESERVED_NAMESPACE,
                service_patch: ServicePatch {
                    spec: ServicePatchSpec {
                        ports: ports.collect(),
                    },
                },
                labels: self.labels(&[]),
            })?;
        }
        Ok(())
    }

    fn egress_objects(&self, egress: &EgressPlan, sink: &mut impl Sink) -> Result<(), Error> {
        let selector: Labels = [(EGRESS_LABEL.0.to_string(), EGRESS_LABEL.1.to_string())].into();
        let mut pod_labels = selector.clone();
        pod_labels.insert("sidecar.istio.io/inject".into(), "true".into());
        sink.object(&EgressGateway {
            name: EGRESS_NAME,
            namespace: RESERVED_NAMESPACE,
            egress,
            selector: selector.clone(),
            pod_labels,
            replicas: EGRESS_REPLICAS,
            port: EGRESS_PORT,
            service_host: format!("{EGRESS_NAME}.{RESERVED_NAMESPACE}.svc.cluster.local"),
            labels: self.labels(&[]),
        })?;
        for (i, rules) in egress
            .authorization
            .chunks(MAX_AUTHORIZATION_RULES)
            .enumerate()
        {
            sink.object(&EgressAuthorization {
                name: numbered(EGRESS_NAME, i),
                namespace: RESERVED_NAMESPACE,
                rules,
                selector: selector.clone(),
                labels: self.labels(&[]),
            })?;
        }
        for lockdown in &egress.lockdown {
            sink.object(&WanLockdown {
                name: LOCKDOWN_NAME,
                lockdown,
                labels: self.labels(&[]),
            })?;
        }
        Ok(())
    }

    fn export_objects(&self, export: &ExportPlan, sink: &mut impl Sink) -> Result<(), Error> {
        let service = (SERVICE_LABEL, export.name.as_str());
        let mut labels = export.labels.clone();
        labels.extend(self.labels(&[service]));
        sink.object(&ServiceExport {
            export,
            mcs_api_version: self.shared.mcs_api_version,
            labels,
        })?;
        for route in &export.routes {
            sink.object(&HttpRoute {
                route,
                namespace: &export.namespace,
                service: &export.name,
                cluster: &self.name,
                gateway_name: GATEWAY_NAME,
                gateway_namespace: RESERVED_NAMESPACE,
                labels: self.labels(&[service, (WAN_POLICY_LABEL, &route.policy)]),
            })?;
        }
        Ok(())
    }

    fn import<'p>(&'p self, import: &'p ImportPlan) -> ImportedService<'p> {
        let ports = import.ports.iter().map(|p| ServiceImportPort {
            port: p.port,
            protocol: "TCP",
            name: p.name.as_deref(),
            app_protocol: p.app_protocol.as_deref(),
        });
        ImportedService {
            import,
            name: format!("{GENERATED_PREFIX}{}", import.name),
            cluster: &self.name,
            labels: self.labels(&[(SERVICE_LABEL, &import.name)]),
            mcs_api_version: self.shared.mcs_api_version,
            ports: ports.collect(),
        }
    }

    /// The labels every generated object carries (who manages it, which cluster it was
    /// rendered for), and `extra`.
    fn labels(&self, extra: &[(&str, &str)]) -> Labels {
        let mut labels = Labels::new();
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        labels.insert(CLUSTER_LABEL.into(), self.name.clone());
        for (key, value) in extra {
            labels.insert((*key).into(), (*value).into());
        }
        labels
    }
}
