//! `cargo xtask bench cas`: mlops against DVC on the storage workloads of the issue: 20,000 files
//! of 1-16 KiB in 100 folders, and one 1 GiB file. Both tools run with their default settings in
//! their own Git repository on the same data, alternating; the workspace and page cache are warm,
//! and every run starts after a `sync` (untimed), with no other run's writes still in flight.
//!
//! Start it at least six minutes after deleting many files (such as the previous bench's
//! scratch folder, removed when it exits): for up to that long a journal-less ext4 skips
//! recently freed inodes when it allocates new ones, and a push of 20,000 files then took 2-6 s
//! instead of 1 (a pull 0.6-1.5 s instead of 0.4).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rand::{Rng, RngExt, SeedableRng};

use super::harness::{BenchContext, Measurement, Report, Row, Side, alternate, version_of};

const FILES: usize = 20_000;
const FOLDERS: usize = 100;
const BIG: u64 = 1 << 30;

pub(crate) fn run(ctx: &BenchContext) -> anyhow::Result<Report> {
    let files = FILES / ctx.shrink;
    let big = BIG / ctx.shrink as u64;
    let mut report = Report::default();
    let dvc = ctx.peer("dvc");
    let peer_name = dvc
        .as_ref()
        .map_or_else(|| "dvc".to_owned(), |d| version_of(d).replace("\n", " "));

    let _ = TRASH.set(ctx.scratch.path().join("trash"));
    let ours_dir = ctx.dir("cas-mlops")?;
    let theirs_dir = ctx.dir("cas-dvc")?;
    let (ours, theirs) = (ours_dir.as_path(), theirs_dir.as_path());
    eprintln!("generating {files} files and a {} MiB file", big >> 20);
    for root in [ours, theirs] {
        git(root, &["init", "-q"])?;
        make_files(&root.join("data"), files)?;
        make_big(&root.join("model.bin"), big)?;
    }
    run_ok(mlops(ctx, ours, &["init"]))?;
    if let Some(dvc) = &dvc {
        run_ok(dvc_cmd(dvc, theirs, &["init", "-q"]))?;
    }

    let reset_ours = |paths: &[&str]| -> anyhow::Result<()> {
        remove(&ours.join(".mlops/cache"))?;
        remove(&ours.join(".mlops/state"))?;
        for p in paths {
            remove(&ours.join(format!("{p}.mlops")))?;
        }
        Ok(())
    };
    let reset_theirs = |paths: &[&str]| -> anyhow::Result<()> {
        remove(&theirs.join(".dvc/cache"))?;
        remove(&theirs.join(".dvc/tmp"))?;
        for p in paths {
            remove(&theirs.join(format!("{p}.dvc")))?;
        }
        Ok(())
    };

    // 1. add of the 20,000 files, fresh cache and hash cache each run, taking turns with the
    // floor of that add (its file-system calls alone, `xtask add-floor`).
    let xtask = std::env::current_exe().context("the xtask binary")?;
    let floor_cache = ctx.scratch.path().join("floor-cache");
    let floor_ws = ctx.scratch.path().join("floor-workspace");
    let label = format!("add {files} files of 1-16 KiB");
    let measured = side_by_side(
        ctx,
        &label,
        &peer_name,
        Some(30.0),
        || reset_ours(&["data"]),
        || mlops(ctx, ours, &["add", "data"]),
        || reset_theirs(&["data"]),
        dvc.as_ref()
            .map(|d| move || dvc_cmd(d, theirs, &["add", "-q", "data"])),
        Some(Side::new(
            || remove(&floor_cache),
            || {
                let mut c = Command::new(&xtask);
                c.arg("add-floor").arg(ours.join("data")).arg(&floor_cache);
                c
            },
        )),
    )?;
    let floor = measured.floor_row("add: open, read, hard-link each file");
    report.rows.push(measured.row);
    report.rows.extend(floor);

    // 2. status with nothing changed (both have just added the folder).
    let row = side_by_side(
        ctx,
        &format!("status, nothing changed ({files} files)"),
        &peer_name,
        Some(20.0),
        || Ok(()),
        || mlops(ctx, ours, &["status"]),
        || Ok(()),
        dvc.as_ref()
            .map(|d| move || dvc_cmd(d, theirs, &["status", "-q"])),
        None,
    )?
    .row;
    report.rows.push(row);

    // 3. push of the 20,000 files to an empty local-folder remote.
    let remote_ours = ctx.scratch.path().join("remote-mlops");
    let remote_theirs = ctx.scratch.path().join("remote-dvc");
    run_ok(mlops(
        ctx,
        ours,
        &[
            "remote",
            "add",
            "store",
            &remote_ours.to_string_lossy(),
            "--default",
        ],
    ))?;
    if let Some(d) = &dvc {
        run_ok(dvc_cmd(
            d,
            theirs,
            &[
                "remote",
                "add",
                "-d",
                "store",
                &remote_theirs.to_string_lossy(),
            ],
        ))?;
    }
    let row = side_by_side(
        ctx,
        &format!("push {files} files to an empty folder remote"),
        &peer_name,
        Some(10.0),
        || remove(&remote_ours),
        || mlops(ctx, ours, &["push"]),
        || remove(&remote_theirs),
        dvc.as_ref()
            .map(|d| move || dvc_cmd(d, theirs, &["push", "-q"])),
        None,
    )?
    .row;
    report.rows.push(row);

    // 4. pull into an empty cache and workspace, taking turns with the floor of that pull
    // (`xtask pull-floor`, from the same remote).
    let measured = side_by_side(
        ctx,
        &format!("pull {files} files into an empty cache and workspace"),
        &peer_name,
        Some(15.0),
        || {
            remove(&ours.join(".mlops/cache"))?;
            remove(&ours.join(".mlops/state"))?;
            remove(&ours.join("data"))
        },
        || mlops(ctx, ours, &["pull"]),
        || {
            remove(&theirs.join(".dvc/cache"))?;
            remove(&theirs.join(".dvc/tmp"))?;
            remove(&theirs.join("data"))
        },
        dvc.as_ref()
            .map(|d| move || dvc_cmd(d, theirs, &["pull", "-q"])),
        Some(Side::new(
            || {
                remove(&floor_cache)?;
                remove(&floor_ws)
            },
            || {
                let mut c = Command::new(&xtask);
                c.arg("pull-floor")
                    .arg(remote_ours.join("blake3"))
                    .arg(&floor_cache)
                    .arg(&floor_ws);
                c
            },
        )),
    )?;
    let floor = measured.floor_row(
        "pull: copy each object into the cache (new file, linked into place), hard-link it \
         into the workspace",
    );
    report.rows.push(measured.row);
    report.rows.extend(floor);

    // 5. add of the 1 GiB file, fresh cache each run; then re-add unchanged.
    let row = side_by_side(
        ctx,
        &format!("add one {} MiB file", big >> 20),
        &peer_name,
        Some(3.0),
        || reset_ours(&["model.bin"]),
        || mlops(ctx, ours, &["add", "model.bin"]),
        || reset_theirs(&["model.bin"]),
        dvc.as_ref()
            .map(|d| move || dvc_cmd(d, theirs, &["add", "-q", "model.bin"])),
        None,
    )?
    .row;
    report.rows.push(row);
    let row = side_by_side(
        ctx,
        &format!("re-add the unchanged {} MiB file", big >> 20),
        &peer_name,
        Some(20.0),
        || Ok(()),
        || mlops(ctx, ours, &["add", "model.bin"]),
        || Ok(()),
        dvc.as_ref()
            .map(|d| move || dvc_cmd(d, theirs, &["add", "-q", "model.bin"])),
        None,
    )?
    .row;
    report.rows.push(row);

    report.notes.push(format!(
        "Each tool with its defaults: mlops links cache objects by reflink, then hardlink, then copy \
         (hard links here); DVC uses reflink, then copy. {} runs each, alternating, median wall \
         time (a clock around each process), peak RSS from /usr/bin/time. Workload: {files} files \
         of 1-16 KiB in {FOLDERS} folders, one {} MiB file, seeded random bytes.",
        ctx.runs,
        big >> 20
    ));
    if dvc.is_none() {
        report
            .notes
            .push("DVC is not installed: run ../shared/bench/setup-peers.sh".to_owned());
    }
    Ok(report)
}

/// What [`side_by_side`] measured: the row, and the floor's measurement when it had one.
struct Measured {
    row: Row,
    floor: Option<Measurement>,
}

impl Measured {
    /// The row of the floor, against the same peer runs: its ratio is the ceiling of the
    /// workload's.
    fn floor_row(&self, workload: &str) -> Option<Row> {
        Some(Row {
            workload: format!(
                "floor of that {workload} (no hashing); its ratio is the highest any tool could \
                 reach here"
            ),
            peer: self.row.peer.clone(),
            ours: self.floor?,
            theirs: self.row.theirs,
            goal: None,
        })
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call per workload reads best flat"
)]
/// mlops, then the floor (when given), then the peer (when installed), taking turns.
fn side_by_side<C, P>(
    ctx: &BenchContext,
    workload: &str,
    peer: &str,
    goal: Option<f64>,
    mut reset_ours: impl FnMut() -> anyhow::Result<()>,
    ours: impl Fn() -> Command,
    mut reset_theirs: impl FnMut() -> anyhow::Result<()>,
    theirs: Option<P>,
    floor: Option<Side<'_>>,
) -> anyhow::Result<Measured>
where
    P: Fn() -> C,
    C: Into<Command>,
{
    eprintln!("  {workload}");
    // Each run starts with nothing left to write back: a `dvc add` leaves 171 MiB of copies
    // dirty, and their writeback would otherwise land in whichever run comes next.
    let mut sides = vec![Side::new(
        move || {
            reset_ours()?;
            settle()
        },
        ours,
    )];
    let has_floor = floor.is_some();
    if let Some(mut f) = floor {
        sides.push(Side::new(
            move || {
                (f.reset)()?;
                settle()
            },
            f.cmd,
        ));
    }
    let has_peer = theirs.is_some();
    if let Some(p) = theirs {
        sides.push(Side::new(
            move || {
                reset_theirs()?;
                settle()
            },
            move || p().into(),
        ));
    }
    let mut m = alternate(ctx.runs, &mut sides)?.into_iter();
    let ours = m.next().context("no measurement of mlops")?;
    let floor = if has_floor { m.next() } else { None };
    let theirs = if has_peer { m.next() } else { None };
    Ok(Measured {
        row: Row {
            workload: workload.to_owned(),
            peer: peer.to_owned(),
            ours,
            theirs,
            goal,
        },
        floor,
    })
}

/// Writes back everything dirty (untimed), so no run pays for the one before it.
fn settle() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("sync")?;
    if !status.success() {
        bail!("sync failed");
    }
    Ok(())
}

fn mlops(ctx: &BenchContext, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(&ctx.mlops);
    c.current_dir(dir).args(["-q"]).args(args);
    c
}

fn dvc_cmd(dvc: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(dvc);
    c.current_dir(dir).args(args).env("DVC_NO_ANALYTICS", "1");
    c
}

fn run_ok(mut cmd: Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| crate::util::describe(&cmd))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            crate::util::describe(&cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut c = Command::new("git");
    c.current_dir(dir).args(args);
    run_ok(c)
}

/// Where resets put what they take away, until the bench ends (the scratch folder is removed at
/// exit, untimed).
static TRASH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Takes `path` out of the way for the next run by moving it into the trash, not deleting it:
/// ext4 scans past recently deleted inodes (for 60 s or more) when it allocates new ones, so
/// deleting 20,000 files right before a timed run that creates 20,000 made both tools' runs
/// mostly kernel time spent on the harness's own deletes (push with one thread took 5 s, 60% of
/// it in `recently_deleted`/`find_inode_bit`).
fn remove(path: &Path) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if let Some(trash) = TRASH.get() {
        std::fs::create_dir_all(trash)?;
        let to = trash.join(N.fetch_add(1, Ordering::Relaxed).to_string());
        if std::fs::rename(path, &to).is_ok() {
            return Ok(());
        }
    }
    let status = Command::new("rm").arg("-rf").arg(path).status()?;
    if !status.success() {
        bail!("could not remove {}", path.display());
    }
    Ok(())
}

fn make_files(dir: &Path, n: usize) -> anyhow::Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_000);
    let mut buf = vec![0u8; 16 << 10];
    for i in 0..n {
        let sub: PathBuf = dir.join(format!("part-{:03}", i % FOLDERS));
        if i < FOLDERS {
            std::fs::create_dir_all(&sub)?;
        }
        let len = rng.random_range((1usize << 10)..=(16 << 10));
        rng.fill_bytes(&mut buf[..len]);
        std::fs::write(sub.join(format!("sample-{i:05}.bin")), &buf[..len])?;
    }
    Ok(())
}

fn make_big(path: &Path, len: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1 << 30);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}
