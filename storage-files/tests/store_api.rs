//! The many-logs [`FilesStore`]'s API: log names, one handle per log, adding and dropping
//! logs durably, the space a dropped log leaves, concurrent writers of many logs (group
//! commit), and the space bound with cold logs that never trim.

use std::path::Path;
use std::sync::Arc;
use std::thread;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::{clone_op, verify_store};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::{Error, FilesLog, FilesOptions, FilesStore};

type Log = FilesLog<KeyValue>;

fn opts(segment: u64) -> FilesOptions {
    FilesOptions::new().segment_size(segment)
}

/// Applies `ops` to the log and, once it returned `Ok`, to the model.
fn apply(log: &mut Log, m: &mut Model<KeyValue>, ops: Vec<StorageOp<KeyValue>>) {
    let copy: Vec<_> = ops.iter().map(clone_op).collect();
    log.write_atomically(ops)
        .unwrap_or_else(|e| panic!("log {}: {e}", log.name()));
    m.apply_batch(&copy).expect("the model accepts the batch");
}

fn entries(tag: &str, from: usize, n: usize, payload: usize) -> Vec<KeyValue> {
    (from..from + n)
        .map(|i| KeyValue::new(tag, i as u64, payload))
        .collect()
}

/// Bytes of the files in `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn invalid_log_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open(dir.path()).unwrap();
    let long = "x".repeat(129);
    for name in ["", "a/b", "a b", "é", "shard:1", "a\0", long.as_str()] {
        match store.log::<KeyValue>(name) {
            Err(Error::InvalidLogName { name: n, .. }) => assert_eq!(n, name),
            other => panic!("name {name:?}: expected InvalidLogName, got {other:?}"),
        }
    }
    assert!(store.logs().is_empty(), "no invalid name made a log");
    let longest = "y".repeat(128);
    for name in ["a", "A-b_c.1", "0", longest.as_str()] {
        store
            .log::<KeyValue>(name)
            .unwrap_or_else(|e| panic!("name {name:?}: {e}"));
    }
    let mut want = vec!["0", "A-b_c.1", "a", longest.as_str()];
    want.sort();
    assert_eq!(store.logs(), want);
}

#[test]
fn a_second_handle_is_log_in_use_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open(dir.path()).unwrap();
    let mut first: Log = store.log("a").unwrap();
    first.append_entry(KeyValue::new("k", 1, 10)).unwrap();
    match store.log::<KeyValue>("a") {
        Err(Error::LogInUse { name }) => assert_eq!(name, "a"),
        other => panic!("a second handle: expected LogInUse, got {other:?}"),
    }
    // From a clone of the store too: it is the same store.
    assert!(matches!(
        store.clone().log::<KeyValue>("a"),
        Err(Error::LogInUse { .. })
    ));
    // Another log is not in use.
    let _b: Log = store.log("b").unwrap();
    drop(first);
    let second: Log = store
        .log("a")
        .expect("the log is free once its handle is dropped");
    assert_eq!(second.get_log_len().unwrap(), 1);
}

#[test]
fn drop_log_of_an_open_log_is_log_in_use_and_of_an_unknown_one_no_such_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open(dir.path()).unwrap();
    let log: Log = store.log("a").unwrap();
    match store.drop_log("a") {
        Err(Error::LogInUse { name }) => assert_eq!(name, "a"),
        other => panic!("drop of an open log: expected LogInUse, got {other:?}"),
    }
    assert_eq!(store.logs(), ["a"], "the refused drop dropped nothing");
    match store.drop_log("nope") {
        Err(Error::NoSuchLog { name }) => assert_eq!(name, "nope"),
        other => panic!("drop of an unknown log: expected NoSuchLog, got {other:?}"),
    }
    drop(log);
    store.drop_log("a").unwrap();
    assert!(store.logs().is_empty());
    assert!(matches!(store.drop_log("a"), Err(Error::NoSuchLog { .. })));
}

#[test]
fn reopen_lists_logs_drop_is_durable_and_a_readded_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut models = Vec::new();
    {
        let store = FilesStore::open_with(dir.path(), opts(16 << 10)).unwrap();
        for (i, name) in ["c", "a", "b"].into_iter().enumerate() {
            let mut log: Log = store.log(name).unwrap();
            let mut m = Model::new();
            for k in 0..5 {
                apply(
                    &mut log,
                    &mut m,
                    vec![StorageOp::AppendEntries(entries(name, k * 10, 3 + i, 500))],
                );
            }
            models.push((name, m));
        }
        // An empty log is a log too.
        let _: Log = store.log("empty").unwrap();
    }
    let store = FilesStore::open_with(dir.path(), opts(16 << 10)).unwrap();
    assert_eq!(store.logs(), ["a", "b", "c", "empty"]);
    for (name, m) in &models {
        verify_store(&store.log::<KeyValue>(name).unwrap(), m).unwrap();
    }
    store.drop_log("b").unwrap();
    drop(store);

    let store = FilesStore::open_with(dir.path(), opts(16 << 10)).unwrap();
    assert_eq!(store.logs(), ["a", "c", "empty"], "the drop is durable");
    let b: Log = store.log("b").unwrap();
    verify_store(&b, &Model::new()).expect("a re-added log is empty");
    drop(b);
    drop(store);
    let store = FilesStore::open_with(dir.path(), opts(16 << 10)).unwrap();
    assert_eq!(store.logs(), ["a", "b", "c", "empty"]);
    verify_store(&store.log::<KeyValue>("b").unwrap(), &Model::new()).unwrap();
    for (name, m) in &models {
        if *name != "b" {
            verify_store(&store.log::<KeyValue>(name).unwrap(), m).unwrap();
        }
    }
}

#[test]
fn a_dropped_logs_space_is_reclaimed_once_the_other_logs_trim() {
    const SEG: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open_with(dir.path(), opts(SEG)).unwrap();
    let mut big: Log = store.log("big").unwrap();
    let mut small: Log = store.log("small").unwrap();
    let mut sm = Model::new();
    // About 2 MiB in `big`, with `small` written in between.
    for k in 0..64 {
        big.append_entries(entries("big", k * 32, 32, 1000))
            .unwrap();
        apply(
            &mut small,
            &mut sm,
            vec![StorageOp::AppendEntries(entries("small", k, 1, 100))],
        );
    }
    store.wait_for_reclaim().unwrap();
    let before = dir_size(dir.path());
    assert!(before > 2_000_000, "the big log filled the disk: {before}");
    drop(big);
    store.drop_log("big").unwrap();
    // The small log moves on past the old segments.
    for k in 64..200 {
        apply(
            &mut small,
            &mut sm,
            vec![StorageOp::AppendEntries(entries("small", k, 1, 100))],
        );
    }
    let t = sm.next - 5;
    apply(&mut small, &mut sm, vec![StorageOp::Trim(t)]);
    store.rotate().unwrap();
    store.wait_for_reclaim().unwrap();
    let after = dir_size(dir.path());
    assert!(
        after < before / 4,
        "the dropped log's segments were deleted: {before} bytes before, {after} after"
    );
    assert!(store.stats().files.segment_bytes <= 4 * SEG);
    drop((small, store));
    let store = FilesStore::open_with(dir.path(), opts(SEG)).unwrap();
    assert_eq!(store.logs(), ["small"]);
    verify_store(&store.log::<KeyValue>("small").unwrap(), &sm).unwrap();
}

#[test]
fn eight_threads_of_eight_logs_each_read_back_exactly_their_entries_and_commits_are_grouped() {
    const THREADS: usize = 8;
    const LOGS: usize = 8;
    const BATCHES: usize = 200;
    const PER_BATCH: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open_with(dir.path(), opts(1 << 20)).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || -> Vec<Model<KeyValue>> {
                let mut logs: Vec<Log> = (0..LOGS)
                    .map(|l| store.log(&format!("t{t}-l{l}")).unwrap())
                    .collect();
                let mut models = vec![Model::new(); LOGS];
                for b in 0..BATCHES {
                    let l = b % LOGS;
                    let from = models[l].next;
                    let tag = format!("t{t}-l{l}");
                    let ops = vec![
                        StorageOp::AppendEntries(entries(&tag, from, PER_BATCH, 64)),
                        StorageOp::SetDecidedIndex(from),
                    ];
                    apply(&mut logs[l], &mut models[l], ops);
                }
                models
            })
        })
        .collect();
    let models: Vec<Vec<Model<KeyValue>>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let stats = store.stats();
    eprintln!(
        "{} records in {} groups ({:.1} per group)",
        stats.records,
        stats.groups,
        stats.records as f64 / stats.groups as f64
    );
    assert!(
        stats.groups < stats.records,
        "group commit grouped nothing: {stats:?}"
    );
    drop(store);
    let store = Arc::new(FilesStore::open_with(dir.path(), opts(1 << 20)).unwrap());
    assert_eq!(store.logs().len(), THREADS * LOGS);
    for (t, models) in models.iter().enumerate() {
        for (l, m) in models.iter().enumerate() {
            let log: Log = store.log(&format!("t{t}-l{l}")).unwrap();
            assert_eq!(m.next, BATCHES / LOGS * PER_BATCH);
            verify_store(&log, m).unwrap_or_else(|e| panic!("t{t}-l{l}: {e}"));
        }
    }
}

#[test]
fn cold_logs_keep_the_segment_bytes_within_the_bound_and_read_back() {
    const SEG: u64 = 64 << 10;
    const ROUNDS: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let store = FilesStore::open_with(dir.path(), opts(SEG)).unwrap();
    let mut cold: Vec<(Log, Model<KeyValue>)> = Vec::new();
    for c in 0..5 {
        let mut log: Log = store.log(&format!("cold-{c}")).unwrap();
        let mut m = Model::new();
        apply(
            &mut log,
            &mut m,
            vec![StorageOp::AppendEntries(entries(
                &format!("cold-{c}"),
                0,
                10,
                200,
            ))],
        );
        cold.push((log, m));
    }
    let mut hot: Vec<(Log, Model<KeyValue>)> = (0..2)
        .map(|h| (store.log(&format!("hot-{h}")).unwrap(), Model::new()))
        .collect();
    let bound = |live: u64| (4 * SEG).max(2 * live + 2 * SEG) + 2 * SEG;
    let mut worst = 0f64;
    for round in 0..ROUNDS {
        for (h, (log, m)) in hot.iter_mut().enumerate() {
            let from = m.next;
            let ops = vec![
                StorageOp::AppendEntries(entries(&format!("hot-{h}"), from, 8, 500)),
                StorageOp::SetDecidedIndex(from),
            ];
            apply(log, m, ops);
            if round % 4 == 3 {
                // Keep the last 40 entries.
                let t = m.next.saturating_sub(40).max(m.first);
                apply(log, m, vec![StorageOp::Trim(t)]);
            }
        }
        if round % 50 == 49 {
            store.wait_for_reclaim().unwrap();
            let s = store.stats();
            let b = bound(s.live_bytes);
            worst = worst.max(s.files.segment_bytes as f64 / b as f64);
            assert!(
                s.files.segment_bytes <= b,
                "round {round}: {} segment bytes over the bound {b} (live {}): {s:?}",
                s.files.segment_bytes,
                s.live_bytes
            );
        }
    }
    store.wait_for_reclaim().unwrap();
    let s = store.stats();
    assert!(
        s.files.segment_bytes <= bound(s.live_bytes),
        "{} segment bytes over the bound {} (live {}): {s:?}",
        s.files.segment_bytes,
        bound(s.live_bytes),
        s.live_bytes
    );
    assert!(
        s.files.deleted_segments > 0 && s.relocated_bytes > 0,
        "the cold logs' entries were relocated and old segments deleted: {s:?}"
    );
    let wa = s.files.bytes_written as f64 / s.user_bytes as f64;
    eprintln!(
        "cold logs: {} bytes written for {} user bytes: write amplification {wa:.3}; \
         {} relocated; {} segment bytes at the end for {} live (bound {}); \
         worst segment bytes / bound {worst:.2}",
        s.files.bytes_written,
        s.user_bytes,
        s.relocated_bytes,
        s.files.segment_bytes,
        s.live_bytes,
        bound(s.live_bytes)
    );
    // The stated bound on the copying: at most A / (A - 1) = 2 with A = 2 (headers and seals
    // included), reached only when nothing ever dies.
    assert!(
        wa < 2.0,
        "write amplification {wa:.3} over the stated bound of 2"
    );
    let models: Vec<Model<KeyValue>> = cold.iter().map(|(_, m)| m.clone()).collect();
    let hot_models: Vec<Model<KeyValue>> = hot.iter().map(|(_, m)| m.clone()).collect();
    drop((cold, hot, store));
    let store = FilesStore::open_with(dir.path(), opts(SEG)).unwrap();
    for (c, m) in models.iter().enumerate() {
        let log: Log = store.log(&format!("cold-{c}")).unwrap();
        verify_store(&log, m).unwrap_or_else(|e| panic!("cold-{c} after reopen: {e}"));
    }
    for (h, m) in hot_models.iter().enumerate() {
        let log: Log = store.log(&format!("hot-{h}")).unwrap();
        verify_store(&log, m).unwrap_or_else(|e| panic!("hot-{h} after reopen: {e}"));
    }
}
