//! The store marker, directories paxstore-rocks must refuse (a database that lost `CURRENT`,
//! foreign files, unmarked databases, other backends' stores), the `flock` that excludes
//! paxstore-files, and sharing one database within a process. Every refusal must leave every
//! file in the directory byte for byte as it was.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use omnipaxos::storage::Storage;
use paxstore_core::identity::{Marker, MARKER_FILE};
use paxstore_core::kv::KeyValue;
use paxstore_core::SyncPolicy;
use paxstore_rocks::{identify, Error, Found, RocksOptions, RocksStorage, RocksStore};

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    paxstore_core::conformance::dir_bytes(dir).unwrap()
}

fn kv(i: u64) -> KeyValue {
    KeyValue::new("k", i, 200)
}

/// A store with 500 entries in log "log"; with `flushed`, closed and reopened once, so that
/// everything is in table files and the live write-ahead log is empty.
fn store_with_data(dir: &Path, flushed: bool) {
    {
        let mut log = RocksStorage::<KeyValue>::open(dir).unwrap();
        log.append_entries((0..500).map(kv).collect()).unwrap();
    }
    if flushed {
        // Recovery flushes the write-ahead log into table files and starts an empty one.
        drop(RocksStorage::<KeyValue>::open(dir).unwrap());
    }
}

fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

/// Opens `dir`, expects a refusal, and checks that nothing in it changed.
fn refused(dir: &Path, options: RocksOptions) -> Error {
    let before = snapshot(dir);
    let err = RocksStore::open_with(dir, options).unwrap_err();
    assert_eq!(
        snapshot(dir),
        before,
        "the refused open changed files: {err}"
    );
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "names the directory: {err}"
    );
    err
}

#[test]
fn a_new_store_is_marked_and_keeps_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/store");
    let store = RocksStore::open(&path).unwrap();
    let marker = store.marker();
    assert_eq!(marker.backend, "rocks");
    assert_eq!(marker.format, paxstore_rocks::FORMAT_VERSION);
    let on_disk = Marker::decode(&fs::read(path.join(MARKER_FILE)).unwrap()).unwrap();
    assert_eq!(on_disk, marker);
    drop(store);
    assert_eq!(RocksStore::open(&path).unwrap().marker(), marker);
    assert_eq!(identify(&path, false).unwrap(), Found::Store(marker));
}

#[test]
fn without_current_a_non_empty_wal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path(), false);
    fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let err = refused(dir.path(), RocksOptions::new());
    assert!(matches!(err, Error::NoCurrent { .. }), "{err}");
    assert!(err.to_string().contains("write-ahead log"), "{err}");
    assert!(err.to_string().contains("Restore CURRENT"), "{err}");
}

#[test]
fn without_current_table_files_and_a_later_manifest_are_refused_even_with_an_empty_wal() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path(), true);
    // The case RocksDB itself does not catch: no write-ahead-log data left.
    let wal: Vec<(String, u64)> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert!(
        !wal.is_empty() && wal.iter().all(|(_, len)| *len == 0),
        "{wal:?}"
    );
    fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let err = refused(dir.path(), RocksOptions::new());
    assert!(matches!(err, Error::NoCurrent { .. }), "{err}");
    let said = err.to_string();
    assert!(
        said.contains("table file") && said.contains(".sst"),
        "{said}"
    );
    assert!(said.contains("manifest `MANIFEST-"), "{said}");
    // Adoption does not help: the database is damaged, not unmarked.
    fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
    let err = refused(dir.path(), RocksOptions::new().adopt_unmarked_store(true));
    assert!(matches!(err, Error::NoCurrent { .. }), "{err}");
}

/// A marked directory holding `files` besides the marker and `LOCK`.
fn marked_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(MARKER_FILE),
        Marker::new("rocks", paxstore_rocks::FORMAT_VERSION).encode(),
    )
    .unwrap();
    fs::write(dir.path().join("LOCK"), b"").unwrap();
    for (name, bytes) in files {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn without_current_each_sign_of_data_alone_is_refused() {
    for (name, needle) in [
        ("000009.sst", "table file `000009.sst`"),
        ("MANIFEST-000005", "manifest `MANIFEST-000005`"),
        ("000004.log", "write-ahead log `000004.log`"),
    ] {
        let dir = marked_with(&[(name, b"data"), ("IDENTITY", b"x")]);
        let err = refused(dir.path(), RocksOptions::new());
        assert!(matches!(err, Error::NoCurrent { .. }), "{name}: {err}");
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[test]
fn a_creation_cut_short_after_the_marker_is_finished() {
    // What a crash during creation can leave: the marker, the lock, RocksDB's first files
    // without CURRENT (RocksDB writes CURRENT before it creates a write-ahead log).
    let dir = marked_with(&[
        ("IDENTITY", b"0f1e2d3c"),
        ("LOG", b"info"),
        ("MANIFEST-000001", b"partial"),
        ("000001.dbtmp", b"MANIFEST-000001\n"),
    ]);
    let marker = Marker::decode(&fs::read(dir.path().join(MARKER_FILE)).unwrap()).unwrap();
    assert_eq!(
        identify(dir.path(), false).unwrap(),
        Found::Unfinished(marker.clone())
    );
    let mut log = RocksStorage::<KeyValue>::open(dir.path()).unwrap();
    assert_eq!(log.store().marker(), marker);
    log.append_entry(kv(1)).unwrap();
    drop(log);
    assert_eq!(
        RocksStorage::<KeyValue>::open(dir.path())
            .unwrap()
            .get_log_len()
            .unwrap(),
        1
    );
    // Only the marker's temporary file: a new store.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("PAXSTORE.tmp"), b"paxst").unwrap();
    assert_eq!(identify(dir.path(), false).unwrap(), Found::Nothing);
    drop(RocksStore::open(dir.path()).unwrap());
    assert!(!dir.path().join("PAXSTORE.tmp").exists());
}

#[test]
fn unmarked_directories_are_refused() {
    // Only LOCK: a database whose files were deleted.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("LOCK"), b"").unwrap();
    for adopt in [false, true] {
        let err = refused(dir.path(), RocksOptions::new().adopt_unmarked_store(adopt));
        assert!(matches!(err, Error::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("`LOCK`"), "{err}");
        assert!(err.to_string().contains("no `PAXSTORE` marker"), "{err}");
    }
    assert_eq!(names(dir.path()), ["LOCK"]);

    // An unrelated file.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = refused(dir.path(), RocksOptions::new().adopt_unmarked_store(true));
    assert!(err.to_string().contains("`notes.txt`"), "{err}");

    // A paxstore-files store that lost its marker: `seg-*.log` is not a RocksDB file.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("seg-0000000000000001.log"), b"segment").unwrap();
    fs::write(dir.path().join("LOCK"), b"").unwrap();
    let err = refused(dir.path(), RocksOptions::new().adopt_unmarked_store(true));
    assert!(
        err.to_string().contains("seg-0000000000000001.log"),
        "{err}"
    );
    assert!(err.to_string().contains("paxstore-files store"), "{err}");
}

#[test]
fn other_files_in_a_store_and_other_backends_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path(), false);
    fs::write(dir.path().join("000004.log.bak"), b"a copy").unwrap();
    let err = refused(dir.path(), RocksOptions::new());
    assert!(matches!(err, Error::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("`000004.log.bak`"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(MARKER_FILE),
        Marker::new("files", 1).encode(),
    )
    .unwrap();
    let err = refused(dir.path(), RocksOptions::new().adopt_unmarked_store(true));
    assert!(err.to_string().contains("a `files` store"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(MARKER_FILE),
        b"paxstore store marker\nbackend: rocks\n",
    )
    .unwrap();
    let err = refused(dir.path(), RocksOptions::new());
    assert!(matches!(err, Error::BadMarker { .. }), "{err}");
}

#[test]
fn an_unmarked_database_is_adopted_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path(), false);
    let old = Marker::decode(&fs::read(dir.path().join(MARKER_FILE)).unwrap()).unwrap();
    fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
    let err = refused(dir.path(), RocksOptions::new());
    assert!(
        err.to_string().contains("adopt_unmarked_store(true)"),
        "{err}"
    );
    assert_eq!(
        identify(dir.path(), true).unwrap(),
        Found::Unmarked,
        "adoptable"
    );
    let log = RocksStorage::<KeyValue>::open_with(
        dir.path(),
        RocksOptions::new().adopt_unmarked_store(true),
    )
    .unwrap();
    assert_eq!(log.get_log_len().unwrap(), 500);
    let new = log.store().marker();
    assert_ne!(new.store_id, old.store_id);
    drop(log);
    let on_disk = Marker::decode(&fs::read(dir.path().join(MARKER_FILE)).unwrap()).unwrap();
    assert_eq!(on_disk, new);
    // From now on it opens without the option.
    drop(RocksStore::open(dir.path()).unwrap());

    // Someone else's RocksDB database is not adopted, and gets no marker.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = paxstore_rocks::rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = paxstore_rocks::rocksdb::DB::open(&opts, dir.path()).unwrap();
        db.put(b"hello", b"world").unwrap();
    }
    let err = refused(dir.path(), RocksOptions::new().adopt_unmarked_store(true));
    assert!(err.to_string().contains("paxstore.meta"), "{err}");
    assert!(!dir.path().join(MARKER_FILE).exists());
}

#[test]
fn an_flock_on_lock_keeps_rocks_out() {
    // What paxstore-files holds while it has the directory open.
    let dir = tempfile::tempdir().unwrap();
    drop(RocksStore::open(dir.path()).unwrap());
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("LOCK"))
        .unwrap();
    fs4::FileExt::try_lock(&held).unwrap();
    let err = RocksStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    drop(held);
    let store = RocksStore::open(dir.path()).unwrap();
    // And the other way round: the flock is held while the store is open.
    let probe = fs::File::open(dir.path().join("LOCK")).unwrap();
    assert!(fs4::FileExt::try_lock(&probe).is_err());
    drop(probe);
    drop(store);
}

/// The locks of this process on the file with inode `ino`, by kind (`FLOCK`, `POSIX`), from
/// `/proc/locks`.
#[cfg(target_os = "linux")]
fn locks_on(ino: u64) -> Vec<String> {
    let me = std::process::id().to_string();
    fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (or "->" for blocked waiters)
            let f = if f.get(1) == Some(&"->") {
                &f[1..]
            } else {
                &f[..]
            };
            let (kind, pid, dev_ino) = (f.get(1)?, f.get(4)?, f.get(5)?);
            (*pid == me && dev_ino.rsplit(':').next()? == ino.to_string()).then(|| kind.to_string())
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn both_locks_are_held_for_the_whole_life_of_the_database() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let ino = fs::metadata(dir.path().join("LOCK")).unwrap().ino();
    let mut kinds = locks_on(ino);
    kinds.sort();
    assert_eq!(kinds, ["FLOCK", "POSIX"]);
    // A second opener in this process, by another path to the same directory, is refused
    // without touching LOCK: closing any descriptor of it would drop RocksDB's fcntl lock.
    let err = RocksStore::open(dir.path().join(".")).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let mut kinds = locks_on(ino);
    kinds.sort();
    assert_eq!(kinds, ["FLOCK", "POSIX"], "a failed open released a lock");
    drop(store);
    assert!(locks_on(ino).is_empty());
}

#[test]
fn open_shared_shares_one_database_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let a = RocksStore::open_shared(dir.path(), RocksOptions::new()).unwrap();
    let mut log_a = a.log::<KeyValue>("a").unwrap();
    drop(a);
    // Another path to the same directory finds the same store.
    let b = RocksStore::open_shared(dir.path().join("."), RocksOptions::new()).unwrap();
    let mut log_b = b.log::<KeyValue>("b").unwrap();
    log_a.append_entry(kv(1)).unwrap();
    log_b.append_entries(vec![kv(1), kv(2)]).unwrap();
    assert_eq!(b.logs().unwrap(), ["a", "b"]);
    let err = RocksStore::open_shared(dir.path(), RocksOptions::new().sync(SyncPolicy::Never))
        .unwrap_err();
    assert!(matches!(err, Error::OptionsConflict { .. }), "{err}");
    // A plain open still refuses a second handle.
    assert!(matches!(
        RocksStore::open(dir.path()).unwrap_err(),
        Error::Locked { .. }
    ));
    drop((b, log_a, log_b));
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(
        store.log::<KeyValue>("b").unwrap().get_log_len().unwrap(),
        2
    );
}
