//! The rules of workspace GC, as pure functions of plain data and `now`: which checkouts can go,
//! what must be true of a checkout's git state before it goes, and when a pass is due.
//!
//! A checkout goes once nothing can need it any more. Nothing needs it when no live session
//! works in it, holds it, or depends (directly or through other sessions) on a session whose
//! checkout it is — dependents inherit their dependency's checkout — and either its objective
//! has ended, or its objective is still going but its work is in pull requests that are all
//! merged or closed, or its session finished having published nothing. Whatever the rule, a
//! checkout holding work that exists nowhere else (uncommitted changes, commits no upstream
//! ref reaches) is kept: that is checked with git, under a claim, just before removal.

use super::pulls::PullState;
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};
use std::time::Duration;

use super::{
    InstallationId, ObjectiveId, ObjectiveStatus, SessionId, SessionStatus, Timestamp, WorkspaceId,
    WorkspaceStatus,
};

/// A claim of a workspace by a GC pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Unique per process: a claim left by an earlier life of this instance is not this one.
    pub token: String,
    /// The instance that took it.
    pub by: String,
    pub at: Timestamp,
}

/// A workspace GC may act on (one not archived yet), with what GC needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcWorkspace {
    pub id: WorkspaceId,
    pub objective_id: ObjectiveId,
    pub objective_status: ObjectiveStatus,
    pub installation_id: Option<InstallationId>,
    pub created_by: Option<SessionId>,
    pub repository: String,
    pub target: String,
    pub path: String,
    pub branch: Option<String>,
    pub base_ref: String,
    pub base_sha: Option<String>,
    pub status: WorkspaceStatus,
    pub holder: Option<SessionId>,
    pub updated_at: Timestamp,
    /// Set while a pass is reclaiming it.
    pub claim: Option<Claim>,
    /// The decision to remove it is final and removal has begun.
    pub removing: bool,
    /// Why GC last could not reclaim it.
    pub note: Option<String>,
}

/// A session, as far as GC is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSession {
    pub id: SessionId,
    pub status: SessionStatus,
    pub workspace_id: Option<WorkspaceId>,
    pub depends_on: Vec<SessionId>,
}

/// A pull request made from a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPull {
    pub workspace_id: WorkspaceId,
    pub number: u64,
    pub state: PullState,
    pub head_sha: String,
}

/// What a pass sees: the workspaces not archived, the sessions of their objectives (and any
/// session holding one), and their pull requests.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub workspaces: Vec<GcWorkspace>,
    pub sessions: Vec<GcSession>,
    pub pulls: Vec<GcPull>,
}

/// What the git state of a checkout must show before it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing: the decision is already final, or nobody ever worked in it.
    Nothing,
    /// Its session published nothing: no changes, no commits beyond its base.
    NothingPublished,
    /// Its work is upstream: no changes, no commit that no upstream ref reaches.
    NothingUnpushed,
}

/// What to do with one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Leave it: something needs it.
    Keep(String),
    /// Another pass is reclaiming it right now.
    Busy,
    /// Reclaim it if its git state passes `check`.
    Reclaim { check: Check, why: String },
}

/// The parameters of [`decide`].
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    pub now: Timestamp,
    /// This pass's instance and claim token.
    pub by: &'a str,
    pub token: &'a str,
    /// A claim older than this is abandoned (its pass died) and may be taken over.
    pub claim_stale_after: Duration,
    /// A workspace still `preparing` this long after its last change, by a session that has
    /// ended, was abandoned.
    pub abandoned_after: Duration,
}

/// Decides, for every workspace in the snapshot, whether to keep it or try to reclaim it.
pub fn decide(s: &Snapshot, rules: &Rules<'_>) -> Vec<(WorkspaceId, Plan)> {
    let sessions: HashMap<SessionId, &GcSession> = s.sessions.iter().map(|x| (x.id, x)).collect();
    let live = |id: SessionId| sessions.get(&id).is_none_or(|x| !x.status.is_terminal());
    let protected = protected(s, &sessions);
    let mut paths: HashMap<(&str, &str), Vec<WorkspaceId>> = HashMap::new();
    for w in &s.workspaces {
        paths.entry((&w.target, &w.path)).or_default().push(w.id);
    }
    s.workspaces
        .iter()
        .map(|w| {
            let plan = if claimed_by_another(w, rules) {
                Plan::Busy
            } else if w.removing {
                Plan::Reclaim {
                    check: Check::Nothing,
                    why: "finishing a removal begun earlier".to_owned(),
                }
            } else if let Some(why) = protected.get(&w.id) {
                Plan::Keep(why.clone())
            } else if let Some(holder) = w.holder.filter(|h| live(*h)) {
                Plan::Keep(format!("session #{holder} holds it"))
            } else if let Some(other) = paths[&(w.target.as_str(), w.path.as_str())]
                .iter()
                .find(|o| **o != w.id)
            {
                Plan::Keep(format!("its directory is also workspace #{other}'s"))
            } else {
                plan_for(s, w, rules, &live)
            };
            (w.id, plan)
        })
        .collect()
}

/// The plan for a workspace nothing live references.
fn plan_for(
    s: &Snapshot,
    w: &GcWorkspace,
    rules: &Rules<'_>,
    live: &dyn Fn(SessionId) -> bool,
) -> Plan {
    if w.status == WorkspaceStatus::Preparing {
        return if rules.now.since(w.updated_at) >= rules.abandoned_after {
            Plan::Reclaim {
                check: Check::Nothing,
                why: "it was abandoned while being prepared".to_owned(),
            }
        } else {
            Plan::Keep("it is being prepared".to_owned())
        };
    }
    if w.objective_status.is_terminal() {
        return Plan::Reclaim {
            check: Check::NothingUnpushed,
            why: format!("its objective is {}", w.objective_status.as_str()),
        };
    }
    if let Some(creator) = w.created_by.filter(|c| live(*c)) {
        return Plan::Keep(format!("its session #{creator} is live"));
    }
    let pulls: Vec<&GcPull> = s.pulls.iter().filter(|p| p.workspace_id == w.id).collect();
    if let Some(open) = pulls.iter().find(|p| p.state == PullState::Open) {
        return Plan::Keep(format!("its pull request #{} is open", open.number));
    }
    if pulls.is_empty() {
        return Plan::Reclaim {
            check: Check::NothingPublished,
            why: "its session finished and published nothing".to_owned(),
        };
    }
    let list: Vec<String> = pulls
        .iter()
        .map(|p| format!("#{} {}", p.number, p.state))
        .collect();
    Plan::Reclaim {
        check: Check::NothingUnpushed,
        why: format!(
            "its work is in pull requests that ended ({})",
            list.join(", ")
        ),
    }
}

/// Workspaces a live session works in, or will inherit, with the reason.
fn protected(
    s: &Snapshot,
    sessions: &HashMap<SessionId, &GcSession>,
) -> HashMap<WorkspaceId, String> {
    let mut protected = HashMap::new();
    for session in s.sessions.iter().filter(|x| !x.status.is_terminal()) {
        if let Some(w) = session.workspace_id {
            protected
                .entry(w)
                .or_insert_with(|| format!("session #{} works in it", session.id));
        }
        // Dependents inherit a dependency's checkout: every session this one depends on,
        // directly or through others, may hand it theirs.
        let mut seen = HashSet::new();
        let mut stack: Vec<SessionId> = session.depends_on.clone();
        while let Some(dep) = stack.pop() {
            if !seen.insert(dep) {
                continue;
            }
            let Some(d) = sessions.get(&dep) else {
                continue;
            };
            if let Some(w) = d.workspace_id {
                protected.entry(w).or_insert_with(|| {
                    format!(
                        "session #{} depends on session #{dep}, whose checkout it is",
                        session.id
                    )
                });
            }
            stack.extend(d.depends_on.iter().copied());
        }
    }
    protected
}

/// Whether another pass holds a live claim on the workspace.
fn claimed_by_another(w: &GcWorkspace, rules: &Rules<'_>) -> bool {
    let Some(claim) = &w.claim else {
        return false;
    };
    let earlier_life_of_mine = claim.by == rules.by && claim.token != rules.token;
    let stale = rules.now.since(claim.at) >= rules.claim_stale_after;
    claim.token != rules.token && !earlier_life_of_mine && !stale
}

/// What a checkout holds that is not upstream, as git tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Uncommitted changes (modified, staged or untracked files).
    pub dirty: bool,
    /// Commits reachable from the checkout's refs and not from its base.
    pub ahead_of_base: u64,
    /// Commits reachable from the checkout's refs and from no upstream ref known.
    pub unpushed: u64,
}

/// Whether the checkout passes `check`: `Err` says why it must be kept.
pub fn verdict(check: Check, found: &Inspection) -> Result<(), String> {
    if check == Check::Nothing {
        return Ok(());
    }
    if found.dirty {
        return Err("it has uncommitted changes".to_owned());
    }
    match check {
        Check::NothingPublished if found.ahead_of_base > 0 => Err(format!(
            "it has {} commit(s) beyond its base that were never published",
            found.ahead_of_base
        )),
        Check::NothingUnpushed if found.unpushed > 0 => Err(format!(
            "it holds {} commit(s) that exist nowhere else",
            found.unpushed
        )),
        _ => Ok(()),
    }
}

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first pass of this process: a sweep of what an earlier one left.
    Startup,
    /// The interval elapsed.
    Interval,
    /// Free space on the work root is under the threshold.
    Pressure,
    /// Someone asked (a checkout was refused for lack of space).
    Requested,
    /// Run by hand (tests, operators).
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Interval => "interval",
            Trigger::Pressure => "disk pressure",
            Trigger::Requested => "requested",
            Trigger::Manual => "manual",
        }
    }
}

/// When passes ran, as the tick task remembers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassClock {
    pub last_started: Option<Timestamp>,
    /// A pass was asked for (a checkout was refused for lack of space).
    pub requested: bool,
    /// Free space was already under the threshold when the last pass started.
    pub pressured: bool,
}

/// Least time between two passes run while free space stays under the threshold (at most the
/// interval). Falling under it starts one at once.
pub const PRESSURE_SPACING: Duration = Duration::from_secs(30);

/// Whether a pass is due, and why.
pub fn pass_due(
    clock: &PassClock,
    now: Timestamp,
    interval: Duration,
    free: Option<u64>,
    min_free: u64,
) -> Option<Trigger> {
    let Some(last) = clock.last_started else {
        return Some(Trigger::Startup);
    };
    let since = now.since(last);
    let under = free.is_some_and(|f| f < min_free);
    // Short of space, every refused checkout asks for a pass: at once the first time, then
    // spaced, so that a disk GC cannot clear is not combed through on every tick.
    if (clock.requested || under) && (!clock.pressured || since >= interval.min(PRESSURE_SPACING)) {
        return Some(if clock.requested {
            Trigger::Requested
        } else {
            Trigger::Pressure
        });
    }
    (since >= interval).then_some(Trigger::Interval)
}

impl PassClock {
    /// What the tick task remembers after looking at `free`, and starting a pass or not.
    pub fn after(self, now: Timestamp, started: bool, under_pressure: bool) -> PassClock {
        if started {
            PassClock {
                last_started: Some(now),
                requested: false,
                pressured: under_pressure,
            }
        } else {
            PassClock {
                pressured: self.pressured && under_pressure,
                ..self
            }
        }
    }
}

/// Whether a mirror last `git gc`'d at `last` is due again. A mirror never seen before is not:
/// it was just cloned, and its first time is recorded instead.
pub fn mirror_gc_due(last: Option<Timestamp>, now: Timestamp, every: Duration) -> bool {
    last.is_some_and(|at| now.since(at) >= every)
}

/// Whether `path` is something GC may delete: strictly inside `root` (the checkouts'
/// directory, as configured), with no `..` or other tricks below it.
pub fn removable(path: &Path, root: &Path) -> bool {
    path.is_absolute()
        && path.strip_prefix(root).is_ok_and(|rest| {
            rest.components().next().is_some()
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionStatus::{Cancelled, Idle, Queued, Running, Succeeded};

    const NOW: Timestamp = Timestamp(10_000_000);

    fn rules() -> Rules<'static> {
        Rules {
            now: NOW,
            by: "me",
            token: "me#1",
            claim_stale_after: Duration::from_secs(600),
            abandoned_after: Duration::from_secs(1800),
        }
    }

    fn workspace(id: i64, creator: i64, objective: ObjectiveStatus) -> GcWorkspace {
        GcWorkspace {
            id: WorkspaceId(id),
            objective_id: ObjectiveId(1),
            objective_status: objective,
            installation_id: None,
            created_by: Some(SessionId(creator)),
            repository: "octo/widgets".into(),
            target: "local".into(),
            path: format!("/work/workspaces/s{creator}"),
            branch: Some(format!("foreman/1-x-s{creator}")),
            base_ref: "main".into(),
            base_sha: Some("abc".into()),
            status: WorkspaceStatus::Ready,
            holder: Some(SessionId(creator)),
            updated_at: Timestamp(0),
            claim: None,
            removing: false,
            note: None,
        }
    }

    fn session(id: i64, status: SessionStatus, ws: Option<i64>, deps: &[i64]) -> GcSession {
        GcSession {
            id: SessionId(id),
            status,
            workspace_id: ws.map(WorkspaceId),
            depends_on: deps.iter().map(|d| SessionId(*d)).collect(),
        }
    }

    fn pull(ws: i64, number: u64, state: &str) -> GcPull {
        GcPull {
            workspace_id: WorkspaceId(ws),
            number,
            state: crate::model::pulls::PullState::parse(state).unwrap(),
            head_sha: "def".into(),
        }
    }

    fn plan(s: &Snapshot, id: i64) -> Plan {
        decide(s, &rules())
            .into_iter()
            .find(|(w, _)| *w == WorkspaceId(id))
            .unwrap()
            .1
    }

    fn reclaims(p: &Plan, expected: Check) -> bool {
        matches!(p, Plan::Reclaim { check, .. } if *check == expected)
    }

    #[test]
    fn an_ended_objectives_checkouts_go_once_no_live_session_uses_them() {
        let mut s = Snapshot {
            workspaces: vec![
                workspace(1, 1, ObjectiveStatus::Done),
                workspace(2, 2, ObjectiveStatus::Done),
            ],
            sessions: vec![
                session(1, Succeeded, Some(1), &[]),
                session(2, Idle, Some(2), &[]),
            ],
            pulls: vec![],
        };
        assert!(reclaims(&plan(&s, 1), Check::NothingUnpushed));
        assert_eq!(plan(&s, 2), Plan::Keep("session #2 works in it".into()));
        s.sessions[1].status = Cancelled;
        assert!(reclaims(&plan(&s, 2), Check::NothingUnpushed));
    }

    #[test]
    fn a_dependents_inherited_checkout_is_kept_while_it_lives() {
        let mut s = Snapshot {
            workspaces: vec![workspace(1, 1, ObjectiveStatus::Active)],
            sessions: vec![
                session(1, Succeeded, Some(1), &[]),
                // 2 inherited it and finished; 3 waits on 2.
                session(2, Succeeded, Some(1), &[1]),
                session(3, Queued, None, &[2]),
            ],
            pulls: vec![],
        };
        assert_eq!(
            plan(&s, 1),
            Plan::Keep("session #3 depends on session #2, whose checkout it is".into())
        );
        s.sessions[2].depends_on = vec![SessionId(9)];
        s.sessions.push(session(9, Queued, None, &[1]));
        assert_eq!(
            plan(&s, 1),
            Plan::Keep("session #3 depends on session #1, whose checkout it is".into()),
            "through a session that has not started yet"
        );
        s.sessions.truncate(2);
        assert!(reclaims(&plan(&s, 1), Check::NothingPublished));
    }

    #[test]
    fn mid_objective_a_checkout_goes_when_its_pull_requests_ended_or_it_published_nothing() {
        let mut s = Snapshot {
            workspaces: vec![
                workspace(1, 1, ObjectiveStatus::Active),
                workspace(2, 2, ObjectiveStatus::Waiting),
                workspace(3, 3, ObjectiveStatus::Active),
            ],
            sessions: vec![
                session(1, Succeeded, Some(1), &[]),
                session(2, Succeeded, Some(2), &[]),
                session(3, Failed, Some(3), &[]),
            ],
            pulls: vec![pull(1, 10, "merged"), pull(2, 11, "open")],
        };
        let p1 = plan(&s, 1);
        assert!(reclaims(&p1, Check::NothingUnpushed), "{p1:?}");
        assert_eq!(
            plan(&s, 2),
            Plan::Keep("its pull request #11 is open".into())
        );
        assert!(reclaims(&plan(&s, 3), Check::NothingPublished));
        s.pulls[1].state = crate::model::pulls::PullState::Closed;
        assert!(reclaims(&plan(&s, 2), Check::NothingUnpushed));
        s.pulls.push(pull(2, 12, "open"));
        assert!(
            matches!(plan(&s, 2), Plan::Keep(_)),
            "any open one keeps it"
        );
    }

    use SessionStatus::Failed;

    #[test]
    fn holders_shared_paths_and_other_passes_claims_keep_a_checkout() {
        let mut s = Snapshot {
            workspaces: vec![workspace(1, 1, ObjectiveStatus::Done)],
            sessions: vec![
                session(1, Succeeded, Some(1), &[]),
                session(5, Running, None, &[]),
            ],
            pulls: vec![],
        };
        s.workspaces[0].holder = Some(SessionId(5));
        assert_eq!(plan(&s, 1), Plan::Keep("session #5 holds it".into()));
        s.workspaces[0].holder = Some(SessionId(77));
        assert!(
            matches!(plan(&s, 1), Plan::Keep(_)),
            "an unknown holder counts as live"
        );
        s.workspaces[0].holder = None;
        let mut twin = workspace(2, 1, ObjectiveStatus::Done);
        twin.status = WorkspaceStatus::Preparing;
        twin.updated_at = NOW;
        s.workspaces.push(twin);
        assert_eq!(
            plan(&s, 1),
            Plan::Keep("its directory is also workspace #2's".into())
        );
        s.workspaces.pop();
        let claim = |by: &str, token: &str, at: i64| Claim {
            by: by.into(),
            token: token.into(),
            at: Timestamp(at),
        };
        s.workspaces[0].status = WorkspaceStatus::Reclaiming;
        s.workspaces[0].claim = Some(claim("other", "other#1", NOW.0 - 1000));
        assert_eq!(plan(&s, 1), Plan::Busy);
        s.workspaces[0].claim = Some(claim("other", "other#1", 0));
        assert!(
            reclaims(&plan(&s, 1), Check::NothingUnpushed),
            "a stale claim is taken over"
        );
        s.workspaces[0].claim = Some(claim("me", "me#0", NOW.0));
        assert!(
            reclaims(&plan(&s, 1), Check::NothingUnpushed),
            "an earlier life of this instance left it"
        );
        s.workspaces[0].removing = true;
        assert!(
            reclaims(&plan(&s, 1), Check::Nothing),
            "a removal begun is finished"
        );
    }

    #[test]
    fn an_abandoned_preparation_goes_after_a_grace_period() {
        let mut w = workspace(1, 1, ObjectiveStatus::Active);
        w.status = WorkspaceStatus::Preparing;
        w.updated_at = NOW.minus(Duration::from_secs(60));
        let mut s = Snapshot {
            workspaces: vec![w],
            sessions: vec![session(1, Cancelled, Some(1), &[])],
            pulls: vec![],
        };
        assert_eq!(plan(&s, 1), Plan::Keep("it is being prepared".into()));
        s.workspaces[0].updated_at = Timestamp(0);
        assert!(reclaims(&plan(&s, 1), Check::Nothing));
        s.sessions[0].status = SessionStatus::Starting;
        assert!(matches!(plan(&s, 1), Plan::Keep(_)));
    }

    #[test]
    fn work_that_exists_nowhere_else_always_keeps_a_checkout() {
        let clean = Inspection::default();
        for check in [
            Check::Nothing,
            Check::NothingPublished,
            Check::NothingUnpushed,
        ] {
            assert_eq!(verdict(check, &clean), Ok(()));
        }
        let dirty = Inspection {
            dirty: true,
            ..clean
        };
        assert!(verdict(Check::NothingUnpushed, &dirty).is_err());
        assert!(verdict(Check::NothingPublished, &dirty).is_err());
        let pushed = Inspection {
            ahead_of_base: 2,
            ..clean
        };
        assert!(verdict(Check::NothingUnpushed, &pushed).is_ok());
        assert_eq!(
            verdict(Check::NothingPublished, &pushed).unwrap_err(),
            "it has 2 commit(s) beyond its base that were never published"
        );
        let unpushed = Inspection {
            ahead_of_base: 2,
            unpushed: 1,
            ..clean
        };
        assert_eq!(
            verdict(Check::NothingUnpushed, &unpushed).unwrap_err(),
            "it holds 1 commit(s) that exist nowhere else"
        );
    }

    #[test]
    fn passes_run_at_startup_on_the_interval_and_at_once_under_pressure() {
        let minute = Duration::from_secs(60);
        let five = 5 * minute;
        let mut clock = PassClock::default();
        assert_eq!(pass_due(&clock, NOW, five, None, 0), Some(Trigger::Startup));
        clock.last_started = Some(NOW);
        assert_eq!(pass_due(&clock, NOW.plus(minute), five, Some(10), 5), None);
        assert_eq!(
            pass_due(&clock, NOW.plus(five), five, Some(10), 5),
            Some(Trigger::Interval)
        );
        let second = Duration::from_secs(1);
        assert_eq!(
            pass_due(&clock, NOW.plus(second), five, Some(1), 5),
            Some(Trigger::Pressure),
            "falling under the threshold starts one at once"
        );
        clock = clock.after(NOW.plus(second), true, true);
        assert_eq!(
            pass_due(&clock, NOW.plus(2 * second), five, Some(1), 5),
            None,
            "while it stays under, passes are spaced"
        );
        assert_eq!(
            pass_due(&clock, NOW.plus(minute), five, Some(1), 5),
            Some(Trigger::Pressure)
        );
        clock.requested = true;
        assert_eq!(
            pass_due(&clock, NOW.plus(2 * second), five, Some(1), 5),
            None,
            "a refused checkout asks for one, spaced like the rest"
        );
        assert_eq!(
            pass_due(&clock, NOW.plus(minute), five, Some(1), 5),
            Some(Trigger::Requested)
        );
        clock = clock.after(NOW.plus(minute), false, false);
        assert!(!clock.pressured, "back over the threshold");
        assert!(clock.requested, "still asked for until a pass starts");
        assert_eq!(clock.last_started, Some(NOW.plus(second)));
        assert_eq!(
            pass_due(&clock, NOW.plus(2 * second), five, Some(10), 5),
            Some(Trigger::Requested),
            "at once when not already short of space"
        );
    }

    #[test]
    fn mirrors_are_gcd_at_most_every_so_often() {
        let hour = Duration::from_secs(3600);
        assert!(!mirror_gc_due(None, NOW, hour));
        assert!(!mirror_gc_due(Some(NOW), NOW.plus(hour / 2), hour));
        assert!(mirror_gc_due(Some(NOW), NOW.plus(hour), hour));
    }

    #[test]
    fn only_paths_inside_the_checkouts_directory_are_removable() {
        let root = Path::new("/work/workspaces");
        assert!(removable(Path::new("/work/workspaces/s1"), root));
        for bad in [
            "/work/workspaces",
            "/work/workspaces/../mirrors",
            "/work/mirrors/octo/widgets.git",
            "workspaces/s1",
            "/",
            "/work/workspaces/./s1/..",
        ] {
            assert!(!removable(Path::new(bad), root), "{bad}");
        }
        let odd_root = Path::new("/srv/app/../work/workspaces");
        assert!(removable(
            Path::new("/srv/app/../work/workspaces/s1"),
            odd_root
        ));
    }
}
