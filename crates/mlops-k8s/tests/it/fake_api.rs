//! The fake API server's own contract: paths, media types, and Status bodies shaped as the real
//! API server's (they must deserialize into kube's `Status` and the k8s-openapi types).

use std::io::{Read, Write};
use std::net::TcpStream;

use k8s_openapi::api::batch::v1::Job;
use kube::core::Status;
use mlops_k8s::fake::{FakeCluster, Scenario};

/// Sends one HTTP/1.1 request and returns (status code, body). Chunked bodies are de-chunked.
pub(crate) fn http(
    cluster: &FakeCluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let addr = cluster.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let code: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (code, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

const JOB: &str = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"demo"},"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"busybox"}]}}}}"#;

#[test]
fn not_found_is_a_status_body() {
    let c = FakeCluster::start().unwrap();
    let (code, body) = http(
        &c,
        "GET",
        "/apis/batch/v1/namespaces/ml/jobs/nope",
        "application/json",
        "",
    );
    assert_eq!(code, 404);
    let status: Status = serde_json::from_str(&body).unwrap();
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "jobs.batch \"nope\" not found");
    assert_eq!(status.details.unwrap().kind, "jobs");
}

#[test]
fn apply_requires_field_manager_and_apply_media_type() {
    let c = FakeCluster::start().unwrap();
    let path = "/apis/batch/v1/namespaces/ml/jobs/demo";
    let (code, _) = http(
        &c,
        "PATCH",
        &format!("{path}?fieldManager=t"),
        "application/merge-patch+json",
        JOB,
    );
    assert_eq!(code, 415);
    let (code, body) = http(&c, "PATCH", path, "application/apply-patch+yaml", JOB);
    assert_eq!(code, 422);
    assert!(body.contains("fieldManager: Required value"));
    let (code, body) = http(
        &c,
        "PATCH",
        &format!("{path}?fieldManager=alice"),
        "application/apply-patch+yaml",
        JOB,
    );
    assert_eq!(code, 201);
    let job: Job = serde_json::from_str(&body).unwrap();
    assert_eq!(job.metadata.resource_version.as_deref(), Some("1"));
    let labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["job-name"], "demo");
    // Another manager without force conflicts; with force it takes over.
    let (code, body) = http(
        &c,
        "PATCH",
        &format!("{path}?fieldManager=bob"),
        "application/apply-patch+yaml",
        JOB,
    );
    assert_eq!(code, 409);
    let status: Status = serde_json::from_str(&body).unwrap();
    assert_eq!(status.reason, "Conflict");
    let (code, _) = http(
        &c,
        "PATCH",
        &format!("{path}?fieldManager=bob&force=true"),
        "application/apply-patch+yaml",
        JOB,
    );
    assert_eq!(code, 200);
}

#[test]
fn forbidden_names_user_verb_resource_and_namespace() {
    let c = FakeCluster::start().unwrap();
    c.forbid("delete", "jobs");
    let (code, body) = http(
        &c,
        "DELETE",
        "/apis/batch/v1/namespaces/ml/jobs/demo",
        "application/json",
        "{}",
    );
    assert_eq!(code, 403);
    let status: Status = serde_json::from_str(&body).unwrap();
    assert_eq!(status.reason, "Forbidden");
    assert!(
        status.message.contains(
            "cannot delete resource \"jobs\" in API group \"batch\" in the namespace \"ml\""
        ),
        "{}",
        status.message
    );
}

#[test]
fn list_and_expired_watch_have_the_api_shapes() {
    let c = FakeCluster::start().unwrap();
    c.script("demo", Scenario::run_forever());
    let (code, _) = http(
        &c,
        "PATCH",
        "/apis/batch/v1/namespaces/ml/jobs/demo?fieldManager=t",
        "application/apply-patch+yaml",
        JOB,
    );
    assert_eq!(code, 201);
    let (code, body) = http(
        &c,
        "GET",
        "/apis/batch/v1/namespaces/ml/jobs?fieldSelector=metadata.name%3Ddemo",
        "application/json",
        "",
    );
    assert_eq!(code, 200);
    let list: kube::core::ObjectList<Job> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    c.expire_next_watch();
    let (code, body) = http(
        &c,
        "GET",
        "/apis/batch/v1/namespaces/ml/jobs?watch=true&resourceVersion=1",
        "application/json",
        "",
    );
    assert_eq!(
        code, 200,
        "an expired watch is a 200 with an ERROR event, as the real server sends it"
    );
    let event: kube::core::WatchEvent<Job> =
        serde_json::from_str(body.lines().next().unwrap()).unwrap();
    match event {
        kube::core::WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
}

#[test]
fn delete_records_propagation_and_collects_pods() {
    let c = FakeCluster::start().unwrap();
    c.script("demo", Scenario::run_forever());
    http(
        &c,
        "PATCH",
        "/apis/batch/v1/namespaces/ml/jobs/demo?fieldManager=t",
        "application/apply-patch+yaml",
        JOB,
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (_, pods) = http(
        &c,
        "GET",
        "/api/v1/namespaces/ml/pods?labelSelector=job-name%3Ddemo",
        "application/json",
        "",
    );
    let pods: kube::core::ObjectList<k8s_openapi::api::core::v1::Pod> =
        serde_json::from_str(&pods).unwrap();
    assert_eq!(pods.items.len(), 1);
    let pod = pods.items[0].metadata.name.clone().unwrap();
    let (code, log) = http(
        &c,
        "GET",
        &format!("/api/v1/namespaces/ml/pods/{pod}/log?container=main"),
        "text/plain",
        "",
    );
    assert_eq!((code, log.as_str()), (200, "started\n"));
    let (code, _) = http(
        &c,
        "DELETE",
        "/apis/batch/v1/namespaces/ml/jobs/demo",
        "application/json",
        r#"{"propagationPolicy":"Background"}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(
        c.deletes(),
        vec![(
            "ml".to_owned(),
            "demo".to_owned(),
            Some("Background".to_owned())
        )]
    );
    let (_, pods) = http(
        &c,
        "GET",
        "/api/v1/namespaces/ml/pods?labelSelector=job-name%3Ddemo",
        "application/json",
        "",
    );
    assert!(pods.contains("\"items\":[]"), "{pods}");
    let (code, _) = http(
        &c,
        "DELETE",
        "/apis/batch/v1/namespaces/ml/jobs/demo",
        "application/json",
        "{}",
    );
    assert_eq!(code, 404);
}
