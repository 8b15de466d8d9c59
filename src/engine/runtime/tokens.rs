//! Credentials a turn gets: the bearer token its MCP calls carry (only its hash is stored), and
//! the installation token foreman's own git commands use for the objective's repository.

use anyhow::Result;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::engine::runtime::Runtime;
use crate::github::app::Access;
use crate::model::Objective;

/// The installation token for the objective's repository, when foreman acts as a GitHub App
/// for it (a repository served without one — a local origin — needs none).
pub async fn installation_token(
    runtime: &Runtime,
    objective: &Objective,
    access: Access,
) -> Result<Option<SecretString>> {
    match (runtime.github.app(), objective.installation_id) {
        (Some(app), Some(installation)) => {
            runtime
                .github
                .may_act(installation, &objective.repository)
                .await?;
            Ok(Some(
                app.installation_token(installation, &objective.repository, access)
                    .await?,
            ))
        }
        _ => Ok(None),
    }
}

/// A fresh random bearer token for a turn.
pub fn new_token() -> SecretString {
    use rand::RngExt;
    let bytes: [u8; 32] = rand::rng().random();
    SecretString::from(format!("fm_{}", hex::encode(bytes)))
}

/// The form a token is stored in: only its hash is ever written down.
pub fn token_hash(token: &SecretString) -> String {
    hex::encode(Sha256::digest(token.expose_secret().as_bytes()))
}
