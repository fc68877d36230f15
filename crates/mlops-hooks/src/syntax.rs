//! Syntax of structured files, with line and column: YAML (every document), JSON (duplicate
//! keys rejected) and TOML.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// Which parser a file gets, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.yaml`, `.yml`.
    Yaml,
    /// `.json`, `.geojson`, `.ipynb`.
    Json,
    /// `.toml`.
    Toml,
}

impl Format {
    /// The format of a path, if it has one of the known extensions.
    pub fn of(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "json" | "geojson" | "ipynb" => Some(Self::Json),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }
}

/// A parse error: 1-based line and column when the parser gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// Parses `data` as `format`; `Ok` when it is well formed.
///
/// # Errors
/// The first problem, with its position.
pub fn check(format: Format, data: &[u8]) -> Result<(), SyntaxError> {
    match format {
        Format::Json => check_json(data),
        Format::Yaml => check_yaml(data),
        Format::Toml => check_toml(data),
    }
}

fn check_json(data: &[u8]) -> Result<(), SyntaxError> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let result = Strict.deserialize(&mut de).and_then(|()| de.end());
    result.map_err(|e| SyntaxError {
        line: Some(e.line()),
        column: Some(e.column()),
        message: strip_position(&e.to_string()),
    })
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn check_yaml(data: &[u8]) -> Result<(), SyntaxError> {
    // Most configuration files are plain block YAML that a line scan proves well formed many
    // times faster than libyaml parses it; anything else (including every error) goes to the
    // full parser, so verdicts, messages and positions are the full parser's.
    if crate::yaml_fast::proves_valid(data) {
        return Ok(());
    }
    check_yaml_full(data)
}

/// The full YAML check: serde_yaml over every document, rejecting duplicate keys.
pub(crate) fn check_yaml_full(data: &[u8]) -> Result<(), SyntaxError> {
    for doc in serde_yaml::Deserializer::from_slice(data) {
        if let Err(e) = doc.deserialize_any(StrictYaml) {
            let loc = e.location();
            let message = strip_position(&e.to_string());
            let mut line = loc.as_ref().map(|l| l.line());
            let mut column = loc.as_ref().map(|l| l.column());
            // serde_yaml points at the start of the mapping; point at the repeated key instead.
            if let (Some(key), Some(from)) = (duplicate_key(&message), line)
                && let Some((l, c)) = second_key_line(data, &key, from)
            {
                (line, column) = (Some(l), Some(c));
            }
            return Err(SyntaxError {
                line,
                column,
                message,
            });
        }
    }
    Ok(())
}

/// The key of serde_yaml's `duplicate entry with key "K"` message.
fn duplicate_key(message: &str) -> Option<String> {
    let rest = message.split_once("duplicate entry with key ")?.1;
    let quoted = rest.strip_prefix('"')?;
    Some(quoted.split_once('"')?.0.to_owned())
}

/// The line and column of the second `key:` at the indentation of the first, from line `from`.
fn second_key_line(data: &[u8], key: &str, from: usize) -> Option<(usize, usize)> {
    let mut first_indent = None;
    for (i, raw) in data
        .split(|b| *b == b'\n')
        .enumerate()
        .skip(from.saturating_sub(1))
    {
        let line = String::from_utf8_lossy(raw);
        let body = line.trim_start_matches([' ', '-']);
        let indent = line.len() - body.len();
        let is_key = [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ]
        .iter()
        .any(|k| body.starts_with(k.as_str()));
        if !is_key {
            continue;
        }
        match first_indent {
            None => first_indent = Some(indent),
            Some(f) if f == indent => return Some((i + 1, indent + 1)),
            Some(_) => {}
        }
    }
    None
}

fn check_toml(data: &[u8]) -> Result<(), SyntaxError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let valid = &data[..e.valid_up_to()];
        let line = memchr::memchr_iter(b'\n', valid).count() + 1;
        SyntaxError {
            line: Some(line),
            column: None,
            message: "not valid UTF-8".into(),
        }
    })?;
    match toml::from_str::<toml::Table>(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let (line, column) = e.span().map_or((None, None), |s| {
                let (l, c) = crate::config::line_col(text, s.start);
                (Some(l), Some(c))
            });
            Err(SyntaxError {
                line,
                column,
                message: e.message().trim_end().to_owned(),
            })
        }
    }
}

/// Walks any JSON value, failing on a key repeated within one object.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Strict)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are borrowed from the input where they have no escapes; small objects (most of
        // them) are searched linearly, larger ones through a set, without a String per key.
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        let mut set: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(JsonKey)? {
            let repeated = if set.is_empty() && seen.len() < SMALL_OBJECT {
                let r = seen.contains(&key);
                seen.push(key.clone());
                r
            } else {
                set.extend(seen.drain(..));
                !set.insert(key.clone())
            };
            if repeated {
                return Err(A::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }
}

/// Objects with at most this many keys are checked for duplicates by a linear search.
const SMALL_OBJECT: usize = 16;

/// A JSON object key, borrowed from the input when it has no escapes.
struct JsonKey;

impl<'de> DeserializeSeed<'de> for JsonKey {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(JsonKey)
    }
}

impl<'de> Visitor<'de> for JsonKey {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Walks any YAML value without building it, failing on a key repeated within one mapping
/// (as serde_yaml's `Value` does, with the same message).
struct StrictYaml;

impl<'de> DeserializeSeed<'de> for StrictYaml {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(StrictYaml)
    }
}

impl<'de> Visitor<'de> for StrictYaml {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(StrictYaml)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StrictYaml)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(YamlKey)? {
            if let Some(key) = key
                && !seen.insert(key.clone())
            {
                return Err(A::Error::custom(format!(
                    "duplicate entry with key \"{}\"",
                    key.1
                )));
            }
            map.next_value_seed(StrictYaml)?;
        }
        Ok(())
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use serde::de::VariantAccess;
        // A tagged value (`!Ref name`): check what the tag applies to.
        let (_, variant) = data.variant::<serde::de::IgnoredAny>()?;
        variant.newtype_variant_seed(StrictYaml)
    }
}

/// A mapping key: its text when scalar (`None` for a collection key, never a duplicate).
struct YamlKey;

impl<'de> DeserializeSeed<'de> for YamlKey {
    type Value = Option<(char, String)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<(char, String)>, D::Error> {
        d.deserialize_any(YamlKey)
    }
}

impl<'de> Visitor<'de> for YamlKey {
    type Value = Option<(char, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Option<(char, String)>, E> {
        Ok(Some(('b', v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Option<(char, String)>, E> {
        Ok(Some(('i', v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Option<(char, String)>, E> {
        Ok(Some(('i', v.to_string())))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Option<(char, String)>, E> {
        Ok(Some(('i', v.to_string())))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Option<(char, String)>, E> {
        Ok(Some(('i', v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Option<(char, String)>, E> {
        Ok(Some(('f', v.to_string())))
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<(char, String)>, E> {
        Ok(Some(('s', v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Option<(char, String)>, E> {
        Ok(Some(('n', "null".to_owned())))
    }
    fn visit_none<E>(self) -> Result<Option<(char, String)>, E> {
        Ok(Some(('n', "null".to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<(char, String)>, A::Error> {
        StrictYaml.visit_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<(char, String)>, A::Error> {
        StrictYaml.visit_map(map).map(|()| None)
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        data: A,
    ) -> Result<Option<(char, String)>, A::Error> {
        StrictYaml.visit_enum(data).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(format: Format, text: &str) -> SyntaxError {
        check(format, text.as_bytes()).unwrap_err()
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::of("a/b.YML"), Some(Format::Yaml));
        assert_eq!(Format::of("n.ipynb"), Some(Format::Json));
        assert_eq!(Format::of("Cargo.toml"), Some(Format::Toml));
        assert_eq!(Format::of("README"), None);
    }

    #[test]
    fn json_duplicate_keys_and_errors_have_positions() {
        assert!(check(Format::Json, br#"{"a": [1, {"b": 2}], "c": null}"#).is_ok());
        let e = err(Format::Json, "{\n  \"a\": 1,\n  \"a\": 2\n}");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("duplicate key `a`"), "{e:?}");
        // Objects past the linear-search size, and keys with escapes, are compared too.
        let mut big: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(check(Format::Json, format!("{{{}}}", big.join(",")).as_bytes()).is_ok());
        big.push("\"k\\u0033\": 0".to_owned());
        let e = err(Format::Json, &format!("{{{}}}", big.join(",")));
        assert!(e.message.contains("duplicate key `k3`"), "{e:?}");
        let e = err(Format::Json, "{\"a\\u0062\": 1, \"ab\": 2}");
        assert!(e.message.contains("duplicate key `ab`"), "{e:?}");
        let e = err(Format::Json, "{\"a\": 1,}");
        assert_eq!((e.line, e.column), (Some(1), Some(9)));
        let e = err(Format::Json, "{} x");
        assert!(e.message.contains("trailing characters"), "{e:?}");
        // Nesting beyond the parser's limit is an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(check(Format::Json, deep.as_bytes()).is_err());
    }

    #[test]
    fn yaml_checks_every_document_and_rejects_duplicates() {
        assert!(check(Format::Yaml, b"a: 1\n---\nb: !Ref x\n").is_ok());
        assert!(
            check(
                Format::Yaml,
                b"? [1, 2]\n: x\n1: a\n\"1\": b\nn: !Sub {a: 1}\nx: &a [1]\ny: *a\n"
            )
            .is_ok()
        );
        assert!(check(Format::Yaml, b"").is_ok());
        let e = err(Format::Yaml, "a: 1\n---\nb: [1, 2\n");
        assert_eq!(e.line, Some(4));
        let e = err(Format::Yaml, "a: 1\na: 2\n");
        assert!(e.message.contains("duplicate"), "{e:?}");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn toml_errors_have_positions_and_utf8_is_required() {
        assert!(check(Format::Toml, b"[a]\nb = 1\n").is_ok());
        let e = err(Format::Toml, "[a]\nb = \n");
        assert_eq!(e.line, Some(2));
        let e = check(Format::Toml, b"a = 1\nb = \"\xff\"\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (Some(2), "not valid UTF-8"));
    }
}
