//! The shared conformance suite over every backend the enabled features provide.

use storage_core::conformance::MemoryHarness;

storage_core::conformance_tests!(memory, MemoryHarness);

/// The RocksDB backend, persistent: every case ends with a reopen, and the crash test kills
/// writers with SIGKILL.
#[cfg(feature = "rocks")]
mod rocks_backend {
    use std::path::Path;

    use omnipaxos::storage::StorageResult;
    use storage_core::{
        conformance::{self, Harness},
        kv::KeyValue,
    };
    use storage_rocks::RocksStorage;

    /// A single-log RocksDB store in a fresh temporary directory (the last of `dirs`: a
    /// reopen without a clean drop opens a copy).
    pub struct RocksHarness {
        dirs: Vec<tempfile::TempDir>,
    }

    impl RocksHarness {
        pub fn new() -> Self {
            RocksHarness {
                dirs: vec![tempfile::tempdir().expect("a temporary directory")],
            }
        }

        fn dir(&self) -> &Path {
            self.dirs.last().expect("a directory").path()
        }
    }

    pub fn open(dir: &Path) -> StorageResult<RocksStorage<KeyValue>> {
        Ok(RocksStorage::open(dir)?)
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
            // The database stays open (leaked, with its lock); its files as they are now are
            // what a kill would leave.
            let copy = conformance::abandon_to_copy(store, self.dir())?;
            self.dirs.push(copy);
            open(self.dir())
        }

        fn is_persistent(&self) -> bool {
            true
        }
    }
}

#[cfg(feature = "rocks")]
use rocks_backend::RocksHarness;

#[cfg(feature = "rocks")]
storage_core::conformance_tests!(rocks, RocksHarness::new(), crash = rocks_backend::open);

/// The segment-file backend, persistent: every case ends with a reopen, and the crash test
/// kills writers with SIGKILL.
#[cfg(feature = "files")]
mod files_backend {
    use std::path::Path;

    use omnipaxos::storage::StorageResult;
    use storage_core::{
        conformance::{self, Harness},
        kv::KeyValue,
    };
    use storage_files::{FilesOptions, FilesStorage};

    /// Small segments, so that the suite's logs rotate and trims delete whole segments.
    pub fn options() -> FilesOptions {
        FilesOptions::new().segment_size(256 << 10)
    }

    pub fn open(dir: &Path) -> StorageResult<FilesStorage<KeyValue>> {
        Ok(FilesStorage::open(dir, options())?)
    }

    /// A store in a fresh temporary directory (the last of `dirs`: a reopen without a clean
    /// drop opens a copy).
    pub struct FilesHarness {
        dirs: Vec<tempfile::TempDir>,
    }

    impl FilesHarness {
        pub fn new() -> Self {
            FilesHarness {
                dirs: vec![tempfile::tempdir().expect("a temporary directory")],
            }
        }

        fn dir(&self) -> &Path {
            self.dirs.last().expect("a directory").path()
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
}

#[cfg(feature = "files")]
use files_backend::FilesHarness;

#[cfg(feature = "files")]
storage_core::conformance_tests!(files, FilesHarness::new(), crash = files_backend::open);
