//! The seed's imperative verbs (`mcwanctl export/unexport/import/unimport`) as edits to the
//! declarations repository. Pure: given the files as read, it returns the files to write
//! or delete; `run` validates the edited repository before `emit` writes anything. Edits
//! touch as little text as they can, so the user's other files, other documents, comments
//! and formatting survive, and each verb undoes the other byte for byte. An edit inside a
//! file that holds more than the edited object is read back before it is proposed: the
//! file's other documents must come out unchanged, or the verb refuses.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use serde_json::Value;

use crate::check::names::is_dns1123_label;
use crate::conventions::{
    ALLOWED_CLUSTERS_ANNOTATION, ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, POLICY_ANNOTATION,
};
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
use crate::load::{self, Content, InputFile, Limits};
use crate::model::{Export, Model, ServiceKey};
use crate::plan::{GlobalService, Plan};
use crate::source::{pointer_segment, Place, Sources};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Export,
    Unexport,
    Import,
    Unimport,
}

/// One verb with its arguments.
#[derive(Debug, Clone)]
pub struct Request {
    pub verb: Verb,
    pub namespace: String,
    pub name: String,
    pub cluster: String,
    /// `export` only: a policy name, or a part of one that no other policy name contains
    /// (`high`).
    pub wan_policy: Option<String>,
    /// `import` only: when the cluster gains the namespace, import this service alone and
    /// opt out of the namespace's other exported services.
    pub only: bool,
}

impl Request {
    /// What the request asks for, as messages name it: ``export `secure/payment` from `c` ``.
    #[must_use]
    pub fn what(&self) -> String {
        let (verb, preposition) = match self.verb {
            Verb::Export => ("export", "from"),
            Verb::Unexport => ("unexport", "from"),
            Verb::Import => ("import", "into"),
            Verb::Unimport => ("unimport", "from"),
        };
        format!(
            "{verb} `{}/{}` {preposition} `{}`",
            self.namespace, self.name, self.cluster
        )
    }
}

/// A file to write (`Some`) or delete (`None`), relative to the repository.
pub type Write = (String, Option<String>);

/// The edit a request makes (nothing, when the repository already says what it asks), and
/// what to tell the user: what it did, and what follows from it.
///
/// # Errors
/// A message saying why the request cannot be carried out.
pub fn apply(
    request: &Request,
    files: &[InputFile],
    sources: &Sources,
    model: &Model,
    limits: Limits,
) -> Result<(Vec<Write>, String), String> {
    let Request {
        namespace, name, ..
    } = request;
    if !is_dns1123_label(namespace) || !is_dns1123_label(name) {
        return Err(format!(
            "`{namespace}/{name}` is not NAMESPACE/NAME with DNS-1123 labels"
        ));
    }
    let clusters = &model.clusterset.clusters;
    let Some(c) = clusters.iter().position(|x| x.name == request.cluster) else {
        let names: Vec<&str> = clusters.iter().map(|x| x.name.as_str()).collect();
        return Err(format!(
            "no cluster `{}` in the ClusterSet (clusters: {})",
            request.cluster,
            names.join(", ")
        ));
    };
    let edit = Edit {
        request,
        files,
        sources,
        model,
        limits,
        c,
        service: format!("{namespace}/{name}"),
    };
    match request.verb {
        Verb::Export => edit.export(),
        Verb::Unexport => edit.unexport(),
        Verb::Unimport => edit.unimport(),
        Verb::Import => edit.import(),
    }
}

/// Says, in every diagnostic that points into a file a refused change would have written,
/// that it is about the proposed file: nothing was written, so the file on disk does not
/// exist or does not read like that.
/// `created` lists the files of `writes` that do not exist.
pub fn mark_proposed(diagnostics: &mut [Diagnostic], writes: &[Write], created: &[String]) {
    let proposed = |file: &Path| {
        writes
            .iter()
            .find(|(path, content)| content.is_some() && Path::new(path) == file)
            .map(|(path, _)| created.contains(path))
    };
    for diagnostic in diagnostics {
        let primary = diagnostic.primary.as_ref().map(|l| l.file.as_path());
        match primary.and_then(proposed) {
            Some(false) => diagnostic
                .message
                .push_str(" (in the proposed edit of this file, which was not written)"),
            Some(true) => diagnostic
                .message
                .push_str(" (in the proposed new file, which was not written)"),
            None => {}
        }
        for (location, label) in &mut diagnostic.secondary {
            if proposed(&location.file).is_some() {
                label.push_str(" (proposed, not written)");
            }
        }
    }
}

/// One request, with what it edits.
struct Edit<'a> {
    request: &'a Request,
    files: &'a [InputFile],
    sources: &'a Sources,
    model: &'a Model,
    /// The bounds the repository was read under; an edited file is read back under them.
    limits: Limits,
    /// The cluster's index in the ClusterSet.
    c: usize,
    /// `namespace/name`.
    service: String,
}

impl Edit<'_> {
    /// The request's namespace, name and cluster.
    fn names(&self) -> (&str, &str, &str) {
        let r = self.request;
        (&r.namespace, &r.name, &r.cluster)
    }

    fn path_of(&self, doc: usize) -> String {
        self.sources.files[self.sources.documents[doc].file]
            .path
            .display()
            .to_string()
    }

    fn export(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let policy = match &self.request.wan_policy {
            Some(wanted) => Some(resolve_policy(self.model, wanted)?),
            None => None,
        };
        if let Some(doc) = document(self.sources, "ServiceExport", cluster, namespace, name) {
            return self.re_export(doc, policy.as_deref());
        }
        let path = export_path(cluster, namespace, name);
        if self.files.iter().any(|f| f.path == path) {
            return Err(format!(
                "`{path}` exists already, and does not export `{service}`: move it aside first"
            ));
        }
        let mut annotations: Vec<(&str, String)> = policy
            .iter()
            .map(|p| (POLICY_ANNOTATION, p.clone()))
            .collect();
        // Every exporter of a service admits the same callers: take an existing export's.
        if let Some(other) = self
            .model
            .exports
            .iter()
            .find(|e| e.namespace == namespace && e.name == name)
        {
            for key in [
                ALLOWED_CLUSTERS_ANNOTATION,
                ALLOWED_SERVICE_ACCOUNTS_ANNOTATION,
            ] {
                if let Some(value) = other.annotations.get(key) {
                    annotations.push((key, value.clone()));
                }
            }
        }
        let annotations = if annotations.is_empty() {
            String::new()
        } else {
            let lines: Vec<String> = annotations
                .iter()
                .map(|(k, v)| format!("    {k}: {}\n", json_quoted(v)))
                .collect();
            format!("  annotations:\n{}", lines.concat())
        };
        let content = format!(
            "# Written by `mcwan export {service} --cluster {cluster}`; `mcwan unexport` removes it.\n\
             apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{annotations}"
        );
        let how = policy.map_or_else(
            || "the default WAN policy".to_string(),
            |p| format!("WAN policy `{p}`"),
        );
        Ok((
            vec![(path.clone(), Some(content))],
            format!("exported `{service}` from `{cluster}` over {how}: wrote `{path}`"),
        ))
    }

    /// `export` of a service the cluster exports already: nothing to do, unless another
    /// policy is asked for, which the export's annotation then names.
    fn re_export(&self, doc: usize, policy: Option<&str>) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let path = self.path_of(doc);
        let export = self
            .model
            .exports
            .iter()
            .find(|e| e.cluster.0 == self.c && e.namespace == namespace && e.name == name)
            .ok_or_else(|| format!("the export of `{service}` in `{path}` is not valid"))?;
        let over = self.over(export);
        let Some(policy) = policy else {
            return Ok((
                Vec::new(),
                format!("`{service}` is already exported from `{cluster}` over {over}, in `{path}`: nothing changed"),
            ));
        };
        if export.route.is_some() {
            let route = document(self.sources, "WANRoute", cluster, namespace, name)
                .map(|doc| format!(" in `{}`", self.path_of(doc)))
                .unwrap_or_default();
            return Err(format!(
                "`{service}` is exported from `{cluster}` with a WANRoute{route}, whose rules pick its WAN policies ({over}): change the WANRoute instead"
            ));
        }
        let annotated = export
            .annotations
            .get(POLICY_ANNOTATION)
            .map(String::as_str);
        let default = (export.policies.first()).map(|&p| self.model.policy(p).name.as_str());
        if annotated.or(default) == Some(policy) {
            return Ok((
                Vec::new(),
                format!("`{service}` is already exported from `{cluster}` over {over}, in `{path}`: nothing changed"),
            ));
        }
        let text = &self.sources.files[self.sources.documents[doc].file].text;
        let edited = set_annotation(text, self.sources, doc, POLICY_ANNOTATION, policy)
            .and_then(|edited| {
                let mut value = self.sources.documents[doc].value.clone();
                value["metadata"]["annotations"][POLICY_ANNOTATION] = Value::from(policy);
                self.read_back(doc, &edited, Some(&value))?;
                Ok(edited)
            })
            .map_err(|()| {
                format!("cannot change the `{POLICY_ANNOTATION}` annotation of the export in `{path}` without touching anything else: set it to `{policy}` by hand")
            })?;
        Ok((
            vec![(path.clone(), Some(edited))],
            format!("`{service}` is exported from `{cluster}` over WAN policy `{policy}` now, no longer over {over}: edited its `{POLICY_ANNOTATION}` annotation in `{path}`"),
        ))
    }

    /// The policies an export's traffic takes, as messages name them.
    fn over(&self, export: &Export) -> String {
        let names: Vec<String> = export
            .policies
            .iter()
            .map(|&p| format!("`{}`", self.model.policy(p).name))
            .collect();
        if export.route.is_some() {
            format!("the WAN policies of its WANRoute, {}", names.join(", "))
        } else if export.annotations.contains_key(POLICY_ANNOTATION) {
            format!("WAN policy {}", names.join(", "))
        } else {
            format!("the default WAN policy {}", names.join(", "))
        }
    }

    fn unexport(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let Some(doc) = document(self.sources, "ServiceExport", cluster, namespace, name) else {
            return Err(format!("`{service}` is not exported from `{cluster}`"));
        };
        if let Some(route) = document(self.sources, "WANRoute", cluster, namespace, name) {
            return Err(format!(
                "the WANRoute `{service}` in `{}` refines this export, and would refine nothing without it: remove the WANRoute first",
                self.path_of(route)
            ));
        }
        let file = self.sources.documents[doc].file;
        let path = self.path_of(doc);
        let others = self
            .sources
            .documents
            .iter()
            .filter(|d| d.file == file)
            .count()
            - 1;
        if others == 0 {
            return Ok((
                vec![(path.clone(), None)],
                format!("unexported `{service}` from `{cluster}`: removed `{path}`"),
            ));
        }
        let (line, _) = position(self.sources, doc, "");
        let edited = remove_document(&self.sources.files[file].text, line)
            .and_then(|edited| {
                self.read_back(doc, &edited, None)?;
                Ok(edited)
            })
            .map_err(|()| {
                format!("cannot remove the export from `{path}` without touching its other documents: remove it there by hand")
            })?;
        Ok((
            vec![(path.clone(), Some(edited))],
            format!("unexported `{service}` from `{cluster}`: removed its ServiceExport from `{path}`, which keeps its {others} other document(s)"),
        ))
    }

    /// Reads back `edited`, the proposed text of the file of document `doc`: the file must
    /// hold the same documents as before, with `doc` replaced by `replacement`, or left
    /// out when that is `None`.
    fn read_back(&self, doc: usize, edited: &str, replacement: Option<&Value>) -> Result<(), ()> {
        let file = self.sources.documents[doc].file;
        let expected: Vec<&Value> = (self.sources.documents.iter().enumerate())
            .filter(|(_, d)| d.file == file)
            .filter_map(|(i, d)| {
                if i == doc {
                    replacement
                } else {
                    Some(&d.value)
                }
            })
            .collect();
        let path = self.path_of(doc);
        let mut diagnostics = Diagnostics::default();
        let read = load::parse(
            &[InputFile {
                path,
                content: Content::Text(edited.to_string()),
            }],
            self.limits,
            &mut diagnostics,
        );
        let actual: Vec<&Value> = read.documents.iter().map(|d| &d.value).collect();
        if diagnostics.has_errors() || actual != expected {
            return Err(());
        }
        Ok(())
    }

    fn unimport(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let plan = Plan::new(self.model);
        self.exported(&plan)?;
        let target = &self.model.clusterset.clusters[self.c];
        if !target.imports(namespace, name) {
            return Err(format!("`{cluster}` does not import `{service}`"));
        }
        let (path, text) = clusterset_text(self.files, self.sources)?;
        let text = add_item(&text, self.sources, self.c, "skipImports", service)?;
        Ok((
            vec![(path.clone(), Some(text))],
            format!("`{cluster}` no longer imports `{service}`: added it to the cluster's `skipImports` in `{path}`"),
        ))
    }

    /// The service among the exported ones, or why the verb refuses it.
    fn exported<'p>(&self, plan: &'p Plan) -> Result<&'p GlobalService, String> {
        let (namespace, name, _) = self.names();
        if let Some(global) = plan
            .services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
        {
            return Ok(global);
        }
        let known: Vec<String> = plan
            .services
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect();
        let hint = did_you_mean(&self.service, known.iter().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        Err(format!("no cluster exports `{}`{hint}", self.service))
    }

    /// Undoes an opt-out of the service, and adds its namespace to the cluster if it lacks
    /// it: the cluster then imports every exported service of the namespace it has not
    /// opted out of, or, with `only`, this one, the others becoming opt-outs.
    fn import(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let target = &self.model.clusterset.clusters[self.c];
        let key = ServiceKey::new(namespace, name);
        let plan = Plan::new(self.model);
        let skipped = target.skip_imports.contains(&key);
        // An opt-out of a service nobody exports (a warning) may still be undone.
        let exported = match self.exported(&plan) {
            Ok(global) => Some(global),
            Err(_) if skipped => None,
            Err(why) => return Err(why),
        };
        let adds_namespace = !target.namespaces.contains(namespace);
        if !skipped && !adds_namespace {
            return Ok((
                Vec::new(),
                format!("`{cluster}` already imports `{service}`: nothing changed"),
            ));
        }
        let (path, mut text) = clusterset_text(self.files, self.sources)?;
        let mut done = Vec::new();
        if skipped {
            text = self.reread(&text, |sources, text| {
                remove_item(text, sources, self.c, "skipImports", service)
            })?;
            done.push(format!("removed `{service}` from its `skipImports`"));
        }
        // The namespace's other exported services the cluster would import with it.
        let others: Vec<&GlobalService> = if adds_namespace {
            (plan.services.iter())
                .filter(|s| s.namespace == namespace && s.name != name)
                .filter(|s| !target.opts_out(namespace, &s.name))
                .collect()
        } else {
            Vec::new()
        };
        let opted_out: &[&GlobalService] = if self.request.only { &others } else { &[] };
        if adds_namespace {
            text = self.reread(&text, |sources, text| {
                add_item(text, sources, self.c, "namespaces", namespace)
            })?;
            done.push(format!("added namespace `{namespace}` to it"));
            for other in opted_out {
                let item = format!("{namespace}/{}", other.name);
                text = self.reread(&text, |sources, text| {
                    add_item(text, sources, self.c, "skipImports", &item)
                })?;
            }
            if !opted_out.is_empty() {
                done.push(format!(
                    "and the namespace's {} other exported service(s) to its `skipImports`",
                    opted_out.len()
                ));
            }
        }
        let mut imported: Vec<&GlobalService> = exported.into_iter().collect();
        if !self.request.only {
            imported.extend(&others);
        }
        imported.sort_by(|a, b| a.name.cmp(&b.name));
        let mut message = format!(
            "`{cluster}` imports `{service}`: {} in `{path}`",
            done.join(", ")
        );
        if imported.is_empty() {
            let _ = write!(message, "\n`{cluster}` imports no service it did not before: no cluster exports `{service}`");
        } else {
            let _ = write!(message, "\n`{cluster}` imports from now on:");
            message.push_str(&self.listing(&imported, true));
        }
        if !opted_out.is_empty() {
            let _ = write!(message, "\n`{cluster}` opts out of (`skipImports`):");
            message.push_str(&self.listing(opted_out, false));
        }
        if adds_namespace {
            let _ = write!(
                message,
                "\nwarning: namespace `{namespace}` must exist on `{cluster}`: mcwan renders the imports' objects into it, but creates no Namespace other than `mcw-system`"
            );
        }
        Ok((vec![(path, Some(text))], message))
    }

    /// One line per service: its exporters and, when `how`, its WAN policies and tunnels.
    fn listing(&self, services: &[&GlobalService], how: bool) -> String {
        let model = self.model;
        let width = services
            .iter()
            .map(|s| s.namespace.len() + 1 + s.name.len())
            .max()
            .unwrap_or_default();
        let mut out = String::new();
        for global in services {
            let exporters = global.exporter_names(model);
            let service = format!("{}/{}", global.namespace, global.name);
            let _ = write!(
                out,
                "\n  {service:<width$}  exported by {}",
                exporters.join(", ")
            );
            if how {
                let policies: Vec<String> = global
                    .policies
                    .iter()
                    .map(|&p| {
                        let policy = model.policy(p);
                        format!("{} (tunnel {})", policy.name, policy.tunnel)
                    })
                    .collect();
                let _ = write!(out, ", over {}", policies.join(", "));
            }
        }
        out
    }

    /// `text`, the ClusterSet file, edited by `edit` given the file as read from `text`:
    /// every edit of it finds its lines in the text it changes.
    fn reread(
        &self,
        text: &str,
        edit: impl FnOnce(&Sources, &str) -> Result<String, String>,
    ) -> Result<String, String> {
        let (path, _) = clusterset_text(self.files, self.sources)?;
        let mut diagnostics = Diagnostics::default();
        let sources = load::parse(
            &[InputFile {
                path: path.clone(),
                content: Content::Text(text.to_string()),
            }],
            self.limits,
            &mut diagnostics,
        );
        if diagnostics.has_errors() {
            return Err(format!(
                "cannot read back the edited `{path}`: edit it by hand"
            ));
        }
        edit(&sources, text)
    }
}

/// The file `export` writes for a service.
#[must_use]
pub fn export_path(cluster: &str, namespace: &str, name: &str) -> String {
    format!("clusters/{cluster}/mcwan-export-{namespace}-{name}.yaml")
}

/// The document of kind `kind` declaring `namespace/name` in `cluster`'s directory.
fn document(
    sources: &Sources,
    kind: &str,
    cluster: &str,
    namespace: &str,
    name: &str,
) -> Option<usize> {
    sources.documents.iter().position(|d| {
        d.place == Place::Cluster(cluster.to_string())
            && d.value["kind"] == kind
            && d.value["metadata"]["name"] == name
            && d.value["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                == namespace
    })
}

/// A policy by name or by a part of its name: the policy of that name, else the one policy
/// whose name contains `wanted` (`high` for `sd-wan-priority-high`).
fn resolve_policy(model: &Model, wanted: &str) -> Result<String, String> {
    if model.policy_named(wanted).is_some() {
        return Ok(wanted.to_string());
    }
    let names = |policies: &[&str]| {
        let quoted: Vec<String> = policies.iter().map(|p| format!("`{p}`")).collect();
        quoted.join(", ")
    };
    let all: Vec<&str> = model.policies.iter().map(|p| p.name.as_str()).collect();
    let matches: Vec<&str> = all.iter().copied().filter(|p| p.contains(wanted)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(format!(
            "no WAN policy name contains `{wanted}` (policies: {})",
            names(&all)
        )),
        many => Err(format!(
            "`{wanted}` is part of the names of several WAN policies: {}; name one of them",
            names(many)
        )),
    }
}

fn clusterset_text(files: &[InputFile], sources: &Sources) -> Result<(String, String), String> {
    let doc = sources
        .documents
        .iter()
        .find(|d| d.place == Place::ClusterSet && d.value["kind"] == "ClusterSet")
        .ok_or("no ClusterSet to edit")?;
    let path = sources.files[doc.file].path.display().to_string();
    match files.iter().find(|f| f.path == path).map(|f| &f.content) {
        Some(Content::Text(text)) => Ok((path, text.clone())),
        _ => Err(format!("cannot read `{path}`")),
    }
}

fn clusterset_doc(sources: &Sources) -> usize {
    sources
        .documents
        .iter()
        .position(|d| d.value["kind"] == "ClusterSet")
        .unwrap_or_default()
}

/// Adds `item` to the list `key` of cluster `c`, creating the list if needed. A flow list
/// (`[a, b]`) on one line gains `, item`; a block list gains a `- item` line; a missing list
/// becomes `key: [item]` on the line after the cluster's `name`.
fn add_item(
    text: &str,
    sources: &Sources,
    c: usize,
    key: &str,
    item: &str,
) -> Result<String, String> {
    let doc = clusterset_doc(sources);
    let pointer = format!("/spec/clusters/{c}/{key}");
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if let Some(items) = sources.documents[doc]
        .value
        .pointer(&pointer)
        .and_then(|v| v.as_array())
    {
        let (line, col) = position(sources, doc, &pointer);
        if let Some(flow) = flow_list(&lines[line - 1], col, key) {
            let mut entries = flow.entries.clone();
            entries.push(item.to_string());
            lines[line - 1] = flow.with(&entries);
        } else if let Some(last) = items.len().checked_sub(1) {
            let (item_line, item_col) = position(sources, doc, &format!("{pointer}/{last}"));
            let dash = lines[item_line - 1]
                .char_indices()
                .take(item_col - 1)
                .filter(|(_, ch)| *ch == '-')
                .last();
            let indent = dash.map_or(item_col.saturating_sub(3), |(i, _)| i);
            lines.insert(item_line, format!("{}- {item}\n", " ".repeat(indent)));
        } else {
            return Err(format!(
                "cannot add `{item}` to the empty `{key}` list of the cluster's entry in the ClusterSet: add it by hand"
            ));
        }
    } else {
        let (line, col) = position(sources, doc, &format!("/spec/clusters/{c}/name"));
        let before = lines[line - 1].chars().take(col - 1).collect::<String>();
        if before
            .trim_start_matches([' ', '-'])
            .contains(|ch: char| !ch.is_whitespace())
        {
            return Err(format!(
                "the cluster's entry in the ClusterSet is a flow mapping: add `{key}: [{item}]` to it by hand"
            ));
        }
        let newline = if lines[line - 1].ends_with('\n') {
            ""
        } else {
            "\n"
        };
        lines[line - 1].push_str(newline);
        lines.insert(line, format!("{}{key}: [{item}]\n", " ".repeat(col - 1)));
    }
    Ok(line_endings_of(text, &lines.concat()))
}

/// `edited` with the line endings of `original`: the lines an edit adds end in `\n`, which
/// in a CRLF file must become `\r\n`.
fn line_endings_of(original: &str, edited: &str) -> String {
    if !original.contains("\r\n") {
        return edited.to_string();
    }
    edited
        .split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(body) if !body.ends_with('\r') => format!("{body}\r\n"),
            _ => line.to_string(),
        })
        .collect()
}

/// Removes `item` from the list `key` of cluster `c`; an emptied list loses its key line.
fn remove_item(
    text: &str,
    sources: &Sources,
    c: usize,
    key: &str,
    item: &str,
) -> Result<String, String> {
    let doc = clusterset_doc(sources);
    let pointer = format!("/spec/clusters/{c}/{key}");
    let items = sources.documents[doc]
        .value
        .pointer(&pointer)
        .and_then(|v| v.as_array())
        .ok_or(format!("no `{key}` list"))?;
    let index = items
        .iter()
        .position(|v| v == item)
        .ok_or(format!("`{item}` is not in `{key}`"))?;
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let (line, col) = position(sources, doc, &pointer);
    if let Some(flow) = flow_list(&lines[line - 1], col, key) {
        let entries: Vec<String> = flow
            .entries
            .iter()
            .filter(|e| *e != item)
            .cloned()
            .collect();
        if entries.is_empty() && flow.alone {
            lines.remove(line - 1);
        } else {
            lines[line - 1] = flow.with(&entries);
        }
    } else {
        let (item_line, _) = position(sources, doc, &format!("{pointer}/{index}"));
        lines.remove(item_line - 1);
        if items.len() == 1 {
            lines.remove(line - 1);
        }
    }
    Ok(line_endings_of(text, &lines.concat()))
}

fn position(sources: &Sources, doc: usize, pointer: &str) -> (usize, usize) {
    let location = sources.at(doc, pointer);
    (location.line, location.col)
}

/// A one-line flow list `key: [a, b]  # comment`, split into its parts.
struct FlowList {
    prefix: String,
    entries: Vec<String>,
    suffix: String,
    /// The key is the only thing on its line, so an empty list can lose the line.
    alone: bool,
}

impl FlowList {
    fn with(&self, entries: &[String]) -> String {
        format!("{}[{}]{}", self.prefix, entries.join(", "), self.suffix)
    }
}

fn flow_list(line: &str, col: usize, key: &str) -> Option<FlowList> {
    let start: usize = line.char_indices().nth(col - 1)?.0;
    let after_key = line[start..]
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix(':')?;
    let open = line.len() - after_key.trim_start().len();
    let close = open + line[open..].find(']')?;
    if !line[open..].starts_with('[') {
        return None;
    }
    let inner = &line[open + 1..close];
    let entries = inner
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    Some(FlowList {
        prefix: line[..open].to_string(),
        entries,
        suffix: line[close + 1..].to_string(),
        alone: line[..start].trim().is_empty(),
    })
}

/// `text` without the document whose first key is on line `line` (1-based), and with every
/// other byte kept. The document goes with its own lines: its `---`, the column-0 comments
/// and directives right above that, everything up to the next document's, and its `...`.
/// A first document without a `---` takes the next one's bare `---` along, so that the
/// file does not start with a separator it did not have. `Err` if it cannot tell the
/// document's lines.
fn remove_document(text: &str, line: usize) -> Result<String, ()> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let chunks = document_chunks(&lines);
    let mut range = chunks
        .into_iter()
        .find(|chunk| chunk.contains(&(line - 1)))
        .ok_or(())?;
    let separated = lines[range.clone()].iter().any(|l| is_marker(l, "---"));
    if range.start == 0 && !separated {
        let bare = |l: &str| {
            let rest = l
                .trim_end_matches(['\n', '\r'])
                .get(3..)
                .unwrap_or_default();
            is_marker(l, "---") && (rest.trim().is_empty() || rest.trim_start().starts_with('#'))
        };
        if lines.get(range.end).is_some_and(|next| bare(next)) {
            range.end += 1;
        }
    }
    Ok([&lines[..range.start], &lines[range.end..]]
        .concat()
        .concat())
}

/// The lines of a YAML stream in groups that each hold at most one document. A document
/// marker at column 0 always ends the document before it (YAML 1.2, `c-forbidden`): a group
/// starts at each `---` line, taking the column-0 comments and directives right above it,
/// and after each `...` line.
fn document_chunks(lines: &[&str]) -> Vec<Range<usize>> {
    let mut starts = vec![0];
    for (i, line) in lines.iter().enumerate() {
        let last = starts.last().copied().unwrap_or_default();
        if is_marker(line, "---") {
            let mut start = i;
            while start > last && lines[start - 1].starts_with(['#', '%']) {
                start -= 1;
            }
            if start > last {
                starts.push(start);
            }
        } else if is_marker(line, "...") && i + 1 < lines.len() && i + 1 > last {
            starts.push(i + 1);
        }
    }
    let ends = starts.iter().skip(1).copied().chain([lines.len()]);
    starts.iter().zip(ends).map(|(&s, e)| s..e).collect()
}

/// Whether `line` is the document marker `marker` (`---` or `...`), alone or followed by a
/// space: `---x` is a plain scalar.
fn is_marker(line: &str, marker: &str) -> bool {
    line.trim_end_matches(['\n', '\r'])
        .strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// `text` with annotation `key` of document `doc` set to `value`: the value replaced where
/// it is, else an entry added to the annotations, else `annotations` added to the metadata.
/// Handles block mappings and flow mappings on one line; `Err` for anything else.
fn set_annotation(
    text: &str,
    sources: &Sources,
    doc: usize,
    key: &str,
    value: &str,
) -> Result<String, ()> {
    let document = &sources.documents[doc];
    let annotations = "/metadata/annotations";
    let entry = format!("{annotations}/{}", pointer_segment(key));
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if document.value.pointer(&entry).is_some() {
        let (line, col) = position(sources, doc, &entry);
        let edited = replace_value(&lines[line - 1], col, key, value).ok_or(())?;
        lines[line - 1] = edited;
    } else if document
        .value
        .pointer(annotations)
        .is_some_and(Value::is_object)
    {
        let entry = format!("{key}: {}", json_quoted(value));
        insert_entry(&mut lines, sources, doc, annotations, &entry, &[&entry])?;
    } else if document.value.pointer(annotations).is_none() {
        let flow = format!("annotations: {{{key}: {}}}", json_quoted(value));
        let block = format!("  {key}: {}", json_quoted(value));
        insert_entry(
            &mut lines,
            sources,
            doc,
            "/metadata",
            &flow,
            &["annotations:", &block],
        )?;
    } else {
        return Err(());
    }
    Ok(line_endings_of(text, &lines.concat()))
}

/// `line` with the scalar value of the mapping entry `key` (at 1-based column `col`)
/// replaced by `value`, quoted as the old value was.
fn replace_value(line: &str, col: usize, key: &str, value: &str) -> Option<String> {
    let start = line.char_indices().nth(col - 1)?.0;
    let rest = &line[start..];
    let after_key = [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .find_map(|k| rest.strip_prefix(k.as_str()))?;
    let after_colon = after_key
        .trim_start_matches([' ', '\t'])
        .strip_prefix(':')?;
    let old = after_colon.trim_start_matches([' ', '\t']);
    let at = line.len() - old.len();
    let (length, new) = match old.chars().next()? {
        '"' => (old[1..].find('"')? + 2, json_quoted(value)),
        '\'' => (old[1..].find('\'')? + 2, format!("'{value}'")),
        _ => {
            let end = old
                .find([',', '}', ']', '#', '\r', '\n'])
                .unwrap_or(old.len());
            (old[..end].trim_end().len(), plain_or_quoted(value))
        }
    };
    if length == 0 || old[..length].contains('\\') {
        return None;
    }
    Some(format!("{}{new}{}", &line[..at], &line[at + length..]))
}

/// Adds an entry to the mapping at `mapping` of document `doc`: `flow` before the `}` of a
/// flow mapping on the key's line; else `block` (lines, at the indentation of the mapping's
/// keys) after its last key if that holds a scalar, or before its first key.
fn insert_entry(
    lines: &mut Vec<String>,
    sources: &Sources,
    doc: usize,
    mapping: &str,
    flow: &str,
    block: &[&str],
) -> Result<(), ()> {
    let (line, col) = position(sources, doc, mapping);
    let key = mapping.rsplit('/').next().unwrap_or_default();
    let text = &lines[line - 1];
    let start = text.char_indices().nth(col - 1).ok_or(())?.0;
    let after_key = text[start..].strip_prefix(key).ok_or(())?;
    let value = after_key
        .trim_start()
        .strip_prefix(':')
        .ok_or(())?
        .trim_start();
    if value.starts_with('{') {
        let open = text.len() - value.len();
        let close = open + value.find('}').ok_or(())?;
        let inside = text[open + 1..close].trim_end();
        let separator = if inside.trim().is_empty() { "" } else { ", " };
        let at = open + 1 + inside.len();
        let edited = format!("{}{separator}{flow}{}", &text[..at], &text[at..]);
        lines[line - 1] = edited;
        return Ok(());
    }
    if !(value.trim().is_empty() || value.starts_with('#')) {
        return Err(());
    }
    let children = sources.documents[doc]
        .value
        .pointer(mapping)
        .and_then(Value::as_object)
        .ok_or(())?;
    let placed: Vec<(usize, usize, bool)> = children
        .iter()
        .map(|(k, v)| {
            let (l, c) = position(sources, doc, &format!("{mapping}/{}", pointer_segment(k)));
            (l, c, v.is_object() || v.is_array())
        })
        .collect();
    let first = placed.iter().min().ok_or(())?;
    let last = placed.iter().max().ok_or(())?;
    let (at, indent) = if last.2 {
        (first.0 - 1, first.1)
    } else {
        (last.0, last.1)
    };
    if lines
        .get(at.wrapping_sub(1))
        .is_some_and(|l| !l.ends_with('\n'))
    {
        lines[at - 1].push('\n');
    }
    for (i, entry) in block.iter().enumerate() {
        lines.insert(at + i, format!("{}{entry}\n", " ".repeat(indent - 1)));
    }
    Ok(())
}

/// `value` as a JSON string, which YAML reads as that string.
fn json_quoted(value: &str) -> String {
    Value::from(value).to_string()
}

/// `value` plain when every YAML reader takes it for a string, else quoted.
fn plain_or_quoted(value: &str) -> String {
    let plain = value.starts_with(|c: char| c.is_ascii_lowercase())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        // YAML 1.1 reads these as booleans, YAML 1.2 `true`, `false` and `null` as such.
        && !["y", "yes", "n", "no", "on", "off", "true", "false", "null"].contains(&value);
    if plain {
        value.to_string()
    } else {
        json_quoted(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_take_the_files_line_endings() {
        assert_eq!(
            line_endings_of("a\r\nb\r\n", "a\r\nnew\nb\r\n"),
            "a\r\nnew\r\nb\r\n"
        );
        assert_eq!(line_endings_of("a\nb\n", "a\nnew\nb\n"), "a\nnew\nb\n");
        // The last line keeps having no line end.
        assert_eq!(line_endings_of("a\r\nb", "a\r\nnew\nb"), "a\r\nnew\r\nb");
    }

    #[test]
    fn a_flow_list_is_edited_in_place() {
        let line = "  imports: [secure/payment, insecure/logging] # kept\n";
        let list = flow_list(line, 3, "imports").unwrap();
        assert_eq!(list.entries, ["secure/payment", "insecure/logging"]);
        assert!(list.alone);
        assert_eq!(
            list.with(&["secure/payment".to_string()]),
            "  imports: [secure/payment] # kept\n"
        );
        assert!(flow_list("  imports:\n", 3, "imports").is_none());
        assert!(flow_list("  other: [a]\n", 3, "imports").is_none());
    }

    /// The line of the ServiceExport's first key in `text`.
    fn target(text: &str) -> usize {
        text.lines()
            .position(|l| l.starts_with("kind: ServiceExport"))
            .unwrap()
            + 1
    }

    #[test]
    fn a_document_goes_with_its_own_lines_and_every_other_byte_stays() {
        let cases = [
            // The middle document, with its `---`.
            (
                "kind: Service\n---\nkind: ServiceExport\n---\nkind: WANRoute\n",
                "kind: Service\n---\nkind: WANRoute\n",
            ),
            // The last document, and its comment; no line end at the end of the file.
            (
                "kind: Service\n---\n# the export\nkind: ServiceExport",
                "kind: Service\n",
            ),
            // The first document takes the next one's bare `---` along...
            (
                "kind: ServiceExport\n---\nkind: Service\n",
                "kind: Service\n",
            ),
            // ...but not a leading `---` of the file, which stays.
            (
                "---\nkind: ServiceExport\n---\nkind: Service\n",
                "---\nkind: Service\n",
            ),
            // Comments at column 0 above a `---` describe the document below it.
            (
                "kind: Service\n# about the export\n---\nkind: ServiceExport\n---\n# about the route\nkind: WANRoute\n",
                "kind: Service\n---\n# about the route\nkind: WANRoute\n",
            ),
            (
                "kind: ServiceExport\n# about the service\n---\nkind: Service\n",
                "# about the service\n---\nkind: Service\n",
            ),
            // Document end markers: the document's own `...` goes with it.
            (
                "---\nkind: Service\n...\n---\nkind: ServiceExport\n...\n---\nkind: WANRoute\n...\n",
                "---\nkind: Service\n...\n---\nkind: WANRoute\n...\n",
            ),
            (
                "kind: ServiceExport\n...\n---\nkind: Service\n",
                "kind: Service\n",
            ),
            // An indented comment above a `---` is the document's own (it may be in a
            // block scalar), and stays with it.
            (
                "kind: Service\ndata: |\n  # text\n---\nkind: ServiceExport\n",
                "kind: Service\ndata: |\n  # text\n",
            ),
            // `---x` is no marker.
            (
                "kind: Service\n---\nkind: ServiceExport\nnote: |\n  ---x\n---\nkind: WANRoute\n",
                "kind: Service\n---\nkind: WANRoute\n",
            ),
            // CRLF line ends are kept.
            (
                "kind: Service\r\n---\r\nkind: ServiceExport\r\n---\r\nkind: WANRoute\r\n",
                "kind: Service\r\n---\r\nkind: WANRoute\r\n",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                remove_document(text, target(text)).as_deref(),
                Ok(expected),
                "removing the export from {text:?}"
            );
        }
    }

    #[test]
    fn a_value_is_replaced_in_the_quoting_it_had() {
        let key = "mcw.l7mp.io/mc-wan-policy";
        assert_eq!(
            replace_value(
                "  annotations: {mcw.l7mp.io/mc-wan-policy: business}\n",
                17,
                key,
                "archive"
            ),
            Some("  annotations: {mcw.l7mp.io/mc-wan-policy: archive}\n".to_string())
        );
        assert_eq!(
            replace_value(
                "    mcw.l7mp.io/mc-wan-policy: \"business\" # why\r\n",
                5,
                key,
                "archive"
            ),
            Some("    mcw.l7mp.io/mc-wan-policy: \"archive\" # why\r\n".to_string())
        );
        assert_eq!(
            replace_value(
                "    'mcw.l7mp.io/mc-wan-policy': 'business'\n",
                5,
                key,
                "archive"
            ),
            Some("    'mcw.l7mp.io/mc-wan-policy': 'archive'\n".to_string())
        );
        // A plain value that would not read as a string is quoted.
        assert_eq!(
            replace_value("    mcw.l7mp.io/mc-wan-policy: business\n", 5, key, "no"),
            Some("    mcw.l7mp.io/mc-wan-policy: \"no\"\n".to_string())
        );
        // The value on the next line is left to the user.
        assert_eq!(
            replace_value("    mcw.l7mp.io/mc-wan-policy:\n", 5, key, "archive"),
            None
        );
    }

    #[test]
    fn document_chunks_split_at_markers() {
        let lines: Vec<&str> = "a: 1\n# c\n---\nb: 2\n...\n# d\n---\nc: 3\n"
            .split_inclusive('\n')
            .collect();
        assert_eq!(document_chunks(&lines), [0..1, 1..5, 5..8]);
        assert!(is_marker("--- # comment\n", "---"));
        assert!(is_marker("...\r\n", "..."));
        assert!(!is_marker("---x\n", "---"));
    }
}
