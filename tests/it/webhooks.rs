//! The webhook ingress and inbox processor end to end: the real router on a real port, signed
//! deliveries, recorded GitHub payloads, both backends.

use std::time::Duration;

use foreman::model::delivery::DeliveryStatus;
use foreman::model::{DeliveryId, InstallationId};
use foreman::store::{DeliveryFilter, InstallationState, Store};
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{TestDb, TestServer, eventually, fixture, post_webhook, serve_args};

async fn status_of(store: &Store, id: &str) -> Option<DeliveryStatus> {
    store
        .delivery(&DeliveryId(id.to_owned()))
        .await
        .unwrap()
        .map(|d| d.status)
}

/// Waits until the delivery is no longer pending and returns how it ended.
async fn settled(store: &Store, id: &str) -> DeliveryStatus {
    eventually(&format!("delivery {id} to be handled"), || async {
        status_of(store, id)
            .await
            .filter(|s| *s != DeliveryStatus::Pending)
    })
    .await
}

/// How many times a delivery's effects were applied (each handled delivery audits once).
async fn handled_times(server: &TestServer, id: &str) -> u64 {
    server
        .store()
        .audit_count(&DeliveryId(id.into()))
        .await
        .unwrap()
}

async fn body_json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

async fn a_signed_delivery_is_stored_acknowledged_and_processed(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let response = server
        .post_webhook(
            "installation",
            "d-install",
            &fixture("installation.created"),
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(body_json(response).await["status"], "queued");
    assert_eq!(
        settled(server.store(), "d-install").await,
        DeliveryStatus::Processed
    );

    let payload: Value = serde_json::from_slice(&fixture("installation.created")).unwrap();
    let id = InstallationId(payload["installation"]["id"].as_i64().unwrap());
    let installation = server.store().installation(id).await.unwrap().unwrap();
    assert_eq!(installation.state, InstallationState::Active);
    let listed = payload["repositories"].as_array().unwrap().len();
    assert_eq!(installation.repositories.len(), listed);
    let audit = server
        .store()
        .audit_for_delivery(&DeliveryId("d-install".into()))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].kind, "installation.created");
    server.shutdown().await;
}
on_both_backends!(a_signed_delivery_is_stored_acknowledged_and_processed);

async fn bad_signatures_are_refused_and_nothing_is_stored(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let body = fixture("ping");
    let url = server.url("/webhooks/github");
    let forged = foreman::github::signature::sign(
        &secrecy::SecretString::from("not-the-secret".to_owned()),
        &body,
    );
    let cases: [(&str, Option<&str>); 4] = [
        ("missing", None),
        ("forged", Some(forged.as_str())),
        ("malformed", Some("sha256=nothex")),
        (
            "wrong-scheme",
            Some("sha1=0123456789abcdef0123456789abcdef01234567"),
        ),
    ];
    for (name, signature) in cases {
        let mut request = server
            .client
            .post(&url)
            .header("x-github-event", "ping")
            .header("x-github-delivery", format!("d-{name}"))
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{name}");
        let error = body_json(response).await["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            error.contains("X-Hub-Signature-256") || error.contains("signature"),
            "{error}"
        );
    }
    // A truncated body no longer matches the signature made over the whole.
    let signature = foreman::github::signature::sign(
        &secrecy::SecretString::from(crate::support::WEBHOOK_SECRET.to_owned()),
        &body,
    );
    let response = server
        .client
        .post(&url)
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-truncated")
        .header("x-hub-signature-256", signature)
        .body(body[..body.len() / 2].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.store().inbox_depth().await.unwrap(), 0);
    let stored = server
        .store()
        .list_deliveries(DeliveryFilter {
            status: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    server.shutdown().await;
}
on_both_backends!(bad_signatures_are_refused_and_nothing_is_stored);

async fn malformed_requests_get_clear_errors(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let not_json = server
        .post_webhook("issues", "d-text", b"Hello, World!")
        .await;
    assert_eq!(not_json.status(), 400);
    let error = body_json(not_json).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("not a webhook payload"), "{error}");
    let array = server.post_webhook("issues", "d-array", b"[1, 2]").await;
    assert_eq!(array.status(), 400);

    let url = server.url("/webhooks/github");
    let body = fixture("ping");
    let no_event = server
        .client
        .post(&url)
        .header("x-github-delivery", "d-no-event")
        .header(
            "x-hub-signature-256",
            foreman::github::signature::sign(
                &secrecy::SecretString::from(crate::support::WEBHOOK_SECRET.to_owned()),
                &body,
            ),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_event.status(), 400);
    assert!(
        body_json(no_event).await["error"]
            .as_str()
            .unwrap()
            .contains("x-github-event")
    );
    let bad_id = server.post_webhook("ping", "../../etc", &body).await;
    assert_eq!(bad_id.status(), 400);
    assert_eq!(server.store().inbox_depth().await.unwrap(), 0);
    server.shutdown().await;
}
on_both_backends!(malformed_requests_get_clear_errors);

async fn bodies_over_the_limit_are_refused(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let addr = server.running.addr;
    // Declared too large: refused from the headers alone, before any of the body is sent.
    let declared = format!("content-length: {}", foreman::server::MAX_WEBHOOK_BODY + 10);
    let answer = raw_webhook(addr, "d-huge", &declared, |_| false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Not declared (chunked): cut off once past the limit.
    let answer = raw_webhook(addr, "d-chunked", "transfer-encoding: chunked", |sent| {
        sent <= foreman::server::MAX_WEBHOOK_BODY + (1 << 20)
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(server.store().inbox_depth().await.unwrap(), 0);
    server.shutdown().await;
}

/// Sends a webhook by hand: its headers (with a well-formed signature and `framing`), then
/// 1 MiB chunks while `more(bytes sent)` says so, and returns the start of the answer.
async fn raw_webhook(
    addr: std::net::SocketAddr,
    delivery: &str,
    framing: &str,
    more: impl Fn(usize) -> bool,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-github-event: ping\r\nx-github-delivery: {delivery}\r\n\
         x-hub-signature-256: sha256={}\r\n{framing}\r\n\r\n",
        "ab".repeat(32)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0;
    while more(sent) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break; // the server stopped reading: its answer is waiting
        }
        sent += chunk.len();
    }
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).into_owned()
}
on_both_backends!(bodies_over_the_limit_are_refused);

async fn unknown_events_and_actions_are_recorded_and_skipped(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let unknown_event = server
        .post_webhook(
            "star",
            "d-star",
            br#"{"action":"created","starred_at":null}"#,
        )
        .await;
    assert_eq!(unknown_event.status(), 202);
    let unknown_action = server
        .post_webhook("issues", "d-pinned", &fixture("issues.pinned"))
        .await;
    assert_eq!(unknown_action.status(), 202);
    assert_eq!(
        settled(server.store(), "d-star").await,
        DeliveryStatus::Skipped
    );
    assert_eq!(
        settled(server.store(), "d-pinned").await,
        DeliveryStatus::Skipped
    );
    let pinned = server
        .store()
        .delivery(&DeliveryId("d-pinned".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pinned.action.as_deref(), Some("pinned"));
    assert!(
        pinned
            .last_error
            .unwrap()
            .contains("`pinned` is not one foreman acts on")
    );
    server.shutdown().await;
}
on_both_backends!(unknown_events_and_actions_are_recorded_and_skipped);

async fn a_redelivered_id_is_acknowledged_and_processed_once(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let body = fixture("installation_repositories.added");
    let first = server
        .post_webhook("installation_repositories", "d-dup", &body)
        .await;
    assert_eq!(body_json(first).await["status"], "queued");
    settled(server.store(), "d-dup").await;
    let again = server
        .post_webhook("installation_repositories", "d-dup", &body)
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(body_json(again).await["status"], "duplicate");

    // The same id posted many times at once is stored once.
    let mut posts = Vec::new();
    for _ in 0..12 {
        let (client, url, body) = (
            server.client.clone(),
            server.url("/webhooks/github"),
            body.clone(),
        );
        posts.push(tokio::spawn(async move {
            post_webhook(&client, &url, "installation_repositories", "d-burst", &body)
                .await
                .status()
        }));
    }
    for p in posts {
        assert_eq!(p.await.unwrap(), 202);
    }
    settled(server.store(), "d-burst").await;
    // Let the processor look again: nothing more may happen.
    server.quiesce().await;
    for id in ["d-dup", "d-burst"] {
        let count = handled_times(&server, id).await;
        assert_eq!(count, 1, "{id} handled {count} times");
    }
    server.shutdown().await;
}
on_both_backends!(a_redelivered_id_is_acknowledged_and_processed_once);

/// A database trigger that makes every installation write fail, as a stand-in for a handler
/// that keeps failing.
fn break_installations(db: &TestDb) -> &'static str {
    match db.kind {
        crate::support::Kind::Sqlite => {
            "CREATE TRIGGER refuse BEFORE INSERT ON installations \
             BEGIN SELECT RAISE(ABORT, 'installations are broken'); END;"
        }
        crate::support::Kind::Postgres => {
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'installations are broken'; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT ON installations \
             FOR EACH ROW EXECUTE FUNCTION refuse();"
        }
    }
}

async fn a_failing_delivery_dies_after_its_attempts(db: TestDb) {
    let args = serve_args(&db);
    let server = TestServer::start(&args).await;
    db.execute(break_installations(&db)).await;
    let body = fixture("installation.created");
    server.post_webhook("installation", "d-fails", &body).await;
    assert_eq!(
        settled(server.store(), "d-fails").await,
        DeliveryStatus::Dead
    );
    let dead = server
        .store()
        .delivery(&DeliveryId("d-fails".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.attempts, args.inbox_max_attempts);
    assert!(
        dead.last_error
            .unwrap()
            .contains("installations are broken")
    );
    // Nothing of the failed attempts was applied.
    assert_eq!(handled_times(&server, "d-fails").await, 0);
    server.shutdown().await;
}
on_both_backends!(a_failing_delivery_dies_after_its_attempts);

async fn dead_deliveries_replay_after_the_cause_is_fixed(db: TestDb) {
    let args = serve_args(&db);
    let server = TestServer::start(&args).await;
    db.execute(break_installations(&db)).await;
    server
        .post_webhook("installation", "d-replay", &fixture("installation.created"))
        .await;
    assert_eq!(
        settled(server.store(), "d-replay").await,
        DeliveryStatus::Dead
    );
    // The counter moves just after the delivery is stored as dead.
    eventually("the dead delivery counted", || async {
        let metrics = server.running.engine.metrics.render(None);
        metrics
            .contains("foreman_deliveries_dead_total 1")
            .then_some(())
    })
    .await;
    db.execute(match db.kind {
        crate::support::Kind::Sqlite => "DROP TRIGGER refuse",
        crate::support::Kind::Postgres => "DROP TRIGGER refuse ON installations",
    })
    .await;
    let replayed = server
        .store()
        .replay_dead(
            Some(&DeliveryId("d-replay".into())),
            foreman::model::Timestamp(0),
        )
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    server.running.engine.ingest.inbox_bell.notify_one();
    assert_eq!(
        settled(server.store(), "d-replay").await,
        DeliveryStatus::Processed
    );
    assert_eq!(handled_times(&server, "d-replay").await, 1);
    server.shutdown().await;
}
on_both_backends!(dead_deliveries_replay_after_the_cause_is_fixed);

async fn an_unparseable_payload_is_parked_with_its_error(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let response = server
        .post_webhook(
            "issues",
            "d-broken",
            br#"{"action":"opened","issue":{"title":"no number"}}"#,
        )
        .await;
    assert_eq!(response.status(), 202, "stored: it is signed and JSON");
    assert_eq!(
        settled(server.store(), "d-broken").await,
        DeliveryStatus::Dead
    );
    let row = server
        .store()
        .delivery(&DeliveryId("d-broken".into()))
        .await
        .unwrap()
        .unwrap();
    let error = row.last_error.unwrap();
    assert!(
        error.contains("cannot parse payload") && error.contains("number"),
        "{error}"
    );
    assert_eq!(
        row.attempts, 1,
        "a payload that cannot parse is not retried"
    );
    server.shutdown().await;
}
on_both_backends!(an_unparseable_payload_is_parked_with_its_error);

async fn one_repository_in_order_and_others_in_parallel(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    // Deliveries for two repositories of one installation, interleaved.
    let mut ids = Vec::new();
    for i in 0..20 {
        let repo = i % 2;
        let body = serde_json::json!({
            "action": "added",
            "installation": {"id": 900, "account": {"login": "octo", "type": "Organization"}},
            "repository_selection": "selected",
            "repositories_added": [{"id": 5000 + i, "name": format!("r{i}"), "full_name": format!("octo/r{i}"), "private": false}],
            "repositories_removed": [],
            "repository": {"id": 100 + repo, "name": format!("repo{repo}"), "full_name": format!("octo/repo{repo}")},
            "sender": {"login": "octocat", "id": 1, "type": "User"}
        });
        let id = format!("d-order-{i:02}");
        let response = server
            .post_webhook(
                "installation_repositories",
                &id,
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(response.status(), 202);
        ids.push(id);
    }
    for id in &ids {
        settled(server.store(), id).await;
    }
    // Within a repository, handled in arrival order: the audit trail lists each
    // repository's deliveries in the order they were posted.
    let trail = server.store().recent_audit(100).await.unwrap();
    for repo in 0..2 {
        let expected: Vec<&String> = ids.iter().skip(repo).step_by(2).collect();
        let handled: Vec<&String> = trail
            .iter()
            .filter_map(|e| e.delivery_id.as_ref().map(|d| &d.0))
            .filter(|d| expected.contains(d))
            .collect();
        assert_eq!(handled, expected);
    }
    let installation = server
        .store()
        .installation(InstallationId(900))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(installation.repositories.len(), 20);
    server.shutdown().await;
}
on_both_backends!(one_repository_in_order_and_others_in_parallel);

async fn health_and_metrics(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server
        .post_webhook("ping", "d-ping", &fixture("ping"))
        .await;
    settled(server.store(), "d-ping").await;
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "foreman_deliveries_received_total 1",
        "foreman_deliveries_processed_total 1",
        "foreman_inbox_depth 0",
        "foreman_delivery_processing_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    server.shutdown().await;
}
on_both_backends!(health_and_metrics);

/// With `FOREMAN_METRICS_TOKEN`, `/metrics` answers only with it.
async fn metrics_can_require_a_token(db: TestDb) {
    let mut args = serve_args(&db);
    args.metrics_token = Some(secrecy::SecretString::from("scrape-me".to_owned()));
    let server = TestServer::start(&args).await;
    let scrape = |token: Option<&'static str>| {
        let mut request = server.client.get(server.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    assert_eq!(scrape(Some("wrong")).await.unwrap().status(), 401);
    let ok = scrape(Some("scrape-me")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("foreman_deliveries_received_total")
    );
    server.shutdown().await;
}
on_both_backends!(metrics_can_require_a_token);

async fn a_database_that_goes_away_means_503_and_nothing_acknowledged(db: TestDb) {
    let server = TestServer::start(&serve_args(&db)).await;
    server.store().close().await;
    let response = server
        .post_webhook("ping", "d-lost", &fixture("ping"))
        .await;
    assert_eq!(response.status(), 503);
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    server.shutdown().await;
    // The delivery was not acknowledged and indeed is not stored.
    let store = db.store().await;
    assert!(
        store
            .delivery(&DeliveryId("d-lost".into()))
            .await
            .unwrap()
            .is_none()
    );
}
on_both_backends!(a_database_that_goes_away_means_503_and_nothing_acknowledged);

async fn without_a_webhook_secret_deliveries_are_refused_with_503(db: TestDb) {
    let mut args = serve_args(&db);
    args.github.webhook_secret = None;
    let server = TestServer::start(&args).await;
    let response = server
        .post_webhook("ping", "d-nosecret", &fixture("ping"))
        .await;
    assert_eq!(response.status(), 503);
    assert!(
        body_json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("GITHUB_WEBHOOK_SECRET")
    );
    assert_eq!(server.store().inbox_depth().await.unwrap(), 0);
    server.shutdown().await;
}
on_both_backends!(without_a_webhook_secret_deliveries_are_refused_with_503);

async fn rotated_secrets_are_all_accepted(db: TestDb) {
    let mut args = serve_args(&db);
    args.github.webhook_secret = Some(secrecy::SecretString::from(format!(
        "new-secret, {}",
        crate::support::WEBHOOK_SECRET
    )));
    let server = TestServer::start(&args).await;
    let old = server
        .post_webhook("ping", "d-old-secret", &fixture("ping"))
        .await;
    assert_eq!(old.status(), 202);
    let body = fixture("ping");
    let new = server
        .client
        .post(server.url("/webhooks/github"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-new-secret")
        .header(
            "x-hub-signature-256",
            foreman::github::signature::sign(
                &secrecy::SecretString::from("new-secret".to_owned()),
                &body,
            ),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 202);
    server.shutdown().await;
}
on_both_backends!(rotated_secrets_are_all_accepted);

/// The resident and peak resident memory of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts the peak over from what the process holds now (Linux: `clear_refs` 5), and
/// returns that.
fn reset_peak(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    memory(pid).0
}

/// A signed 25 MiB-ish `issues` delivery: one long issue body, or (`nested`) a value nested
/// millions of levels deep that makes the typed parse fail after it.
fn large_delivery(nested: bool) -> Vec<u8> {
    let target = foreman::server::MAX_WEBHOOK_BODY - 4096;
    if nested {
        let depth = target / 4;
        let mut body = br#"{"action": "opened", "issue": {"number": 1, "x": "#.to_vec();
        body.extend(std::iter::repeat_n(b"[1,".as_slice(), depth).flatten());
        body.push(b'1');
        body.extend(std::iter::repeat_n(b']', depth));
        body.extend(br#"}, "repository": {"id": 1, "full_name": "octo/widgets"}}"#);
        body
    } else {
        // A real `issues` payload whose issue body is most of it.
        let mut payload: Value = serde_json::from_slice(&fixture("issues.opened")).unwrap();
        let rest = serde_json::to_vec(&payload).unwrap().len();
        payload["issue"]["body"] = Value::String("x".repeat(target - rest));
        serde_json::to_vec(&payload).unwrap()
    }
}

async fn one_delivery_costs_at_most_three_times_its_body(db: TestDb) {
    let store = db.store().await;
    for (n, nested) in [false, true].into_iter().enumerate() {
        // A fresh process each time, so one delivery's memory is not reused by the next.
        let process = crate::support::Process::serve(&db, &[]).await;
        let pid = process.child.id().unwrap();
        let client = reqwest::Client::new();
        let url = process.url("/webhooks/github");
        let warm = post_webhook(&client, &url, "ping", &format!("warm-{n}"), b"{}").await;
        assert_eq!(warm.status(), 202);
        settled(&store, &format!("warm-{n}")).await;
        let body = large_delivery(nested);
        let before = reset_peak(pid);
        let id = format!("large-{n}");
        let response = post_webhook(&client, &url, "issues", &id, &body).await;
        assert_eq!(response.status(), 202);
        // Received, stored, claimed, parsed (or failed to parse) and recorded.
        let status = settled(&store, &id).await;
        let (_, peak) = memory(pid);
        let cost = peak.saturating_sub(before);
        eprintln!(
            "one {} MiB delivery ({}): {status:?}, peak +{} MiB",
            body.len() >> 20,
            if nested { "nested" } else { "long text" },
            cost >> 20
        );
        assert!(
            cost <= 3 * body.len() as u64,
            "one delivery of {} bytes cost {cost} bytes of memory",
            body.len()
        );
        drop(process);
    }
}
on_both_backends!(one_delivery_costs_at_most_three_times_its_body);

async fn strangers_neither_exhaust_memory_nor_delay_a_signed_delivery(db: TestDb) {
    let process =
        crate::support::Process::serve(&db, &[("FOREMAN_WEBHOOK_BUFFER_MIB", "32")]).await;
    let pid = process.child.id().unwrap();
    let url = process.url("/webhooks/github");
    let client = reqwest::Client::new();
    let warm = post_webhook(&client, &url, "ping", "warm", b"{}").await;
    assert_eq!(warm.status(), 202);
    let before = reset_peak(pid);
    // 200 strangers at once: half without a signature, each sending a MiB (refused from the
    // headers), half with a forged one (read, within the budget, and refused).
    let strangers: Vec<_> = (0..200)
        .map(|n| {
            let junk = vec![b'x'; if n % 2 == 1 { 256 << 10 } else { 1 << 20 }];
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut request = client
                    .post(&url)
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", format!("stranger-{n}"))
                    .body(junk);
                if n % 2 == 1 {
                    request = request
                        .header("x-hub-signature-256", format!("sha256={}", "ab".repeat(32)));
                }
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // GitHub's own connection, not one of the strangers' (which the server closes on them).
    let github = reqwest::Client::new();
    let started = std::time::Instant::now();
    let signed = post_webhook(&github, &url, "ping", "signed", b"{\"zen\": \"hi\"}").await;
    let took = started.elapsed();
    assert_eq!(signed.status(), 202);
    let mut answers = Vec::new();
    for stranger in strangers {
        answers.push(stranger.await.unwrap());
    }
    let (_, peak) = memory(pid);
    eprintln!(
        "signed delivery answered in {took:?} among 200 strangers; peak +{} MiB",
        peak.saturating_sub(before) >> 20
    );
    // Not queued behind the strangers: waiting for their bodies would take up to the 10 s read
    // deadline. (A bound this loose holds on a loaded machine; the speed itself is the
    // ingress benchmark's to measure.)
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        answers.iter().all(|s| *s == 401 || *s == 503 || *s == 0),
        "strangers are refused: {answers:?}"
    );
    assert!(
        peak.saturating_sub(before) < 100 << 20,
        "200 MiB of strangers' bodies cost {} MiB",
        peak.saturating_sub(before) >> 20
    );
    let store = db.store().await;
    assert_eq!(settled(&store, "signed").await, DeliveryStatus::Processed);
    for n in [0, 1, 199] {
        assert!(status_of(&store, &format!("stranger-{n}")).await.is_none());
    }
}
on_both_backends!(strangers_neither_exhaust_memory_nor_delay_a_signed_delivery);

async fn a_body_that_never_finishes_is_cut_off(db: TestDb) {
    let process =
        crate::support::Process::serve(&db, &[("FOREMAN_WEBHOOK_READ_TIMEOUT", "1s")]).await;
    // Headers promise 1000 bytes; none arrive.
    let answer = raw_webhook(process.addr, "slow", "content-length: 1000", |_| false).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1s"), "{answer}");
}
on_both_backends!(a_body_that_never_finishes_is_cut_off);
