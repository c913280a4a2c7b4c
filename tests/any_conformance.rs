//! The conformance suite over `AnyStorage`, once per scheme this build includes: the run-time
//! selection delegates every call faithfully (persistent schemes also run the SIGKILL crash
//! test through `AnyStorage`).

use std::path::Path;

use omnipaxos::storage::StorageResult;
use paxstore::{AnyStorage, Backend, StoreOptions};
use paxstore_core::{
    conformance::{DirHarness, Harness},
    kv::KeyValue,
};

/// Opens the `backend` store in `dir` through its spec string, as a user would.
pub fn open(backend: Backend, dir: &Path) -> StorageResult<AnyStorage<KeyValue>> {
    let spec = backend.spec(dir).to_string();
    Ok(AnyStorage::open_with(&spec, StoreOptions::default())?)
}

/// `AnyStorage` opened from the spec `memory`: not persistent, a reopen keeps the store.
pub struct AnyMemoryHarness;

impl Harness for AnyMemoryHarness {
    type Store = AnyStorage<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        Ok(AnyStorage::open("memory")?)
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        Ok(store)
    }
    fn is_persistent(&self) -> bool {
        false
    }
}

/// Stores of a persistent `backend` opened from their spec strings, in a fresh temporary
/// directory.
pub fn harness(backend: Backend) -> DirHarness<AnyStorage<KeyValue>> {
    DirHarness::new(move |dir: &Path| open(backend, dir))
}

paxstore_core::conformance_tests!(any_memory, AnyMemoryHarness);

#[cfg(feature = "files")]
paxstore_core::conformance_tests!(
    any_files,
    harness(Backend::Files),
    crash = |dir: &Path| open(Backend::Files, dir)
);

/// The log `suite` of the many-logs store in `dir`, opened from its spec string
/// (`files-multi:<dir>#suite`).
#[cfg(feature = "files")]
pub fn open_files_multi(dir: &Path) -> StorageResult<AnyStorage<KeyValue>> {
    let spec = paxstore::StorageSpec::new(Backend::FilesMulti, dir, Some("suite"))?.to_string();
    Ok(AnyStorage::open_with(&spec, StoreOptions::default())?)
}

#[cfg(feature = "files")]
paxstore_core::conformance_tests!(
    any_files_multi,
    DirHarness::new(open_files_multi),
    crash = open_files_multi
);

#[cfg(feature = "rocks")]
paxstore_core::conformance_tests!(
    any_rocks,
    harness(Backend::Rocks),
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

/// Logs of one `files-multi` store, open at once through their specs, are stores of their own
/// sharing one store; a spec without `#<log>` names the log `default`.
#[cfg(feature = "files")]
#[test]
fn files_multi_logs_share_one_store() {
    use omnipaxos::storage::Storage;
    let dir = tempfile::tempdir().unwrap();
    let spec = |log: &str| format!("files-multi:{}{log}", dir.path().display());
    let mut a = AnyStorage::<KeyValue>::open(&spec("#shard-a")).unwrap();
    let mut b = AnyStorage::<KeyValue>::open(&spec("#shard-b")).unwrap();
    let mut d = AnyStorage::<KeyValue>::open(&spec("")).unwrap();
    assert_eq!(a.backend(), Backend::FilesMulti);
    a.append_entry(KeyValue::new("k", 1, 8)).unwrap();
    b.append_entries(vec![KeyValue::new("k", 2, 8); 2]).unwrap();
    d.append_entries(vec![KeyValue::new("k", 3, 8); 3]).unwrap();
    assert!(
        AnyStorage::<KeyValue>::open(&spec("#shard-a")).is_err(),
        "one handle per log"
    );
    drop((a, b, d));
    let store = paxstore::files::FilesStore::open(dir.path()).unwrap();
    assert_eq!(store.logs(), ["default", "shard-a", "shard-b"]);
    drop(store);
    for (log, len) in [("#shard-a", 1), ("#shard-b", 2), ("", 3)] {
        let s = AnyStorage::<KeyValue>::open(&spec(log)).unwrap();
        assert_eq!(s.get_log_len().unwrap(), len, "{log}");
    }
}
