//! The conformance suite's harness for this backend (feature `testing`): what
//! `tests/conformance.rs` of this crate runs, and what a wrapper of this backend can reuse.

use std::path::Path;

use omnipaxos::storage::StorageResult;
use paxstore_core::{
    conformance::{self, Harness},
    kv::KeyValue,
};

use crate::RocksStorage;

/// Opens the single log of the database in `dir`: the crash test's opener.
pub fn open(dir: &Path) -> StorageResult<RocksStorage<KeyValue>> {
    Ok(RocksStorage::open(dir)?)
}

/// A single-log database in a fresh temporary directory (the last of `dirs`: a reopen without
/// a clean drop opens a copy).
pub struct RocksHarness {
    dirs: Vec<tempfile::TempDir>,
}

impl RocksHarness {
    /// A harness over a fresh temporary directory.
    ///
    /// # Panics
    ///
    /// If no temporary directory can be created (a test set-up failure).
    pub fn new() -> Self {
        RocksHarness {
            dirs: vec![tempfile::tempdir().expect("a temporary directory")],
        }
    }

    fn dir(&self) -> &Path {
        self.dirs.last().expect("a directory").path()
    }
}

impl Default for RocksHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness for RocksHarness {
    type Store = RocksStorage<KeyValue>;

    fn create(&mut self) -> StorageResult<Self::Store> {
        open(self.dir())
    }

    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        // Dropping the last handle closes the database and releases its lock.
        drop(store);
        open(self.dir())
    }

    fn reopen_abandoned(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        // The database stays open (leaked, with its lock); its files as they are now are what
        // a kill would leave.
        let copy = conformance::abandon_to_copy(store, self.dir())?;
        self.dirs.push(copy);
        open(self.dir())
    }

    fn is_persistent(&self) -> bool {
        true
    }
}
