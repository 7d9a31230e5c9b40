//! Prints diagnostics: human (codespan-style snippets), JSON, or GitHub workflow commands,
//! each file named as `Paths` prints it. Writes only to the stream it is given.

use std::io::{self, IsTerminal, Write};

use codespan_reporting::diagnostic::{Diagnostic as Snippet, Label, Severity as SnippetSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};
use serde_json::json;

use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::paths::Paths;
use crate::source::Sources;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
    /// `diff` and `verify` only: their result as GitHub-flavoured Markdown, for a pull
    /// request; diagnostics as `human`.
    Markdown,
}

/// Where a command prints its diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Writes `diagnostics` in `format` to `stream`; the human format always goes to stderr,
/// where a terminal shows it beside, not inside, a command's result.
///
/// # Errors
/// On write errors; a closed pipe is left to the caller to ignore.
pub fn print(
    format: Format,
    stream: Stream,
    paths: &Paths,
    sources: &Sources,
    diagnostics: &[Diagnostic],
) -> io::Result<()> {
    let text = match format {
        Format::Human | Format::Markdown => {
            let choice = if std::env::var_os("NO_COLOR").is_some() || !io::stderr().is_terminal() {
                termcolor::ColorChoice::Never
            } else {
                termcolor::ColorChoice::Auto
            };
            let mut stream = termcolor::StandardStream::stderr(choice);
            return human(&mut stream, paths, sources, diagnostics);
        }
        Format::Json => format!("{}\n", serde_json::Value::Object(json(paths, diagnostics))),
        Format::Github => github(paths, diagnostics),
    };
    match stream {
        Stream::Stdout => io::stdout().lock().write_all(text.as_bytes()),
        Stream::Stderr => io::stderr().lock().write_all(text.as_bytes()),
    }
}

/// Renders diagnostics with source snippets, as rustc and cargo-deny do.
///
/// # Errors
/// On write errors.
pub fn human(
    writer: &mut dyn termcolor::WriteColor,
    paths: &Paths,
    sources: &Sources,
    diagnostics: &[Diagnostic],
) -> io::Result<()> {
    let mut files = SimpleFiles::new();
    let ids: Vec<usize> = sources
        .files
        .iter()
        .map(|f| files.add(paths.declaration(&f.path), f.text.as_str()))
        .collect();
    let config = term::Config::default();
    let label = |location: &Location, primary: bool, message: &str| {
        let index = sources.files.iter().position(|f| f.path == location.file)?;
        let text = &sources.files[index].text;
        let start = location.offset.min(text.len());
        if line_length(text, start) > LONGEST_SNIPPET_LINE {
            return None;
        }
        let end = start + token_length(&text[start..]);
        let label = if primary {
            Label::primary(ids[index], start..end)
        } else {
            Label::secondary(ids[index], start..end)
        };
        Some(label.with_message(message))
    };
    for diagnostic in diagnostics {
        let severity = match diagnostic.severity {
            Severity::Error => SnippetSeverity::Error,
            Severity::Warning => SnippetSeverity::Warning,
        };
        let mut labels = Vec::new();
        labels.extend(diagnostic.primary.as_ref().and_then(|l| label(l, true, "")));
        labels.extend(
            diagnostic
                .secondary
                .iter()
                .filter_map(|(l, m)| label(l, false, m)),
        );
        // A location whose line is too long to show is named in a note instead.
        let unshown = diagnostic
            .primary
            .as_ref()
            .filter(|_| labels.is_empty())
            .map(|l| format!("at {} (the line is too long to show)", shown(paths, l)));
        let notes: Vec<String> = unshown
            .into_iter()
            .chain(diagnostic.hint.iter().map(|hint| format!("hint: {hint}")))
            .chain([format!(
                "see: {} (`mcwan explain {}`)",
                diagnostic.code.documentation(),
                diagnostic.code.as_str()
            )])
            .collect();
        let snippet = Snippet::new(severity)
            .with_code(diagnostic.code.as_str())
            .with_message(&diagnostic.message)
            .with_labels(labels)
            .with_notes(notes);
        term::emit(writer, &config, &files, &snippet).map_err(io::Error::other)?;
    }
    let (errors, warnings) = counts(diagnostics);
    if errors + warnings > 0 {
        writeln!(writer, "{errors} error(s), {warnings} warning(s)")?;
    }
    Ok(())
}

/// Longest line shown in a snippet; a minified or hostile line of megabytes is not echoed.
const LONGEST_SNIPPET_LINE: usize = 1000;

/// The length in bytes of the line around byte `at`.
fn line_length(text: &str, at: usize) -> usize {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    end - start
}

/// The length of the token at the start of `text`: up to a `:`, a space or the line end.
fn token_length(text: &str) -> usize {
    let line = text.lines().next().unwrap_or("");
    let end = line.find([':', ' ', ',', '}', ']']).unwrap_or(line.len());
    end.max(1).min(text.len())
}

fn counts(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors, diagnostics.len() - errors)
}

/// `file:line:col`, the file as `paths` prints it.
fn shown(paths: &Paths, location: &Location) -> String {
    let file = paths.declaration(&location.file);
    format!("{file}:{}:{}", location.line, location.col)
}

/// The documented JSON structure (`docs/diagnostics.md`), as an object to which a command
/// adds its own result, so that it prints one document.
#[must_use]
pub fn json(
    paths: &Paths,
    diagnostics: &[Diagnostic],
) -> serde_json::Map<String, serde_json::Value> {
    let location =
        |l: &Location| json!({"file": paths.declaration(&l.file), "line": l.line, "column": l.col});
    let items: Vec<_> = diagnostics
        .iter()
        .map(|d| {
            json!({
                "code": d.code.as_str(),
                "severity": d.severity.as_str(),
                "message": d.message,
                "hint": d.hint,
                "doc": d.code.documentation(),
                "location": d.primary.as_ref().map(location),
                "related": d.secondary.iter().map(|(l, m)| json!({"location": location(l), "message": m})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (errors, warnings) = counts(diagnostics);
    let mut document = serde_json::Map::new();
    document.insert("version".into(), 1.into());
    document.insert("errors".into(), errors.into());
    document.insert("warnings".into(), warnings.into());
    document.insert("diagnostics".into(), items.into());
    document
}

/// GitHub Actions workflow commands, which GitHub shows as annotations on the lines.
#[must_use]
pub fn github(paths: &Paths, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let mut properties = Vec::new();
        if let Some(l) = &d.primary {
            properties.push(("file", paths.declaration(&l.file)));
            properties.push(("line", l.line.to_string()));
            properties.push(("col", l.col.to_string()));
        }
        properties.push(("title", d.code.as_str().to_string()));
        let message = match &d.hint {
            Some(hint) => format!("{} (hint: {hint})", d.message),
            None => d.message.clone(),
        };
        out.push_str(&workflow_command(
            d.severity.as_str(),
            &properties,
            &message,
        ));
    }
    out
}

/// One GitHub Actions workflow command line (`::error file=F,title=T::message`), its
/// properties and message escaped as the runner reads them.
#[must_use]
pub fn workflow_command(command: &str, properties: &[(&str, String)], message: &str) -> String {
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let properties: Vec<String> = properties
        .iter()
        .map(|(key, value)| format!("{key}={}", property(value)))
        .collect();
    format!("::{command} {}::{}\n", properties.join(","), data(message))
}
