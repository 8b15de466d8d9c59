//! Store behaviour, identical on SQLite and PostgreSQL: every test here runs on both.

use std::time::Duration;

use foreman::model::delivery::{DeliveryStatus, NewDelivery, RetryDecision, Skip};
use foreman::model::{DeliveryId, DeliverySeq, InstallationId, RepositoryId, Timestamp};
use foreman::store::{DeliveryFilter, Inserted, InstallationState};

use crate::on_both_backends;
use crate::support::TestDb;

const TTL: Duration = Duration::from_secs(60);

fn delivery(id: &str, repo: Option<i64>, at: i64) -> NewDelivery {
    NewDelivery {
        delivery_id: DeliveryId(id.to_owned()),
        event: "issues".to_owned(),
        action: Some("opened".to_owned()),
        installation_id: Some(InstallationId(1)),
        repository_id: repo.map(RepositoryId),
        repository: repo.map(|r| format!("octo/repo{r}")),
        payload: format!("{{\"n\":\"{id}\"}}"),
        received_at: Timestamp(at),
    }
}

async fn migrations_are_idempotent(db: TestDb) {
    let store = db.store().await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}
on_both_backends!(migrations_are_idempotent);

async fn a_delivery_id_is_stored_once(db: TestDb) {
    let store = db.store().await;
    let first = store
        .insert_delivery(delivery("a", Some(1), 10))
        .await
        .unwrap();
    assert!(matches!(first, Inserted::New(_)));
    let again = store
        .insert_delivery(delivery("a", Some(1), 11))
        .await
        .unwrap();
    assert_eq!(again, Inserted::Duplicate);
    assert_eq!(store.inbox_depth().await.unwrap(), 1);
}
on_both_backends!(a_delivery_id_is_stored_once);

/// Writes whose callers give up part-way (a timeout, an aborted task) leave the writer as it
/// was: later writes work, and each write either happened or did not.
async fn writes_cut_short_leave_the_writer_usable(db: TestDb) {
    let store = db.store().await;
    let mut cut = Vec::new();
    for i in 0..200u64 {
        let store = store.clone();
        cut.push(tokio::spawn(async move {
            let name = format!("lease-{i}");
            let write = store.try_acquire_lease(&name, "me", Timestamp(0), TTL);
            // From nothing to long enough: some are cut before, some during, some after.
            tokio::time::timeout(Duration::from_micros(i * 20), write).await
        }));
    }
    for task in cut {
        if let Ok(Err(e)) = task.await.unwrap() {
            panic!("a write that ran failed: {e:#}");
        }
    }
    assert!(
        store
            .try_acquire_lease("after", "me", Timestamp(0), TTL)
            .await
            .unwrap()
    );
    store
        .insert_delivery(delivery("after", Some(1), 0))
        .await
        .unwrap();
}
on_both_backends!(writes_cut_short_leave_the_writer_usable);

/// Payloads are stored compressed, in parts; those stored as text before compression came in
/// read back the same.
async fn payloads_read_back_compressed_or_as_stored_before(db: TestDb) {
    let store = db.store().await;
    let mut large = delivery("large", Some(1), 0);
    // Over one part (1 MiB), with characters of every width across the part boundaries.
    large.payload = format!("{{\"t\":\"{}\"}}", "aé€😀".repeat(120_000));
    let expected = large.payload.clone();
    store.insert_delivery(large).await.unwrap();
    store
        .insert_delivery(delivery("old", Some(2), 0))
        .await
        .unwrap();
    db.execute(
        "UPDATE delivery_payloads SET payload = '{\"n\":\"old\"}', compressed = NULL
         WHERE seq = (SELECT seq FROM deliveries WHERE delivery_id = 'old')",
    )
    .await;
    let t = Timestamp(0);
    for (id, body) in [("large", expected.as_str()), ("old", "{\"n\":\"old\"}")] {
        let seq = store
            .delivery(&DeliveryId(id.into()))
            .await
            .unwrap()
            .unwrap()
            .seq;
        let claimed = store
            .claim_delivery(seq, "me", t, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.payload.len(), claimed.payload_bytes, "{id}");
        assert!(claimed.payload == body, "{id} read back differently");
    }
}
on_both_backends!(payloads_read_back_compressed_or_as_stored_before);

async fn concurrent_inserts_of_one_id_store_it_once(db: TestDb) {
    let store = db.store().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_delivery(delivery("same", Some(1), i))
                .await
                .unwrap()
        }));
    }
    let mut new = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Inserted::New(_)) {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(store.inbox_depth().await.unwrap(), 1);
}
on_both_backends!(concurrent_inserts_of_one_id_store_it_once);

async fn ready_deliveries_are_the_head_of_each_queue(db: TestDb) {
    let store = db.store().await;
    for (id, repo) in [
        ("r1-a", 1),
        ("r2-a", 2),
        ("r1-b", 1),
        ("r2-b", 2),
        ("r3-a", 3),
    ] {
        store
            .insert_delivery(delivery(id, Some(repo), 0))
            .await
            .unwrap();
    }
    let now = Timestamp(1);
    let ready = store.ready_deliveries(now, 10).await.unwrap();
    let ids = ids_of(&store, &ready).await;
    assert_eq!(ids, ["r1-a", "r2-a", "r3-a"]);

    // A claimed head blocks its queue (for everyone) but not the others.
    let claimed = store
        .claim_delivery(ready[0], "me", now, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.delivery_id.0, "r1-a");
    assert_eq!(claimed.attempts, 1);
    let ready = store.ready_deliveries(now, 10).await.unwrap();
    assert_eq!(ids_of(&store, &ready).await, ["r2-a", "r3-a"]);
    assert!(
        store
            .claim_delivery(claimed.seq, "other", now, TTL)
            .await
            .unwrap()
            .is_none()
    );

    // Completing it makes the next one of that repository the head.
    let mut tx = store.begin().await.unwrap();
    tx.complete_delivery(claimed.seq, "me", DeliveryStatus::Processed, None, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ready = store.ready_deliveries(now, 10).await.unwrap();
    assert_eq!(ids_of(&store, &ready).await, ["r2-a", "r1-b", "r3-a"]);
}
on_both_backends!(ready_deliveries_are_the_head_of_each_queue);

async fn ids_of(store: &foreman::store::Store, seqs: &[DeliverySeq]) -> Vec<String> {
    let all = store
        .list_deliveries(DeliveryFilter {
            status: None,
            limit: 1000,
        })
        .await
        .unwrap();
    seqs.iter()
        .map(|s| {
            all.iter()
                .find(|d| d.seq == *s)
                .unwrap()
                .delivery_id
                .0
                .clone()
        })
        .collect()
}

async fn a_lapsed_claim_can_be_taken_over_and_the_old_holder_cannot_complete(db: TestDb) {
    let store = db.store().await;
    store
        .insert_delivery(delivery("x", Some(1), 0))
        .await
        .unwrap();
    let seq = store.ready_deliveries(Timestamp(0), 1).await.unwrap()[0];
    let first = store
        .claim_delivery(seq, "a", Timestamp(0), TTL)
        .await
        .unwrap();
    assert!(first.is_some());
    let later = Timestamp(0).plus(TTL).plus(Duration::from_millis(1));
    assert_eq!(store.ready_deliveries(later, 1).await.unwrap(), [seq]);
    let second = store
        .claim_delivery(seq, "b", later, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.attempts, 2);

    let mut tx = store.begin().await.unwrap();
    let err = tx
        .complete_delivery(seq, "a", DeliveryStatus::Processed, None, later)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("claimed by another processor"),
        "{err}"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    tx.complete_delivery(seq, "b", DeliveryStatus::Processed, None, later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.inbox_depth().await.unwrap(), 0);
}
on_both_backends!(a_lapsed_claim_can_be_taken_over_and_the_old_holder_cannot_complete);

async fn failures_retry_later_then_die_and_replay(db: TestDb) {
    let store = db.store().await;
    store
        .insert_delivery(delivery("f", Some(1), 0))
        .await
        .unwrap();
    let id = DeliveryId("f".into());
    let seq = store.ready_deliveries(Timestamp(0), 1).await.unwrap()[0];
    store
        .claim_delivery(seq, "p", Timestamp(0), TTL)
        .await
        .unwrap()
        .unwrap();
    let status = store
        .fail_delivery(seq, "p", "boom", RetryDecision::RetryAt(Timestamp(500)))
        .await
        .unwrap();
    assert_eq!(status, Some(DeliveryStatus::Pending));
    assert!(
        store
            .ready_deliveries(Timestamp(499), 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.ready_deliveries(Timestamp(500), 1).await.unwrap(),
        [seq]
    );

    store
        .claim_delivery(seq, "p", Timestamp(500), TTL)
        .await
        .unwrap()
        .unwrap();
    let status = store
        .fail_delivery(seq, "p", "boom again", RetryDecision::Dead)
        .await
        .unwrap();
    assert_eq!(status, Some(DeliveryStatus::Dead));
    assert!(
        store
            .ready_deliveries(Timestamp(10_000), 1)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = store
        .list_deliveries(DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom again"));
    assert_eq!(dead[0].attempts, 2);

    let err = store
        .replay_dead(Some(&DeliveryId("nope".into())), Timestamp(0))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no delivery with id nope"),
        "{err}"
    );
    assert_eq!(
        store
            .replay_dead(Some(&id), Timestamp(20_000))
            .await
            .unwrap(),
        1
    );
    let replayed = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        (replayed.status, replayed.attempts),
        (DeliveryStatus::Pending, 0)
    );
    assert_eq!(
        store.ready_deliveries(Timestamp(20_000), 1).await.unwrap(),
        [seq]
    );
    let err = store
        .replay_dead(Some(&id), Timestamp(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is pending, not dead"), "{err}");
}
on_both_backends!(failures_retry_later_then_die_and_replay);

async fn pruning_keeps_pending_and_dead(db: TestDb) {
    let store = db.store().await;
    for id in ["done", "dead", "waiting"] {
        store
            .insert_delivery(delivery(id, Some(1), 0))
            .await
            .unwrap();
    }
    let seqs = store.ready_deliveries(Timestamp(0), 10).await.unwrap();
    let done = store
        .claim_delivery(seqs[0], "p", Timestamp(0), TTL)
        .await
        .unwrap()
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.complete_delivery(done.seq, "p", DeliveryStatus::Processed, None, Timestamp(0))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let next = store.ready_deliveries(Timestamp(0), 10).await.unwrap()[0];
    store
        .claim_delivery(next, "p", Timestamp(0), TTL)
        .await
        .unwrap()
        .unwrap();
    store
        .fail_delivery(next, "p", "x", RetryDecision::Dead)
        .await
        .unwrap();
    assert_eq!(store.prune_deliveries(Timestamp(1)).await.unwrap(), 1);
    let left = store
        .list_deliveries(DeliveryFilter {
            status: None,
            limit: 10,
        })
        .await
        .unwrap();
    let mut ids: Vec<_> = left.iter().map(|d| d.delivery_id.0.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["dead", "waiting"]);
}
on_both_backends!(pruning_keeps_pending_and_dead);

async fn leases_have_one_holder_until_they_lapse(db: TestDb) {
    let store = db.store().await;
    let ttl = Duration::from_secs(10);
    let t0 = Timestamp(1_000);
    assert!(store.try_acquire_lease("tick", "a", t0, ttl).await.unwrap());
    assert!(!store.try_acquire_lease("tick", "b", t0, ttl).await.unwrap());
    assert!(
        store
            .try_acquire_lease("tick", "a", t0.plus(ttl), ttl)
            .await
            .unwrap(),
        "renewal"
    );
    let lapsed = t0.plus(ttl).plus(ttl).plus(Duration::from_millis(1));
    assert!(
        store
            .try_acquire_lease("tick", "b", lapsed, ttl)
            .await
            .unwrap(),
        "takeover"
    );
    assert_eq!(
        store.lease_holder("tick", lapsed).await.unwrap().as_deref(),
        Some("b")
    );
    store.release_lease("tick", "a", lapsed).await.unwrap();
    assert_eq!(
        store.lease_holder("tick", lapsed).await.unwrap().as_deref(),
        Some("b")
    );
    store.release_lease("tick", "b", lapsed).await.unwrap();
    assert_eq!(
        store.lease_expiry("tick").await.unwrap(),
        Some(Timestamp(lapsed.0 - 1)),
        "a released lease remembers when it lapsed"
    );
    assert!(
        store
            .try_acquire_lease("tick", "a", lapsed, ttl)
            .await
            .unwrap()
    );
}
on_both_backends!(leases_have_one_holder_until_they_lapse);

async fn concurrent_lease_takers_get_one_holder(db: TestDb) {
    let store = db.store().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .try_acquire_lease(
                    "race",
                    &format!("h{i}"),
                    Timestamp(0),
                    Duration::from_secs(5),
                )
                .await
                .unwrap()
        }));
    }
    let mut holders = 0;
    for t in tasks {
        holders += usize::from(t.await.unwrap());
    }
    assert_eq!(holders, 1);
}
on_both_backends!(concurrent_lease_takers_get_one_holder);

async fn installations_track_state_and_repositories(db: TestDb) {
    let store = db.store().await;
    let id = InstallationId(42);
    let now = Timestamp(0);
    let mut tx = store.begin().await.unwrap();
    tx.upsert_installation(
        id,
        "octo",
        Some("Organization"),
        Some("selected"),
        InstallationState::Active,
        now,
    )
    .await
    .unwrap();
    tx.add_repositories(
        id,
        &[
            (RepositoryId(1), "octo/a".into()),
            (RepositoryId(2), "octo/b".into()),
        ],
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.installation_state(id).await.unwrap(),
        Some(InstallationState::Active)
    );

    let mut tx = store.begin().await.unwrap();
    tx.remove_repositories(id, &[(RepositoryId(1), "octo/a".to_owned())], now)
        .await
        .unwrap();
    tx.upsert_installation(id, "octo", None, None, InstallationState::Suspended, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let got = store.installation(id).await.unwrap().unwrap();
    assert_eq!(got.state, InstallationState::Suspended);
    assert_eq!(got.repositories, [(RepositoryId(2), "octo/b".to_owned())]);
    let standing = store.standing(id, Some("octo/b")).await.unwrap().unwrap();
    assert!(standing.contains("is suspended"), "{standing}");
    assert_eq!(
        store.installation_state(id).await.unwrap(),
        Some(InstallationState::Suspended)
    );

    // Deleted is final, whatever arrives afterwards.
    let mut tx = store.begin().await.unwrap();
    tx.upsert_installation(id, "octo", None, None, InstallationState::Deleted, now)
        .await
        .unwrap();
    tx.clear_repositories(id).await.unwrap();
    tx.upsert_installation(id, "octo", None, None, InstallationState::Active, now)
        .await
        .unwrap();
    tx.ensure_installation(id, "octo", now).await.unwrap();
    tx.commit().await.unwrap();
    let got = store.installation(id).await.unwrap().unwrap();
    assert_eq!(got.state, InstallationState::Deleted);
    assert!(got.repositories.is_empty());
    assert!(
        store
            .installation(InstallationId(7))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.installation_state(InstallationId(7)).await.unwrap(),
        None
    );
}
on_both_backends!(installations_track_state_and_repositories);

async fn a_rolled_back_transaction_leaves_nothing(db: TestDb) {
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    tx.ensure_installation(InstallationId(5), "octo", Timestamp(0))
        .await
        .unwrap();
    drop(tx);
    assert!(
        store
            .installation(InstallationId(5))
            .await
            .unwrap()
            .is_none()
    );
}
on_both_backends!(a_rolled_back_transaction_leaves_nothing);

async fn a_closed_store_fails_cleanly(db: TestDb) {
    let store = db.store().await;
    store.close().await;
    let err = store
        .insert_delivery(delivery("z", None, 0))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot store delivery"),
        "{err:#}"
    );
    assert!(store.ping().await.is_err());
}
on_both_backends!(a_closed_store_fails_cleanly);

async fn a_lane_claims_the_next_of_its_queue_only_when_due(db: TestDb) {
    let store = db.store().await;
    for (id, repo) in [("a1", 1), ("b1", 2), ("a2", 1), ("a3", 1), ("a4", 1)] {
        store
            .insert_delivery(delivery(id, Some(repo), 0))
            .await
            .unwrap();
    }
    let t = Timestamp(0);
    let ids = |claimed: &[foreman::model::delivery::ClaimedDelivery]| {
        claimed
            .iter()
            .map(|d| d.delivery_id.0.clone())
            .collect::<Vec<_>>()
    };
    let head = store.ready_deliveries(t, 1).await.unwrap()[0];
    let a1 = store
        .claim_delivery(head, "lane", t, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a1.delivery_id.0.as_str(), a1.queue_key.as_str()),
        ("a1", "repo:1")
    );
    // The head is still in hand: nothing next.
    let next = store
        .claim_in_queue("repo:1", "lane", t, TTL, 10, &[])
        .await
        .unwrap();
    assert!(next.is_empty(), "{:?}", ids(&next));
    // Someone else cannot mark it skipped; the lane can, with its next claim, which takes
    // the rest of the queue in order (up to the limit) without their payloads.
    let skip = Skip {
        seq: a1.seq,
        note: "not for us".into(),
    };
    let err = store
        .claim_in_queue("repo:1", "thief", t, TTL, 10, std::slice::from_ref(&skip))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("claimed by another"), "{err:#}");
    let next = store
        .claim_in_queue("repo:1", "lane", t, TTL, 2, &[skip])
        .await
        .unwrap();
    assert_eq!(ids(&next), ["a2", "a3"]);
    assert!(next.iter().all(|d| d.payload.is_empty()));
    let a1 = store.delivery(&a1.delivery_id).await.unwrap().unwrap();
    assert_eq!(a1.status, DeliveryStatus::Skipped);
    assert_eq!(a1.last_error.as_deref(), Some("not for us"));
    let mut a2 = next[0].clone();
    store.load_payload(&mut a2).await.unwrap();
    assert_eq!(a2.payload.len(), a2.payload_bytes);
    assert_eq!(a2.payload, "{\"n\":\"a2\"}");
    // a2 fails and waits for its retry, a3 is given back: the lane must not skip ahead.
    store
        .fail_delivery(
            a2.seq,
            "lane",
            "later",
            RetryDecision::RetryAt(Timestamp(100)),
        )
        .await
        .unwrap();
    store.release_claims(&[next[1].seq], "lane").await.unwrap();
    let next = store
        .claim_in_queue("repo:1", "lane", t, TTL, 10, &[])
        .await
        .unwrap();
    assert!(next.is_empty(), "{:?}", ids(&next));
    let again = store
        .claim_in_queue("repo:1", "lane", Timestamp(100), TTL, 10, &[])
        .await
        .unwrap();
    assert_eq!(ids(&again), ["a2", "a3", "a4"]);
    // The given-back claim did not count as an attempt.
    assert_eq!(
        again.iter().map(|d| d.attempts).collect::<Vec<_>>(),
        [2, 1, 1]
    );
}
on_both_backends!(a_lane_claims_the_next_of_its_queue_only_when_due);

/// A pull request of a fresh objective, for the follow-up rules.
async fn objective_with_pull(store: &foreman::store::Store) -> (foreman::model::ObjectiveId, i64) {
    let now = Timestamp(1_000);
    let mut tx = store.begin().await.unwrap();
    let objective = tx
        .insert_objective(&crate::agents::new_objective(7), "n0nce", now)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let pull = foreman::store::NewPull {
        objective_id: objective,
        workspace_id: None,
        session_id: None,
        repository: "octo/widgets",
        number: 8,
        branch: "foreman/7-x-s1",
        base_ref: "main",
        head_sha: "aaaa",
        state: foreman::model::pulls::PullState::Open,
        title: "Work",
        url: "https://example.com/pull/8",
        closes_issue: true,
    };
    store.upsert_pull(&pull, now).await.unwrap();
    let id = store
        .pull_by_number("octo/widgets", 8)
        .await
        .unwrap()
        .unwrap()
        .id;
    (objective, id)
}

async fn followup(
    store: &foreman::store::Store,
    objective: foreman::model::ObjectiveId,
    pull: i64,
    key: &str,
) -> foreman::store::FollowupInsert {
    let mut tx = store.begin().await.unwrap();
    let new = foreman::store::NewFollowup {
        session: foreman::store::NewSession {
            objective_id: objective,
            role: foreman::model::Role::Followup,
            agent: foreman::model::AgentKind::Command,
            title: format!("Follow-up {key}"),
            instructions: "x".to_owned(),
            spawned_by: None,
            depends_on: Vec::new(),
        },
        pull_request_id: pull,
        kind: foreman::model::FollowupKind::Ci,
        key,
    };
    let inserted = tx.insert_followup(&new, Timestamp(1_001)).await.unwrap();
    tx.commit().await.unwrap();
    inserted
}

async fn one_followup_per_key_and_never_two_live_on_a_pull_request(db: TestDb) {
    use foreman::store::FollowupInsert::{Busy, Created, Seen};
    let store = db.store().await;
    let (objective, pull) = objective_with_pull(&store).await;
    let Created(first) = followup(&store, objective, pull, "ci:a").await else {
        panic!("the first follow-up is created");
    };
    assert_eq!(followup(&store, objective, pull, "ci:b").await, Busy(first));
    store
        .set_session_status(
            first,
            foreman::model::SessionStatus::Cancelled,
            None,
            Timestamp(1_002),
        )
        .await
        .unwrap()
        .then_some(())
        .expect("the follow-up ends");
    assert_eq!(followup(&store, objective, pull, "ci:a").await, Seen);
    let Created(second) = followup(&store, objective, pull, "ci:b").await else {
        panic!("a key refused while busy may start one later");
    };
    assert_ne!(first, second);
    assert_eq!(
        store
            .followups_of(pull, foreman::model::FollowupKind::Ci)
            .await
            .unwrap(),
        2
    );
    store
        .set_session_status(
            second,
            foreman::model::SessionStatus::Cancelled,
            None,
            Timestamp(1_003),
        )
        .await
        .unwrap();

    // Racing transactions (a webhook and the reconciliation pass): one follow-up starts.
    let keys: [&'static str; 4] = ["ci:c", "conflict:c", "review:c", "ci:d"];
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let store = store.clone();
            tokio::spawn(async move { followup(&store, objective, pull, key).await })
        })
        .collect();
    let mut raced = Vec::new();
    for t in tasks {
        raced.push(t.await.unwrap());
    }
    let created = raced.iter().filter(|r| matches!(r, Created(_))).count();
    assert_eq!(created, 1, "{raced:?}");
}
on_both_backends!(one_followup_per_key_and_never_two_live_on_a_pull_request);

async fn committing_queued_work_rings_the_due_bell_and_nothing_else_does(db: TestDb) {
    use foreman::store::{AuditEntry, Thread};
    let store = db.store().await;
    let bell = store.due_bell();
    let rung = || async {
        tokio::time::timeout(Duration::from_millis(50), bell.notified())
            .await
            .is_ok()
    };
    let thread = Thread {
        objective_id: None,
        installation_id: InstallationId(1),
        repository: "octo/repo",
        issue_number: 7,
    };
    // Only written, never committed: rolled back, and nobody is woken.
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(
        &thread.reaction("eyes", "eyes-rolled-back".into()),
        Timestamp(1),
    )
    .await
    .unwrap();
    drop(tx);
    assert!(!rung().await, "a rolled-back transaction rang the bell");
    // A write that makes nothing due: no ring.
    let mut tx = store.begin().await.unwrap();
    tx.audit(&AuditEntry {
        at: Timestamp(1),
        objective_id: None,
        delivery_id: None,
        installation_id: None,
        repository_id: None,
        kind: "test".into(),
        detail: "nothing due".into(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(!rung().await, "an audit entry rang the bell");
    // An effect queued and committed: the bell rings, once the commit is done.
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(&thread.comment("hello", "reply-1".into()), Timestamp(2))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(rung().await, "a queued comment did not ring the bell");
    let due = store.due_outbox(Timestamp(3), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(due[0].body.starts_with("hello\n\n<!-- foreman:reply-1 -->"));
}
on_both_backends!(committing_queued_work_rings_the_due_bell_and_nothing_else_does);

async fn a_locked_objective_is_seen_as_its_holder_left_it(db: TestDb) {
    use foreman::model::ObjectiveStatus;
    let store = db.store().await;
    let now = Timestamp(1_000);
    let mut tx = store.begin().await.unwrap();
    let id = tx
        .insert_objective(&crate::agents::new_objective(9), "n0nce", now)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    // One transaction holds the objective and ends it...
    let mut holder = store.begin().await.unwrap();
    let held = holder.lock_objective(id).await.unwrap().unwrap();
    assert_eq!(held.status, ObjectiveStatus::Active);
    let usage = holder.objective_usage(id, Timestamp(4_000)).await.unwrap();
    assert_eq!((usage.sessions, usage.turns), (0, 0));
    assert_eq!(usage.wall, Duration::from_millis(3_000));
    // ...while another wants it: it waits, and then sees the objective ended.
    let other = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.lock_objective(id).await.unwrap().unwrap().status
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !other.is_finished(),
        "the second reader did not wait for the holder"
    );
    holder
        .set_objective_status(id, ObjectiveStatus::Cancelled, Some("test"), now)
        .await
        .unwrap();
    holder.commit().await.unwrap();
    assert_eq!(other.await.unwrap(), ObjectiveStatus::Cancelled);
}
on_both_backends!(a_locked_objective_is_seen_as_its_holder_left_it);
