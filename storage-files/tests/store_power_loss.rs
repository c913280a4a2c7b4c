//! Power loss of a many-logs [`FilesStore`], simulated with [`SimFs`]: the counterpart of
//! `power_loss.rs` for one stream shared by several logs.
//!
//! The workload is single-threaded (so the file-system calls of a run are deterministic) over
//! the logs of one store: logs `a`, `b`, `c` added by the first three steps, log `d` added with
//! [`FilesStore::log`] at one step and log `b` dropped with [`FilesStore::drop_log`] at a
//! later one; every other step writes to one of the logs that exist then (step `k` on log
//! `k % n`): the batches of `paxstore_core::conformance::crash::batch` (appends across segment
//! rotation, trims that delete segments, snapshot-plus-truncate, `append_on_prefix`, promises,
//! stop-signs) and, every fourth step, a single-op call. Small segments make the steps rotate,
//! seal, delete and relocate segments. The store's state after each number of steps is known
//! (a model per log), so for every mutating call `c` of a clean run, the run is repeated and
//! frozen just before call `c`, and then:
//!
//! 1. power loss (drop all, keep all, two random patterns): a strict open must succeed and
//!    hold exactly the acknowledged state or, if a step was in flight, the state after it
//!    (every log, and the set of logs);
//! 2. kill -9 (page cache kept), a reopen and two more steps crashed at each of their calls,
//!    then power loss: again the acknowledged state or the one in flight, never older than what
//!    a completed reopen returned;
//! 3. the same after a first power loss instead of a kill.
//!
//! `PAXSTORE_SIM_STEPS` sets the steps per workload (default 48).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::cases::{ballot, stopsign};
use paxstore_core::conformance::crash::batch;
use paxstore_core::conformance::{call_single_op, clone_op, verify_store};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{CrashPattern, SimFs};
use paxstore_files::{FilesLog, FilesOptions, FilesStore};

type Log = FilesLog<KeyValue>;
type Ops = Vec<StorageOp<KeyValue>>;
/// Every log of the store with its model: the whole store's state.
type State = BTreeMap<String, Model<KeyValue>>;

const DIR: &str = "/srv/node-1/logs";
/// Steps written after a reopen (and crashed at each of their calls).
const AFTER_REOPEN: usize = 2;
/// The logs added by the first steps.
const FIRST: [&str; 3] = ["a", "b", "c"];
/// The log added later, and the log dropped after that.
const ADDED: &str = "d";
const DROPPED: &str = "b";

fn steps() -> usize {
    std::env::var("PAXSTORE_SIM_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// The steps of one workload: how many, and where the add and the drop are.
#[derive(Clone, Copy)]
struct Plan {
    n: usize,
    add_at: usize,
    drop_at: usize,
}

impl Plan {
    fn new(n: usize) -> Plan {
        let add_at = 5.min(n / 4).max(FIRST.len());
        let drop_at = (n * 5 / 8).max(add_at + 2);
        Plan { n, add_at, drop_at }
    }
}

/// One step of the workload.
enum Event {
    Write { log: String, ops: Ops, single: bool },
    Add(&'static str),
    Drop(&'static str),
}

fn event(p: Plan, k: usize, s: &State) -> Event {
    if let Some(name) = FIRST.get(k) {
        return Event::Add(name);
    }
    if k == p.add_at {
        return Event::Add(ADDED);
    }
    if k == p.drop_at {
        return Event::Drop(DROPPED);
    }
    let names: Vec<&String> = s.keys().collect();
    let log = names[k % names.len()].clone();
    let m = &s[&log];
    if k % 4 != 3 {
        return Event::Write {
            log,
            ops: batch(k, m),
            single: false,
        };
    }
    let (first, next) = (m.first, m.next);
    let entries = |from: usize, n: usize| -> Vec<KeyValue> {
        (from..from + n)
            .map(|i| KeyValue::new(format!("s-{}", i % 5), (k * 1_000_000 + i) as u64, 700))
            .collect()
    };
    let op = match (k / 4) % 7 {
        0 => StorageOp::SetPromise(ballot(k as u32)),
        1 => StorageOp::SetDecidedIndex(first + (next - first) / 3),
        2 => StorageOp::AppendEntries(entries(next, 2)),
        3 => StorageOp::Trim(first + (next - first) / 4),
        4 => StorageOp::SetAcceptedRound(ballot(k as u32 + 1)),
        5 => {
            let at = next.saturating_sub(1).max(first);
            StorageOp::AppendOnPrefix(at, entries(at, 2))
        }
        _ if k % 8 == 3 => StorageOp::SetStopsign(None),
        _ => StorageOp::SetStopsign(Some(stopsign(k as u32))),
    };
    Event::Write {
        log,
        ops: vec![op],
        single: true,
    }
}

/// The state after each number of steps.
fn history(p: Plan, n: usize) -> Vec<State> {
    let mut h = vec![State::new()];
    for k in 0..n {
        let mut s = h[k].clone();
        match event(p, k, &h[k]) {
            Event::Write { log, ops, .. } => {
                let ops: Ops = ops.iter().map(clone_op).collect();
                s.get_mut(&log)
                    .expect("the log exists")
                    .apply_batch(&ops)
                    .expect("the model accepts every step");
            }
            Event::Add(name) => {
                s.insert(name.to_string(), Model::new());
            }
            Event::Drop(name) => {
                s.remove(name);
            }
        }
        h.push(s);
    }
    h
}

/// An open store with a handle on each of its logs.
struct Open {
    store: FilesStore,
    logs: BTreeMap<String, Log>,
}

impl Open {
    fn call(&mut self, e: Event) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        match e {
            Event::Write { log, ops, single } => {
                let h = self.logs.get_mut(&log).expect("a handle on every log");
                let r = if single {
                    let op = ops.into_iter().next().expect("one op");
                    call_single_op(h, op)
                } else {
                    h.write_atomically(ops)
                };
                r.map_err(|e| err(&e))
            }
            Event::Add(name) => {
                let h = self.store.log::<KeyValue>(name).map_err(|e| err(&e))?;
                self.logs.insert(name.to_string(), h);
                Ok(())
            }
            Event::Drop(name) => {
                // A log is dropped closed: its handle goes first.
                self.logs.remove(name);
                self.store.drop_log(name).map_err(|e| err(&e))
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    options: fn() -> FilesOptions,
    sim: fn() -> SimFs,
}

/// What a store may hold after a crash: `history[lo]` (acknowledged) or `history[hi]` (one
/// step in flight).
#[derive(Clone, Copy, Debug)]
struct Allowed {
    lo: usize,
    hi: usize,
}

struct Ctx {
    w: Workload,
    plan: Plan,
    history: Vec<State>,
    states: usize,
}

impl Ctx {
    /// Opens the store on `fs` and a handle on every log it lists (which writes nothing).
    fn open(&self, fs: &SimFs) -> Result<Open, String> {
        let opts = (self.w.options)().file_system(Arc::new(fs.clone()));
        let store = FilesStore::open_with(Path::new(DIR), opts).map_err(|e| e.to_string())?;
        let mut logs = BTreeMap::new();
        for name in store.logs() {
            let h = store
                .log::<KeyValue>(&name)
                .map_err(|e| format!("log {name}: {e}"))?;
            logs.insert(name, h);
        }
        Ok(Open { store, logs })
    }

    /// Whether the open store holds `history[i]`.
    fn holds(&self, open: &Open, i: usize) -> Result<(), String> {
        let want = &self.history[i];
        let names: Vec<&String> = want.keys().collect();
        let listed = open.store.logs();
        if listed.iter().collect::<Vec<_>>() != names {
            return Err(format!("lists logs {listed:?}, not {names:?}"));
        }
        for (name, m) in want {
            verify_store(&open.logs[name], m).map_err(|e| format!("log {name}: {e}"))?;
        }
        Ok(())
    }

    /// Which allowed state the store holds.
    fn which(&self, open: &Open, allowed: Allowed) -> Result<usize, String> {
        let mut why = Vec::new();
        for i in [allowed.hi, allowed.lo] {
            match self.holds(open, i) {
                Ok(()) => return Ok(i),
                Err(e) => why.push(format!("not state {i}: {e}")),
            }
        }
        Err(format!(
            "holds neither state {} nor {} ({})",
            allowed.lo,
            allowed.hi,
            why.join("; ")
        ))
    }

    /// Opens the file system left by a power loss and checks what it holds.
    fn check(&mut self, crashed: &SimFs, pattern: CrashPattern, allowed: Allowed, label: &str) {
        self.states += 1;
        let fs = &crashed.power_loss(pattern);
        let fail = |why: String| -> ! {
            panic!(
                "{} {label}, {pattern:?}: {why}\nlast calls before the crash:\n  {}\ncalls of the open after it:\n  {}",
                self.w.name,
                crashed.trace().join("\n  "),
                fs.trace().join("\n  ")
            )
        };
        let open = match self.open(fs) {
            Ok(o) => o,
            Err(e) => fail(format!("strict open failed: {e}")),
        };
        if let Err(why) = self.which(&open, allowed) {
            fail(why);
        }
    }

    /// Opens the store on `fs` holding one of `allowed` and runs steps up to `to`. Returns
    /// what the store may hold if the file system is now frozen (or has lost power).
    fn drive(&self, fs: &SimFs, allowed: Allowed, to: usize, label: &str) -> Allowed {
        self.drive_open(fs, allowed, to, label).0
    }

    /// [`drive`](Self::drive), also returning the store if every step went through.
    fn drive_open(
        &self,
        fs: &SimFs,
        allowed: Allowed,
        to: usize,
        label: &str,
    ) -> (Allowed, Option<Open>) {
        let mut open = match self.open(fs) {
            Ok(o) => o,
            Err(_) if fs.frozen() => return (allowed, None),
            Err(e) => panic!("{} {label}: open failed without a crash: {e}", self.w.name),
        };
        // What open returned is the floor from now on: it has been acted on.
        let start = self
            .which(&open, allowed)
            .unwrap_or_else(|e| panic!("{} {label}: the reopened store {e}", self.w.name));
        for k in start..to {
            let e = event(self.plan, k, &self.history[k]);
            if let Err(e) = open.call(e) {
                assert!(
                    fs.frozen(),
                    "{} {label}: step {k} failed without a crash: {e}\n  {}",
                    self.w.name,
                    fs.trace().join("\n  ")
                );
                return (Allowed { lo: k, hi: k + 1 }, None);
            }
        }
        (Allowed { lo: to, hi: to }, Some(open))
    }

    /// From `base` (after a kill or a power loss, holding one of `allowed`): a reopen and
    /// [`AFTER_REOPEN`] more steps, crashed at each of their calls and at the end, each
    /// followed by a power loss.
    fn after_restart(&mut self, base: &SimFs, allowed: Allowed, label: &str) {
        let probe = base.fork();
        let to = (allowed.hi + AFTER_REOPEN).min(self.history.len() - 1);
        self.drive(&probe, allowed, to, label);
        let calls = probe.mutations();
        for j in 0..=calls {
            let fs = base.fork();
            if j < calls {
                fs.crash_at(j);
            }
            let now = self.drive(&fs, allowed, to, label);
            let label = format!("{label}, reopen crashed at call {j}");
            for pattern in [CrashPattern::DropAll, CrashPattern::Random(j + 7)] {
                self.check(&fs, pattern, now, &label);
            }
        }
    }
}

/// Crashes the workload at every file-system call. Returns the crash states checked.
fn explore(w: Workload) -> usize {
    let n = steps();
    let plan = Plan::new(n);
    let mut ctx = Ctx {
        w,
        plan,
        history: history(plan, n + AFTER_REOPEN + 1),
        states: 0,
    };
    let start = Allowed { lo: 0, hi: 0 };
    let clean = (w.sim)();
    let (done, open) = ctx.drive_open(&clean, start, n, "clean run");
    assert_eq!(done.hi, n, "{}: the clean run", w.name);
    assert_shape(&ctx, open.expect("the clean run's store"));
    let total = clean.mutations();
    for c in 0..total {
        let fs = (w.sim)();
        fs.crash_at(c);
        let label = format!("crash at call {c} of {total}");
        let allowed = ctx.drive(&fs, start, n, &label);
        assert!(
            fs.frozen(),
            "{}: {label}: the run is not deterministic",
            w.name
        );
        let patterns = [
            CrashPattern::DropAll,
            CrashPattern::KeepAll,
            CrashPattern::Random(c * 2 + 1),
            CrashPattern::Random(c * 2 + 2),
        ];
        for pattern in patterns {
            ctx.check(&fs, pattern, allowed, &format!("{label}, power loss"));
        }
        ctx.after_restart(&fs.kill(), allowed, &format!("{label}, kill"));
        let pattern = CrashPattern::Random(c + 1000);
        let lost = fs.power_loss(pattern);
        ctx.after_restart(&lost, allowed, &format!("{label}, {pattern:?}"));
    }
    eprintln!(
        "{}: {n} steps, {total} file-system calls, {} crash states checked, 0 violations",
        w.name, ctx.states
    );
    ctx.states
}

/// The clean run did what the workload is for: rotations, segments deleted, the add and the
/// drop.
fn assert_shape(ctx: &Ctx, open: Open) {
    let n = ctx.plan.n;
    let stats = open.store.stats();
    let name = ctx.w.name;
    assert!(
        ctx.history[n].contains_key(ADDED) && !ctx.history[n].contains_key(DROPPED),
        "{name}: the workload adds {ADDED} and drops {DROPPED}"
    );
    ctx.holds(&open, n)
        .unwrap_or_else(|e| panic!("{name}: the clean run: {e}"));
    // Fewer steps (`PAXSTORE_SIM_STEPS`) need not reach all of it.
    assert!(
        n < 48
            || stats.files.live_segments >= 2
                && stats.files.deleted_segments >= 2
                && stats.relocated_bytes > 0,
        "{name}: the workload rotates, deletes segments and relocates entries: {stats:?}"
    );
    eprintln!("{name}: the clean run's counters: {stats:?}");
}

fn small_segments() -> FilesOptions {
    FilesOptions::new()
        .segment_size(4 << 10)
        .background_purge(false)
}

#[test]
fn every_call_of_a_many_logs_workload_survives_power_loss_and_kill() {
    let states = explore(Workload {
        name: "many logs",
        options: small_segments,
        sim: SimFs::new,
    });
    assert!(states >= 4000, "only {states} crash states");
}

#[test]
fn every_call_survives_power_loss_without_fallocate() {
    let states = explore(Workload {
        name: "many logs, no fallocate",
        options: small_segments,
        sim: || SimFs::new().without_allocate(),
    });
    assert!(states >= 4000, "only {states} crash states");
}
