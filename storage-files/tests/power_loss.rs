//! Power loss, simulated with [`SimFs`]: OmniPaxos-shaped workloads crashed at every
//! file-system call, with several drop patterns each, and crash → reopen → crash.
//!
//! A workload is a deterministic sequence of steps (batches of
//! `paxstore_core::conformance::crash::batch`: appends across segment rotation, trims that
//! delete segments, snapshot-plus-truncate, `append_on_prefix`, promises and stop-signs; and
//! every fourth step a single-op call: `set_promise`, `set_decided_idx` (lowered as well as
//! raised), `append_entries`, `trim`, `set_accepted_round`, `append_on_prefix`,
//! `set_stopsign`), so its states `history[0..]` are known. For every mutating call `c` of a
//! clean run, the run is repeated and frozen just before call `c`, with `acked` steps
//! acknowledged and maybe one in flight. Then:
//!
//! 1. power loss (drop all, keep all, two random patterns): a strict open must succeed and
//!    hold `history[acked]` or, if a step was in flight, `history[acked + 1]`;
//! 2. kill -9 (page cache kept), then a reopen and two more steps, crashed at each of their
//!    calls, then power loss: again the acknowledged state or the one in flight, and never a
//!    state older than one a completed reopen returned (what open returns, consensus acts on);
//! 3. the same after a first power loss instead of a kill.
//!
//! Under [`SyncPolicy::Never`] acknowledged steps may be lost, but the store must open (a
//! strict open when the disk kept writes in order, at worst a lenient one) and hold the state
//! after some prefix of the steps, never less than what the last completed open returned.
//!
//! `PAXSTORE_SIM_STEPS` sets the steps per workload (default 48).

mod common;

use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::cases::ballot;
use paxstore_core::conformance::crash::batch;
use paxstore_core::conformance::{call_single_op, clone_op, verify_store};
use paxstore_core::kv::{KVSnapshot, KeyValue};
use paxstore_core::model::Model;
use paxstore_files::env::{CrashPattern, SimFs, Trigger};
use paxstore_files::{FilesOptions, FilesStorage, RecoveryMode, SyncPolicy};

use common::{sim_steps, single_op, Allowed, CrashDriver, Workload, AFTER_REOPEN};

type Store = FilesStorage<KeyValue>;
type Ops = Vec<StorageOp<KeyValue>>;

/// The store directory: its parents do not exist at first, so open creates them too.
const DIR: &str = "/srv/node-1/log";

/// One step: a batch, or a single op through its own `Storage` method.
struct Step {
    ops: Ops,
    single: bool,
}

fn step(k: usize, m: &Model<KeyValue>) -> Step {
    if k % 4 != 3 {
        return Step {
            ops: batch(k, m),
            single: false,
        };
    }
    let op = single_op(k, m);
    Step {
        ops: vec![op],
        single: true,
    }
}

fn call(store: &mut Store, s: Step) -> Result<(), String> {
    let r = if s.single {
        let Some(op) = s.ops.into_iter().next() else {
            return Ok(());
        };
        call_single_op(store, op)
    } else {
        store.write_atomically(s.ops)
    };
    r.map_err(|e| e.to_string())
}

/// The state after each number of steps.
fn history(n: usize) -> Vec<Model<KeyValue>> {
    let mut h = vec![Model::new()];
    for k in 0..n {
        let mut m = h[k].clone();
        let ops: Ops = step(k, &h[k]).ops.iter().map(clone_op).collect();
        m.apply_batch(&ops).expect("the model accepts every step");
        h.push(m);
    }
    h
}

struct Ctx {
    w: Workload,
    history: Vec<Model<KeyValue>>,
}

impl Ctx {
    fn open_mode(&self, fs: &SimFs, mode: RecoveryMode) -> Result<Store, String> {
        let opts = (self.w.options)()
            .recovery(mode)
            .file_system(Arc::new(fs.clone()));
        Store::open_with(Path::new(DIR), opts).map_err(|e| e.to_string())
    }
}

impl CrashDriver for Ctx {
    type Opened = Store;

    fn workload(&self) -> &Workload {
        &self.w
    }

    fn last(&self) -> usize {
        self.history.len() - 1
    }

    fn open(&self, fs: &SimFs) -> Result<Store, String> {
        self.open_mode(fs, RecoveryMode::Strict).or_else(|e| {
            // Without syncs a power loss can leave a hole before later records: only a lenient
            // open cuts the log there.
            if self.w.durable() || fs.frozen() {
                Err(e)
            } else {
                self.open_mode(fs, RecoveryMode::Lenient)
            }
        })
    }

    fn open_after_loss(&self, fs: &SimFs) -> Result<Store, String> {
        match self.open_mode(fs, RecoveryMode::Strict) {
            Ok(s) => Ok(s),
            // Without syncs, the disk may keep a later write and drop an earlier one: only a
            // lenient open can then cut the log at the hole.
            Err(e) if !self.w.durable() => self
                .open_mode(fs, RecoveryMode::Lenient)
                .map_err(|e2| format!("strict open failed ({e}), lenient too: {e2}")),
            Err(e) => Err(format!("strict open failed: {e}")),
        }
    }

    /// Which allowed state the store holds: for a durable workload only `lo` or `hi`.
    fn which(&self, store: &Store, allowed: Allowed) -> Result<usize, String> {
        let candidates: Vec<usize> = if self.w.durable() {
            vec![allowed.hi, allowed.lo]
        } else {
            (allowed.lo..=allowed.hi).rev().collect()
        };
        let bounds = store.bounds();
        let mut why = Vec::new();
        for &i in &candidates {
            let m = &self.history[i];
            if !self.w.durable() && (bounds.first, bounds.next) != (m.first, m.next) {
                continue;
            }
            match verify_store(store, m) {
                Ok(()) => return Ok(i),
                Err(e) => why.push(format!("not state {i}: {e}")),
            }
        }
        Err(format!(
            "holds none of the states {}..={} it may hold ({})",
            allowed.lo,
            allowed.hi,
            why.join("; ")
        ))
    }

    fn step(&self, store: &mut Store, k: usize) -> Result<(), String> {
        call(store, step(k, &self.history[k]))
    }

    /// Without syncs, anything acknowledged since the last open may be lost.
    fn oldest(&self, acked: usize, start: usize) -> usize {
        if self.w.durable() {
            acked
        } else {
            start
        }
    }
}

/// Crashes the workload at every file-system call. Returns the crash states checked.
fn explore(w: Workload) -> usize {
    let n = sim_steps();
    let ctx = Ctx {
        w,
        history: history(n + AFTER_REOPEN + 1),
    };
    common::explore(&ctx, n)
}

fn small_segments() -> FilesOptions {
    FilesOptions::new()
        .segment_size(24 << 10)
        .background_purge(false)
}

#[test]
fn every_call_of_a_durable_workload_survives_power_loss() {
    let states = explore(Workload {
        name: "durable",
        options: small_segments,
        sim: SimFs::new,
    });
    assert!(states >= 4000, "only {states} crash states");
}

#[test]
fn every_call_survives_power_loss_without_fallocate() {
    let states = explore(Workload {
        name: "no fallocate",
        options: || small_segments().segment_size(8 << 10),
        sim: || SimFs::new().without_allocate(),
    });
    assert!(states >= 4000, "only {states} crash states");
}

#[test]
fn sync_never_loses_only_a_suffix_and_always_opens() {
    let states = explore(Workload {
        name: "sync never",
        options: || small_segments().sync(SyncPolicy::Never),
        sim: SimFs::new,
    });
    assert!(states >= 2000, "only {states} crash states");
}

// ---- the scenarios of the findings, by name ----

fn named_opts(fs: &SimFs) -> FilesOptions {
    small_segments().file_system(Arc::new(fs.clone()))
}

/// A store with a few segments and a snapshot.
fn prepared(fs: &SimFs) -> (Store, Model<KeyValue>) {
    let mut store = Store::open_with(DIR, named_opts(fs)).unwrap();
    let mut model = Model::new();
    for k in 0..12 {
        let ops = batch(k, &model);
        model
            .apply_batch(&ops.iter().map(clone_op).collect::<Vec<_>>())
            .unwrap();
        store.write_atomically(ops).unwrap();
    }
    let snap = vec![
        StorageOp::Trim(model.first + 2),
        StorageOp::SetCompactedIdx(model.first + 2),
        StorageOp::SetSnapshot(Some(KVSnapshot::sized(3, 900))),
    ];
    model
        .apply_batch(&snap.iter().map(clone_op).collect::<Vec<_>>())
        .unwrap();
    store.write_atomically(snap).unwrap();
    (store, model)
}

fn reopen_holds(fs: &SimFs, want: &[&Model<KeyValue>], label: &str) -> Store {
    let store = Store::open_with(DIR, named_opts(fs)).unwrap_or_else(|e| {
        panic!(
            "{label}: strict open failed: {e}\n  {}",
            fs.trace().join("\n  ")
        )
    });
    let errs: Vec<String> = want
        .iter()
        .filter_map(|m| verify_store(&store, m).err())
        .collect();
    assert!(
        errs.len() < want.len(),
        "{label}: the store holds none of the allowed states: {errs:?}"
    );
    store
}

/// The process on `fs` was killed holding `model`: a reopen must hold it, acknowledge batch
/// `k`, and keep both through a power loss.
fn kill_reopen_write_lose_power(fs: &SimFs, model: &Model<KeyValue>, k: usize) {
    let killed = fs.kill();
    let mut store = reopen_holds(&killed, &[model], "after the kill");
    let ops = batch(k, model);
    let mut after = model.clone();
    after
        .apply_batch(&ops.iter().map(clone_op).collect::<Vec<_>>())
        .unwrap();
    store.write_atomically(ops).unwrap();
    drop(store);
    let lost = killed.power_loss(CrashPattern::DropAll);
    reopen_holds(&lost, &[&after], "after the kill, a write and a power loss");
}

/// Finding 1: killed between a record's write and its fdatasync, the next open replayed the
/// record from the page cache and deleted the old snapshot file; a power loss then took the
/// record and left the store unopenable.
#[test]
fn finding_1_reopen_acts_only_on_a_synced_tail() {
    let fs = SimFs::new();
    let (mut store, model) = prepared(&fs);
    let mut after = model.clone();
    let snap = vec![
        StorageOp::Trim(model.first + 3),
        StorageOp::SetCompactedIdx(model.first + 3),
        StorageOp::SetSnapshot(Some(KVSnapshot::sized(5, 1200))),
    ];
    after
        .apply_batch(&snap.iter().map(clone_op).collect::<Vec<_>>())
        .unwrap();
    fs.trigger("fsync seg-", Trigger::Crash);
    assert!(store.write_atomically(snap).is_err());
    drop(store);
    let killed = fs.kill();
    // The reopen sees the unsynced record (it is in the page cache) ...
    let store = reopen_holds(&killed, &[&after], "after the kill");
    drop(store);
    // ... and a power loss must not take back what it returned.
    let lost = killed.power_loss(CrashPattern::DropAll);
    reopen_holds(
        &lost,
        &[&after],
        "after the kill, a reopen and a power loss",
    );
}

/// Finding 1, the seal: killed after a seal's `set_len` but before its fsync, the reopen
/// took the segment as sealed and started a new one; a power loss took the seal.
#[test]
fn finding_1_reopen_syncs_an_unsynced_seal() {
    let fs2 = SimFs::new();
    let (mut store, model) = prepared(&fs2);
    fs2.trigger("fsync seg-", Trigger::Crash);
    let r = store.rotate();
    assert!(r.is_err(), "the crash must interrupt the seal");
    assert!(
        fs2.trace().iter().any(|c| c.starts_with("set_len seg-")),
        "the seal's set_len ran before the crash"
    );
    drop(store);
    kill_reopen_write_lose_power(&fs2, &model, 40);
}

/// Finding 1, the rename: killed after a new segment was renamed into place but before the
/// directory fsync, the reopen appended to it; a power loss took the rename, and the next
/// open deleted the acknowledged records with the leftover temp file.
#[test]
fn finding_1_reopen_syncs_an_unsynced_rename() {
    let fs = SimFs::new();
    let (mut store, model) = prepared(&fs);
    store.rotate().unwrap();
    // The next rotation: crash at the directory fsync after the rename.
    fs.trigger("fsync dir", Trigger::Crash);
    assert!(store.rotate().is_err());
    assert!(
        fs.trace()
            .iter()
            .any(|c| c.starts_with("rename") && c.contains("seg-")),
        "the new segment was renamed into place before the crash"
    );
    drop(store);
    kill_reopen_write_lose_power(&fs, &model, 41);
}

/// Finding 2: under `SyncPolicy::Never` a trim deleted segments before its record was
/// durable; a power loss then left a store no recovery mode could open.
#[test]
fn finding_2_sync_never_trim_is_durable_before_its_deletions() {
    let fs = SimFs::new();
    let opts = small_segments()
        .sync(SyncPolicy::Never)
        .file_system(Arc::new(fs.clone()));
    let mut store = Store::open_with(DIR, opts.clone()).unwrap();
    let mut model = Model::new();
    for k in 0..20 {
        let ops = StorageOp::AppendEntries(
            (0..6)
                .map(|i| KeyValue::new("k", (k * 10 + i) as u64, 1500))
                .collect(),
        );
        model.apply(&clone_op(&ops)).unwrap();
        store.write_atomically(vec![ops]).unwrap();
    }
    assert!(store.stats().live_segments >= 3);
    let trim = model.next - 4;
    model.apply(&StorageOp::Trim(trim)).unwrap();
    store.trim(trim).unwrap();
    assert!(
        store.stats().deleted_segments >= 2,
        "the trim deleted segments"
    );
    drop(store);
    let lost = fs.power_loss(CrashPattern::DropAll);
    let store = Store::open_with(DIR, opts.file_system(Arc::new(lost.clone())))
        .unwrap_or_else(|e| panic!("the store does not open after a power loss: {e}"));
    verify_store(&store, &model).expect("the synced trim and everything before it survive");
}

/// Finding 3: a failed fdatasync left its record in the file, and a reopen in the same boot
/// replayed a batch that had returned `Err`.
#[test]
fn finding_3_a_batch_whose_fdatasync_failed_is_not_replayed() {
    let fs = SimFs::new();
    let (mut store, model) = prepared(&fs);
    // A fresh segment: the next fsync of a segment is the batch's own fdatasync.
    store.rotate().unwrap();
    fs.trigger("fsync seg-", Trigger::Fail);
    let ops = vec![StorageOp::AppendEntries(
        (0..3).map(|i| KeyValue::new("f", i, 100)).collect(),
    )];
    assert!(store.write_atomically(ops).is_err());
    assert!(store.poisoned().is_some(), "a failed fdatasync poisons");
    drop(store);
    // Same boot: the page cache still holds whatever was written.
    let killed = fs.kill();
    reopen_holds(&killed, &[&model], "reopened after the failed fdatasync");
}

/// Finding 3: a failed fsync of a snapshot file, or of the directory after its rename,
/// poisons the store like every other failed fsync.
#[test]
fn finding_3_a_failed_snapshot_fsync_poisons() {
    for (call, what) in [("fsync snap-", "snapshot file"), ("fsync dir", "directory")] {
        let fs = SimFs::new();
        let (mut store, model) = prepared(&fs);
        let ops = vec![
            StorageOp::Trim(model.first + 1),
            StorageOp::SetSnapshot(Some(KVSnapshot::sized(2, 500))),
        ];
        fs.trigger(call, Trigger::Fail);
        assert!(
            store.write_atomically(ops).is_err(),
            "{what}: the batch fails"
        );
        assert!(
            store.poisoned().is_some(),
            "{what}: a failed fsync must poison the store"
        );
        drop(store);
        reopen_holds(&fs.kill(), &[&model], what);
    }
}

/// Finding 4: where `fallocate` is unsupported, the store writes without it.
#[test]
fn finding_4_no_fallocate_falls_back_to_plain_writes() {
    let fs = SimFs::new().without_allocate();
    let (store, model) = prepared(&fs);
    drop(store);
    reopen_holds(
        &fs.power_loss(CrashPattern::DropAll),
        &[&model],
        "no fallocate",
    );
}

/// Finding 5: the store directory's entry in its parent is fsynced, so a power loss right
/// after the first acknowledged write does not take the whole directory.
#[test]
fn finding_5_the_new_store_directory_survives_power_loss() {
    let fs = SimFs::new();
    let mut store = Store::open_with(DIR, named_opts(&fs)).unwrap();
    store.set_promise(ballot(9)).unwrap();
    drop(store);
    let lost = fs.power_loss(CrashPattern::DropAll);
    let store = Store::open_with(DIR, named_opts(&lost)).unwrap();
    assert_eq!(store.get_promise().unwrap(), Some(ballot(9)));
}
