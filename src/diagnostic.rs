//! Diagnostics are data: every stage pushes problems here instead of returning at the first one.
//! This module never prints; `report` turns the list into human, JSON or GitHub output.

use std::fmt;
use std::path::PathBuf;

/// How bad a diagnostic is. Only errors make a command fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A point in an input file. `file` is relative to the declarations directory, lines and
/// columns are 1-based, and `offset` is the byte offset used for source snippets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub offset: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// Codes are declared with their constructors, one entry each, in `diags`.
pub use crate::diags::Code;

/// Diagnostics shown per file; the rest are counted in one `diagnostics-truncated`.
pub const MAX_PER_FILE: usize = 100;

/// One problem found in the declarations, built by its code's constructor in `diags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
    pub primary: Option<Location>,
    /// Other places involved, each with a short label ("also declared here").
    pub secondary: Vec<(Location, String)>,
}

/// The text with every control character escaped (`\u{1b}`): names from a hostile file
/// can neither move a terminal's cursor nor break a line of `--format github` output.
pub(crate) fn printable(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The shared list every pass appends to.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    errors: usize,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.errors += usize::from(diagnostic.severity == Severity::Error);
        self.items.push(diagnostic);
    }

    /// Adds every diagnostic of `other`.
    pub fn append(&mut self, other: Diagnostics) {
        self.errors += other.errors;
        self.items.extend(other.items);
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// How many errors so far: a pass compares the count before and after it to learn
    /// whether it found any, which `has_errors` cannot tell once an earlier pass failed.
    #[must_use]
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// The diagnostics in a stable order: by file, line and column, then by code, so that
    /// output does not depend on the order passes ran or files were read.
    #[must_use]
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (&a.primary, a.code, &a.message).cmp(&(&b.primary, b.code, &b.message))
        });
        self.items.dedup();
        truncated(self.items)
    }
}

/// At most `MAX_PER_FILE` of the sorted diagnostics per file, the rest summed up in one,
/// so that a hostile file cannot make megabytes of messages.
fn truncated(sorted: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut kept = Vec::new();
    // The first diagnostic not shown in the current file, how many, how many errors.
    let mut dropped: Option<(Location, usize, usize)> = None;
    let mut shown = 0;
    for diagnostic in sorted {
        let file = diagnostic.primary.as_ref().map(|l| &l.file);
        if file
            != kept
                .last()
                .and_then(|d: &Diagnostic| d.primary.as_ref())
                .map(|l| &l.file)
        {
            kept.extend(dropped.take().map(summary));
            shown = 0;
        }
        match &diagnostic.primary {
            Some(at) if shown >= MAX_PER_FILE => {
                let (_, count, errors) = dropped.get_or_insert_with(|| (at.clone(), 0, 0));
                *count += 1;
                *errors += usize::from(diagnostic.severity == Severity::Error);
            }
            _ => {
                shown += 1;
                kept.push(diagnostic);
            }
        }
    }
    kept.extend(dropped.map(summary));
    kept
}

fn summary((at, count, errors): (Location, usize, usize)) -> Diagnostic {
    crate::diags::diagnostics_truncated(at, count, errors)
}

/// "did you mean" for a misspelled name: the closest candidate, comparing names without
/// case or separators first so that `jitter-ms` finds `jitterMs`.
#[must_use]
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let folded = fold(name);
    candidates
        .into_iter()
        .map(|candidate| (strsim::levenshtein(&folded, &fold(candidate)), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min()
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_a_hundred_diagnostics_are_shown_per_file() {
        let at = |file: &str, line| Location {
            file: PathBuf::from(file),
            line,
            col: 1,
            offset: 0,
        };
        let mut all = Diagnostics::default();
        for line in 1..=250 {
            all.push(crate::diags::document_not_object(at("a.yaml", line)));
        }
        all.push(crate::diags::file_empty(at("b.yaml", 1)));
        all.push(crate::diags::clusterset_missing());
        let shown = all.into_sorted();
        assert_eq!(shown.len(), 1 + MAX_PER_FILE + 1 + 1);
        let summary = &shown[MAX_PER_FILE + 1];
        assert_eq!(summary.code, Code::DiagnosticsTruncated);
        assert_eq!(summary.primary, Some(at("a.yaml", 101)));
        assert_eq!(
            summary.message,
            "150 more problem(s) in this file not shown, 150 of them error(s)"
        );
        assert_eq!(shown.last().map(|d| d.code), Some(Code::FileEmpty));
    }

    #[test]
    fn did_you_mean_ignores_case_and_separators() {
        assert_eq!(
            did_you_mean("jitter-ms", ["jitterMs", "latencyMs", "lossPercent"]),
            Some("jitterMs")
        );
        assert_eq!(
            did_you_mean(
                "sd-wan-priority-hi",
                ["sd-wan-priority-high", "sd-wan-priority-low"]
            ),
            Some("sd-wan-priority-high")
        );
        assert_eq!(
            did_you_mean("completely-different", ["tunnel", "port"]),
            None
        );
    }
}
