//! Stage 4: render one cluster's plan into files, through minijinja templates. Every value
//! a template prints is escaped as JSON (valid YAML), so no name or header can inject
//! YAML. Every rendered object is parsed back, checked against its output schema and
//! re-serialized, so the bytes are canonical. Pure: never touches the filesystem.

mod kustomize;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::embedded::TEMPLATE_FILES;
use crate::error::Error;
use crate::fabric::{Classification, FlowView};
use crate::model::{ClusterId, Vendor};
use crate::plan::{ClusterPlan, Object, Sink};
use crate::schema::{self, Lookup, Schemas};
use crate::verify::facts::Objects;
use kustomize::SortKey;

/// The built-in templates, by path under `templates/`. `--templates DIR` replaces any of
/// them by the same relative path, and may add vendor templates under `sdwan/`.
pub const TEMPLATES: &[(&str, &str)] = TEMPLATE_FILES;

/// The escaping of text templates: values must be plain tokens (see `write_token`).
const TOKEN: &str = "token";

/// Templates under this prefix render the fabric, once per render, to `<OUT>/sdwan/`...
const FABRIC_PREFIX: &str = "sdwan/";
/// ...except those under this one, which render once per site, to
/// `<OUT>/sdwan/sites/<cluster>/`.
const SITE_PREFIX: &str = "sdwan/sites/";

/// The built-in vendor templates, each rendered only when the ClusterSet names its vendor
/// (`spec.sdwan.vendor`). Every other template under `sdwan/`, built in or added by
/// `--templates`, renders whatever the vendor: the vendor-neutral files, and a user's own.
const VENDOR_TEMPLATES: &[(Vendor, &str)] =
    &[(Vendor::Cisco, "sdwan/cisco-app-route-policy.txt.j2")];

/// The vendor whose built-in template `name` is, if it is one.
fn vendor_of(name: &str) -> Option<Vendor> {
    VENDOR_TEMPLATES
        .iter()
        .find(|(_, template)| *template == name)
        .map(|(vendor, _)| *vendor)
}

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
    "Service",
    "Deployment",
];

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

/// One cluster's rendered files, and the objects among them that `verify` reads
/// (`VERIFIED_KINDS`), as parsed.
pub struct RenderedCluster {
    pub files: Vec<OutputFile>,
    pub objects: Objects,
    /// How many of the files hold an object, one each: all but the kustomizations.
    pub object_files: usize,
}

/// One cluster's objects for one YAML stream, and those among them that `verify` reads.
pub struct RenderedStream {
    /// The objects, each as render writes its file, in `kubectl kustomize` order
    /// (`write_stream` prints them).
    pub documents: Vec<Vec<u8>>,
    pub objects: Objects,
}

/// What the fabric's templates see.
#[derive(Serialize)]
struct FabricContext<'a> {
    fabric: &'a Classification,
}

/// What a site's templates see: the whole classification, the site and its flows.
#[derive(Serialize)]
struct SiteContext<'a> {
    fabric: &'a Classification,
    site: &'a crate::fabric::Site,
    flows: &'a [FlowView],
}

/// What a `kustomization.yaml` lists.
#[derive(Serialize)]
struct Kustomization<'a> {
    resources: &'a [String],
}

/// Compiled templates and output schemas, shared by every cluster's render.
pub struct Renderer {
    env: Environment<'static>,
    schemas: Schemas,
    layout: Layout,
    /// The names of the templates `--templates` replaced or added.
    overridden: Vec<String>,
    /// The templates whose source renders one kind, literally, that `verify` does not read
    /// (`VERIFIED_KINDS`): `verified_objects` skips them.
    unverified: BTreeSet<String>,
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
        let unverified = sources
            .iter()
            .filter(|(_, source)| !verified(source))
            .map(|(name, _)| name.clone())
            .collect();
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
            overridden: overrides.iter().map(|(name, _)| name.clone()).collect(),
            unverified,
        })
    }

    /// Fails when an override replaces a vendor's template that `vendor` (the ClusterSet's)
    /// does not render: the override would be silently ignored.
    ///
    /// # Errors
    /// A usage error naming the template and the vendor it needs.
    pub fn check_vendor(&self, vendor: Option<Vendor>) -> Result<(), Error> {
        for name in &self.overridden {
            if let Some(needed) = vendor_of(name).filter(|v| Some(*v) != vendor) {
                return Err(Error::Usage(format!(
                    "template override `{name}` replaces the `{0}` vendor's template, which renders only with `spec.sdwan.vendor: {0}` in the ClusterSet; set it, or add your own template under `{FABRIC_PREFIX}` instead",
                    needed.as_str()
                )));
            }
        }
        Ok(())
    }

    /// The same renderer with another directory layout.
    #[must_use]
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Renders the fabric's files, one per template under `sdwan/` but not `sdwan/sites/`;
    /// a vendor's built-in template only when the classification names that vendor.
    ///
    /// # Errors
    /// When a template fails or renders an invalid object.
    pub fn fabric(&self, classification: &Classification) -> Result<Vec<OutputFile>, Error> {
        let context = FabricContext {
            fabric: classification,
        };
        let wanted = |name: &str| vendor_of(name).is_none_or(|v| Some(v) == classification.vendor);
        self.fabric_files(FABRIC_PREFIX, FABRIC_PREFIX, &context, &wanted)
    }

    /// Renders one site's files, one per template under `sdwan/sites/`: the flows its
    /// cluster sends across the fabric, next to the whole classification.
    ///
    /// # Errors
    /// When a template fails or renders an invalid object.
    pub fn site(
        &self,
        classification: &Classification,
        from: ClusterId,
        flows: &[FlowView],
    ) -> Result<Vec<OutputFile>, Error> {
        let site = &classification.sites[from.0];
        let context = SiteContext {
            fabric: classification,
            site,
            flows,
        };
        let directory = format!("{SITE_PREFIX}{}/", site.cluster);
        self.fabric_files(SITE_PREFIX, &directory, &context, &|_: &str| true)
    }

    /// Renders every template directly under `prefix` that `wanted` accepts to `directory`:
    /// YAML ones are parsed back and validated like every object; others are plain text.
    fn fabric_files(
        &self,
        prefix: &str,
        directory: &str,
        context: &impl Serialize,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<OutputFile>, Error> {
        let mut files = Vec::new();
        for (name, template) in self.env.templates().filter(|(name, _)| wanted(name)) {
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

    /// Renders every file of one cluster's directory, `kustomization.yaml` included.
    /// `agrees` is asked of every object before it is written: whether the fabric carries
    /// what it sends or receives.
    ///
    /// # Errors
    /// When a template fails, or renders an object its output schema, Istio or `agrees`
    /// rejects.
    pub fn cluster(
        &self,
        plan: &ClusterPlan,
        agrees: &dyn Fn(&Value) -> Result<(), String>,
    ) -> Result<RenderedCluster, Error> {
        let (mut rendered, _) = self.objects(plan, agrees, true)?;
        let kustomizations = self.kustomizations(&plan.name, &rendered.files)?;
        rendered.files.extend(kustomizations);
        rendered.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(rendered)
    }

    /// Renders the objects of one cluster directory, as `cluster` does, into one YAML
    /// stream in the order `kubectl kustomize` builds the directory in (`kustomize`).
    ///
    /// # Errors
    /// As `cluster`.
    pub fn stream(
        &self,
        plan: &ClusterPlan,
        agrees: &dyn Fn(&Value) -> Result<(), String>,
    ) -> Result<RenderedStream, Error> {
        let (rendered, keys) = self.objects(plan, agrees, true)?;
        let mut files: Vec<(SortKey, OutputFile)> = keys.into_iter().zip(rendered.files).collect();
        files.sort_by(|(a, _), (b, _)| a.legacy_order(b));
        Ok(RenderedStream {
            documents: files.into_iter().map(|(_, file)| file.bytes).collect(),
            objects: rendered.objects,
        })
    }

    /// The objects of a plan that `verify` reads, rendered and checked as `cluster`
    /// renders them, in no file, and without the templates of other kinds: the other
    /// clusters' gateways, which `render --cluster` verifies its cluster's flows against.
    ///
    /// # Errors
    /// As `cluster`.
    pub fn verified_objects(
        &self,
        plan: &ClusterPlan,
        agrees: &dyn Fn(&Value) -> Result<(), String>,
    ) -> Result<Objects, Error> {
        Ok(self.objects(plan, agrees, false)?.0.objects)
    }

    /// Every object file of one cluster directory (none without `files`), in the plan's
    /// order, each with the key kustomize sorts it by.
    fn objects(
        &self,
        plan: &ClusterPlan,
        agrees: &dyn Fn(&Value) -> Result<(), String>,
        files: bool,
    ) -> Result<(RenderedCluster, Vec<SortKey>), Error> {
        let mut sink = ClusterSink {
            renderer: self,
            cluster: &plan.name,
            agrees,
            files,
            rendered: RenderedCluster {
                files: Vec::new(),
                objects: Objects::default(),
                object_files: 0,
            },
            keys: Vec::new(),
        };
        plan.objects(&mut sink)?;
        let mut rendered = sink.rendered;
        rendered.object_files = rendered.files.len();
        Ok((rendered, sink.keys))
    }

    /// The cluster's `kustomization.yaml`, listing every file (or, in the namespace
    /// layout, every directory, each with its own).
    fn kustomizations(
        &self,
        cluster: &str,
        files: &[OutputFile],
    ) -> Result<Vec<OutputFile>, Error> {
        let prefix = format!("{cluster}/");
        let mut resources: Vec<String> = files
            .iter()
            .map(|f| f.path.strip_prefix(&prefix).unwrap_or(&f.path).to_string())
            .collect();
        resources.sort_unstable();
        let mut out = Vec::new();
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
                out.push(self.render_file(
                    "kustomization.yaml.j2",
                    &Kustomization { resources: listed },
                    path,
                )?);
            }
            resources = by_directory.into_keys().collect();
        }
        out.push(self.render_file(
            "kustomization.yaml.j2",
            &Kustomization {
                resources: &resources,
            },
            format!("{cluster}/kustomization.yaml"),
        )?);
        Ok(out)
    }

    fn render_file(
        &self,
        template: &str,
        context: &impl Serialize,
        path: String,
    ) -> Result<OutputFile, Error> {
        serialize(&self.render_value(template, context)?, path)
    }

    fn render_value(&self, template: &str, context: &impl Serialize) -> Result<Value, Error> {
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

/// Turns a cluster's objects into files, checking each on the way.
struct ClusterSink<'r> {
    renderer: &'r Renderer,
    cluster: &'r str,
    agrees: &'r dyn Fn(&Value) -> Result<(), String>,
    /// Whether each object gets its file; else only the objects `verify` reads are kept.
    files: bool,
    rendered: RenderedCluster,
    /// The sort key of each file of `rendered`, in the same order.
    keys: Vec<SortKey>,
}

impl ClusterSink<'_> {
    /// Files the object, and keeps it when `verify` reads it; `template` names where it
    /// comes from.
    fn keep(&mut self, template: &str, value: Value) -> Result<(), Error> {
        if self.files {
            self.rendered
                .files
                .push(file_for(self.cluster, template, &value)?);
            self.keys.push(SortKey::of(&value));
        }
        if VERIFIED_KINDS.iter().any(|k| value["kind"] == *k) {
            self.rendered.objects.push(value);
        }
        Ok(())
    }
}

impl Sink for ClusterSink<'_> {
    fn object<O: Object>(&mut self, context: &O) -> Result<(), Error> {
        for template in O::TEMPLATES {
            if !self.files && self.renderer.unverified.contains(*template) {
                continue;
            }
            let value = self.renderer.render_value(template, context)?;
            istio_rules(&value).map_err(|problem| {
                Error::Internal(format!(
                    "template `{template}` breaks an Istio rule: {problem}"
                ))
            })?;
            (self.agrees)(&value).map_err(|problem| {
                Error::Internal(format!(
                    "template `{template}` disagrees with the SD-WAN classification: {problem}"
                ))
            })?;
            self.keep(template, value)?;
        }
        Ok(())
    }

    /// User objects were validated against their schema on input; they pass unchanged
    /// but for a canonical key order, so that how they were written never shows.
    fn passthrough(&mut self, object: &Value) -> Result<(), Error> {
        self.keep("(pass-through)", canonical_order(object))
    }
}

/// Whether a template may render an object `verify` reads: unless its one `kind:` line
/// names, literally, a kind outside `VERIFIED_KINDS`.
fn verified(source: &str) -> bool {
    let kinds: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("kind:"))
        .map(str::trim)
        .collect();
    match kinds.as_slice() {
        [kind] if kind.chars().all(|c| c.is_ascii_alphanumeric()) => VERIFIED_KINDS.contains(kind),
        _ => true,
    }
}

/// Writes documents as one YAML stream, separated by `---` lines.
///
/// # Errors
/// When `out` fails.
pub fn write_stream(documents: &[Vec<u8>], out: &mut impl std::io::Write) -> std::io::Result<()> {
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.write_all(b"---\n")?;
        }
        out.write_all(document)?;
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
    // `none` would print as the word: a missing value (a colour without a vendor) fails.
    if value.is_none() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "a value is none and cannot be written into a text template (test it with `if`)",
        ));
    }
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
    // Held until the cluster is written or streamed: no spare capacity.
    let mut bytes = text.into_bytes();
    bytes.shrink_to_fit();
    Ok(OutputFile { path, bytes })
}

/// A file name segment built from a validated name: lowercase DNS characters only.
fn is_path_safe(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::{Class, Site, SlaView};
    use crate::model::WholeSla;

    /// `verified_objects` skips exactly the built-in templates of kinds verify does not
    /// read, and a template whose kind is not a literal is never skipped.
    #[test]
    fn only_templates_of_unread_kinds_are_skipped_for_verification() {
        let renderer = Renderer::new(&[]).unwrap();
        let skipped: Vec<&str> = renderer.unverified.iter().map(String::as_str).collect();
        assert_eq!(
            skipped,
            [
                "egress-serviceaccount.yaml.j2",
                "kustomization.yaml.j2",
                "namespace.yaml.j2",
                "networkpolicy.yaml.j2",
                "sdwan/classes.yaml.j2",
                "sdwan/sites/flows.yaml.j2",
                "serviceexport.yaml.j2",
                "serviceimport.yaml.j2",
                "telemetry.yaml.j2",
                "wanpolicy-crd.yaml.j2",
                "wanpolicy.yaml.j2",
            ]
        );
        assert!(verified("apiVersion: v1\nkind: {{ kind }}\n"));
        assert!(verified("kind: ServiceExport\n---\nkind: Gateway\n"));
        assert!(!verified("kind: ServiceExport \n"));
    }

    /// A classification of one class on tunnel `gold` and one site, with `vendor`; the
    /// colour is there exactly when a vendor is, as `fabric::classify` makes it.
    fn classification(vendor: Option<Vendor>) -> Classification {
        let whole = WholeSla {
            jitter_ms: 50,
            latency_ms: 100,
            loss_percent: 1,
        };
        Classification {
            clusterset: "demo".into(),
            vendor,
            vpns: vec![1],
            sites: vec![Site {
                cluster: "one".into(),
                site: 100,
                region: "eu".into(),
                gateway_address: "10.0.0.1".into(),
            }],
            classes: vec![Class {
                policy: "high".into(),
                short_name: "high".into(),
                tunnel: "gold".into(),
                color: vendor.map(|_| "gold".into()),
                port: 31111,
                sla: SlaView {
                    jitter_ms: 50.into(),
                    latency_ms: 100.into(),
                    loss_percent: 1.into(),
                },
                fallback: None,
                whole_sla: whole,
            }],
        }
    }

    #[test]
    fn vendor_templates_are_built_in() {
        for (vendor, name) in VENDOR_TEMPLATES {
            assert!(
                TEMPLATES.iter().any(|(n, _)| n == name),
                "{}: {name}",
                vendor.as_str()
            );
        }
    }

    /// For every vendor choice, with and without a user's own template: a vendor's file
    /// renders exactly when the ClusterSet names that vendor; the vendor-neutral files and
    /// the user's template always do.
    #[test]
    fn a_vendor_file_renders_exactly_when_its_vendor_is_chosen() {
        let own = (
            "sdwan/acme.conf.j2".to_string(),
            "sites {{ fabric.sites | length }}\n".to_string(),
        );
        let choices = std::iter::once(None).chain(Vendor::ALL.iter().copied().map(Some));
        for vendor in choices {
            for overrides in [vec![], vec![own.clone()]] {
                let renderer = Renderer::new(&overrides).unwrap();
                assert!(renderer.check_vendor(vendor).is_ok());
                let files = renderer.fabric(&classification(vendor)).unwrap();
                let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                for (template_vendor, name) in VENDOR_TEMPLATES {
                    let output = name.trim_end_matches(".j2");
                    assert_eq!(
                        paths.contains(&output),
                        vendor == Some(*template_vendor),
                        "{vendor:?}: {paths:?}"
                    );
                }
                assert!(paths.contains(&"sdwan/classes.yaml"), "{paths:?}");
                assert_eq!(
                    paths.contains(&"sdwan/acme.conf"),
                    !overrides.is_empty(),
                    "{paths:?}"
                );
            }
        }
    }

    /// An override of a vendor's template is refused unless that vendor is chosen: it
    /// would never render.
    #[test]
    fn an_override_of_a_vendor_template_needs_its_vendor() {
        for (template_vendor, name) in VENDOR_TEMPLATES {
            let renderer = Renderer::new(&[((*name).to_string(), "x\n".to_string())]).unwrap();
            assert!(renderer.check_vendor(Some(*template_vendor)).is_ok());
            assert!(matches!(
                renderer.check_vendor(None),
                Err(Error::Usage(message)) if message.contains(template_vendor.as_str())
            ));
        }
    }
}
