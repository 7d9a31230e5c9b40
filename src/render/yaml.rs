//! Part of stage 4, render: canonical YAML for rendered objects, both ways, at the speed of
//! the common case. Pure: never touches the filesystem.
//!
//! Templates print every value as JSON inside block YAML, and every object is parsed back
//! and re-serialized. Going through `yaml_serde` both ways costs most of a render, so this
//! module reads and writes the common shape itself: block mappings and sequences whose
//! scalars are plain tokens (names, hosts, `true`, whole numbers) or JSON (what templates
//! print), and, when writing, strings that read as booleans or null (quoted). Anything
//! else (quoting styles, block scalars, anchors, tags, duplicate keys, long keys; and, when
//! writing, floats) goes through `yaml_serde` whole, so the result never depends on which
//! path produced it. Debug builds (tests, fuzzing) run both paths and assert they agree.

use serde::de;
use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Parses one rendered document as `yaml_serde::from_str` does.
///
/// # Errors
/// When the text is not YAML, as `yaml_serde` reports it.
pub fn from_str(text: &str) -> Result<Value, yaml_serde::Error> {
    let Some(fast) = Reader::new(text).and_then(|mut reader| reader.document()) else {
        return yaml_serde::from_str(text);
    };
    #[cfg(debug_assertions)]
    assert_eq!(
        yaml_serde::from_str::<Value>(text).ok().as_ref(),
        Some(&fast),
        "render/yaml.rs read differently from yaml_serde:\n{text}"
    );
    Ok(fast)
}

/// Serializes `value` as `yaml_serde::to_string` does.
///
/// # Errors
/// When `yaml_serde` fails on an object the direct path declines.
pub fn to_string(value: &Value) -> Result<String, yaml_serde::Error> {
    let mut out = String::with_capacity(1024);
    match value {
        Value::Object(map) if !map.is_empty() && mapping(&mut out, map, 0, false).is_some() => {
            #[cfg(debug_assertions)]
            assert_eq!(
                emitted(value).ok().as_ref(),
                Some(&out),
                "render/yaml.rs wrote differently from yaml_serde"
            );
            Ok(out)
        }
        _ => emitted(value),
    }
}

/// `yaml_serde`'s YAML for `value`, with every plain scalar a YAML 1.1 reader would take
/// for another type single-quoted (see `yaml11_reads_as_other`).
///
/// # Errors
/// When `yaml_serde` fails.
pub fn emitted<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, yaml_serde::Error> {
    yaml_serde::to_string(value).map(|text| quoted_for_yaml11(&text))
}

/// `text` with its plain strings that YAML 1.1 reads as booleans, numbers, nulls or
/// timestamps single-quoted. Such scalars are single tokens, so the emitter never folds
/// them over lines and their text is their value.
fn quoted_for_yaml11(text: &str) -> String {
    struct Plain(Vec<(usize, usize)>);
    impl MarkedEventReceiver for Plain {
        fn on_event(&mut self, event: Event, mark: Marker) {
            if let Event::Scalar(value, TScalarStyle::Plain, ..) = event {
                // Only strings: a plain number stays a number.
                if yaml11_reads_as_other(&value)
                    && matches!(yaml_serde::from_str(&value), Ok(Value::String(_)))
                {
                    self.0.push((mark.index(), value.chars().count()));
                }
            }
        }
    }
    let mut plain = Plain(Vec::new());
    if Parser::new_from_str(text).load(&mut plain, true).is_err() || plain.0.is_empty() {
        return text.to_string();
    }
    // Marks count characters; map them to byte offsets once.
    let offsets: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut out = String::with_capacity(text.len() + 2 * plain.0.len());
    let mut copied = 0;
    for (start, chars) in plain.0 {
        let (start, end) = (offsets[start], offsets[start + chars]);
        out.push_str(&text[copied..start]);
        out.push('\'');
        out.push_str(&text[start..end]);
        out.push('\'');
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Deeper documents go to `yaml_serde`, which has its own recursion limit.
const MAX_INDENT: usize = 256;

/// One non-blank, non-comment line: its indentation and what follows it.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    content: &'a str,
}

/// A recursive-descent reader over lines; every method returns `None` to hand the whole
/// document to `yaml_serde`.
struct Reader<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Option<Self> {
        let mut lines = Vec::new();
        for raw in text.lines() {
            let content = raw.trim_start_matches(' ');
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            // Tabs, carriage returns, directives and document markers: not the common shape.
            let indent = raw.len() - content.len();
            let marker = ["---", "...", "%"].iter().any(|m| content.starts_with(m));
            if raw.contains(['\t', '\r']) || (indent == 0 && marker) {
                return None;
            }
            lines.push(Line { indent, content });
        }
        Some(Reader { lines, at: 0 })
    }

    fn document(&mut self) -> Option<Value> {
        let first = *self.lines.first()?;
        let value = self.node(first.indent)?;
        (self.at == self.lines.len() && value.is_object()).then_some(value)
    }

    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.at).copied()
    }

    /// The node whose first line is the current one, at `indent`.
    fn node(&mut self, indent: usize) -> Option<Value> {
        // Every level of nesting indents further, so this bounds the recursion.
        if indent > MAX_INDENT {
            return None;
        }
        let line = self.peek()?;
        if is_item(line.content) {
            self.sequence(indent)
        } else if entry(line.content).is_some() {
            self.mapping(indent)
        } else {
            // A scalar alone on its line (after `- `): nothing may continue it.
            self.at += 1;
            let value = scalar(line.content)?;
            match self.peek() {
                Some(next) if next.indent > indent => None,
                _ => Some(value),
            }
        }
    }

    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek().filter(|l| l.indent >= indent) {
            if line.indent > indent || is_item(line.content) {
                return None;
            }
            let (key, rest) = entry(line.content)?;
            self.at += 1;
            let value = if rest.is_empty() {
                match self.peek() {
                    Some(next) if next.indent > indent => self.node(next.indent)?,
                    // A sequence in a mapping may sit at the mapping's own indentation.
                    Some(next) if next.indent == indent && is_item(next.content) => {
                        self.sequence(indent)?
                    }
                    _ => Value::Null,
                }
            } else {
                match self.peek() {
                    Some(next) if next.indent > indent => return None,
                    _ => scalar(rest)?,
                }
            };
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self
            .peek()
            .filter(|l| l.indent == indent && is_item(l.content))
        {
            let rest = line.content[1..].trim_start_matches(' ');
            if rest.is_empty() {
                self.at += 1;
                items.push(match self.peek() {
                    Some(next) if next.indent > indent => self.node(next.indent)?,
                    _ => Value::Null,
                });
            } else {
                // `- key: value` or `- - item`: the rest of the line is the first line of a
                // node indented to where it starts.
                let inner = indent + line.content.len() - rest.len();
                self.lines[self.at] = Line {
                    indent: inner,
                    content: rest,
                };
                items.push(self.node(inner)?);
            }
        }
        match self.peek() {
            Some(next) if next.indent > indent => None,
            _ => Some(Value::Array(items)),
        }
    }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// `key: rest` or `key:`, the key a plain token or a JSON string; `rest` is trimmed.
fn entry(content: &str) -> Option<(String, &str)> {
    let (key, after) = if content.starts_with('"') {
        json::<String>(content)?
    } else {
        let end = content.find(':')?;
        let key = &content[..end];
        if style(key) != Some(Style::Plain) {
            return None;
        }
        (key.to_string(), &content[end..])
    };
    let after = after.strip_prefix(':')?;
    if !(after.is_empty() || after.starts_with(' ')) || key.len() > SIMPLE_KEY_MAX {
        return None;
    }
    Some((key, after.trim_start_matches(' ')))
}

/// A scalar or flow value on the rest of a line, with an optional trailing comment.
fn scalar(text: &str) -> Option<Value> {
    if text.starts_with(['"', '{', '[']) {
        let (Strict(value), rest) = json::<Strict>(text)?;
        let rest = rest.trim_start_matches(' ');
        return (rest.is_empty() || rest.starts_with('#')).then_some(value);
    }
    let token = match text.split_once(" #") {
        Some((token, _)) => token.trim_end_matches(' '),
        None => text.trim_end_matches(' '),
    };
    match token {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ if style(token) == Some(Style::Plain) => Some(Value::String(token.to_string())),
        _ => {
            let digits = token.strip_prefix('-').unwrap_or(token);
            let canonical = digits == "0" || (!digits.starts_with('0') && !digits.is_empty());
            if !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) || token == "-0" {
                return None;
            }
            let number = token.parse::<i64>().map(Value::from);
            number
                .or_else(|_| token.parse::<u64>().map(Value::from))
                .ok()
        }
    }
}

/// The JSON value at the start of `text`, and what follows it on the line. JSON's escapes
/// are YAML's too, but for surrogate halves, which libyaml refuses.
fn json<T: de::DeserializeOwned>(text: &str) -> Option<(T, &str)> {
    // Most values have no backslash at all: one byte search settles them.
    if text.contains('\\') && (text.contains("\\ud") || text.contains("\\uD")) {
        return None;
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<T>();
    let value = stream.next()?.ok()?;
    Some((value, &text[stream.byte_offset()..]))
}

/// JSON as YAML reads it: no duplicate keys (YAML refuses them); a duplicate fails, and the
/// document goes to `yaml_serde`.
struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> de::Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON without duplicate keys")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(map))
    }
}

/// The longest key the emitter writes as a simple `key: value`; longer ones become `? key`.
const SIMPLE_KEY_MAX: usize = 128;

/// Writes a block mapping at `indent`; with `inline`, the first entry continues the line
/// the caller started (after `- `).
fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline: bool) -> Option<()> {
    for (i, (key, value)) in map.iter().enumerate() {
        if key.len() > SIMPLE_KEY_MAX {
            return None;
        }
        if i > 0 || !inline {
            pad(out, indent);
        }
        string(out, key)?;
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2, false)?;
            }
            // Sequences in a mapping are not indented: `key:` then `- item` below it.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent, false)?;
            }
            _ => {
                out.push(' ');
                flow(out, value)?;
                out.push('\n');
            }
        }
    }
    Some(())
}

/// Writes a block sequence at `indent`; `inline` as for `mapping`.
fn sequence(out: &mut String, items: &[Value], indent: usize, inline: bool) -> Option<()> {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => mapping(out, map, indent + 2, true)?,
            Value::Array(inner) if !inner.is_empty() => sequence(out, inner, indent + 2, true)?,
            _ => {
                flow(out, item)?;
                out.push('\n');
            }
        }
    }
    Some(())
}

/// A scalar, or an empty collection, on the current line.
fn flow(out: &mut String, value: &Value) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
        Value::String(s) => string(out, s)?,
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        _ => return None,
    }
    Some(())
}

/// How the emitter writes a string, where that is certain without running it.
#[derive(Debug, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
}

/// The style of a string of printable ASCII without spaces that cannot read as anything
/// but a string, or is a boolean or null word; `None` for any other string. Plain unless
/// it starts like a YAML indicator or document marker, or ends with `:`; the words are
/// single-quoted, as `yaml_serde` quotes every string it would read as another type.
fn style(s: &str) -> Option<Style> {
    let bytes = s.as_bytes();
    let (&first, _) = bytes.split_first()?;
    if BOOLEANS_AND_NULLS.contains(&s) {
        return Some(Style::SingleQuoted);
    }
    if !bytes.iter().all(u8::is_ascii_graphic) || !reads_as_string(s) {
        return None;
    }
    let indicator = b"#,[]{}&*!|>'\"%@`".contains(&first)
        || matches!(s, "?" | ":" | "-")
        || s.ends_with(':')
        || s.starts_with("---")
        || s.starts_with("...");
    Some(if indicator || yaml11_reads_as_other(s) {
        Style::SingleQuoted
    } else {
        Style::Plain
    })
}

/// The words YAML 1.2 (and `yaml_serde`) reads as booleans and null.
const BOOLEANS_AND_NULLS: &[&str] = &[
    "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~",
];

/// Whether YAML certainly reads `s`, written plain, as a string: not a null or boolean
/// word, and not a number in any base. Numbers start with a digit or `.` (after a sign)
/// and have at most one `.`, and nothing but digits, `.`, `_`, signs and the letters of
/// hexadecimal, octal and binary prefixes and exponents.
fn reads_as_string(s: &str) -> bool {
    if BOOLEANS_AND_NULLS.contains(&s) {
        return false;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    match unsigned.bytes().next() {
        Some(b) if b.is_ascii_digit() => {
            s.bytes().filter(|&b| b == b'.').count() > 1
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"xXoObB._+-".contains(&b))
        }
        Some(b'.') | None => false,
        Some(_) => true,
    }
}

/// Whether a YAML 1.1 reader (go-yaml v2 under `kubectl`, PyYAML, many CI tools) may read
/// plain `s` as something other than a string: the implicit types of YAML 1.1's type
/// repository (yaml.org/type: bool, int, float, null, timestamp, merge, value), whose words
/// YAML 1.2 reads as strings (`yes`, `on`, `n`, `0o17`, `1_000`, `12:30`, `2001-12-14`).
/// The float pattern also matches IPv4 addresses; readers differ there, so they are quoted.
fn yaml11_reads_as_other(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~", "",
        "=", "<<",
    ];
    static NUMBER_OR_TIME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(concat!(
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            r"|[-+]?(?:[0-9][0-9_]*)?\.[0-9.]*(?:[eE][-+][0-9]+)?",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"|[0-9]{4}-[0-9]{2}-[0-9]{2}",
            r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
            r"(?:[ \t]*Z|[-+][0-9]{1,2}(?::[0-9]{2})?)?)$",
        ))
        .expect("the YAML 1.1 patterns are valid")
    });
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    WORDS.contains(&s)
        || (unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && NUMBER_OR_TIME.is_match(s))
}

/// Writes a string in the style the emitter would choose, or declines.
fn string(out: &mut String, s: &str) -> Option<()> {
    match style(s)? {
        Style::Plain => out.push_str(s),
        Style::SingleQuoted => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
    }
    Some(())
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{emitted, from_str, to_string, Reader};

    /// The direct path writes what `yaml_serde` writes once YAML 1.1's words are quoted.
    fn same_as_yaml_serde(value: &serde_json::Value) {
        assert_eq!(
            to_string(value).unwrap(),
            emitted(value).unwrap(),
            "{value}"
        );
    }

    #[test]
    fn strings_yaml_1_1_reads_as_other_types_are_quoted_on_both_paths() {
        for word in [
            "yes",
            "on",
            "Off",
            "n",
            "Y",
            "<<",
            "=",
            "1_000",
            "12:30",
            "1.2.3",
            ".inf",
            "2001-12-14",
            "0o17",
            "10.0.0.1",
        ] {
            let direct = json!({ word: word, "k": 1 });
            assert_eq!(
                to_string(&direct).unwrap(),
                format!("'{word}': '{word}'\nk: 1\n")
            );
            // A float sends the document through yaml_serde.
            let fallback = json!({ word: [word], "f": 0.5 });
            assert_eq!(
                to_string(&fallback).unwrap(),
                format!("'{word}':\n- '{word}'\nf: 0.5\n")
            );
        }
        assert_eq!(
            to_string(
                &json!({"port": 31111, "name": "yes-no", "retryOn": "5xx", "path": ".spec.x"})
            )
            .unwrap(),
            "port: 31111\nname: yes-no\nretryOn: 5xx\npath: .spec.x\n"
        );
    }

    /// Labels such as `rank-below-1: "true"` sit on every imported endpoint.
    #[test]
    fn booleans_and_nulls_as_strings_are_written_directly_as_the_emitter_quotes_them() {
        for word in super::BOOLEANS_AND_NULLS {
            let value = json!({ "key": word, "list": [word], *word: 1 });
            let mut direct = String::new();
            let serde_json::Value::Object(map) = &value else {
                unreachable!()
            };
            assert!(
                super::mapping(&mut direct, map, 0, false).is_some(),
                "{word}"
            );
            assert_eq!(direct, emitted(&value).unwrap());
            assert!(direct.starts_with(&format!("key: '{word}'\n")), "{direct}");
        }
    }

    #[test]
    fn nesting_matches_the_emitter() {
        same_as_yaml_serde(&json!({
            "a": {"b": {"c": 1}, "d": [1, 2]},
            "e": [{"f": "g", "h": [{"i": "j"}, [], {}], "k": {}}, [["l", "m"], "n"], []],
            "o": null, "p": true, "q": false, "r": -3, "s": 18_446_744_073_709_551_615_u64,
        }));
    }

    #[test]
    fn scalars_match_the_emitter() {
        #[rustfmt::skip]
        let words = [
            "", "a", "Z9", "true", "True", "TRUE", "false", "FALSE", "null", "NULL", "Null",
            "~", "yes", "no", "on", "off", "y", "n", "Yes", "ON", "inf", "nan", "NaN",
            "infinity", ".inf", "-.inf", ".nan", "e1", "E5", "x1e3", "0", "007", "1.5", "0x1f",
            "0o7", "0b1", "+1", "-1", "1_000", "12:30", "a: b", "a:b", "a #b", "#a", "- a",
            "-a", "a-", "?a", "a?", "*a", "&a", "!a", "%UNIQUE_ID%", "@a", "`a", "|", ">",
            "'a'", "\"a\"", "{a}", "[a]", "a,b", " a", "a ", "a\tb", "a\nb", "a\nb\n", "é",
            "a/b.c_d-e", "app.kubernetes.io/managed-by", "1.2.3.4", "10s", "mcw-a.b", "_a",
            ".a", "/a", "6s", "1h", "100ms", "5xx", "5xx,reset", "1.2", "1.2.3", "1d", "0.5.1",
            "1e5", "1E5", "1_0", "+1.5.2", "-1.2.3", "-a", "+a", "a,b", ",a", "it's", "'", ":a",
            "a:", "?", "-", "--", "---", "---a", "...a", "..", "a#b", "a'b", "a:b", "a[b]",
            "a{b}", "a|b", "a>b", "a!b", "a&b", "a*b", "a%b", "a@b", "a`b", "a\\b", "0o17",
            "0b101", "0xFF", "0xfg", "1.5e-3", "1.5e-3.1", "9999999999999999999999", "~a", "a~",
        ];
        for word in words {
            same_as_yaml_serde(&json!({ "key": word, "list": [word] }));
            same_as_yaml_serde(&json!({ word: "value" }));
        }
        same_as_yaml_serde(&json!({"float": 0.5, "whole": 2.0}));
        // Long scalars without spaces are never folded, plain or quoted.
        same_as_yaml_serde(&json!({"plain": "a.b-".repeat(60), "quoted": "%x".repeat(100)}));
        same_as_yaml_serde(&json!({ "k".repeat(129): 1, "k".repeat(128): 2 }));
    }

    /// `from_str` itself asserts, in debug builds, that its direct reading equals
    /// `yaml_serde`'s; here both must also agree on what is not YAML at all.
    fn reads_as_yaml_serde(text: &str) {
        let expected = yaml_serde::from_str::<serde_json::Value>(text).ok();
        assert_eq!(from_str(text).ok(), expected, "{text}");
    }

    const TYPICAL: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: \"a\"\n  labels: {\"a\": \"b\", \"c.d/e\": \"f\"}\nspec:\n  ports: [{\"port\": 80, \"name\": \"http\"}]\n  list:\n  - a\n  - \"b\"\n  - name: x\n    value: 1\n  - - nested\n    - 2\n  empty:\n  other: -5\n  flag: true\n";

    #[test]
    fn the_common_shape_is_read_directly() {
        assert!(Reader::new(TYPICAL)
            .and_then(|mut r| r.document())
            .is_some());
        reads_as_yaml_serde(TYPICAL);
    }

    #[test]
    fn documents_read_as_yaml_serde_reads_them() {
        #[rustfmt::skip]
        let documents = [
            "# c\na: b # trailing\nc: \"d\" # x\n", "a: {\"k\": 1, \"k\": 2}\n", "a: 1\na: 2\n",
            "a: 1.5\n", "a: [1.5]\n", "a: 007\n", "a: -0\n", "a: 0x1F\n", "a: ~\n", "a: True\n",
            "a: yes\n", "a: 'x'\n", "a: |\n  x\n", "a: &x 1\nb: *x\n", "a: !!str 1\n",
            "---\na: 1\n", "a:\n  b: 1\n c: 2\n", "a: b\n  c\n", "a:\tb\n", "a: 1\r\nb: 2\r\n",
            "a: \"\\ud83d\\ude00\"\n", "a: \"\\u00e9\\n\\/\"\n", "a: 99999999999999999999\n",
            "a: -9223372036854775809\n", "a: 18446744073709551615\n", "\"quoted key\": 1\n",
            "- a\n- b\n", "", "a:b\n", "a: b: c\n", "a: [1, 2\n", "a: \"x\" y\n",
            "a:\n- b\nc: d\n", "a:\n  - b\n  -\n  - c: d\n    e:\n    - f\n",
            "k: \"%UNIQUE_ID%\"\n", "a: {\"b\": [1, {\"c\": null}]}\n", "a: # c\n  b: 1\n",
            "a:\n  - b\n - c\n", "a:\n- b\n  - c\n", "- a: 1\n  b: 2\n",
            "a: null\nb:\nc: false\n", "? a\n: b\n",
            "a: 6s\nb: 10.1.2.3\nc: 1.5\nd: a:b\ne: a,b\nf: a#b\ng: 5xx\nh: -a\n",
            "a: {tcp: {b: \"6s\"}}\n", "- {name: a}\n", "a: .x\nb: x:\n", "a:b: c\n",
        ];
        for text in documents {
            reads_as_yaml_serde(text);
        }
        let deep = format!("a:\n{}x\n", "- ".repeat(100_000));
        reads_as_yaml_serde(&deep);
    }

    /// The differential test of the direct path against yaml_serde, in every build (the
    /// assertions inside `from_str` and `to_string` run only with debug assertions): every
    /// rendered file of every golden tree is read by both and written by both.
    #[test]
    fn every_golden_file_reads_and_writes_as_yaml_serde_does() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
        let mut direct = 0;
        for entry in walkdir::WalkDir::new(golden).into_iter().flatten() {
            if entry.path().extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let expected: serde_json::Value = yaml_serde::from_str(&text).unwrap();
            if let Some(read) = Reader::new(&text).and_then(|mut r| r.document()) {
                assert_eq!(read, expected, "{}", entry.path().display());
                direct += 1;
            }
            let mut written = String::new();
            if let serde_json::Value::Object(map) = &expected {
                if super::mapping(&mut written, map, 0, false).is_some() {
                    assert_eq!(
                        written,
                        emitted(&expected).unwrap(),
                        "{}",
                        entry.path().display()
                    );
                }
            }
            assert_eq!(
                to_string(&expected).unwrap(),
                text,
                "{}",
                entry.path().display()
            );
        }
        assert!(direct > 100, "{direct} files read directly");
    }
}
