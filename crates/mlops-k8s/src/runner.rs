//! Running one Job to the end: server-side apply, watch the Job and its Pods (the watcher
//! resumes closed watches and re-lists after `410 Gone`), fail fast on pods that can never start,
//! stream the main container's log to a file, record what ran, and delete the Job.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use mlops_pipeline::ExecutionRecord;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::manifest::MAIN_CONTAINER;

/// The field manager name used for server-side apply.
pub const FIELD_MANAGER: &str = "mlops";

/// Receives each line of the container's log as it arrives (for `--follow`).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How a run behaves.
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Keep the Job and its pods when it failed (for `kubectl describe`).
    pub keep_on_failure: bool,
    /// How long `ErrImagePull`/`ImagePullBackOff` may last before the run fails.
    pub image_pull_grace: Duration,
    /// How long the pod may stay `Unschedulable` before the run fails.
    pub unschedulable_grace: Duration,
    /// How long to wait for the log stream to drain after the container ended.
    pub log_drain: Duration,
    /// Where the container's log is saved.
    pub log_path: PathBuf,
    /// Gets every log line as it arrives.
    pub follow: Option<LogSink>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("keep_on_failure", &self.keep_on_failure)
            .field("image_pull_grace", &self.image_pull_grace)
            .field("unschedulable_grace", &self.unschedulable_grace)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options saving the log to `log_path`, with default graces (30 s image pull, 120 s
    /// unschedulable) and deleting the Job whatever happened.
    pub fn new(log_path: impl Into<PathBuf>) -> Self {
        Self {
            keep_on_failure: false,
            image_pull_grace: Duration::from_secs(crate::config::DEFAULT_IMAGE_PULL_GRACE_SECS),
            unschedulable_grace: Duration::from_secs(
                crate::config::DEFAULT_UNSCHEDULABLE_GRACE_SECS,
            ),
            log_drain: Duration::from_secs(10),
            log_path: log_path.into(),
            follow: None,
        }
    }

    /// Takes the graces and keep-on-failure from the stage's settings.
    #[must_use]
    pub fn with_settings(mut self, settings: &crate::config::JobSettings) -> Self {
        self.image_pull_grace = Duration::from_secs(settings.image_pull_grace_secs);
        self.unschedulable_grace = Duration::from_secs(settings.unschedulable_grace_secs);
        self.keep_on_failure |= settings.keep_on_failure;
        self
    }

    /// Keeps failed Jobs.
    #[must_use]
    pub fn keep_on_failure(mut self, keep: bool) -> Self {
        self.keep_on_failure = keep;
        self
    }

    /// Streams log lines to `sink`.
    #[must_use]
    pub fn follow(mut self, sink: Option<LogSink>) -> Self {
        self.follow = sink;
        self
    }
}

/// What happened to a Job (serialised as the `--json` output of `mlops k8s run`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct RunOutcome {
    /// Whether the Job completed.
    pub succeeded: bool,
    /// The Job name.
    pub job: String,
    /// Its namespace.
    pub namespace: String,
    /// The pod that ran (the last one, if retried).
    pub pod: Option<String>,
    /// The node it ran on.
    pub node: Option<String>,
    /// The image reference asked for.
    pub image: Option<String>,
    /// The image that really ran (`imageID`, with its digest).
    pub image_id: Option<String>,
    /// The main container's exit code, when it ran to an end.
    pub exit_code: Option<i32>,
    /// Why it ended: `Completed`, `Error`, `OOMKilled`, `DeadlineExceeded`,
    /// `BackoffLimitExceeded`, `PodFailurePolicy`, `ImagePullBackOff`, `Unschedulable`, …
    pub reason: Option<String>,
    /// The matching message (scheduler, kubelet or Job controller).
    pub message: Option<String>,
    /// The container's termination message (the in-pod out report in data mode).
    pub termination_message: Option<String>,
    /// Start time, RFC 3339.
    pub started: String,
    /// End time, RFC 3339.
    pub ended: String,
    /// Where the log was saved.
    pub log_path: PathBuf,
    /// Whether the Job was left in the cluster.
    pub kept: bool,
    /// Whether the reported outs were fetched back into the workspace (then the pipeline hashes
    /// them there and `remote_outs` stays empty).
    pub outs_fetched: bool,
}

impl RunOutcome {
    /// The record for the pipeline's lock: exit code, times and the Kubernetes facts in `details`.
    pub fn to_record(&self) -> ExecutionRecord {
        let exit_code = if self.succeeded {
            Some(self.exit_code.unwrap_or(0))
        } else {
            self.exit_code.filter(|c| *c != 0)
        };
        let mut record =
            ExecutionRecord::new("k8s", exit_code, self.started.clone(), self.ended.clone());
        let d = &mut record.details;
        d.insert("job".to_owned(), self.job.clone());
        d.insert("namespace".to_owned(), self.namespace.clone());
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                d.insert(k.to_owned(), v.clone());
            }
        };
        put("pod", &self.pod);
        put("node", &self.node);
        put("image", &self.image);
        put("image_id", &self.image_id);
        put("reason", &self.reason);
        put("message", &self.message);
        if let Some(digest) = self
            .image_id
            .as_deref()
            .and_then(|id| id.rsplit_once('@'))
            .map(|(_, d)| d.to_owned())
        {
            d.insert("image_digest".to_owned(), digest);
        }
        if let Some(code) = self.exit_code {
            d.insert("exit_code".to_owned(), code.to_string());
        }
        d.insert("log".to_owned(), self.log_path.display().to_string());
        if self.kept {
            d.insert("kept".to_owned(), "true".to_owned());
        }
        if !self.outs_fetched {
            record.remote_outs = reported_outs(self.termination_message.as_deref());
        }
        record
    }
}

/// The outs the in-pod `mlops k8s pod-run` reported in its termination message:
/// `{"outs": {"path": "blake3:…", "folder/": "blake3:…"}}` (a trailing `/` marks a directory,
/// whose hash names its manifest), as path → hash. Anything else reports nothing.
pub fn reported_outs(message: Option<&str>) -> BTreeMap<PathBuf, String> {
    reported_objects(message)
        .into_iter()
        .map(|(path, hash, _)| (path, hash))
        .collect()
}

/// Like [`reported_outs`], with whether each out is a directory.
pub fn reported_objects(message: Option<&str>) -> Vec<(PathBuf, String, bool)> {
    let Some(text) = message else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return Vec::new();
    };
    value
        .get("outs")
        .and_then(|o| o.as_object())
        .map(|outs| {
            outs.iter()
                .filter_map(|(k, v)| {
                    let dir = k.ends_with('/');
                    v.as_str()
                        .filter(|h| h.starts_with("blake3:"))
                        .map(|h| (PathBuf::from(k.trim_end_matches('/')), h.to_owned(), dir))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Maps a failed API call to an error naming the verb and resource when it was refused.
pub(crate) fn api_error(
    err: kube::Error,
    verb: &str,
    resource: &str,
    namespace: &str,
    action: String,
    url: &str,
) -> Error {
    match err {
        kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            message: status.message.clone(),
        },
        kube::Error::Api(status) => Error::Api {
            action,
            error: kube::Error::Api(status),
        },
        other @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => Error::Unreachable {
            url: url.to_owned(),
            error: other,
        },
        other => Error::Api {
            action,
            error: other,
        },
    }
}

/// A watch that fails with the same error kind this many times in a row ends the run.
const MAX_WATCH_ERRORS: u32 = 5;

#[derive(Debug)]
enum Update {
    Job(Box<Job>),
    Pod(Box<Pod>),
    JobGone,
    PodGone(String),
    Error {
        resource: &'static str,
        error: watcher::Error,
    },
}

/// The terminal verdict of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Succeeded,
    Failed {
        reason: String,
        message: Option<String>,
    },
}

/// Applies `job` and runs it to a verdict. `cancelled` is polled; when it returns true the Job is
/// deleted and [`Error::Cancelled`] returned.
pub async fn run_job(
    client: &kube::Client,
    url: &str,
    job: &Job,
    options: &RunOptions,
    cancelled: &(dyn Fn() -> bool + Send + Sync),
) -> Result<RunOutcome> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);

    info!(job = %name, namespace = %namespace, "applying job");
    jobs.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(job),
    )
    .await
    .map_err(|e| {
        api_error(
            e,
            "patch",
            "jobs.batch",
            &namespace,
            format!("apply job {name}"),
            url,
        )
    })?;

    let started_at = k8s_openapi::jiff::Timestamp::now();
    let mut state = WatchState::new(options.clone());
    let job_stream = watcher(
        jobs.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .map(|ev| match ev {
        Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) => {
            vec![Update::Job(Box::new(j))]
        }
        Ok(watcher::Event::Delete(_)) => vec![Update::JobGone],
        Ok(_) => Vec::new(),
        Err(error) => vec![Update::Error {
            resource: "jobs.batch",
            error,
        }],
    });
    let pod_stream = watcher(
        pods.clone(),
        watcher::Config::default().labels(&format!("job-name={name}")),
    )
    .default_backoff()
    .map(|ev| match ev {
        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
            vec![Update::Pod(Box::new(p))]
        }
        Ok(watcher::Event::Delete(p)) => vec![Update::PodGone(p.metadata.name.unwrap_or_default())],
        Ok(_) => Vec::new(),
        Err(error) => vec![Update::Error {
            resource: "pods",
            error,
        }],
    });
    let mut updates = futures::stream::select(job_stream, pod_stream)
        .map(futures::stream::iter)
        .flatten()
        .boxed();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut log_task: Option<(String, tokio::task::JoinHandle<bool>)> = None;
    let mut streamed_any = false;
    let mut errors: HashMap<&'static str, u32> = HashMap::new();

    let verdict = loop {
        tokio::select! {
            update = updates.next() => match update {
                Some(Update::Job(j)) => {
                    errors.remove("jobs.batch");
                    state.job = Some(*j);
                }
                Some(Update::JobGone) => state.deleted = true,
                Some(Update::Pod(p)) => {
                    errors.remove("pods");
                    state.observe_pod(*p);
                }
                Some(Update::PodGone(p)) => { state.pods.remove(&p); }
                Some(Update::Error { resource, error }) => {
                    if let Some(fatal) = watch_error(&error, resource, &namespace, url) {
                        break Err(fatal);
                    }
                    let n = errors.entry(resource).or_insert(0);
                    *n += 1;
                    warn!(%resource, error = %error, "watch failed; resuming");
                    if *n >= MAX_WATCH_ERRORS {
                        break Err(Error::Api { action: format!("watch {resource} of job {name}"), error: into_kube_error(error) });
                    }
                }
                None => break Err(Error::Api { action: format!("watch job {name}"), error: kube::Error::ReadEvents(std::io::Error::other("watch ended")) }),
            },
            _ = tick.tick() => {}
        }
        if cancelled() {
            info!(job = %name, "cancelled; deleting the job");
            if let Some((_, task)) = log_task.take() {
                task.abort();
            }
            delete_job(&jobs, &name, &namespace, url).await?;
            return Err(Error::Cancelled);
        }
        // One pod at a time (a retried Job's pods run one after another): follow the next
        // started pod once the previous stream ended, appending to the same log.
        if log_task.as_ref().is_none_or(|(_, t)| t.is_finished())
            && let Some(pod) = state.next_pod_to_stream()
        {
            if let Some((_, done)) = log_task.take() {
                streamed_any |= done.await.unwrap_or(false);
            }
            let append = !state.streamed.is_empty();
            state.streamed.insert(pod.clone());
            log_task = Some((
                pod.clone(),
                tokio::spawn(stream_log(pods.clone(), pod, options.clone(), append)),
            ));
        }
        if let Some(v) = state.verdict() {
            break Ok(v);
        }
    };
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => {
            if let Some((_, task)) = log_task.take() {
                task.abort();
            }
            return Err(e);
        }
    };

    // The verdict may come from the Job watch before the pod watch delivered the final container
    // state: read the pod once more so the record has the exit code, digest and times.
    state.refresh_pods(&pods, &name).await;

    // Save the whole log before anything is deleted.
    let streamed = match log_task.take() {
        Some((_, task)) => match tokio::time::timeout(options.log_drain, task).await {
            Ok(Ok(ok)) => ok,
            _ => false,
        },
        None => false,
    } || streamed_any;
    if !streamed {
        if let Some(pod) = state.last_pod_name() {
            save_log_once(&pods, &pod, &options.log_path).await;
        } else {
            write_file(&options.log_path, b"").await;
        }
    }

    let mut outcome = state.outcome(&name, &namespace, started_at, &verdict);
    outcome.log_path = options.log_path.clone();
    if !outcome.succeeded {
        // The last line of the log names the failure, so whoever reads the log (or its tail, as
        // `mlops repro` prints it) sees why without the cluster.
        let mut line = format!(
            "[mlops] job {namespace}/{name} failed: {}",
            outcome.reason.as_deref().unwrap_or("unknown reason")
        );
        if let Some(message) = &outcome.message {
            line.push_str(&format!(": {message}"));
        }
        if let Some(code) = outcome.exit_code {
            line.push_str(&format!(" (exit code {code})"));
        }
        line.push('\n');
        if let Some(mut file) = open_log(&options.log_path, true).await {
            // tokio writes in the background: flush so the line is on disk when the run returns.
            if file.write_all(line.as_bytes()).await.is_ok() {
                let _ = file.flush().await;
            }
        }
    }
    let keep = !outcome.succeeded && options.keep_on_failure;
    if keep {
        info!(job = %name, "keeping the failed job");
        outcome.kept = true;
    } else {
        delete_job(&jobs, &name, &namespace, url).await?;
    }
    Ok(outcome)
}

fn into_kube_error(error: watcher::Error) -> kube::Error {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        watcher::Error::WatchError(status) => kube::Error::Api(status),
        other => kube::Error::ReadEvents(std::io::Error::other(other.to_string())),
    }
}

/// A watch error that must end the run now: permission refused.
fn watch_error(
    error: &watcher::Error,
    resource: &str,
    namespace: &str,
    _url: &str,
) -> Option<Error> {
    let (verb, status) = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s)) => ("list", s),
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => ("watch", s),
        watcher::Error::WatchError(s) => ("watch", s),
        _ => return None,
    };
    (status.code == 403).then(|| Error::Forbidden {
        verb: verb.to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        message: status.message.clone(),
    })
}

async fn delete_job(jobs: &Api<Job>, name: &str, namespace: &str, url: &str) -> Result<()> {
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            debug!(job = %name, "deleted (background propagation)");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(api_error(
            e,
            "delete",
            "jobs.batch",
            namespace,
            format!("delete job {name}"),
            url,
        )),
    }
}

/// Follows the main container's log into the file (and the sink). Returns whether it read to the
/// end of the stream.
async fn stream_log(pods: Api<Pod>, pod: String, options: RunOptions, append: bool) -> bool {
    let params = LogParams {
        container: Some(MAIN_CONTAINER.to_owned()),
        follow: true,
        ..LogParams::default()
    };
    let reader = match pods.log_stream(&pod, &params).await {
        Ok(r) => r,
        Err(e) => {
            warn!(%pod, error = %e, "cannot follow the log");
            return false;
        }
    };
    let Some(mut file) = open_log(&options.log_path, append).await else {
        return false;
    };
    if append {
        let header = format!("--- pod {pod} (retry) ---\n");
        if file.write_all(header.as_bytes()).await.is_err() {
            return false;
        }
    }
    let mut lines = reader.lines();
    loop {
        match lines.try_next().await {
            Ok(Some(line)) => {
                if let Some(sink) = &options.follow {
                    sink(&line);
                }
                if file.write_all(line.as_bytes()).await.is_err()
                    || file.write_all(b"\n").await.is_err()
                {
                    return false;
                }
            }
            Ok(None) => break,
            Err(e) => {
                warn!(%pod, error = %e, "log stream broke");
                let _ = file.flush().await;
                return false;
            }
        }
    }
    file.flush().await.is_ok()
}

async fn open_log(path: &Path, append: bool) -> Option<tokio::fs::File> {
    if !append {
        return create_file(path).await;
    }
    tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .ok()
}

async fn create_file(path: &Path) -> Option<tokio::fs::File> {
    if let Some(parent) = path.parent() {
        let _ = tokio::fs::create_dir_all(parent).await;
    }
    match tokio::fs::File::create(path).await {
        Ok(f) => Some(f),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot write the log");
            None
        }
    }
}

async fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(mut f) = create_file(path).await
        && f.write_all(bytes).await.is_ok()
    {
        let _ = f.flush().await;
    }
}

/// Fetches the whole log once (no follow), for pods whose stream never opened or broke.
async fn save_log_once(pods: &Api<Pod>, pod: &str, path: &Path) {
    let params = LogParams {
        container: Some(MAIN_CONTAINER.to_owned()),
        ..LogParams::default()
    };
    let text = pods.logs(pod, &params).await.unwrap_or_default();
    write_file(path, text.as_bytes()).await;
}

/// What the watches have shown so far, and when each waiting reason was first seen.
struct WatchState {
    options: RunOptions,
    job: Option<Job>,
    pods: BTreeMap<String, Pod>,
    last_pod: Option<Pod>,
    /// When each pod was first seen (a tie-breaker for equal creation times).
    seen_order: HashMap<String, u64>,
    /// Pods whose log has been (or is being) streamed.
    streamed: std::collections::HashSet<String>,
    first_seen: HashMap<(String, String), Instant>,
    /// The Job was deleted by someone else while it ran.
    deleted: bool,
}

impl WatchState {
    fn new(options: RunOptions) -> Self {
        Self {
            options,
            job: None,
            pods: BTreeMap::new(),
            last_pod: None,
            seen_order: HashMap::new(),
            streamed: std::collections::HashSet::new(),
            first_seen: HashMap::new(),
            deleted: false,
        }
    }

    fn observe_pod(&mut self, pod: Pod) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for reason in pod_problems(&pod) {
            self.first_seen
                .entry((name.clone(), reason.0))
                .or_insert_with(Instant::now);
        }
        let next = u64::try_from(self.seen_order.len()).unwrap_or(u64::MAX);
        self.seen_order.entry(name.clone()).or_insert(next);
        // The outcome describes the newest pod (the last attempt of a retried Job).
        let newer = self.last_pod.as_ref().is_none_or(|last| {
            last.metadata.name == pod.metadata.name || self.age_key(&pod) >= self.age_key(last)
        });
        if newer {
            self.last_pod = Some(pod.clone());
        }
        self.pods.insert(name, pod);
    }

    async fn refresh_pods(&mut self, pods: &Api<Pod>, job: &str) {
        let fresh = match self.last_pod_name() {
            Some(pod) => pods.get(&pod).await.map(|p| vec![p]),
            None => pods
                .list(&kube::api::ListParams::default().labels(&format!("job-name={job}")))
                .await
                .map(|l| l.items),
        };
        match fresh {
            Ok(list) => {
                for pod in list {
                    self.observe_pod(pod);
                }
            }
            Err(e) => debug!(error = %e, "cannot refresh the pod state"),
        }
    }

    fn last_pod_name(&self) -> Option<String> {
        self.last_pod.as_ref().and_then(|p| p.metadata.name.clone())
    }

    /// Orders pods by creation, then by when they were first seen.
    fn age_key(&self, pod: &Pod) -> (Option<k8s_openapi::jiff::Timestamp>, u64) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        (
            pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            self.seen_order.get(&name).copied().unwrap_or(u64::MAX),
        )
    }

    /// The oldest pod whose main container has started (running or terminated) and whose log is
    /// not streamed yet.
    fn next_pod_to_stream(&self) -> Option<String> {
        self.pods
            .values()
            .filter(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                !self.streamed.contains(&name)
                    && main_status(p)
                        .and_then(|c| c.state.as_ref())
                        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            })
            .min_by_key(|p| self.age_key(p))
            .and_then(|p| p.metadata.name.clone())
    }

    fn verdict(&self) -> Option<Verdict> {
        if self.deleted {
            return Some(Verdict::Failed {
                reason: "Deleted".to_owned(),
                message: Some("the Job was deleted outside mlops while it ran".to_owned()),
            });
        }
        if let Some(status) = self.job.as_ref().and_then(|j| j.status.as_ref()) {
            for c in status.conditions.iter().flatten() {
                if c.status != "True" {
                    continue;
                }
                match c.type_.as_str() {
                    "Complete" => return Some(Verdict::Succeeded),
                    "Failed" => {
                        let reason = c.reason.clone().unwrap_or_else(|| "Failed".to_owned());
                        return Some(Verdict::Failed {
                            reason,
                            message: c.message.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        for (name, pod) in &self.pods {
            for (reason, message) in pod_problems(pod) {
                let grace = match reason.as_str() {
                    "ErrImagePull" | "ImagePullBackOff" => Some(self.options.image_pull_grace),
                    "Unschedulable" => Some(self.options.unschedulable_grace),
                    _ => None,
                };
                let since = self
                    .first_seen
                    .get(&(name.clone(), reason.clone()))
                    .copied()
                    .unwrap_or_else(Instant::now);
                // Image pull failures alternate between two reasons: the grace counts from the
                // first of either.
                let since = if matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff") {
                    ["ErrImagePull", "ImagePullBackOff"]
                        .iter()
                        .filter_map(|r| self.first_seen.get(&(name.clone(), (*r).to_owned())))
                        .min()
                        .copied()
                        .unwrap_or(since)
                } else {
                    since
                };
                match grace {
                    None => return Some(Verdict::Failed { reason, message }),
                    Some(g) if since.elapsed() >= g => {
                        return Some(Verdict::Failed { reason, message });
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }

    fn outcome(
        &self,
        job: &str,
        namespace: &str,
        started_at: k8s_openapi::jiff::Timestamp,
        verdict: &Verdict,
    ) -> RunOutcome {
        let pod = self.last_pod.as_ref();
        let status = pod.and_then(main_status);
        let terminated = status
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let mut outcome = RunOutcome {
            succeeded: *verdict == Verdict::Succeeded,
            job: job.to_owned(),
            namespace: namespace.to_owned(),
            pod: pod.and_then(|p| p.metadata.name.clone()),
            node: pod
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.clone()),
            image: status.map(|s| s.image.clone()).filter(|s| !s.is_empty()),
            image_id: status.map(|s| s.image_id.clone()).filter(|s| !s.is_empty()),
            exit_code: terminated.map(|t| t.exit_code),
            termination_message: terminated.and_then(|t| t.message.clone()),
            ..RunOutcome::default()
        };
        let job_status = self.job.as_ref().and_then(|j| j.status.as_ref());
        let started = terminated
            .and_then(|t| t.started_at.clone())
            .or_else(|| job_status.and_then(|s| s.start_time.clone()))
            .map_or(started_at, |t| t.0);
        let ended = terminated
            .and_then(|t| t.finished_at.clone())
            .or_else(|| job_status.and_then(|s| s.completion_time.clone()))
            .map_or_else(k8s_openapi::jiff::Timestamp::now, |t| t.0);
        outcome.started = started.to_string();
        outcome.ended = ended.to_string();
        match verdict {
            Verdict::Succeeded => {
                outcome.reason = Some(
                    terminated
                        .and_then(|t| t.reason.clone())
                        .unwrap_or_else(|| "Completed".to_owned()),
                );
            }
            Verdict::Failed { reason, message } => {
                // The container's own reason (OOMKilled) says more than the Job's (PodFailurePolicy).
                let container_reason = terminated
                    .and_then(|t| t.reason.clone())
                    .filter(|r| r == "OOMKilled");
                outcome.reason = Some(container_reason.unwrap_or_else(|| reason.clone()));
                outcome.message = message.clone();
                // An init container (data mode's fetch) that failed is why the command never ran.
                if terminated.is_none()
                    && let Some((name, t)) = pod.and_then(failed_init_container)
                {
                    outcome.reason = Some("InitContainerFailed".to_owned());
                    let detail = t.message.as_deref().map(str::trim).unwrap_or("");
                    outcome.message = Some(format!(
                        "init container {name} exited with code {}{}{detail}",
                        t.exit_code,
                        if detail.is_empty() { "" } else { ": " }
                    ));
                }
            }
        }
        outcome
    }
}

/// The first init container that exited non-zero, with its terminated state.
fn failed_init_container(
    pod: &Pod,
) -> Option<(
    String,
    &k8s_openapi::api::core::v1::ContainerStateTerminated,
)> {
    pod.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| (c.name.clone(), t))
        })
}

fn main_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == MAIN_CONTAINER)
}

/// Reasons this pod cannot make progress: container waiting reasons that mean a broken spec or
/// image (in init containers too), and `Unschedulable`.
fn pod_problems(pod: &Pod) -> Vec<(String, Option<String>)> {
    const FATAL: [&str; 7] = [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    ];
    let mut out = Vec::new();
    let Some(status) = pod.status.as_ref() else {
        return out;
    };
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| FATAL.contains(r))
        {
            let message = w
                .message
                .clone()
                .map(|m| format!("container {}: {m}", c.name));
            out.push((reason.to_owned(), message));
        }
    }
    for cond in status.conditions.iter().flatten() {
        if cond.type_ == "PodScheduled"
            && cond.status == "False"
            && cond.reason.as_deref() == Some("Unschedulable")
        {
            out.push(("Unschedulable".to_owned(), cond.message.clone()));
        }
    }
    out
}
