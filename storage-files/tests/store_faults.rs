//! Failures of a many-logs [`FilesStore`]'s file system ([`FaultyFs`]), and its identity.
//!
//! - A failed `fdatasync` under several writers of different logs: no call hangs, the group
//!   that failed returns `Err`, every later call of every log is `Poisoned`, and a reopen
//!   finds each log with its acknowledged batches, plus at most its one in-flight batch.
//! - A failed write (nothing or half written) fails its call but does not poison: the store
//!   goes on, and the failed batch never shows up, not even after a reopen.
//! - A single-log store's directory is refused by `FilesStore` and the other way round, with
//!   `Error::Foreign` and without a byte changed; a new store's first file is its marker.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::{dir_bytes, verify_store};
use paxstore_core::identity::{Marker, MARKER_FILE, MARKER_TMP};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{FaultKind, FaultyFs, SimFs};
use paxstore_files::{Error, FilesLog, FilesOptions, FilesStorage, FilesStore, MULTI_BACKEND};

type Log = FilesLog<KeyValue>;
type Ops = Vec<StorageOp<KeyValue>>;

fn opts(fs: &FaultyFs) -> FilesOptions {
    FilesOptions::new()
        .segment_size(64 << 10)
        .background_purge(false)
        .file_system(Arc::new(fs.clone()))
}

/// Batch `k` of log `log`: 4 entries and a decided index.
fn batch(log: usize, k: usize, m: &Model<KeyValue>) -> Ops {
    let next = m.next;
    vec![
        StorageOp::AppendEntries(
            (0..4)
                .map(|i| KeyValue::new(format!("log-{log}"), (k * 100 + i) as u64, 300))
                .collect(),
        ),
        StorageOp::SetDecidedIndex(next),
    ]
}

fn applied(m: &Model<KeyValue>, ops: &Ops) -> Model<KeyValue> {
    let mut m = m.clone();
    let copy: Ops = ops
        .iter()
        .map(paxstore_core::conformance::clone_op)
        .collect();
    m.apply_batch(&copy).expect("the model accepts the batch");
    m
}

/// The `paxstore_files::Error` behind a `Storage` call's error.
fn files_err<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    e.downcast_ref::<Error>()
}

/// What one writer thread saw: its acknowledged state, the batch in flight when its first
/// call failed (and that error), and the error of its next call.
struct Writer {
    acked: Model<KeyValue>,
    in_flight: Option<Model<KeyValue>>,
    first_err: String,
    first_was_poisoned: bool,
    next_err: Option<String>,
    next_was_poisoned: bool,
}

fn write_until_failure(log_no: usize, mut log: Log) -> Writer {
    let mut acked = Model::new();
    for k in 0..100_000 {
        let ops = batch(log_no, k, &acked);
        let after = applied(&acked, &ops);
        match log.write_atomically(ops) {
            Ok(()) => acked = after,
            Err(e) => {
                let first_was_poisoned = matches!(files_err(&*e), Some(Error::Poisoned { .. }));
                let next = log.write_atomically(batch(log_no, k + 1, &acked));
                let next_was_poisoned = match &next {
                    Err(e) => matches!(files_err(&**e), Some(Error::Poisoned { .. })),
                    Ok(()) => false,
                };
                return Writer {
                    acked,
                    in_flight: Some(after),
                    first_err: e.to_string(),
                    first_was_poisoned,
                    next_err: next.err().map(|e| e.to_string()),
                    next_was_poisoned,
                };
            }
        }
    }
    Writer {
        acked,
        in_flight: None,
        first_err: String::new(),
        first_was_poisoned: false,
        next_err: None,
        next_was_poisoned: false,
    }
}

#[test]
fn a_failed_fdatasync_under_concurrent_writers_fails_every_waiter_and_poisons_every_log() {
    const WRITERS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let store = FilesStore::open_with(dir.path(), opts(&fs)).unwrap();
    let logs: Vec<Log> = (0..WRITERS)
        .map(|i| store.log(&format!("log-{i}")).unwrap())
        .collect();
    // The 40th fsync from now fails: the writers are well under way and queue behind it.
    fs.fail_nth(FaultKind::Fsync, 40);
    let (tx, rx) = mpsc::channel();
    for (i, log) in logs.into_iter().enumerate() {
        let tx = tx.clone();
        thread::spawn(move || {
            let w = write_until_failure(i, log);
            let _ = tx.send((i, w));
        });
    }
    drop(tx);
    let mut writers: Vec<Option<Writer>> = (0..WRITERS).map(|_| None).collect();
    for _ in 0..WRITERS {
        let (i, w) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a writer hangs after the failed fdatasync (no result within 30 s)");
        writers[i] = Some(w);
    }
    let writers: Vec<Writer> = writers.into_iter().map(|w| w.unwrap()).collect();
    assert!(fs.fired(), "the fsync fault fired");
    assert!(
        store.poisoned().is_some(),
        "a failed fdatasync poisons the store"
    );
    let mut failed_with_io = 0;
    for (i, w) in writers.iter().enumerate() {
        assert!(
            w.in_flight.is_some(),
            "log-{i}: every writer's calls fail once the store is poisoned"
        );
        if !w.first_was_poisoned {
            failed_with_io += 1;
        }
        assert!(
            w.next_was_poisoned,
            "log-{i}: the call after `{}` must be Poisoned, got {:?}",
            w.first_err, w.next_err
        );
    }
    assert!(
        failed_with_io >= 1,
        "the group whose fdatasync failed returned the I/O error: {:?}",
        writers.iter().map(|w| &w.first_err).collect::<Vec<_>>()
    );
    // A new handle is refused too.
    let probe: Result<Log, _> = store.log("log-new");
    assert!(
        matches!(probe, Err(Error::Poisoned { .. })),
        "a new log on a poisoned store: {probe:?}"
    );
    drop(store);

    let store = FilesStore::open(dir.path()).unwrap();
    assert_eq!(
        store.logs(),
        (0..WRITERS).map(|i| format!("log-{i}")).collect::<Vec<_>>()
    );
    let mut landed = 0;
    for (i, w) in writers.iter().enumerate() {
        let log: Log = store.log(&format!("log-{i}")).unwrap();
        let acked = verify_store(&log, &w.acked);
        let in_flight = verify_store(&log, w.in_flight.as_ref().unwrap());
        assert!(
            acked.is_ok() || in_flight.is_ok(),
            "log-{i}: neither its acknowledged state ({acked:?}) nor that plus its in-flight batch ({in_flight:?})"
        );
        landed += usize::from(acked.is_err());
    }
    eprintln!(
        "{failed_with_io} of {WRITERS} writers got the fdatasync's error, {landed} in-flight batches found after reopen"
    );
}

/// A failed write (`kind`: nothing written, or half of it) fails its call and nothing else.
fn a_failed_write_does_not_poison(kind: FaultKind) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let store = FilesStore::open_with(dir.path(), opts(&fs)).unwrap();
    let mut logs: Vec<Log> = (0..3)
        .map(|i| store.log(&format!("log-{i}")).unwrap())
        .collect();
    let mut models: Vec<Model<KeyValue>> = vec![Model::new(); 3];
    let mut k = 0;
    let mut write = |logs: &mut Vec<Log>, models: &mut Vec<Model<KeyValue>>, i: usize| {
        k += 1;
        let ops = batch(i, k, &models[i]);
        let after = applied(&models[i], &ops);
        logs[i].write_atomically(ops).map(|()| models[i] = after)
    };
    for round in 0..10 {
        write(&mut logs, &mut models, round % 3).unwrap();
    }
    fs.fail_nth(kind, 1);
    let err = write(&mut logs, &mut models, 1).expect_err("the write fails");
    assert!(fs.fired(), "{kind:?}: the fault fired");
    assert!(
        !matches!(files_err(&*err), Some(Error::Poisoned { .. })),
        "{kind:?}: the failed call has the write's error: {err}"
    );
    assert!(
        store.poisoned().is_none(),
        "{kind:?}: a failed write must not poison the store: {:?}",
        store.poisoned()
    );
    // Every log goes on, the failed one first.
    for round in 0..30 {
        write(&mut logs, &mut models, (round + 1) % 3)
            .unwrap_or_else(|e| panic!("{kind:?}: a write after the failed one: {e}"));
    }
    for (i, log) in logs.iter().enumerate() {
        verify_store(log, &models[i]).unwrap_or_else(|e| panic!("{kind:?}: log-{i}: {e}"));
    }
    drop((logs, store));
    let store = FilesStore::open(dir.path()).unwrap();
    for (i, m) in models.iter().enumerate() {
        let log: Log = store.log(&format!("log-{i}")).unwrap();
        verify_store(&log, m).unwrap_or_else(|e| {
            panic!("{kind:?}: log-{i} after reopen (the failed batch must not land): {e}")
        });
    }
}

#[test]
fn a_failed_write_fails_the_call_without_poisoning() {
    a_failed_write_does_not_poison(FaultKind::Write);
}

#[test]
fn a_short_write_fails_the_call_without_poisoning() {
    a_failed_write_does_not_poison(FaultKind::ShortWrite);
}

fn foreign(r: Result<(), Error>, what: &str, hint: &str) {
    match r {
        Err(e @ Error::Foreign { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(hint),
                "{what}: the message hints at `{hint}`: {msg}"
            );
        }
        other => panic!("{what}: expected Error::Foreign, got {other:?}"),
    }
}

#[test]
fn a_single_log_store_is_refused_by_files_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut single = FilesStorage::<KeyValue>::open(dir.path()).unwrap();
    single.append_entry(KeyValue::new("k", 1, 10)).unwrap();
    drop(single);
    let before = dir_bytes(dir.path()).unwrap();
    foreign(
        FilesStore::open(dir.path()).map(drop),
        "FilesStore on a FilesStorage directory",
        "FilesStorage",
    );
    assert!(
        dir_bytes(dir.path()).unwrap() == before,
        "the refused open changed the directory"
    );
    let single = FilesStorage::<KeyValue>::open(dir.path()).unwrap();
    assert_eq!(single.get_log_len().unwrap(), 1);
}

#[test]
fn a_many_logs_store_is_refused_by_files_storage_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open(dir.path()).unwrap();
    let mut log: Log = store.log("a").unwrap();
    log.append_entry(KeyValue::new("k", 1, 10)).unwrap();
    drop((log, store));
    let before = dir_bytes(dir.path()).unwrap();
    foreign(
        FilesStorage::<KeyValue>::open(dir.path()).map(drop),
        "FilesStorage on a FilesStore directory",
        "FilesStore",
    );
    assert!(
        dir_bytes(dir.path()).unwrap() == before,
        "the refused open changed the directory"
    );
    let store = FilesStore::open(dir.path()).unwrap();
    assert_eq!(store.logs(), ["a"]);
}

#[test]
fn a_new_store_writes_its_marker_first_with_backend_files_multi() {
    let fs = SimFs::new();
    let dir = Path::new("/data/store");
    let store = FilesStore::open_with(
        dir,
        FilesOptions::new()
            .background_purge(false)
            .file_system(Arc::new(fs.clone())),
    )
    .unwrap();
    let creates: Vec<String> = fs
        .trace()
        .into_iter()
        .filter(|c| c.starts_with("create "))
        .collect();
    let first = creates.first().expect("open created files");
    assert!(
        first.ends_with(&format!("/{MARKER_TMP}")),
        "the first file created is the marker (under its temp name): {creates:?}"
    );
    let marker = Marker::decode(&fs.read(&dir.join(MARKER_FILE)).unwrap()).unwrap();
    assert_eq!(marker.backend, MULTI_BACKEND);
    assert_eq!(marker.backend, "files-multi");
    assert_eq!(&marker, store.marker());
    // On a real disk too.
    let tmp = tempfile::tempdir().unwrap();
    let store = FilesStore::open(tmp.path()).unwrap();
    let marker = Marker::decode(&std::fs::read(tmp.path().join(MARKER_FILE)).unwrap()).unwrap();
    assert_eq!(marker.backend, "files-multi");
    assert_eq!(&marker, store.marker());
}
