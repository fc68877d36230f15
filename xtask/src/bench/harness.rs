//! Measuring commands: wall time (a nanosecond clock around the child) and peak RSS (from GNU
//! `/usr/bin/time`), alternating sides, medians, ratios, and a Markdown table for
//! `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::BenchArgs;
use crate::util::describe;

/// What every area gets: where peers live, how many runs, a scratch folder, the mlops binary.
pub(crate) struct BenchContext {
    /// Runs per side.
    pub(crate) runs: usize,
    /// Workload divisor (1 = the sizes).
    pub(crate) shrink: usize,
    /// The peer virtual environment's `bin/`, when it exists.
    pub(crate) peers_bin: Option<PathBuf>,
    /// A scratch folder removed at exit.
    pub(crate) scratch: tempfile::TempDir,
    /// The release `mlops` binary.
    pub(crate) mlops: PathBuf,
}

impl BenchContext {
    pub(crate) fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        if args.runs < 3 {
            bail!("--runs must be at least 3 (medians of fewer runs are noise)");
        }
        let venv = std::env::var_os("MLOPS_PEERS")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mlops-peers"))
            });
        let peers_bin = venv.map(|v| v.join("bin")).filter(|b| b.is_dir());
        let mlops = crate::util::build_mlops_release()?;
        let base =
            std::env::var_os("MLOPS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        std::fs::create_dir_all(&base)?;
        let scratch = tempfile::Builder::new()
            .prefix("mlops-bench-")
            .tempdir_in(base)?;
        Ok(Self {
            runs: args.runs,
            shrink: args.shrink.max(1),
            peers_bin,
            scratch,
            mlops,
        })
    }

    /// The path of peer tool `name` in the venv, if installed.
    pub(crate) fn peer(&self, name: &str) -> Option<PathBuf> {
        let path = self.peers_bin.as_ref()?.join(name);
        path.is_file().then_some(path)
    }

    /// A fresh sub-folder of the scratch folder.
    pub(crate) fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.scratch.path().join(name);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }
}

/// One timed run of a command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Wall-clock time.
    pub(crate) wall: Duration,
    /// Peak resident set size in KiB.
    pub(crate) max_rss_kib: u64,
}

/// Runs `cmd` once under `/usr/bin/time`, failing if the command fails. The wall time is
/// measured here, from spawn to exit: `/usr/bin/time`'s own `%e` comes in 10 ms steps, which
/// is 10-15% of a 60-90 ms `status`. It includes `/usr/bin/time`'s start (well under a
/// millisecond), the same on both sides, so it can only lower mlops's ratio.
pub(crate) fn time_once(cmd: &Command) -> anyhow::Result<Sample> {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("MLOPS_BENCH %M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let start = Instant::now();
    let out = timed
        .output()
        .with_context(|| format!("running {}", describe(cmd)))?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            describe(cmd),
            out.status,
            tail(&stderr, 20)
        );
    }
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("MLOPS_BENCH "))
        .with_context(|| format!("no timing from /usr/bin/time for {}", describe(cmd)))?;
    let rss: u64 = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no peak RSS from /usr/bin/time in {line:?}"))?
        .parse()
        .with_context(|| format!("peak RSS from /usr/bin/time in {line:?}"))?;
    Ok(Sample {
        wall,
        max_rss_kib: rss,
    })
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The medians of several samples of one side.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measurement {
    /// Median wall time.
    pub(crate) median: Duration,
    /// Highest peak RSS over the runs, KiB.
    pub(crate) max_rss_kib: u64,
    /// How many runs.
    pub(crate) runs: usize,
}

impl Measurement {
    /// Median and peak memory of `samples` (non-empty).
    pub(crate) fn of(samples: &[Sample]) -> Self {
        let mut walls: Vec<_> = samples.iter().map(|s| s.wall).collect();
        walls.sort();
        let median = if walls.is_empty() {
            Duration::ZERO
        } else if walls.len() % 2 == 1 {
            walls[walls.len() / 2]
        } else {
            (walls[walls.len() / 2 - 1] + walls[walls.len() / 2]) / 2
        };
        let max_rss_kib = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
        Self {
            median,
            max_rss_kib,
            runs: samples.len(),
        }
    }
}

/// One command measured by [`alternate`]: how to restore its starting state (untimed), and
/// the command.
pub(crate) struct Side<'a> {
    pub(crate) reset: Box<dyn FnMut() -> anyhow::Result<()> + 'a>,
    pub(crate) cmd: Box<dyn Fn() -> Command + 'a>,
}

impl<'a> Side<'a> {
    pub(crate) fn new(
        reset: impl FnMut() -> anyhow::Result<()> + 'a,
        cmd: impl Fn() -> Command + 'a,
    ) -> Self {
        Self {
            reset: Box::new(reset),
            cmd: Box::new(cmd),
        }
    }
}

/// Runs every side `runs` times, taking turns in the order given (each run preceded by its
/// side's reset), so that whatever drifts during a bench drifts for all of them alike. Returns
/// one measurement per side, in that order.
pub(crate) fn alternate(runs: usize, sides: &mut [Side<'_>]) -> anyhow::Result<Vec<Measurement>> {
    let mut samples = vec![Vec::new(); sides.len()];
    for _ in 0..runs {
        for (side, taken) in sides.iter_mut().zip(&mut samples) {
            (side.reset)()?;
            taken.push(time_once(&(side.cmd)())?);
        }
    }
    Ok(samples.iter().map(|s| Measurement::of(s)).collect())
}

/// Runs both sides `runs` times, alternating (mlops first), each preceded by its `reset` (which
/// restores the starting state and is not timed). Returns (mlops, peer).
pub(crate) fn compare(
    runs: usize,
    reset_mlops: impl FnMut() -> anyhow::Result<()>,
    mlops: impl Fn() -> Command,
    reset_peer: impl FnMut() -> anyhow::Result<()>,
    peer: impl Fn() -> Command,
) -> anyhow::Result<(Measurement, Measurement)> {
    let m = alternate(
        runs,
        &mut [Side::new(reset_mlops, mlops), Side::new(reset_peer, peer)],
    )?;
    Ok((m[0], m[1]))
}

/// Runs one side `runs` times with a reset before each. For workloads with no peer run.
pub(crate) fn measure(
    runs: usize,
    reset: impl FnMut() -> anyhow::Result<()>,
    cmd: impl Fn() -> Command,
) -> anyhow::Result<Measurement> {
    Ok(alternate(runs, &mut [Side::new(reset, cmd)])?[0])
}

/// One line of a report: a workload, mlops's measurement, the peer's (if it ran), and the goal.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What was measured.
    pub(crate) workload: String,
    /// The peer's name, e.g. `dvc 3.67.1`.
    pub(crate) peer: String,
    /// mlops.
    pub(crate) ours: Measurement,
    /// The peer, or `None` when it is not installed (the row says so; no number is faked).
    pub(crate) theirs: Option<Measurement>,
    /// The ratio the issue asks for (peer time / mlops time), e.g. 30.0.
    pub(crate) goal: Option<f64>,
}

impl Row {
    /// peer median / mlops median.
    pub(crate) fn ratio(&self) -> Option<f64> {
        let theirs = self.theirs?;
        // A process cannot start and exit in under a microsecond; the floor only rules out a
        // division by zero.
        let ours = self.ours.median.max(Duration::from_micros(1)).as_secs_f64();
        Some(theirs.median.as_secs_f64() / ours)
    }
}

/// The rows of one area, rendered as a Markdown table.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The rows, in order.
    pub(crate) rows: Vec<Row>,
    /// Free-form notes printed under the table (versions, what was excluded).
    pub(crate) notes: Vec<String>,
}

impl Report {
    /// The Markdown table with a heading.
    pub(crate) fn render(&self, area: &str) -> String {
        let mut s = format!(
            "### {area}\n\n| workload | mlops median | mlops peak RSS | peer | peer median | peer peak RSS | ratio (peer/mlops) | goal | met |\n|---|---:|---:|---|---:|---:|---:|---:|---|\n"
        );
        for r in &self.rows {
            let (pm, prss) = r.theirs.map_or_else(
                || ("not installed".to_owned(), "-".to_owned()),
                |t| (secs(t.median), mib(t.max_rss_kib)),
            );
            let ratio = r
                .ratio()
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}x"));
            let goal = r.goal.map_or_else(|| "-".to_owned(), |g| format!("{g}x"));
            let met = match (r.ratio(), r.goal) {
                (Some(x), Some(g)) if x >= g => "yes",
                (Some(_), Some(_)) => "NO",
                _ => "-",
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.workload,
                secs(r.ours.median),
                mib(r.ours.max_rss_kib),
                r.peer,
                pm,
                prss,
                ratio,
                goal,
                met
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("\n{n}\n"));
        }
        s
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.01 {
        format!("{:.1} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// The first line of `PROGRAM --version`, for the notes.
pub(crate) fn version_of(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown version".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ours_ms: u64, theirs_ms: u64) -> Row {
        let m = |ms| Measurement {
            median: Duration::from_millis(ms),
            max_rss_kib: 1024,
            runs: 3,
        };
        Row {
            workload: "w".to_owned(),
            peer: "p".to_owned(),
            ours: m(ours_ms),
            theirs: Some(m(theirs_ms)),
            goal: Some(20.0),
        }
    }

    #[test]
    fn a_median_of_a_few_milliseconds_keeps_its_precision_and_gives_the_plain_ratio() {
        let mut r = row(0, 960);
        r.ours.median = Duration::from_micros(4_200);
        let table = Report {
            rows: vec![r],
            notes: Vec::new(),
        }
        .render("x");
        assert!(table.contains("| 4.2 ms |"), "{table}");
        assert!(table.contains("| 228.6x | 20x | yes |"), "{table}");
    }

    fn gnu_time_missing() -> bool {
        !Path::new("/usr/bin/time").is_file()
    }

    #[test]
    fn sides_take_turns_each_reset_before_its_own_run() {
        if gnu_time_missing() {
            return;
        }
        let order = std::cell::RefCell::new(Vec::new());
        let side = |name: &'static str, secs: &'static str| {
            let order = &order;
            Side::new(
                move || {
                    order.borrow_mut().push(name);
                    Ok(())
                },
                move || {
                    let mut c = Command::new("sleep");
                    c.arg(secs);
                    c
                },
            )
        };
        let m = alternate(3, &mut [side("a", "0"), side("b", "0.03"), side("c", "0")]).unwrap();
        assert_eq!(
            order.into_inner(),
            ["a", "b", "c", "a", "b", "c", "a", "b", "c"]
        );
        assert_eq!(m.len(), 3);
        assert!(m.iter().all(|x| x.runs == 3));
        // Each measurement belongs to its own side.
        assert!(m[1].median >= Duration::from_millis(30), "{m:?}");
        assert!(
            m[0].median < m[1].median && m[2].median < m[1].median,
            "{m:?}"
        );
    }

    #[test]
    fn a_failing_reset_stops_the_runs_with_its_error() {
        let mut sides = [Side::new(
            || anyhow::bail!("could not reset"),
            || Command::new("true"),
        )];
        let e = alternate(3, &mut sides).unwrap_err();
        assert_eq!(e.to_string(), "could not reset");
    }

    #[test]
    fn the_wall_time_is_measured_finer_than_ten_millisecond_steps() {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 0.025"]);
        if gnu_time_missing() {
            assert!(time_once(&c).is_err());
            return;
        }
        let s = time_once(&c).unwrap();
        assert!(s.wall >= Duration::from_millis(25), "{:?}", s.wall);
        assert!(s.wall < Duration::from_secs(5), "{:?}", s.wall);
        assert_ne!(s.wall.subsec_nanos() % 10_000_000, 0, "{:?}", s.wall);
        assert!(s.max_rss_kib > 0);
    }

    #[test]
    fn a_failing_command_is_an_error_with_its_exit_status_and_stderr() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo the-reason >&2; exit 3"]);
        let e = format!("{:#}", time_once(&c).unwrap_err());
        if gnu_time_missing() {
            return;
        }
        assert!(e.contains("the-reason"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
    }

    #[test]
    fn a_measurable_median_gives_the_plain_ratio() {
        let table = Report {
            rows: vec![row(100, 1190)],
            notes: Vec::new(),
        }
        .render("x");
        assert!(table.contains("| 100 ms |"), "{table}");
        assert!(table.contains("| 11.9x | 20x | NO |"), "{table}");
    }
}
