//! Workspaces (git checkouts) and the pull requests their work becomes.

use super::{ObjectiveId, SessionId, Timestamp, WorkspaceId};

/// Where a workspace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceStatus {
    /// Being fetched and checked out.
    Preparing,
    /// Checked out; sessions can work in it.
    Ready,
    /// Could not be prepared (the error says why).
    Failed,
    /// GC is reclaiming it: no session may start using it (see `crate::model::gc`).
    Reclaiming,
    /// Its checkout has been removed.
    Archived,
}

impl WorkspaceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Preparing => "preparing",
            WorkspaceStatus::Ready => "ready",
            WorkspaceStatus::Failed => "failed",
            WorkspaceStatus::Reclaiming => "reclaiming",
            WorkspaceStatus::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<WorkspaceStatus> {
        Some(match s {
            "preparing" => WorkspaceStatus::Preparing,
            "ready" => WorkspaceStatus::Ready,
            "failed" => WorkspaceStatus::Failed,
            "reclaiming" => WorkspaceStatus::Reclaiming,
            "archived" => WorkspaceStatus::Archived,
            _ => return None,
        })
    }
}

/// A stored workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub objective_id: ObjectiveId,
    pub created_by: Option<SessionId>,
    pub repository: String,
    /// The machine it lives on (`local` for the foreman host).
    pub target: String,
    pub path: String,
    /// The branch its work is published on; `None` for a read-only checkout.
    pub branch: Option<String>,
    pub base_ref: String,
    pub base_sha: Option<String>,
    pub status: WorkspaceStatus,
    pub error: Option<String>,
    /// The session that may write to it now.
    pub holder: Option<SessionId>,
}

/// A pull request foreman made (or adopted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub id: i64,
    pub objective_id: ObjectiveId,
    pub workspace_id: Option<WorkspaceId>,
    pub session_id: Option<SessionId>,
    pub repository: String,
    pub number: u64,
    pub branch: String,
    pub base_ref: String,
    pub head_sha: String,
    pub state: super::pulls::PullState,
    /// What its head's checks add up to.
    pub checks: super::pulls::Checks,
    pub title: String,
    pub url: String,
    pub closes_issue: bool,
    pub updated_at: Timestamp,
    /// What GitHub last said of merging it, if it has said.
    pub mergeable: Option<super::pulls::Mergeable>,
    /// The manager's decision about it, once closed without merge.
    pub decision: Option<String>,
    /// The head commit `checks` is about, and what failed there.
    pub checks_sha: Option<String>,
    pub checks_detail: Option<String>,
}

/// The branch a session's work is published on: `foreman/<issue>-<slug>-<short id>`.
pub fn branch_name(issue: u64, title: &str, session: SessionId) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 32 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "work" } else { slug };
    format!("foreman/{issue}-{slug}-s{session}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_safe_and_unique_per_session() {
        assert_eq!(
            branch_name(42, "Fix the widget: NOW!", SessionId(7)),
            "foreman/42-fix-the-widget-now-s7"
        );
        assert_eq!(
            branch_name(1, "日本語 ✓", SessionId(3)),
            "foreman/1-work-s3"
        );
        let long = branch_name(1, &"a very long title ".repeat(10), SessionId(9));
        assert!(
            long.len() < 60 && long.ends_with("-s9") && !long.contains("--"),
            "{long}"
        );
        for s in [
            WorkspaceStatus::Preparing,
            WorkspaceStatus::Ready,
            WorkspaceStatus::Failed,
            WorkspaceStatus::Reclaiming,
            WorkspaceStatus::Archived,
        ] {
            assert_eq!(WorkspaceStatus::parse(s.as_str()), Some(s));
        }
    }
}
