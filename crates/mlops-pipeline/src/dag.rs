//! The pipeline graph: an edge from stage A to stage B when B depends on something A writes (a
//! dep equal to, inside, or containing one of A's outs or metrics, or a params file A writes).
//! Invalid graphs are errors that name the stages and files involved.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::error::{Error, Result};
use crate::spec::{Spec, slash};

/// The dependency graph of a [`Spec`]: node `i` is `spec.stages[i]`.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<usize, PathBuf>,
    order: Vec<usize>,
    producers: BTreeMap<PathBuf, usize>,
}

impl Dag {
    /// Builds the graph.
    ///
    /// Fails with [`Error::Graph`] when two stages write the same path (or one writes inside the
    /// other's out folder), a stage depends on its own out, or the stages form a cycle.
    pub fn build(spec: &Spec) -> Result<Self> {
        let mut producers: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (i, stage) in spec.stages.iter().enumerate() {
            for out in stage.outs.iter().chain(&stage.metrics) {
                if let Some(&j) = producers.get(out) {
                    return Err(Error::Graph(format!(
                        "{} is written by two stages, {} and {}; each out must belong to one stage",
                        slash(out),
                        spec.stages[j].name,
                        stage.name
                    )));
                }
                producers.insert(out.clone(), i);
            }
        }
        // Overlaps: an out inside another out.
        for (out, &i) in &producers {
            if let Some((outer, j)) = containing(&producers, out) {
                return Err(Error::Graph(format!(
                    "{} (stage {}) is inside {} (stage {}); outs may not overlap",
                    slash(out),
                    spec.stages[i].name,
                    slash(outer),
                    spec.stages[j].name
                )));
            }
        }
        let mut graph = DiGraph::with_capacity(spec.stages.len(), spec.stages.len());
        for i in 0..spec.stages.len() {
            graph.add_node(i);
        }
        for (i, stage) in spec.stages.iter().enumerate() {
            let inputs = stage
                .deps
                .iter()
                .chain(stage.params.iter().map(|p| &p.file));
            let mut seen = std::collections::BTreeSet::new();
            for dep in inputs {
                let mut found: Vec<(usize, PathBuf)> = Vec::new();
                if let Some(&j) = producers.get(dep.as_path()) {
                    found.push((j, dep.clone()));
                } else if let Some((outer, j)) = containing(&producers, dep) {
                    found.push((j, outer.to_owned()));
                }
                // Outs inside a dep folder.
                for (out, &j) in producers.range::<Path, _>((
                    std::ops::Bound::Excluded(dep.as_path()),
                    std::ops::Bound::Unbounded,
                )) {
                    if !out.starts_with(dep) {
                        break;
                    }
                    found.push((j, out.clone()));
                }
                for (j, path) in found {
                    if j == i {
                        return Err(Error::Graph(format!(
                            "stage {} depends on its own out {}; a stage cannot read what it writes",
                            stage.name,
                            slash(&path)
                        )));
                    }
                    if seen.insert(j) {
                        graph.add_edge(NodeIndex::new(j), NodeIndex::new(i), path);
                    }
                }
            }
        }
        let order = topological(&graph).map_err(|node| cycle_error(spec, &graph, node))?;
        Ok(Self {
            graph,
            order,
            producers,
        })
    }

    /// Stage indices in dependency order; among stages that are ready together, by name.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The stages stage `i` directly depends on.
    pub fn upstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .map(NodeIndex::index)
    }

    /// The stages that directly depend on stage `i`.
    pub fn downstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
            .map(NodeIndex::index)
    }

    /// Every edge as (from, to, the path that links them), sorted.
    pub fn edges(&self) -> Vec<(usize, usize, &Path)> {
        let mut edges: Vec<_> = self
            .graph
            .edge_references()
            .map(|e| (e.source().index(), e.target().index(), e.weight().as_path()))
            .collect();
        edges.sort();
        edges
    }

    /// The stage that writes `path` (or the out folder containing it), if any.
    pub fn producer_of(&self, path: &Path) -> Option<usize> {
        self.producers
            .get(path)
            .copied()
            .or_else(|| containing(&self.producers, path).map(|(_, j)| j))
    }

    /// A mask of the stages in `targets` and everything they depend on, directly or not.
    pub fn with_upstream(&self, targets: &[usize]) -> Vec<bool> {
        let mut mask = vec![false; self.graph.node_count()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut mask[i], true) {
                stack.extend(self.upstream(i));
            }
        }
        mask
    }
}

/// The nearest proper ancestor folder of `path` that is a key of `producers`.
fn containing<'a>(
    producers: &'a BTreeMap<PathBuf, usize>,
    path: &Path,
) -> Option<(&'a Path, usize)> {
    let mut p = path.parent();
    while let Some(parent) = p {
        if parent.as_os_str().is_empty() {
            break;
        }
        if let Some((k, &j)) = producers.get_key_value(parent) {
            return Some((k.as_path(), j));
        }
        p = parent.parent();
    }
    None
}

/// Kahn's algorithm with the smallest index first, so the order is stable; `Err(node)` on a cycle.
fn topological(graph: &DiGraph<usize, PathBuf>) -> std::result::Result<Vec<usize>, NodeIndex> {
    let n = graph.node_count();
    let mut indegree: Vec<usize> = (0..n)
        .map(|i| {
            graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for j in graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing) {
            let j = j.index();
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        let stuck = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
        Err(NodeIndex::new(stuck))
    }
}

/// Names one cycle through the strongly connected component holding a stuck node.
fn cycle_error(spec: &Spec, graph: &DiGraph<usize, PathBuf>, stuck: NodeIndex) -> Error {
    let sccs = petgraph::algo::tarjan_scc(graph);
    let component = sccs
        .into_iter()
        .filter(|c| c.len() > 1)
        .min_by_key(|c| c.iter().map(|n| n.index()).min().unwrap_or(usize::MAX))
        .unwrap_or_else(|| vec![stuck]);
    let in_component = |n: NodeIndex| component.contains(&n);
    let start = component.iter().copied().min().unwrap_or(stuck);
    let mut path = vec![start];
    let mut text = spec.stages[start.index()].name.clone();
    let mut current = start;
    for _ in 0..=component.len() {
        let Some(edge) = graph
            .edges_directed(current, petgraph::Direction::Outgoing)
            .filter(|e| in_component(e.target()))
            .min_by_key(|e| e.target().index())
        else {
            break;
        };
        text.push_str(&format!(
            " -> {} (via {})",
            spec.stages[edge.target().index()].name,
            slash(edge.weight())
        ));
        current = edge.target();
        if path.contains(&current) {
            break;
        }
        path.push(current);
    }
    Error::Graph(format!(
        "the stages form a cycle: {text}; remove one of these dependencies"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(text: &str) -> Result<(Spec, Dag)> {
        let spec = Spec::parse(Path::new("/r"), Path::new("mlops.toml"), text)?;
        let dag = Dag::build(&spec)?;
        Ok((spec, dag))
    }

    fn names(spec: &Spec, order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| spec.stages[i].name.clone()).collect()
    }

    #[test]
    fn edges_follow_outs_into_deps_including_folders() {
        let (spec, dag) = dag(r#"
[stages.prepare]
cmd = "p"
outs = ["data/prepared"]
[stages.train]
cmd = "t"
deps = ["data/prepared/train.csv"]
outs = ["model.bin"]
metrics = ["m.json"]
[stages.report]
cmd = "r"
deps = ["data", "m.json"]
params = ["model.bin.json:x"]
[stages.z_first]
cmd = "z"
"#)
        .unwrap();
        assert_eq!(
            names(&spec, dag.order()),
            ["prepare", "train", "report", "z_first"]
        );
        let edges: Vec<_> = dag
            .edges()
            .into_iter()
            .map(|(a, b, p)| {
                format!(
                    "{}->{} {}",
                    spec.stages[a].name,
                    spec.stages[b].name,
                    slash(p)
                )
            })
            .collect();
        assert_eq!(
            edges,
            [
                "prepare->report data/prepared",
                "prepare->train data/prepared",
                "train->report m.json"
            ]
        );
        assert_eq!(dag.producer_of(Path::new("data/prepared/x/y")), Some(0));
        assert_eq!(dag.producer_of(Path::new("data/other")), None);
        let mask = dag.with_upstream(&[spec.index_of("train").unwrap()]);
        assert_eq!(mask, [true, false, true, false]);
    }

    #[test]
    fn cycles_name_stages_and_files() {
        let e = dag(r#"
[stages.a]
cmd = "a"
deps = ["c.txt"]
outs = ["a.txt"]
[stages.b]
cmd = "b"
deps = ["a.txt"]
outs = ["b.txt"]
[stages.c]
cmd = "c"
deps = ["b.txt"]
outs = ["c.txt"]
"#)
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "the stages form a cycle: a -> b (via a.txt) -> c (via b.txt) -> a (via c.txt); remove one of these dependencies"
        );
    }

    #[test]
    fn duplicate_overlapping_and_self_outs_are_errors() {
        let e = dag(
            "[stages.a]\ncmd = \"a\"\nouts = [\"x\"]\n[stages.b]\ncmd = \"b\"\nouts = [\"x\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "x is written by two stages, a and b; each out must belong to one stage"
        );
        let e = dag(
            "[stages.a]\ncmd = \"a\"\nouts = [\"d\"]\n[stages.b]\ncmd = \"b\"\nouts = [\"d/f\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "d/f (stage b) is inside d (stage a); outs may not overlap"
        );
        let e = dag("[stages.a]\ncmd = \"a\"\ndeps = [\"o/x\"]\nouts = [\"o\"]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "stage a depends on its own out o; a stage cannot read what it writes"
        );
    }
}
