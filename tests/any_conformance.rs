//! The conformance suite over `AnyStorage`, once per scheme this build includes: the run-time
//! selection delegates every call faithfully (persistent schemes also run the SIGKILL crash
//! test through `AnyStorage`).

use std::path::Path;

use omnipaxos::storage::StorageResult;
use paxstore::{AnyStorage, Backend, StoreOptions};
use paxstore_core::{
    conformance::{self, Harness},
    kv::KeyValue,
};

/// Stores opened from a spec string of one backend, in a fresh temporary directory (the last
/// of `dirs`: a reopen without a clean drop opens a copy).
pub struct AnyHarness {
    backend: Backend,
    dirs: Vec<tempfile::TempDir>,
}

impl AnyHarness {
    pub fn new(backend: Backend) -> Self {
        AnyHarness {
            backend,
            dirs: vec![tempfile::tempdir().expect("a temporary directory")],
        }
    }

    fn dir(&self) -> &Path {
        self.dirs.last().expect("a directory").path()
    }
}

/// Opens the `backend` store in `dir` through its spec string, as a user would.
pub fn open(backend: Backend, dir: &Path) -> StorageResult<AnyStorage<KeyValue>> {
    let spec = backend.spec(dir).to_string();
    Ok(AnyStorage::open_with(&spec, StoreOptions::default())?)
}

impl Harness for AnyHarness {
    type Store = AnyStorage<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        open(self.backend, self.dir())
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        if !self.backend.is_persistent() {
            return Ok(store);
        }
        drop(store);
        open(self.backend, self.dir())
    }
    fn reopen_abandoned(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        if !self.backend.is_persistent() {
            return Ok(store);
        }
        // Leaked with its lock; its files as they are now are what a kill would leave.
        let copy = conformance::abandon_to_copy(store, self.dir())?;
        self.dirs.push(copy);
        open(self.backend, self.dir())
    }
    fn is_persistent(&self) -> bool {
        self.backend.is_persistent()
    }
}

paxstore_core::conformance_tests!(any_memory, AnyHarness::new(Backend::Memory));

#[cfg(feature = "files")]
paxstore_core::conformance_tests!(
    any_files,
    AnyHarness::new(Backend::Files),
    crash = |dir: &Path| open(Backend::Files, dir)
);

#[cfg(feature = "rocks")]
paxstore_core::conformance_tests!(
    any_rocks,
    AnyHarness::new(Backend::Rocks),
    crash = |dir: &Path| open(Backend::Rocks, dir)
);

/// A named log of a shared RocksDB database (`rocks:<dir>#<log>`) is a store of its own.
#[cfg(feature = "rocks")]
#[test]
fn rocks_named_logs_are_separate() {
    use omnipaxos::storage::Storage;
    let dir = tempfile::tempdir().unwrap();
    let a_spec = format!("rocks:{}#shard-a", dir.path().display());
    let mut a = AnyStorage::<KeyValue>::open(&a_spec).unwrap();
    a.append_entry(KeyValue::new("k", 1, 8)).unwrap();
    drop(a);
    let b_spec = format!("rocks:{}#shard-b", dir.path().display());
    let b = AnyStorage::<KeyValue>::open(&b_spec).unwrap();
    assert_eq!(b.get_log_len().unwrap(), 0);
    drop(b);
    let a = AnyStorage::<KeyValue>::open(&a_spec).unwrap();
    assert_eq!(a.get_log_len().unwrap(), 1);
}

/// Opening a spec of a backend this build lacks, or of no backend, fails with a clear error.
#[test]
fn unknown_and_missing_backends_are_clear_errors() {
    let err = AnyStorage::<KeyValue>::open("tape:/dev/st0").unwrap_err();
    assert!(
        err.to_string().contains("unknown backend \"tape\""),
        "{err}"
    );
    for backend in Backend::ALL {
        if !backend.is_compiled_in() {
            let spec = backend.spec(Path::new("/tmp/x")).to_string();
            let err = AnyStorage::<KeyValue>::open(&spec).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("--features {}", backend.feature())),
                "{err}"
            );
        }
    }
}
