//! The catalogue of foreman's tools: what each is called, who may call it and how it is
//! described to agents. The agent CLIs are told which of them a session may use; the MCP
//! server (`crate::mcp`) lists and runs them.

use crate::model::Role;

/// One tool: who may call it and how it is described to agents.
pub struct ToolSpec {
    pub name: &'static str,
    pub roles: &'static [Role],
    pub description: &'static str,
    /// Properties: (name, JSON type, description, required).
    pub params: &'static [(&'static str, &'static str, &'static str, bool)],
}

const MANAGER: &[Role] = &[Role::Manager];
const WORKERS: &[Role] = &[Role::Worker, Role::Followup];
const EVERYONE: &[Role] = &[Role::Manager, Role::Worker, Role::Followup];

/// Every tool foreman offers.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "spawn_worker",
        roles: MANAGER,
        description: "Start a worker on one task. It gets its own checkout and does not see your conversation, so give it everything it needs. Returns the worker's id.",
        params: &[
            (
                "title",
                "string",
                "A short name for the task (at most 200 characters).",
                true,
            ),
            ("instructions", "string", "What to do, in full.", true),
            (
                "depends_on",
                "array",
                "Ids of workers that must succeed before this one starts; it continues in their checkout.",
                false,
            ),
        ],
    },
    ToolSpec {
        name: "list_workers",
        roles: MANAGER,
        description: "List every worker of this objective with its status and result.",
        params: &[],
    },
    ToolSpec {
        name: "message_worker",
        roles: MANAGER,
        description: "Send a worker more information; it reads it in its next turn.",
        params: &[
            ("worker", "integer", "The worker's id.", true),
            ("message", "string", "The message.", true),
        ],
    },
    ToolSpec {
        name: "cancel_worker",
        roles: MANAGER,
        description: "Stop a worker. Workers that depend on it are cancelled too.",
        params: &[("worker", "integer", "The worker's id.", true)],
    },
    ToolSpec {
        name: "publish_pr",
        roles: MANAGER,
        description: "Turn a finished worker's changes into a pull request: foreman commits and pushes its branch and opens the pull request (or updates the one already open from that branch).",
        params: &[
            (
                "worker",
                "integer",
                "The worker whose changes to publish.",
                true,
            ),
            ("title", "string", "The pull request's title.", true),
            (
                "body",
                "string",
                "The pull request's description: what changed and why.",
                true,
            ),
            (
                "closes_issue",
                "boolean",
                "True when this pull request completes the issue (it links `Closes #N`); false when it is one part of it (`Part of #N`).",
                true,
            ),
            (
                "force_reason",
                "string",
                "Only to overwrite a branch that moved on upstream: why that is right.",
                false,
            ),
        ],
    },
    ToolSpec {
        name: "propose_plan",
        roles: MANAGER,
        description: "Post your plan for a human to approve, when the repository asks for approval before workers start. End your turn afterwards.",
        params: &[(
            "plan",
            "string",
            "The plan: what each worker will do, in order.",
            true,
        )],
    },
    ToolSpec {
        name: "ask_user",
        roles: EVERYONE,
        description: "Ask the humans on the issue a question. End your turn afterwards; the answer arrives as a new message.",
        params: &[(
            "question",
            "string",
            "The question, with the context a human needs to answer it.",
            true,
        )],
    },
    ToolSpec {
        name: "comment_issue",
        roles: MANAGER,
        description: "Post a comment on the issue.",
        params: &[("body", "string", "The comment (Markdown).", true)],
    },
    ToolSpec {
        name: "mark_objective_done",
        roles: MANAGER,
        description: "Say the objective is complete. All workers must have finished. With pull requests still open, the objective completes when they are merged.",
        params: &[
            (
                "summary",
                "string",
                "What was done, for the humans; when nothing was merged, why.",
                true,
            ),
            (
                "no_change_needed",
                "boolean",
                "True only when the issue needs no change at all (foreman then closes it as not planned). When nothing was merged and a change is still needed, leave it out: the issue stays open for the humans.",
                false,
            ),
        ],
    },
    ToolSpec {
        name: "abandon_pr",
        roles: MANAGER,
        description: "Record that a pull request closed without being merged is not needed, and why. The objective can then complete without it.",
        params: &[
            ("number", "integer", "The pull request's number.", true),
            ("reason", "string", "Why its work is not needed.", true),
        ],
    },
    ToolSpec {
        name: "report_result",
        roles: WORKERS,
        description: "Report the result of your task to your manager. Call it once, when you are done.",
        params: &[(
            "summary",
            "string",
            "What you did, what changed, what is left.",
            true,
        )],
    },
    ToolSpec {
        name: "note",
        roles: WORKERS,
        description: "Record progress (shown to your manager and on the issue's status).",
        params: &[("text", "string", "A short progress note.", true)],
    },
];

/// The tool names a role may call.
pub fn tools_of(role: Role) -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|t| t.roles.contains(&role))
        .map(|t| t.name)
        .collect()
}
