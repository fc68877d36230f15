//! Notebook outputs, stripped with nbstripout's defaults: outputs, execution counts (also inside
//! kept outputs), `metadata.signature`, `metadata.widgets` and the volatile cell metadata
//! (`collapsed`, `ExecuteTime`, `execution`, `heading_collapsed`, `hidden`, `scrolled`).
//! `keep_output` in the notebook's metadata, or in a cell's metadata or tags, keeps outputs;
//! `init_cell` cells keep theirs. Cell ids are kept.

use serde_json::{Map, Value};

use crate::config::NotebookConfig;

/// The keys nbstripout removes by default, as `metadata.KEY` (notebook) or `cell.KEY.PATH`.
pub const DEFAULT_EXTRA_KEYS: &[&str] = &[
    "metadata.signature",
    "metadata.widgets",
    "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime",
    "cell.metadata.execution",
    "cell.metadata.heading_collapsed",
    "cell.metadata.hidden",
    "cell.metadata.scrolled",
];

/// What stripping changed (or would change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stripped {
    /// Cells whose outputs were removed.
    pub outputs: usize,
    /// Execution counts (of cells or kept outputs) set to null.
    pub counts: usize,
    /// Metadata keys removed.
    pub metadata: usize,
}

impl Stripped {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.outputs + self.counts + self.metadata > 0
    }

    /// `2 cells with outputs, 3 execution counts, 1 volatile metadata key`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        if self.outputs > 0 {
            parts.push(plural(
                self.outputs,
                "cell with outputs",
                "cells with outputs",
            ));
        }
        if self.counts > 0 {
            parts.push(plural(self.counts, "execution count", "execution counts"));
        }
        if self.metadata > 0 {
            parts.push(plural(
                self.metadata,
                "volatile metadata key",
                "volatile metadata keys",
            ));
        }
        parts.join(", ")
    }
}

/// Strips `nb` in place; returns what changed.
pub fn strip(nb: &mut Value, config: &NotebookConfig) -> Stripped {
    let mut s = Stripped::default();
    let Some(root) = nb.as_object_mut() else {
        return s;
    };
    let mut keep_output = config.keep_output;
    if !keep_output && let Some(k) = root.get("metadata").and_then(|m| m.get("keep_output")) {
        keep_output = truthy(k);
    }
    let keys: Vec<&str> = DEFAULT_EXTRA_KEYS
        .iter()
        .copied()
        .chain(config.extra_keys.iter().map(String::as_str))
        .collect();
    if let Some(meta) = root.get_mut("metadata") {
        for key in keys.iter().filter_map(|k| k.strip_prefix("metadata.")) {
            if pop_recursive(meta, key) {
                s.metadata += 1;
            }
        }
    }
    let mut cells: Vec<&mut Value> = Vec::new();
    if root.contains_key("cells") {
        if let Some(Value::Array(list)) = root.get_mut("cells") {
            cells.extend(list.iter_mut());
        }
    } else if let Some(Value::Array(sheets)) = root.get_mut("worksheets") {
        for ws in sheets {
            if let Some(Value::Array(list)) = ws.get_mut("cells") {
                cells.extend(list.iter_mut());
            }
        }
    }
    for cell in cells {
        let Some(obj) = cell.as_object_mut() else {
            continue;
        };
        let keep_this = keep_output_of(obj, keep_output);
        if let Some(Value::Array(outputs)) = obj.get_mut("outputs") {
            if !keep_this && !outputs.is_empty() {
                outputs.clear();
                s.outputs += 1;
            }
            if !config.keep_count {
                for out in outputs.iter_mut() {
                    if let Some(c) = out.get_mut("execution_count")
                        && !c.is_null()
                    {
                        *c = Value::Null;
                        s.counts += 1;
                    }
                }
            }
        }
        if !config.keep_count {
            for key in ["prompt_number", "execution_count"] {
                if let Some(c) = obj.get_mut(key)
                    && !c.is_null()
                {
                    *c = Value::Null;
                    s.counts += 1;
                }
            }
        }
        let mut as_value = Value::Object(std::mem::take(obj));
        for key in keys.iter().filter_map(|k| k.strip_prefix("cell.")) {
            if pop_recursive(&mut as_value, key) {
                s.metadata += 1;
            }
        }
        if let Value::Object(back) = as_value {
            *obj = back;
        }
    }
    s
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn keep_output_of(cell: &Map<String, Value>, default: bool) -> bool {
    let Some(meta) = cell.get("metadata") else {
        return default;
    };
    if let Some(init) = meta.get("init_cell") {
        return truthy(init);
    }
    let has_meta = meta.get("keep_output");
    let has_tag = meta
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some("keep_output")));
    match has_meta {
        Some(v) => truthy(v) || has_tag,
        None if has_tag => true,
        None => default,
    }
}

/// `dict.pop` along a `.`-separated path; whether something was removed.
fn pop_recursive(v: &mut Value, path: &str) -> bool {
    let mut current = v;
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    for p in parts {
        match current.get_mut(p) {
            Some(next) => current = next,
            None => return false,
        }
    }
    current
        .as_object_mut()
        .and_then(|o| o.shift_remove(last))
        .is_some()
}

/// Serialises a notebook as Jupyter does: one-space indent, keys sorted, non-ASCII kept,
/// a final newline.
pub fn to_jupyter_json(nb: &Value) -> Vec<u8> {
    use serde::Serialize;
    let sorted = sort_keys(nb);
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising a Value into memory cannot fail.
    let _ = sorted.serialize(&mut ser);
    out.push(b'\n');
    out
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<_> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nb() -> Value {
        json!({
            "cells": [
                {"cell_type": "code", "execution_count": 3, "id": "a1",
                 "metadata": {"scrolled": true, "ExecuteTime": {"end": "x"}, "tags": []},
                 "outputs": [{"output_type": "execute_result", "execution_count": 3, "data": {}, "metadata": {}}],
                 "source": ["1 + 2"]},
                {"cell_type": "code", "execution_count": 4, "metadata": {"keep_output": true},
                 "outputs": [{"output_type": "execute_result", "execution_count": 4, "data": {}, "metadata": {}}],
                 "source": ["plot()"]},
                {"cell_type": "markdown", "metadata": {}, "source": ["# Title"]}
            ],
            "metadata": {"kernelspec": {"name": "python3"}, "widgets": {"state": {}}},
            "nbformat": 4, "nbformat_minor": 5
        })
    }

    #[test]
    fn strips_like_nbstripout_and_honours_keep_output() {
        let mut v = nb();
        let s = strip(&mut v, &NotebookConfig::default());
        assert_eq!(
            s,
            Stripped {
                outputs: 1,
                counts: 3,
                metadata: 3
            }
        );
        assert_eq!(v["cells"][0]["outputs"], json!([]));
        assert_eq!(v["cells"][0]["execution_count"], Value::Null);
        assert_eq!(v["cells"][0]["metadata"], json!({"tags": []}));
        assert_eq!(v["cells"][0]["id"], json!("a1"));
        assert_eq!(v["cells"][1]["outputs"][0]["execution_count"], Value::Null);
        assert_eq!(v["cells"][1]["outputs"].as_array().unwrap().len(), 1);
        assert!(v["metadata"].get("widgets").is_none());
        assert_eq!(
            strip(&mut v, &NotebookConfig::default()),
            Stripped::default()
        );
        assert_eq!(
            s.describe(),
            "1 cell with outputs, 3 execution counts, 3 volatile metadata keys"
        );
    }

    #[test]
    fn notebook_level_keep_output_and_keep_count() {
        let mut v = nb();
        v["metadata"]["keep_output"] = json!(true);
        let cfg = NotebookConfig {
            keep_count: true,
            ..NotebookConfig::default()
        };
        let s = strip(&mut v, &cfg);
        assert_eq!((s.outputs, s.counts), (0, 0));
        assert_eq!(v["cells"][0]["execution_count"], json!(3));
    }

    #[test]
    fn jupyter_json_has_one_space_indent_sorted_keys_and_final_newline() {
        let text = String::from_utf8(to_jupyter_json(&json!({"b": [], "a": {"é": 1}}))).unwrap();
        assert_eq!(text, "{\n \"a\": {\n  \"é\": 1\n },\n \"b\": []\n}\n");
    }
}
