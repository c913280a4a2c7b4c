//! Crashes of a many-logs [`FilesStore`] while several writers' groups are in flight.
//!
//! `store_power_loss.rs` crashes a single-threaded workload at every file-system call; this
//! test crashes a concurrent one, where the pipelined group commit (a group written under the
//! stream's lock, synced and applied outside it, in stream order, at most
//! `groups_in_flight` groups between the two) has several groups of several logs on their
//! way when the file system stops.
//!
//! Each round (seeded): a fresh [`SimFs`] store with small segments (8–16 KiB, so that the run
//! rotates, seals, trims and relocates), 4–8 logs, one writer thread per log doing durable
//! batches (appends plus `SetDecidedIndex`, now and then a prefix trim, now and then a
//! snapshot with its compaction and trim). Each writer keeps what was acknowledged (a model)
//! and its one batch in flight. The file system is frozen with `crash_at(k)` for a random `k`
//! counted from the moment the writers start; every call after the freeze must fail, and
//! every writer must stop (no hang: a deadline on their completion). Then a power loss with a
//! random pattern (or a kill), and a strict reopen must hold, for every log, exactly what was
//! acknowledged, or that plus the batch in flight (whole). The reopened store must then take
//! one more batch per log and hold it after a kill and another reopen.
//!
//! Across the rounds, the crash must have hit with at least two writers in flight often
//! enough, so that the test cannot pass without exercising concurrent groups.
//!
//! `PAXSTORE_CONCURRENT_CRASH_ROUNDS` sets the rounds (default 60);
//! `PAXSTORE_CONCURRENT_CRASH_SEED` the first round's seed (each round's seed is printed on
//! failure; a round's thread interleaving, and so the exact crash point, is not reproducible,
//! but its workload, sizes and crash count are).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnipaxos::storage::{Snapshot, Storage, StorageOp};
use paxstore_core::conformance::{clone_op, verify_store};
use paxstore_core::kv::{KVSnapshot, KeyValue};
use paxstore_core::model::Model;
use paxstore_files::env::{CrashPattern, SimFs};
use paxstore_files::{FilesLog, FilesOptions, FilesStore};

type Log = FilesLog<KeyValue>;
type Ops = Vec<StorageOp<KeyValue>>;

const DIR: &str = "/srv/node-1/logs";
/// Batches each writer attempts.
const BATCHES: usize = 40;
/// How long the writers may go without one of them finishing before the round is a hang.
const STALL: Duration = Duration::from_secs(20);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// splitmix64: a small deterministic generator.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A round's shape, all from its seed.
#[derive(Clone, Copy, Debug)]
struct Shape {
    logs: usize,
    segment: u64,
    groups_in_flight: usize,
}

impl Shape {
    fn from(rng: &mut Rng) -> Shape {
        Shape {
            logs: 4 + rng.below(5) as usize,
            segment: (8 + rng.below(9)) << 10,
            groups_in_flight: [1, 2, 2, 2, 3, 4][rng.below(6) as usize],
        }
    }

    fn options(&self, fs: &SimFs) -> FilesOptions {
        FilesOptions::new()
            .segment_size(self.segment)
            .background_purge(false)
            .groups_in_flight(self.groups_in_flight)
            .file_system(Arc::new(fs.clone()))
    }
}

fn log_name(i: usize) -> String {
    format!("log-{i}")
}

/// The next batch of writer `w` (its `b`-th) on its acknowledged state `m`.
fn next_batch(rng: &mut Rng, w: usize, b: usize, m: &Model<KeyValue>) -> Ops {
    // Now and then a snapshot of a prefix of the decided entries, with compaction and trim.
    if b > 4 && rng.one_in(10) && m.decided_idx > m.first {
        let t = m.first + 1 + rng.below((m.decided_idx - m.first) as u64) as usize;
        let mut snap = m.snapshot.clone().unwrap_or_default();
        let covered: Vec<KeyValue> = m.log.range(m.first..t).map(|(_, e)| e.clone()).collect();
        snap.merge(KVSnapshot::create(&covered));
        let mut ops = vec![
            StorageOp::SetSnapshot(Some(snap)),
            StorageOp::SetCompactedIdx(t),
            StorageOp::Trim(t),
        ];
        if rng.one_in(2) {
            ops.push(StorageOp::AppendEntries(entries(rng, w, b, m.next)));
        }
        return ops;
    }
    let new = entries(rng, w, b, m.next);
    let next = m.next + new.len();
    let decided = m
        .decided_idx
        .max(next - rng.below(3).min(new.len() as u64) as usize);
    let mut ops = vec![
        StorageOp::AppendEntries(new),
        StorageOp::SetDecidedIndex(decided),
    ];
    // Now and then a trim of a prefix of the decided entries.
    if b > 2 && rng.one_in(7) && decided > m.first {
        let t = m.first + 1 + rng.below((decided - m.first) as u64) as usize;
        ops.push(StorageOp::Trim(t));
    }
    ops
}

/// 1 to 4 entries for indexes from `at`, with values unique to writer `w`, batch `b`.
fn entries(rng: &mut Rng, w: usize, b: usize, at: usize) -> Vec<KeyValue> {
    let n = 1 + rng.below(4) as usize;
    (0..n)
        .map(|i| {
            let key = format!("k{}", rng.below(6));
            let value = ((w as u64) << 40) | ((b as u64) << 16) | (at + i) as u64;
            KeyValue::new(key, value, 64 + rng.below(400) as usize)
        })
        .collect()
}

fn copy(ops: &Ops) -> Ops {
    ops.iter().map(clone_op).collect()
}

/// What the writers share.
struct Shared {
    fs: SimFs,
    /// Writers inside a `write_atomically` call.
    in_flight: AtomicUsize,
    /// Set by the first writer whose call failed.
    failed: AtomicBool,
    /// Writers in flight (itself included) when the first failure was returned.
    in_flight_at_first_err: Mutex<Option<usize>>,
}

/// What a writer saw.
struct Outcome {
    name: String,
    /// The state after every acknowledged batch.
    acked: Model<KeyValue>,
    acked_batches: usize,
    /// The batch whose call failed, if one did.
    in_flight: Option<Ops>,
    /// What went wrong with the store, seen from this writer (not the crash itself).
    violation: Option<String>,
}

fn writer(mut log: Log, w: usize, seed: u64, shared: Arc<Shared>) -> Outcome {
    let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x5851_f42d_4c95_7f2d));
    let mut out = Outcome {
        name: log.name().to_string(),
        acked: Model::new(),
        acked_batches: 0,
        in_flight: None,
        violation: None,
    };
    for b in 0..BATCHES {
        let ops = next_batch(&mut rng, w, b, &out.acked);
        let mut after = out.acked.clone();
        if let Err(e) = after.apply_batch(&ops) {
            out.violation = Some(format!("the test made a batch the model refuses: {e}"));
            return out;
        }
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = log.write_atomically(copy(&ops));
        match result {
            Ok(()) => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                out.acked = after;
                out.acked_batches += 1;
            }
            Err(e) => {
                if !shared.failed.swap(true, Ordering::SeqCst) {
                    let n = shared.in_flight.load(Ordering::SeqCst);
                    *shared.in_flight_at_first_err.lock().unwrap() = Some(n);
                }
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                if !shared.fs.frozen() {
                    out.violation =
                        Some(format!("batch {b} failed while the file system works: {e}"));
                }
                out.in_flight = Some(ops);
                // Every call after the freeze fails too.
                let more = next_batch(&mut rng, w, b + 1, &out.acked);
                if log.write_atomically(more).is_ok() && out.violation.is_none() {
                    out.violation = Some(format!(
                        "a batch after the failed batch {b} was acknowledged on a frozen file system"
                    ));
                }
                return out;
            }
        }
    }
    out
}

/// What one round found.
#[derive(Default)]
struct RoundStats {
    crashed: bool,
    in_flight_at_first_err: usize,
    /// Writers whose batch in flight survived whole / was lost.
    in_flight_kept: usize,
    in_flight_lost: usize,
    acked_batches: usize,
    /// Mutating calls after the writers started (for the calibration run).
    mutations: u64,
}

/// Runs the writers on a fresh store, the file system frozen at the `crash_at`-th call from
/// their start (if any), and checks the state that survives.
fn round(seed: u64, crash_at: Option<u64>, shape: Shape, rng: &mut Rng) -> RoundStats {
    let fs = SimFs::new();
    let store = FilesStore::open_with(Path::new(DIR), shape.options(&fs))
        .unwrap_or_else(|e| panic!("open of a fresh store failed: {e}"));
    let logs: Vec<Log> = (0..shape.logs)
        .map(|i| store.log::<KeyValue>(&log_name(i)).expect("a new log"))
        .collect();
    let shared = Arc::new(Shared {
        fs: fs.clone(),
        in_flight: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        in_flight_at_first_err: Mutex::new(None),
    });
    let start = fs.mutations();
    if let Some(k) = crash_at {
        fs.crash_at(k);
    }
    let (tx, rx) = mpsc::channel();
    for (w, log) in logs.into_iter().enumerate() {
        let (tx, shared) = (tx.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("writer-{w}"))
            .spawn(move || {
                let out = catch_unwind(AssertUnwindSafe(|| writer(log, w, seed, shared)));
                let _ = tx.send((w, out));
            })
            .expect("spawn a writer");
    }
    drop(tx);
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    while outcomes.len() < shape.logs {
        match rx.recv_timeout(STALL) {
            Ok((w, Ok(out))) => {
                outcomes.insert(w, out);
            }
            Ok((w, Err(panic))) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("writer {w} panicked: {msg}");
            }
            Err(_) => {
                let hung: Vec<usize> = (0..shape.logs)
                    .filter(|w| !outcomes.contains_key(w))
                    .collect();
                panic!(
                    "writers {hung:?} did not finish within {STALL:?} (frozen: {})\nlast calls:\n  {}",
                    fs.frozen(),
                    fs.trace().join("\n  ")
                );
            }
        }
    }
    let mutations = fs.mutations() - start;
    let mut stats = RoundStats {
        crashed: fs.frozen(),
        mutations,
        ..RoundStats::default()
    };
    for out in outcomes.values() {
        if let Some(v) = &out.violation {
            panic!(
                "{}: {v}\nlast calls:\n  {}",
                out.name,
                fs.trace().join("\n  ")
            );
        }
        stats.acked_batches += out.acked_batches;
    }
    if !stats.crashed {
        assert!(
            outcomes.values().all(|o| o.in_flight.is_none()),
            "a batch failed without a crash"
        );
    }
    stats.in_flight_at_first_err = shared.in_flight_at_first_err.lock().unwrap().unwrap_or(0);
    drop(store);

    // The state that survives: a kill now and then, else a power loss.
    let (after, how) = match rng.below(8) {
        0 | 1 => (fs.kill(), "kill".to_string()),
        2 => (fs.power_loss(CrashPattern::DropAll), "DropAll".into()),
        3 => (fs.power_loss(CrashPattern::KeepAll), "KeepAll".into()),
        _ => {
            let p = CrashPattern::Random(rng.next());
            (fs.power_loss(p), format!("{p:?}"))
        }
    };
    let fail = |why: String| -> ! {
        panic!(
            "after {how} (crashed: {}): {why}\nlast calls before the crash:\n  {}\ncalls of the reopen:\n  {}",
            stats.crashed,
            fs.trace().join("\n  "),
            after.trace().join("\n  ")
        )
    };
    let store = FilesStore::open_with(Path::new(DIR), shape.options(&after))
        .unwrap_or_else(|e| fail(format!("strict open failed: {e}")));
    let names: Vec<String> = (0..shape.logs).map(log_name).collect();
    if store.logs() != names {
        fail(format!("lists logs {:?}, not {names:?}", store.logs()));
    }
    let mut models = Vec::new();
    for out in outcomes.values() {
        let h = store
            .log::<KeyValue>(&out.name)
            .unwrap_or_else(|e| fail(format!("log {}: {e}", out.name)));
        let mut model = out.acked.clone();
        match &out.in_flight {
            None => {
                if let Err(e) = verify_store(&h, &model) {
                    fail(format!(
                        "{}: not its {} acknowledged batches: {e}",
                        out.name, out.acked_batches
                    ));
                }
            }
            Some(ops) => {
                let mut with = model.clone();
                with.apply_batch(ops).expect("the model took it before");
                match (verify_store(&h, &with), verify_store(&h, &model)) {
                    (Ok(()), _) => {
                        stats.in_flight_kept += 1;
                        model = with;
                    }
                    (_, Ok(())) => stats.in_flight_lost += 1,
                    (Err(a), Err(b)) => fail(format!(
                        "{}: neither its {} acknowledged batches ({b}) nor them and the one in flight ({a})",
                        out.name, out.acked_batches
                    )),
                }
            }
        }
        models.push((h, model));
    }

    // The reopened store goes on: one more batch per log, then a kill and a reopen.
    for (w, (h, model)) in models.iter_mut().enumerate() {
        let ops = next_batch(rng, w, BATCHES + 1, model);
        model.apply_batch(&ops).expect("the model takes it");
        if let Err(e) = h.write_atomically(ops) {
            fail(format!(
                "{}: a batch after the reopen failed: {e}",
                h.name()
            ));
        }
    }
    // The handles go first, then the store; a log's name stays with its model.
    let models: Vec<(String, Model<KeyValue>)> = models
        .into_iter()
        .map(|(h, m)| (h.name().to_string(), m))
        .collect();
    drop(store);
    let again = after.kill();
    let store = FilesStore::open_with(Path::new(DIR), shape.options(&again))
        .unwrap_or_else(|e| fail(format!("second open failed: {e}")));
    for (name, model) in &models {
        let h = store
            .log::<KeyValue>(name)
            .unwrap_or_else(|e| fail(format!("second open, log {name}: {e}")));
        if let Err(e) = verify_store(&h, model) {
            fail(format!("second open, log {name}: {e}"));
        }
    }
    stats
}

#[test]
fn crashes_with_groups_of_several_writers_in_flight_keep_every_acknowledged_batch() {
    let rounds = env_u64("PAXSTORE_CONCURRENT_CRASH_ROUNDS").unwrap_or(60);
    let first_seed = env_u64("PAXSTORE_CONCURRENT_CRASH_SEED").unwrap_or(0x5eed_0c0c);
    let began = Instant::now();

    // Calibration: clean runs with the most logs count the calls of a whole run (the fewest
    // of three: how many groups a run makes depends on the threads' timing).
    let calib_shape = Shape {
        logs: 8,
        segment: 8 << 10,
        groups_in_flight: 2,
    };
    let mut calls = u64::MAX;
    for i in 0..3 {
        let seed = first_seed.wrapping_sub(i + 1);
        let calib = round(seed, None, calib_shape, &mut Rng(seed));
        assert!(!calib.crashed && calib.acked_batches == 8 * BATCHES);
        calls = calls.min(calib.mutations);
    }
    let per_log = (calls / 8).max(1);

    let mut crashed = 0;
    let mut concurrent = 0;
    let (mut kept, mut lost) = (0, 0);
    for r in 0..rounds {
        let seed = first_seed.wrapping_add(r);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut rng = Rng(seed);
            let shape = Shape::from(&mut rng);
            // Within the run, past its first calls.
            let whole = per_log * shape.logs as u64;
            let k = whole / 20 + rng.below(whole * 3 / 4);
            (shape, k, round(seed, Some(k), shape, &mut rng))
        }));
        match result {
            Ok((_, _, s)) => {
                crashed += s.crashed as usize;
                concurrent += (s.in_flight_at_first_err >= 2) as usize;
                kept += s.in_flight_kept;
                lost += s.in_flight_lost;
            }
            Err(p) => {
                let mut rng = Rng(seed);
                let shape = Shape::from(&mut rng);
                eprintln!(
                    "store_concurrent_crash: round {r} failed: seed {seed} (PAXSTORE_CONCURRENT_CRASH_SEED={seed} PAXSTORE_CONCURRENT_CRASH_ROUNDS=1), {shape:?}"
                );
                std::panic::resume_unwind(p);
            }
        }
    }
    eprintln!(
        "store_concurrent_crash: {rounds} rounds in {:?}: {crashed} crashed mid-run, {concurrent} with ≥2 writers in flight at the first failure; batches in flight kept {kept}, lost {lost}; calibration: {calls} calls for 8 logs",
        began.elapsed()
    );
    if rounds >= 20 {
        assert!(
            crashed as u64 >= rounds / 2,
            "only {crashed} of {rounds} rounds crashed mid-run"
        );
        assert!(
            concurrent as u64 >= rounds / 4,
            "only {concurrent} of {rounds} rounds crashed with two writers or more in flight"
        );
        assert!(kept + lost > 0);
    }
}

// Targeted reproductions: the file system freezes at the `fdatasync` of a segment that has two
// writes or more not yet synced, and power losses keep some of those writes and not others.

/// A [`SimFs`] that freezes itself at the first sync of a segment with `min_unsynced` writes
/// or more since its last sync; with `hold`, that sync first waits (a few seconds at most)
/// for a second write, so that another group is written while the first is being synced.
#[derive(Clone)]
struct Gate {
    sim: SimFs,
    st: Arc<GateState>,
}

struct GateState {
    armed: AtomicBool,
    hold: bool,
    fired: AtomicBool,
    /// Writes since the last sync, per segment (by name without `.tmp`).
    unsynced: Mutex<BTreeMap<String, usize>>,
    wrote: std::sync::Condvar,
}

struct GateFile {
    inner: Arc<dyn paxstore_files::env::FsFile>,
    seg: Option<String>,
    st: Arc<GateState>,
    sim: SimFs,
}

impl Gate {
    fn new(hold: bool) -> Gate {
        Gate {
            sim: SimFs::new(),
            st: Arc::new(GateState {
                armed: AtomicBool::new(false),
                hold,
                fired: AtomicBool::new(false),
                unsynced: Mutex::new(BTreeMap::new()),
                wrote: std::sync::Condvar::new(),
            }),
        }
    }

    fn wrap(
        &self,
        path: &Path,
        f: Arc<dyn paxstore_files::env::FsFile>,
    ) -> Arc<dyn paxstore_files::env::FsFile> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let seg = name
            .filter(|n| n.starts_with("seg-"))
            .map(|n| n.trim_end_matches(".tmp").to_string());
        Arc::new(GateFile {
            inner: f,
            seg,
            st: self.st.clone(),
            sim: self.sim.clone(),
        })
    }
}

impl GateFile {
    fn before_sync(&self) {
        let Some(seg) = &self.seg else { return };
        if !self.st.armed.load(Ordering::SeqCst) || self.st.fired.load(Ordering::SeqCst) {
            return;
        }
        let mut unsynced = self.st.unsynced.lock().unwrap();
        if self.st.hold {
            let deadline = Instant::now() + Duration::from_secs(3);
            while unsynced.get(seg).copied().unwrap_or(0) < 2 && Instant::now() < deadline {
                unsynced = self
                    .st
                    .wrote
                    .wait_timeout(unsynced, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
        }
        if unsynced.get(seg).copied().unwrap_or(0) >= 2
            && !self.st.fired.swap(true, Ordering::SeqCst)
        {
            self.sim.freeze();
        }
        unsynced.remove(seg);
    }
}

impl paxstore_files::env::FsFile for GateFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        if let (Some(seg), true) = (&self.seg, self.st.armed.load(Ordering::SeqCst)) {
            *self
                .st
                .unsynced
                .lock()
                .unwrap()
                .entry(seg.clone())
                .or_default() += 1;
            self.st.wrote.notify_all();
        }
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.before_sync();
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.before_sync();
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.inner.allocate(len)
    }
}

impl paxstore_files::env::FileSystem for Gate {
    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.sim.create_dir(dir)
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn paxstore_files::env::FsFile>> {
        Ok(self.wrap(path, self.sim.open(path)?))
    }
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn paxstore_files::env::FsFile>> {
        Ok(self.wrap(path, self.sim.create(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.sim.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.sim.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.sim.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn paxstore_files::env::FsLock>> {
        self.sim.lock(path)
    }
}

/// Power losses of the frozen `sim` (`patterns` random ones): each must reopen strictly and
/// hold, per log, its acknowledged state or that plus its batch in flight. The failures.
fn power_losses(
    sim: &SimFs,
    segment: u64,
    logs: &BTreeMap<String, (Model<KeyValue>, Option<Ops>)>,
    patterns: u64,
) -> Vec<String> {
    let mut failures = Vec::new();
    for p in 0..patterns {
        let pattern = CrashPattern::Random(p);
        let after = sim.power_loss(pattern);
        let opts = FilesOptions::new()
            .segment_size(segment)
            .background_purge(false)
            .file_system(Arc::new(after.clone()));
        let store = match FilesStore::open_with(Path::new(DIR), opts) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{pattern:?}: strict open failed: {e}"));
                continue;
            }
        };
        for (name, (acked, in_flight)) in logs {
            let h = store.log::<KeyValue>(name).expect("the log");
            let mut with = acked.clone();
            if let Some(ops) = in_flight {
                with.apply_batch(ops).expect("the model takes it");
            }
            if verify_store(&h, acked).is_err() && verify_store(&h, &with).is_err() {
                failures.push(format!(
                    "{pattern:?}: log {name} holds neither allowed state"
                ));
            }
        }
    }
    failures
}

fn gated_options(gate: &Gate, segment: u64) -> FilesOptions {
    FilesOptions::new()
        .segment_size(segment)
        .background_purge(false)
        .file_system(Arc::new(gate.clone()))
}

/// Two writers; the first group's `fdatasync` is held until the second group is written
/// (the pipelined commit, `groups_in_flight` 2), and the file system freezes at it: both
/// groups are written and neither is synced. A power loss may keep the second and not the
/// first: the store must still open (both calls failed, so either state of each log is fine).
#[test]
fn a_power_loss_between_two_pipelined_groups_leaves_an_openable_store() {
    let gate = Gate::new(true);
    let segment = 64 << 10;
    let store = FilesStore::open_with(Path::new(DIR), gated_options(&gate, segment)).unwrap();
    let mut a = store.log::<KeyValue>("a").unwrap();
    let mut b = store.log::<KeyValue>("b").unwrap();
    gate.st.armed.store(true, Ordering::SeqCst);
    let ops_a: Ops = vec![StorageOp::AppendEntries(
        (0..4).map(|i| KeyValue::new("a", i, 700)).collect(),
    )];
    let ops_b: Ops = vec![StorageOp::AppendEntries(
        (0..4).map(|i| KeyValue::new("b", 100 + i, 700)).collect(),
    )];
    let (oa, ob) = (copy(&ops_a), copy(&ops_b));
    let ta = std::thread::spawn(move || a.write_atomically(oa).is_ok());
    // `a`'s group is written and its sync held before `b` writes.
    let deadline = Instant::now() + Duration::from_secs(3);
    while gate.st.unsynced.lock().unwrap().values().sum::<usize>() < 1 {
        assert!(Instant::now() < deadline, "a's group was never written");
        std::thread::sleep(Duration::from_millis(1));
    }
    let tb = std::thread::spawn(move || b.write_atomically(ob).is_ok());
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    assert!(
        gate.st.fired.load(Ordering::SeqCst),
        "the two groups were not pipelined"
    );
    assert!(!ra && !rb, "a call acknowledged on a frozen file system");
    drop(store);
    let logs = BTreeMap::from([
        ("a".to_string(), (Model::new(), Some(ops_a))),
        ("b".to_string(), (Model::new(), Some(ops_b))),
    ]);
    let failures = power_losses(&gate.sim, segment, &logs, 64);
    assert!(
        failures.is_empty(),
        "{} of 64 power losses: {failures:#?}",
        failures.len()
    );
}

/// One writer thread. A log that never trims pins the oldest segment while another writes
/// and trims, until rotations relocate the pinned entries. Relocation writes its records as
/// one chunk and syncs it before anything else is written: the file system must never see
/// two unsynced writes to a segment while relocation runs (it did before the fix: several
/// relocation records, one `fdatasync` after them, and a power loss that kept a later record
/// and not an earlier one left a store strict open refused). The crash at every call of
/// `store_power_loss.rs` covers the relocation's own crash points.
#[test]
fn relocation_never_leaves_two_unsynced_writes() {
    let gate = Gate::new(false);
    let segment = 8 << 10;
    let store = FilesStore::open_with(Path::new(DIR), gated_options(&gate, segment)).unwrap();
    let mut pin = store.log::<KeyValue>("pin").unwrap();
    let mut busy = store.log::<KeyValue>("busy").unwrap();
    let mut logs = BTreeMap::from([
        ("pin".to_string(), (Model::new(), None::<Ops>)),
        ("busy".to_string(), (Model::new(), None::<Ops>)),
    ]);
    // Several KiB pinned in the first segment: more than one relocation record (a quarter
    // segment each).
    for k in 0..3u64 {
        let ops: Ops = vec![StorageOp::AppendEntries(
            (0..3)
                .map(|i| KeyValue::new("p", k * 10 + i, 500))
                .collect(),
        )];
        let m = &mut logs.get_mut("pin").unwrap().0;
        m.apply_batch(&ops).unwrap();
        pin.write_atomically(ops).unwrap();
    }
    gate.st.armed.store(true, Ordering::SeqCst);
    let mut k = 0u64;
    while store.stats().relocated_bytes < 3 * 3 * 500 {
        assert!(k < 2000, "the pinned entries were never relocated");
        assert!(
            !gate.st.fired.load(Ordering::SeqCst),
            "a sync found two unsynced writes in a segment (after {k} batches)"
        );
        let m = &mut logs.get_mut("busy").unwrap().0;
        let mut ops: Ops = vec![StorageOp::AppendEntries(
            (0..2)
                .map(|i| KeyValue::new("b", k * 10 + i, 600))
                .collect(),
        )];
        if k % 4 == 3 {
            ops.push(StorageOp::Trim(m.next));
        }
        m.apply_batch(&ops).unwrap();
        busy.write_atomically(ops).unwrap();
        k += 1;
    }
    assert!(
        !gate.st.fired.load(Ordering::SeqCst),
        "a sync found two unsynced writes in a segment"
    );
    drop((pin, busy, store));
    // And what relocation left opens with every log exact.
    let store = FilesStore::open_with(Path::new(DIR), gated_options(&gate, segment)).unwrap();
    for (name, (model, _)) in &logs {
        let log = store.log::<KeyValue>(name).unwrap();
        if let Err(e) = verify_store(&log, model) {
            panic!("log {name} after reopen: {e}");
        }
    }
}
