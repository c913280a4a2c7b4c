//! The conformance suite's harness for this backend (feature `testing`): what
//! `tests/conformance.rs` of this crate runs, and what a wrapper of this backend can reuse.

use std::path::Path;

use omnipaxos::storage::StorageResult;
use paxstore_core::{
    conformance::{self, Harness},
    kv::KeyValue,
};

use crate::{FilesOptions, FilesStorage};

/// Small segments, so that the suite's logs rotate and trims delete whole segments.
pub fn options() -> FilesOptions {
    FilesOptions::new().segment_size(256 << 10)
}

/// Opens the store in `dir` with [`options`]: the crash test's opener.
pub fn open(dir: &Path) -> StorageResult<FilesStorage<KeyValue>> {
    Ok(FilesStorage::open_with(dir, options())?)
}

/// A store in a fresh temporary directory (the last of `dirs`: a reopen without a clean drop
/// opens a copy).
pub struct FilesHarness {
    dirs: Vec<tempfile::TempDir>,
}

impl FilesHarness {
    /// A harness over a fresh temporary directory.
    ///
    /// # Panics
    ///
    /// If no temporary directory can be created (a test set-up failure).
    pub fn new() -> Self {
        FilesHarness {
            dirs: vec![tempfile::tempdir().expect("a temporary directory")],
        }
    }

    fn dir(&self) -> &Path {
        self.dirs.last().expect("a directory").path()
    }
}

impl Default for FilesHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness for FilesHarness {
    type Store = FilesStorage<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        open(self.dir())
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        drop(store);
        open(self.dir())
    }
    fn reopen_abandoned(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        // Leaked with its lock and its purge thread; the files as they are now are what a
        // kill would leave.
        let copy = conformance::abandon_to_copy(store, self.dir())?;
        self.dirs.push(copy);
        open(self.dir())
    }
    fn is_persistent(&self) -> bool {
        true
    }
}
