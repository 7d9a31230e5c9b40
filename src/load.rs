//! Stage 1: read the declarations directory and the template overrides from disk.
//! One of the two stages that touch the filesystem (the other is `emit`); it interprets
//! nothing beyond YAML syntax and the directory layout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use walkdir::WalkDir;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::error::Error;
use crate::source::{pointer_segment, Document, Place, SourceFile, Sources, Spans};

/// Bounds that keep hostile input from exhausting memory or time. Each is a flag.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest input file read, in bytes (`--max-file-bytes`).
    pub max_file_bytes: u64,
    /// Deepest nesting of mappings and sequences (`--max-depth`). yaml_serde refuses more
    /// than 128 levels whatever this says.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// One input file as read from disk, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Relative to the declarations directory, `/`-separated.
    pub path: String,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// Larger than `Limits::max_file_bytes`; not read.
    TooLarge(u64),
    /// Not UTF-8: the valid prefix.
    NotUtf8(String),
    /// A symbolic link, which mcwan never follows: it could lead outside the repository.
    Symlink,
}

/// Reads every declaration file under `dir`: `clusterset.yaml`, `policies/**` and
/// `clusters/<name>/**`. Other files (a README, the rendered output) are not inputs.
///
/// # Errors
/// Only when `dir` itself cannot be read; problems with single files are diagnostics.
pub fn declarations(
    dir: &Path,
    limits: Limits,
    diagnostics: &mut Diagnostics,
) -> Result<Sources, Error> {
    Ok(parse(&read(dir, limits)?, limits, diagnostics))
}

/// Reads the declaration files of `dir`, sorted by path.
///
/// # Errors
/// When `dir` or a file in it cannot be read.
pub fn read(dir: &Path, limits: Limits) -> Result<Vec<InputFile>, Error> {
    let metadata = std::fs::metadata(dir).map_err(|source| Error::io(dir, source))?;
    if !metadata.is_dir() {
        return Err(Error::Usage(format!(
            "`{}` is not a directory",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    for relative in input_files(dir)? {
        let absolute = dir.join(&relative);
        let metadata =
            std::fs::symlink_metadata(&absolute).map_err(|source| Error::io(&absolute, source))?;
        let size = metadata.len();
        let content = if !metadata.is_file() {
            Content::Symlink
        } else if size > limits.max_file_bytes {
            Content::TooLarge(size)
        } else {
            let bytes = std::fs::read(&absolute).map_err(|source| Error::io(&absolute, source))?;
            match String::from_utf8(bytes) {
                Ok(text) => Content::Text(text),
                Err(error) => {
                    let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
                    Content::NotUtf8(String::from_utf8_lossy(valid).into_owned())
                }
            }
        };
        files.push(InputFile {
            path: relative,
            content,
        });
    }
    Ok(files)
}

/// Parses input files into documents. Pure: the imperative verbs use it to validate an
/// edited repository before writing it.
#[must_use]
pub fn parse(files: &[InputFile], limits: Limits, diagnostics: &mut Diagnostics) -> Sources {
    let mut sources = Sources::default();
    for file in files {
        let Some(place) = place_of(&file.path) else {
            continue;
        };
        let file_index = sources.files.len();
        let relative = PathBuf::from(&file.path);
        match &file.content {
            Content::TooLarge(size) => {
                sources.files.push(SourceFile::new(relative, String::new()));
                diagnostics.push(
                    Diagnostic::error(
                        Code::FileUnreadable,
                        Some(sources.file_start(file_index)),
                        format!(
                            "file is {size} bytes, more than the limit of {} bytes",
                            limits.max_file_bytes
                        ),
                    )
                    .hint("split the file, or raise the limit with `--max-file-bytes`"),
                );
            }
            Content::NotUtf8(prefix) => {
                let source = SourceFile::new(relative, prefix.clone());
                let line = source.text.lines().count().max(1);
                let col = source
                    .text
                    .rsplit('\n')
                    .next()
                    .map_or(0, |l| l.chars().count())
                    + 1;
                let location = source.location(line, col);
                sources.files.push(source);
                diagnostics.push(
                    Diagnostic::error(
                        Code::FileUnreadable,
                        Some(location),
                        "file is not valid UTF-8",
                    )
                    .hint("YAML input must be UTF-8 encoded"),
                );
            }
            Content::Symlink => {
                sources.files.push(SourceFile::new(relative, String::new()));
                diagnostics.push(
                    Diagnostic::warning(
                        Code::FileSymlink,
                        Some(sources.file_start(file_index)),
                        "symbolic link not followed",
                    )
                    .hint("a link could lead outside the repository; commit the file itself"),
                );
            }
            Content::Text(text) => {
                sources.files.push(SourceFile::new(relative, text.clone()));
                parse_documents(&mut sources, file_index, &place, limits, diagnostics);
            }
        }
    }
    sources
}

/// Where a relative path sits in the repository layout; `None` if it is not an input.
#[must_use]
pub fn place_of(relative: &str) -> Option<Place> {
    let parts: Vec<&str> = relative.split('/').collect();
    let yaml = is_yaml(Path::new(relative));
    match parts.as_slice() {
        ["clusterset.yaml" | "clusterset.yml"] => Some(Place::ClusterSet),
        ["policies", .., _] if yaml => Some(Place::Policies),
        // A YAML file directly in `clusters/` belongs to no cluster.
        ["clusters", cluster, _, ..] if yaml => Some(Place::Cluster((*cluster).to_string())),
        _ => None,
    }
}

/// The input files in a stable order (sorted by path).
fn input_files(dir: &Path) -> Result<Vec<String>, Error> {
    let mut files = Vec::new();
    for name in ["clusterset.yaml", "clusterset.yml"] {
        if std::fs::symlink_metadata(dir.join(name)).is_ok() {
            files.push(name.to_string());
        }
    }
    for top in ["policies", "clusters"] {
        let root = dir.join(top);
        if !root.is_dir() {
            continue;
        }
        for entry in WalkDir::new(&root).follow_links(false).sort_by_file_name() {
            let entry = entry.map_err(|error| {
                let path = error.path().unwrap_or(&root).to_path_buf();
                Error::io(&path, error.into())
            })?;
            if entry.file_type().is_dir() {
                continue;
            }
            let relative = slash_path(entry.path().strip_prefix(dir).unwrap_or(entry.path()));
            let relative = relative.to_string_lossy().into_owned();
            if place_of(&relative).is_some() {
                files.push(relative);
            }
        }
    }
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// The same relative path on every platform, so locations and digests never differ.
fn slash_path(path: &Path) -> PathBuf {
    let parts: Vec<_> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    PathBuf::from(parts.join("/"))
}

fn parse_documents(
    sources: &mut Sources,
    file_index: usize,
    place: &Place,
    limits: Limits,
    diagnostics: &mut Diagnostics,
) {
    let file = &sources.files[file_index];
    let mut indexer = SpanIndexer::new(limits.max_depth);
    // A scan error here is reported below by yaml_serde, which parsed the same text.
    let _ = Parser::new_from_str(&file.text).load(&mut indexer, true);
    let mut spans = indexer.documents.into_iter();
    let mut parsed = Vec::new();
    let before = diagnostics.len();
    for document in yaml_serde::Deserializer::from_str(&file.text) {
        let IndexedDocument {
            start,
            spans: span,
            duplicates,
            depth,
        } = spans.next().unwrap_or_default();
        if depth > limits.max_depth {
            diagnostics.push(
                Diagnostic::error(
                    Code::YamlLimit,
                    Some(file.location(start.0, start.1)),
                    format!("document nests {depth} levels deep, more than the limit of {}", limits.max_depth),
                )
                .hint("Kubernetes objects need a few levels; raise the limit with `--max-depth` if this is real"),
            );
            continue;
        }
        for (line, col, key) in &duplicates {
            diagnostics.push(
                Diagnostic::error(
                    Code::YamlSyntax,
                    Some(file.location(*line, *col)),
                    format!("duplicate key `{key}`"),
                )
                .hint(
                    "a key may appear once per mapping; YAML parsers disagree on which value wins",
                ),
            );
        }
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => parsed.push(Document {
                file: file_index,
                place: place.clone(),
                value,
                spans: span,
                start,
                damaged: !duplicates.is_empty(),
            }),
            Err(error) => {
                let (line, col) = error.location().map_or((1, 1), |l| (l.line(), l.column()));
                let message = error.to_string();
                if message.contains("limit exceeded") {
                    // yaml_serde's own bounds: alias expansion ("billion laughs") and recursion.
                    diagnostics.push(
                        Diagnostic::error(
                            Code::YamlLimit,
                            Some(file.location(line, col)),
                            format!("document is too large once its aliases are expanded, or too deep ({})", message.split(" at line ").next().unwrap_or(&message)),
                        )
                        .hint("Kubernetes manifests rarely need YAML aliases; write the values out"),
                    );
                    break;
                }
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_string();
                diagnostics.push(Diagnostic::error(
                    Code::YamlSyntax,
                    Some(file.location(line, col)),
                    message,
                ));
                // The stream cannot be resumed after an error.
                break;
            }
        }
    }
    if parsed.is_empty() && diagnostics.len() == before {
        diagnostics.push(
            Diagnostic::warning(
                Code::FileEmpty,
                Some(file.location(1, 1)),
                "file holds no YAML document",
            )
            .hint("delete the file, or declare an object in it"),
        );
    }
    sources.documents.extend(parsed);
}

enum Frame {
    Mapping {
        pointer: String,
        key: Option<String>,
        awaiting_key: bool,
        keys: HashSet<String>,
    },
    Sequence {
        pointer: String,
        next: usize,
    },
}

/// Records where each field of each document starts, from the parser's marked events.
/// yaml_serde gives values without positions; this second, event-only pass gives positions
/// without building values, so aliases are never expanded here.
struct SpanIndexer {
    max_depth: usize,
    stack: Vec<Frame>,
    current: IndexedDocument,
    documents: Vec<IndexedDocument>,
}

/// What the event pass learned about one document.
#[derive(Default)]
struct IndexedDocument {
    start: (usize, usize),
    spans: Spans,
    /// Keys that appear twice in one mapping, with their second position.
    duplicates: Vec<(usize, usize, String)>,
    /// The deepest nesting of mappings and sequences.
    depth: usize,
}

impl SpanIndexer {
    fn new(max_depth: usize) -> Self {
        SpanIndexer {
            max_depth,
            stack: Vec::new(),
            current: IndexedDocument::default(),
            documents: Vec::new(),
        }
    }

    /// Called at the start of every node; returns the node's pointer if it is a value
    /// (not a mapping key).
    fn node(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        let (line, col) = (mark.line(), mark.col() + 1);
        let depth = self.stack.len();
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping {
                pointer,
                key,
                awaiting_key,
                keys,
            }) => {
                if *awaiting_key {
                    *awaiting_key = false;
                    *key = scalar.map(str::to_owned);
                    if let Some(k) = key.as_deref() {
                        if !keys.insert(k.to_owned()) {
                            self.current.duplicates.push((line, col, k.to_owned()));
                        }
                        if depth <= self.max_depth {
                            let child = format!("{pointer}/{}", pointer_segment(k));
                            self.current.spans.insert(child, line, col);
                        }
                        // A document's own position is that of its first key.
                        if depth == 1 {
                            self.current.spans.insert(String::new(), line, col);
                        }
                    }
                    None
                } else {
                    *awaiting_key = true;
                    key.take()
                        .map(|k| format!("{pointer}/{}", pointer_segment(&k)))
                }
            }
            Some(Frame::Sequence { pointer, next }) => {
                let child = format!("{pointer}/{next}");
                *next += 1;
                if depth <= self.max_depth {
                    self.current.spans.insert(child.clone(), line, col);
                }
                Some(child)
            }
        }
    }
}

impl MarkedEventReceiver for SpanIndexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => {
                self.current = IndexedDocument {
                    start: (mark.line(), mark.col() + 1),
                    ..IndexedDocument::default()
                };
                self.stack.clear();
            }
            Event::DocumentEnd => self.documents.push(std::mem::take(&mut self.current)),
            Event::Scalar(ref value, ..) => {
                self.node(mark, Some(value));
            }
            Event::Alias(_) => {
                self.node(mark, None);
            }
            Event::MappingStart(..) => {
                self.current.depth = self.current.depth.max(self.stack.len() + 1);
                // A mapping used as a key gets an unreachable pointer; such keys are invalid input anyway.
                let pointer = self.node(mark, None).unwrap_or_else(|| "\u{0}".to_string());
                self.stack.push(Frame::Mapping {
                    pointer,
                    key: None,
                    awaiting_key: true,
                    keys: HashSet::new(),
                });
            }
            Event::SequenceStart(..) => {
                self.current.depth = self.current.depth.max(self.stack.len() + 1);
                let pointer = self.node(mark, None).unwrap_or_else(|| "\u{0}".to_string());
                self.stack.push(Frame::Sequence { pointer, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

/// Reads the `.j2` files of a template override directory, keyed by relative path.
///
/// # Errors
/// When the directory or one of its files cannot be read.
pub fn template_overrides(dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let mut templates = Vec::new();
    for entry in WalkDir::new(dir).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|error| Error::io(dir, error.into()))?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "j2") {
            let relative = slash_path(entry.path().strip_prefix(dir).unwrap_or(entry.path()));
            let text = std::fs::read_to_string(entry.path())
                .map_err(|source| Error::io(entry.path(), source))?;
            templates.push((relative.to_string_lossy().into_owned(), text));
        }
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> (Sources, Diagnostics) {
        let mut sources = Sources::default();
        let mut diagnostics = Diagnostics::default();
        sources
            .files
            .push(SourceFile::new(PathBuf::from("f.yaml"), text.to_string()));
        parse_documents(
            &mut sources,
            0,
            &Place::Policies,
            Limits::default(),
            &mut diagnostics,
        );
        (sources, diagnostics)
    }

    #[test]
    fn spans_point_at_keys_and_sequence_items() {
        let (sources, diagnostics) =
            load_text("a: 1\n---\nkind: X\nspec:\n  list:\n  - name: one\n  - {name: two}\n");
        assert!(!diagnostics.has_errors());
        assert_eq!(sources.documents.len(), 2);
        let document = &sources.documents[1];
        assert_eq!(sources.locate(document, "/kind").to_string(), "f.yaml:3:1");
        assert_eq!(
            sources.locate(document, "/spec/list/0/name").to_string(),
            "f.yaml:6:5"
        );
        assert_eq!(
            sources.locate(document, "/spec/list/1/name").to_string(),
            "f.yaml:7:6"
        );
        // Unknown pointers fall back to the nearest ancestor.
        assert_eq!(
            sources.locate(document, "/spec/list/1/missing").to_string(),
            "f.yaml:7:5"
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let (_, diagnostics) = load_text("a: 1\nb: [1, 2\n");
        let all = diagnostics.into_sorted();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].code, Code::YamlSyntax);
        assert_eq!(all[0].primary.as_ref().map(|l| l.line), Some(3));
    }
}
