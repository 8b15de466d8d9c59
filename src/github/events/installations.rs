//! `installation`, `installation_repositories` and `ping`: the App's installations and hooks.

use super::*;

/// The `installation` object of installation events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Installation {
    /// Installation id.
    pub id: i64,
    /// The account the App is installed on.
    pub account: Option<Account>,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    /// When the installation was suspended; `None` when active.
    pub suspended_at: Option<String>,
}

/// The `hook` object of a ping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hook {
    /// Hook id.
    pub id: Option<i64>,
    /// `Repository`, `Organization` or `App`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// App id, for hooks that belong to a GitHub App.
    pub app_id: Option<i64>,
    /// Events the hook is subscribed to.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<String>,
    /// Delivery settings.
    pub config: Option<HookConfig>,
}

/// Delivery settings of a hook (the secret is never read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HookConfig {
    /// `json` or `form`.
    pub content_type: Option<String>,
    /// Where deliveries are sent.
    pub url: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------

/// `ping`: sent once when the webhook is created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PingEvent {
    /// A random GitHub aphorism.
    pub zen: Option<String>,
    /// Id of the hook that was created.
    pub hook_id: Option<i64>,
    /// The hook.
    pub hook: Option<Hook>,
    /// Present for repository hooks.
    pub repository: Option<Repository>,
    /// Who created the hook.
    pub sender: Option<User>,
    /// Present when the App's hook is pinged for an installation.
    pub installation: Option<InstallationRef>,
}

/// `installation`: the App was installed, uninstalled, suspended or unsuspended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationEvent {
    /// What happened.
    pub action: Action<InstallationAction>,
    /// The installation.
    pub installation: Installation,
    /// Repositories the installation covers (created / deleted); empty when not sent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repositories: Vec<RepositorySummary>,
    /// Who did it.
    pub sender: Option<User>,
}

/// `installation_repositories`: repositories added to or removed from an installation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationRepositoriesEvent {
    /// What happened.
    pub action: Action<InstallationRepositoriesAction>,
    /// The installation.
    pub installation: Installation,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    /// Repositories added.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repositories_added: Vec<RepositorySummary>,
    /// Repositories removed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repositories_removed: Vec<RepositorySummary>,
    /// Who did it.
    pub sender: Option<User>,
}
