//! `cargo xtask demo`: the seed lab's workflow, end to end, in a temporary folder.

pub(crate) fn run(keep: bool) -> anyhow::Result<()> {
    let _ = keep;
    anyhow::bail!("the demo is assembled as capabilities land; see README.md")
}
