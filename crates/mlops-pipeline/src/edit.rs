//! `mlops stage add`: writes a `[stages.NAME]` table into `mlops.toml`, keeping the rest of the
//! file (comments, order, other sections) as it was. The result is validated (parsed, graph
//! built) before anything is written.

use std::path::Path;

use crate::Pipeline;
use crate::error::{Error, Result};
use crate::lock::write_atomic;
use crate::spec::{SPEC_FILE, Spec};

/// A stage to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewStage {
    /// Stage name.
    pub name: String,
    /// Shell command.
    pub cmd: String,
    /// Dependencies.
    pub deps: Vec<String>,
    /// Params (`file:key`).
    pub params: Vec<String>,
    /// Outs.
    pub outs: Vec<String>,
    /// Metric files.
    pub metrics: Vec<String>,
    /// Working folder, relative to the root.
    pub wdir: Option<String>,
}

impl NewStage {
    /// A stage called `name` running `cmd`, with nothing declared yet.
    pub fn new(name: impl Into<String>, cmd: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cmd: cmd.into(),
            ..Self::default()
        }
    }
}

fn array(items: &[String]) -> toml_edit::Item {
    let mut a = toml_edit::Array::new();
    for i in items {
        a.push(i.as_str());
    }
    toml_edit::value(a)
}

/// Adds `stage` to `ROOT/mlops.toml` (creating the file), replacing an existing stage of that
/// name only with `replace`.
///
/// Fails with [`Error::Syntax`] when the file is malformed or the stage already exists, and with
/// any error the new pipeline would have (overlapping outs, a cycle).
pub fn add_stage(root: &Path, stage: &NewStage, replace: bool) -> Result<()> {
    let path = root.join(SPEC_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let offset = e.span().map_or(0, |s| s.start);
        Error::at_offset(SPEC_FILE, &text, offset, e.message().trim().to_owned())
    })?;
    let stages = doc.entry("stages").or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        toml_edit::Item::Table(t)
    });
    let Some(stages) = stages.as_table_mut() else {
        return Err(Error::Syntax {
            file: SPEC_FILE.into(),
            line: 1,
            column: 1,
            message: "`stages` is not a table; write stages as [stages.NAME]".into(),
        });
    };
    if stages.contains_key(&stage.name) && !replace {
        let line = stages
            .get(&stage.name)
            .and_then(toml_edit::Item::span)
            .map_or(1, |s| crate::error::line_column(&text, s.start).0);
        return Err(Error::Syntax {
            file: SPEC_FILE.into(),
            line,
            column: 1,
            message: format!(
                "stage {} already exists; pass --force to replace it",
                stage.name
            ),
        });
    }
    let mut table = toml_edit::Table::new();
    table.insert("cmd", toml_edit::value(stage.cmd.as_str()));
    if let Some(w) = &stage.wdir {
        table.insert("wdir", toml_edit::value(w.as_str()));
    }
    for (key, list) in [
        ("deps", &stage.deps),
        ("params", &stage.params),
        ("outs", &stage.outs),
        ("metrics", &stage.metrics),
    ] {
        if !list.is_empty() {
            table.insert(key, array(list));
        }
    }
    stages.insert(&stage.name, toml_edit::Item::Table(table));
    let new_text = doc.to_string();
    Pipeline::new(Spec::parse(root, Path::new(SPEC_FILE), &new_text)?)?;
    write_atomic(&path, new_text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_comments_and_other_sections() {
        let dir = tempfile::tempdir().unwrap();
        let original = "# my pipeline\n[checks.raw]\npath = \"x.csv\" # keep\n\n[stages.prepare]\ncmd = \"p\" # the first\nouts = [\"d.csv\"]\n";
        std::fs::write(dir.path().join(SPEC_FILE), original).unwrap();
        let mut s = NewStage::new("train", "python train.py");
        s.deps = vec!["d.csv".into()];
        s.params = vec!["params.yaml:lr".into()];
        s.outs = vec!["model.bin".into()];
        s.metrics = vec!["m.json".into()];
        add_stage(dir.path(), &s, false).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SPEC_FILE)).unwrap();
        assert!(text.starts_with(original), "{text}");
        assert!(text.ends_with(
            "[stages.train]\ncmd = \"python train.py\"\ndeps = [\"d.csv\"]\nparams = [\"params.yaml:lr\"]\nouts = [\"model.bin\"]\nmetrics = [\"m.json\"]\n"
        ), "{text}");
        let spec = Spec::load(dir.path()).unwrap();
        assert_eq!(spec.stages.len(), 2);
    }

    #[test]
    fn refuses_duplicates_and_invalid_graphs_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        add_stage(dir.path(), &NewStage::new("a", "x"), false).unwrap();
        let e = add_stage(dir.path(), &NewStage::new("a", "y"), false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "mlops.toml:1:1: stage a already exists; pass --force to replace it"
        );
        add_stage(dir.path(), &NewStage::new("a", "y"), true).unwrap();
        assert_eq!(Spec::load(dir.path()).unwrap().stages[0].cmd, "y");
        let mut s = NewStage::new("b", "z");
        s.outs = vec!["o".into()];
        s.deps = vec!["o".into()];
        let before = std::fs::read_to_string(dir.path().join(SPEC_FILE)).unwrap();
        let e = add_stage(dir.path(), &s, false).unwrap_err().to_string();
        assert!(e.contains("depends on its own out o"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SPEC_FILE)).unwrap(),
            before
        );
    }
}
