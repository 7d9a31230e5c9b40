//! Stage 4: render one cluster's plan into files, through minijinja templates. Every value
//! a template prints is escaped as JSON (valid YAML), so no name or header can inject
//! YAML. Every rendered object is parsed back, checked against its output schema and
//! re-serialized, so the bytes are canonical. Pure: never touches the filesystem.

mod crd;
mod yaml;

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{json, Value};

use crate::conventions::{
    CLUSTER_LABEL, GATEWAY_NAME, MANAGED_BY, RESERVED_NAMESPACE, SERVICE_LABEL, WAN_POLICY_LABEL,
};
use crate::error::Error;
use crate::fabric::{self, Classification, SiteFlows};
use crate::model::Model;
use crate::plan::{ClusterPlan, ImportPlan};
use crate::schema::{self, Lookup, Schemas};

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// The built-in templates, by path under `templates/`. `--templates DIR` replaces any of
/// them by the same relative path, and may add vendor templates under `sdwan/`.
pub const TEMPLATES: &[(&str, &str)] = templates![
    "namespace.yaml.j2",
    "wanpolicy-crd.yaml.j2",
    "wanpolicy.yaml.j2",
    "gateway.yaml.j2",
    "gateway-options.yaml.j2",
    "serviceexport.yaml.j2",
    "httproute.yaml.j2",
    "serviceimport.yaml.j2",
    "serviceentry.yaml.j2",
    "destinationrule.yaml.j2",
    "virtualservice.yaml.j2",
    "kustomization.yaml.j2",
    "telemetry.yaml.j2",
    "authorizationpolicy.yaml.j2",
    "virtualhost.yaml.j2",
    "sdwan/classes.yaml.j2",
    "sdwan/cisco-app-route-policy.txt.j2",
    "sdwan/sites/flows.yaml.j2",
];

/// The escaping of text templates: values must be plain tokens (see `write_token`).
const TOKEN: &str = "token";

/// Templates under this prefix render the fabric, once per render, to `<OUT>/sdwan/`...
const FABRIC_PREFIX: &str = "sdwan/";
/// ...except those under this one, which render once per site, to
/// `<OUT>/sdwan/sites/<cluster>/`.
const SITE_PREFIX: &str = "sdwan/sites/";

/// Reads one rendered YAML document, the way render reads its own output back.
///
/// # Errors
/// When the text is not YAML.
pub fn parse_yaml(text: &str) -> Result<Value, yaml_serde::Error> {
    yaml::from_str(text)
}

/// The kinds `verify` reads: what the proxies are configured from.
pub const VERIFIED_KINDS: &[&str] = &[
    "VirtualService",
    "ServiceEntry",
    "DestinationRule",
    "Gateway",
    "HTTPRoute",
    "AuthorizationPolicy",
    "ConfigMap",
];

/// The ConfigMap Istio reads Gateway deployment customizations from.
const GATEWAY_OPTIONS_NAME: &str = "mcw-ingress-options";

/// One rendered file, with its path relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// How each cluster directory is split into kustomizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Layout {
    /// One `kustomization.yaml` per cluster listing every file.
    #[default]
    Cluster,
    /// One `kustomization.yaml` per namespace directory, which Argo CD or Flux can apply as
    /// separate units; the cluster's lists the directories, so it still builds whole.
    Namespace,
}

/// Compiled templates and output schemas, shared by every cluster's render.
pub struct Renderer {
    env: Environment<'static>,
    schemas: Schemas,
    layout: Layout,
}

impl Renderer {
    /// Compiles the built-in templates, replaced by any override of the same name.
    ///
    /// # Errors
    /// When a template does not compile.
    pub fn new(overrides: &[(String, String)]) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".yaml.j2") || name.ends_with(".json.j2") {
                AutoEscape::Json
            } else {
                AutoEscape::Custom(TOKEN.into())
            }
        });
        env.set_formatter(|out, state, value| match state.auto_escape() {
            AutoEscape::Custom(name) if name == TOKEN => write_token(out, value),
            _ => minijinja::escape_formatter(out, state, value),
        });
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
        env.add_filter(
            "yaml",
            |value: minijinja::Value| -> Result<String, minijinja::Error> {
                yaml::emitted(&value).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
                })
            },
        );
        for (name, _) in overrides {
            let known = TEMPLATES.iter().any(|(n, _)| n == name);
            if !known && !name.starts_with(FABRIC_PREFIX) {
                return Err(Error::Usage(format!(
                    "template override `{name}` replaces no built-in template; only `{FABRIC_PREFIX}` may gain new ones"
                )));
            }
            let output = name.strip_suffix(".j2").unwrap_or(name);
            let file = output
                .strip_prefix(SITE_PREFIX)
                .or_else(|| output.strip_prefix(FABRIC_PREFIX));
            // `sdwan/sites.j2` would write a file where the sites' directory goes.
            let clash = format!("{output}/") == SITE_PREFIX;
            if let Some(file) = file.filter(|f| !is_path_safe(f) || clash) {
                return Err(Error::Usage(format!(
                    "template `{name}` would write `{file}`, which is not a plain file name directly in `{FABRIC_PREFIX}` or `{SITE_PREFIX}<cluster>/` (`{SITE_PREFIX}` holds the sites)"
                )));
            }
        }
        let builtin = TEMPLATES
            .iter()
            .map(|(n, s)| ((*n).to_string(), (*s).to_string()));
        let mut sources: BTreeMap<String, String> = builtin.collect();
        sources.extend(overrides.iter().cloned());
        for (name, source) in sources {
            env.add_template_owned(name.clone(), source)
                .map_err(|e| Error::Template {
                    name,
                    message: e.to_string(),
                })?;
        }
        Ok(Renderer {
            env,
            schemas: Schemas::output(),
            layout: Layout::default(),
        })
    }

    /// The same renderer with another directory layout.
    #[must_use]
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Renders the fabric's files, one per template under `sdwan/` but not `sdwan/sites/`.
    ///
    /// # Errors
    /// When a template fails or renders an invalid object.
    pub fn fabric(&self, classification: &Classification) -> Result<Vec<OutputFile>, Error> {
        let context = json!({ "fabric": classification });
        self.fabric_files(FABRIC_PREFIX, FABRIC_PREFIX, &context)
    }

    /// Renders one site's files, one per template under `sdwan/sites/`: the flows its
    /// cluster sends across the fabric, next to the whole classification.
    ///
    /// # Errors
    /// When a template fails or renders an invalid object.
    pub fn site(
        &self,
        model: &Model,
        classification: &Classification,
        flows: &SiteFlows,
    ) -> Result<Vec<OutputFile>, Error> {
        let site = &classification.sites[flows.from];
        let context =
            json!({ "fabric": classification, "site": site, "flows": flows.views(model) });
        let directory = format!("{SITE_PREFIX}{}/", site.cluster);
        self.fabric_files(SITE_PREFIX, &directory, &context)
    }

    /// Renders every template directly under `prefix` to `directory`: YAML ones are parsed
    /// back and validated like every object; others are plain text.
    fn fabric_files(
        &self,
        prefix: &str,
        directory: &str,
        context: &Value,
    ) -> Result<Vec<OutputFile>, Error> {
        let mut files = Vec::new();
        for (name, template) in self.env.templates() {
            // Directly under `prefix`: `Renderer::new` made every name under `sdwan/` either
            // that or a site's template, whose `sites/` leaves a `/`.
            let Some(output) = name
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(".j2"))
                .filter(|n| !n.contains('/'))
            else {
                continue;
            };
            let path = format!("{directory}{output}");
            files.push(if name.ends_with(".yaml.j2") {
                self.render_file(name, context, path)?
            } else {
                let mut text = template
                    .render(minijinja::value::Serde(context))
                    .map_err(|e| Error::Template {
                        name: name.to_string(),
                        message: format!("{e:#}"),
                    })?;
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                OutputFile {
                    path,
                    bytes: text.into_bytes(),
                }
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Renders every file of cluster `c`'s directory, `kustomization.yaml` included.
    ///
    /// # Errors
    /// When a template fails, or renders an object its output schema rejects.
    pub fn cluster(
        &self,
        model: &Model,
        c: usize,
        cluster_plan: &ClusterPlan,
    ) -> Result<Vec<OutputFile>, Error> {
        Ok(self.cluster_objects(model, c, cluster_plan)?.0)
    }

    /// `cluster`, with the rendered objects `verify` reads (`VERIFIED_KINDS`), as parsed.
    ///
    /// # Errors
    /// When a template fails, or renders an object its output schema rejects.
    pub fn cluster_objects(
        &self,
        model: &Model,
        c: usize,
        cluster_plan: &ClusterPlan,
    ) -> Result<(Vec<OutputFile>, Vec<Value>), Error> {
        let cluster = cluster_plan.name.as_str();
        let mut files = Vec::new();
        let mut verified = Vec::new();
        let mut keep = |value: Value| {
            if VERIFIED_KINDS.iter().any(|k| value["kind"] == *k) {
                verified.push(value);
            }
        };
        let mut object = |template: &str, context: &Value| -> Result<(), Error> {
            let value = self.render_value(template, context)?;
            istio_rules(&value).map_err(|problem| {
                Error::Internal(format!(
                    "template `{template}` breaks an Istio rule: {problem}"
                ))
            })?;
            fabric::verify(model, c, &value).map_err(|problem| {
                Error::Internal(format!(
                    "template `{template}` disagrees with the SD-WAN classification: {problem}"
                ))
            })?;
            files.push(file_for(cluster, template, &value)?);
            keep(value);
            Ok(())
        };

        object(
            "namespace.yaml.j2",
            &json!({"namespace": RESERVED_NAMESPACE, "labels": labels(cluster, &[])}),
        )?;
        let wan_policy_input: Value =
            serde_json::from_str(include_str!("../../schemas/input/wanpolicy.json"))
                .map_err(|e| Error::Internal(e.to_string()))?;
        object(
            "wanpolicy-crd.yaml.j2",
            &json!({"schema": crd::wan_policy_schema(&wan_policy_input), "labels": labels(cluster, &[])}),
        )?;
        for policy in model.policies.values() {
            let context = json!({
                "policy": {
                    "name": policy.name, "tunnel": policy.tunnel, "port": policy.port,
                    "sla": {"jitterMs": policy.sla.jitter_ms, "latencyMs": policy.sla.latency_ms, "lossPercent": policy.sla.loss_percent},
                },
                "labels": labels(cluster, &[(WAN_POLICY_LABEL, &policy.name)]),
            });
            object("wanpolicy.yaml.j2", &context)?;
        }
        let tracing = &model.clusterset.tracing;
        exports(
            cluster_plan,
            &mut object,
            model.clusterset.mcs_version.api_version(),
            &model.clusterset.gateway_class_name,
            &json!({"sampling_percent": tracing.sampling_percent, "provider": tracing.provider}),
        )?;
        for import in &cluster_plan.imports {
            import_objects(
                cluster,
                import,
                model.clusterset.mcs_version.api_version(),
                &mut object,
            )?;
        }

        for vhost in &cluster_plan.virtual_hosts {
            object(
                "virtualhost.yaml.j2",
                &json!({"vhost": vhost, "labels": labels(cluster, &[])}),
            )?;
        }
        // User objects were validated against their schema on input; they pass unchanged
        // but for a canonical key order, so that how they were written never shows.
        for passthrough in &cluster_plan.passthrough {
            files.push(file_for(
                cluster,
                "(pass-through)",
                &canonical_order(passthrough),
            )?);
            keep(passthrough.clone());
        }

        let prefix = format!("{cluster}/");
        let mut resources: Vec<String> = files
            .iter()
            .map(|f| f.path.strip_prefix(&prefix).unwrap_or(&f.path).to_string())
            .collect();
        resources.sort_unstable();
        if self.layout == Layout::Namespace {
            let mut by_directory: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for resource in &resources {
                let (directory, file) = resource.split_once('/').unwrap_or(("", resource));
                by_directory
                    .entry(directory.to_string())
                    .or_default()
                    .push(file.to_string());
            }
            for (directory, listed) in &by_directory {
                let path = format!("{cluster}/{directory}/kustomization.yaml");
                files.push(self.render_file(
                    "kustomization.yaml.j2",
                    &json!({"resources": listed}),
                    path,
                )?);
            }
            resources = by_directory.into_keys().collect();
        }
        let kustomization = self.render_file(
            "kustomization.yaml.j2",
            &json!({"resources": resources}),
            format!("{cluster}/kustomization.yaml"),
        )?;
        files.push(kustomization);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((files, verified))
    }

    fn render_file(
        &self,
        template: &str,
        context: &Value,
        path: String,
    ) -> Result<OutputFile, Error> {
        serialize(&self.render_value(template, context)?, path)
    }

    fn render_value(&self, template: &str, context: &Value) -> Result<Value, Error> {
        let failed = |message: String| Error::Template {
            name: template.to_string(),
            message,
        };
        let text = self
            .env
            .get_template(template)
            .and_then(|t| t.render(minijinja::value::Serde(context)))
            .map_err(|e| failed(format!("{e:#}")))?;
        let value: Value = yaml::from_str(&text)
            .map_err(|e| failed(format!("rendered invalid YAML: {e}\n{text}")))?;
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        let kind = value["kind"].as_str().unwrap_or_default();
        match self.schemas.lookup(api_version, kind) {
            Lookup::Found(validator, schema) => {
                let problems = schema::violations(validator, schema, &value);
                if !problems.is_empty() {
                    return Err(failed(format!(
                        "rendered {kind} violates the upstream API schema: {problems:?}"
                    )));
                }
                Ok(value)
            }
            _ => Err(failed(format!(
                "rendered `{api_version}` `{kind}`, which mcwan has no output schema for"
            ))),
        }
    }
}

fn exports(
    plan: &ClusterPlan,
    object: &mut impl FnMut(&str, &Value) -> Result<(), Error>,
    mcs_api_version: &str,
    gateway_class_name: &str,
    tracing: &Value,
) -> Result<(), Error> {
    let cluster = plan.name.as_str();
    if let Some(gateway) = &plan.gateway {
        object(
            "gateway.yaml.j2",
            &json!({
                "name": GATEWAY_NAME, "namespace": RESERVED_NAMESPACE, "gateway": gateway,
                "gateway_class_name": gateway_class_name, "options_name": GATEWAY_OPTIONS_NAME,
                "labels": labels(cluster, &[]),
            }),
        )?;
        object(
            "telemetry.yaml.j2",
            &json!({
                "name": GATEWAY_NAME, "namespace": RESERVED_NAMESPACE, "gateway_name": GATEWAY_NAME,
                "cluster": cluster, "tracing": tracing, "labels": labels(cluster, &[]),
            }),
        )?;
        let policies = [
            ("DENY", "deny", &gateway.authorization.deny),
            ("ALLOW", "allow", &gateway.authorization.allow),
        ];
        for (action, suffix, rules) in policies {
            if !rules.is_empty() {
                object(
                    "authorizationpolicy.yaml.j2",
                    &json!({
                        "name": format!("{GATEWAY_NAME}-{suffix}"), "namespace": RESERVED_NAMESPACE,
                        "gateway_name": GATEWAY_NAME, "action": action, "rules": rules,
                        "labels": labels(cluster, &[]),
                    }),
                )?;
            }
        }
        if gateway.pin_node_ports {
            let ports: Vec<Value> = gateway
                .listeners
                .iter()
                .map(|l| json!({"port": l.port, "nodePort": l.port, "protocol": "TCP"}))
                .collect();
            object(
                "gateway-options.yaml.j2",
                &json!({
                    "name": GATEWAY_OPTIONS_NAME, "namespace": RESERVED_NAMESPACE,
                    "service_patch": {"spec": {"ports": ports}}, "labels": labels(cluster, &[]),
                }),
            )?;
        }
    }
    for export in &plan.exports {
        let service = [(SERVICE_LABEL, export.name.as_str())];
        object(
            "serviceexport.yaml.j2",
            &json!({"export": export, "mcs_api_version": mcs_api_version, "labels": user_labels(cluster, &export.labels, &service)}),
        )?;
        for route in &export.routes {
            object(
                "httproute.yaml.j2",
                &json!({
                    "route": route, "namespace": export.namespace, "service": export.name, "cluster": cluster,
                    "gateway_name": GATEWAY_NAME, "gateway_namespace": RESERVED_NAMESPACE,
                    "labels": labels(cluster, &[service[0], (WAN_POLICY_LABEL, &route.policy)]),
                }),
            )?;
        }
    }
    Ok(())
}

fn import_objects(
    cluster: &str,
    import: &ImportPlan,
    mcs_api_version: &str,
    object: &mut impl FnMut(&str, &Value) -> Result<(), Error>,
) -> Result<(), Error> {
    let labels = labels(cluster, &[(SERVICE_LABEL, &import.name)]);
    let name = format!("mcw-{}", import.name);
    let ports: Vec<Value> = import
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({"port": p.port, "protocol": "TCP"});
            if let Some(name) = &p.name {
                port["name"] = json!(name);
            }
            if let Some(app_protocol) = &p.app_protocol {
                port["appProtocol"] = json!(app_protocol);
            }
            port
        })
        .collect();
    let context = json!({
        "import": import, "name": name, "cluster": cluster, "labels": labels,
        "mcs_api_version": mcs_api_version, "ports": ports,
    });
    for template in [
        "serviceimport.yaml.j2",
        "serviceentry.yaml.j2",
        "destinationrule.yaml.j2",
        "virtualservice.yaml.j2",
    ] {
        object(template, &context)?;
    }
    Ok(())
}

/// Files one rendered object under `<cluster>/<namespace or _cluster>/<kind>-<name>.yaml`.
fn file_for(cluster: &str, template: &str, value: &Value) -> Result<OutputFile, Error> {
    let kind = value["kind"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let directory = value["metadata"]["namespace"]
        .as_str()
        .unwrap_or("_cluster");
    for segment in [kind.as_str(), name, directory] {
        if !is_path_safe(segment) {
            return Err(Error::Internal(format!(
                "template `{template}` rendered an unsafe file name segment `{segment}`"
            )));
        }
    }
    let path = format!("{cluster}/{directory}/{kind}-{name}.yaml");
    serialize(value, path)
}

/// `apiVersion`, `kind`, `metadata`, `spec` first, every other key sorted, at every level.
fn canonical_order(value: &Value) -> Value {
    const FIRST: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()),
                    k.as_str(),
                )
            });
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical_order(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_order).collect()),
        other => other.clone(),
    }
}

/// Rules istiod enforces on a DestinationRule's locality settings beyond its schema, checked
/// here so that a violation fails the render instead of the sync: failover names regions
/// (no `/`), never from a region to itself, and is never combined with `distribute`.
fn istio_rules(object: &Value) -> Result<(), String> {
    if object["kind"] != "DestinationRule" {
        return Ok(());
    }
    let spec = &object["spec"];
    let policies = std::iter::once(&spec["trafficPolicy"]).chain(
        spec["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| &s["trafficPolicy"]),
    );
    for policy in policies {
        let locality = &policy["loadBalancer"]["localityLbSetting"];
        let failover = locality["failover"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if !failover.is_empty() && locality.get("distribute").is_some() {
            return Err("`distribute` and `failover` are both set".into());
        }
        for entry in failover {
            let (from, to) = (
                entry["from"].as_str().unwrap_or_default(),
                entry["to"].as_str().unwrap_or_default(),
            );
            if from == to || from.contains('/') || to.contains('/') {
                return Err(format!(
                    "failover from `{from}` to `{to}` is not between two different regions"
                ));
            }
        }
    }
    Ok(())
}

/// Writes a value into a text (non-YAML) template: only numbers and plain tokens (DNS
/// names, IP addresses, colours) may appear, so no value can change the file's syntax.
fn write_token(
    out: &mut minijinja::Output,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    let text = value.to_string();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:/".contains(&b));
    if !plain {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("`{text}` is not a plain token and cannot be written into a text template"),
        ));
    }
    out.write_str(&text).map_err(minijinja::Error::from)
}

fn serialize(value: &Value, path: String) -> Result<OutputFile, Error> {
    let text = yaml::to_string(value).map_err(|e| Error::Internal(format!("{path}: {e}")))?;
    Ok(OutputFile {
        path,
        bytes: text.into_bytes(),
    })
}

/// A file name segment built from a validated name: lowercase DNS characters only.
fn is_path_safe(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
        })
}

/// The labels every generated object carries: who manages it and where it comes from.
fn labels(cluster: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    user_labels(cluster, &BTreeMap::new(), extra)
}

fn user_labels(
    cluster: &str,
    user: &BTreeMap<String, String>,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut labels = user.clone();
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert(CLUSTER_LABEL.into(), cluster.into());
    for (key, value) in extra {
        labels.insert((*key).into(), (*value).into());
    }
    labels
}
