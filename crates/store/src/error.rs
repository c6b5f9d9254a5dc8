//! What can go wrong with a run store.

/// A run store error. Each names the store it happened in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or created.
    #[error("run store {store}: cannot open: {message}")]
    Open {
        /// Where the store is.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// A SQLite statement failed.
    #[error("run store {store}: {source}")]
    Sqlite {
        /// Where the store is.
        store: String,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A Postgres statement failed.
    #[cfg(feature = "postgres")]
    #[error("run store {store}: {source}")]
    Postgres {
        /// Where the store is (the URL without its password).
        store: String,
        /// The error.
        #[source]
        source: postgres::Error,
    },
    /// A stored value could not be read back.
    #[error("run store {store}: run {run_id}: corrupt {what}: {message}")]
    Corrupt {
        /// Where the store is.
        store: String,
        /// The run.
        run_id: String,
        /// Which value.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store key could not be had (or random bytes for sealing a value).
    #[error("run store {store}: {source}")]
    Key {
        /// Where the store is.
        store: String,
        /// Why.
        #[source]
        source: crate::KeyError,
    },
    /// The store was written with another key than this process has.
    #[error(
        "run store {store} was written with key {stored}, this process has key {current}: set OPERONX_STORE_KEY to \
         the key the store's other processes use"
    )]
    WrongKey {
        /// Where the store is.
        store: String,
        /// The id of the key the store was written with.
        stored: String,
        /// The id of this process's key.
        current: String,
    },
    /// No run with this id.
    #[error("run store {store}: no run {run_id}")]
    NotFound {
        /// Where the store is.
        store: String,
        /// The run id asked for.
        run_id: String,
    },
    /// The run already exists (creating it again).
    #[error("run store {store}: run {run_id} already exists")]
    Exists {
        /// Where the store is.
        store: String,
        /// The run.
        run_id: String,
    },
    /// The run is held by a live process.
    #[error("run store {store}: run {run_id} is running (owned by {owner}); wait for it, or for its lease to expire")]
    Busy {
        /// Where the store is.
        store: String,
        /// The run.
        run_id: String,
        /// Its owner, as stored.
        owner: String,
    },
    /// The run is queued: a worker will run it (it is not resumed by hand).
    #[error("run store {store}: run {run_id} is queued; a worker will run it (cancel it to stop it)")]
    Queued {
        /// Where the store is.
        store: String,
        /// The run.
        run_id: String,
    },
    /// The run finished: there is nothing to resume.
    #[error("run store {store}: run {run_id} is done; there is nothing to resume")]
    Finished {
        /// Where the store is.
        store: String,
        /// The run.
        run_id: String,
    },
    /// Another process claimed the run since this one took it.
    #[error("run store {store}: run {run_id} was taken over by another process; this one stops writing it")]
    LeaseLost {
        /// Where the store is.
        store: String,
        /// The run.
        run_id: String,
    },
    /// The consistency check found problems.
    #[error("run store {store}: integrity check failed: {problems}")]
    Integrity {
        /// Where the store is.
        store: String,
        /// What was found.
        problems: String,
    },
    /// The store does not do this.
    #[error("run store {store} does not support {what}")]
    Unsupported {
        /// Where the store is.
        store: String,
        /// What it does not do.
        what: String,
    },
    /// The journal writer is gone (its thread ended).
    #[error("run store {store}: the journal writer stopped: {message}")]
    Writer {
        /// Where the store is.
        store: String,
        /// Why.
        message: String,
    },
}

impl StoreError {
    /// [`StoreError::Unsupported`].
    pub fn unsupported(store: &str, what: &str) -> Self {
        StoreError::Unsupported { store: store.to_string(), what: what.to_string() }
    }
}
