//! Stage 1: read the declarations directory and the template overrides from disk.
//! One of the two stages that touch the filesystem (the other is `emit`); it interprets
//! nothing beyond YAML syntax and the directory layout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use walkdir::WalkDir;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::Diagnostics;
use crate::diags::{self, Bound, Syntax, Unreadable};
use crate::error::Error;
use crate::parallel;
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
    // Inputs, and symbolic links wherever they are; each file is parsed alone, on all cores.
    let kept: Vec<(&InputFile, Option<Place>)> = files
        .iter()
        .map(|file| (file, place_of(&file.path)))
        .filter(|(file, place)| place.is_some() || file.content == Content::Symlink)
        .collect();
    let parsed = parallel::map(kept.len(), |index| {
        let (file, place) = &kept[index];
        parse_file(file, place.as_ref(), index, limits)
    })
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let mut sources = Sources::default();
    for (index, parsed) in parsed.into_iter().enumerate() {
        sources.files.push(parsed.source);
        sources.documents.extend(parsed.documents);
        sources
            .unread
            .extend(parsed.unread.map(|place| (index, place)));
        diagnostics.append(parsed.diagnostics);
    }
    sources
}

/// One input file, parsed.
struct ParsedFile {
    source: SourceFile,
    documents: Vec<Document>,
    /// Its place, when its documents were not all read.
    unread: Option<Place>,
    diagnostics: Diagnostics,
}

/// Parses the file that will be `sources.files[file_index]`; `place` is `None` only for a
/// symbolic link outside the inputs.
fn parse_file(
    file: &InputFile,
    place: Option<&Place>,
    file_index: usize,
    limits: Limits,
) -> ParsedFile {
    let relative = PathBuf::from(&file.path);
    let mut diagnostics = Diagnostics::default();
    let (source, documents, unread) = match &file.content {
        Content::TooLarge(size) => {
            let source = SourceFile::new(relative, String::new());
            diagnostics.push(diags::file_unreadable(
                source.location(1, 1),
                Unreadable::TooLarge {
                    size: *size,
                    limit: limits.max_file_bytes,
                },
            ));
            (source, Vec::new(), place.cloned())
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
            diagnostics.push(diags::file_unreadable(
                source.location(line, col),
                Unreadable::NotUtf8,
            ));
            (source, Vec::new(), place.cloned())
        }
        Content::Symlink => {
            let source = SourceFile::new(relative, String::new());
            diagnostics.push(diags::file_symlink(source.location(1, 1)));
            (source, Vec::new(), None)
        }
        Content::Text(text) => {
            let source = SourceFile::new(relative, text.clone());
            let (documents, complete) = match place {
                Some(place) => {
                    parse_documents(&source, file_index, place, limits, &mut diagnostics)
                }
                None => (Vec::new(), true),
            };
            let unread = place.filter(|_| !complete).cloned();
            (source, documents, unread)
        }
    };
    ParsedFile {
        source,
        documents,
        unread,
        diagnostics,
    }
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
        match std::fs::symlink_metadata(&root) {
            // Reported, never walked: `clusters -> $HOME` must not be read.
            Ok(m) if m.file_type().is_symlink() => {
                files.push(top.to_string());
                continue;
            }
            Ok(m) if m.is_dir() => {}
            _ => continue,
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
            // Every link is reported, whatever its name: a linked directory is not walked.
            if place_of(&relative).is_some() || entry.path_is_symlink() {
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

/// Documents one file may hold, and mapping keys, values and list items (nodes) in all
/// of them. Far above a real declaration file (a whole 5,000-service cluster in one file
/// is about 150,000 nodes), far below what takes seconds or a gigabyte to load.
pub const MAX_DOCUMENTS: usize = 10_000;
pub const MAX_NODES: usize = 500_000;
/// A field's JSON pointer longer than this is not recorded: its diagnostics point at the
/// nearest recorded ancestor. Without it, long keys nested deep make the index quadratic.
const MAX_POINTER_BYTES: usize = 2048;

fn parse_documents(
    file: &SourceFile,
    file_index: usize,
    place: &Place,
    limits: Limits,
    diagnostics: &mut Diagnostics,
) -> (Vec<Document>, bool) {
    let indexed = match index(&file.text, limits) {
        Ok(indexed) => indexed,
        Err(stop) => {
            diagnostics.push(diags::yaml_limit(
                file.location(stop.line, stop.col),
                stop.bound,
            ));
            return (Vec::new(), false);
        }
    };
    let mut spans = indexed.into_iter();
    let mut parsed = Vec::new();
    let mut complete = true;
    let before = diagnostics.len();
    for document in yaml_serde::Deserializer::from_str(&file.text) {
        let IndexedDocument {
            start,
            spans: span,
            duplicates,
            merge_keys,
        } = spans.next().unwrap_or_default();
        for (line, col, key) in &duplicates {
            diagnostics.push(diags::yaml_syntax(
                file.location(*line, *col),
                Syntax::DuplicateKey(key),
            ));
        }
        for (line, col) in &merge_keys {
            diagnostics.push(diags::yaml_syntax(
                file.location(*line, *col),
                Syntax::MergeKey,
            ));
        }
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => parsed.push(Document {
                file: file_index,
                place: place.clone(),
                value,
                spans: span,
                start,
                damaged: !duplicates.is_empty() || !merge_keys.is_empty(),
            }),
            Err(error) => {
                let message = error.to_string();
                let (line, col) = reader_position(&file.text, &message)
                    .or_else(|| error.location().map(|l| (l.line(), l.column())))
                    .unwrap_or((1, 1));
                if message.contains("limit exceeded") {
                    // yaml_serde's own bounds: alias expansion ("billion laughs") and recursion.
                    diagnostics.push(diags::yaml_limit(
                        file.location(line, col),
                        Bound::Aliases(message.split(" at line ").next().unwrap_or(&message)),
                    ));
                    complete = false;
                    break;
                }
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_string();
                let stop = file.location(line, col);
                let (at, syntax) = match long_quote_at(&file.text, line) {
                    // The parser read an unclosed quote to the end: point at where it opens.
                    Some(LongQuote { open, close: None }) => (
                        file.location(open.0, open.1),
                        Syntax::Unclosed {
                            message: &message,
                            end: line,
                        },
                    ),
                    Some(LongQuote { open, .. }) => (
                        stop,
                        Syntax::RunsOn {
                            message: &message,
                            open: file.location(open.0, open.1),
                        },
                    ),
                    None if tab_at(&file.text, line, col) => (stop, Syntax::Tab(&message)),
                    None => (stop, Syntax::Parser(&message)),
                };
                diagnostics.push(diags::yaml_syntax(at, syntax));
                // The stream cannot be resumed after an error.
                complete = false;
                break;
            }
        }
    }
    if parsed.is_empty() && diagnostics.len() == before {
        diagnostics.push(diags::file_empty(file.location(1, 1)));
    }
    (parsed, complete)
}

/// Whether line `line` has a tab in its indentation or at column `col`, where a YAML
/// parser stopped: tabs may not indent YAML.
fn tab_at(text: &str, line: usize, col: usize) -> bool {
    let Some(text_line) = text.split('\n').nth(line.saturating_sub(1)) else {
        return false;
    };
    let indentation = text_line.len() - text_line.trim_start().len();
    text_line[..indentation].contains('\t')
        || text_line.chars().nth(col.saturating_sub(1)) == Some('\t')
}

/// A quoted scalar that spans lines: the (line, column) of its opening quote, and the line
/// of its closing quote (`None`: the file ends inside it).
#[derive(Debug, PartialEq, Eq)]
struct LongQuote {
    open: (usize, usize),
    close: Option<usize>,
}

/// The quoted scalar to blame for a syntax error on `line`: one the file ends inside, or
/// one that spans lines and closes on `line`. A quote left open runs on to the next quote
/// of its kind, however far, so the parser stops far from the mistake.
fn long_quote_at(text: &str, line: usize) -> Option<LongQuote> {
    long_quotes(text)
        .into_iter()
        .rev()
        .find(|q| q.close.is_none_or(|close| close == line))
}

/// Every quoted scalar of `text` that spans lines. A quote opens a scalar where a token
/// starts (after a space, `[`, `{`, `,` or `:`), outside comments and block scalars.
fn long_quotes(text: &str) -> Vec<LongQuote> {
    let mut found = Vec::new();
    // The quote character and where it opened.
    let mut open: Option<(char, usize, usize)> = None;
    // The indentation of the line a block scalar (`|`, `>`) starts on.
    let mut block: Option<usize> = None;
    for (index, text_line) in text.split('\n').enumerate() {
        let number = index + 1;
        let indent = text_line.len() - text_line.trim_start_matches(' ').len();
        if let (None, Some(parent)) = (open, block) {
            if text_line.trim().is_empty() || indent > parent {
                continue;
            }
            block = None;
        }
        let mut code_end = text_line.len();
        let mut previous = ' ';
        let mut chars = text_line.char_indices().peekable();
        let mut col = 0;
        while let Some((at, c)) = chars.next() {
            col += 1;
            match open {
                Some(('"', ..)) if c == '\\' => {
                    col += usize::from(chars.next().is_some());
                }
                Some(('\'', ..)) if c == '\'' && chars.next_if(|&(_, n)| n == '\'').is_some() => {
                    col += 1;
                }
                Some((quote, line, opened)) if c == quote => {
                    if line != number {
                        found.push(LongQuote {
                            open: (line, opened),
                            close: Some(number),
                        });
                    }
                    open = None;
                }
                None if c == '#' && previous.is_whitespace() => {
                    code_end = at;
                    break;
                }
                None if (c == '"' || c == '\'')
                    && (previous.is_whitespace() || "[{,:".contains(previous)) =>
                {
                    open = Some((c, number, col));
                }
                Some(_) | None => {}
            }
            previous = c;
        }
        let last_token = text_line[..code_end]
            .split_whitespace()
            .last()
            .unwrap_or("");
        let header = last_token.strip_prefix(['|', '>']);
        if open.is_none() && header.is_some_and(|h| h.chars().all(|c| "+-0123456789".contains(c))) {
            block = Some(indent);
        }
    }
    if let Some((_, line, col)) = open {
        found.push(LongQuote {
            open: (line, col),
            close: None,
        });
    }
    found
}

/// Where a reader error (a control character, a NUL byte) stopped: yaml_serde locates it
/// at the start of the stream, and says "at position N", a byte offset, in its message.
fn reader_position(text: &str, message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find(" at position ")? + " at position ".len()..];
    let offset: usize = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some((
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    ))
}

/// Where flow collections (`[`, `{`) first nest deeper than `max`, as (line, column).
///
/// Both YAML scanners check every pending flow level at every token, so nesting alone makes
/// them quadratic before the first event: depth has to be bounded before they run. This is
/// a linear over-estimate of the scanners' flow depth. Outside quotes and comments it counts
/// like they do, except that at depth 0 any opener after a space counts. Inside what looks
/// like a quote or a comment, an opener still counts and a closer only undoes an opener of
/// the same quote or comment: a misjudged quote can raise the estimate, never lower it, so
/// no input hides its depth from it. Real files nest flows a few levels, far below `max`.
fn flow_depth_exceeded(text: &str, max: usize) -> Option<(usize, usize)> {
    #[derive(PartialEq)]
    enum Hidden {
        No,
        Comment,
        Single,
        Double,
    }
    let (mut depth, mut hidden, mut inner) = (0usize, Hidden::No, 0usize);
    let (mut line, mut col, mut previous) = (1, 0, '\n');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        col += 1;
        let token_start = previous.is_whitespace() || previous == '\u{feff}';
        match c {
            '\n' => {
                (line, col) = (line + 1, 0);
                if hidden == Hidden::Comment {
                    (hidden, inner) = (Hidden::No, 0);
                }
            }
            '[' | '{' if hidden != Hidden::No || depth > 0 || token_start => {
                depth += 1;
                if hidden != Hidden::No {
                    inner += 1;
                }
                if depth > max {
                    return Some((line, col));
                }
            }
            ']' | '}' if hidden == Hidden::No => depth = depth.saturating_sub(1),
            ']' | '}' if inner > 0 => (depth, inner) = (depth - 1, inner - 1),
            '#' if hidden == Hidden::No && token_start => hidden = Hidden::Comment,
            '\'' | '"' if hidden == Hidden::No && (token_start || "[{,:".contains(previous)) => {
                hidden = if c == '"' {
                    Hidden::Double
                } else {
                    Hidden::Single
                };
            }
            // An escaped character, which cannot end the quote.
            '\\' if hidden == Hidden::Double && chars.next_if(|&n| n != '\n').is_some() => {
                col += 1;
            }
            '"' if hidden == Hidden::Double => (hidden, inner) = (Hidden::No, 0),
            '\'' if hidden == Hidden::Single => {
                if chars.next_if_eq(&'\'').is_some() {
                    col += 1; // `''` is a quote inside the quote
                } else {
                    (hidden, inner) = (Hidden::No, 0);
                }
            }
            _ => {}
        }
        previous = c;
    }
    None
}

/// Where and why the event pass stopped reading a file.
struct Stop {
    line: usize,
    col: usize,
    bound: Bound<'static>,
}

/// Reads the file's events once, recording positions, and stops at the first bound crossed,
/// before any value is built. Flow depth is bounded before the scanner starts (see
/// `flow_depth_exceeded`); events are pulled one at a time, so a later bound stops it too.
fn index(text: &str, limits: Limits) -> Result<Vec<IndexedDocument>, Stop> {
    if let Some((line, col)) = flow_depth_exceeded(text, limits.max_depth) {
        return Err(Stop {
            line,
            col,
            bound: Bound::FlowDepth(limits.max_depth),
        });
    }
    let mut indexer = SpanIndexer::new();
    let mut parser = Parser::new_from_str(text);
    let mut nodes = 0usize;
    // A scan error ends the loop; yaml_serde, which reads the same text, reports it.
    while let Ok((event, mark)) = parser.next_token() {
        let exceeded = match &event {
            Event::StreamEnd => break,
            Event::DocumentStart if indexer.documents.len() >= MAX_DOCUMENTS => {
                Some(Bound::Documents(MAX_DOCUMENTS))
            }
            Event::MappingStart(..) | Event::SequenceStart(..)
                if indexer.stack.len() >= limits.max_depth =>
            {
                Some(Bound::Depth(limits.max_depth))
            }
            Event::Scalar(..)
            | Event::Alias(_)
            | Event::MappingStart(..)
            | Event::SequenceStart(..) => {
                nodes += 1;
                (nodes > MAX_NODES).then_some(Bound::Nodes(MAX_NODES))
            }
            _ => None,
        };
        if let Some(bound) = exceeded {
            return Err(Stop {
                line: mark.line(),
                col: mark.col() + 1,
                bound,
            });
        }
        indexer.on_event(event, mark);
    }
    Ok(indexer.documents)
}

/// The pointer of a node whose position is not recorded: a mapping used as a key (invalid
/// input anyway), or a field whose pointer would be longer than `MAX_POINTER_BYTES`.
const UNRECORDED: &str = "\u{0}";

/// `parent/segment`, or `UNRECORDED` when that is too long or the parent is unrecorded.
fn child(parent: &str, segment: &str) -> String {
    if parent.starts_with(UNRECORDED) || parent.len() + 1 + segment.len() > MAX_POINTER_BYTES {
        UNRECORDED.to_string()
    } else {
        format!("{parent}/{segment}")
    }
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
    /// Unquoted `<<` keys: YAML 1.1 merge keys, which mcwan does not expand.
    merge_keys: Vec<(usize, usize)>,
}

impl SpanIndexer {
    fn new() -> Self {
        SpanIndexer {
            stack: Vec::new(),
            current: IndexedDocument::default(),
            documents: Vec::new(),
        }
    }

    /// Called at the start of every node; returns the node's pointer if it is a value
    /// (not a mapping key).
    fn node(&mut self, mark: Marker, scalar: Option<(&str, TScalarStyle)>) -> Option<String> {
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
                    if scalar == Some(("<<", TScalarStyle::Plain)) {
                        self.current.merge_keys.push((line, col));
                    }
                    *key = scalar.map(|(k, _)| k.to_owned());
                    if let Some(k) = key.as_deref() {
                        if !keys.insert(k.to_owned()) {
                            self.current.duplicates.push((line, col, k.to_owned()));
                        }
                        self.current
                            .spans
                            .insert(child(pointer, &pointer_segment(k)), line, col);
                        // A document's own position is that of its first key.
                        if depth == 1 {
                            self.current.spans.insert(String::new(), line, col);
                        }
                    }
                    None
                } else {
                    *awaiting_key = true;
                    key.take().map(|k| child(pointer, &pointer_segment(&k)))
                }
            }
            Some(Frame::Sequence { pointer, next }) => {
                let item = child(pointer, &next.to_string());
                *next += 1;
                self.current.spans.insert(item.clone(), line, col);
                Some(item)
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
            Event::Scalar(ref value, style, ..) => {
                self.node(mark, Some((value, style)));
            }
            Event::Alias(_) => {
                self.node(mark, None);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key gets an unreachable pointer; such keys are invalid input anyway.
                let pointer = self
                    .node(mark, None)
                    .unwrap_or_else(|| UNRECORDED.to_string());
                self.stack.push(Frame::Mapping {
                    pointer,
                    key: None,
                    awaiting_key: true,
                    keys: HashSet::new(),
                });
            }
            Event::SequenceStart(..) => {
                let pointer = self
                    .node(mark, None)
                    .unwrap_or_else(|| UNRECORDED.to_string());
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
        let mut diagnostics = Diagnostics::default();
        let file = SourceFile::new(PathBuf::from("f.yaml"), text.to_string());
        let (documents, _) = parse_documents(
            &file,
            0,
            &Place::Policies,
            Limits::default(),
            &mut diagnostics,
        );
        let sources = Sources {
            files: vec![file],
            documents,
            unread: Vec::new(),
        };
        (sources, diagnostics)
    }

    #[test]
    fn long_quotes_skip_comments_block_scalars_escapes_and_apostrophes() {
        let text = "a: \"one\n  two\"\nb: it's # don't\nc: |\n  \"not a quote\n  'nor this\nd: 'x''\n  y'\ne: \"\\\"\n  z\"\n";
        assert_eq!(
            long_quotes(text),
            vec![
                LongQuote {
                    open: (1, 4),
                    close: Some(2)
                },
                LongQuote {
                    open: (7, 4),
                    close: Some(8)
                },
                LongQuote {
                    open: (9, 4),
                    close: Some(10)
                },
            ]
        );
        let open = "a: x\nb: \"y\nc: z\n";
        assert_eq!(
            long_quote_at(open, 4),
            Some(LongQuote {
                open: (2, 4),
                close: None
            })
        );
        // A quote on one line is never to blame.
        assert_eq!(long_quote_at("a: \"x\"\nb: [\n", 3), None);
    }

    #[test]
    fn only_unquoted_merge_keys_are_refused() {
        let (_, diagnostics) = load_text("a: &x {k: v}\nb: {\"<<\": 1}\nc:\n  <<: *x\n");
        let found: Vec<String> = diagnostics
            .into_sorted()
            .iter()
            .map(|d| format!("{} {}", d.primary.as_ref().unwrap(), d.message))
            .collect();
        assert_eq!(
            found,
            ["f.yaml:4:3 YAML merge keys (`<<`) are not supported"]
        );
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
        assert_eq!(all[0].code, crate::diagnostic::Code::YamlSyntax);
        assert_eq!(all[0].primary.as_ref().map(|l| l.line), Some(3));
    }

    #[test]
    fn flow_depth_counts_like_the_scanners_and_quotes_never_lower_it() {
        let deep = |n| format!("a: {}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(flow_depth_exceeded(&deep(64), 64), None);
        assert_eq!(flow_depth_exceeded(&deep(65), 64), Some((1, 68)));
        // Brackets balanced in quotes and comments, or inside a plain scalar, do not count.
        let text = "a: x[[[[\nb: 'x[[]]' # [[]]\nc: \"[\\\"]\"\nd: {e: [f, g]}\n";
        assert_eq!(flow_depth_exceeded(text, 2), None);
        // A quote the scanners do not see cannot hide nesting behind its closers.
        let hidden = format!("a: [\"{}\", {}", "]".repeat(100), "[".repeat(100));
        assert!(flow_depth_exceeded(&hidden, 64).is_some());
        let apostrophe = format!("a: [it's {}", "[".repeat(100));
        assert!(flow_depth_exceeded(&apostrophe, 64).is_some());
    }

    #[test]
    fn no_real_file_is_refused_for_flow_depth() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for top in ["examples", "golden", "tests/invalid", "fuzz/seeds"] {
            for entry in WalkDir::new(root.join(top)).into_iter().flatten() {
                let deep_on_purpose = entry.path().ends_with("yaml-limit.case");
                if let (Ok(text), false) = (std::fs::read_to_string(entry.path()), deep_on_purpose)
                {
                    seen += 1;
                    assert_eq!(
                        flow_depth_exceeded(&text, 16),
                        None,
                        "{}",
                        entry.path().display()
                    );
                }
            }
        }
        assert!(seen > 100);
    }
}
