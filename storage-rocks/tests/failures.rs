//! Failures: batches that cannot be encoded, damaged databases, foreign directories, a second
//! opener. Each must give an error (never a panic) and change nothing it should not.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::storage::{Entry, NoSnapshot, Storage, StorageOp};
use paxstore_core::conformance::verify_store;
use paxstore_core::kv::{KVSnapshot, KeyValue};
use paxstore_core::model::Model;
use paxstore_rocks::{rocksdb, Error, RocksOptions, RocksStorage, RocksStore};
use serde::{Deserialize, Serialize};

fn kv(i: usize) -> KeyValue {
    KeyValue::new(format!("k{}", i % 5), i as u64, 100)
}

fn kvs(from: usize, n: usize) -> Vec<KeyValue> {
    (from..from + n).map(kv).collect()
}

fn ballot(n: u32) -> Ballot {
    Ballot {
        config_id: 1,
        n,
        priority: 0,
        pid: 2,
    }
}

fn apply(
    log: &mut RocksStorage<KeyValue>,
    model: &mut Model<KeyValue>,
    ops: Vec<StorageOp<KeyValue>>,
) {
    model.apply_batch(&ops).unwrap();
    log.write_atomically(ops).unwrap();
}

#[test]
fn a_batch_with_an_unencodable_entry_changes_neither_cache_nor_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut log = store.log::<KeyValue>("log").unwrap();
    let mut model = Model::new();
    apply(
        &mut log,
        &mut model,
        vec![
            StorageOp::AppendEntries(kvs(0, 20)),
            StorageOp::SetDecidedIndex(10),
            StorageOp::SetPromise(ballot(3)),
        ],
    );
    apply(
        &mut log,
        &mut model,
        vec![StorageOp::Trim(5), StorageOp::SetCompactedIdx(5)],
    );

    let failing: Vec<Vec<StorageOp<KeyValue>>> = vec![
        vec![StorageOp::AppendEntry(KeyValue::unencodable("bad", 1))],
        vec![
            StorageOp::SetDecidedIndex(19),
            StorageOp::SetPromise(ballot(9)),
            StorageOp::AppendEntries(vec![kv(20), kv(21), KeyValue::unencodable("bad", 2)]),
        ],
        // every kind of change before the bad entry: trim, snapshot, stop-sign, truncation
        vec![
            StorageOp::Trim(12),
            StorageOp::SetCompactedIdx(12),
            StorageOp::SetSnapshot(Some(KVSnapshot::sized(4, 1000))),
            StorageOp::SetAcceptedRound(ballot(7)),
            StorageOp::AppendOnPrefix(15, vec![kv(15), KeyValue::unencodable("bad", 3)]),
        ],
        vec![
            StorageOp::AppendOnPrefix(8, kvs(8, 3)),
            StorageOp::AppendEntries(kvs(11, 2)),
            StorageOp::AppendEntry(KeyValue::unencodable("bad", 4)),
            StorageOp::Trim(100),
        ],
    ];
    for ops in failing {
        let seq = store.latest_sequence_number();
        let err = log.write_atomically(ops).unwrap_err();
        assert!(
            err.to_string().contains("encode"),
            "unexpected error: {err}"
        );
        // Nothing reached RocksDB ...
        assert_eq!(store.latest_sequence_number(), seq);
        // ... and the cache shows the state before the call.
        verify_store(&log, &model).unwrap();
    }
    // The store goes on normally: the next append lands at the right index.
    apply(
        &mut log,
        &mut model,
        vec![StorageOp::AppendEntries(kvs(20, 3))],
    );
    verify_store(&log, &model).unwrap();
    drop(log);
    drop(store);
    let log = RocksStorage::<KeyValue>::open(dir.path()).unwrap();
    verify_store(&log, &model).unwrap();
}

#[test]
fn an_invalid_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut log = store.log::<KeyValue>("log").unwrap();
    let mut model = Model::new();
    apply(
        &mut log,
        &mut model,
        vec![StorageOp::AppendEntries(kvs(0, 10))],
    );
    let seq = store.latest_sequence_number();
    let err = log
        .write_atomically(vec![
            StorageOp::SetDecidedIndex(3),
            StorageOp::Trim(4),
            StorageOp::AppendOnPrefix(20, kvs(20, 1)),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("append_on_prefix(20"), "{err}");
    assert_eq!(store.latest_sequence_number(), seq);
    verify_store(&log, &model).unwrap();
}

/// Writes a log with `n` batches and closes the store. With `flush`, the data is moved into
/// table files first (by a reopen, which flushes the recovered WAL).
fn write_db(dir: &Path, n: usize, flush: bool) -> Model<KeyValue> {
    let mut log = RocksStorage::<KeyValue>::open(dir).unwrap();
    let mut model = Model::new();
    for b in 0..n {
        let next = model.next;
        apply(
            &mut log,
            &mut model,
            vec![
                StorageOp::AppendEntries(kvs(next, 50)),
                StorageOp::SetDecidedIndex(next + 50),
            ],
        );
        if b == n / 2 {
            apply(
                &mut log,
                &mut model,
                vec![
                    StorageOp::Trim(next / 2),
                    StorageOp::SetCompactedIdx(next / 2),
                ],
            );
        }
    }
    drop(log);
    if flush {
        let log = RocksStorage::<KeyValue>::open(dir).unwrap();
        verify_store(&log, &model).unwrap();
    }
    model
}

fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    v
}

/// Opens the store and reads everything: the first error, or `None` if all of it worked.
fn open_and_read_all(dir: &Path) -> Option<String> {
    let log = match RocksStorage::<KeyValue>::open(dir) {
        Ok(log) => log,
        Err(e) => return Some(e.to_string()),
    };
    let first = log.get_compacted_idx().ok()?;
    let len = log.get_log_len().ok()?;
    match log.get_entries(first, first + len) {
        Ok(v) if v.len() == len => None,
        Ok(v) => Some(format!(
            "read {} of {len} entries without an error",
            v.len()
        )),
        Err(e) => Some(e.to_string()),
    }
}

fn overwrite(path: &Path, at: u64, len: usize) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&vec![0xA5; len]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_truncated_table_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), 200, true);
    let sst = &files_ending(dir.path(), ".sst")[0];
    let len = fs::metadata(sst).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(sst)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = open_and_read_all(dir.path()).expect("a truncated table file must be reported");
    assert!(
        err.contains(&dir.path().display().to_string()),
        "no path in: {err}"
    );
}

#[test]
fn an_overwritten_table_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), 200, true);
    let sst = &files_ending(dir.path(), ".sst")[0];
    let len = fs::metadata(sst).unwrap().len();
    overwrite(sst, len / 3, 4096);
    let err = open_and_read_all(dir.path()).expect("an overwritten table file must be reported");
    assert!(
        err.to_lowercase().contains("corrupt") || err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn an_overwritten_write_ahead_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), 200, false);
    let wal = &files_ending(dir.path(), ".log")[0];
    let len = fs::metadata(wal).unwrap().len();
    assert!(
        len > 100_000,
        "the WAL should hold the batches, has {len} bytes"
    );
    overwrite(wal, len / 2, 512);
    let err = open_and_read_all(dir.path()).expect("a damaged WAL must be reported");
    assert!(
        err.to_lowercase().contains("corrupt") || err.contains("checksum"),
        "{err}"
    );
}

/// A live WAL cut short is indistinguishable from a crash before the lost records were
/// written: RocksDB recovers the intact prefix. What must hold: no panic, and the state is
/// the state after some prefix of the batches (never a half-applied batch).
#[test]
fn a_truncated_live_write_ahead_log_recovers_a_whole_batch_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_db(dir.path(), 200, false);
    let wal = &files_ending(dir.path(), ".log")[0];
    let len = fs::metadata(wal).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(wal)
        .unwrap()
        .set_len(len * 2 / 3)
        .unwrap();
    match RocksStorage::<KeyValue>::open(dir.path()) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(log) => {
            let len = log.get_log_len().unwrap();
            let first = log.get_compacted_idx().unwrap();
            assert!(first + len < model.next, "nothing was lost?");
            // Batches append 50 entries and set the decided index to their end.
            assert_eq!((first + len) % 50, 0, "a half-applied batch");
            assert_eq!(log.get_decided_idx().unwrap(), first + len);
            let entries = log.get_entries(first, first + len).unwrap();
            assert_eq!(entries, kvs(first, len));
        }
    }
}

#[test]
fn a_missing_manifest_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), 20, true);
    for m in files_ending(dir.path(), "") {
        if m.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("MANIFEST-")
        {
            fs::remove_file(m).unwrap();
        }
    }
    let err = RocksStorage::<KeyValue>::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rocks {
                op: "list column families" | "open",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn foreign_directories_and_databases_are_refused() {
    // A directory holding something else.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("segment-000001.log.data"), b"not ours").unwrap();
    let err = RocksStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Foreign { .. }), "{err}");

    // A RocksDB database of someone else.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = rocksdb::DB::open(&opts, dir.path()).unwrap();
        db.put(b"hello", b"world").unwrap();
    }
    let err = RocksStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("no `PAXSTORE` marker"), "{err}");
    // Even when asked to adopt an unmarked database, only a paxstore one is taken.
    let err = RocksStore::open_with(dir.path(), RocksOptions::new().adopt_unmarked_store(true))
        .unwrap_err();
    assert!(matches!(err, Error::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("paxstore.meta"), "{err}");

    // Our layout, another format version.
    let dir = tempfile::tempdir().unwrap();
    drop(RocksStore::open(dir.path()).unwrap());
    {
        let opts = rocksdb::Options::default();
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["paxstore.meta"]).unwrap();
        let cf = db.cf_handle("paxstore.meta").unwrap();
        let record =
            paxstore_core::codec::encode("format record", &("paxstore-rocks", 99u32)).unwrap();
        db.put_cf(cf, b"!format", record).unwrap();
    }
    let err = RocksStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::FormatVersion { found: 99, .. }),
        "{err}"
    );
}

/// An entry type other than the one the log was written with.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Other(u64);

impl Entry for Other {
    type Snapshot = NoSnapshot;
}

#[test]
fn reading_a_log_as_another_entry_type_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), 3, false);
    let log = RocksStorage::<Other>::open(dir.path()).unwrap();
    let first = log.get_compacted_idx().unwrap();
    let err = log.get_entries(first, first + 1).unwrap_err();
    assert!(
        err.to_string().contains("cannot decode the stored entry"),
        "{err}"
    );
}

#[test]
fn a_second_opener_in_this_process_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let err = RocksStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("already open"), "{err}");
    let err = RocksStorage::<KeyValue>::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    // Clones share the one open database.
    let clone = store.clone();
    drop(store);
    assert!(RocksStore::open(dir.path()).is_err());
    drop(clone);
    RocksStore::open(dir.path()).unwrap();
}

const CHILD_ENV: &str = "PAXSTORE_ROCKS_LOCK_CHILD";

#[test]
fn a_second_opener_in_another_process_gets_a_clear_error() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        // The child: the parent holds the store open.
        match RocksStore::open(&dir) {
            Err(e @ Error::Locked { .. }) => println!("CHILD-LOCKED {e}"),
            Err(e) => println!("CHILD-OTHER-ERROR {e}"),
            Ok(_) => println!("CHILD-OPENED"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let run_child = || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "a_second_opener_in_another_process_gets_a_clear_error",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = run_child();
    assert!(stdout.contains("CHILD-LOCKED"), "child output: {stdout}");
    assert!(
        stdout.contains(&dir.path().display().to_string()),
        "{stdout}"
    );
    // Once released, the other process can open it.
    drop(store);
    let stdout = run_child();
    assert!(stdout.contains("CHILD-OPENED"), "child output: {stdout}");
}

#[test]
fn the_escape_hatches_reach_rocksdb() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let db_calls = Arc::new(AtomicUsize::new(0));
    let log_calls = Arc::new(AtomicUsize::new(0));
    let (d, l) = (Arc::clone(&db_calls), Arc::clone(&log_calls));
    let options = RocksOptions::new()
        .tune_db(move |o| {
            d.fetch_add(1, Ordering::SeqCst);
            o.set_max_background_jobs(3);
            o.set_max_file_opening_threads(7);
        })
        .tune_logs(move |o| {
            l.fetch_add(1, Ordering::SeqCst);
            o.set_write_buffer_size(1 << 20);
        });
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open_with(dir.path(), options).unwrap();
    let mut log = store.log::<KeyValue>("x").unwrap();
    log.append_entry(kv(0)).unwrap();
    assert!(db_calls.load(Ordering::SeqCst) >= 1);
    assert!(log_calls.load(Ordering::SeqCst) >= 1);
    // RocksDB wrote the options it runs with: the log's write buffer is the tuned one.
    drop(log);
    drop(store);
    let options_file = files_ending(dir.path(), "")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("OPTIONS-")
        })
        .max()
        .unwrap();
    let text = fs::read_to_string(options_file).unwrap();
    assert!(text.contains("max_file_opening_threads=7"), "{text}");
    let section = text.split("[CFOptions \"paxstore.log.x\"]").nth(1).unwrap();
    assert!(section.contains("write_buffer_size=1048576"), "{section}");
}
