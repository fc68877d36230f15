//! Structured files (TOML, YAML, JSON) as one value model: params files, metrics files. Key paths
//! (`model.lr`, `layers.0.units`) select a subtree; values have a canonical text form so that
//! formatting, key order and comments never count as a change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The format of a structured file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` or `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format of `path` by extension, or `None` when it is not one of the three.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Parses `text` (the contents of `file`, used in messages and to pick the format).
///
/// Fails with [`Error::Syntax`] naming the file, line and column when the text is malformed or
/// the extension is not `.toml`, `.yaml`, `.yml` or `.json`.
pub fn parse(file: &Path, text: &str) -> Result<Value> {
    let Some(format) = Format::of(file) else {
        return Err(Error::Syntax {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message: "unknown format; use a .toml, .yaml, .yml or .json file".into(),
        });
    };
    match format {
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            Error::at_offset(file, text, offset, e.message().trim().to_owned())
        }),
        Format::Yaml => {
            if text.trim().is_empty() {
                return Ok(Value::Object(serde_json::Map::new()));
            }
            serde_yaml::from_str::<Value>(text).map_err(|e| {
                let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
                Error::Syntax {
                    file: file.to_owned(),
                    line,
                    column,
                    message: yaml_message(&e),
                }
            })
        }
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| Error::Syntax {
            file: file.to_owned(),
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        }),
    }
}

fn yaml_message(e: &serde_yaml::Error) -> String {
    // serde_yaml appends " at line L column C"; the location is already in the prefix.
    let s = e.to_string();
    s.split(" at line ").next().unwrap_or(&s).to_owned()
}

fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    s.split(" at line ").next().unwrap_or(&s).to_owned()
}

/// Reads and parses `path`; `display` is the name used in messages (relative to the root).
pub fn load(path: &Path, display: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(display, e))?;
    parse(display, &text)
}

/// The subtree at the dotted `key` path (`model.lr`; array elements by index, `layers.0`), or
/// `None` when some part does not exist. An empty key is the whole value.
pub fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    if key.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for part in key.split('.') {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The canonical text of `value`: compact JSON with object keys sorted at every level, so the same
/// data written in TOML, YAML or JSON, in any key order, has the same text.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// The leaves of `value` by dotted key path (`a.b`, `items.0`), in sorted order. Scalars only:
/// numbers, strings, booleans; nulls are skipped. A scalar at the top level has the key `""`.
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    flatten_into(value, String::new(), &mut out);
    out
}

fn flatten_into(value: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(v, join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(v, join(&i.to_string()), out);
            }
        }
        Value::Null => {}
        scalar => {
            out.insert(prefix, scalar.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(name: &str, text: &str) -> Result<Value> {
        parse(Path::new(name), text)
    }

    #[test]
    fn same_data_in_three_formats_has_one_canonical_form() {
        let t = p("a.toml", "[model]\nlr = 0.1\ndepth = 4\n").unwrap();
        let y = p("a.yaml", "model:\n  depth: 4\n  lr: 0.1\n").unwrap();
        let j = p("a.json", r#"{"model": {"lr": 0.1, "depth": 4}}"#).unwrap();
        assert_eq!(canonical(&t), r#"{"model":{"depth":4,"lr":0.1}}"#);
        assert_eq!(canonical(&t), canonical(&y));
        assert_eq!(canonical(&t), canonical(&j));
    }

    #[test]
    fn lookup_follows_objects_and_array_indices() {
        let v = p(
            "a.yaml",
            "model:\n  layers:\n    - units: 8\n    - units: 16\n",
        )
        .unwrap();
        assert_eq!(lookup(&v, "model.layers.1.units"), Some(&Value::from(16)));
        assert_eq!(lookup(&v, "model.layers.2"), None);
        assert_eq!(lookup(&v, "model.nope"), None);
        assert_eq!(lookup(&v, ""), Some(&v));
    }

    #[test]
    fn malformed_files_name_line_and_column() {
        let e = p("m.json", "{\n  \"a\": 1,\n  oops\n}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.json:3:3: "), "{e}");
        let e = p("m.yaml", "a: 1\nb: [1, 2\n").unwrap_err().to_string();
        assert!(e.starts_with("m.yaml:"), "{e}");
        let e = p("m.toml", "a = 1\nb = \n").unwrap_err().to_string();
        assert!(e.starts_with("m.toml:2:"), "{e}");
        let e = p("m.csv", "a,b").unwrap_err().to_string();
        assert!(e.contains("unknown format"), "{e}");
    }

    #[test]
    fn flatten_lists_scalar_leaves() {
        let v = p(
            "m.json",
            r#"{"acc": 0.9, "per_class": {"a": 1, "b": 2}, "x": null, "l": [true]}"#,
        )
        .unwrap();
        let f = flatten(&v);
        let keys: Vec<_> = f.keys().map(String::as_str).collect();
        assert_eq!(keys, ["acc", "l.0", "per_class.a", "per_class.b"]);
    }

    proptest! {
        #[test]
        fn canonical_ignores_key_order(pairs in proptest::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..8)) {
            let forward: serde_json::Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            let backward: serde_json::Map<String, Value> = pairs.iter().rev().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            prop_assert_eq!(canonical(&Value::Object(forward.clone())), canonical(&Value::Object(backward)));
            // and it is valid JSON that parses back to the same data
            let back: Value = serde_json::from_str(&canonical(&Value::Object(forward.clone()))).unwrap();
            prop_assert_eq!(back, Value::Object(forward));
        }

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = p("x.toml", &text);
            let _ = p("x.yaml", &text);
            let _ = p("x.json", &text);
        }
    }
}
