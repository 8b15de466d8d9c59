//! Markers: the hidden HTML comments by which foreman knows its own comments on GitHub again —
//! after a retry whose first attempt had an unknown outcome, or when a human edits around them.

use super::{ObjectiveId, QuestionId};

/// A new unique marker.
pub fn new_marker() -> String {
    use rand::RngExt;
    let bytes: [u8; 12] = rand::rng().random();
    hex::encode(bytes)
}

/// The marker of one of an objective's comments: its kind, an id, and the objective's random
/// nonce (objectives from before nonces have none).
pub fn objective_marker(kind: &str, id: impl std::fmt::Display, nonce: &str) -> String {
    if nonce.is_empty() {
        format!("{kind}-{id}")
    } else {
        format!("{kind}-{id}-{nonce}")
    }
}

/// The hidden HTML comment that carries a marker in a GitHub comment.
pub fn marker_comment(marker: &str) -> String {
    format!("<!-- foreman:{marker} -->")
}

/// The first version of the status comment (carrying `marker`), posted when the objective
/// starts.
pub fn initial_comment(marker: &str) -> String {
    format!(
        "**foreman** is starting work on this issue: a manager agent is reading it now. This \
         comment will show its progress.\n\n{}",
        marker_comment(marker)
    )
}

/// The marker of an objective's status comment.
pub fn status_marker(objective: ObjectiveId, nonce: &str) -> String {
    objective_marker("status", objective, nonce)
}

/// The marker tying a question to its comment.
pub fn question_marker(id: QuestionId, nonce: &str) -> String {
    objective_marker("question", id, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_comment_carries_the_marker() {
        let marker = status_marker(ObjectiveId(7), "ab12");
        assert!(initial_comment(&marker).ends_with("<!-- foreman:status-7-ab12 -->"));
        assert_eq!(status_marker(ObjectiveId(7), ""), "status-7");
    }
}
