//! foreman's pull requests drive their objectives. Whatever GitHub says of one — by a
//! webhook, or read back by the reconciliation pass when a webhook was lost — comes through
//! here: a merge tells (or revives) the manager and may complete the objective; a close
//! without merge makes the manager decide; a push by someone else is news; a conflict, failing
//! checks of the current head, or a review asking for changes start a follow-up. Every
//! decision rests on the pull request as it is now; the rules are in [`crate::model::pulls`].

use anyhow::{Context, Result};

use crate::agent::prompts;
use crate::engine::objective::Objectives;
use crate::engine::objective::followups;
use crate::engine::objective::lifecycle;
use crate::github::rest::PullNow;
use crate::model::FollowupKind as Kind;
use crate::model::outbox::CloseReason;
use crate::model::pulls::{
    CheckRunView, Checks, CiAction, Completion, Ending, Mergeable, PullState, checks_state,
    completion, describe_failures, ending, fenced_failures, on_failing_checks,
};
use crate::model::text::one_line;
use crate::model::{Objective, ObjectiveStatus, PullRequest, Session};
use crate::store::{FollowupInsert, PullUpdate, Thread, Tx};

/// Applies what GitHub says of one of foreman's pull requests now. Returns what happened,
/// for the audit trail.
pub async fn observe_in(
    objectives: &Objectives,
    tx: &mut Tx,
    pull: &PullRequest,
    now_is: &PullNow,
) -> Result<String> {
    record_in(objectives, tx, pull, now_is).await?;
    let mut after = pull.clone();
    if pull.state != PullState::Merged {
        after.state = now_is.state;
        after.head_sha = now_is.head_sha.clone();
    }
    after.mergeable = now_is.mergeable;
    let objective = objectives
        .store
        .objective(pull.objective_id)
        .await?
        .context("the pull request's objective is gone")?;
    let n = pull.number;
    if objective.status.is_terminal() {
        return Ok(format!("#{n} is {} (its objective has ended)", after.state));
    }
    use PullState::{Closed, Merged, Open};
    match (pull.state, after.state) {
        (Merged, _) => Ok(format!("#{n} was merged before")),
        (_, Merged) => merged_in(objectives, tx, &objective, &after).await,
        (Open, Closed) => closed_in(objectives, tx, &objective, &after, now_is.by.as_deref()).await,
        (Closed, Open) => {
            let note = format!("Pull request #{n} (\"{}\") was reopened.", after.title);
            lifecycle::tell_manager_in(objectives, tx, &objective, &note).await?;
            Ok(format!("#{n} was reopened"))
        }
        (Open, Open) => {
            let mut what = Vec::new();
            if now_is.head_sha != pull.head_sha {
                pushed_in(objectives, tx, &objective, &after).await?;
                what.push(format!("#{n} has a new head {}", now_is.head_sha));
            }
            if after.mergeable == Some(Mergeable::Conflicting) {
                what.push(conflict_in(objectives, tx, &objective, &after).await?);
            }
            Ok(if what.is_empty() {
                format!("#{n} is unchanged")
            } else {
                what.join("; ")
            })
        }
        (before, after) => Ok(format!("#{n}: {before} → {after}")),
    }
}

/// Records what GitHub says of the pull request now.
async fn record_in(
    objectives: &Objectives,
    tx: &mut Tx,
    pull: &PullRequest,
    now_is: &PullNow,
) -> Result<()> {
    let state = PullUpdate {
        state: now_is.state,
        head_sha: &now_is.head_sha,
        mergeable: now_is.mergeable,
    };
    tx.set_pull_state(pull.id, &state, objectives.clock.now())
        .await?;
    Ok(())
}

/// A merge: the objective completes if its manager said done and nothing else is open;
/// otherwise its manager hears of it — revived if it has ended, outside the respawn budget.
async fn merged_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    pull: &PullRequest,
) -> Result<String> {
    let pulls = pulls_with(objectives, objective, pull).await?;
    let n = pull.number;
    if objective.done_requested_at.is_some() && completion(&pulls) == Completion::Done {
        let reason = format!("its last pull request, #{n}, was merged");
        complete_in(objectives, tx, objective, &pulls, &reason).await?;
        return Ok(format!("#{n} was merged; the objective is done"));
    }
    tx.reset_supervision(objective.id).await?;
    let still = match completion(&pulls) {
        Completion::WaitingForMerge(open) => format!(" Still open: {}.", numbers(&open)),
        _ => String::new(),
    };
    let note = format!(
        "Pull request #{n} (\"{}\") was merged.{still} If the objective is complete, call \
         `mark_objective_done`; otherwise carry on with what is left.",
        pull.title
    );
    lifecycle::tell_manager_in(objectives, tx, objective, &note).await?;
    Ok(format!("#{n} was merged; the manager is told"))
}

/// A close without merge: the manager must decide what it means.
async fn closed_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    pull: &PullRequest,
    by: Option<&str>,
) -> Result<String> {
    tx.withdraw_done(objective.id).await?;
    let by = by.map(|b| format!(" by @{b}")).unwrap_or_default();
    let n = pull.number;
    let note = format!(
        "Pull request #{n} (\"{}\") was closed without being merged{by}. Decide what that \
         means: have the work redone and published again, or, if it is not needed, record why \
         with `abandon_pr({n}, reason)`. If only the humans can decide, ask them with \
         `ask_user`.",
        pull.title
    );
    lifecycle::tell_manager_in(objectives, tx, objective, &note).await?;
    Ok(format!(
        "#{n} was closed without merge; the manager decides"
    ))
}

/// Someone else pushed to the branch: the manager and a follow-up working on it are told.
async fn pushed_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    pull: &PullRequest,
) -> Result<()> {
    let now = objectives.clock.now();
    let n = pull.number;
    let note = format!(
        "Someone pushed to the branch of pull request #{n}: its head is now {}.",
        pull.head_sha
    );
    if let Some(manager) = live_manager(objectives, objective).await? {
        tx.push_message(manager.id, &note, now).await?;
    }
    if let Some(followup) = objectives.store.live_followup(pull.id).await? {
        let warning = format!(
            "{note} Your checkout does not have that commit: when you finish, foreman will \
             not overwrite it, so your push will be refused. Say in your result what you \
             changed, so the work can be redone on top."
        );
        tx.push_message(followup, &warning, now).await?;
    }
    Ok(())
}

/// The branch conflicts with its base: a follow-up brings it up to date, once per head.
async fn conflict_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    pull: &PullRequest,
) -> Result<String> {
    let n = pull.number;
    let key = format!("conflict:{}:{}", pull.id, pull.head_sha);
    let instructions = followups::conflict_instructions(objective, pull)?;
    Ok(
        match followups::start_in(
            objectives,
            tx,
            objective,
            pull,
            Kind::Conflict,
            &key,
            instructions,
        )
        .await?
        {
            FollowupInsert::Created(id) => {
                format!("#{n} conflicts with {}; follow-up #{id}", pull.base_ref)
            }
            FollowupInsert::Seen => format!("#{n} conflicts; this head already had its follow-up"),
            FollowupInsert::Busy(id) => format!("#{n} conflicts; follow-up #{id} works on it now"),
        },
    )
}

/// The checks of `sha` on a pull request: recorded if `sha` is still its head, and when they
/// fail, a CI follow-up (once per head, within the repository's attempts) or, past those,
/// the manager is asked.
pub async fn checks_in(
    objectives: &Objectives,
    tx: &mut Tx,
    pull: &PullRequest,
    sha: &str,
    runs: &[CheckRunView],
) -> Result<String> {
    let n = pull.number;
    if sha != pull.head_sha {
        return Ok(format!("checks of {sha}, an old head of #{n}: ignored"));
    }
    let state = checks_state(runs);
    let failures = describe_failures(runs);
    let detail = (state == Checks::Failing).then_some(failures.as_str());
    if !tx
        .set_pull_checks(pull.id, sha, state.as_str(), detail)
        .await?
    {
        return Ok(format!(
            "checks of {sha}, no longer the head of #{n}: ignored"
        ));
    }
    let objective = objectives
        .store
        .objective(pull.objective_id)
        .await?
        .context("the pull request's objective is gone")?;
    if state != Checks::Failing || pull.state != PullState::Open || objective.status.is_terminal() {
        return Ok(format!("#{n} checks {}", state.as_str()));
    }
    let attempts = objectives.store.followups_of(pull.id, Kind::Ci).await?;
    let live = objectives.store.live_followup(pull.id).await?.is_some();
    let cap = objective.config.pull_requests.ci_attempts;
    match on_failing_checks(runs, attempts, cap, live) {
        CiAction::Wait if live => Ok(format!(
            "#{n} checks failing; a follow-up already works on it"
        )),
        CiAction::Wait => Ok(format!(
            "#{n} checks failing; waiting for the rest to finish"
        )),
        CiAction::FollowUp => {
            let key = format!("ci:{}:{sha}", pull.id);
            let instructions = prompts::followup_ci(pull, &fenced_failures(&failures))?;
            match followups::start_in(
                objectives,
                tx,
                &objective,
                pull,
                Kind::Ci,
                &key,
                instructions,
            )
            .await?
            {
                FollowupInsert::Created(id) => {
                    Ok(format!("#{n} checks failing; CI follow-up #{id}"))
                }
                FollowupInsert::Seen => Ok(format!(
                    "#{n} checks failing; this head already had its follow-up"
                )),
                FollowupInsert::Busy(id) => Ok(format!(
                    "#{n} checks failing; follow-up #{id} works on it now"
                )),
            }
        }
        CiAction::AskManager => {
            if !tx
                .claim_key(&format!("ci-cap:{}:{sha}", pull.id), objectives.clock.now())
                .await?
            {
                return Ok(format!("#{n} checks failing; the manager was told"));
            }
            let note = format!(
                "The checks of pull request #{n} still fail after {attempts} CI follow-ups, so \
                 foreman starts no more:\n\n{}\n\nDecide what to do: spawn a worker \
                 with a different approach, or ask the humans with `ask_user`.",
                fenced_failures(&failures)
            );
            lifecycle::tell_manager_in(objectives, tx, &objective, &note).await?;
            Ok(format!(
                "#{n} checks failing after {attempts} follow-ups; the manager is asked"
            ))
        }
    }
}

/// Review feedback on a pull request, each item with its key (a review or a review comment):
/// items not seen before go to the follow-up working on it, or start a review follow-up.
pub async fn review_in(
    objectives: &Objectives,
    tx: &mut Tx,
    pull: &PullRequest,
    items: &[(String, String)],
) -> Result<String> {
    let now = objectives.clock.now();
    let n = pull.number;
    let mut fresh = Vec::new();
    for (key, text) in items {
        if tx.claim_key(key, now).await? {
            fresh.push((key.as_str(), text.as_str()));
        }
    }
    let Some((first, _)) = fresh.first() else {
        return Ok(format!("review feedback on #{n} was handled before"));
    };
    let objective = objectives
        .store
        .objective(pull.objective_id)
        .await?
        .context("the pull request's objective is gone")?;
    if objective.status.is_terminal() || pull.state != PullState::Open {
        return Ok(format!(
            "review feedback on #{n}, which foreman no longer works on"
        ));
    }
    let review: Vec<&str> = fresh.iter().map(|(_, t)| *t).collect();
    let review = review.join("\n\n");
    let key = format!("review:{}:{first}", pull.id);
    let instructions = prompts::followup_review(pull, &review)?;
    let kind = Kind::Review;
    Ok(
        match followups::start_in(objectives, tx, &objective, pull, kind, &key, instructions)
            .await?
        {
            FollowupInsert::Created(id) => format!("review feedback on #{n}; follow-up #{id}"),
            FollowupInsert::Seen => format!("review feedback on #{n} was handled before"),
            FollowupInsert::Busy(followup) => {
                // It joins the follow-up already working on the pull request.
                let note = format!("More review feedback on pull request #{n}:\n\n{review}");
                tx.push_message(followup, &note, now).await?;
                format!("review feedback on #{n} passed to follow-up #{followup}")
            }
        },
    )
}

/// Ends an objective done: its state, a summary comment that says honestly whether anything
/// merged, and the issue closed as completed (when a merge did not close it already), closed as
/// not planned (nothing merged, and the manager said no change is needed), or left open for
/// the humans (nothing merged).
pub async fn complete_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    pulls: &[PullRequest],
    reason: &str,
) -> Result<bool> {
    if !lifecycle::end_in(objectives, tx, objective, ObjectiveStatus::Done, reason).await? {
        return Ok(false);
    }
    let Some(thread) = Thread::of(objective) else {
        return Ok(true);
    };
    let now = objectives.clock.now();
    let summary = objective
        .summary
        .as_deref()
        .map(|s| one_line(s, 2000))
        .unwrap_or_else(|| "The work is complete.".to_owned());
    let merged: Vec<u64> = pulls
        .iter()
        .filter(|p| p.state == PullState::Merged)
        .map(|p| p.number)
        .collect();
    let merged = if merged.is_empty() {
        String::new()
    } else {
        format!("\n\nMerged: {}.", numbers(&merged))
    };
    let ending = ending(pulls, objective.no_change_needed);
    let headline = match ending {
        Ending::Merged { .. } => "✅ **foreman** has finished this issue.",
        Ending::NoChange => {
            "☑️ **foreman** has finished this issue: no change is needed, so it is closed as \
             not planned."
        }
        Ending::NothingMerged => {
            "⚪ **foreman** has stopped without a merged change; the issue stays open for you."
        }
    };
    let marker = format!("summary-{}", objective.id);
    let body = format!("{headline}\n\n{summary}{merged}");
    tx.enqueue(&thread.comment(&body, marker), now).await?;
    let end = crate::model::markers::objective_marker("end", objective.id, &objective.marker_nonce);
    let close = format!("close-{}", objective.id);
    match ending {
        Ending::Merged { close: must_close } => {
            tx.enqueue(&thread.reaction("rocket", end), now).await?;
            if must_close {
                tx.enqueue(&thread.close_issue(CloseReason::Completed, close), now)
                    .await?;
            }
        }
        Ending::NoChange => {
            tx.enqueue(&thread.close_issue(CloseReason::NotPlanned, close), now)
                .await?;
        }
        Ending::NothingMerged => {}
    }
    Ok(true)
}

/// The objective's pull requests that say `Closes #N` and are merged, each with what GitHub
/// says of it now when foreman had it as open (its merge webhook may be late or lost).
pub async fn merged_closers(
    objectives: &Objectives,
    client: &octocrab::Octocrab,
    objective: &Objective,
) -> Result<Vec<(PullRequest, Option<PullNow>)>> {
    let mut merged = Vec::new();
    for pull in objectives.store.pulls_of(objective.id).await? {
        if !pull.closes_issue {
            continue;
        }
        if pull.state == PullState::Merged {
            merged.push((pull, None));
        } else if pull.state == PullState::Open {
            let now_is =
                crate::github::rest::pull(client, &objective.repository, pull.number).await?;
            if now_is.state == PullState::Merged {
                merged.push((pull, Some(now_is)));
            }
        }
    }
    Ok(merged)
}

/// The issue was closed by merged pull requests (`Closes #N`; `merged` pairs each with what
/// GitHub says now, for one foreman has not heard is merged): the objective is done.
pub async fn closed_by_merge_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    merged: &[(PullRequest, Option<PullNow>)],
) -> Result<()> {
    let mut pulls = objectives.store.pulls_of(objective.id).await?;
    for (pull, now_is) in merged {
        if let Some(now_is) = now_is {
            record_in(objectives, tx, pull, now_is).await?;
        }
        for p in &mut pulls {
            if p.id == pull.id {
                p.state = PullState::Merged;
            }
        }
    }
    let by: Vec<u64> = merged.iter().map(|(p, _)| p.number).collect();
    let reason = format!("{} closed the issue", numbers(&by));
    complete_in(objectives, tx, objective, &pulls, &reason).await?;
    Ok(())
}

/// `abandon_pr`: the manager records that a pull request closed without merge is not
/// needed. The objective completes if that was all it waited for.
pub async fn abandon(
    objectives: &Objectives,
    caller: &Session,
    number: u64,
    reason: &str,
) -> Result<String> {
    let objective = objectives
        .store
        .objective(caller.objective_id)
        .await?
        .context("your objective is gone")?;
    let pull = match objectives
        .store
        .pull_by_number(&objective.repository, number)
        .await?
    {
        Some(p) if p.objective_id == objective.id => p,
        _ => crate::refuse!("#{number} is not one of your objective's pull requests"),
    };
    match pull.state {
        PullState::Closed => {}
        PullState::Merged => crate::refuse!("#{number} was merged; there is nothing to abandon"),
        PullState::Open => crate::refuse!(
            "#{number} is still open; ask the humans to close it (or leave it for them to \
             merge) — foreman does not close pull requests"
        ),
    }
    let decision = format!("abandoned by the manager: {reason}");
    let mut tx = objectives.store.begin().await?;
    tx.set_pull_decision(pull.id, &decision).await?;
    let mut decided = pull.clone();
    decided.decision = Some(decision);
    let pulls = pulls_with(objectives, &objective, &decided).await?;
    let done = objective.done_requested_at.is_some()
        && completion(&pulls) == Completion::Done
        && complete_in(
            objectives,
            &mut tx,
            &objective,
            &pulls,
            "its pull requests are settled",
        )
        .await?;
    tx.commit().await?;
    Ok(if done {
        format!("#{number} is recorded as abandoned; the objective is done.")
    } else {
        format!("#{number} is recorded as abandoned.")
    })
}

/// The objective's pull requests, with `changed` as it is now (the caller's transaction
/// holds the change; reads see what is committed).
async fn pulls_with(
    objectives: &Objectives,
    objective: &Objective,
    changed: &PullRequest,
) -> Result<Vec<PullRequest>> {
    let mut pulls = objectives.store.pulls_of(objective.id).await?;
    for p in &mut pulls {
        if p.id == changed.id {
            *p = changed.clone();
        }
    }
    Ok(pulls)
}

async fn live_manager(objectives: &Objectives, objective: &Objective) -> Result<Option<Session>> {
    Ok(match objective.manager {
        Some(id) => objectives
            .store
            .session(id)
            .await?
            .filter(|m| !m.status.is_terminal()),
        None => None,
    })
}

fn numbers(list: &[u64]) -> String {
    list.iter()
        .map(|n| format!("#{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
