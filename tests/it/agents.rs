//! The agent runtime end to end: real child processes (the scripted agent) speaking MCP over
//! HTTP to the real server, the real scheduler, both backends.

use std::time::Duration;

use foreman::engine::objective::{lifecycle, requests};
use foreman::engine::runtime::turns;
use foreman::model::{ObjectiveId, ObjectiveStatus, Role, Session, SessionId, SessionStatus};
use foreman::store::{NewObjective, Store};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestDb, TestServer, eventually, serve_args, write_plan};

pub fn new_objective(issue: u64) -> NewObjective {
    NewObjective {
        installation_id: None,
        repository_id: Some(1),
        repository: "octo/widgets".into(),
        issue_number: issue,
        title: format!("Issue {issue}"),
        body: "Make the widgets work.".into(),
        author: "alice".into(),
        author_permission: "write".into(),
        budget: foreman::model::Budget {
            sessions: 20,
            turns: 200,
            wall: Duration::from_secs(3600),
            cost_micros: None,
        },
        config: Default::default(),
        trigger_key: None,
        previous: None,
        started_by: None,
    }
}

pub async fn session_titled(store: &Store, objective: ObjectiveId, title: &str) -> Option<Session> {
    store
        .sessions_of(objective)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.title == title)
}

/// Waits until the session titled `title` reaches `status`.
pub async fn reaches(
    store: &Store,
    objective: ObjectiveId,
    title: &str,
    status: SessionStatus,
) -> Session {
    eventually(&format!("{title} to be {}", status.as_str()), || async {
        session_titled(store, objective, title)
            .await
            .filter(|s| s.status == status)
    })
    .await
}

/// What a session's scripted agent saw and did, from its state directory.
pub fn state_file(db: &TestDb, session: SessionId, name: &str) -> String {
    let path = db
        .dir()
        .join("work/sessions")
        .join(session.to_string())
        .join("state")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_default()
}

fn calls(db: &TestDb, session: SessionId) -> Vec<Value> {
    state_file(db, session, "calls.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn a_manager_runs_two_dependent_workers_to_done(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [
                {"calls": [
                    {"tool": "spawn_worker", "args": {"title": "Build A", "instructions": "Make part A."}, "save": "a"},
                    {"tool": "spawn_worker", "args": {"title": "Build B", "instructions": "Make part B on top of A.", "depends_on": ["$a"]}, "save": "b"},
                    {"tool": "list_workers"}
                ]},
                {"when": "\"Build B\" succeeded", "calls": [
                    {"tool": "mark_objective_done", "args": {"summary": "A and B are built."}}
                ]},
                {"when": "\"Build A\" succeeded"}
            ],
            "workers": {
                "Build A": {"calls": [{"tool": "report_result", "args": {"summary": "A is built"}}]},
                "Build B": {"calls": [
                    {"tool": "note", "args": {"text": "working on B"}},
                    {"tool": "report_result", "args": {"summary": "B is built"}}
                ]}
            }
        }),
    );
    let server = TestServer::start(&serve_args(&db)).await;
    let engine = &server.running.engine;
    let (objective, manager) = lifecycle::start(&engine.objectives, &new_objective(7))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    eventually("the objective to be done", || async {
        let o = store.objective(objective).await.unwrap().unwrap();
        (o.status == ObjectiveStatus::Done).then_some(())
    })
    .await;
    let a = reaches(store, objective, "Build A", SessionStatus::Succeeded).await;
    let b = reaches(store, objective, "Build B", SessionStatus::Succeeded).await;
    let manager_session = eventually("the manager to finish", || async {
        store
            .session(manager)
            .await
            .unwrap()
            .filter(|s| s.status == SessionStatus::Succeeded)
    })
    .await;
    assert_eq!(a.result.as_deref(), Some("A is built"));
    assert_eq!(b.result.as_deref(), Some("B is built"));
    assert_eq!(b.summary.as_deref(), Some("working on B"));
    assert_eq!(b.depends_on, [a.id]);
    assert_eq!((a.spawned_by, b.spawned_by), (Some(manager), Some(manager)));
    assert_eq!(
        store
            .objective(objective)
            .await
            .unwrap()
            .unwrap()
            .summary
            .as_deref(),
        Some("A and B are built.")
    );
    assert!(
        manager_session.turns >= 2,
        "the manager was told of the results"
    );
    let prompts = state_file(&db, manager, "prompts.txt");
    assert!(
        prompts.contains(&format!(
            "Worker #{} \"Build A\" succeeded. Result:\n\nA is built",
            a.id
        )),
        "{prompts}"
    );
    assert!(
        prompts.contains(&format!(
            "Worker #{} \"Build B\" succeeded. Result:\n\nB is built",
            b.id
        )),
        "{prompts}"
    );
    assert!(
        prompts.contains("<<<USER CONTENT"),
        "the issue is fenced:\n{prompts}"
    );
    // B ran only after A had finished: A's prompt file existed before B's first prompt.
    let worker_prompt = state_file(&db, b.id, "prompts.txt");
    assert!(
        worker_prompt.contains("Your task: Build B")
            && worker_prompt.contains("Make part B on top of A.")
    );
    let manager_calls = calls(&db, manager);
    let listed = manager_calls
        .iter()
        .find(|c| c["tool"] == "list_workers")
        .unwrap();
    assert!(
        listed["text"]
            .as_str()
            .unwrap()
            .contains("Build B (after #"),
        "{listed}"
    );
    // Transcripts are stored, tokens never.
    let transcript = store.transcript(b.id).await.unwrap();
    assert!(
        transcript
            .iter()
            .any(|l| l.line.contains("report_result -> Result recorded")),
        "{transcript:?}"
    );
    server.shutdown().await;
}
on_both_backends!(a_manager_runs_two_dependent_workers_to_done);

async fn roles_and_objectives_bound_what_a_token_can_do(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [{"calls": [
                {"tool": "spawn_worker", "args": {"title": "Sneaky", "instructions": "Try manager tools."}},
                {"tool": "message_worker", "args": {"worker": 999_999, "message": "hi"}, "expect_error": true},
                {"tool": "spawn_worker", "args": {"title": "x".repeat(201), "instructions": "too long"}, "expect_error": true},
                {"tool": "spawn_worker", "args": {"title": "Bad", "instructions": "x", "bogus": 1}, "expect_error": true}
            ]}],
            "workers": {"Sneaky": {"calls": [
                {"tool": "spawn_worker", "args": {"title": "escalate", "instructions": "x"}, "expect_error": true},
                {"tool": "mark_objective_done", "args": {"summary": "x"}, "expect_error": true},
                {"tool": "report_result", "args": {"summary": "stayed in my lane"}}
            ]}}
        }),
    );
    let server = TestServer::start(&serve_args(&db)).await;
    let engine = &server.running.engine;
    let (objective, manager) = lifecycle::start(&engine.objectives, &new_objective(8))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    let worker = reaches(store, objective, "Sneaky", SessionStatus::Succeeded).await;
    assert_eq!(worker.result.as_deref(), Some("stayed in my lane"));
    let worker_calls = calls(&db, worker.id);
    let refused = &worker_calls[0];
    assert_eq!(refused["error"], true);
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("`spawn_worker` is not a tool of a worker"),
        "{refused}"
    );
    assert_eq!(session_titled(store, objective, "escalate").await, None);
    let transcript = state_file(&db, worker.id, "prompts.txt");
    assert!(!transcript.is_empty());
    let worker_tools: Vec<String> = store
        .transcript(worker.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.line.starts_with("tools: "))
        .map(|l| l.line)
        .collect();
    assert_eq!(worker_tools, ["tools: ask_user,report_result,note"]);

    // The manager's reference to a session of another objective is refused.
    let (other, _) = lifecycle::start(&engine.objectives, &new_objective(9))
        .await
        .unwrap()
        .unwrap();
    let manager_calls = eventually("the manager's calls", || async {
        let c = calls(&db, manager);
        (c.len() >= 4).then_some(c)
    })
    .await;
    assert!(
        manager_calls[1]["text"]
            .as_str()
            .unwrap()
            .contains("there is no worker 999999")
    );
    assert!(
        manager_calls[2]["text"]
            .as_str()
            .unwrap()
            .contains("`title` is 201 characters; the limit is 200")
    );
    assert!(
        manager_calls[3]["text"]
            .as_str()
            .unwrap()
            .contains("unknown field `bogus`")
    );
    let other_manager = store
        .objective(other)
        .await
        .unwrap()
        .unwrap()
        .manager
        .unwrap();
    let caller = store.session(manager).await.unwrap().unwrap();
    let err = requests::message_worker(&engine.objectives, &caller, other_manager, "hello")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not a worker of your objective"),
        "{err}"
    );

    // A finished session's token is revoked: the server refuses it.
    let token = state_file(&db, worker.id, "token");
    assert!(token.starts_with("fm_"));
    let response = server
        .client
        .post(server.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let no_token = server
        .client
        .post(server.url("/mcp"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    // No token is ever stored, only its hash.
    let stored = store.transcript(worker.id).await.unwrap();
    assert!(stored.iter().all(|l| !l.line.contains(token.as_str())));
    server.shutdown().await;
}
on_both_backends!(roles_and_objectives_bound_what_a_token_can_do);

async fn cancel_kills_the_whole_process_group(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [{"calls": [{"tool": "spawn_worker", "args": {"title": "Forever", "instructions": "Run long."}}]}],
            "workers": {"Forever": {"spawn_sleeper": 300, "sleep": 300}}
        }),
    );
    let server = TestServer::start(&serve_args(&db)).await;
    let engine = &server.running.engine;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(10))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    let worker = reaches(store, objective, "Forever", SessionStatus::Running).await;
    // The worker and the sleeper it started (whatever their pids in its sandbox).
    let checkout = crate::support::checkout_of(&db, worker.id);
    eventually("the grandchild to start", || async {
        (!state_file(&db, worker.id, "sleeper.pid").is_empty()).then_some(())
    })
    .await;
    let started = crate::support::processes_in(&checkout);
    assert!(started.len() >= 2, "{started:?}");
    assert!(
        turns::cancel(&engine.runtime, worker.id, "test cancel")
            .await
            .unwrap()
    );
    eventually("the grandchild to die", || async {
        crate::support::processes_in(&checkout)
            .is_empty()
            .then_some(())
    })
    .await;
    let cancelled = store.session(worker.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, SessionStatus::Cancelled);
    assert_eq!(cancelled.status_reason.as_deref(), Some("test cancel"));
    // Cancelling again changes nothing; the late end of the killed turn is ignored.
    assert!(
        !turns::cancel(&engine.runtime, worker.id, "again")
            .await
            .unwrap()
    );
    eventually("the killed turn to end", || async {
        (!turns::is_local(&engine.runtime, worker.id)).then_some(())
    })
    .await;
    assert_eq!(
        store.session(worker.id).await.unwrap().unwrap().status,
        SessionStatus::Cancelled
    );
    server.shutdown().await;
}
on_both_backends!(cancel_kills_the_whole_process_group);

async fn failures_timeouts_and_dependencies(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [{"calls": [
                {"tool": "spawn_worker", "args": {"title": "Crash", "instructions": "x"}, "save": "crash"},
                {"tool": "spawn_worker", "args": {"title": "After crash", "instructions": "x", "depends_on": ["$crash"]}},
                {"tool": "spawn_worker", "args": {"title": "Slow", "instructions": "x"}}
            ]}],
            "workers": {
                "Crash": {"print": ["about to fail"], "exit": 5},
                "Slow": {"sleep": 30},
                "After crash": {"calls": [{"tool": "report_result", "args": {"summary": "never"}}]}
            }
        }),
    );
    let mut args = serve_args(&db);
    // Long enough for a manager's turn on a loaded machine; "Slow" sleeps far past it.
    args.agents.turn_timeout = Duration::from_secs(6);
    let server = TestServer::start(&args).await;
    let engine = &server.running.engine;
    let (objective, manager) = lifecycle::start(&engine.objectives, &new_objective(11))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    let crash = reaches(store, objective, "Crash", SessionStatus::Failed).await;
    assert!(
        crash
            .status_reason
            .as_deref()
            .unwrap()
            .contains("exit status: 5"),
        "{:?}",
        crash.status_reason
    );
    let after = reaches(store, objective, "After crash", SessionStatus::Cancelled).await;
    assert_eq!(
        after.status_reason,
        Some(format!("its dependency #{} failed", crash.id))
    );
    assert_eq!(after.turns, 0, "a dependent of a failed worker never runs");
    let slow = reaches(store, objective, "Slow", SessionStatus::Failed).await;
    assert!(
        slow.status_reason
            .as_deref()
            .unwrap()
            .contains("turn timeout (6s)"),
        "{:?}",
        slow.status_reason
    );
    let told = eventually("the manager to hear of all three", || async {
        let prompts = state_file(&db, manager, "prompts.txt");
        (prompts.contains("\"Slow\" failed") && prompts.contains("\"After crash\" was cancelled"))
            .then_some(prompts)
    })
    .await;
    assert!(
        told.contains("\"Crash\" failed: the agent exited with exit status: 5"),
        "{told}"
    );
    server.shutdown().await;
}
on_both_backends!(failures_timeouts_and_dependencies);

async fn a_reached_budget_stops_new_work_and_asks_once(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [{"calls": [
                {"tool": "spawn_worker", "args": {"title": "One", "instructions": "x"}},
                {"tool": "spawn_worker", "args": {"title": "Two", "instructions": "x"}, "expect_error": true},
                {"tool": "spawn_worker", "args": {"title": "Three", "instructions": "x"}, "expect_error": true}
            ]}],
            "default_worker": {"calls": [{"tool": "report_result", "args": {"summary": "done"}}]}
        }),
    );
    let server = TestServer::start(&serve_args(&db)).await;
    let engine = &server.running.engine;
    let mut objective = new_objective(12);
    objective.budget.sessions = 2;
    let (objective, manager) = lifecycle::start(&engine.objectives, &objective)
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    let calls = eventually("the manager's calls", || async {
        let c = calls(&db, manager);
        (c.len() >= 3).then_some(c)
    })
    .await;
    assert!(
        calls[1]["text"]
            .as_str()
            .unwrap()
            .contains("budget is reached (sessions: 2 of 2)"),
        "{:?}",
        calls[1]
    );
    let o = store.objective(objective).await.unwrap().unwrap();
    assert_eq!(o.status, ObjectiveStatus::Waiting);
    assert_eq!(o.budget_blocked.as_deref(), Some("sessions: 2 of 2"));
    let questions = store.questions_of(objective).await.unwrap();
    assert_eq!(questions.len(), 1, "asked once: {questions:?}");
    assert_eq!(
        questions[0].kind,
        foreman::model::question::QuestionKind::Budget
    );
    assert_eq!(session_titled(store, objective, "Two").await, None);
    server.shutdown().await;
}
on_both_backends!(a_reached_budget_stops_new_work_and_asks_once);

async fn a_question_from_a_worker_leaves_it_waiting(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [{"calls": [{"tool": "spawn_worker", "args": {"title": "Unsure", "instructions": "x"}}]}],
            "workers": {"Unsure": [
                {"calls": [{"tool": "ask_user", "args": {"question": "Which colour?"}}]},
                {"expect_prompt": "Blue", "calls": [{"tool": "report_result", "args": {"summary": "painted blue"}}]}
            ]}
        }),
    );
    let server = TestServer::start(&serve_args(&db)).await;
    let engine = &server.running.engine;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(13))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    let worker = reaches(store, objective, "Unsure", SessionStatus::Waiting).await;
    assert_eq!(
        store.objective(objective).await.unwrap().unwrap().status,
        ObjectiveStatus::Waiting
    );
    let questions = store.questions_of(objective).await.unwrap();
    assert_eq!(
        (questions[0].text.as_str(), questions[0].session_id),
        ("Which colour?", Some(worker.id))
    );
    // An answer (delivered by the Questions work) is a message for the session's next turn.
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.answer_question(questions[0].id, "Blue", "alice", None, engine.clock.now())
            .await
            .unwrap()
    );
    tx.push_message(worker.id, "Answer: Blue", engine.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.tick_bell.notify_one();
    let done = reaches(store, objective, "Unsure", SessionStatus::Succeeded).await;
    let transcript = store.transcript(done.id).await.unwrap();
    assert_eq!(
        done.result.as_deref(),
        Some("painted blue"),
        "{transcript:#?}"
    );
    assert_eq!(done.role, Role::Worker);
    server.shutdown().await;
}
on_both_backends!(a_question_from_a_worker_leaves_it_waiting);

async fn a_restart_resumes_interrupted_sessions(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Long", "instructions": "Take your time."}}]},
                {"when": "\"Long\" succeeded", "calls": [{"tool": "mark_objective_done", "args": {"summary": "survived a restart"}}]}
            ],
            "workers": {"Long": [
                {"print": ["working"], "sleep": 300},
                {"expect_prompt": "foreman restarted", "calls": [{"tool": "report_result", "args": {"summary": "resumed fine"}}]}
            ]}
        }),
    );
    let env = [("FOREMAN_INSTANCE_ID", "restart-test")];
    let first = crate::support::Process::serve_scripted(&db, &env).await;
    let (store, engine) = crate::support::engine_on(&db).await;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(14))
        .await
        .unwrap()
        .unwrap();
    let worker = reaches(&store, objective, "Long", SessionStatus::Running).await;
    eventually("the worker's first turn to start", || async {
        state_file(&db, worker.id, "prompts.txt")
            .contains("=== turn 0")
            .then_some(())
    })
    .await;
    let first_log = first.log.clone();
    first.kill().await;
    let first_log = first_log.lock().unwrap().clone();

    let second = crate::support::Process::serve_scripted(&db, &env).await;
    let done = tokio::time::timeout(crate::support::EVENTUALLY, async {
        loop {
            let o = store.objective(objective).await.unwrap().unwrap();
            let w = store.session(worker.id).await.unwrap().unwrap();
            if o.status == ObjectiveStatus::Done && w.status.is_terminal() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let resumed = store.session(worker.id).await.unwrap().unwrap();
    if done.is_err() || resumed.result.is_none() {
        panic!(
            "the worker after the restart: {resumed:#?}\n--- its prompts:\n{}\n--- first server:\n{}\n--- second server:\n{}",
            state_file(&db, worker.id, "prompts.txt"),
            first_log,
            second.log.lock().unwrap(),
        );
    }
    assert_eq!(resumed.status, SessionStatus::Succeeded);
    assert_eq!(resumed.result.as_deref(), Some("resumed fine"));
    assert_eq!(resumed.recoveries, 1);
    assert_eq!(resumed.turns, 2);
    assert!(
        state_file(&db, worker.id, "prompts.txt").contains("=== turn 1 ===\nforeman restarted")
    );
    second.terminate().await;
}
on_both_backends!(a_restart_resumes_interrupted_sessions);

async fn comments_are_posted_once_even_when_a_response_is_lost(db: TestDb) {
    let fake = crate::support::fake_github::FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, "octo/widgets");
    let issue = fake.create_issue("octo/widgets", "alice", "Widgets", "They break.");
    // Labelled, as an objective's issue is: reconciliation ends one whose label is gone.
    fake.add_label("octo/widgets", issue, "foreman");
    write_plan(
        &db,
        &json!({"manager": [
            {"calls": []},
            {"when": "Go on", "calls": [
                {"tool": "comment_issue", "args": {"body": "Looking into it."}},
                {"tool": "comment_issue", "args": {"body": "Second thoughts."}}
            ]}
        ]}),
    );
    let mut args = serve_args(&db);
    crate::support::use_fake_github(&mut args, &fake);
    let server = TestServer::start(&args).await;
    let mut objective = new_objective(issue);
    objective.installation_id = Some(foreman::model::InstallationId(installation));
    let (objective, manager) = lifecycle::start(&server.running.engine.objectives, &objective)
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    eventually(
        "the status comment posted and the manager's first turn over",
        || async {
            let posted = store
                .objective(objective)
                .await
                .unwrap()
                .unwrap()
                .status_comment_id;
            let idle = store.session(manager).await.unwrap().unwrap().status == SessionStatus::Idle;
            posted.filter(|_| idle)
        },
    )
    .await;
    // The first post is applied but its response lost; the next one fails twice outright.
    let path = format!("/repos/octo/widgets/issues/{issue}/comments");
    fake.drop_response_next("POST", &path);
    fake.fail_next("POST", &path, 500, 2);
    let posts_before = fake.count("POST", &path);
    let engine = &server.running.engine;
    let mut tx = store.begin().await.unwrap();
    tx.push_message(manager, "Go on.", engine.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.tick_bell.notify_one();
    let comment_items = || async {
        let items = store.outbox_of(objective).await.unwrap();
        items
            .into_iter()
            .filter(|i| i.kind == foreman::store::OutboxKind::Comment)
            .collect::<Vec<_>>()
    };
    let items = eventually("both comments to be posted", || async {
        let items = comment_items().await;
        (items.len() == 2
            && items
                .iter()
                .all(|i| i.status == foreman::model::outbox::OutboxStatus::Done))
        .then_some(items)
    })
    .await;
    let comments: Vec<_> = fake
        .comments("octo/widgets", issue)
        .into_iter()
        .filter(|c| !c.body.contains("foreman:status-"))
        .collect();
    let bodies: Vec<&str> = comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(comments.len(), 2, "{bodies:?}");
    assert!(bodies[0].starts_with("Looking into it.") && bodies[1].starts_with("Second thoughts."));
    for (comment, item) in comments.iter().zip(&items) {
        assert!(
            comment
                .body
                .contains(&format!("<!-- foreman:{} -->", item.marker))
        );
        assert_eq!(comment.author, fake.bot_login());
        assert_eq!(item.github_id, Some(comment.id));
    }
    assert_eq!((items[0].attempts, items[1].attempts), (2, 3), "{items:?}");
    assert_eq!(
        fake.count("POST", &path) - posts_before,
        4,
        "one lost, two refused, one posted"
    );
    server.shutdown().await;
}
on_both_backends!(comments_are_posted_once_even_when_a_response_is_lost);
