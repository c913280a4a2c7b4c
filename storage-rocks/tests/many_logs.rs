//! Many logs in one database: interleaved writes, trims and snapshots on some logs leave the
//! others untouched, every log reopens exactly, dropping a log leaves the rest intact, and
//! concurrent writers to different logs each get exactly their own entries.

use std::path::Path;

use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::verify_store;
use paxstore_core::kv::{KVSnapshot, KeyValue};
use paxstore_core::model::Model;
use paxstore_rocks::{Error, RocksOptions, RocksStorage, RocksStore};

const LOGS: usize = 16;
/// Logs `0..ACTIVE` keep being written; the others are written once, then only read.
const ACTIVE: usize = 8;

fn name(i: usize) -> String {
    format!("shard-{i:02}")
}

fn ballot(n: u32) -> Ballot {
    Ballot {
        config_id: 1,
        n,
        priority: 0,
        pid: 1,
    }
}

/// Applies `ops` to the log and to its model; both must accept them.
fn apply(
    log: &mut RocksStorage<KeyValue>,
    model: &mut Model<KeyValue>,
    ops: Vec<StorageOp<KeyValue>>,
) {
    model
        .apply_batch(&ops)
        .expect("the model accepts the batch");
    log.write_atomically(ops)
        .expect("the store accepts the batch");
}

fn values(log: usize, from: usize, n: usize) -> Vec<KeyValue> {
    (from..from + n)
        .map(|i| {
            KeyValue::new(
                format!("k{}", i % 7),
                (log * 1_000_000 + i) as u64,
                40 + i % 90,
            )
        })
        .collect()
}

/// Round `round` for log `i`: appends everywhere, and on some logs trims, snapshots,
/// follower syncs and metadata.
fn round_ops(i: usize, round: usize, model: &Model<KeyValue>) -> Vec<StorageOp<KeyValue>> {
    let (first, next) = (model.first, model.next);
    let n = 1 + (round * 7 + i * 3) % 23;
    match (round + i) % 6 {
        2 if i % 2 == 0 && next > first + 4 => {
            let at = first + (next - first) / 2;
            vec![StorageOp::Trim(at), StorageOp::SetCompactedIdx(at)]
        }
        4 if i % 3 == 0 && next > first + 4 => {
            let at = first + (next - first) * 3 / 4;
            vec![
                StorageOp::Trim(at),
                StorageOp::SetCompactedIdx(at),
                StorageOp::SetSnapshot(Some(KVSnapshot::sized(3, 200 + round * 10))),
            ]
        }
        5 if i % 4 == 1 && next > first + 2 => vec![
            StorageOp::SetAcceptedRound(ballot(round as u32)),
            StorageOp::SetDecidedIndex(first),
            StorageOp::AppendOnPrefix(next - 2, values(i, next - 2, n)),
        ],
        _ => vec![
            StorageOp::AppendEntries(values(i, next, n)),
            StorageOp::SetDecidedIndex(next + n),
            StorageOp::SetPromise(ballot(round as u32)),
        ],
    }
}

fn verify_all(logs: &[(RocksStorage<KeyValue>, Model<KeyValue>)], ctx: &str) {
    for (i, (log, model)) in logs.iter().enumerate() {
        if let Err(why) = verify_store(log, model) {
            panic!("{ctx}: log {} differs from its model: {why}", name(i));
        }
    }
}

fn open_all(
    store: &RocksStore,
    models: Vec<Model<KeyValue>>,
) -> Vec<(RocksStorage<KeyValue>, Model<KeyValue>)> {
    models
        .into_iter()
        .enumerate()
        .map(|(i, m)| (store.log(&name(i)).expect("open log"), m))
        .collect()
}

#[test]
fn sixteen_logs_interleaved_stay_separate_and_reopen_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut logs = open_all(&store, vec![Model::new(); LOGS]);

    // Every log gets a first batch, with different metadata each.
    for (i, (log, model)) in logs.iter_mut().enumerate() {
        let ops = vec![
            StorageOp::AppendEntries(values(i, 0, 10 + i)),
            StorageOp::SetDecidedIndex(i),
            StorageOp::SetPromise(ballot(100 + i as u32)),
        ];
        apply(log, model, ops);
    }
    verify_all(&logs, "after the first batch");

    // The active logs are written in interleaved order; the others must not change.
    for round in 0..40 {
        for k in 0..ACTIVE {
            let i = (k * 5 + round) % ACTIVE;
            let (log, model) = &mut logs[i];
            let ops = round_ops(i, round, model);
            apply(log, model, ops);
        }
        if round % 10 == 9 {
            verify_all(&logs, &format!("after round {round}"));
        }
    }
    verify_all(&logs, "after all rounds");
    // The untouched logs still hold exactly their first batch.
    for (i, (log, _)) in logs.iter().enumerate().skip(ACTIVE) {
        assert_eq!(log.get_log_len().unwrap(), 10 + i);
        assert_eq!(log.get_decided_idx().unwrap(), i);
        assert_eq!(log.get_compacted_idx().unwrap(), 0);
        assert!(log.get_snapshot().unwrap().is_none());
    }
    // Some active logs were trimmed and snapshotted, so the test exercised what it says.
    assert!(logs.iter().any(|(_, m)| m.first > 0));
    assert!(logs.iter().any(|(_, m)| m.snapshot.is_some()));
    assert!(logs.iter().any(|(_, m)| m.accepted_round.is_some()));

    // Reopen: every log exactly as before.
    let models: Vec<_> = logs.into_iter().map(|(_, m)| m).collect();
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    let mut names = store.logs().unwrap();
    names.sort();
    assert_eq!(names, (0..LOGS).map(name).collect::<Vec<_>>());
    let logs = open_all(&store, models);
    verify_all(&logs, "after reopen");

    // Drop two logs (one active, one untouched); the rest stay intact, also after a reopen.
    let mut models: Vec<_> = logs.into_iter().map(|(_, m)| m).collect();
    store.drop_log(&name(3)).unwrap();
    store.drop_log(&name(12)).unwrap();
    assert!(matches!(
        store.drop_log(&name(12)),
        Err(Error::NoSuchLog { .. })
    ));
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.logs().unwrap().len(), LOGS - 2);
    assert!(!store.logs().unwrap().contains(&name(3)));
    models[3] = Model::new();
    models[12] = Model::new();
    // A dropped log opened again is a new, empty log.
    let logs = open_all(&store, models);
    verify_all(&logs, "after dropping two logs and reopening");
}

#[test]
fn a_log_cannot_be_dropped_while_open_and_has_one_handle() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut a = store.log::<KeyValue>("a").unwrap();
    a.append_entry(KeyValue::new("x", 1, 8)).unwrap();
    assert!(matches!(
        store.log::<KeyValue>("a"),
        Err(Error::LogInUse { .. })
    ));
    assert!(matches!(store.drop_log("a"), Err(Error::LogInUse { .. })));
    assert!(matches!(
        store.drop_log("never-created"),
        Err(Error::NoSuchLog { .. })
    ));
    for bad in ["", "a/b", "with space", "ünïcode"] {
        assert!(matches!(
            store.log::<KeyValue>(bad),
            Err(Error::InvalidLogName { .. })
        ));
    }
    drop(a);
    let a = store.log::<KeyValue>("a").unwrap();
    assert_eq!(a.get_log_len().unwrap(), 1);
    drop(a);
    store.drop_log("a").unwrap();
    assert!(store.logs().unwrap().is_empty());
}

#[test]
fn concurrent_writers_on_eight_logs_of_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let batches = 40;
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = store.clone();
            s.spawn(move || {
                let mut log = store.log::<KeyValue>(&name(t)).unwrap();
                let mut model = Model::new();
                for b in 0..batches {
                    let next = model.next;
                    let ops = vec![
                        StorageOp::AppendEntries(values(t, next, 16)),
                        StorageOp::SetDecidedIndex(next + 16),
                    ];
                    apply(&mut log, &mut model, ops);
                    if b % 10 == 9 {
                        let at = model.next - 8;
                        apply(
                            &mut log,
                            &mut model,
                            vec![StorageOp::Trim(at), StorageOp::SetCompactedIdx(at)],
                        );
                    }
                }
                verify_store(&log, &model).unwrap();
            });
        }
    });
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    for t in 0..8 {
        let log = store.log::<KeyValue>(&name(t)).unwrap();
        assert_eq!(log.get_decided_idx().unwrap(), batches * 16);
        assert_eq!(log.get_log_len().unwrap(), 8);
        let tail = log.get_suffix(log.get_compacted_idx().unwrap()).unwrap();
        assert_eq!(tail, values(t, batches * 16 - 8, 8));
    }
}

fn sst_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Small memtables and files, so that a few MB of log span many table files.
fn small_files() -> RocksOptions {
    RocksOptions::new()
        .write_buffer_bytes(256 << 10)
        .target_file_bytes(256 << 10)
}

/// `n` entries of 500 bytes, 1,000 per batch (the workloads' one `fill`).
fn fill(log: &mut RocksStorage<KeyValue>, n: usize) {
    paxstore_workloads::fill_batched(log, n, 1000, 500).unwrap();
}

#[test]
fn explicit_reclaim_gives_trimmed_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open_with(dir.path(), small_files().reclaim_threshold(0)).unwrap();
    let mut log = store.log::<KeyValue>("log").unwrap();
    fill(&mut log, 20_000);
    log.reclaim().unwrap(); // nothing trimmed yet: nothing to do
    let before = sst_bytes(dir.path());
    assert!(
        before > 5 << 20,
        "the log should span table files, has {before} bytes"
    );
    log.write_atomically(vec![
        StorageOp::Trim(18_000),
        StorageOp::SetCompactedIdx(18_000),
    ])
    .unwrap();
    // Trimming alone gives nothing back (automatic reclamation is off here) ...
    let trimmed = sst_bytes(dir.path());
    assert!(
        trimmed * 10 >= before * 9,
        "{before} bytes before the trim, {trimmed} after"
    );
    // ... reclaiming does.
    log.reclaim().unwrap();
    let after = sst_bytes(dir.path());
    assert!(
        after * 4 < before,
        "table files: {before} bytes before, {after} after reclaiming 90%"
    );
    // What is left is intact, also after a reopen.
    assert_eq!(log.get_log_len().unwrap(), 2000);
    let e = log.get_entries(18_000, 20_000).unwrap();
    assert_eq!(e.len(), 2000);
    assert_eq!(e[1999].value, 19_999);
    drop(log);
    drop(store);
    let log = RocksStorage::<KeyValue>::open_with(dir.path(), small_files()).unwrap();
    assert_eq!(log.get_entries(18_000, 20_000).unwrap(), e);
    assert!(log.get_entries(17_999, 18_001).unwrap().is_empty());
}

#[test]
fn automatic_reclaim_runs_in_the_background_after_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open_with(dir.path(), small_files().reclaim_threshold(5_000)).unwrap();
    let mut log = store.log::<KeyValue>("log").unwrap();
    fill(&mut log, 20_000);
    store.wait_for_reclaim().unwrap();
    let before = sst_bytes(dir.path());
    // Trims in steps as OmniPaxos makes them; the threshold is passed on the way.
    for at in (2_000..=18_000).step_by(2_000) {
        log.write_atomically(vec![StorageOp::Trim(at), StorageOp::SetCompactedIdx(at)])
            .unwrap();
    }
    store.wait_for_reclaim().unwrap();
    let after = sst_bytes(dir.path());
    assert!(
        after * 4 < before,
        "table files: {before} bytes before, {after} after"
    );
    assert_eq!(log.get_entries(18_000, 20_000).unwrap().len(), 2000);
    drop(log);
    drop(store);
    let log = RocksStorage::<KeyValue>::open(dir.path()).unwrap();
    assert_eq!(log.get_log_len().unwrap(), 2000);
    assert_eq!(log.get_compacted_idx().unwrap(), 18_000);
}

#[test]
fn stores_are_shareable_and_durable_by_default() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<RocksStore>();
    send::<RocksStorage<KeyValue>>();
    let options = RocksOptions::new();
    assert!(options.sync_policy().is_durable());
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open_with(dir.path(), options).unwrap();
    assert_eq!(
        store.options().sync_policy(),
        paxstore_core::SyncPolicy::Always
    );
    // A clone is the same database: a log opened through one is in use through the other.
    let clone = store.clone();
    let _log = store.log::<KeyValue>("a").unwrap();
    assert!(matches!(
        clone.log::<KeyValue>("a"),
        Err(Error::LogInUse { .. })
    ));
    assert_eq!(clone.path(), dir.path());
}
