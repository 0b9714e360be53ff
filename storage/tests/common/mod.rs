//! What the store's job tests share: one command applied to a stored job through
//! `repo::transition`, in its own transaction, with the default backoff and no budgets.

use gigafactory_core::backoff::Backoff;
use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, JobId, Millis};
use gigafactory_storage::repo::{self, BudgetBook, RepoError};
use gigafactory_storage::{EmbeddedStore, transact};

/// Applies `cmd` to job `id` by `author` at `now`; a refusal is the error.
pub async fn transition(
    store: &EmbeddedStore,
    id: JobId,
    cmd: Command,
    author: &Author,
    now: Millis,
) -> Result<(), RepoError> {
    let (book, backoff) = (BudgetBook::default(), Backoff::default());
    transact!(store, |tx| repo::transition(
        tx,
        id,
        cmd.clone(),
        author,
        now,
        &backoff,
        &book
    )
    .await)
    .map(drop)
}
