//! Pieces every payload shares: users, accounts, repositories, labels.

use super::*;

/// Reads `null` (or a missing field, with `#[serde(default)]`) as the type's default:
/// an empty body, an empty list.
pub(super) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A GitHub account as it appears in `sender`, `user`, `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// Login name, e.g. `octocat` or `foreman[bot]`.
    pub login: String,
    /// Numeric account id.
    pub id: i64,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl User {
    /// True for App bot accounts: `type` is `Bot` or the login ends with `[bot]`.
    pub fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some(BOT_USER_TYPE) || self.login.ends_with(BOT_LOGIN_SUFFIX)
    }
}

/// The account an installation belongs to. Enterprise accounts have a `slug` and no
/// `login`, so both are optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// Login of a user or organization account.
    pub login: Option<String>,
    /// Slug of an enterprise account.
    pub slug: Option<String>,
    /// Numeric account id.
    pub id: Option<i64>,
    /// `User`, `Organization` or `Enterprise`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl Account {
    /// The login, or the enterprise slug when there is no login.
    pub fn name(&self) -> Option<&str> {
        self.login.as_deref().or(self.slug.as_deref())
    }
}

/// The repository an event happened in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    /// Numeric repository id (stable across renames).
    pub id: i64,
    /// Name without the owner, e.g. `Hello-World`.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// The owning account.
    pub owner: Option<User>,
    /// Default branch, e.g. `main`.
    pub default_branch: Option<String>,
    /// Whether the repository is private.
    pub private: Option<bool>,
    /// HTTPS clone URL.
    pub clone_url: Option<String>,
    /// Web URL.
    pub html_url: Option<String>,
}

impl Repository {
    /// The owner's login, from `owner` or else from `full_name`.
    pub fn owner_login(&self) -> Option<&str> {
        match &self.owner {
            Some(owner) => Some(owner.login.as_str()),
            None => self.full_name.split_once('/').map(|(owner, _)| owner),
        }
    }
}

/// A repository as listed by installation events: id and names only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepositorySummary {
    /// Numeric repository id.
    pub id: i64,
    /// Name without the owner.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// Whether the repository is private.
    pub private: Option<bool>,
}

/// The `installation` object of a repository event: just the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct InstallationRef {
    /// Installation id, used to mint an installation token.
    pub id: i64,
}

/// A label, by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    /// Label name as shown on GitHub.
    pub name: String,
}

/// True when `labels` has `name`, compared ASCII-case-insensitively as GitHub does.
pub(super) fn has_label(labels: &[Label], name: &str) -> bool {
    labels
        .iter()
        .any(|label| label.name.eq_ignore_ascii_case(name))
}
