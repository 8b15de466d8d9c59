//! What foreman says on issues besides its status comment: short replies to commands, to
//! people who may not do what they tried, and about a broken config file. Kept together
//! (and snapshot-tested) so their wording is reviewed like code.

use crate::model::repo_config::{ConfigError, Permission, Permissions};

/// Who may do something, in words: "people with write permission or higher (or @dana)".
fn who_may(least: Permission, permissions: &Permissions) -> String {
    let extra = if permissions.users.is_empty() {
        String::new()
    } else {
        let users: Vec<String> = permissions.users.iter().map(|u| format!("@{u}")).collect();
        format!(" (or {})", users.join(", "))
    };
    format!("people with {} permission or higher{extra}", least.as_str())
}

/// To someone who added the trigger label without the right to.
pub fn may_not_trigger(login: &str, label: &str, permissions: &Permissions) -> String {
    format!(
        "@{login} the `{label}` label starts foreman only when {} add it, so nothing was \
         started. Ask one of them to add it.",
        who_may(permissions.trigger, permissions)
    )
}

/// A label on a pull request.
pub fn not_an_issue(label: &str) -> String {
    format!(
        "foreman works on issues, not pull requests, so the `{label}` label does nothing \
         here. Label the issue this pull request is for instead."
    )
}

/// The config file could not be read; the objective did not start.
pub fn bad_config(error: &ConfigError) -> String {
    format!(
        "foreman did not start: the repository's configuration has a mistake.\n\n\
         > {error}\n\n\
         Fix `.github/foreman.yml` on the default branch, then remove and add the label again."
    )
}

/// The answer to `/foreman help`, and to commands foreman does not know.
pub fn help(unknown: Option<&str>) -> String {
    let lead = match unknown {
        Some(command) => format!("foreman does not know `/foreman {command}`. "),
        None => String::new(),
    };
    format!(
        "{lead}Commands, in a comment of their own:\n\n\
         - `/foreman status` — refresh the status comment now\n\
         - `/foreman stop` — stop all work on this issue\n\
         - `/foreman resume` — continue after a budget or an escalation stopped the work\n\
         - `/foreman retry` — start over with a fresh attempt\n\
         - `/foreman approve` — approve the manager's plan (when the repository asks for that)\n\
         - `/foreman help` — this list\n\n\
         A reply to one of foreman's questions answers it (quote the question when several are \
         open); any other comment from a maintainer is passed to the manager agent as new \
         information."
    )
}

/// `/foreman resume` (or `stop`, `status`) with nothing running.
pub fn nothing_running(command: &str) -> String {
    format!("There is no foreman work on this issue to {command}. Add the label to start.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_well() {
        let mut permissions = Permissions::default();
        let mut all = String::new();
        all += &may_not_trigger("bob", "foreman", &permissions);
        all += "\n\n---\n\n";
        permissions.users = vec!["dana".into()];
        permissions.trigger = Permission::Maintain;
        all += &may_not_trigger("bob", "foreman", &permissions);
        all += "\n\n---\n\n";
        all += &not_an_issue("foreman");
        all += "\n\n---\n\n";
        all += &bad_config(&ConfigError {
            message: "unknown field `budgit`, expected one of `trigger_label`, `manager`".into(),
            line: Some(2),
        });
        all += "\n\n---\n\n";
        all += &help(None);
        all += "\n\n---\n\n";
        all += &help(Some("dance"));
        all += "\n\n---\n\n";
        all += &nothing_running("resume");
        crate::assert_text_snapshot!("replies", &all);
    }
}
