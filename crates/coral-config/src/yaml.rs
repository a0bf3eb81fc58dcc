//! A generic YAML document tree with line numbers.
//!
//! The file is parsed with `serde-saphyr` into [`Node`]s (values paired with
//! their source location) and then walked by hand (see `file.rs`). Walking the
//! tree ourselves gives every error the full dotted key path
//! (`agent.telemetry.filters[1]`), the line number, and the list of accepted
//! keys, which serde's derived `deny_unknown_fields` errors cannot.
//!
//! Booleans are strict (only `true`/`false`), so YAML 1.1 spellings like `yes`
//! or `n` stay strings and are rejected with a clear message where a boolean
//! is expected.

use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned, UserMessageFormatter};

use crate::ConfigError;

/// A YAML value together with where it appears in the file.
pub(crate) type Node = Spanned<Value>;

/// A YAML mapping key together with where it appears in the file.
pub(crate) type Key = Spanned<String>;

/// A YAML value.
#[derive(Debug)]
pub(crate) enum Value {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string (quoted or plain).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// A short description of the kind of value, for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Null => "an empty value".to_owned(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(x) => format!("the number {x}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// The 1-based line of a node, or `None` when unknown.
pub(crate) fn line_of<T>(node: &Spanned<T>) -> Option<u64> {
    let line = node.referenced.line();
    (line > 0).then_some(line)
}

/// Deepest nesting a configuration file may use. Coral's deepest keys are
/// five levels down (`beyla.discovery.services[i].k8s_pod_label.<name>`);
/// the parser's own limit (64) let a hostile file nest deep enough to
/// exhaust a thread's stack in a debug build (found by fuzzing).
pub(crate) const MAX_DEPTH: usize = 24;

/// Parses one YAML document; `None` for an empty (or comments-only) file.
pub(crate) fn parse(text: &str, origin: &Path) -> Result<Option<Node>, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    options.strict_booleans = true;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<Option<Node>>(text, options).map_err(|err| {
        let location = err.location().filter(|l| l.line() > 0);
        ConfigError::Syntax {
            path: origin.to_path_buf(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: UserMessageFormatter.format_message(&err).into_owned(),
        }
    })
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer is too large"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

/// Reads a configuration file ([`ConfigError::Read`] names the path).
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Option<Node> {
        parse(text, Path::new("t.yaml")).expect("valid YAML")
    }

    #[test]
    fn empty_and_comment_only_documents_are_none() {
        assert!(parse_ok("").is_none());
        assert!(parse_ok("# nothing here\n\n# at all\n").is_none());
    }

    #[test]
    fn scalars_keep_their_types_and_lines() {
        let root = parse_ok("a: 1\nb: 0.5\nc: \"1\"\nd: yes\ne: true\nf:\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("expected a mapping")
        };
        let kinds: Vec<(String, String, Option<u64>)> = entries
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.describe(), line_of(v)))
            .collect();
        assert_eq!(kinds[0], ("a".into(), "the number 1".into(), Some(1)));
        assert_eq!(kinds[1].1, "the number 0.5");
        assert_eq!(kinds[2].1, "the string \"1\"");
        assert_eq!(kinds[3].1, "the string \"yes\"", "booleans are strict");
        assert_eq!(kinds[4].1, "the boolean true");
        assert_eq!(kinds[5].1, "an empty value");
    }

    #[test]
    fn syntax_errors_carry_path_and_line() {
        let err = parse("a: 1\na: 2\n", Path::new("dup.yaml")).unwrap_err();
        assert_eq!(err.line(), Some(2));
        let msg = err.to_string();
        assert!(msg.contains("dup.yaml") && msg.contains("line 2"), "{msg}");
    }
}
