//! The seed's imperative verbs (`mcwanctl export/unexport/import/unimport`) as edits to the
//! declarations repository. Pure: given the files as read, it returns the files to write
//! or delete; `lib` validates the edited repository before `emit` writes anything. Edits
//! touch as little text as they can, so the user's other files, comments and formatting
//! survive, and each verb undoes the other byte for byte.

use crate::check::names::is_dns1123_label;
use crate::conventions::{
    ALLOWED_CLUSTERS_ANNOTATION, ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, POLICY_ANNOTATION,
};
use crate::load::{Content, InputFile};
use crate::model::{Model, ServiceKey};
use crate::source::{Place, Sources};

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
    /// `export` only: a policy name, or an unambiguous suffix of one (`high`).
    pub wan_policy: Option<String>,
}

/// A file to write (`Some`) or delete (`None`), relative to the repository.
pub type Write = (String, Option<String>);

/// The edit a request makes, and a line telling the user what it did.
///
/// # Errors
/// A message saying why the request cannot be carried out.
pub fn apply(
    request: &Request,
    files: &[InputFile],
    sources: &Sources,
    model: &Model,
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

/// One request, with what it edits.
struct Edit<'a> {
    request: &'a Request,
    files: &'a [InputFile],
    sources: &'a Sources,
    model: &'a Model,
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

    fn export(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        if let Some(doc) = export_document(self.sources, cluster, namespace, name) {
            let path = self.sources.files[self.sources.documents[doc].file]
                .path
                .display()
                .to_string();
            return Err(format!(
                "`{service}` is already exported from `{cluster}`, in `{path}`"
            ));
        }
        let path = export_path(cluster, namespace, name);
        if self.files.iter().any(|f| f.path == path) {
            return Err(format!("`{path}` exists already"));
        }
        let policy = match &self.request.wan_policy {
            Some(wanted) => Some(resolve_policy(self.model, wanted)?),
            None => None,
        };
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
                .map(|(k, v)| format!("    {k}: {}\n", serde_json::Value::from(v.as_str())))
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

    fn unexport(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let Some(doc) = export_document(self.sources, cluster, namespace, name) else {
            return Err(format!("`{service}` is not exported from `{cluster}`"));
        };
        let file = self.sources.documents[doc].file;
        let path = self.sources.files[file].path.display().to_string();
        if self
            .sources
            .documents
            .iter()
            .filter(|d| d.file == file)
            .count()
            > 1
        {
            return Err(format!(
                "the export of `{service}` is declared in `{path}` together with other objects; remove it there by hand"
            ));
        }
        Ok((
            vec![(path.clone(), None)],
            format!("unexported `{service}` from `{cluster}`: removed `{path}`"),
        ))
    }

    fn unimport(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let target = &self.model.clusterset.clusters[self.c];
        if !target.imports(namespace, name) {
            return Err(format!("`{cluster}` does not import `{service}`"));
        }
        let (path, text) = clusterset_text(self.files, self.sources)?;
        let text = add_item(&text, self.sources, self.c, "skipImports", service)?;
        Ok((
            vec![(path, Some(text))],
            format!("`{cluster}` no longer imports `{service}` (skipImports)"),
        ))
    }

    fn import(&self) -> Result<(Vec<Write>, String), String> {
        let (namespace, name, cluster) = self.names();
        let service = &self.service;
        let target = &self.model.clusterset.clusters[self.c];
        let (path, text) = clusterset_text(self.files, self.sources)?;
        let (text, what) = if target
            .skip_imports
            .contains(&ServiceKey::new(namespace, name))
        {
            (
                remove_item(&text, self.sources, self.c, "skipImports", service)?,
                format!("removed `{service}` from its skipImports"),
            )
        } else if !target.namespaces.contains(namespace) {
            (
                add_item(&text, self.sources, self.c, "namespaces", namespace)?,
                format!("added namespace `{namespace}`"),
            )
        } else {
            return Ok((
                Vec::new(),
                format!("`{cluster}` already imports `{service}`"),
            ));
        };
        Ok((
            vec![(path, Some(text))],
            format!("`{cluster}` imports `{service}`: {what}"),
        ))
    }
}

/// The file `export` writes for a service.
#[must_use]
pub fn export_path(cluster: &str, namespace: &str, name: &str) -> String {
    format!("clusters/{cluster}/mcwan-export-{namespace}-{name}.yaml")
}

fn export_document(sources: &Sources, cluster: &str, namespace: &str, name: &str) -> Option<usize> {
    sources.documents.iter().position(|d| {
        d.place == Place::Cluster(cluster.to_string())
            && d.value["kind"] == "ServiceExport"
            && d.value["metadata"]["name"] == name
            && d.value["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                == namespace
    })
}

/// A policy by name, or by a suffix that names exactly one (`high` for `sd-wan-priority-high`),
/// as the seed's `--wan-policy=high` did.
fn resolve_policy(model: &Model, wanted: &str) -> Result<String, String> {
    if model.policy_named(wanted).is_some() {
        return Ok(wanted.to_string());
    }
    let matches: Vec<&String> = model
        .policies
        .iter()
        .map(|p| &p.name)
        .filter(|p| p.ends_with(&format!("-{wanted}")))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no WAN policy `{wanted}` (policies: {})",
            model
                .policies
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "`{wanted}` names several WAN policies: {}",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
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
                "cannot edit the `{key}` list of cluster {c}: edit `{key}` by hand"
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
                "the cluster entry is a flow mapping; add `{key}: [{item}]` to it by hand"
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
}
