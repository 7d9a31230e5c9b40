//! RE2's rules for the regular expressions Envoy evaluates, as far as they differ from
//! Rust's `regex` (which is close, not the same). Pure.
//!
//! Refused, each with the reason:
//! - syntax RE2 rejects or reads as something else: class set operations (`&&`, `--`,
//!   `~~`) and nested classes, the flags `x`, `R` and `u`, `\u`/`\U` escapes, the word
//!   boundaries `\<`, `\>`, `\b{…}`, `{,n}` (a literal in RE2), `\p{name=value}`;
//! - counted repetition above 1000, alone or multiplied through nesting, which RE2 refuses;
//! - a program larger than Istio's limit: Istio's bootstrap sets Envoy's runtime key
//!   `re2.max_program_size.error_level` to 32768 (pkg/bootstrap/config.go, 1.26.0:350,
//!   1.30.3:392), and Envoy then refuses the route. `program_size` estimates RE2's count
//!   of instructions from the syntax tree (docs/l7.md has the calibration).

use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassSet, ClassSetItem, ClassUnicodeKind, Flag, FlagsItemKind,
    GroupKind, HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};

/// RE2's largest count in `{n,m}`, also for the product of nested counts.
const MAX_REPEAT: u64 = 1000;
/// The estimate for any Unicode class (RE2 compiles `\pL` to 1,200 instructions).
const UNICODE_CLASS: u64 = 1_300;
/// `re2.max_program_size.error_level` as Istio's bootstrap sets it.
pub const MAX_PROGRAM_SIZE: u64 = 32_768;

/// Why RE2, as Envoy runs it, would refuse `pattern` or read it differently from how it
/// reads in Rust; `None` if it would not. `pattern` already compiles with `regex`.
#[must_use]
pub fn problem(pattern: &str) -> Option<String> {
    let tree = match ast::parse::Parser::new().parse(pattern) {
        Ok(tree) => tree,
        Err(error) => return Some(error.kind().to_string()),
    };
    if let Some(problem) = syntax(&tree, pattern, 1) {
        return Some(problem);
    }
    let size = program_size(&tree);
    (size > MAX_PROGRAM_SIZE).then(|| {
        format!("RE2 would compile it to about {size} instructions, more than the {MAX_PROGRAM_SIZE} Istio lets Envoy accept")
    })
}

/// The first construct RE2 lacks in `tree`; `repeat` is the product of the counts of the
/// repetitions around it.
fn syntax(tree: &Ast, pattern: &str, repeat: u64) -> Option<String> {
    let unsupported = |what: &str| Some(format!("RE2 has no {what}"));
    match tree {
        Ast::Flags(set) => flags(&set.flags.items),
        Ast::Literal(literal) => match literal.kind {
            LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
            | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong) => {
                unsupported("`\\u` or `\\U` escape; write `\\x{…}`")
            }
            _ => None,
        },
        Ast::Assertion(assertion) => match assertion.kind {
            AssertionKind::StartLine
            | AssertionKind::EndLine
            | AssertionKind::StartText
            | AssertionKind::EndText
            | AssertionKind::WordBoundary
            | AssertionKind::NotWordBoundary => None,
            _ => unsupported("`\\<`, `\\>` or `\\b{…}` word boundary; use `\\b`"),
        },
        Ast::ClassUnicode(class) => unicode(&class.kind),
        Ast::ClassBracketed(class) => bracketed(&class.kind),
        Ast::Repetition(repetition) => {
            let count = match &repetition.op.kind {
                RepetitionKind::Range(range) => {
                    let text = &pattern[repetition.op.span.start.offset..];
                    if text.starts_with("{,") {
                        return Some("RE2 reads `{,n}` as literal text; write `{0,n}`".to_string());
                    }
                    match *range {
                        RepetitionRange::Exactly(n)
                        | RepetitionRange::AtLeast(n)
                        | RepetitionRange::Bounded(_, n) => n,
                    }
                }
                _ => 1,
            };
            let repeat = repeat.saturating_mul(u64::from(count.max(1)));
            if repeat > MAX_REPEAT {
                return Some(format!(
                    "RE2 allows at most {MAX_REPEAT} repetitions, counting nested ones multiplied (here {repeat})"
                ));
            }
            syntax(&repetition.ast, pattern, repeat)
        }
        Ast::Group(group) => {
            if let GroupKind::NonCapturing(set) = &group.kind {
                if let Some(problem) = flags(&set.items) {
                    return Some(problem);
                }
            }
            syntax(&group.ast, pattern, repeat)
        }
        Ast::Alternation(alternation) => alternation
            .asts
            .iter()
            .find_map(|a| syntax(a, pattern, repeat)),
        Ast::Concat(concat) => concat.asts.iter().find_map(|a| syntax(a, pattern, repeat)),
        Ast::Empty(_) | Ast::Dot(_) | Ast::ClassPerl(_) => None,
    }
}

fn flags(items: &[ast::FlagsItem]) -> Option<String> {
    items.iter().find_map(|item| match item.kind {
        FlagsItemKind::Flag(Flag::IgnoreWhitespace | Flag::CRLF | Flag::Unicode) => {
            Some("RE2 has only the flags `i`, `m`, `s` and `U`".to_string())
        }
        _ => None,
    })
}

fn unicode(kind: &ClassUnicodeKind) -> Option<String> {
    matches!(kind, ClassUnicodeKind::NamedValue { .. })
        .then(|| "RE2 has no `\\p{name=value}` class; name a category or script".to_string())
}

/// RE2 reads `&&`, `--`, `~~` and a `[` inside a class as literal characters. `set` is the
/// contents of a bracketed class, so any bracketed item in it is a nested class.
fn bracketed(set: &ClassSet) -> Option<String> {
    match set {
        ClassSet::BinaryOp(_) => {
            Some("RE2 has no class set operations (`&&`, `--`, `~~`)".to_string())
        }
        ClassSet::Item(item) => class_item(item),
    }
}

fn class_item(item: &ClassSetItem) -> Option<String> {
    match item {
        ClassSetItem::Bracketed(_) => Some(
            "RE2 has no nested classes; it reads `[` inside a class as a character".to_string(),
        ),
        ClassSetItem::Union(union) => union.items.iter().find_map(class_item),
        ClassSetItem::Unicode(class) => unicode(&class.kind),
        _ => None,
    }
}

/// An estimate of the number of instructions RE2 compiles `tree` to, calibrated against
/// RE2's own `ProgramSize()`: a byte per literal character's UTF-8 encoding, one per class
/// range (`UNICODE_CLASS` for a Unicode class; a small script is far fewer), one more per
/// repetition or alternative, two per capture group, and four for the program itself.
#[must_use]
pub fn program_size(tree: &Ast) -> u64 {
    4 + size(tree)
}

fn size(tree: &Ast) -> u64 {
    match tree {
        Ast::Empty(_) | Ast::Flags(_) => 0,
        Ast::Literal(literal) => literal.c.len_utf8() as u64,
        Ast::Dot(_) => 7,
        Ast::Assertion(_) | Ast::ClassPerl(_) => 1,
        Ast::ClassUnicode(_) => UNICODE_CLASS,
        Ast::ClassBracketed(class) => {
            let negated = if class.negated { 10 } else { 0 };
            negated + class_size(&class.kind)
        }
        Ast::Repetition(repetition) => {
            let inner = size(&repetition.ast);
            match &repetition.op.kind {
                RepetitionKind::ZeroOrOne
                | RepetitionKind::ZeroOrMore
                | RepetitionKind::OneOrMore => inner + 1,
                RepetitionKind::Range(RepetitionRange::Exactly(n)) => inner * u64::from(*n),
                RepetitionKind::Range(RepetitionRange::AtLeast(n)) => {
                    inner * u64::from(*n).max(1) + 1
                }
                RepetitionKind::Range(RepetitionRange::Bounded(m, n)) => {
                    inner * u64::from(*m) + (inner + 1) * u64::from(n.saturating_sub(*m))
                }
            }
        }
        Ast::Group(group) => {
            let capture = if matches!(group.kind, GroupKind::NonCapturing(_)) {
                0
            } else {
                2
            };
            capture + size(&group.ast)
        }
        Ast::Alternation(alternation) => {
            alternation.asts.iter().map(size).sum::<u64>() + alternation.asts.len() as u64 - 1
        }
        Ast::Concat(concat) => concat.asts.iter().map(size).sum(),
    }
}

/// The estimated size of a bracketed class's contents; an operation on sets, which `syntax`
/// refuses anyway, counts as a Unicode class.
fn class_size(set: &ClassSet) -> u64 {
    match set {
        ClassSet::BinaryOp(_) => UNICODE_CLASS,
        ClassSet::Item(item) => item_size(item),
    }
}

fn item_size(item: &ClassSetItem) -> u64 {
    match item {
        ClassSetItem::Empty(_) => 0,
        ClassSetItem::Literal(literal) => literal.c.len_utf8() as u64,
        ClassSetItem::Range(range) => range.end.c.len_utf8() as u64,
        ClassSetItem::Ascii(_) | ClassSetItem::Perl(_) => 3,
        ClassSetItem::Unicode(_) => UNICODE_CLASS,
        ClassSetItem::Bracketed(inner) => class_size(&inner.kind),
        ClassSetItem::Union(union) => union.items.iter().map(item_size).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_re2_rejects_or_reads_differently_is_refused() {
        for pattern in [
            "a{1001}",
            "(a{100}){11}",
            "((a{10}){10}){11}",
            "[a-z&&[^aeiou]]",
            "[a[bc]]",
            "[a~~b]",
            "[[bc]]",
            "(?x)a b",
            "(?R)a",
            "(?u:a)",
            "\\u0041",
            "\\U00000041",
            "a{,5}",
            "\\<a",
            "\\b{start}a",
            "\\p{scx=Greek}",
        ] {
            assert!(problem(pattern).is_some(), "{pattern} was accepted");
        }
        for pattern in [
            "a{1000}",
            "(a{100}){10}",
            "^/api/v[0-9]+/.*$",
            "(?i)[a-z]+",
            "(?P<n>a)|(?<m>b)",
            "\\pL\\p{Greek}",
            "[[:alpha:]_-]",
            "\\x{41}\\z",
        ] {
            assert_eq!(problem(pattern), None, "{pattern}");
        }
    }

    /// RE2's `ProgramSize()` for each pattern, read from RE2 (google-re2 1.1.20251105):
    /// the estimate is within ten instructions of it for small patterns, within a quarter
    /// for large ones, and above it for Unicode classes.
    #[test]
    fn the_program_size_estimate_follows_re2() {
        for (pattern, re2) in [
            ("a", 5_u64),
            ("abc", 7),
            ("/p(a|b)*c{1,1000}", 2008),
            ("[a-z]+", 6),
            (".*", 12),
            ("(a{100}){10}", 1024),
            ("((a{10}){10}){10}", 1224),
            ("a{1000}", 1004),
            ("^/api/v[0-9]+/.*$", 15),
            ("[a-zA-Z0-9_-]", 8),
            ("[^a]", 12),
            ("é", 6),
        ] {
            let tree = ast::parse::Parser::new().parse(pattern).unwrap();
            let estimate = program_size(&tree);
            let close = if re2 < 100 {
                estimate.abs_diff(re2) <= 10
            } else {
                estimate * 4 >= re2 * 3 && estimate * 4 <= re2 * 5
            };
            assert!(close, "{pattern}: {estimate} for RE2's {re2}");
        }
        for (pattern, re2) in [("\\pL", 1200_u64), ("[\\pL\\pN]", 1346)] {
            let tree = ast::parse::Parser::new().parse(pattern).unwrap();
            assert!(program_size(&tree) >= re2, "{pattern}");
        }
        let tree = ast::parse::Parser::new().parse("(\\pL{1000}){30}").unwrap();
        assert!(program_size(&tree) > MAX_PROGRAM_SIZE);
    }
}
