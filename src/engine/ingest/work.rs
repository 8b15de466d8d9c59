//! What a delivery's handler works with: reads through the store, writes through one
//! transaction that the processor also marks the delivery handled in, and how it ended.

use anyhow::Result;

use crate::store::{Store, Tx};

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its effects are applied.
    Processed,
    /// Deliberately not acted on, for the reason given.
    Skipped(String),
}

/// A handler's access to the store: reads through [`Work::store`], writes through the
/// transaction [`Work::tx`] opens on first use.
pub struct Work<'s> {
    store: &'s Store,
    tx: Option<Tx>,
}

impl<'s> Work<'s> {
    pub fn new(store: &'s Store) -> Work<'s> {
        Work { store, tx: None }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// The handler's write transaction, begun now if not yet.
    pub async fn tx(&mut self) -> Result<&mut Tx> {
        if self.tx.is_none() {
            self.tx = Some(self.store.begin().await?);
        }
        Ok(self.tx.as_mut().expect("transaction just begun"))
    }

    /// Whether the handler wrote anything.
    pub fn wrote(&self) -> bool {
        self.tx.is_some()
    }

    /// The transaction to finish the delivery in.
    pub async fn into_tx(mut self) -> Result<Tx> {
        self.tx().await?;
        Ok(self.tx.expect("transaction just begun"))
    }
}
