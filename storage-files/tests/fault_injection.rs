//! Fault injection: every file-system call an operation makes fails in turn.
//!
//! For each operation the test first counts the calls of each [`FaultKind`] it makes on a
//! prepared store, then, for every kind and every `n` up to that count, prepares the same store
//! in a fresh directory, fails the `n`-th call of that kind, runs the operation and checks:
//!
//! - `Err` and not poisoned: every read equals the state before, a reopen (on the plain file
//!   system) shows the state before, and the store takes further writes;
//! - poisoned: every call fails saying so, and a reopen shows exactly the state before or
//!   after the operation (after, if it returned `Ok`), never something between;
//! - `Ok`: reads and a reopen show the state after.
//!
//! A disk-full write must fail with an error that says so and change nothing; a disk-full
//! preallocation either does the same or is survived (the write goes on without the reserve).
//! A preallocation the file system does not support (`EOPNOTSUPP`) must change nothing either:
//! the engine writes without it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::cases::{ballot, entries, rewritten, snapshot_upto, stopsign};
use paxstore_core::conformance::{clone_op, verify_store};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{FaultKind, FaultyFs};
use paxstore_files::{FilesOptions, Stats};

use common::*;

type Ops = Vec<StorageOp<KeyValue>>;
type Counts = BTreeMap<&'static str, u64>;

/// What is done under fault injection.
enum Op {
    /// A `write_atomically` of the batch built from the state before it.
    Write(fn(&Model<KeyValue>) -> Ops),
    /// Opening the prepared directory.
    Open,
}

struct Scenario {
    name: &'static str,
    /// Options (besides the file system) of every store of the scenario.
    options: fn() -> FilesOptions,
    /// Builds the prepared store in a directory, returns its state.
    prepare: fn(&Path) -> Model<KeyValue>,
    op: Op,
    /// Checks, on the fault-free run, that the operation does what the scenario names
    /// (rotates, deletes segments, ...): stats before and after, calls per kind.
    check: fn(&Stats, &Stats, &Counts),
}

fn kind_name(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Create => "create",
        FaultKind::Write => "write",
        FaultKind::ShortWrite => "short write",
        FaultKind::DiskFull => "disk full",
        FaultKind::Fsync => "fsync",
        FaultKind::Rename => "rename",
        FaultKind::Unlink => "unlink",
        FaultKind::DirFsync => "directory fsync",
        FaultKind::Open => "open",
        FaultKind::SetLen => "set_len",
        FaultKind::AllocateUnsupported => "allocate unsupported",
        FaultKind::AllocateDiskFull => "allocate disk full",
    }
}

fn clone_ops(ops: &Ops) -> Ops {
    ops.iter().map(clone_op).collect()
}

// ---- preparations ----

/// A store with a promise, an accepted round and 60 batches of 30 entries (about five
/// segments), written through `fs` when given.
fn build_log(dir: &Path, options: FilesOptions) -> (Store, Model<KeyValue>) {
    let mut store = Store::open_with(dir, options).unwrap();
    let mut model = Model::new();
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::SetPromise(ballot(3)),
            StorageOp::SetAcceptedRound(ballot(2)),
        ],
    );
    for _ in 0..60 {
        let ops = append_batch(&model, 30);
        apply(&mut store, &mut model, ops);
    }
    assert!(
        store.stats().live_segments >= 4,
        "the prepared log spans several segments"
    );
    (store, model)
}

/// The log, then a rotation and a short batch: the active segment is nearly empty.
fn prepare_fresh_active(dir: &Path) -> Model<KeyValue> {
    let (mut store, mut model) = build_log(dir, opts());
    store.rotate().unwrap();
    let ops = append_batch(&model, 5);
    apply(&mut store, &mut model, ops);
    model
}

fn prepare_log(dir: &Path) -> Model<KeyValue> {
    build_log(dir, opts()).1
}

/// The log with an earlier snapshot-plus-truncate, so that a new snapshot supersedes a file.
fn prepare_with_snapshot(dir: &Path) -> Model<KeyValue> {
    let (mut store, mut model) = build_log(dir, opts());
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::Trim(100),
            StorageOp::SetCompactedIdx(100),
            StorageOp::SetSnapshot(Some(snapshot_upto(100))),
        ],
    );
    model
}

/// The log, a rotation, and about 8 KiB in the new active segment: a 9 KiB batch does not fit.
fn prepare_half_full(dir: &Path) -> Model<KeyValue> {
    let (mut store, mut model) = build_log(dir, opts());
    store.rotate().unwrap();
    let next = model.next;
    apply(
        &mut store,
        &mut model,
        vec![StorageOp::AppendEntries(big_entries(next, 40, 200))],
    );
    model
}

/// A directory with everything open has to clean up: segments below the trim point that an
/// interrupted trim left behind, an orphan snapshot file, a leftover temp file and a torn
/// record at the end of the last segment (preallocation off, so the file ends at the tail).
fn prepare_dirty_dir(dir: &Path) -> Model<KeyValue> {
    let fs = FaultyFs::new();
    let options = opts().preallocate(false).file_system(Arc::new(fs.clone()));
    let (mut store, mut model) = build_log(dir, options);
    let ops = append_batch(&model, 10);
    apply(&mut store, &mut model, ops);
    let before = store.stats().live_segments;
    // The trim record lands, the first unlink fails: that segment stays, the ones after it go,
    // which leaves a dead segment below a gap in the ids.
    fs.fail_nth(FaultKind::Unlink, 1);
    let t = model.next - 400;
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::Trim(t),
            StorageOp::SetCompactedIdx(t),
            StorageOp::SetSnapshot(Some(snapshot_upto(t))),
        ],
    );
    let _ = store.wait_for_reclaim();
    assert!(fs.fired());
    drop(store);
    fs.reset_counts();
    let left = segments(dir).len() as u64;
    assert!(
        left > 1 && left < before,
        "the trim deleted all but the segment whose unlink failed ({left} of {before} left)"
    );

    let snap = snapshots(dir).pop().expect("a snapshot file");
    std::fs::copy(&snap, dir.join("snap-00000000000000f0.snap")).unwrap();
    std::fs::write(dir.join("seg-00000000000000f0.log.tmp"), b"half a segment").unwrap();
    let last = last_segment(dir);
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&500u32.to_le_bytes());
    bytes.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    bytes.push(paxstore_files::format::KIND_BATCH);
    bytes.extend_from_slice(&[0xab; 50]);
    std::fs::write(&last, bytes).unwrap();
    model
}

/// The last segment is sealed, but its preallocated rest was never cut (the seal's set_len
/// failed and poisoned the store): open must cut it.
fn prepare_sealed_tail(dir: &Path) -> Model<KeyValue> {
    let fs = FaultyFs::new();
    let (mut store, model) = build_log(dir, opts().file_system(Arc::new(fs.clone())));
    fs.fail_nth(FaultKind::SetLen, 1);
    assert!(store.rotate().is_err());
    assert!(store.poisoned().is_some());
    drop(store);
    let len = std::fs::metadata(last_segment(dir)).unwrap().len();
    assert_eq!(len, SEGMENT, "the preallocated rest is still there");
    model
}

// ---- operations ----

fn op_append(m: &Model<KeyValue>) -> Ops {
    append_batch(m, 20)
}

/// Replaces the last 20 entries (reaching into the sealed segment before the active one) with
/// 10 new ones.
fn op_append_on_prefix(m: &Model<KeyValue>) -> Ops {
    let at = m.next - 20;
    vec![StorageOp::AppendOnPrefix(
        at,
        (at..at + 10).map(rewritten).collect(),
    )]
}

fn trim_point(m: &Model<KeyValue>) -> usize {
    m.next - 300
}

fn op_trim(m: &Model<KeyValue>) -> Ops {
    let t = trim_point(m);
    vec![StorageOp::Trim(t), StorageOp::SetCompactedIdx(t)]
}

fn op_snapshot_plus_truncate(m: &Model<KeyValue>) -> Ops {
    let t = trim_point(m);
    vec![
        StorageOp::Trim(t),
        StorageOp::SetCompactedIdx(t),
        StorageOp::SetSnapshot(Some(snapshot_upto(t))),
    ]
}

fn op_rotating_append(m: &Model<KeyValue>) -> Ops {
    vec![StorageOp::AppendEntries(big_entries(m.next, 45, 200))]
}

/// A follower catching up past the end of its log (`sync_log`).
fn op_catch_up(m: &Model<KeyValue>) -> Ops {
    let i = m.next + 50;
    vec![
        StorageOp::SetAcceptedRound(ballot(5)),
        StorageOp::SetDecidedIndex(i + 5),
        StorageOp::Trim(i),
        StorageOp::SetCompactedIdx(i),
        StorageOp::SetSnapshot(Some(snapshot_upto(i))),
        StorageOp::AppendOnPrefix(i, entries(i..i + 10)),
        StorageOp::SetStopsign(Some(stopsign(2))),
    ]
}

// ---- checks of the fault-free run ----

fn no_rotation(before: &Stats, after: &Stats, counts: &Counts) {
    assert_eq!(counts["create"], 0, "the batch fits the active segment");
    assert_eq!(before.live_segments, after.live_segments);
}

fn deletes_segments(before: &Stats, after: &Stats, counts: &Counts) {
    assert!(
        after.deleted_segments >= before.deleted_segments + 2,
        "the trim deletes whole segments: {before:?} -> {after:?}"
    );
    assert!(counts["unlink"] >= 2);
}

fn rotates(before: &Stats, after: &Stats, counts: &Counts) {
    assert!(counts["create"] >= 1, "a new segment is created");
    assert_eq!(after.live_segments, before.live_segments + 1);
}

fn cleans_up(_: &Stats, after: &Stats, counts: &Counts) {
    assert!(
        counts["unlink"] >= 3,
        "the leftover, the orphan snapshot and the dead segment below the gap go"
    );
    assert!(counts["set_len"] >= 1, "the torn tail is cut");
    assert!(after.torn_tail_bytes_cut > 0);
}

fn cuts_sealed_tail(_: &Stats, _: &Stats, counts: &Counts) {
    assert!(counts["set_len"] >= 1, "the preallocated rest is cut");
}

// ---- the runner ----

/// Asserts that every call on a poisoned store fails and says why.
fn assert_refuses_everything(store: &mut Store, label: &str) {
    let (first, next) = {
        let b = store.bounds();
        (b.first, b.next)
    };
    let results: Vec<(&str, omnipaxos::storage::StorageResult<()>)> = vec![
        ("get_promise", store.get_promise().map(drop)),
        ("get_accepted_round", store.get_accepted_round().map(drop)),
        ("get_decided_idx", store.get_decided_idx().map(drop)),
        ("get_compacted_idx", store.get_compacted_idx().map(drop)),
        ("get_stopsign", store.get_stopsign().map(drop)),
        ("get_snapshot", store.get_snapshot().map(drop)),
        ("get_log_len", store.get_log_len().map(drop)),
        ("get_entries", store.get_entries(first, next).map(drop)),
        ("get_suffix", store.get_suffix(first).map(drop)),
        ("append_entry", store.append_entry(rewritten(next))),
        ("set_promise", store.set_promise(ballot(9))),
        ("trim", store.trim(next)),
        ("write_atomically([])", store.write_atomically(Vec::new())),
        ("rotate", store.rotate().map_err(Into::into)),
    ];
    for (call, r) in results {
        match r {
            Ok(()) => panic!("{label}: poisoned store answered {call}"),
            Err(e) => assert!(
                e.to_string().contains("poisoned"),
                "{label}: {call} on a poisoned store failed without saying so: {e}"
            ),
        }
    }
}

/// Reopens a copy of `dir` on the plain file system (the store in `dir` may still be open)
/// and returns whether it shows `model`.
fn reopened_copy_shows(
    dir: &Path,
    options: &FilesOptions,
    model: &Model<KeyValue>,
) -> Result<(), String> {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let store =
        Store::open_with(copy.path(), options.clone()).map_err(|e| format!("reopen: {e}"))?;
    verify_store(&store, model)
}

/// After a clean outcome the store keeps working: one more batch lands, reads and a reopen
/// show it.
fn follow_up(
    mut store: Store,
    dir: &Path,
    options: &FilesOptions,
    state: &Model<KeyValue>,
    label: &str,
) {
    let mut model = state.clone();
    let ops = append_batch(&model, 3);
    let copy: Ops = clone_ops(&ops);
    if let Err(e) = store.write_atomically(ops) {
        panic!("{label}: the store refuses a write after a clean outcome: {e}");
    }
    model.apply_batch(&copy).unwrap();
    expect_state(&store, &model, &format!("{label}: after a follow-up write"));
    drop(store);
    let store = Store::open_with(dir, options.clone())
        .unwrap_or_else(|e| panic!("{label}: reopen after a follow-up write: {e}"));
    expect_state(
        &store,
        &model,
        &format!("{label}: reopened after a follow-up write"),
    );
}

struct Outcome {
    ok: usize,
    clean_err: usize,
    /// Poisoned after returning `Err`.
    poisoned: usize,
    /// Poisoned after returning `Ok` (a failure after the batch was durable).
    ok_poisoned: usize,
}

/// Judges one injected run. `store` is the store after the operation (for `Open`, the opened
/// store if it opened).
#[allow(clippy::too_many_arguments)]
fn judge(
    label: &str,
    kind: FaultKind,
    result: Result<(), String>,
    store: Option<Store>,
    dir: &Path,
    options: &FilesOptions,
    before: &Model<KeyValue>,
    after: &Model<KeyValue>,
    outcome: &mut Outcome,
) {
    let disk_full = matches!(kind, FaultKind::DiskFull | FaultKind::AllocateDiskFull);
    // A full disk at preallocation may be survived (a new segment starts without its
    // reserve; a write that fits needs none); a failed write may not.
    if disk_full && (kind == FaultKind::DiskFull || result.is_err()) {
        let err = result
            .as_ref()
            .expect_err(&format!("{label}: a full disk went unnoticed"));
        assert!(
            err.contains("no space left on device"),
            "{label}: the error does not say the disk is full: {err}"
        );
    }
    let poisoned = store.as_ref().is_some_and(|s| s.poisoned().is_some());
    if poisoned {
        let mut store = store.unwrap();
        assert!(!disk_full, "{label}: a full disk poisoned the store");
        assert_refuses_everything(&mut store, label);
        drop(store);
        let reopened = Store::open_with(dir, options.clone())
            .unwrap_or_else(|e| panic!("{label}: reopen of a poisoned store failed: {e}"));
        let is_after = verify_store(&reopened, after);
        let is_before = verify_store(&reopened, before);
        match (&result, is_after, is_before) {
            (Ok(()), Ok(()), _) | (Err(_), Ok(()), _) | (Err(_), _, Ok(())) => {}
            (Ok(()), Err(e), _) => panic!(
                "{label}: acknowledged, poisoned, and the reopened store lost the batch: {e}"
            ),
            (Err(_), Err(a), Err(b)) => panic!(
                "{label}: the reopened store is neither the state after ({a}) nor before ({b})"
            ),
        }
        match result {
            Ok(()) => outcome.ok_poisoned += 1,
            Err(_) => outcome.poisoned += 1,
        }
        return;
    }
    let state = match &result {
        Ok(()) => {
            outcome.ok += 1;
            after
        }
        Err(_) => {
            outcome.clean_err += 1;
            before
        }
    };
    let what = if result.is_ok() { "after" } else { "before" };
    if let Some(store) = &store {
        if let Err(e) = verify_store(store, state) {
            panic!("{label}: {result:?}, not poisoned, reads differ from the state {what}: {e}");
        }
    }
    if let Err(e) = reopened_copy_shows(dir, options, state) {
        panic!("{label}: {result:?}, not poisoned, a reopen differs from the state {what}: {e}");
    }
    match store {
        Some(store) => follow_up(store, dir, options, state, label),
        None => {
            let store = Store::open_with(dir, options.clone()).unwrap();
            follow_up(store, dir, options, state, label);
        }
    }
}

fn run(s: &Scenario) {
    let template = tempfile::tempdir().unwrap();
    let before = (s.prepare)(template.path());
    let after = match &s.op {
        Op::Write(f) => {
            let mut m = before.clone();
            m.apply_batch(&f(&before))
                .expect("the model accepts the batch");
            m
        }
        Op::Open => before.clone(),
    };
    let options = (s.options)();

    // The fault-free run: count the calls of each kind.
    let fs = FaultyFs::new();
    let work = tempfile::tempdir().unwrap();
    copy_dir(template.path(), work.path());
    let faulty = options.clone().file_system(Arc::new(fs.clone()));
    let (store, stats_before) = match &s.op {
        Op::Write(f) => {
            let mut store = Store::open_with(work.path(), faulty.clone()).unwrap();
            store.wait_for_reclaim().unwrap();
            let stats_before = store.stats();
            fs.reset_counts();
            store.write_atomically(f(&before)).unwrap();
            (store, stats_before)
        }
        Op::Open => (
            Store::open_with(work.path(), faulty.clone()).unwrap(),
            Stats::default(),
        ),
    };
    let mut store = store;
    store.wait_for_reclaim().unwrap();
    // Count before reading: reads make calls too (`get_snapshot` opens the file).
    let counts: Counts = FaultKind::ALL
        .iter()
        .map(|&k| (kind_name(k), fs.calls(k)))
        .collect();
    let calls: Vec<(FaultKind, u64)> = FaultKind::ALL.iter().map(|&k| (k, fs.calls(k))).collect();
    expect_state(&store, &after, &format!("{}: fault-free run", s.name));
    let stats_after = store.stats();
    drop(store);
    (s.check)(&stats_before, &stats_after, &counts);

    let mut outcome = Outcome {
        ok: 0,
        clean_err: 0,
        poisoned: 0,
        ok_poisoned: 0,
    };
    for (kind, count) in calls {
        for n in 1..=count {
            let label = format!("{}: {} #{n}", s.name, kind_name(kind));
            let work = tempfile::tempdir().unwrap();
            copy_dir(template.path(), work.path());
            let fs = FaultyFs::new();
            let faulty = options.clone().file_system(Arc::new(fs.clone()));
            let (result, store) = match &s.op {
                Op::Write(f) => {
                    let mut store = Store::open_with(work.path(), faulty).unwrap();
                    store.wait_for_reclaim().unwrap();
                    fs.fail_nth(kind, n);
                    let r = store
                        .write_atomically(f(&before))
                        .map_err(|e| e.to_string());
                    // Dead files are deleted in the background: let that finish (a failure
                    // there poisons the store).
                    let _ = store.wait_for_reclaim();
                    (r, Some(store))
                }
                Op::Open => {
                    fs.fail_nth(kind, n);
                    match Store::open_with(work.path(), faulty) {
                        Ok(mut store) => {
                            let _ = store.wait_for_reclaim();
                            (Ok(()), Some(store))
                        }
                        Err(e) => (Err(e.to_string()), None),
                    }
                }
            };
            assert!(
                fs.fired(),
                "{label}: the fault did not fire (the operation is not deterministic)"
            );
            judge(
                &label,
                kind,
                result,
                store,
                work.path(),
                &options,
                &before,
                &after,
                &mut outcome,
            );
        }
    }
    eprintln!(
        "{}: calls {counts:?}; {} ok, {} failed cleanly, {} failed and poisoned, {} ok and poisoned",
        s.name, outcome.ok, outcome.clean_err, outcome.poisoned, outcome.ok_poisoned
    );
}

#[test]
fn append() {
    run(&Scenario {
        name: "append",
        options: opts,
        prepare: prepare_fresh_active,
        op: Op::Write(op_append),
        check: no_rotation,
    });
}

#[test]
fn append_on_prefix_into_sealed_segment() {
    run(&Scenario {
        name: "append_on_prefix",
        options: opts,
        prepare: prepare_fresh_active,
        op: Op::Write(op_append_on_prefix),
        check: no_rotation,
    });
}

#[test]
fn trim_deleting_segments() {
    run(&Scenario {
        name: "trim",
        options: opts,
        prepare: prepare_log,
        op: Op::Write(op_trim),
        check: deletes_segments,
    });
}

fn opts_inline_purge() -> FilesOptions {
    opts().background_purge(false)
}

/// The same trim with dead segments deleted inside the call rather than by the worker.
#[test]
fn trim_deleting_segments_inline_purge() {
    run(&Scenario {
        name: "trim (inline purge)",
        options: opts_inline_purge,
        prepare: prepare_log,
        op: Op::Write(op_trim),
        check: deletes_segments,
    });
}

/// Snapshot-plus-truncate with dead files deleted inside the call.
#[test]
fn snapshot_plus_truncate_inline_purge() {
    run(&Scenario {
        name: "snapshot-plus-truncate (inline purge)",
        options: opts_inline_purge,
        prepare: prepare_with_snapshot,
        op: Op::Write(op_snapshot_plus_truncate),
        check: deletes_segments,
    });
}

#[test]
fn snapshot_plus_truncate_replacing_a_snapshot() {
    run(&Scenario {
        name: "snapshot-plus-truncate",
        options: opts,
        prepare: prepare_with_snapshot,
        op: Op::Write(op_snapshot_plus_truncate),
        check: deletes_segments,
    });
}

#[test]
fn first_snapshot_plus_truncate() {
    run(&Scenario {
        name: "first snapshot-plus-truncate",
        options: opts,
        prepare: prepare_log,
        op: Op::Write(op_snapshot_plus_truncate),
        check: deletes_segments,
    });
}

#[test]
fn rotation() {
    run(&Scenario {
        name: "rotation",
        options: opts,
        prepare: prepare_half_full,
        op: Op::Write(op_rotating_append),
        check: rotates,
    });
}

#[test]
fn catch_up_past_the_end() {
    run(&Scenario {
        name: "catch-up",
        options: opts,
        prepare: prepare_log,
        op: Op::Write(op_catch_up),
        check: deletes_segments,
    });
}

fn opts_no_prealloc() -> FilesOptions {
    opts().preallocate(false)
}

#[test]
fn open_with_cleanup() {
    run(&Scenario {
        name: "open (cleanup)",
        options: opts_no_prealloc,
        prepare: prepare_dirty_dir,
        op: Op::Open,
        check: cleans_up,
    });
}

#[test]
fn open_sealed_last_segment() {
    run(&Scenario {
        name: "open (sealed tail)",
        options: opts,
        prepare: prepare_sealed_tail,
        op: Op::Open,
        check: cuts_sealed_tail,
    });
}
