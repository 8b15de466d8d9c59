//! Links to foreman's web view, from what foreman writes elsewhere: the status comment and
//! the commits it makes. They need foreman's public address (`FOREMAN_PUBLIC_URL`); without
//! one there are no links, and a commit names its session by number.

use super::{ObjectiveId, SessionId};

/// The trailer a commit foreman makes carries: the session whose work it is.
pub const SESSION_TRAILER: &str = "Foreman-Session";

/// An objective's page.
pub fn objective_url(base: &str, id: ObjectiveId) -> String {
    format!("{}/objectives/{id}", base.trim_end_matches('/'))
}

/// A session's page.
pub fn session_url(base: &str, id: SessionId) -> String {
    format!("{}/sessions/{id}", base.trim_end_matches('/'))
}

/// A commit message: `message`, then a trailer naming the session that wrote the work (its
/// page, where foreman has a public address).
pub fn with_session_trailer(message: &str, base: Option<&str>, id: SessionId) -> String {
    let session = match base {
        Some(base) => session_url(base, id),
        None => format!("#{id}"),
    };
    format!("{}\n\n{SESSION_TRAILER}: {session}", message.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_name_the_session_that_wrote_them() {
        assert_eq!(
            with_session_trailer(
                "Fix it\n\nfixed\n",
                Some("https://f.example/"),
                SessionId(7)
            ),
            "Fix it\n\nfixed\n\nForeman-Session: https://f.example/sessions/7"
        );
        assert_eq!(
            with_session_trailer("Fix it", None, SessionId(7)),
            "Fix it\n\nForeman-Session: #7"
        );
        assert_eq!(
            objective_url("https://f.example", ObjectiveId(3)),
            "https://f.example/objectives/3"
        );
    }
}
