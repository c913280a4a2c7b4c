//! Crash test: child processes write and are killed with SIGKILL at chosen moments; the
//! parent checks that every acknowledged write is there and that nothing is half applied.
//!
//! # What a round does
//!
//! 1. A child opens a store in a fresh directory and applies the [`step`]s `0, 1, …`: batches
//!    through `write_atomically` and single-op calls (`append_entries`, `append_entry`,
//!    `append_on_prefix`, `trim`, `set_promise`, `set_accepted_round`, `set_decided_idx` lowered,
//!    `set_compacted_idx`, `set_stopsign` set and cleared) through their own methods. It writes
//!    `PAXSTORE-ACK k` on standard output after step `k` returned `Ok`.
//! 2. The parent kills it with SIGKILL: after a random number of steps, just as a
//!    snapshot-plus-truncate batch starts, or right after a single-op call was acknowledged.
//! 3. A second child opens the same directory (recovery), checks that it holds the state after
//!    the acknowledged steps (or after one more: the step in flight may have landed, but never
//!    in part), says where it resumes (`PAXSTORE-RESUMED k`), writes more steps and is killed
//!    the same way.
//! 4. The parent opens the store and requires the state after the second child's acknowledged
//!    steps, or after one more.
//!
//! Each round fails, with the child's standard error, if a child could not open, did not
//! acknowledge a step, or stopped by itself instead of being killed.
//!
//! The steps are a deterministic function of their number and the state before them, so the
//! parent (and the second child) replay them on the reference model. The children are the
//! calling program itself, re-executed with [`CHILD_ENV`] set to the store directory: in a
//! libtest binary, the crash test alone ([`libtest_args`]).
//!
//! # Power-loss mode (LazyFS)
//!
//! A kill keeps what the process wrote into the page cache; a power loss does not. With
//! [LazyFS](https://github.com/dsrhaslab/lazyfs) mounted (a FUSE file system that holds writes
//! in its own cache until they are synced, and drops the unsynced ones on command), set
//!
//! - [`DIR_ENV`] (`PAXSTORE_CRASH_DIR`) to a directory inside the LazyFS mount,
//! - [`LAZYFS_FIFO_ENV`] (`PAXSTORE_CRASH_LAZYFS_FIFO`) to its fault FIFO (`fifo_path`),
//! - [`LAZYFS_DONE_ENV`] (`PAXSTORE_CRASH_LAZYFS_DONE`) to its completion FIFO
//!   (`fifo_path_completed`),
//!
//! and after each kill the parent writes `lazyfs::clear-cache` to the fault FIFO and waits for
//! LazyFS's confirmation on the completion FIFO before anything reopens the store: every
//! acknowledged write must have been synced. The test checks that the directory lies on a FUSE
//! mount. A power loss hits every process writing to the mount, so the crash tests of one
//! process take turns, and no other process may use the mount or the FIFOs meanwhile (run test
//! binaries one at a time, as `cargo test` does). `PAXSTORE_CRASH_DIR` alone just moves the
//! stores (to test a particular disk).

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use omnipaxos::storage::{Storage, StorageOp, StorageResult};

use super::cases::{ballot, distinct_ballot, distinct_stopsign, stopsign};
use super::verify_store;
use crate::kv::{KVSnapshot, KeyValue};
use crate::model::Model;

/// Set in the child's environment to the directory of the store it writes.
pub const CHILD_ENV: &str = "PAXSTORE_CRASH_CHILD_DIR";
/// Set in a second child's environment to the number of steps the first one acknowledged:
/// it checks the recovered store and resumes from there.
pub const RESUME_ENV: &str = "PAXSTORE_CRASH_CHILD_RESUME";
/// Environment variable giving the number of rounds (two kills each).
pub const ITERATIONS_ENV: &str = "PAXSTORE_CRASH_ITERATIONS";
/// Environment variable naming the directory the rounds' stores are created in.
pub const DIR_ENV: &str = "PAXSTORE_CRASH_DIR";
/// Environment variable naming LazyFS's fault FIFO (power-loss mode).
pub const LAZYFS_FIFO_ENV: &str = "PAXSTORE_CRASH_LAZYFS_FIFO";
/// Environment variable naming LazyFS's completion FIFO (power-loss mode).
pub const LAZYFS_DONE_ENV: &str = "PAXSTORE_CRASH_LAZYFS_DONE";
/// The line prefix a child writes after each acknowledged step: `PAXSTORE-ACK k`.
pub const ACK: &str = "PAXSTORE-ACK ";
/// The line prefix a resuming child writes once it checked the recovered store:
/// `PAXSTORE-RESUMED k` (the number of steps the store holds).
pub const RESUMED: &str = "PAXSTORE-RESUMED ";
/// The child stops by itself after this many steps if it was not killed.
const MAX_BATCHES: usize = 100_000;
/// How long a child may take to reach its kill point before it is killed where it is.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// How much of a child's standard error a failure quotes (the end of it).
const STDERR_TAIL: usize = 16 << 10;

/// The round count: `PAXSTORE_CRASH_ITERATIONS`, or 20.
pub fn iterations_from_env() -> u32 {
    std::env::var(ITERATIONS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// What step `k` does, by its number alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A batch of appends with a decided index, a sync that rewrites the tail, or a promise
    /// with a stop-sign.
    Batch,
    /// A batch that installs a snapshot: snapshot-plus-truncate, or a catch-up past the end.
    SnapshotBatch,
    /// One single-op call through its own `Storage` method.
    Single,
}

/// The kind of step `k` (see [`step`]).
pub fn kind(k: usize) -> StepKind {
    match k % 16 {
        5 | 11 => StepKind::SnapshotBatch,
        14 if (k / 16) % 3 == 2 => StepKind::SnapshotBatch,
        3 | 4 | 7 | 8 | 10 | 12 | 13 => StepKind::Single,
        15 if (k / 16) % 2 == 1 => StepKind::Single,
        _ => StepKind::Batch,
    }
}

/// One step of the crash workload: its ops, and whether it is applied as a single-op call.
#[derive(Debug)]
pub struct CrashStep {
    /// The ops; exactly one when `single`.
    pub ops: Vec<StorageOp<KeyValue>>,
    /// Whether the op goes through its own `Storage` method instead of `write_atomically`.
    pub single: bool,
}

/// Step number `k` (from 0), given the state before it. In every 16 steps: five append
/// batches (entries of 64 bytes to 4 KiB, with a decided index), two snapshot-plus-truncate
/// batches (snapshots up to 240 KiB), a `sync_log` batch that rewrites the tail (every third
/// time a catch-up past the end with a snapshot and a stop-sign cleared), a batch with a
/// promise and a stop-sign or a single `set_compacted_idx`, and seven single-op calls:
/// `append_entries` or `append_entry`, `set_decided_idx` (lowered), `set_promise`,
/// `append_on_prefix`, `trim`, `set_accepted_round`, `set_stopsign` (set or cleared). Ballots
/// and stop-signs differ in every field from one step to the next.
pub fn step(k: usize, before: &Model<KeyValue>) -> CrashStep {
    let (first, next) = (before.first, before.next);
    let entry = |i: usize, len: usize| {
        KeyValue::new(format!("key-{}", i % 13), (k * 1_000_000 + i) as u64, len)
    };
    let appended = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| entry(i, 64 + (i * 37 + k) % 4000))
            .collect::<Vec<_>>()
    };
    let single = |op| CrashStep {
        ops: vec![op],
        single: true,
    };
    let batch = |ops| CrashStep { ops, single: false };
    let round = k / 16;
    let kk = k as u32;
    match k % 16 {
        3 if round % 2 == 0 => single(StorageOp::AppendEntries(appended(next, 1 + k % 5))),
        3 => single(StorageOp::AppendEntry(entry(next, 300 + k % 700))),
        4 => single(StorageOp::SetDecidedIndex(first + (next - first) / 3)),
        5 | 11 => {
            let i = first + (next - first) * 2 / 3;
            let snapshot = KVSnapshot::sized(8, 1024 + (k % 7) * 40_000);
            batch(vec![
                StorageOp::Trim(i),
                StorageOp::SetCompactedIdx(i),
                StorageOp::SetSnapshot(Some(snapshot)),
            ])
        }
        7 => single(StorageOp::SetPromise(distinct_ballot(kk))),
        8 => {
            let at = next.saturating_sub(1).max(first);
            single(StorageOp::AppendOnPrefix(at, appended(at, 2)))
        }
        10 => single(StorageOp::Trim(first + (next - first) / 4)),
        12 => single(StorageOp::SetAcceptedRound(distinct_ballot(kk + 1))),
        13 if round % 2 == 0 => single(StorageOp::SetStopsign(Some(distinct_stopsign(kk % 50)))),
        13 => single(StorageOp::SetStopsign(None)),
        14 if round % 3 == 2 => {
            let i = next + 7;
            batch(vec![
                StorageOp::SetAcceptedRound(ballot(kk)),
                StorageOp::SetDecidedIndex(i),
                StorageOp::Trim(i),
                StorageOp::SetCompactedIdx(i),
                StorageOp::SetSnapshot(Some(KVSnapshot::sized(4, 4096 + k % 5 * 30_000))),
                StorageOp::AppendOnPrefix(i, appended(i, 3)),
                StorageOp::SetStopsign(None),
            ])
        }
        14 => {
            let i = next.saturating_sub(2).max(first);
            batch(vec![
                StorageOp::SetAcceptedRound(distinct_ballot(kk)),
                StorageOp::SetDecidedIndex(first),
                StorageOp::AppendOnPrefix(i, appended(i, 5)),
            ])
        }
        15 if round % 2 == 0 => batch(vec![
            StorageOp::SetPromise(ballot(kk)),
            StorageOp::SetStopsign(Some(stopsign(kk))),
        ]),
        15 => single(StorageOp::SetCompactedIdx(first.saturating_sub(k % 3))),
        _ => batch(vec![
            StorageOp::AppendEntries(appended(next, 1 + k % 9)),
            StorageOp::SetDecidedIndex(next),
        ]),
    }
}

/// The ops of step `k` ([`step`]`(k, before).ops`). Applying them to the model as one batch
/// gives the state after step `k`, whether the step is a batch or a single-op call.
pub fn batch(k: usize, before: &Model<KeyValue>) -> Vec<StorageOp<KeyValue>> {
    step(k, before).ops
}

/// Applies a step to `store`: a batch through `write_atomically`, a single op through its
/// own `Storage` method.
pub fn apply_step<S: Storage<KeyValue>>(store: &mut S, step: CrashStep) -> StorageResult<()> {
    if !step.single {
        return store.write_atomically(step.ops);
    }
    let mut ops = step.ops;
    let Some(op) = ops.pop() else {
        return Ok(());
    };
    super::call_single_op(store, op)
}

/// The model after steps `0..n`.
pub fn model_after(n: usize) -> Result<Model<KeyValue>, String> {
    let mut model = Model::new();
    for k in 0..n {
        let ops = batch(k, &model);
        model
            .apply_batch(&ops)
            .map_err(|e| format!("step {k} is invalid on the model: {e}"))?;
    }
    Ok(model)
}

/// The child side: opens the store in `dir` with `open` and applies the [`step`]s `0, 1, …`,
/// writing `{ACK}k` to standard output (flushed) after step `k` returned `Ok`, until killed
/// or 100,000 steps. Used by the crash test and by `paxstore torture`.
pub fn write_until_killed<S: Storage<KeyValue>>(
    dir: &Path,
    open: impl Fn(&Path) -> StorageResult<S>,
) -> Result<(), String> {
    child_loop(dir, &open, None)
}

/// The second child of a round: opens the store in `dir` (recovering it after the first
/// child's kill), checks that it holds the state after `acked` steps or after `acked + 1`,
/// writes `{RESUMED}n` (the steps it holds) and goes on from step `n` like
/// [`write_until_killed`].
pub fn resume_until_killed<S: Storage<KeyValue>>(
    dir: &Path,
    open: impl Fn(&Path) -> StorageResult<S>,
    acked: usize,
) -> Result<(), String> {
    child_loop(dir, &open, Some(acked))
}

fn child_loop<S: Storage<KeyValue>>(
    dir: &Path,
    open: &impl Fn(&Path) -> StorageResult<S>,
    resume: Option<usize>,
) -> Result<(), String> {
    let mut store = open(dir).map_err(|e| format!("child: open {}: {e}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    let (start, mut model) = match resume {
        None => (0, Model::new()),
        Some(acked) => {
            let held = model_after(acked)?;
            match verify_store(&store, &held) {
                Ok(()) => (acked, held),
                Err(why_acked) => {
                    let mut landed = held;
                    landed
                        .apply_batch(&batch(acked, &landed))
                        .map_err(|e| e.to_string())?;
                    verify_store(&store, &landed).map_err(|why_next| {
                        format!(
                            "child: after a SIGKILL with {acked} steps acknowledged, the reopened \
                             store matches neither {acked} steps ({why_acked}) nor {} ({why_next})",
                            acked + 1
                        )
                    })?;
                    (acked + 1, landed)
                }
            }
        }
    };
    // Start on a line of our own: a libtest binary has written `test NAME ... ` without a
    // newline.
    let first_line = match resume {
        Some(_) => format!("\n{RESUMED}{start}\n"),
        None => "\n".to_string(),
    };
    out.write_all(first_line.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())?;
    for k in start..MAX_BATCHES {
        let step = step(k, &model);
        model
            .apply_batch(&step.ops)
            .map_err(|e| format!("child: step {k} invalid: {e}"))?;
        let what = if step.single {
            "single-op call"
        } else {
            "batch"
        };
        apply_step(&mut store, step)
            .map_err(|e| format!("child: step {k} ({what}) failed: {e}"))?;
        writeln!(out, "{ACK}{k}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// In a crash child (when [`CHILD_ENV`] is set), writes until killed and then exits the
/// process: with status 0 after 100,000 steps, or 3 after printing the error (a failed open, a
/// failed write, a recovered store that is wrong) on standard error. Otherwise returns.
pub fn child_main_if_requested<S: Storage<KeyValue>>(open: &impl Fn(&Path) -> StorageResult<S>) {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let resume = match std::env::var(RESUME_ENV) {
        Ok(v) => match v.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!("child: {RESUME_ENV}={v} is not a step count");
                std::process::exit(3);
            }
        },
        Err(_) => None,
    };
    match child_loop(Path::new(&dir), open, resume) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    }
}

/// The arguments that make a libtest binary run exactly the test `test_name` (its path without
/// the crate name, e.g. `files::crash_sigkill_keeps_acknowledged_batches`), for
/// [`Suite::crash`](super::Suite::crash).
pub fn libtest_args(test_name: &str) -> Vec<String> {
    [test_name, "--exact", "--nocapture", "--test-threads", "1"]
        .map(String::from)
        .to_vec()
}

/// LazyFS's FIFOs, for the power-loss mode.
#[derive(Debug, Clone)]
pub struct PowerLoss {
    /// The fault FIFO (`fifo_path` in LazyFS's configuration).
    pub fifo: PathBuf,
    /// The completion FIFO (`fifo_path_completed`).
    pub done: PathBuf,
}

/// The crash test's settings.
#[derive(Debug, Clone)]
pub struct CrashConfig {
    /// Rounds (two kills each).
    pub rounds: u32,
    /// Where the rounds' store directories are created (default: the temporary directory).
    pub dir: Option<PathBuf>,
    /// The power-loss mode: LazyFS's FIFOs.
    pub power_loss: Option<PowerLoss>,
    /// A problem with the environment, reported when the test runs.
    pub invalid: Option<String>,
}

impl CrashConfig {
    /// `rounds` rounds in the temporary directory, without power loss.
    pub fn new(rounds: u32) -> Self {
        CrashConfig {
            rounds,
            dir: None,
            power_loss: None,
            invalid: None,
        }
    }

    /// From the environment: [`ITERATIONS_ENV`], [`DIR_ENV`], [`LAZYFS_FIFO_ENV`] and
    /// [`LAZYFS_DONE_ENV`] (the two FIFOs together, with the directory).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Like [`from_env`](CrashConfig::from_env), reading the variables through `var`. Without
    /// any of them: 20 rounds in the temporary directory, no power loss.
    pub fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let rounds = var(ITERATIONS_ENV)
            .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
            .unwrap_or(20);
        let mut config = CrashConfig::new(rounds);
        config.dir = var(DIR_ENV).map(PathBuf::from);
        let fifo = var(LAZYFS_FIFO_ENV).map(PathBuf::from);
        let done = var(LAZYFS_DONE_ENV).map(PathBuf::from);
        match (fifo, done) {
            (None, None) => {}
            (Some(fifo), Some(done)) => {
                if config.dir.is_none() {
                    config.invalid = Some(format!(
                        "{LAZYFS_FIFO_ENV} and {LAZYFS_DONE_ENV} are set but {DIR_ENV} is not: \
                         set it to a directory inside the LazyFS mount"
                    ));
                }
                config.power_loss = Some(PowerLoss { fifo, done });
            }
            _ => {
                config.invalid = Some(format!(
                    "the power-loss mode needs both {LAZYFS_FIFO_ENV} and {LAZYFS_DONE_ENV}"
                ))
            }
        }
        config
    }

    /// One line: rounds, where, and whether power losses are simulated.
    pub fn describe(&self) -> String {
        let mut s = format!("{} rounds of two SIGKILLs", self.rounds);
        if let Some(dir) = &self.dir {
            s += &format!(" in {}", dir.display());
        }
        if self.power_loss.is_some() {
            s += ", each followed by a LazyFS power loss";
        }
        s
    }
}

/// What a crash test checked.
#[derive(Debug, Clone, Default)]
pub struct CrashSummary {
    /// Rounds run.
    pub rounds: u32,
    /// Children killed (two per round).
    pub kills: u32,
    /// Steps acknowledged by the children and checked.
    pub acked_steps: usize,
    /// Of those, single-op calls.
    pub acked_single_ops: usize,
    /// Kills with a snapshot batch in flight.
    pub kills_in_snapshot: u32,
    /// Kills right after an acknowledged single-op call.
    pub kills_after_single_op: u32,
    /// Kills after which the step in flight had landed.
    pub in_flight_landed: u32,
    /// LazyFS power losses (power-loss mode).
    pub power_losses: u32,
    /// How long it took.
    pub elapsed: Duration,
}

impl fmt::Display for CrashSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rounds, {} kills ({} with a snapshot batch in flight, {} right after a single-op \
             call; the step in flight had landed after {}), {} acknowledged steps checked ({} \
             single-op calls), {} power losses, {:.1} s",
            self.rounds,
            self.kills,
            self.kills_in_snapshot,
            self.kills_after_single_op,
            self.in_flight_landed,
            self.acked_steps,
            self.acked_single_ops,
            self.power_losses,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs the crash test. In the child (when [`CHILD_ENV`] is set) it writes until killed and
/// exits; in the parent it runs `iterations` rounds ([`CrashConfig::from_env`] otherwise).
/// `test_name` is the libtest name of the calling test (the children run exactly that test).
pub fn run<S, F>(test_name: &str, open: F, iterations: u32) -> Result<(), String>
where
    S: Storage<KeyValue>,
    F: Fn(&Path) -> StorageResult<S>,
{
    child_main_if_requested(&open);
    let mut config = CrashConfig::from_env();
    config.rounds = iterations;
    let summary = run_parent(&libtest_args(test_name), &open, &config)?;
    eprintln!("crash test: {summary}");
    Ok(())
}

/// The parent side of the crash test: `config.rounds` rounds, each with two children started
/// as the current executable with `child_args` (which must lead it to
/// [`child_main_if_requested`] with an equivalent opener).
pub fn run_parent<S, F>(
    child_args: &[String],
    open: &F,
    config: &CrashConfig,
) -> Result<CrashSummary, String>
where
    S: Storage<KeyValue>,
    F: Fn(&Path) -> StorageResult<S>,
{
    if let Some(why) = &config.invalid {
        return Err(format!("crash test: {why}"));
    }
    if config.rounds == 0 {
        return Err(format!(
            "crash test: 0 rounds ({ITERATIONS_ENV}=0) checks nothing"
        ));
    }
    // A power loss drops the unsynced writes of every process on the mount, so crash tests
    // of one process (libtest runs them in parallel) take their power losses one at a time.
    static POWER_LOSS_TESTS: Mutex<()> = Mutex::new(());
    let _one_at_a_time = config
        .power_loss
        .as_ref()
        .map(|_| POWER_LOSS_TESTS.lock().unwrap_or_else(|e| e.into_inner()));
    let power = match &config.power_loss {
        Some(p) => Some(LazyFs::connect(p, config.dir.as_deref())?),
        None => None,
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the executable: {e}"))?;
    let started = Instant::now();
    let mut rng = Rng::new();
    let mut summary = CrashSummary::default();
    for round in 0..config.rounds {
        let dir = match &config.dir {
            Some(base) => tempfile::Builder::new()
                .prefix("paxstore-crash-")
                .tempdir_in(base),
            None => tempfile::Builder::new().prefix("paxstore-crash-").tempdir(),
        }
        .map_err(|e| format!("round {round}: creating a store directory: {e}"))?;
        let ctx = |what: &str| format!("round {round}, {what}");

        // First child: from an empty directory.
        let plan = Plan::choose(&mut rng, round, 0, 0);
        let first = run_child(&exe, child_args, dir.path(), None, &plan)
            .map_err(|f| f.render(&ctx("first child")))?;
        summary.note_kill(&plan, 0, first.acked);
        if let Some(p) = &power {
            p.clear().map_err(|e| ctx(&e))?;
            summary.power_losses += 1;
        }

        // Second child: recovers, checks, resumes, writes, is killed.
        let plan = Plan::choose(&mut rng, round, 1, first.acked + 1);
        let second = run_child(&exe, child_args, dir.path(), Some(first.acked), &plan)
            .map_err(|f| f.render(&ctx("second child (after recovering from the first kill)")))?;
        let resumed = second.resumed.unwrap_or(first.acked);
        if resumed > first.acked {
            summary.in_flight_landed += 1;
        }
        summary.note_kill(&plan, resumed, second.acked);
        if let Some(p) = &power {
            p.clear().map_err(|e| ctx(&e))?;
            summary.power_losses += 1;
        }

        // The parent's check.
        let acked = second.acked;
        let store = open(dir.path()).map_err(|e| {
            ctx(&format!(
                "reopen after the second SIGKILL ({acked} steps acknowledged) failed: {e}"
            ))
        })?;
        let mut model = model_after(acked)?;
        if let Err(why_acked) = verify_store(&store, &model) {
            model
                .apply_batch(&batch(acked, &model))
                .map_err(|e| e.to_string())?;
            if let Err(why_next) = verify_store(&store, &model) {
                return Err(ctx(&format!(
                    "after two SIGKILLs (the second child resumed at step {resumed} and \
                     acknowledged up to step {}), the store matches neither {acked} steps \
                     ({why_acked}) nor {} ({why_next})",
                    acked - 1,
                    acked + 1
                )));
            }
            summary.in_flight_landed += 1;
        }
        drop(store);
        summary.rounds += 1;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

impl CrashSummary {
    fn note_kill(&mut self, plan: &Plan, from: usize, acked: usize) {
        self.kills += 1;
        self.acked_steps += acked - from;
        self.acked_single_ops += (from..acked)
            .filter(|&k| kind(k) == StepKind::Single)
            .count();
        match kind(acked) {
            StepKind::SnapshotBatch => self.kills_in_snapshot += 1,
            _ if acked > 0 && kind(acked - 1) == StepKind::Single && plan.after_single => {
                self.kills_after_single_op += 1
            }
            _ => {}
        }
    }
}

/// When to kill a child: once step `kill_after` is acknowledged, after `delay`.
struct Plan {
    kill_after: usize,
    delay: Duration,
    after_single: bool,
}

impl Plan {
    /// Rotates through three plans: a random number of steps; just before a snapshot batch
    /// (so the kill lands inside it); right after a single-op call. `min` is the first step
    /// the kill may follow.
    fn choose(rng: &mut Rng, round: u32, child: u32, min: usize) -> Plan {
        match (round + child) % 3 {
            0 => Plan {
                kill_after: min + rng.below(250),
                delay: Duration::from_micros(rng.below(3000) as u64),
                after_single: false,
            },
            1 => {
                let mut k = min + 1 + rng.below(80);
                while kind(k) != StepKind::SnapshotBatch {
                    k += 1;
                }
                Plan {
                    kill_after: k - 1,
                    delay: Duration::from_micros(rng.below(1500) as u64),
                    after_single: false,
                }
            }
            _ => {
                let mut k = min + rng.below(80);
                while kind(k) != StepKind::Single {
                    k += 1;
                }
                Plan {
                    kill_after: k,
                    delay: Duration::from_micros(rng.below(200) as u64),
                    after_single: true,
                }
            }
        }
    }
}

/// A small xorshift generator seeded from the clock.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(seed ^ u64::from(std::process::id()) << 32 | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// What a killed child did.
struct Killed {
    /// Steps the store must hold at least: one past the last acknowledged step.
    acked: usize,
    /// Where a resuming child resumed.
    resumed: Option<usize>,
}

/// Why a child run failed, with what the child said.
struct ChildFailure {
    why: String,
    stderr: String,
    stdout: String,
}

impl ChildFailure {
    fn render(&self, ctx: &str) -> String {
        let mut m = format!("crash test, {ctx}: {}", self.why);
        if !self.stdout.trim().is_empty() {
            m += &format!(
                "\n--- child's standard output (acknowledgements left out) ---\n{}",
                self.stdout.trim_end()
            );
        }
        m += &format!(
            "\n--- child's standard error ---\n{}",
            if self.stderr.trim().is_empty() {
                "(empty)"
            } else {
                self.stderr.trim_end()
            }
        );
        m
    }
}

enum Line {
    Ack(usize),
    Resumed(usize),
}

/// Collects the end of a stream into a string, in a thread.
fn collect_tail(stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut tail = VecDeque::new();
        let mut buf = [0u8; 4096];
        let mut stream = stream;
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend(&buf[..n]);
            while tail.len() > STDERR_TAIL {
                tail.pop_front();
            }
        }
        String::from_utf8_lossy(&tail.into_iter().collect::<Vec<u8>>()).into_owned()
    })
}

fn run_child(
    exe: &Path,
    args: &[String],
    dir: &Path,
    resume: Option<usize>,
    plan: &Plan,
) -> Result<Killed, ChildFailure> {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match resume {
        Some(n) => cmd.env(RESUME_ENV, n.to_string()),
        None => cmd.env_remove(RESUME_ENV),
    };
    let fail = |why: String| ChildFailure {
        why,
        stderr: String::new(),
        stdout: String::new(),
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("spawning {}: {e}", exe.display())))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(fail("the child has no standard output or error".into()));
    };
    let stderr = collect_tail(stderr);
    let (tx, rx) = mpsc::channel();
    let other = Arc::new(Mutex::new(String::new()));
    let other_w = Arc::clone(&other);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let after = |prefix: &str| {
                line.find(prefix)
                    .and_then(|at| line[at + prefix.len()..].trim().parse::<usize>().ok())
            };
            if let Some(k) = after(ACK) {
                let _ = tx.send(Line::Ack(k));
            } else if let Some(k) = after(RESUMED) {
                let _ = tx.send(Line::Resumed(k));
            } else if let Ok(mut o) = other_w.lock() {
                if o.len() < STDERR_TAIL {
                    o.push_str(&line);
                    o.push('\n');
                }
            }
        }
    });

    let deadline = Instant::now() + CHILD_DEADLINE;
    let mut last: Option<usize> = None;
    let mut resumed = None;
    let mut exited: Option<ExitStatus> = None;
    let mut note = |line: Line, last: &mut Option<usize>| match line {
        Line::Ack(k) => *last = Some(last.map_or(k, |l: usize| l.max(k))),
        Line::Resumed(k) => resumed = Some(k),
    };
    while last.is_none_or(|l| l < plan.kill_after) && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => note(line, &mut last),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Standard output closed: the child is exiting by itself.
                std::thread::sleep(Duration::from_millis(200));
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                }
                break;
            }
        }
    }
    if exited.is_none() {
        std::thread::sleep(plan.delay);
    }
    let _ = child.kill(); // SIGKILL on Unix
    let status = child.wait();
    let _ = reader.join();
    // Acknowledgements written before the kill are still in the pipe: count them all.
    while let Ok(line) = rx.try_recv() {
        note(line, &mut last);
    }
    let stderr = stderr.join().unwrap_or_default();
    let stdout = other.lock().map(|o| o.clone()).unwrap_or_default();
    let failure = |why: String| ChildFailure {
        why,
        stderr: stderr.clone(),
        stdout: stdout.clone(),
    };
    let status = status.map_err(|e| failure(format!("waiting for the child: {e}")))?;
    let acked_text = match last {
        Some(l) => format!("after acknowledging up to step {l}"),
        None => "before acknowledging any step".to_string(),
    };
    if exited.is_some() || !killed_by_sigkill(&status) {
        return Err(failure(format!(
            "the child stopped by itself ({status}) {acked_text}, before it was killed: a crash \
             test round must end in SIGKILL (a child that cannot open, fails a write, finds a \
             wrong recovered state or runs a different test ends like this)"
        )));
    }
    if resume.is_some() && resumed.is_none() {
        return Err(failure(format!(
            "the resuming child was killed {acked_text} but never said where it resumed"
        )));
    }
    let first_step = resumed.unwrap_or(0);
    match last {
        Some(l) if l >= first_step => Ok(Killed {
            acked: l + 1,
            resumed,
        }),
        _ => Err(failure(format!(
            "the child acknowledged no step{} within {} s",
            if resume.is_some() {
                " after resuming"
            } else {
                ""
            },
            CHILD_DEADLINE.as_secs()
        ))),
    }
}

#[cfg(unix)]
fn killed_by_sigkill(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn killed_by_sigkill(status: &ExitStatus) -> bool {
    !status.success()
}

/// A connection to LazyFS's FIFOs: the completion FIFO stays open for reading as long as
/// this lives, so that LazyFS always has a reader for its confirmations (it opens that FIFO
/// once, for writing, and a confirmation written while nobody reads it is lost).
pub struct LazyFs {
    fifo: PathBuf,
    done: Arc<Mutex<BufReader<std::fs::File>>>,
}

/// How long a LazyFS command may take to be confirmed.
const LAZYFS_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `f` in a thread and waits at most `timeout` for it (FIFO opens block while nobody is
/// at the other end).
fn within<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(format!(
            "{what}: no answer from LazyFS within {} s (is it mounted with these FIFOs?)",
            timeout.as_secs()
        ))
    })
}

impl LazyFs {
    /// Checks that both paths are FIFOs and that `dir` (the stores' directory) lies on a FUSE
    /// mount, then opens the completion FIFO (waiting at most two minutes for LazyFS).
    pub fn connect(p: &PowerLoss, dir: Option<&Path>) -> Result<LazyFs, String> {
        for (var, path) in [(LAZYFS_FIFO_ENV, &p.fifo), (LAZYFS_DONE_ENV, &p.done)] {
            check_fifo(var, path)?;
        }
        if let Some(dir) = dir {
            check_on_fuse(dir)?;
        }
        let done_path = p.done.clone();
        let done = within(LAZYFS_TIMEOUT, "opening the completion FIFO", move || {
            std::fs::File::open(&done_path)
                .map_err(|e| format!("opening {}: {e}", done_path.display()))
        })?;
        Ok(LazyFs {
            fifo: p.fifo.clone(),
            done: Arc::new(Mutex::new(BufReader::new(done))),
        })
    }

    /// A power loss: writes `lazyfs::clear-cache` to the fault FIFO (LazyFS drops every
    /// unsynced write) and waits for `finished::clear-cache` on the completion FIFO.
    pub fn clear(&self) -> Result<(), String> {
        let fifo = self.fifo.clone();
        let done = Arc::clone(&self.done);
        within(
            LAZYFS_TIMEOUT,
            "power loss (lazyfs::clear-cache)",
            move || {
                let mut done = done
                    .lock()
                    .map_err(|_| "the LazyFS reader is poisoned".to_string())?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&fifo)
                    .map_err(|e| format!("opening {}: {e}", fifo.display()))?;
                f.write_all(b"lazyfs::clear-cache\n")
                    .map_err(|e| format!("writing to {}: {e}", fifo.display()))?;
                drop(f);
                let mut line = String::new();
                match done.read_line(&mut line) {
                    Ok(0) => Err("LazyFS closed its completion FIFO".to_string()),
                    Ok(_) if line.contains("clear-cache") => Ok(()),
                    Ok(_) => Err(format!(
                        "unexpected answer from LazyFS: {:?}",
                        line.trim_end()
                    )),
                    Err(e) => Err(format!("reading LazyFS's completion FIFO: {e}")),
                }
            },
        )
    }
}

#[cfg(unix)]
fn check_fifo(var: &str, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{var}={}: {e}", path.display()))?;
    if !meta.file_type().is_fifo() {
        return Err(format!("{var}={} is not a FIFO", path.display()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_fifo(var: &str, _path: &Path) -> Result<(), String> {
    Err(format!(
        "{var}: the power-loss mode needs a Unix system with LazyFS"
    ))
}

/// Checks that `dir` lies on a FUSE file system (LazyFS), when `/proc/self/mountinfo` says.
fn check_on_fuse(dir: &Path) -> Result<(), String> {
    let dir =
        std::fs::canonicalize(dir).map_err(|e| format!("{DIR_ENV}={}: {e}", dir.display()))?;
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount) = fields.get(4) else { continue };
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let Some(fstype) = fields.get(sep + 1) else {
            continue;
        };
        let mount = mount.replace("\\040", " ");
        if dir.starts_with(&mount) && best.as_ref().is_none_or(|(len, _)| mount.len() >= *len) {
            best = Some((mount.len(), fstype.to_string()));
        }
    }
    match best {
        Some((_, fstype)) if !fstype.starts_with("fuse") => Err(format!(
            "{DIR_ENV}={} is on a {fstype} file system, not inside a LazyFS (FUSE) mount: the \
             power losses would drop nothing",
            dir.display()
        )),
        _ => Ok(()),
    }
}
