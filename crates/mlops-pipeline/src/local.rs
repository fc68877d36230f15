//! The local executor: runs a stage's command with `sh -c` in the stage's folder, in its own
//! process group (so Ctrl-C stops the whole command tree), saving the combined output to the
//! stage's log and streaming it, line by line, to an optional sink.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::executor::{CancelToken, ExecError, ExecutionRecord, Executor, StageJob};

/// Where streamed output lines go (already prefixed with `stage | ` when stages run in parallel).
/// The CLI passes a closure writing to stderr; libraries never print.
pub type OutputSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs commands on this machine. See the module docs.
#[derive(Clone)]
pub struct LocalExecutor {
    sink: Option<OutputSink>,
    grace: Duration,
}

impl std::fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalExecutor")
            .field("streams", &self.sink.is_some())
            .field("grace", &self.grace)
            .finish()
    }
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalExecutor {
    /// An executor that only writes logs (no streaming).
    pub fn new() -> Self {
        Self {
            sink: None,
            grace: Duration::from_secs(3),
        }
    }

    /// Streams each output line to `sink` as well as to the log.
    #[must_use]
    pub fn with_output(mut self, sink: OutputSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// How long a cancelled command gets after SIGTERM before SIGKILL (default 3 s).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

fn runtime(job: &StageJob, message: String, source: std::io::Error) -> ExecError {
    ExecError::Runtime {
        stage: job.name.clone(),
        message,
        source: Some(Box::new(source)),
    }
}

fn signal_group(pid: u32, signal: &str) {
    // `kill` rather than libc: this crate has no unsafe code. Only used when stopping.
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Executor for LocalExecutor {
    fn name(&self) -> &str {
        "local"
    }

    fn run(&self, job: &StageJob, cancel: &CancelToken) -> Result<ExecutionRecord, ExecError> {
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled {
                stage: job.name.clone(),
            });
        }
        if let Some(dir) = job.log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| runtime(job, format!("creating {}", dir.display()), e))?;
        }
        let log = std::fs::File::create(&job.log_path)
            .map_err(|e| runtime(job, format!("creating {}", job.log_path.display()), e))?;
        let (reader, writer) =
            std::io::pipe().map_err(|e| runtime(job, "creating a pipe".into(), e))?;
        let writer2 = writer
            .try_clone()
            .map_err(|e| runtime(job, "creating a pipe".into(), e))?;
        let started = now_rfc3339();
        let mut child = {
            // The command holds the pipe's write ends: drop it right after spawning so the reader
            // sees end-of-file when the command exits.
            // An absolute path: no search through PATH for every stage.
            let mut cmd = Command::new(if Path::new("/bin/sh").exists() {
                "/bin/sh"
            } else {
                "sh"
            });
            cmd.arg("-c")
                .arg(&job.cmd)
                .current_dir(&job.wdir)
                .envs(&job.env)
                .env("MLOPS_STAGE", &job.name)
                .stdin(Stdio::null())
                .stdout(writer)
                .stderr(writer2)
                .process_group(0);
            cmd.spawn().map_err(|e| {
                runtime(
                    job,
                    format!("starting `sh -c` in {}", job.wdir.display()),
                    e,
                )
            })?
        };
        let pid = child.id();
        let prefix = job.parallel.then(|| format!("{} | ", job.name));
        let sink = self.sink.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        std::thread::spawn(move || {
            // Unbuffered: the log is complete even if a background process keeps the pipe open.
            let mut log = log;
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = log.write_all(&line);
                        if let Some(sink) = &sink {
                            let text = String::from_utf8_lossy(&line);
                            let text = text.trim_end_matches(['\n', '\r']);
                            match &prefix {
                                Some(p) => sink(&format!("{p}{text}")),
                                None => sink(text),
                            }
                        }
                    }
                }
            }
            let _ = done_tx.send(log.flush());
        });
        // The output reaching end-of-file is the prompt signal that the command is done; the
        // timeout ticks check for Ctrl-C and for a command that exited while something it started
        // in the background still holds its output open.
        let tick = Duration::from_millis(20);
        let mut cancelled_at: Option<Instant> = None;
        let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
        let log_result = loop {
            match done_rx.recv_timeout(tick) {
                Ok(result) => break Some(result),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if exited.is_none() {
                match child.try_wait() {
                    Ok(Some(status)) => exited = Some((status, Instant::now())),
                    Ok(None) => {}
                    Err(e) => return Err(runtime(job, "waiting for the command".into(), e)),
                }
            }
            if let Some((_, at)) = exited
                && (cancelled_at.is_some() || at.elapsed() > Duration::from_secs(1))
            {
                // Background processes keep the output open; stop reading it.
                tracing::warn!(stage = %job.name, "the command exited but its output is still open; not waiting for it");
                break Some(Ok(()));
            }
            if cancel.is_cancelled() {
                match cancelled_at {
                    None => {
                        tracing::info!(stage = %job.name, "stopping (SIGTERM)");
                        signal_group(pid, "-TERM");
                        cancelled_at = Some(Instant::now());
                    }
                    Some(at) if at.elapsed() > self.grace => {
                        tracing::info!(stage = %job.name, "stopping (SIGKILL)");
                        signal_group(pid, "-KILL");
                        let _ = child.kill();
                    }
                    Some(_) => {}
                }
            }
        };
        let status = match exited {
            Some((status, _)) => status,
            None => child
                .wait()
                .map_err(|e| runtime(job, "waiting for the command".into(), e))?,
        };
        if cancelled_at.is_some() || cancel.is_cancelled() && !status.success() {
            // Leftovers of the group may still run; make sure they are gone.
            signal_group(pid, "-KILL");
            return Err(ExecError::Cancelled {
                stage: job.name.clone(),
            });
        }
        match log_result {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(runtime(
                    job,
                    format!("writing {}", job.log_path.display()),
                    e,
                ));
            }
            None => {
                return Err(ExecError::Runtime {
                    stage: job.name.clone(),
                    message: "the output reader stopped unexpectedly".into(),
                    source: None,
                });
            }
        }
        let mut record = ExecutionRecord::new("local", status.code(), started, now_rfc3339());
        if let Some(signal) = status.signal() {
            record.details.insert("signal".into(), signal.to_string());
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Mutex;

    fn job(dir: &std::path::Path, cmd: &str) -> StageJob {
        StageJob {
            name: "s".into(),
            cmd: cmd.into(),
            root: dir.to_owned(),
            wdir: dir.to_owned(),
            env: BTreeMap::from([("GREETING".into(), "hi".into())]),
            deps: vec![],
            outs: vec![],
            metrics: vec![],
            fingerprint: "blake3:00".into(),
            log_path: dir.join(".mlops/logs/s.log"),
            k8s: None,
            parallel: true,
        }
    }

    #[test]
    fn runs_in_wdir_with_env_streams_prefixed_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let exec = LocalExecutor::new().with_output(Arc::new(move |s: &str| {
            l2.lock().unwrap().push(s.to_owned())
        }));
        let rec = exec
            .run(
                &job(
                    dir.path(),
                    "echo $GREETING $MLOPS_STAGE; echo err >&2; pwd > where",
                ),
                &CancelToken::new(),
            )
            .unwrap();
        assert!(rec.succeeded());
        assert_eq!(rec.executor, "local");
        let got = lines.lock().unwrap().clone();
        assert!(
            got.contains(&"s | hi s".to_owned()) && got.contains(&"s | err".to_owned()),
            "{got:?}"
        );
        let log = std::fs::read_to_string(dir.path().join(".mlops/logs/s.log")).unwrap();
        assert!(log.contains("hi s\n") && log.contains("err\n"), "{log}");
        let where_ = std::fs::read_to_string(dir.path().join("where")).unwrap();
        assert_eq!(
            PathBuf::from(where_.trim()).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }

    #[test]
    fn failing_command_reports_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let rec = LocalExecutor::new()
            .run(&job(dir.path(), "exit 7"), &CancelToken::new())
            .unwrap();
        assert_eq!(rec.exit_code, Some(7));
        assert!(!rec.succeeded());
    }

    #[test]
    fn a_background_process_holding_the_output_does_not_block_the_stage() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let rec = LocalExecutor::new()
            .run(
                &job(dir.path(), "sleep 4 & echo started"),
                &CancelToken::new(),
            )
            .unwrap();
        assert!(rec.succeeded());
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        let log = std::fs::read_to_string(dir.path().join(".mlops/logs/s.log")).unwrap();
        assert_eq!(log, "started\n");
    }

    #[test]
    fn cancel_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancelToken::new();
        let c2 = cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c2.cancel();
        });
        let start = Instant::now();
        let err = LocalExecutor::new()
            .with_grace(Duration::from_millis(500))
            .run(&job(dir.path(), "sleep 30 & sleep 30; wait"), &cancel)
            .unwrap_err();
        t.join().unwrap();
        assert!(matches!(err, ExecError::Cancelled { .. }), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
