//! An in-process fake Kubernetes API server for tests (feature `test-support`).
//!
//! It speaks the real REST API for what the runner uses, with bodies built from the
//! `k8s-openapi` types so their shape is the API server's: server-side apply `PATCH` on
//! `/apis/batch/v1/namespaces/{ns}/jobs/{name}` (`application/apply-patch+yaml`, `fieldManager`
//! required, `409 Conflict` without `force`), `GET`/list/watch of Jobs and Pods with
//! `resourceVersion`, `fieldSelector`, `labelSelector` and newline-delimited watch events,
//! `GET …/pods/{name}/log?follow=true`, `DELETE` with `propagationPolicy`, and `Status` bodies for
//! `403`, `404`, `409`, `410` (as an `ERROR` watch event, the way a real server expires a watch).
//!
//! Each Job applied gets a scripted pod lifecycle ([`Scenario`]), chosen by Job-name prefix.
//! The server runs on its own thread and runtime, so both sync tests (`assert_cmd`) and async
//! tests can use it; it stops when the [`FakeCluster`] is dropped.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mlops_k8s::fake::{FakeCluster, Scenario};
//! let cluster = FakeCluster::start()?;
//! cluster.script("mlops-train", Scenario::succeed("epoch 1\n"));
//! let kubeconfig = cluster.kubeconfig_yaml("ml");
//! assert!(kubeconfig.contains(&cluster.url()));
//! # Ok(()) }
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test server: a poisoned lock is a test bug"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde_json::{Value, json};

/// One step of a scripted pod lifecycle. Steps run in order, a few milliseconds apart.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// The Job controller creates the pod (phase `Pending`, no node).
    CreatePod,
    /// The scheduler cannot place the pod: condition `PodScheduled=False`, reason `Unschedulable`.
    Unschedulable(String),
    /// The pod is bound to a node.
    Schedule(String),
    /// The main container is waiting with this reason and message (e.g. `ImagePullBackOff`).
    Waiting(String, String),
    /// The main container runs (image pulled: `imageID` set).
    Run,
    /// The container writes to its log.
    Log(String),
    /// The main container exits with this code, reason and termination message.
    Terminate {
        /// Exit code.
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`, …
        reason: String,
        /// The termination message (`/dev/termination-log`).
        message: Option<String>,
    },
    /// The Job controller marks the Job `Complete`.
    Complete,
    /// The Job controller marks the Job `Failed` with this reason and message.
    Fail(String, String),
    /// The init container (data mode's `mlops-fetch`) exits non-zero with this message; the pod
    /// fails before the main container starts.
    InitFail {
        /// Exit code.
        exit_code: i32,
        /// The termination message (the last log lines with `FallbackToLogsOnError`).
        message: String,
    },
    /// Pause the script.
    Sleep(Duration),
}

/// A scripted lifecycle for the pods of matching Jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The steps, in order. When they run out the pod stays as it is (until deleted).
    pub steps: Vec<Step>,
}

/// The image digest the fake kubelet reports in `imageID`.
pub const FAKE_IMAGE_ID: &str = "docker.io/library/python@sha256:0b5f3d8f1c4a6e2b9d7c5a3f1e8b6d4c2a0f9e7d5c3b1a9f8e6d4c2b0a1f3e5d";
/// The node the fake scheduler binds pods to.
pub const FAKE_NODE: &str = "kind-worker";

impl Scenario {
    /// Runs, prints `logs`, exits 0; the Job completes.
    pub fn succeed(logs: &str) -> Self {
        Self::exit_with(0, logs, None)
    }

    /// Runs, prints `logs`, exits 0 with a termination message (the in-pod out report).
    pub fn succeed_with_message(logs: &str, message: &str) -> Self {
        Self::exit_with(0, logs, Some(message.to_owned()))
    }

    /// Runs, prints `logs`, exits with `code`; the Job fails (`PodFailurePolicy` when non-zero).
    pub fn exit(code: i32, logs: &str) -> Self {
        Self::exit_with(code, logs, None)
    }

    fn exit_with(code: i32, logs: &str, message: Option<String>) -> Self {
        let mut steps = vec![
            Step::CreatePod,
            Step::Schedule(FAKE_NODE.to_owned()),
            Step::Run,
        ];
        for line in logs.split_inclusive('\n') {
            steps.push(Step::Log(line.to_owned()));
        }
        let reason = if code == 0 { "Completed" } else { "Error" };
        steps.push(Step::Terminate {
            exit_code: code,
            reason: reason.to_owned(),
            message,
        });
        if code == 0 {
            steps.push(Step::Complete);
        } else {
            steps.push(Step::Fail(
                "PodFailurePolicy".to_owned(),
                format!("Container main for pod default/pod failed with exit code {code} matching FailJob rule at index 1"),
            ));
        }
        Self { steps }
    }

    /// The image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff` forever.
    pub fn image_pull_backoff() -> Self {
        Self {
            steps: vec![
                Step::CreatePod,
                Step::Schedule(FAKE_NODE.to_owned()),
                Step::Waiting(
                    "ErrImagePull".to_owned(),
                    "failed to pull image \"nosuch:1\": not found".to_owned(),
                ),
                Step::Sleep(Duration::from_millis(100)),
                Step::Waiting(
                    "ImagePullBackOff".to_owned(),
                    "Back-off pulling image \"nosuch:1\"".to_owned(),
                ),
            ],
        }
    }

    /// The container waits with a reason that never resolves by itself.
    pub fn stuck_waiting(reason: &str, message: &str) -> Self {
        Self {
            steps: vec![
                Step::CreatePod,
                Step::Schedule(FAKE_NODE.to_owned()),
                Step::Waiting(reason.to_owned(), message.to_owned()),
            ],
        }
    }

    /// No node fits the pod, forever.
    pub fn unschedulable() -> Self {
        Self {
            steps: vec![
                Step::CreatePod,
                Step::Unschedulable(
                    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.".to_owned(),
                ),
            ],
        }
    }

    /// The container is killed for exceeding its memory limit (exit 137, `OOMKilled`).
    pub fn oom_killed() -> Self {
        Self {
            steps: vec![
                Step::CreatePod,
                Step::Schedule(FAKE_NODE.to_owned()),
                Step::Run,
                Step::Log("allocating\n".to_owned()),
                Step::Terminate { exit_code: 137, reason: "OOMKilled".to_owned(), message: None },
                Step::Fail(
                    "PodFailurePolicy".to_owned(),
                    "Container main for pod default/pod failed with exit code 137 matching FailJob rule at index 1".to_owned(),
                ),
            ],
        }
    }

    /// The Job runs past `activeDeadlineSeconds`: the controller kills the pod and fails the Job.
    pub fn deadline_exceeded() -> Self {
        Self {
            steps: vec![
                Step::CreatePod,
                Step::Schedule(FAKE_NODE.to_owned()),
                Step::Run,
                Step::Log("training…\n".to_owned()),
                Step::Sleep(Duration::from_millis(100)),
                Step::Terminate {
                    exit_code: 143,
                    reason: "Error".to_owned(),
                    message: None,
                },
                Step::Fail(
                    "DeadlineExceeded".to_owned(),
                    "Job was active longer than specified deadline".to_owned(),
                ),
            ],
        }
    }

    /// Runs and never finishes (for cancellation tests).
    pub fn run_forever() -> Self {
        Self {
            steps: vec![
                Step::CreatePod,
                Step::Schedule(FAKE_NODE.to_owned()),
                Step::Run,
                Step::Log("started\n".to_owned()),
            ],
        }
    }
}

/// What the server saw: one line per request, `METHOD path?query`.
pub type RequestLog = Vec<String>;

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    resource: &'static str,
    namespace: String,
    kind: &'static str,
    object: Value,
    labels: BTreeMap<String, String>,
    name: String,
}

#[derive(Debug, Default)]
struct LogBuffer {
    text: String,
    done: bool,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    jobs: BTreeMap<(String, String), Job>,
    pods: BTreeMap<(String, String), Pod>,
    field_managers: HashMap<(String, String), String>,
    events: Vec<Event>,
    logs: HashMap<(String, String), LogBuffer>,
    scripts: Vec<(String, Scenario)>,
    forbidden: BTreeSet<(String, String)>,
    requests: RequestLog,
    deletes: Vec<(String, String, Option<String>)>,
    close_watches_after: Option<usize>,
    expire_next_watch: bool,
    expired: Vec<&'static str>,
    oldest_rv: u64,
    pod_counter: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: tokio::sync::watch::Sender<u64>,
    step_delay: Duration,
}

impl Shared {
    fn bump(&self, inner: &mut Inner) -> u64 {
        inner.rv += 1;
        inner.rv
    }

    fn notify(&self, rv: u64) {
        let _ = self.changed.send(rv);
    }
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeCluster {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeCluster {
    /// Starts a server on `127.0.0.1` on a free port.
    pub fn start() -> std::io::Result<Self> {
        let (changed, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed,
            step_delay: Duration::from_millis(25),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("fake-k8s-api".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context points at this server with `namespace`.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: tester\n  user:\n    token: fake-token\n",
            url = self.url()
        )
    }

    /// Scripts the pods of Jobs whose name starts with `job_prefix` (later scripts win).
    pub fn script(&self, job_prefix: &str, scenario: Scenario) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .scripts
            .push((job_prefix.to_owned(), scenario));
    }

    /// Answers `403 Forbidden` to `verb` (`patch`, `get`, `list`, `watch`, `delete`) on
    /// `resource` (`jobs`, `pods`, `pods/log`).
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .forbidden
            .insert((verb.to_owned(), resource.to_owned()));
    }

    /// Closes every watch stream after it has sent `events` events (the client must resume).
    pub fn close_watches_after(&self, events: usize) {
        self.shared.inner.lock().unwrap().close_watches_after = Some(events);
    }

    /// Answers the next watch with a `410 Gone` (`Expired`) error event, as a server whose
    /// event history no longer reaches the requested `resourceVersion` does.
    pub fn expire_next_watch(&self) {
        self.shared.inner.lock().unwrap().expire_next_watch = true;
    }

    /// The resources (`jobs`, `pods`) whose watches were answered with `410 Gone`.
    pub fn expired_watches(&self) -> Vec<&'static str> {
        self.shared.inner.lock().unwrap().expired.clone()
    }

    /// Every request seen so far, as `METHOD path?query`.
    pub fn requests(&self) -> RequestLog {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// Every DELETE of a Job: (namespace, name, propagationPolicy).
    pub fn deletes(&self) -> Vec<(String, String, Option<String>)> {
        self.shared.inner.lock().unwrap().deletes.clone()
    }

    /// The Jobs that currently exist, as (namespace, name).
    pub fn jobs(&self) -> Vec<(String, String)> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .jobs
            .keys()
            .cloned()
            .collect()
    }

    /// The stored Job, as the API returns it.
    pub fn job(&self, namespace: &str, name: &str) -> Option<Job> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .jobs
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/apis/batch/v1/namespaces/{ns}/jobs", get(list_jobs))
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            get(get_job).patch(apply_job).delete(delete_job),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .fallback(not_found_route)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            record_request,
        ))
        .with_state(shared)
}

async fn record_request(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let line = format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str())
    );
    shared.inner.lock().unwrap().requests.push(line);
    next.run(req).await
}

/// A `Status` body, shaped as the API server sends it.
fn status(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found(group: &str, kind: &str, name: &str) -> Response {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{qualified} \"{name}\" not found"),
        Some(json!({"name": name, "group": group, "kind": kind})),
    )
}

fn forbidden(
    inner: &Inner,
    verb: &str,
    resource: &str,
    group: &str,
    ns: &str,
    name: Option<&str>,
) -> Option<Response> {
    if !inner
        .forbidden
        .contains(&(verb.to_owned(), resource.to_owned()))
    {
        return None;
    }
    let (res, sub) = resource
        .split_once('/')
        .map_or((resource, None), |(r, s)| (r, Some(s)));
    let qualified = if group.is_empty() {
        res.to_owned()
    } else {
        format!("{res}.{group}")
    };
    let subject = name.map_or(qualified.clone(), |n| format!("{qualified} \"{n}\""));
    let sub_text = sub.map_or(String::new(), |s| format!("/{s}"));
    let group_text = if group.is_empty() {
        "\"\"".to_owned()
    } else {
        format!("\"{group}\"")
    };
    Some(status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{subject} is forbidden: User \"system:serviceaccount:ci:runner\" cannot {verb} resource \"{res}{sub_text}\" in API group {group_text} in the namespace \"{ns}\""
        ),
        Some(json!({"name": name.unwrap_or(""), "group": group, "kind": res})),
    ))
}

async fn not_found_route(method: Method, uri: Uri) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "the server could not find the requested resource ({method} {})",
            uri.path()
        ),
        None,
    )
}

fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn set_rv(meta: &mut ObjectMeta, rv: u64) {
    meta.resource_version = Some(rv.to_string());
}

async fn apply_job(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/apply-patch+yaml" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
            None,
        );
    }
    let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()).cloned() else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".to_owned(),
            None,
        );
    };
    let force = q.get("force").is_some_and(|f| f == "true");
    let parsed: Result<Job, String> = serde_json::from_slice(&body)
        .map_err(|e| e.to_string())
        .or_else(|_| serde_yaml::from_slice(&body).map_err(|e| e.to_string()));
    let mut job = match parsed {
        Ok(job) => job,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("error decoding apply patch: {e}"),
                None,
            );
        }
    };
    if job.metadata.name.as_deref() != Some(name.as_str()) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                job.metadata.name.unwrap_or_default()
            ),
            None,
        );
    }
    let key = (ns.clone(), name.clone());
    let (response, scenario) = {
        let mut inner = shared.inner.lock().unwrap();
        if let Some(r) = forbidden(&inner, "patch", "jobs", "batch", &ns, Some(&name)) {
            return r;
        }
        if let Some(existing) = inner.jobs.get(&key).cloned() {
            let owner = inner.field_managers.get(&key).cloned().unwrap_or_default();
            if owner != manager && !force {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Apply failed with 1 conflict: conflict with \"{owner}\": .spec.template"
                    ),
                    Some(
                        json!({"causes": [{"reason": "FieldManagerConflict", "message": format!("conflict with \"{owner}\""), "field": ".spec.template"}]}),
                    ),
                );
            }
            inner.field_managers.insert(key, manager);
            (json_response(StatusCode::OK, &existing), None)
        } else {
            let rv = shared.bump(&mut inner);
            let uid = format!("00000000-0000-4000-8000-{rv:012}");
            job.metadata.namespace = Some(ns.clone());
            job.metadata.uid = Some(uid.clone());
            job.metadata.generation = Some(1);
            job.metadata.creation_timestamp = Some(now());
            set_rv(&mut job.metadata, rv);
            if let Some(spec) = job.spec.as_mut() {
                let labels = spec
                    .template
                    .metadata
                    .get_or_insert_with(ObjectMeta::default)
                    .labels
                    .get_or_insert_with(BTreeMap::new);
                labels.insert("batch.kubernetes.io/controller-uid".to_owned(), uid.clone());
                labels.insert("batch.kubernetes.io/job-name".to_owned(), name.clone());
                labels.insert("controller-uid".to_owned(), uid.clone());
                labels.insert("job-name".to_owned(), name.clone());
                spec.completions.get_or_insert(1);
                spec.parallelism.get_or_insert(1);
                spec.completion_mode
                    .get_or_insert_with(|| "NonIndexed".to_owned());
                spec.suspend.get_or_insert(false);
            }
            job.status = Some(JobStatus {
                start_time: Some(now()),
                active: Some(0),
                ..JobStatus::default()
            });
            inner.jobs.insert(key.clone(), job.clone());
            inner.field_managers.insert(key, manager);
            push_event(&mut inner, rv, "jobs", &ns, "ADDED", &job);
            let scenario = inner
                .scripts
                .iter()
                .rev()
                .find(|(prefix, _)| name.starts_with(prefix.as_str()))
                .map_or_else(|| Scenario::succeed("done\n"), |(_, s)| s.clone());
            shared.notify(rv);
            (json_response(StatusCode::CREATED, &job), Some(scenario))
        }
    };
    if let Some(scenario) = scenario {
        tokio::spawn(drive(shared.clone(), ns, name, scenario));
    }
    response
}

fn push_event<T: serde::Serialize + k8s_openapi::Metadata<Ty = ObjectMeta>>(
    inner: &mut Inner,
    rv: u64,
    resource: &'static str,
    ns: &str,
    kind: &'static str,
    object: &T,
) {
    let meta = object.metadata();
    inner.events.push(Event {
        rv,
        resource,
        namespace: ns.to_owned(),
        kind,
        object: serde_json::to_value(object).unwrap_or(Value::Null),
        labels: meta.labels.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    });
}

/// The fake Job controller and kubelet: plays the scenario on one pod of the Job.
async fn drive(shared: Arc<Shared>, ns: String, job_name: String, scenario: Scenario) {
    let mut pod_name = String::new();
    for step in scenario.steps {
        tokio::time::sleep(shared.step_delay).await;
        if let Step::Sleep(d) = step {
            tokio::time::sleep(d).await;
            continue;
        }
        let mut inner = shared.inner.lock().unwrap();
        let job_key = (ns.clone(), job_name.clone());
        let Some(job) = inner.jobs.get(&job_key).cloned() else {
            return;
        };
        let rv = shared.bump(&mut inner);
        match step {
            Step::CreatePod => {
                inner.pod_counter += 1;
                pod_name = format!("{job_name}-{}", pod_suffix(inner.pod_counter));
                let pod = new_pod(&job, &ns, &pod_name, rv);
                inner
                    .logs
                    .insert((ns.clone(), pod_name.clone()), LogBuffer::default());
                push_event(&mut inner, rv, "pods", &ns, "ADDED", &pod);
                inner.pods.insert((ns.clone(), pod_name.clone()), pod);
                update_job(&mut inner, &job_key, rv, |s| s.active = Some(1));
            }
            Step::Log(text) => {
                if let Some(buf) = inner.logs.get_mut(&(ns.clone(), pod_name.clone())) {
                    buf.text.push_str(&text);
                }
            }
            Step::Complete => {
                update_job(&mut inner, &job_key, rv, |s| {
                    s.active = Some(0);
                    s.succeeded = Some(1);
                    s.completion_time = Some(now());
                    s.conditions = Some(vec![
                        condition(
                            "SuccessCriteriaMet",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        ),
                        condition(
                            "Complete",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        ),
                    ]);
                });
            }
            Step::Fail(reason, message) => {
                update_job(&mut inner, &job_key, rv, |s| {
                    s.active = Some(0);
                    s.failed = Some(1);
                    s.conditions = Some(vec![
                        condition("FailureTarget", &reason, &message),
                        condition("Failed", &reason, &message),
                    ]);
                });
            }
            other => {
                let key = (ns.clone(), pod_name.clone());
                let Some(mut pod) = inner.pods.get(&key).cloned() else {
                    continue;
                };
                apply_pod_step(&mut pod, &other);
                set_rv(&mut pod.metadata, rv);
                if matches!(other, Step::Terminate { .. })
                    && let Some(buf) = inner.logs.get_mut(&key)
                {
                    buf.done = true;
                }
                push_event(&mut inner, rv, "pods", &ns, "MODIFIED", &pod);
                inner.pods.insert(key, pod);
            }
        }
        drop(inner);
        shared.notify(rv);
    }
}

fn pod_suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(2_654_435_761) % 14_348_907;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % 27) as usize] as char;
            x /= 27;
            c
        })
        .collect()
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    JobCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

fn update_job(inner: &mut Inner, key: &(String, String), rv: u64, f: impl FnOnce(&mut JobStatus)) {
    let Some(job) = inner.jobs.get_mut(key) else {
        return;
    };
    f(job.status.get_or_insert_with(JobStatus::default));
    set_rv(&mut job.metadata, rv);
    let job = job.clone();
    push_event(inner, rv, "jobs", &key.0, "MODIFIED", &job);
}

fn new_pod(job: &Job, ns: &str, name: &str, rv: u64) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(name.to_owned());
    meta.namespace = Some(ns.to_owned());
    meta.uid = Some(format!("11111111-0000-4000-8000-{rv:012}"));
    meta.creation_timestamp = Some(now());
    meta.generate_name = Some(format!(
        "{}-",
        job.metadata.name.clone().unwrap_or_default()
    ));
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    set_rv(&mut meta, rv);
    Pod {
        metadata: meta,
        spec: template.spec,
        status: Some(PodStatus {
            phase: Some("Pending".to_owned()),
            qos_class: Some("Burstable".to_owned()),
            ..PodStatus::default()
        }),
    }
}

fn main_status(pod: &mut Pod) -> &mut ContainerStatus {
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let statuses = status.container_statuses.get_or_insert_with(Vec::new);
    if statuses.is_empty() {
        statuses.push(ContainerStatus {
            name: "main".to_owned(),
            image,
            image_id: String::new(),
            ready: false,
            restart_count: 0,
            started: Some(false),
            ..ContainerStatus::default()
        });
    }
    &mut statuses[0]
}

fn pod_condition(
    pod: &mut Pod,
    type_: &str,
    value: bool,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != type_);
    conditions.push(PodCondition {
        type_: type_.to_owned(),
        status: if value { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message: message.map(str::to_owned),
        last_transition_time: Some(now()),
        ..PodCondition::default()
    });
}

fn apply_pod_step(pod: &mut Pod, step: &Step) {
    match step {
        Step::Unschedulable(message) => {
            pod_condition(
                pod,
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(message),
            );
        }
        Step::Schedule(node) => {
            if let Some(spec) = pod.spec.as_mut() {
                spec.node_name = Some(node.clone());
            }
            pod_condition(pod, "PodScheduled", true, None, None);
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.host_ip = Some("172.18.0.2".to_owned());
            status.start_time = Some(now());
            main_status(pod).state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".to_owned()),
                    message: None,
                }),
                ..ContainerState::default()
            });
        }
        Step::Waiting(reason, message) => {
            main_status(pod).state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                }),
                ..ContainerState::default()
            });
        }
        Step::Run => {
            let cs = main_status(pod);
            cs.image_id = FAKE_IMAGE_ID.to_owned();
            cs.container_id = Some("containerd://4f2a9c".to_owned());
            cs.started = Some(true);
            cs.ready = true;
            cs.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(now()),
                }),
                ..ContainerState::default()
            });
            pod_condition(pod, "Ready", true, None, None);
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.phase = Some("Running".to_owned());
            status.pod_ip = Some("10.244.0.7".to_owned());
        }
        Step::Terminate {
            exit_code,
            reason,
            message,
        } => {
            let cs = main_status(pod);
            let started_at = cs
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.clone());
            cs.ready = false;
            cs.started = Some(false);
            cs.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: *exit_code,
                    reason: Some(reason.clone()),
                    message: message.clone(),
                    started_at: started_at.or_else(|| Some(now())),
                    finished_at: Some(now()),
                    container_id: Some("containerd://4f2a9c".to_owned()),
                    signal: None,
                }),
                ..ContainerState::default()
            });
            pod_condition(pod, "Ready", false, Some("PodCompleted"), None);
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.phase = Some(
                if *exit_code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                }
                .to_owned(),
            );
        }
        Step::InitFail { exit_code, message } => {
            let name = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .and_then(|c| c.first())
                .map_or_else(|| "mlops-fetch".to_owned(), |c| c.name.clone());
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.init_container_statuses = Some(vec![ContainerStatus {
                name,
                ready: false,
                restart_count: 0,
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: *exit_code,
                        reason: Some("Error".to_owned()),
                        message: Some(message.clone()),
                        started_at: Some(now()),
                        finished_at: Some(now()),
                        container_id: Some("containerd://9e1b".to_owned()),
                        signal: None,
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]);
            status.phase = Some("Failed".to_owned());
            main_status(pod).state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("PodInitializing".to_owned()),
                    message: None,
                }),
                ..ContainerState::default()
            });
        }
        _ => {}
    }
}

async fn get_job(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let inner = shared.inner.lock().unwrap();
    if let Some(r) = forbidden(&inner, "get", "jobs", "batch", &ns, Some(&name)) {
        return r;
    }
    match inner.jobs.get(&(ns, name.clone())) {
        Some(job) => json_response(StatusCode::OK, job),
        None => not_found("batch", "jobs", &name),
    }
}

async fn get_pod(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let inner = shared.inner.lock().unwrap();
    if let Some(r) = forbidden(&inner, "get", "pods", "", &ns, Some(&name)) {
        return r;
    }
    match inner.pods.get(&(ns, name.clone())) {
        Some(pod) => json_response(StatusCode::OK, pod),
        None => not_found("", "pods", &name),
    }
}

async fn delete_job(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body_policy = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let policy = body_policy.or_else(|| q.get("propagationPolicy").cloned());
    let mut inner = shared.inner.lock().unwrap();
    if let Some(r) = forbidden(&inner, "delete", "jobs", "batch", &ns, Some(&name)) {
        return r;
    }
    let key = (ns.clone(), name.clone());
    let Some(job) = inner.jobs.remove(&key) else {
        return not_found("batch", "jobs", &name);
    };
    inner
        .deletes
        .push((ns.clone(), name.clone(), policy.clone()));
    let rv = shared.bump(&mut inner);
    push_event(&mut inner, rv, "jobs", &ns, "DELETED", &job);
    // Background and Foreground propagation garbage-collect the pods; Orphan leaves them.
    if policy.as_deref() != Some("Orphan") {
        let pods: Vec<_> = inner
            .pods
            .iter()
            .filter(|(k, p)| {
                k.0 == ns
                    && p.metadata.labels.as_ref().and_then(|l| l.get("job-name")) == Some(&name)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in pods {
            if let Some(pod) = inner.pods.remove(&k) {
                push_event(&mut inner, rv, "pods", &ns, "DELETED", &pod);
            }
            if let Some(buf) = inner.logs.get_mut(&k) {
                buf.done = true;
            }
        }
    }
    drop(inner);
    shared.notify(rv);
    json_response(StatusCode::OK, &job)
}

/// Parses `a=b,c=d` (and `a==b`) equality selectors.
fn parse_selector(text: Option<&String>) -> Vec<(String, String)> {
    text.map(|t| {
        t.split(',')
            .filter_map(|term| {
                let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn matches(name: &str, labels: &BTreeMap<String, String>, q: &HashMap<String, String>) -> bool {
    let fields = parse_selector(q.get("fieldSelector"));
    let label_sel = parse_selector(q.get("labelSelector"));
    fields
        .iter()
        .all(|(k, v)| k != "metadata.name" || v == name)
        && label_sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

async fn list_jobs(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    collection(shared, ns, q, "jobs").await
}

async fn list_pods(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    collection(shared, ns, q, "pods").await
}

async fn collection(
    shared: Arc<Shared>,
    ns: String,
    q: HashMap<String, String>,
    resource: &'static str,
) -> Response {
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let group = if resource == "jobs" { "batch" } else { "" };
    let verb = if watching { "watch" } else { "list" };
    {
        let inner = shared.inner.lock().unwrap();
        if let Some(r) = forbidden(&inner, verb, resource, group, &ns, None) {
            return r;
        }
    }
    if watching {
        return watch(shared, ns, q, resource);
    }
    let inner = shared.inner.lock().unwrap();
    let rv = inner.rv.to_string();
    let items: Vec<Value> = if resource == "jobs" {
        inner
            .jobs
            .iter()
            .filter(|((n, name), j)| {
                *n == ns && matches(name, &j.metadata.labels.clone().unwrap_or_default(), &q)
            })
            .map(|(_, j)| serde_json::to_value(j).unwrap_or(Value::Null))
            .collect()
    } else {
        inner
            .pods
            .iter()
            .filter(|((n, name), p)| {
                *n == ns && matches(name, &p.metadata.labels.clone().unwrap_or_default(), &q)
            })
            .map(|(_, p)| serde_json::to_value(p).unwrap_or(Value::Null))
            .collect()
    };
    let (api_version, kind) = if resource == "jobs" {
        ("batch/v1", "JobList")
    } else {
        ("v1", "PodList")
    };
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv}, "items": items}),
    )
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch(
    shared: Arc<Shared>,
    ns: String,
    q: HashMap<String, String>,
    resource: &'static str,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let start_rv: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(300);
    let (expire, close_after) = {
        let mut inner = shared.inner.lock().unwrap();
        let expire = std::mem::take(&mut inner.expire_next_watch)
            || (start_rv > 0 && start_rv < inner.oldest_rv);
        if expire {
            inner.oldest_rv = inner.rv;
            inner.expired.push(resource);
        }
        (expire, inner.close_watches_after)
    };
    let mut changed = shared.changed.subscribe();
    tokio::spawn(async move {
        if expire {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {start_rv} ({start_rv})"), "reason": "Expired", "code": 410});
            let _ = tx.send(watch_line("ERROR", &status)).await;
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut cursor = start_rv;
        let mut sent = 0usize;
        if start_rv == 0 {
            // No resourceVersion: synthetic ADDED events for what exists, then changes.
            let initial: Vec<Bytes> = {
                let inner = shared.inner.lock().unwrap();
                cursor = inner.rv;
                initial_objects(&inner, &ns, &q, resource)
                    .iter()
                    .map(|o| watch_line("ADDED", o))
                    .collect()
            };
            for line in initial {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
        loop {
            let (batch, snapshot): (Vec<Bytes>, u64) = {
                let inner = shared.inner.lock().unwrap();
                let batch = inner
                    .events
                    .iter()
                    .filter(|e| {
                        e.rv > cursor
                            && e.resource == resource
                            && e.namespace == ns
                            && matches(&e.name, &e.labels, &q)
                    })
                    .map(|e| watch_line(e.kind, &e.object))
                    .collect();
                (batch, inner.rv)
            };
            for line in batch {
                if close_after.is_some_and(|n| sent >= n) {
                    return;
                }
                if tx.send(line).await.is_err() {
                    return;
                }
                sent += 1;
            }
            cursor = snapshot;
            if *changed.borrow_and_update() > cursor {
                continue;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn initial_objects(
    inner: &Inner,
    ns: &str,
    q: &HashMap<String, String>,
    resource: &str,
) -> Vec<Value> {
    if resource == "jobs" {
        inner
            .jobs
            .iter()
            .filter(|((n, name), j)| {
                n == ns && matches(name, &j.metadata.labels.clone().unwrap_or_default(), q)
            })
            .map(|(_, j)| serde_json::to_value(j).unwrap_or(Value::Null))
            .collect()
    } else {
        inner
            .pods
            .iter()
            .filter(|((n, name), p)| {
                n == ns && matches(name, &p.metadata.labels.clone().unwrap_or_default(), q)
            })
            .map(|(_, p)| serde_json::to_value(p).unwrap_or(Value::Null))
            .collect()
    }
}

async fn pod_log(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = (ns.clone(), name.clone());
    {
        let inner = shared.inner.lock().unwrap();
        if let Some(r) = forbidden(&inner, "get", "pods/log", "", &ns, Some(&name)) {
            return r;
        }
        if !inner.pods.contains_key(&key) {
            return not_found("", "pods", &name);
        }
        let started = inner
            .pods
            .get(&key)
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
        if !started {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "container \"main\" in pod \"{name}\" is waiting to start: ContainerCreating"
                ),
                None,
            );
        }
    }
    let follow = q.get("follow").is_some_and(|f| f == "true");
    if !follow {
        let inner = shared.inner.lock().unwrap();
        let text = inner
            .logs
            .get(&key)
            .map(|b| b.text.clone())
            .unwrap_or_default();
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut changed = shared.changed.subscribe();
    tokio::spawn(async move {
        let mut offset = 0;
        loop {
            let (chunk, done) = {
                let inner = shared.inner.lock().unwrap();
                match inner.logs.get(&key) {
                    Some(b) => (b.text[offset..].to_owned(), b.done),
                    None => (String::new(), true),
                }
            };
            offset += chunk.len();
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if done {
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
