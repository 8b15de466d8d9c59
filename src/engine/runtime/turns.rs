//! Running turns: start a session's turn as a process, follow what the agent reports, and
//! end the turn — a manager goes idle, a worker is finished with its result and its manager
//! is told. Cancel kills the turn's whole process group; a completion that arrives after a
//! cancel changes nothing, because the session has already left the states it could move on
//! from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::agent::{self, AgentEvent, McpEndpoint, ParseState, TurnRequest, prompts};
use crate::egress::{self, Gate};
use crate::engine::runtime::Runtime;
use crate::engine::runtime::process::{self, AgentProcess, Stream};
use crate::engine::runtime::tokens::{installation_token, new_token, token_hash};
use crate::engine::runtime::{capacity, push};
use crate::github::app::Access;
use crate::model::network::Egress;
use crate::model::text::{one_line, truncate};
use crate::model::{Objective, Role, Session, SessionId, SessionStatus};
use crate::store::{Progress, TranscriptLine, TurnStart};
use crate::workspace::remote::Site;

/// Transcript lines kept per session.
pub const TRANSCRIPT_KEEP: u32 = 2_000;
/// Longest transcript line kept.
const TRANSCRIPT_LINE_MAX: usize = 4_000;
/// How often a running turn flushes its transcript and proves its runner alive, at most.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The heartbeat of an instance whose tick lease lasts `tick_lease`: three beats to a lease,
/// so a survivor can take a dead instance's turns over as soon as it takes its lease.
pub fn heartbeat_for(tick_lease: Duration) -> Duration {
    (tick_lease / 3).clamp(Duration::from_millis(200), HEARTBEAT)
}
/// Least time between two activity writes for one session (more are coalesced).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Longest result kept from a worker.
const MAX_RESULT: usize = 16_000;

/// A turn running in this process.
pub struct LocalTurn {
    /// Tells this turn apart from the session's next one.
    serial: u64,
    cancel: CancellationToken,
}

/// Numbers local turns, so that a finished turn forgets only itself.
static TURN_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Forgets a local turn, unless the session has already started its next one.
fn forget(runtime: &Runtime, id: SessionId, serial: u64) {
    let mut turns = runtime.turns();
    if turns.get(&id).is_some_and(|t| t.serial == serial) {
        turns.remove(&id);
    }
}

/// Why a turn is being started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    /// The session's first turn, or a retry of one that never got going.
    First,
    /// Messages arrived for an idle or waiting session.
    Messages,
    /// foreman restarted while the session's turn ran.
    Interrupted,
}

/// What a session whose first turn could not reach its target waits for.
const PLACE_AGAIN: &str = "its target could not be reached; it will be placed again";

/// Starts a turn of `session` if it is still in one of `from`; the turn runs in the
/// background. A queued session's first turn begins by preparing its workspace (the session
/// is `starting` meanwhile). Returns false when someone else moved the session first.
pub async fn start(
    runtime: &Arc<Runtime>,
    session: &Session,
    from: &[SessionStatus],
    kind: TurnKind,
    target: &str,
) -> Result<bool> {
    let Some(capacity) = runtime.agents.targets.get(target).map(|t| t.capacity) else {
        bail!("there is no target `{target}` (the targets file changed)");
    };
    // Register first, so that the recovery check never mistakes this turn for a lost one.
    // One turn of a session at a time: a turn being launched holds its place.
    let cancel = CancellationToken::new();
    let serial = TURN_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut turns = runtime.turns();
        if runtime.shutdown.is_cancelled() {
            return Ok(false); // foreman is shutting down: the session waits for the next run
        }
        if turns.contains_key(&session.id) {
            tracing::debug!(session = %session.id, "a turn of this session is already being started");
            return Ok(false);
        }
        turns.insert(
            session.id,
            LocalTurn {
                serial,
                cancel: cancel.clone(),
            },
        );
    }
    let queued = from.contains(&SessionStatus::Queued);
    let from: Vec<SessionStatus> = if queued {
        let now = runtime.clock.now();
        if !runtime
            .store
            .claim_start(session.id, target, capacity, now)
            .await?
        {
            forget(runtime, session.id, serial);
            return Ok(false);
        }
        vec![SessionStatus::Starting]
    } else {
        from.to_vec()
    };
    let span = tracing::info_span!("turn", session = %session.id, role = session.role.as_str());
    let runtime = runtime.clone();
    let session = session.clone();
    let place = Place {
        target: target.to_owned(),
        capacity,
    };
    tokio::spawn(
        async move {
            if let Err(e) = launch(&runtime, &session, &from, kind, &place, &cancel).await {
                let reason = format!("{e:#}");
                tracing::warn!(reason, "the turn could not start");
                fail(&runtime, &session, &reason).await;
            }
            forget(&runtime, session.id, serial);
            runtime.tick_bell.notify_one();
        }
        .instrument(span),
    );
    Ok(true)
}

/// Prepares what the turn needs, begins it, runs it and records its end.
async fn launch(
    runtime: &Arc<Runtime>,
    session: &Session,
    from: &[SessionStatus],
    kind: TurnKind,
    place: &Place,
    cancel: &CancellationToken,
) -> Result<()> {
    let site = match runtime.sites.site(&place.target).await {
        Ok(site) => site,
        Err(e) if kind == TurnKind::First && runtime.sites.down().contains_key(&place.target) => {
            // Nothing of the session is there yet: it goes back in the queue, to be placed
            // on another target while this one is left out.
            let why = format!("{PLACE_AGAIN}: {e:#}");
            tracing::warn!(session = %session.id, why, "the turn's target is unreachable");
            let now = runtime.clock.now();
            runtime.store.unplace(session.id, &why, now).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // A session that took turns before but has no state here was run by another instance,
    // with a work root of its own, that stopped: its conversation went with that machine.
    let moved =
        kind != TurnKind::First && site.is_none() && !runtime.agents.state_dir(session.id).exists();
    let Some(workdir) = workdir_for(runtime, session, &place.target, site.as_ref()).await? else {
        // Its workspace is busy (another session writes to it, or GC is deciding about it), or
        // there is no disk space for a new one: wait for the next pass.
        tracing::debug!(session = %session.id, "the turn waits for its checkout");
        let now = runtime.clock.now();
        runtime
            .store
            .set_session_status(session.id, SessionStatus::Queued, None, now)
            .await?;
        return Ok(());
    };
    let dirs = SessionDirs {
        work: workdir.path,
        state: match &site {
            Some(site) => site.state_dir(session.id),
            None => runtime.agents.state_dir(session.id),
        },
    };
    if site.is_none() {
        std::fs::create_dir_all(dirs.tmp())
            .with_context(|| format!("cannot create {}", dirs.tmp().display()))?;
    }
    let token = new_token();
    let start = TurnStart {
        token_hash: &token_hash(&token),
        runner: &runtime.runner,
        workdir: &dirs.work.display().to_string(),
        target: &place.target,
        capacity: place.capacity,
    };
    let now = runtime.clock.now();
    let Some(messages) = runtime
        .store
        .begin_turn(session.id, from, &start, now)
        .await?
    else {
        return Ok(()); // someone else moved the session meanwhile
    };
    // A session that moved starts over: a first prompt, and no conversation to resume.
    let (kind, start) = if moved {
        let pushed = workdir.continued;
        (TurnKind::First, Start::Moved { pushed })
    } else {
        (kind, Start::Fresh)
    };
    let prompt = match (kind, messages.is_empty()) {
        (TurnKind::First, _) => first_prompt(runtime, session, &messages, start).await?,
        (TurnKind::Interrupted, true) => prompts::interrupted_turn(),
        (TurnKind::Interrupted, false) => format!(
            "{}\n\n{}",
            prompts::interrupted_turn(),
            prompts::message_turn(session.role, &messages)?
        ),
        (TurnKind::Messages, _) => prompts::message_turn(session.role, &messages)?,
    };
    let resume = match kind {
        TurnKind::First => None,
        _ => session.conversation_id.clone().or_else(|| {
            // The command adapter keeps no conversation id; it resumes by itself.
            (session.agent == crate::model::AgentKind::Command).then(String::new)
        }),
    };
    let outcome = run(
        runtime,
        session,
        prompt,
        resume,
        dirs,
        token,
        site.as_ref(),
        cancel,
    )
    .await;
    finish(runtime, session, outcome, cancel).await;
    Ok(())
}

/// The target a turn runs on, and its capacity.
struct Place {
    target: String,
    capacity: u32,
}

/// Where a session's first turn (on this instance) starts from.
enum Start {
    /// Its first turn.
    Fresh,
    /// It ran on another instance, which stopped: `pushed` is the branch its new checkout
    /// continues, if it had pushed one.
    Moved { pushed: Option<String> },
}

/// A session's first prompt: its role's, plus — for a manager following an earlier attempt —
/// what that attempt did, plus — for a session taken over from a stopped instance — what
/// survived, plus any news that arrived before it started.
async fn first_prompt(
    runtime: &Runtime,
    session: &Session,
    messages: &[String],
    start: Start,
) -> Result<String> {
    let objective = objective_of(runtime, session).await?;
    let mut prompt = prompts::first_turn(session, &objective)?;
    if session.role == Role::Manager
        && let Some(previous) = objective.previous
        && let Some(previous) = runtime.store.objective(previous).await?
    {
        let sessions = runtime.store.sessions_of(previous.id).await?;
        prompt = format!(
            "{prompt}\n\n{}",
            prompts::previous_attempt(&previous, &sessions)?
        );
    }
    if session.role == Role::Manager {
        let sessions = runtime.store.sessions_of(objective.id).await?;
        if let Some(before) = sessions
            .iter()
            .rev()
            .find(|s| s.role == Role::Manager && s.id < session.id)
        {
            let snapshot = snapshot_of(runtime, &objective, &sessions).await?;
            prompt = format!("{prompt}\n\n{}", prompts::resume(before, &snapshot)?);
        }
    }
    if let Start::Moved { pushed } = start {
        let snapshot = if session.role == Role::Manager {
            let sessions = runtime.store.sessions_of(objective.id).await?;
            snapshot_of(runtime, &objective, &sessions).await?
        } else {
            String::new()
        };
        let moved = prompts::moved(session.role, pushed.as_deref(), &snapshot)?;
        prompt = format!("{prompt}\n\n{moved}");
    }
    if !messages.is_empty() {
        prompt = format!(
            "{prompt}\n\n{}",
            prompts::message_turn(session.role, messages)?
        );
    }
    Ok(prompt)
}

/// Where an objective's work stands, for its managers.
pub async fn snapshot_of(
    runtime: &Runtime,
    objective: &Objective,
    sessions: &[Session],
) -> Result<String> {
    let pulls = runtime.store.pulls_of(objective.id).await?;
    let questions = runtime.store.questions_of(objective.id).await?;
    prompts::snapshot(&prompts::Snapshot {
        objective,
        sessions,
        pulls: &pulls,
        questions: &questions,
    })
}

/// The checkout a turn runs in.
struct Workdir {
    path: PathBuf,
    /// The session's own branch as it was upstream, when a new checkout replaced one that
    /// was lost.
    continued: Option<String>,
}

impl Workdir {
    fn at(path: impl Into<PathBuf>) -> Workdir {
        Workdir {
            path: path.into(),
            continued: None,
        }
    }
}

/// Where the session works: the checkout it already has, one it inherits from the worker it
/// depends on, or a new one. `None` when the checkout to inherit is busy, or when there is
/// no disk space for a new one: the session waits.
///
/// A checkout that is recorded as ready but is not on this machine was made by another
/// instance with a work root of its own, which stopped: it is recorded as lost, and the
/// session gets a new checkout of its branch as far as it was pushed — never a directory that
/// existed only on the machine that died.
async fn workdir_for(
    runtime: &Runtime,
    session: &Session,
    target: &str,
    site: Option<&Arc<Site>>,
) -> Result<Option<Workdir>> {
    let store = &runtime.store;
    let here = |ws: &crate::model::Workspace| {
        let path = PathBuf::from(&ws.path);
        let same = ws.target == target;
        async move {
            Ok::<_, anyhow::Error>(
                same && match site {
                    Some(site) => site.exists(&path).await?,
                    None => path.exists(),
                },
            )
        }
    };
    if let Some(id) = session.workspace_id
        && let Some(ws) = store.workspace(id).await?
        && ws.status == crate::model::WorkspaceStatus::Ready
    {
        if here(&ws).await? {
            return Ok(Some(Workdir::at(ws.path)));
        }
        let why = "its checkout was on another instance's disk, and that instance stopped";
        let entry = crate::store::AuditEntry::of_objective(
            session.objective_id,
            runtime.clock.now(),
            "workspace.lost",
            format!(
                "workspace {id} ({}) of session {}: {why}",
                ws.path, session.id
            ),
        );
        if store.lose_workspace(id, why, &entry).await? {
            tracing::warn!(workspace = %id, path = ws.path, session = %session.id, "{why}: a new checkout replaces it");
        }
    }
    let now = runtime.clock.now();
    for dep in &session.depends_on {
        let inherited = match store.session(*dep).await? {
            Some(d) => d.workspace_id,
            None => None,
        };
        let Some(ws) = inherited else { continue };
        let Some(workspace) = store.workspace(ws).await? else {
            continue;
        };
        if workspace.branch.is_none() || !here(&workspace).await? {
            continue;
        }
        if matches!(
            workspace.status,
            crate::model::WorkspaceStatus::Archived | crate::model::WorkspaceStatus::Failed
        ) {
            // GC reclaimed it (nothing in it was needed any more), or it never became ready.
            continue;
        }
        if !store.acquire_workspace(ws, session.id, now).await? {
            // Another session writes to it, or GC is deciding about it: wait.
            return Ok(None);
        }
        store.attach_workspace(session.id, ws).await?;
        tracing::info!(workspace = %ws, "continuing in its dependency's checkout");
        return Ok(Some(Workdir::at(workspace.path)));
    }
    if !capacity::checkout_allowed(runtime, session, site.map(|s| &**s)).await? {
        return Ok(None); // short of disk space: wait (the session says why)
    }
    new_workspace(runtime, session, target, site)
        .await
        .map(Some)
}

/// Prepares a fresh checkout for the session: read-only for a manager, on a new branch for
/// anyone else.
async fn new_workspace(
    runtime: &Runtime,
    session: &Session,
    target: &str,
    site: Option<&Arc<Site>>,
) -> Result<Workdir> {
    let objective = objective_of(runtime, session).await?;
    runtime.commit_as_bot(&objective).await;
    // A follow-up continues its pull request's branch, from where it is upstream now.
    let pull = match session.pull_request_id {
        Some(id) => Some(
            runtime
                .store
                .pull(id)
                .await?
                .with_context(|| format!("the follow-up's pull request {id} is gone"))?,
        ),
        None => None,
    };
    let branch = match &pull {
        Some(p) => Some(p.branch.clone()),
        None => (session.role != Role::Manager).then(|| {
            crate::model::workspace::branch_name(objective.issue_number, &session.title, session.id)
        }),
    };
    let base = match &pull {
        Some(p) => Some(p.base_ref.as_str()),
        None => objective.config.base_branch.as_deref(),
    };
    let path = match site {
        Some(site) => site.checkout_path(session.id),
        None => runtime
            .agents
            .work_root
            .join("workspaces")
            .join(format!("s{}", session.id)),
    };
    let now = runtime.clock.now();
    if let Some(earlier) = session.workspace_id {
        // An earlier attempt was interrupted while preparing: that workspace never became
        // ready, and its leftovers go.
        let why = "interrupted before it was ready";
        runtime
            .store
            .finish_workspace(earlier, Err(why), now)
            .await?;
    }
    if site.is_none() {
        let _ = tokio::fs::remove_dir_all(&path).await;
    }
    let mut tx = runtime.store.begin().await?;
    let id = tx
        .insert_workspace(
            &crate::store::NewWorkspace {
                objective_id: objective.id,
                created_by: session.id,
                repository: &objective.repository,
                target,
                path: &path.display().to_string(),
                branch: branch.as_deref(),
                base_ref: "",
            },
            now,
        )
        .await?;
    tx.commit().await?;
    let auth = installation_token(runtime, &objective, Access::GitRead).await?;
    // A session that had a checkout before (lost, or interrupted while it was made) goes on
    // from its branch as far as it was pushed.
    let continued = match (&pull, &branch, session.workspace_id) {
        (None, Some(branch), Some(_)) => runtime
            .workspaces
            .remote_head(&objective.repository, branch, auth.as_ref())
            .await?
            .map(|_| branch.clone()),
        _ => None,
    };
    let start_at = match &pull {
        Some(p) => Some(p.branch.as_str()),
        None => continued.as_deref(),
    };
    let prepare = crate::workspace::Prepare {
        repository: &objective.repository,
        base,
        path: &path,
        branch: branch.as_deref(),
        start_at,
        auth: auth.as_ref(),
    };
    let prepared = match site {
        Some(site) => runtime.workspaces.prepare_on(site, &prepare).await,
        None => runtime.workspaces.prepare(&prepare).await,
    };
    let now = runtime.clock.now();
    match prepared {
        Ok(p) => {
            runtime
                .store
                .finish_workspace(id, Ok((&p.base_ref, &p.base_sha)), now)
                .await?;
            tracing::info!(workspace = %id, base = p.base_ref, sha = p.base_sha, "workspace ready");
            Ok(Workdir { path, continued })
        }
        Err(e) => {
            let reason = format!("cannot prepare its workspace: {e:#}");
            runtime
                .store
                .finish_workspace(id, Err(&reason), now)
                .await?;
            Err(anyhow!(reason))
        }
    }
}

/// Records that a session failed before or outside a turn, and tells its manager.
pub async fn fail(runtime: &Runtime, session: &Session, reason: &str) {
    let now = runtime.clock.now();
    match runtime
        .store
        .set_session_status(session.id, SessionStatus::Failed, Some(reason), now)
        .await
    {
        Ok(true) if session.role.is_one_task() => {
            if let Err(e) = tell_manager(runtime, session, &format!("failed: {reason}")).await {
                tracing::warn!(error = %format!("{e:#}"), "cannot tell the manager");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot record the failure"),
    }
}

/// Cancels a session: it becomes `cancelled` and its turn's process group is killed. False
/// when it had already ended.
pub async fn cancel(runtime: &Runtime, id: SessionId, reason: &str) -> Result<bool> {
    let moved = runtime
        .store
        .set_session_status(
            id,
            SessionStatus::Cancelled,
            Some(reason),
            runtime.clock.now(),
        )
        .await?;
    if let Some(turn) = runtime.turns().get(&id) {
        turn.cancel.cancel();
    }
    if moved {
        tracing::info!(session = %id, reason, "session cancelled");
        // What it asked is closed: nobody is left to hear the answer.
        let mut tx = runtime.store.begin().await?;
        tx.cancel_session_questions(id, runtime.clock.now()).await?;
        tx.commit().await?;
    }
    Ok(moved)
}

/// Whether this process is running a turn of the session.
pub fn is_local(runtime: &Runtime, id: SessionId) -> bool {
    runtime.turns().contains_key(&id)
}

async fn objective_of(runtime: &Runtime, session: &Session) -> Result<Objective> {
    runtime
        .store
        .objective(session.objective_id)
        .await?
        .with_context(|| {
            format!(
                "objective {} of session {} is gone",
                session.objective_id, session.id
            )
        })
}

/// How a turn ended.
enum Outcome {
    /// The agent finished its turn.
    Ended { result: Option<String> },
    /// The turn failed, for this reason.
    Failed(String),
    /// Cancelled from outside (the session is already `cancelled`).
    Cancelled,
    /// Stopped because foreman shuts down: the session stays in its turn, and resumes in the
    /// same conversation when foreman runs again.
    Interrupted,
}

/// Directories of one session.
pub struct SessionDirs {
    /// Where the agent works.
    pub work: PathBuf,
    /// The agent's own state and config files.
    pub state: PathBuf,
}

impl SessionDirs {
    /// The agent's temporary directory (`TMPDIR`), inside its state directory.
    pub fn tmp(&self) -> PathBuf {
        self.state.join("tmp")
    }
}

/// What a turn runs with.
struct TurnSetup {
    /// The agent profile, the repository's choice applied.
    profile: crate::config::AgentProfile,
    repository: String,
    /// What is left of the objective's cost budget (micro-dollars).
    cost_left: Option<u64>,
    /// The repository's choice of network, within the operator's policy.
    network: crate::model::network::NetworkChoice,
}

async fn turn_setup(runtime: &Runtime, session: &Session) -> Result<TurnSetup> {
    let objective = objective_of(runtime, session).await?;
    let choice = match session.role {
        Role::Manager => objective.config.manager.clone(),
        Role::Worker | Role::Followup => objective.config.workers.agent(),
    };
    let profile = runtime
        .agents
        .profile(session.role, session.agent)
        .map(|p| p.with(&choice))?;
    let cost_left = match objective.budget.cost_micros {
        Some(_) => {
            let usage = runtime
                .store
                .objective_usage(objective.id, runtime.clock.now())
                .await?;
            objective.budget.cost_left(&usage)
        }
        None => None,
    };
    Ok(TurnSetup {
        profile,
        repository: objective.repository,
        cost_left,
        network: objective.config.network,
    })
}

/// The turn's way out when it runs under an allowlist (in the sandbox; unconfined, an agent
/// has foreman's network and nothing can be enforced).
fn open_gate(
    runtime: &Runtime,
    choice: &crate::model::network::NetworkChoice,
    remote: bool,
) -> Result<Option<Gate>> {
    if !runtime.agents.sandbox.confines() && !remote {
        return Ok(None);
    }
    let (endpoints, forwards) = egress::endpoints(&runtime.agents.endpoint_urls());
    match runtime.agents.network.egress(choice, &endpoints) {
        Egress::Open => Ok(None),
        Egress::Allowlist(list) => Gate::open(list, &forwards, runtime.clock.clone()).map(Some),
    }
}

/// A remote turn's way out through `gate`: foreman's relay on its target, and the gate's
/// sockets forwarded there.
async fn remote_exits(
    runtime: &Runtime,
    site: &Site,
    gate: &Gate,
) -> Result<crate::sandbox::Gated> {
    let relay = site.relay(&runtime.agents.relay).await?;
    let sockets = site.forward_sockets(&gate.sockets()).await?;
    let mut gated = gate.exits(&relay);
    gated.sockets = sockets;
    Ok(gated)
}

/// Stores what the turn's proxy refused since the last time.
async fn save_blocked(runtime: &Runtime, session: SessionId, gate: Option<&Gate>) {
    let Some(gate) = gate else { return };
    let blocked = gate.take_blocked();
    if blocked.is_empty() {
        return;
    }
    for b in &blocked {
        tracing::info!(session = %session, host = %b.host, attempts = b.attempts,
            "the egress allowlist refused an agent's connection");
    }
    if let Err(e) = runtime.store.record_blocked_egress(session, &blocked).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot record blocked network requests");
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    runtime: &Runtime,
    session: &Session,
    prompt: String,
    resume: Option<String>,
    dirs: SessionDirs,
    token: SecretString,
    site: Option<&Arc<Site>>,
    cancel: &CancellationToken,
) -> Outcome {
    let TurnSetup {
        profile,
        repository,
        cost_left,
        network,
    } = match turn_setup(runtime, session).await {
        Ok(found) => found,
        Err(e) => return Outcome::Failed(format!("cannot start the agent: {e:#}")),
    };
    let gate = match open_gate(runtime, &network, site.is_some()) {
        Ok(gate) => gate,
        Err(e) => {
            return Outcome::Failed(format!("cannot set up the agent's network: {e:#}"));
        }
    };
    let adapter = agent::adapter(session.agent);
    let request = TurnRequest {
        session_id: session.id,
        role: session.role,
        prompt,
        resume,
        workdir: dirs.work.clone(),
        state_dir: dirs.state.clone(),
        mcp: McpEndpoint {
            // Behind a gate, the agent reaches it where it is here, through the gate's forward.
            url: match site {
                Some(site) if gate.is_none() => site.mcp_url.clone(),
                _ => runtime.agents.mcp_url.clone(),
            },
            token: token.clone(),
        },
        tools: crate::agent::tools::tools_of(session.role),
        program: profile.program.clone(),
        model: profile.model.clone(),
        extra_args: profile.args.clone(),
        max_cost_usd: cost_left.map(|micros| micros as f64 / 1e6),
    };
    // The turn's sockets on its target, forwarded from the gate's.
    let mut remote_sockets = None;
    let spawned = match (adapter.command(&request), site) {
        (Ok(cmd), None) => {
            let mut jail = agent_jail(runtime, &dirs, &repository, &cmd);
            let mut env = runtime.agents.base_env(&dirs);
            if let Some(gate) = &gate {
                jail.egress = Some(gate.exits(&runtime.agents.relay));
                env.extend(gate.env());
            }
            process::spawn(&cmd, &runtime.agents.sandbox, &jail, &dirs.state, &env).await
        }
        (Ok(cmd), Some(site)) => {
            let mut jail = agent_jail(runtime, &dirs, &repository, &cmd);
            jail.read_only = vec![site.mirror(&repository).join("objects")];
            let mut env = runtime.agents.base_env(&dirs);
            if let Some(gate) = &gate {
                match remote_exits(runtime, site, gate).await {
                    Ok(gated) => {
                        remote_sockets = Some(gated.sockets.clone());
                        jail.egress = Some(gated);
                        env.extend(gate.env());
                    }
                    Err(e) => {
                        return Outcome::Failed(format!(
                            "cannot set up the agent's network on target `{}`: {e:#}",
                            site.name
                        ));
                    }
                }
            }
            process::spawn_remote(
                &cmd,
                &process::RemoteStart {
                    site,
                    jail: &jail,
                    files_root: &dirs.state,
                    base_env: &env,
                    extra: runtime.agents.sandbox.extra_read_only(),
                    make: &[dirs.tmp()],
                },
            )
            .await
        }
        (Err(e), _) => Err(e),
    };
    let close_remote = async || {
        if let (Some(site), Some(gate), Some(dir)) = (site, &gate, &remote_sockets) {
            site.close_sockets(dir, &gate.sockets()).await;
        }
    };
    let mut process = match spawned {
        Ok(process) => process,
        Err(e) => {
            close_remote().await;
            return Outcome::Failed(format!("cannot start the agent: {e:#}"));
        }
    };
    if let Some(pid) = process.local_pid()
        && let Err(e) = runtime
            .store
            .set_session_pid(session.id, Some(i64::from(pid)))
            .await
    {
        tracing::warn!(error = %format!("{e:#}"), "cannot record the agent's pid");
    }
    let mut follow = Follow::new(runtime, session, &token, cost_left);
    let mut stops = runtime.store.stopped_sessions();
    let deadline = tokio::time::Instant::now() + runtime.agents.turn_timeout;
    let mut heartbeat = tokio::time::interval(runtime.agents.heartbeat);
    let why_stopped = loop {
        tokio::select! {
            line = process.lines.recv() => match line {
                Some((stream, line)) => {
                    if let Some(reason) = follow.line(stream, &line, adapter).await {
                        break Some(reason);
                    }
                }
                None => break None,
            },
            _ = cancel.cancelled() => break Some(Stop::Cancelled),
            stopped = stops.recv() => match stopped {
                Ok(id) if id == session.id => break Some(Stop::Cancelled),
                Ok(_) => {}
                // Fell behind: the store says whether this session is still in its turn.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if follow.stopped().await {
                        break Some(Stop::Cancelled);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
            },
            _ = runtime.shutdown.cancelled() => break Some(Stop::Shutdown),
            _ = tokio::time::sleep_until(deadline) => break Some(Stop::TimedOut),
            _ = heartbeat.tick() => {
                follow.flush().await;
                save_blocked(runtime, session.id, gate.as_ref()).await;
                // Stopped by another instance (its news does not reach this process).
                if follow.stopped().await {
                    break Some(Stop::Cancelled);
                }
            }
        }
    };
    if why_stopped.is_some() {
        process.kill().await;
    }
    let status = wait(&mut process).await;
    // Whatever the turn left running (a server started in the background) ends with it.
    if process.local_pid().is_some() {
        process.kill().await;
    }
    close_remote().await;
    follow.flush().await;
    follow.finish_usage().await;
    save_blocked(runtime, session.id, gate.as_ref()).await;
    match why_stopped {
        Some(Stop::Cancelled) => Outcome::Cancelled,
        Some(Stop::Shutdown) => Outcome::Interrupted,
        Some(Stop::OverBudget { cost, cap }) => Outcome::Failed(format!(
            "the turn had spent ${:.2}, more than the ${:.2} left of the objective's cost \
             budget, and was stopped",
            cost as f64 / 1e6,
            cap as f64 / 1e6
        )),
        Some(Stop::TimedOut) => Outcome::Failed(format!(
            "the turn ran past the turn timeout ({}) and was stopped",
            humantime::format_duration(runtime.agents.turn_timeout)
        )),
        Some(Stop::McpUnavailable(why)) => {
            Outcome::Failed(format!("the agent could not use foreman's tools: {why}"))
        }
        None => match lost_target(runtime, &process) {
            Some(why) => Outcome::Failed(why),
            None => follow.outcome(status),
        },
    }
}

/// What an agent's turn may see: its checkout and its state directory (its HOME), read-write;
/// the files foreman wrote for the turn (its CLI's config, which names foreman's MCP server
/// and model endpoint) and the mirror objects its checkout borrows, read-only; the network,
/// for its model API and foreman's MCP endpoint.
fn agent_jail(
    runtime: &Runtime,
    dirs: &SessionDirs,
    repository: &str,
    cmd: &agent::TurnCommand,
) -> crate::sandbox::Jail {
    let objects = runtime.workspaces.mirror_objects(repository);
    let mut read_only: Vec<PathBuf> = objects.is_dir().then_some(objects).into_iter().collect();
    read_only.extend(cmd.files.iter().map(|(path, _)| path.clone()));
    crate::sandbox::Jail {
        cwd: dirs.work.clone(),
        writable: vec![dirs.work.clone(), dirs.state.clone()],
        read_only,
        overlays: Vec::new(),
        network: true,
        egress: None,
    }
}

/// For a turn on a remote target whose connection ended: why (and the target is marked down,
/// so that no new turn goes there until it answers again).
fn lost_target(runtime: &Runtime, process: &AgentProcess) -> Option<String> {
    let process::Group::Remote { site, .. } = &process.group else {
        return None;
    };
    if !site.connection.is_closed() {
        return None;
    }
    let why = format!(
        "the connection to target `{}` was lost during the turn",
        site.name
    );
    runtime.sites.mark_down(&site.name, &why);
    Some(why)
}

/// Why a turn was stopped before its process ended by itself.
enum Stop {
    Cancelled,
    /// The turn reported spending more than was left of the cost budget (micro-dollars).
    OverBudget {
        cost: u64,
        cap: u64,
    },
    /// foreman is shutting down.
    Shutdown,
    TimedOut,
    McpUnavailable(String),
}

async fn wait(process: &mut AgentProcess) -> Option<std::process::ExitStatus> {
    // Output may close before exit (or a grandchild may hold it open); the group is gone
    // once killed, so this does not hang.
    match tokio::time::timeout(Duration::from_secs(30), process.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            process.kill().await;
            process.wait().await.ok()
        }
    }
}

/// What a turn's output has said so far, and the store writes it leads to.
struct Follow<'a> {
    runtime: &'a Runtime,
    session: &'a Session,
    token: &'a SecretString,
    /// The most the turn may cost (micro-dollars): what was left of the cost budget.
    cost_cap: Option<u64>,
    parse: ParseState,
    transcript: Vec<TranscriptLine>,
    last_progress: Option<Instant>,
    pending_activity: Option<String>,
    usage: Option<(u64, u64, u64)>,
    ended: Option<(Option<String>, bool)>,
    last_stderr: Option<String>,
}

impl<'a> Follow<'a> {
    fn new(
        runtime: &'a Runtime,
        session: &'a Session,
        token: &'a SecretString,
        cost_cap: Option<u64>,
    ) -> Self {
        Follow {
            runtime,
            session,
            token,
            cost_cap,
            parse: ParseState::default(),
            transcript: Vec::new(),
            last_progress: None,
            pending_activity: None,
            usage: None,
            ended: None,
            last_stderr: None,
        }
    }

    /// Takes one line of output; returns a reason to stop the turn, if any.
    async fn line(
        &mut self,
        stream: Stream,
        line: &str,
        adapter: &dyn agent::Adapter,
    ) -> Option<Stop> {
        // The agent's own token must not end up in the store, whatever it prints.
        let shown = line.replace(self.token.expose_secret(), "[REDACTED]");
        self.transcript.push(TranscriptLine {
            at: self.runtime.clock.now(),
            stream: stream.as_str().to_owned(),
            line: truncate(&shown, TRANSCRIPT_LINE_MAX),
        });
        if stream == Stream::Err {
            if !shown.trim().is_empty() {
                self.last_stderr = Some(one_line(&shown, 300));
            }
            return match adapter.parse_stderr(line) {
                Some(AgentEvent::McpUnavailable(why)) => Some(Stop::McpUnavailable(why)),
                _ => None,
            };
        }
        let mut conversation = None;
        for event in adapter.parse_line(line, &mut self.parse) {
            match event {
                AgentEvent::Conversation(id) => conversation = Some(id),
                AgentEvent::Output(text) => self.pending_activity = Some(one_line(&text, 200)),
                AgentEvent::ToolCall(name) => {
                    self.pending_activity = Some(format!("calling {name}"))
                }
                AgentEvent::Usage {
                    input_tokens,
                    output_tokens,
                    cost_usd,
                } => {
                    let cost = cost_usd.map_or(0, |c| (c * 1e6).round().max(0.0) as u64);
                    self.usage = Some((input_tokens, output_tokens, cost));
                }
                AgentEvent::McpUnavailable(why) => return Some(Stop::McpUnavailable(why)),
                AgentEvent::TurnEnded { result, is_error } => self.ended = Some((result, is_error)),
            }
        }
        // Spending past the budget's rest stops a turn that is still going (one whose end
        // this line reported has stopped already).
        if let (Some(cap), Some((_, _, cost)), None) = (self.cost_cap, self.usage, &self.ended)
            && cost > cap
        {
            return Some(Stop::OverBudget { cost, cap });
        }
        let due = self
            .last_progress
            .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
        if conversation.is_some() || due {
            self.last_progress = Some(Instant::now());
            let progress = Progress {
                conversation_id: conversation.as_deref(),
                activity: self.pending_activity.as_deref(),
                usage: None,
            };
            self.write_progress(&progress).await;
        }
        if self.transcript.len() >= 100 {
            self.flush().await;
        }
        None
    }

    async fn write_progress(&self, progress: &Progress<'_>) {
        let now = self.runtime.clock.now();
        if let Err(e) = self
            .runtime
            .store
            .record_progress(self.session.id, progress, now)
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot record agent progress");
        }
    }

    /// Writes buffered transcript lines and the latest activity.
    async fn flush(&mut self) {
        let lines = std::mem::take(&mut self.transcript);
        if let Err(e) = self
            .runtime
            .store
            .append_transcript(self.session.id, &lines, TRANSCRIPT_KEEP)
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot store transcript lines");
        }
        let progress = Progress {
            activity: self.pending_activity.as_deref(),
            ..Progress::default()
        };
        self.write_progress(&progress).await;
    }

    /// Whether the session has been stopped (cancelled, or ended otherwise) while its turn
    /// runs: the turn then ends too. A store that cannot say is not taken for a stop.
    async fn stopped(&self) -> bool {
        match self.runtime.store.session(self.session.id).await {
            Ok(Some(now)) => now.status.is_terminal(),
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot check the session's status");
                false
            }
        }
    }

    /// Adds the turn's tokens and cost, once, at its end.
    async fn finish_usage(&mut self) {
        if let Some(usage) = self.usage.take() {
            let progress = Progress {
                usage: Some(usage),
                ..Progress::default()
            };
            self.write_progress(&progress).await;
        }
    }

    fn outcome(&mut self, status: Option<std::process::ExitStatus>) -> Outcome {
        let stderr = self
            .last_stderr
            .as_deref()
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        match (status, self.ended.take()) {
            (_, Some((result, true))) => Outcome::Failed(format!(
                "the agent reported an error: {}",
                result
                    .as_deref()
                    .map_or("(no message)".to_owned(), |r| one_line(r, 300))
            )),
            (Some(status), ended) if status.success() => Outcome::Ended {
                result: ended
                    .and_then(|(result, _)| result)
                    .or_else(|| self.parse.last_output.take()),
            },
            (Some(status), _) => Outcome::Failed(format!("the agent exited with {status}{stderr}")),
            (None, _) => Outcome::Failed(format!("the agent's exit status was lost{stderr}")),
        }
    }
}

/// Ends a turn: the session moves on according to its role and what happened.
async fn finish(
    runtime: &Arc<Runtime>,
    session: &Session,
    outcome: Outcome,
    cancel: &CancellationToken,
) {
    if let Err(e) = try_finish(runtime, session, outcome, cancel).await {
        tracing::error!(error = %format!("{e:#}"), "cannot record the end of a turn; the recovery check will");
    }
}

async fn try_finish(
    runtime: &Arc<Runtime>,
    session: &Session,
    outcome: Outcome,
    cancel: &CancellationToken,
) -> Result<()> {
    let now = runtime.clock.now();
    let store = &runtime.store;
    if cancel.is_cancelled() {
        // Cancelled from outside: the canceller set the status. Nothing more to record.
        tracing::info!("turn stopped by a cancel");
        return Ok(());
    }
    match outcome {
        Outcome::Cancelled => Ok(()),
        Outcome::Interrupted => {
            tracing::info!("turn stopped by foreman's shutdown; the session resumes on restart");
            Ok(())
        }
        Outcome::Failed(reason) => {
            tracing::warn!(reason, "turn failed");
            let moved = store
                .set_session_status(session.id, SessionStatus::Failed, Some(&reason), now)
                .await?;
            if !moved {
                tracing::info!("a failure arrived after the session had ended; ignored");
            } else if session.role.is_one_task() {
                tell_manager(runtime, session, &format!("failed: {reason}")).await?;
            }
            Ok(())
        }
        Outcome::Ended { result } => {
            let has_messages = store.has_messages(session.id).await?;
            let next = match session.role {
                Role::Manager => {
                    let objective = objective_of(runtime, session).await?;
                    if objective.status.is_terminal() {
                        SessionStatus::Succeeded
                    } else {
                        SessionStatus::Idle
                    }
                }
                _ if has_messages => SessionStatus::Idle,
                _ if store.has_open_question(session.id).await? => SessionStatus::Waiting,
                _ => SessionStatus::Succeeded,
            };
            if next == SessionStatus::Succeeded && session.role.is_one_task() {
                let now_is = store.session(session.id).await?;
                let reported = now_is.as_ref().and_then(|s| s.result.clone());
                let mut result = reported.or(result).map(|r| truncate(&r, MAX_RESULT));
                if session.pull_request_id.is_some() {
                    // A follow-up's work counts once it is on its pull request.
                    let current = now_is.unwrap_or_else(|| session.clone());
                    match push::push(runtime, &current).await {
                        Ok(head) => {
                            let said = result.as_deref().unwrap_or("(no result reported)");
                            result = Some(format!("pushed {head} to the pull request. {said}"));
                        }
                        Err(e) => {
                            let reason = format!("{e:#}");
                            fail(runtime, session, &reason).await;
                            return Ok(());
                        }
                    }
                }
                store
                    .set_session_text(session.id, result.as_deref(), None)
                    .await?;
                if store
                    .set_session_status(session.id, next, None, now)
                    .await?
                {
                    let text = result.unwrap_or_else(|| "(no result reported)".to_owned());
                    tell_manager(runtime, session, &format!("succeeded. Result:\n\n{text}"))
                        .await?;
                } else {
                    tracing::info!("a completion arrived after the session had ended; ignored");
                }
                return Ok(());
            }
            if !store
                .set_session_status(session.id, next, None, now)
                .await?
            {
                tracing::info!("a completion arrived after the session had ended; ignored");
            }
            Ok(())
        }
    }
}

/// Leaves a message about a worker for the manager of its objective.
pub async fn tell_manager(runtime: &Runtime, worker: &Session, what: &str) -> Result<()> {
    let objective = objective_of(runtime, worker).await?;
    let Some(manager) = objective.manager else {
        return Err(anyhow!("objective {} has no manager to tell", objective.id));
    };
    let text = format!("Worker #{} \"{}\" {what}", worker.id, worker.title);
    let mut tx = runtime.store.begin().await?;
    tx.push_message(manager, &text, runtime.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}
