//! Loaded declarations: files, their YAML documents, and where each field sits in the text.
//! Built by `load`; read-only for every later stage.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::diagnostic::Location;

/// Where a file sits in the declarations repository, which decides the kinds it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `clusterset.yaml` at the top.
    ClusterSet,
    /// `policies/**`: the global WAN policies.
    Policies,
    /// `clusters/<name>/**`: what one cluster declares.
    Cluster(String),
}

/// One input file, kept for locations and source snippets in diagnostics.
#[derive(Debug)]
pub struct SourceFile {
    /// Relative to the declarations directory, with `/` separators on every platform.
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    #[must_use]
    pub fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// The location of a 1-based line and a 1-based column counted in characters.
    #[must_use]
    pub fn location(&self, line: usize, col: usize) -> Location {
        let line = line.clamp(1, self.line_starts.len());
        let start = self.line_starts[line - 1];
        let rest = &self.text[start..];
        let offset = start
            + rest
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(rest.len(), |(i, _)| i);
        Location {
            file: self.path.clone(),
            line,
            col: col.max(1),
            offset,
        }
    }
}

/// The positions of one document's fields, keyed by JSON pointer (`/spec/clusters/0/name`).
/// For a mapping entry the position is that of its key, so diagnostics point at the field.
#[derive(Debug, Default)]
pub struct Spans {
    positions: HashMap<String, (usize, usize)>,
}

impl Spans {
    pub fn insert(&mut self, pointer: String, line: usize, col: usize) {
        self.positions.entry(pointer).or_insert((line, col));
    }

    /// The position of `pointer`, or of its nearest ancestor that has one.
    #[must_use]
    pub fn find(&self, pointer: &str) -> Option<(usize, usize)> {
        let mut pointer = pointer;
        loop {
            if let Some(position) = self.positions.get(pointer) {
                return Some(*position);
            }
            pointer = &pointer[..pointer.rfind('/')?];
        }
    }
}

/// One YAML document of an input file.
#[derive(Debug)]
pub struct Document {
    /// Index into `Sources::files`.
    pub file: usize,
    pub place: Place,
    pub value: Value,
    pub spans: Spans,
    /// Where the document starts, for problems with the document as a whole.
    pub start: (usize, usize),
    /// The YAML was readable but ambiguous (a duplicate key, already reported): the
    /// document counts as declared, but is not used.
    pub damaged: bool,
}

/// Everything `load` read from the declarations directory.
#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
    pub documents: Vec<Document>,
    /// Files whose documents were not all read (a syntax error, a limit, an unreadable
    /// file), with their place: what they declare is unknown, not absent.
    pub unread: Vec<(usize, Place)>,
}

impl Sources {
    /// The location of a field of a document, falling back to the document's start.
    #[must_use]
    pub fn locate(&self, document: &Document, pointer: &str) -> Location {
        let (line, col) = document.spans.find(pointer).unwrap_or(document.start);
        self.files[document.file].location(line, col)
    }

    /// The location of a field of the document with index `doc`.
    #[must_use]
    pub fn at(&self, doc: usize, pointer: &str) -> Location {
        self.locate(&self.documents[doc], pointer)
    }

    #[must_use]
    pub fn file_start(&self, file: usize) -> Location {
        self.files[file].location(1, 1)
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
#[must_use]
pub fn pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}
