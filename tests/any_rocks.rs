//! `AnyStorage` over RocksDB: several logs of one database open at once in one process, and
//! rocks specs whose paths hold `#`.

use std::fs;

use omnipaxos::storage::Storage;
use paxstore::{AnyError, AnyStorage, Backend, StorageSpec, StoreOptions, SyncPolicy};
use paxstore_core::kv::KeyValue;

fn kv(i: u64) -> KeyValue {
    KeyValue::new("k", i, 64)
}

#[test]
fn several_logs_of_one_database_are_open_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let spec = |log: &str| {
        StorageSpec::new(Backend::Rocks, &db, Some(log))
            .unwrap()
            .to_string()
    };
    let mut a = AnyStorage::<KeyValue>::open(&spec("a")).unwrap();
    let mut b = AnyStorage::<KeyValue>::open(&spec("b")).unwrap();
    // The single log of the same database, through another path to it.
    let mut single = AnyStorage::<KeyValue>::open(&format!("rocks:{}/.", db.display())).unwrap();
    a.append_entry(kv(1)).unwrap();
    b.append_entries(vec![kv(1), kv(2)]).unwrap();
    single.append_entries(vec![kv(1), kv(2), kv(3)]).unwrap();
    // One log has one handle, shared database or not.
    let err = AnyStorage::<KeyValue>::open(&spec("a")).unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
    // A shared database keeps the sync policy it was opened with.
    let err =
        AnyStorage::<KeyValue>::open_with(&spec("c"), StoreOptions::new().sync(SyncPolicy::Never))
            .unwrap_err();
    assert!(err.to_string().contains("other options"), "{err}");
    drop((a, b, single));
    // All closed: the database opens again, with all three logs.
    let store = paxstore::rocks::RocksStore::open(&db).unwrap();
    assert_eq!(store.logs().unwrap(), ["a", "b", "log"]);
    assert_eq!(
        store.log::<KeyValue>("b").unwrap().get_log_len().unwrap(),
        2
    );
}

#[test]
fn a_hash_in_a_rocks_path_round_trips_and_is_never_taken_for_a_log_silently() {
    let dir = tempfile::tempdir().unwrap();
    let hashed = dir.path().join("a#b");
    let spec = Backend::Rocks.spec(&hashed);
    let printed = spec.to_string();
    assert!(printed.ends_with("a##b"), "{printed}");
    let mut log = AnyStorage::<KeyValue>::open(&printed).unwrap();
    log.append_entry(kv(7)).unwrap();
    drop(log);
    assert!(hashed.join("CURRENT").exists());
    assert!(!dir.path().join("a").exists());

    // Written with a single `#`, it names log `b` of directory `a`, which does not exist:
    // refused, and nothing is created.
    let raw = format!("rocks:{}", hashed.display());
    let err = AnyStorage::<KeyValue>::open(&raw).unwrap_err();
    assert!(matches!(err, AnyError::AmbiguousSpec { .. }), "{err}");
    assert!(
        err.to_string().contains(&printed),
        "suggests the escaped spec: {err}"
    );
    assert!(!dir.path().join("a").exists());
    // Once `a` exists, the spec means what it says.
    fs::create_dir(dir.path().join("a")).unwrap();
    let log = AnyStorage::<KeyValue>::open(&raw).unwrap();
    assert_eq!(log.get_log_len().unwrap(), 0);
}
