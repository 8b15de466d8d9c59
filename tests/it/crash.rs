//! Kill -9 in the middle of a burst: after a restart, every acknowledged delivery is handled,
//! and handled exactly once.

use std::collections::HashSet;
use std::sync::Arc;

use foreman::model::DeliveryId;
use foreman::model::delivery::DeliveryStatus;
use tokio::sync::Mutex;

use crate::on_both_backends;
use crate::support::{Process, TestDb, eventually, post_webhook};

/// Deliveries posted in the burst.
const BURST: usize = 400;
/// Posts in flight at once.
const CONCURRENCY: usize = 16;
/// The process is killed once this many deliveries are acknowledged.
const KILL_AFTER: usize = 200;
/// Repositories the burst is spread over (so several queues process in parallel).
const REPOSITORIES: usize = 8;

fn payload(i: usize) -> Vec<u8> {
    let repo = i % REPOSITORIES;
    serde_json::json!({
        "action": "added",
        "installation": {"id": 77, "account": {"login": "octo", "type": "Organization"}},
        "repository_selection": "selected",
        "repositories_added": [{"id": 10_000 + i, "name": format!("r{i}"), "full_name": format!("octo/r{i}"), "private": true}],
        "repositories_removed": [],
        "repository": {"id": 500 + repo, "name": format!("repo{repo}"), "full_name": format!("octo/repo{repo}")},
        "sender": {"login": "octocat", "id": 1, "type": "User"}
    })
    .to_string()
    .into_bytes()
}

async fn acknowledged_deliveries_survive_a_kill(db: TestDb) {
    let env = [
        ("FOREMAN_INBOX_CLAIM_TTL", "1s"),
        ("FOREMAN_TICK_LEASE", "1s"),
    ];
    let first = Process::serve(&db, &env).await;
    let url = first.url("/webhooks/github");
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let mut posters = Vec::new();
    for _ in 0..CONCURRENCY {
        let (acked, next, client, url) = (acked.clone(), next.clone(), client.clone(), url.clone());
        posters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= BURST {
                    return;
                }
                let id = format!("crash-{i:04}");
                let sent = client
                    .post(&url)
                    .header("x-github-event", "installation_repositories")
                    .header("x-github-delivery", &id)
                    .header(
                        "x-hub-signature-256",
                        foreman::github::signature::sign(
                            &secrecy::SecretString::from(crate::support::WEBHOOK_SECRET.to_owned()),
                            &payload(i),
                        ),
                    )
                    .body(payload(i))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 202 => {
                        acked.lock().await.insert(id);
                    }
                    Ok(r) => panic!("unexpected status {} before the kill", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    eventually("enough acknowledgements", || async {
        (acked.lock().await.len() >= KILL_AFTER).then_some(())
    })
    .await;
    first.kill().await;
    for p in posters {
        p.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().await.iter().cloned().collect();
    assert!(
        acked.len() >= KILL_AFTER && acked.len() < BURST,
        "{} acknowledged",
        acked.len()
    );

    let store = db.store().await;
    let pending_at_kill = store.inbox_depth().await.unwrap();
    let second = Process::serve(&db, &env).await;
    eventually(
        "every acknowledged delivery handled after restart",
        || async { (store.inbox_depth().await.unwrap() == 0).then_some(()) },
    )
    .await;
    for id in &acked {
        let id = DeliveryId(id.clone());
        let delivery = store
            .delivery(&id)
            .await
            .unwrap()
            .expect("acknowledged means stored");
        assert_eq!(delivery.status, DeliveryStatus::Processed, "{id}");
        assert_eq!(
            store.audit_count(&id).await.unwrap(),
            1,
            "{id} handled more than once"
        );
    }
    // Posting the rest after the restart works as usual.
    let client = reqwest::Client::new();
    let response = post_webhook(
        &client,
        &second.url("/webhooks/github"),
        "installation_repositories",
        "crash-after",
        &payload(BURST),
    )
    .await;
    assert_eq!(response.status(), 202);
    eprintln!(
        "{} acknowledged before the kill, {pending_at_kill} still pending at the kill",
        acked.len()
    );
    let status = second.terminate().await;
    assert!(status.success(), "graceful exit after SIGTERM: {status}");
}
on_both_backends!(acknowledged_deliveries_survive_a_kill);
