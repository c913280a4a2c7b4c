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

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::crash::batch;
use paxstore_core::conformance::{call_single_op, clone_op, verify_store};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::SimFs;
use paxstore_files::{FilesLog, FilesOptions, FilesStore};

use common::{sim_steps, single_op, Allowed, CrashDriver, Workload, AFTER_REOPEN};

type Log = FilesLog<KeyValue>;
type Ops = Vec<StorageOp<KeyValue>>;
/// Every log of the store with its model: the whole store's state.
type State = BTreeMap<String, Model<KeyValue>>;

const DIR: &str = "/srv/node-1/logs";
/// The logs added by the first steps.
const FIRST: [&str; 3] = ["a", "b", "c"];
/// The log added later, and the log dropped after that.
const ADDED: &str = "d";
const DROPPED: &str = "b";

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
    let op = single_op(k, m);
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

struct Ctx {
    w: Workload,
    plan: Plan,
    history: Vec<State>,
}

impl Ctx {
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
}

impl CrashDriver for Ctx {
    type Opened = Open;

    fn workload(&self) -> &Workload {
        &self.w
    }

    fn last(&self) -> usize {
        self.history.len() - 1
    }

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

    /// Which allowed state the store holds: `lo` (acknowledged) or `hi` (one step in flight).
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

    fn step(&self, open: &mut Open, k: usize) -> Result<(), String> {
        open.call(event(self.plan, k, &self.history[k]))
    }

    fn clean_run_done(&self, open: Open) {
        assert_shape(self, open);
    }
}

/// Crashes the workload at every file-system call. Returns the crash states checked.
fn explore(w: Workload) -> usize {
    let n = sim_steps();
    let plan = Plan::new(n);
    let ctx = Ctx {
        w,
        plan,
        history: history(plan, n + AFTER_REOPEN + 1),
    };
    common::explore(&ctx, n)
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
