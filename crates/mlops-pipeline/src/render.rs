//! The pipeline graph as text: an ASCII tree for people, Graphviz DOT, Mermaid, and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::Pipeline;
use crate::spec::slash;

/// Output formats of `mlops dag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A tree from the stages nothing depends on upstream.
    Ascii,
    /// Graphviz `digraph`.
    Dot,
    /// Mermaid `flowchart`.
    Mermaid,
    /// `{"stages": [...], "edges": [...]}`.
    Json,
}

/// The graph in `format`, ending in a newline.
pub fn render(pipeline: &Pipeline, format: Format) -> String {
    match format {
        Format::Ascii => ascii(pipeline),
        Format::Dot => dot(pipeline),
        Format::Mermaid => mermaid(pipeline),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&graph_json(pipeline)).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// The JSON shape of the graph.
#[derive(Debug, Serialize)]
pub struct GraphJson {
    /// Stages in dependency order.
    pub stages: Vec<StageJson>,
    /// Edges, sorted.
    pub edges: Vec<EdgeJson>,
}

/// One stage in [`GraphJson`].
#[derive(Debug, Serialize)]
pub struct StageJson {
    /// Name.
    pub name: String,
    /// Command.
    pub cmd: String,
    /// Deps.
    pub deps: Vec<String>,
    /// Params (`file:key`).
    pub params: Vec<String>,
    /// Outs.
    pub outs: Vec<String>,
    /// Metric files.
    pub metrics: Vec<String>,
    /// Frozen.
    pub frozen: bool,
}

/// One edge in [`GraphJson`].
#[derive(Debug, Serialize)]
pub struct EdgeJson {
    /// Upstream stage.
    pub from: String,
    /// Downstream stage.
    pub to: String,
    /// The path linking them.
    pub path: String,
}

/// The graph as a serialisable value.
pub fn graph_json(p: &Pipeline) -> GraphJson {
    let stages = &p.spec().stages;
    GraphJson {
        stages: p
            .dag()
            .order()
            .iter()
            .map(|&i| {
                let s = &stages[i];
                StageJson {
                    name: s.name.clone(),
                    cmd: s.cmd.clone(),
                    deps: s.deps.iter().map(|d| slash(d)).collect(),
                    params: s.params.iter().map(ToString::to_string).collect(),
                    outs: s.outs.iter().map(|d| slash(d)).collect(),
                    metrics: s.metrics.iter().map(|d| slash(d)).collect(),
                    frozen: s.frozen,
                }
            })
            .collect(),
        edges: p
            .dag()
            .edges()
            .into_iter()
            .map(|(a, b, path)| EdgeJson {
                from: stages[a].name.clone(),
                to: stages[b].name.clone(),
                path: slash(path),
            })
            .collect(),
    }
}

fn ascii(p: &Pipeline) -> String {
    let stages = &p.spec().stages;
    let dag = p.dag();
    let mut position = vec![0; stages.len()];
    for (k, &i) in dag.order().iter().enumerate() {
        position[i] = k;
    }
    // A stage with several parents is drawn under the one that runs last (by then all its
    // inputs exist); under the others it is only named.
    let home: Vec<Option<usize>> = (0..stages.len())
        .map(|i| dag.upstream(i).max_by_key(|&j| position[j]))
        .collect();
    let mut out = String::new();
    let mut printed = vec![false; stages.len()];
    for &root in dag.order() {
        if home[root].is_some() {
            continue;
        }
        // Iterative depth-first walk: (stage, parent, prefix, last child).
        let mut stack: Vec<(usize, Option<usize>, String, bool)> =
            vec![(root, None, String::new(), true)];
        while let Some((i, parent, prefix, last)) = stack.pop() {
            let (branch, child_prefix) = match (parent, last) {
                (None, _) => (String::new(), String::new()),
                (Some(_), true) => (format!("{prefix}└── "), format!("{prefix}    ")),
                (Some(_), false) => (format!("{prefix}├── "), format!("{prefix}│   ")),
            };
            if parent.is_some() && parent != home[i] {
                let whence = if printed[i] { "above" } else { "below" };
                let _ = writeln!(out, "{branch}{} (see {whence})", stages[i].name);
                continue;
            }
            printed[i] = true;
            let _ = writeln!(out, "{branch}{}", stages[i].name);
            let mut children: Vec<usize> = dag.downstream(i).collect();
            children.sort_unstable();
            let n = children.len();
            for (k, c) in children.into_iter().enumerate().rev() {
                stack.push((c, Some(i), child_prefix.clone(), k + 1 == n));
            }
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dot(p: &Pipeline) -> String {
    let stages = &p.spec().stages;
    let mut out = String::from("digraph pipeline {\n  rankdir=TB;\n  node [shape=box];\n");
    for &i in p.dag().order() {
        let _ = writeln!(out, "  {};", quote(&stages[i].name));
    }
    for (a, b, path) in p.dag().edges() {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            quote(&stages[a].name),
            quote(&stages[b].name),
            quote(&slash(path))
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid(p: &Pipeline) -> String {
    let stages = &p.spec().stages;
    let mut out = String::from("flowchart TD\n");
    let label = |s: &str| s.replace('"', "#quot;");
    for &i in p.dag().order() {
        let _ = writeln!(out, "  s{i}[\"{}\"]", label(&stages[i].name));
    }
    for (a, b, _) in p.dag().edges() {
        let _ = writeln!(out, "  s{a} --> s{b}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;
    use std::path::Path;

    fn pipeline() -> Pipeline {
        let spec = Spec::parse(
            Path::new("/r"),
            Path::new("mlops.toml"),
            r#"
[stages.prepare]
cmd = "p"
outs = ["d.csv"]
[stages.train]
cmd = "t"
deps = ["d.csv"]
outs = ["m.bin"]
[stages.eval]
cmd = "e"
deps = ["m.bin", "d.csv"]
[stages.lint]
cmd = "l"
"#,
        )
        .unwrap();
        Pipeline::new(spec).unwrap()
    }

    #[test]
    fn ascii_tree_draws_shared_children_once() {
        assert_eq!(
            render(&pipeline(), Format::Ascii),
            "lint\nprepare\n├── eval (see below)\n└── train\n    └── eval\n"
        );
    }

    #[test]
    fn dot_mermaid_and_json_list_every_edge() {
        let dot = render(&pipeline(), Format::Dot);
        assert!(
            dot.contains("\"prepare\" -> \"train\" [label=\"d.csv\"];"),
            "{dot}"
        );
        assert!(
            dot.contains("\"train\" -> \"eval\" [label=\"m.bin\"];"),
            "{dot}"
        );
        let mermaid = render(&pipeline(), Format::Mermaid);
        assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
        assert_eq!(mermaid.matches("-->").count(), 3, "{mermaid}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&pipeline(), Format::Json)).unwrap();
        assert_eq!(json["edges"].as_array().unwrap().len(), 3);
        assert_eq!(json["stages"][0]["name"], "lint");
    }
}
