//! Identifier newtypes, so an installation id is never passed where a repository id belongs.

use serde::{Deserialize, Serialize};

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// A GitHub App installation (one install on one account).
    InstallationId
);
int_id!(
    /// A GitHub repository's numeric id (stable across renames).
    RepositoryId
);
int_id!(
    /// The inbox's own arrival order of a stored delivery.
    DeliverySeq
);

/// GitHub's `X-GitHub-Delivery` id: unique per delivery, repeated on redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub String);

impl std::fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

int_id!(
    /// An objective: the work for one issue.
    ObjectiveId
);
int_id!(
    /// A session: one agent conversation.
    SessionId
);
int_id!(
    /// A question for a human.
    QuestionId
);
int_id!(
    /// A workspace: a git checkout sessions work in.
    WorkspaceId
);
