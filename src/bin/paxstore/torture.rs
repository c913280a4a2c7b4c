//! `paxstore torture`: SIGKILL a writer at random moments (and, with `--power-loss`, drop
//! every unsynced write as a power cut would), check nothing acknowledged is lost and nothing
//! is half applied.
//!
//! The child (`paxstore torture-child`, hidden) opens the store and applies the batches of
//! `paxstore_core::conformance::crash::batch` (appends of varied sizes with a decided index,
//! trims, snapshot-plus-truncate, follower syncs that rewrite the tail, promises and
//! stop-signs, catch-up past the end), printing `PAXSTORE-ACK k` after batch `k` returned `Ok`. The
//! parent kills it after a random number of acknowledgements plus a random delay, reopens the
//! store, replays the acknowledged batches on the reference model and requires the store to
//! equal the model after `acked` or `acked + 1` batches (the one in flight may or may not
//! have landed, but never in part).
//!
//! With `--power-loss FIFO,DONE` the store lives on a LazyFS mount: after the kill the parent
//! writes `lazyfs::clear-cache` to LazyFS's fault FIFO and waits for its answer on DONE, which
//! drops every write that was not synced. Half of the rounds (chosen by the seeded generator)
//! first reopen and close the store, then cut the power: what an open reads from unsynced
//! data and acts on (deleting files, cutting tails) must survive the cut too.
//!
//! With `--logs N` (N > 1, for backends that hold many logs in one store: `files-multi`,
//! `rocks`), the child opens the logs `log-0` .. `log-{N-1}` of one store (specs
//! `<backend>:<dir>#log-<k>`, which share the store) and writes them from N threads at once,
//! each log its own deterministic sequence of steps ([`log_step`]), acknowledging with
//! `PAXSTORE-ACK log-<k> <i>`. Concurrent writers to one store are what a group commit batches
//! into one write and one sync; every log is then checked against its own model, and the
//! summary sums the counts over the logs.
//!
//! Everything random is drawn from `--seed`, so a run can be repeated kill point for kill
//! point (the kill itself lands a few random microseconds after an acknowledgement, so where
//! inside a write it lands still varies).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use omnipaxos::storage::StorageOp;
use paxstore::{AnyStorage, Backend, StorageSpec, StoreOptions, SyncPolicy, Syntax};
use paxstore_core::conformance::{
    crash::{apply_step, step, write_until_killed, CrashStep, ACK},
    verify_store,
};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;

/// The sync policy of the tortured store, on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sync {
    /// `SyncPolicy::Always`: every acknowledged batch is on stable storage.
    Always,
    /// `SyncPolicy::Never`: nothing is synced; a power loss may lose acknowledged batches
    /// (use with `--power-loss --expect-loss` to check that the power-loss simulation bites).
    Never,
}

impl Sync {
    fn policy(self) -> SyncPolicy {
        match self {
            Sync::Always => SyncPolicy::Always,
            Sync::Never => SyncPolicy::Never,
        }
    }
}

/// On or off, on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Arguments of `paxstore torture`.
#[derive(Args, Debug)]
pub struct TortureArgs {
    /// The persistent backend to torture.
    #[arg(long, value_parser = crate::parse_backend, default_value = paxstore::DEFAULT_BACKEND.name())]
    backend: Backend,
    /// Where the stores are created (one subdirectory per iteration, deleted once checked;
    /// a failing iteration's is kept). Put it on the disk and file system you want to test.
    #[arg(long)]
    dir: PathBuf,
    /// How many kill-and-check rounds.
    #[arg(long, default_value_t = 50)]
    iterations: u32,
    /// Most acknowledged batches before a kill (the count is drawn from 1..=this; with
    /// `--logs N`, from 1..=N times this, over all the logs).
    #[arg(long, default_value_t = 400)]
    max_batches: u64,
    /// How many logs of one store the child writes at once, each from a thread of its own
    /// (logs `log-0` ..; more than 1 only for backends with many logs in a store: files-multi,
    /// rocks). Each log is checked against its own model.
    #[arg(long, default_value_t = 1)]
    logs: usize,
    /// Seed of the random kill points (default: from the clock). The run prints the seed it
    /// used; `--seed` with that value repeats the same kill points.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep every iteration's store directory.
    #[arg(long)]
    keep: bool,
    /// The store's sync policy.
    #[arg(long, value_enum, default_value_t = Sync::Always)]
    sync: Sync,
    /// Simulate a power loss after each kill through LazyFS: its fault FIFO and its
    /// completion FIFO, as `FIFO,DONE`. `--dir` must be inside the LazyFS mount. After the
    /// kill (and, in half of the rounds, after a reopen and close of the store),
    /// `lazyfs::clear-cache` drops every unsynced write before the store is reopened and
    /// checked.
    #[arg(long, value_name = "FIFO,DONE", value_parser = parse_power_loss)]
    power_loss: Option<PowerLoss>,
    /// Succeed only if acknowledged batches were lost (or the store would not open): the
    /// check that the power-loss simulation bites, for `--sync never --power-loss ...`. Stops
    /// at the first loss.
    #[arg(long)]
    expect_loss: bool,
    /// (files backend) Preallocate segment space with `fallocate` (default: the engine's
    /// default).
    #[arg(long, value_enum)]
    preallocate: Option<Switch>,
    /// (files backend) Segment size in bytes (default: the engine's default). Small segments
    /// make the run seal, rotate and delete segments.
    #[arg(long)]
    segment_size: Option<u64>,
    /// Print every iteration's kill point and what the reopened store held.
    #[arg(long, short)]
    verbose: bool,
}

/// Arguments of the hidden child command.
#[derive(Args, Debug)]
pub struct ChildArgs {
    /// The backend.
    #[arg(long, value_parser = crate::parse_backend)]
    backend: Backend,
    /// The store directory.
    #[arg(long)]
    dir: PathBuf,
    /// The sync policy.
    #[arg(long, value_enum, default_value_t = Sync::Always)]
    sync: Sync,
    /// (files) Preallocation.
    #[arg(long, value_enum)]
    preallocate: Option<Switch>,
    /// (files) Segment size.
    #[arg(long)]
    segment_size: Option<u64>,
    /// How many logs, each written by a thread of its own.
    #[arg(long, default_value_t = 1)]
    logs: usize,
}

/// How the stores are opened, in the parent and in the child alike.
#[derive(Clone, Copy, Debug)]
struct StoreConfig {
    backend: Backend,
    sync: Sync,
    preallocate: Option<Switch>,
    segment_size: Option<u64>,
    /// 1: the store's single log (the backend's plain spec); more: logs `log-0` .. of one
    /// store.
    logs: usize,
}

impl StoreConfig {
    fn child_args(&self) -> Vec<String> {
        let mut args = vec![
            "--backend".to_string(),
            self.backend.name().to_string(),
            "--sync".to_string(),
            format!("{:?}", self.sync).to_lowercase(),
        ];
        if let Some(p) = self.preallocate {
            args.push("--preallocate".into());
            args.push(format!("{p:?}").to_lowercase());
        }
        if let Some(s) = self.segment_size {
            args.push("--segment-size".into());
            args.push(s.to_string());
        }
        if self.logs > 1 {
            args.push("--logs".into());
            args.push(self.logs.to_string());
        }
        args
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "backend {}, sync {}",
            self.backend,
            format!("{:?}", self.sync).to_lowercase()
        );
        if let Some(p) = self.preallocate {
            s += &format!(", preallocate {}", format!("{p:?}").to_lowercase());
        }
        if let Some(b) = self.segment_size {
            s += &format!(", segments of {b} bytes");
        }
        if self.logs > 1 {
            s += &format!(", {} logs written at once", self.logs);
        }
        s
    }
}

fn open(cfg: &StoreConfig, dir: &Path) -> Result<AnyStorage<KeyValue>, String> {
    let options = StoreOptions::new().sync(cfg.sync.policy());
    #[cfg(feature = "files")]
    if cfg.backend == Backend::Files && (cfg.preallocate.is_some() || cfg.segment_size.is_some()) {
        use paxstore::files::{FilesOptions, FilesStorage};
        let mut opts = FilesOptions::new().store_options(options);
        if let Some(p) = cfg.preallocate {
            opts = opts.preallocate(p == Switch::On);
        }
        if let Some(bytes) = cfg.segment_size {
            opts = opts.segment_size(bytes);
        }
        return FilesStorage::open_with(dir, opts)
            .map(AnyStorage::Files)
            .map_err(|e| format!("open {}: {e}", dir.display()));
    }
    AnyStorage::open_spec(&cfg.backend.spec(dir), options)
        .map_err(|e| format!("open {}: {e}", dir.display()))
}

/// The most logs `--logs` takes (the step numbers of [`log_step`] stay far from overflowing
/// the workload's `u32` ballots).
const MAX_LOGS: usize = 64;
/// Log `k`'s steps are the crash workload's steps from `k * LOG_STRIDE` on: a multiple of 96
/// (16 step kinds, in rounds that alternate by 2 and 3), so every log runs the same kinds of
/// step in the same order as log 0, with entries, snapshots and ballots of its own; and more
/// than the child ever writes, so no two logs share a step number.
const LOG_STRIDE: usize = 96 * 1042;
/// The most steps a multi-log child writes per log before it stops by itself.
const CHILD_MAX_STEPS: usize = 100_000;

/// The name of log `k` with `--logs N > 1`.
fn log_name(log: usize) -> String {
    format!("log-{log}")
}

/// Step `i` of log `log`'s sequence, given the log's state before it: the crash workload's
/// step `log * LOG_STRIDE + i` (log 0's sequence is the single-log one).
fn log_step(log: usize, i: usize, before: &Model<KeyValue>) -> CrashStep {
    step(log * LOG_STRIDE + i, before)
}

/// The ops of [`log_step`]: applied to the model as one batch, the state after the step.
fn log_batch(log: usize, i: usize, before: &Model<KeyValue>) -> Vec<StorageOp<KeyValue>> {
    log_step(log, i, before).ops
}

/// Opens the store's logs: its single log with `--logs 1`, else `log-0` .. `log-{N-1}`
/// through specs `<backend>:<dir>#log-<k>`, which share one store.
fn open_logs(cfg: &StoreConfig, dir: &Path) -> Result<Vec<AnyStorage<KeyValue>>, String> {
    if cfg.logs <= 1 {
        return Ok(vec![open(cfg, dir)?]);
    }
    let options = StoreOptions::new().sync(cfg.sync.policy());
    (0..cfg.logs)
        .map(|log| {
            let spec = StorageSpec::new(cfg.backend, dir, Some(&log_name(log)))
                .map_err(|e| e.to_string())?;
            AnyStorage::open_spec(&spec, options.clone()).map_err(|e| format!("open {spec}: {e}"))
        })
        .collect()
}

/// The child: writes the crash test's batches until killed (see
/// `paxstore_core::conformance::crash::write_until_killed`).
pub fn child(args: ChildArgs) -> ExitCode {
    let cfg = StoreConfig {
        backend: args.backend,
        sync: args.sync,
        preallocate: args.preallocate,
        segment_size: args.segment_size,
        logs: args.logs,
    };
    if cfg.logs > 1 {
        return child_logs(&cfg, &args.dir);
    }
    let opened = |dir: &Path| -> omnipaxos::storage::StorageResult<AnyStorage<KeyValue>> {
        Ok(open(&cfg, dir)?)
    };
    match write_until_killed(&args.dir, opened) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paxstore torture-child: {e}");
            ExitCode::from(3)
        }
    }
}

/// The child with `--logs N > 1`: opens the N logs of one store, then writes each from a
/// thread of its own, [`log_step`] `0, 1, …` of its log, writing `{ACK}log-<k> <i>` (one
/// line in one write, flushed) after step `i` of log `k` returned `Ok`. Any failure (an open,
/// a step, a panic) ends the whole process with an error at once, so the parent never takes
/// a log that stopped for one the kill stopped.
fn child_logs(cfg: &StoreConfig, dir: &Path) -> ExitCode {
    let stores = match open_logs(cfg, dir) {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("paxstore torture-child: {e}");
            return ExitCode::from(3);
        }
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(3);
    }));
    let writers: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(log, mut store)| {
            std::thread::spawn(move || {
                let fail = |why: String| -> ! {
                    eprintln!("paxstore torture-child: {}: {why}", log_name(log));
                    std::process::exit(3)
                };
                let mut model = Model::new();
                for i in 0..CHILD_MAX_STEPS {
                    let step = log_step(log, i, &model);
                    if let Err(e) = model.apply_batch(&step.ops) {
                        fail(format!("step {i} is invalid on the model: {e}"));
                    }
                    let what = if step.single {
                        "single-op call"
                    } else {
                        "batch"
                    };
                    if let Err(e) = apply_step(&mut store, step) {
                        fail(format!("step {i} ({what}) failed: {e}"));
                    }
                    // The whole line in one write: acknowledgements of different logs never
                    // interleave, and a kill never leaves half a line behind.
                    let line = format!("{ACK}{} {i}\n", log_name(log));
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
                        fail(format!("writing the acknowledgement: {e}"));
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        let _ = writer.join();
    }
    ExitCode::SUCCESS
}

/// LazyFS's fault FIFO and its completion FIFO.
#[derive(Clone, Debug)]
pub struct PowerLoss {
    fifo: PathBuf,
    done: PathBuf,
}

fn parse_power_loss(s: &str) -> Result<PowerLoss, String> {
    match s.split_once(',') {
        Some((fifo, done)) if !fifo.is_empty() && !done.is_empty() => Ok(PowerLoss {
            fifo: fifo.into(),
            done: done.into(),
        }),
        _ => Err(format!(
            "expected FIFO,DONE (LazyFS's fault FIFO and completion FIFO), got `{s}`"
        )),
    }
}

/// `O_NONBLOCK` on Linux (x86, ARM, RISC-V, PowerPC, s390x), the only system LazyFS runs on.
const O_NONBLOCK: i32 = 0o4000;
/// `ENOTCONN`: what every call on a FUSE mount returns once its daemon is gone.
const ENOTCONN: i32 = 107;
/// The signal `Child::kill` sends.
const SIGKILL: i32 = 9;
/// How long LazyFS may take to drop its cache.
const POWER_LOSS_TIMEOUT: Duration = Duration::from_secs(60);

impl PowerLoss {
    /// Cuts the power: `lazyfs::clear-cache` into the fault FIFO, then waits for
    /// `finished::clear-cache` on the completion FIFO. The completion FIFO is opened (without
    /// blocking) before the command is written: LazyFS's answer to a FIFO nobody reads is
    /// lost, and a blocking open or read would hang forever on a dead LazyFS.
    fn cut(&self) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut done = OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&self.done)
            .map_err(|e| {
                format!(
                    "opening LazyFS's completion FIFO {}: {e}",
                    self.done.display()
                )
            })?;
        // Drop any stale answer.
        let mut buf = [0u8; 256];
        while matches!(done.read(&mut buf), Ok(n) if n > 0) {}
        let mut fifo = OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(&self.fifo)
            .map_err(|e| {
                format!(
                    "opening LazyFS's fault FIFO {}: {e} (nobody reads it: is LazyFS running?)",
                    self.fifo.display()
                )
            })?;
        fifo.write_all(b"lazyfs::clear-cache\n").map_err(|e| {
            format!(
                "writing to LazyFS's fault FIFO {}: {e}",
                self.fifo.display()
            )
        })?;
        drop(fifo);
        let deadline = Instant::now() + POWER_LOSS_TIMEOUT;
        let mut answer = Vec::new();
        loop {
            match done.read(&mut buf) {
                Ok(n) if n > 0 => {
                    answer.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&answer).contains("finished::clear-cache") {
                        return Ok(());
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "reading LazyFS's completion FIFO {}: {e}",
                        self.done.display()
                    ))
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "LazyFS did not answer `lazyfs::clear-cache` on {} within {} s (is it \
                     alive?)",
                    self.done.display(),
                    POWER_LOSS_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A xorshift generator whose state comes from the seed through splitmix64, so that every
/// seed (even 0) gives its own sequence.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What a reopened store holds, against the reference model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// The model after `acked` batches, or after `acked + 1` (`landed`: the batch in flight
    /// at the kill made it).
    Match { landed: bool },
    /// The model after `kept < acked` batches: `acked - kept` acknowledged batches lost.
    Lost { kept: usize },
    /// No prefix of the batches: a batch half applied (or lost and the store damaged).
    Neither(String),
}

/// Log `log`'s model after its steps `0..n`.
fn model_after(log: usize, n: usize) -> Result<Model<KeyValue>, String> {
    let mut model = Model::new();
    for k in 0..n {
        let ops = log_batch(log, k, &model);
        model.apply_batch(&ops).map_err(|e| e.to_string())?;
    }
    Ok(model)
}

/// What the reopened log `log` holds, with `acked` of its steps acknowledged.
fn examine(store: &AnyStorage<KeyValue>, log: usize, acked: usize) -> Result<Found, String> {
    let mut model = model_after(log, acked)?;
    let why_acked = match verify_store(store, &model) {
        Ok(()) => return Ok(Found::Match { landed: false }),
        Err(why) => why,
    };
    let ops = log_batch(log, acked, &model);
    model.apply_batch(&ops).map_err(|e| e.to_string())?;
    let why_next = match verify_store(store, &model) {
        Ok(()) => return Ok(Found::Match { landed: true }),
        Err(why) => why,
    };
    // Which shorter prefix, if any, does it hold? (Most candidates fail on the first scalar
    // compared, so the scan is cheap.)
    let mut model = Model::new();
    let mut kept = None;
    for k in 0..acked {
        if verify_store(store, &model).is_ok() {
            kept = Some(k);
        }
        let ops = log_batch(log, k, &model);
        model.apply_batch(&ops).map_err(|e| e.to_string())?;
    }
    Ok(match kept {
        Some(kept) => Found::Lost { kept },
        None => Found::Neither(format!(
            "matches neither {acked} batches ({why_acked}) nor {} ({why_next}) nor any fewer",
            acked + 1
        )),
    })
}

/// One kill (and power loss) and what the reopened store held, log by log.
struct Round {
    /// Per log, its acknowledged steps.
    acked: Vec<usize>,
    power_losses: u32,
    reopened_first: bool,
    /// Per log, the state after the final reopen; or why the store would not open.
    found: Result<Vec<Found>, String>,
    /// Per log: the reopen before the power loss saw the in-flight batch, the one after it
    /// did not: the open reported data that was never synced (a failure: a restarted node may
    /// have told its peers about it).
    seen_then_lost: Vec<bool>,
    reopen: Duration,
}

/// Why a round could not be completed.
enum Abort {
    /// The store misbehaved: lost or half-applied data before any power loss, a failed open
    /// after a plain kill, a child that stopped by itself.
    Store(String),
    /// The file system under test went away (LazyFS died): not the store's fault.
    Environment(String),
}

fn round(
    args: &TortureArgs,
    cfg: &StoreConfig,
    dir: &Path,
    rng: &mut Rng,
    index: u32,
) -> Result<Round, Abort> {
    // Every round draws the same three numbers, whatever happens in it. The target counts
    // acknowledgements over all the logs.
    let logs = cfg.logs.max(1);
    let target = 1 + (rng.next() % (args.max_batches.max(1) * logs as u64)) as usize;
    let delay = Duration::from_micros(rng.next() % 3000);
    let reopen_first = rng.next() >> 63 == 1 && args.power_loss.is_some();
    if args.verbose {
        println!(
            "  iteration {index}: kill after {target} acknowledgements + {} us{}",
            delay.as_micros(),
            if reopen_first {
                ", reopen before the power loss"
            } else {
                ""
            }
        );
    }

    let exe = std::env::current_exe()
        .map_err(|e| Abort::Store(format!("cannot find paxstore itself: {e}")))?;
    let mut proc = Command::new(&exe)
        .arg("torture-child")
        .args(cfg.child_args())
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Abort::Store(format!("spawning {}: {e}", exe.display())))?;
    let stdout = proc
        .stdout
        .take()
        .ok_or_else(|| Abort::Store("the child has no stdout".into()))?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(ack) = line.strip_prefix(ACK).and_then(parse_ack) {
                let _ = tx.send(ack);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = vec![0; logs];
    let mut ack = |(log, k): (usize, usize)| -> Result<(), Abort> {
        let slot = acked.get_mut(log).ok_or_else(|| {
            Abort::Store(format!(
                "the child acknowledged a step of log {log}, but it writes {logs} logs"
            ))
        })?;
        *slot = (*slot).max(k + 1);
        Ok(())
    };
    let mut total = 0;
    let mut exited = None;
    while total < target && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(a) => {
                ack(a)?;
                total += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = proc.try_wait().map_err(|e| Abort::Store(e.to_string()))? {
                    exited = Some(status);
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if exited.is_none() {
        // A random extra delay of up to 3 ms, so the kill lands anywhere in a write.
        std::thread::sleep(delay);
        let _ = proc.kill(); // SIGKILL
    }
    let status = proc.wait().map_err(|e| Abort::Store(e.to_string()))?;
    let _ = reader.join();
    while let Ok(a) = rx.try_recv() {
        ack(a)?;
    }
    // Anything but our SIGKILL (an error exit, a panic, a crash) is the child's own doing.
    if exited.is_some() || status.signal() != Some(SIGKILL) {
        return Err(Abort::Store(format!(
            "the child stopped by itself ({status}) after {} acknowledged batches, before \
             it was killed (its error, if any, is above)",
            acked.iter().sum::<usize>()
        )));
    }

    let mut power_losses = 0;
    let mut seen_in_flight = vec![false; logs];
    if reopen_first {
        // The open after a plain kill reads (and may act on) data not yet synced; whatever
        // it shows must hold against the model like any reopen after a kill.
        let stores =
            open_logs(cfg, dir).map_err(|e| Abort::Store(format!("reopen after SIGKILL: {e}")))?;
        for (log, store) in stores.iter().enumerate() {
            match examine(store, log, acked[log]).map_err(Abort::Store)? {
                Found::Match { landed } => seen_in_flight[log] = landed,
                other => {
                    return Err(Abort::Store(format!(
                        "reopen after SIGKILL, before any power loss: {}{}",
                        log_prefix(cfg, log),
                        describe_found(&other, acked[log])
                    )))
                }
            }
        }
        drop(stores);
    }
    if let Some(pl) = &args.power_loss {
        pl.cut().map_err(Abort::Environment)?;
        power_losses += 1;
    }

    let t = Instant::now();
    let found = match open_logs(cfg, dir) {
        Ok(stores) => stores
            .iter()
            .enumerate()
            .map(|(log, store)| examine(store, log, acked[log]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Abort::Store)?,
        Err(e) => {
            let after = if power_losses > 0 {
                "reopen after power loss"
            } else {
                "reopen after SIGKILL"
            };
            return Ok(Round {
                acked,
                power_losses,
                reopened_first: reopen_first,
                found: Err(format!("{after}: {e}")),
                seen_then_lost: vec![false; logs],
                reopen: t.elapsed(),
            });
        }
    };
    let reopen = t.elapsed();
    let seen_then_lost = (0..logs)
        .map(|log| seen_in_flight[log] && found[log] == Found::Match { landed: false })
        .collect();
    if args.verbose {
        for (log, found) in found.iter().enumerate() {
            println!(
                "  iteration {index}: {}{} acknowledged; {}",
                log_prefix(cfg, log),
                acked[log],
                describe_found(found, acked[log])
            );
        }
    }
    Ok(Round {
        acked,
        power_losses,
        reopened_first: reopen_first,
        found: Ok(found),
        seen_then_lost,
        reopen,
    })
}

/// An acknowledgement's text after [`ACK`]: `k` (the single log's step `k`) or
/// `log-<n> k` (step `k` of log `n`), as `(log, k)`.
fn parse_ack(rest: &str) -> Option<(usize, usize)> {
    match rest.strip_prefix("log-") {
        Some(rest) => {
            let (log, k) = rest.split_once(' ')?;
            Some((log.parse().ok()?, k.parse().ok()?))
        }
        None => Some((0, rest.parse().ok()?)),
    }
}

/// `log-<k>: ` before what is said of one log, with several logs; nothing with one.
fn log_prefix(cfg: &StoreConfig, log: usize) -> String {
    if cfg.logs > 1 {
        format!("{}: ", log_name(log))
    } else {
        String::new()
    }
}

fn describe_found(found: &Found, acked: usize) -> String {
    match found {
        Found::Match { landed: false } => format!("holds exactly the {acked} acknowledged batches"),
        Found::Match { landed: true } => {
            format!("holds the {acked} acknowledged batches and the one in flight")
        }
        Found::Lost { kept } => format!(
            "holds only the first {kept} of {acked} acknowledged batches: {} acknowledged \
             batches lost",
            acked - kept
        ),
        Found::Neither(why) => format!(
            "with {acked} batches acknowledged, the reopened store {why}: an acknowledged batch \
             was lost or a batch was half applied"
        ),
    }
}

/// Whether the file system holding `dir` is gone (a FUSE mount whose daemon died answers
/// every call with `ENOTCONN`, "Transport endpoint is not connected").
fn file_system_gone(dir: &Path) -> bool {
    matches!(std::fs::metadata(dir), Err(e) if e.raw_os_error() == Some(ENOTCONN))
}

/// The file system type of the mount holding `dir` (longest matching mount point in
/// `/proc/mounts`), if it can be told.
fn fs_type(dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            let point = point.replace("\\040", " ");
            dir.starts_with(&point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map(|(_, kind)| kind)
}

#[derive(Default)]
struct Totals {
    iterations: u32,
    kills: u32,
    power_losses: u32,
    reopened_first: u32,
    checked: usize,
    landed: u32,
    min: Option<usize>,
    max: usize,
    lost_batches: usize,
    lost_rounds: u32,
    half_applied: u32,
    unopenable: u32,
    seen_then_lost: u32,
    reopen_sum: Duration,
    reopen_max: Duration,
}

impl Totals {
    fn print(&self, cfg: &StoreConfig, planned: u32, started: Instant) {
        let n = self.iterations.max(1);
        println!("torture summary ({}):", cfg.describe());
        println!(
            "  iterations:                 {} of {planned}",
            self.iterations
        );
        println!("  kills:                      {}", self.kills);
        println!(
            "  power losses:               {} ({} after a reopen and close)",
            self.power_losses, self.reopened_first
        );
        println!(
            "  acknowledged batches checked: {} (per kill: min {}, max {})",
            self.checked,
            self.min.unwrap_or(0),
            self.max
        );
        if cfg.logs > 1 {
            println!(
                "  in-flight batch had landed: {} of {} logs killed ({} kills of {} logs)",
                self.landed,
                self.kills as usize * cfg.logs,
                self.kills,
                cfg.logs
            );
        } else {
            println!(
                "  in-flight batch had landed: {} of {} kills",
                self.landed, self.kills
            );
        }
        if self.reopened_first > 0 {
            println!(
                "  forgotten after a reopen:   {} (the reopen before the power loss showed the \
                 batch in flight, the one after it did not)",
                self.seen_then_lost
            );
        }
        println!(
            "  reopen:                     mean {:.1} ms, max {:.1} ms",
            (self.reopen_sum / n).as_secs_f64() * 1e3,
            self.reopen_max.as_secs_f64() * 1e3
        );
        println!(
            "  lost acknowledged batches:  {}{}",
            self.lost_batches,
            if self.lost_rounds > 0 {
                format!(" (in {} rounds)", self.lost_rounds)
            } else {
                String::new()
            }
        );
        println!("  half-applied batches:       {}", self.half_applied);
        println!("  stores that would not open: {}", self.unopenable);
        println!(
            "  time:                       {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// `paxstore torture`.
pub fn run(args: TortureArgs) -> ExitCode {
    if !args.backend.is_persistent() {
        eprintln!(
            "paxstore torture: the `{}` backend keeps nothing across a crash; choose a persistent \
             one ({})",
            args.backend,
            Backend::persistent()
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    if args.backend != Backend::Files && (args.preallocate.is_some() || args.segment_size.is_some())
    {
        eprintln!(
            "paxstore torture: --preallocate and --segment-size are options of the files backend"
        );
        return ExitCode::from(2);
    }
    if args.logs == 0 || args.logs > MAX_LOGS {
        eprintln!("paxstore torture: --logs takes 1 to {MAX_LOGS}");
        return ExitCode::from(2);
    }
    if args.logs > 1 && args.backend.syntax() != Syntax::DirAndLog {
        eprintln!(
            "paxstore torture: --logs {} needs a backend that holds many logs in one store ({}); \
             a `{}` store holds a single log",
            args.logs,
            Backend::persistent()
                .iter()
                .filter(|b| b.syntax() == Syntax::DirAndLog)
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", "),
            args.backend
        );
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!(
            "paxstore torture: cannot create {}: {e}",
            args.dir.display()
        );
        return ExitCode::from(2);
    }
    if args.power_loss.is_some() {
        match fs_type(&args.dir) {
            Some(kind) if kind.starts_with("fuse") => {}
            Some(kind) => eprintln!(
                "paxstore torture: warning: {} is on a `{kind}` file system, not a LazyFS \
                 (FUSE) mount: the power losses will drop nothing",
                args.dir.display()
            ),
            None => {}
        }
    }
    let cfg = StoreConfig {
        backend: args.backend,
        sync: args.sync,
        preallocate: args.preallocate,
        segment_size: args.segment_size,
        logs: args.logs,
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut rng = Rng::new(seed);
    println!(
        "torture: {}, {} iterations in {}, seed {seed}, up to {} batches per child{}{}",
        cfg.describe(),
        args.iterations,
        args.dir.display(),
        args.max_batches * cfg.logs as u64,
        if cfg.logs > 1 {
            format!(" (over its {} logs)", cfg.logs)
        } else {
            String::new()
        },
        match &args.power_loss {
            Some(pl) => format!(
                ", a power loss after each kill (LazyFS {})",
                pl.fifo.display()
            ),
            None => String::new(),
        }
    );
    let started = Instant::now();
    let mut t = Totals::default();
    let rerun = format!("  rerun with --seed {seed} to retry the same kill points");
    for i in 0..args.iterations {
        let dir = args.dir.join(format!("iteration-{i:05}"));
        let _ = std::fs::remove_dir_all(&dir);
        let r = match round(&args, &cfg, &dir, &mut rng, i) {
            Ok(r) => r,
            Err(abort) => {
                let (code, why) = match abort {
                    Abort::Environment(why) => (4, why),
                    Abort::Store(why)
                        if args.power_loss.is_some() && file_system_gone(&args.dir) =>
                    {
                        (4, why)
                    }
                    Abort::Store(why) => (1, why),
                };
                if code == 4 {
                    println!(
                        "ABORTED at iteration {i}: the file system under test went away \
                         (LazyFS died?), not a store failure: {why}"
                    );
                } else {
                    println!("FAILED at iteration {i}: {why}");
                    println!("  the store is kept in {}", dir.display());
                    println!("{rerun}");
                }
                t.print(&cfg, args.iterations, started);
                return ExitCode::from(code);
            }
        };
        t.iterations += 1;
        t.kills += 1;
        t.power_losses += r.power_losses;
        t.reopened_first += u32::from(r.reopened_first && r.power_losses > 0);
        let acked_total: usize = r.acked.iter().sum();
        t.checked += acked_total;
        t.min = Some(t.min.map_or(acked_total, |m| m.min(acked_total)));
        t.max = t.max.max(acked_total);
        t.reopen_sum += r.reopen;
        t.reopen_max = t.reopen_max.max(r.reopen);
        let mut failures = Vec::new();
        match &r.found {
            Ok(found) => {
                let mut lost_here = false;
                for (log, found) in found.iter().enumerate() {
                    let acked = r.acked[log];
                    let why = match found {
                        Found::Match { .. } if r.seen_then_lost[log] => {
                            t.seen_then_lost += 1;
                            Some(format!(
                                "the reopen after the kill showed the batch in flight ({} \
                                 batches), the reopen after the power loss only the {} \
                                 acknowledged ones: an open reported (and may have acted on) \
                                 data it had not made durable",
                                acked + 1,
                                acked
                            ))
                        }
                        Found::Match { landed } => {
                            t.landed += u32::from(*landed);
                            None
                        }
                        Found::Lost { kept } => {
                            t.lost_batches += acked - kept;
                            lost_here = true;
                            Some(describe_found(found, acked))
                        }
                        Found::Neither(_) => {
                            t.half_applied += 1;
                            Some(describe_found(found, acked))
                        }
                    };
                    if let Some(why) = why {
                        failures.push(format!("{}{why}", log_prefix(&cfg, log)));
                    }
                }
                t.lost_rounds += u32::from(lost_here);
            }
            Err(e) => {
                t.unopenable += 1;
                failures.push(e.clone());
            }
        }
        let failure = (!failures.is_empty()).then(|| failures.join("; "));
        if let Some(why) = failure {
            if args.power_loss.is_some() && file_system_gone(&args.dir) {
                println!(
                    "ABORTED at iteration {i}: the file system under test went away (LazyFS \
                     died?), not a store failure: {why}"
                );
                t.print(&cfg, args.iterations, started);
                return ExitCode::from(4);
            }
            if args.expect_loss {
                println!("  iteration {i} (power loss {}): {why}", t.power_losses);
                println!("  the store is kept in {}", dir.display());
                t.print(&cfg, args.iterations, started);
                println!(
                    "RESULT: acknowledged data lost after {} power losses, as expected with \
                     sync {}: the power-loss simulation bites",
                    t.power_losses,
                    format!("{:?}", cfg.sync).to_lowercase()
                );
                return ExitCode::SUCCESS;
            }
            println!("FAILED at iteration {i}: {why}");
            println!("  the store is kept in {}", dir.display());
            println!("{rerun}");
            t.print(&cfg, args.iterations, started);
            return ExitCode::from(1);
        }
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if (i + 1) % 10 == 0 || i + 1 == args.iterations {
            println!(
                "  {:>5}/{} iterations ok, {} acknowledged batches checked, {} power losses",
                i + 1,
                args.iterations,
                t.checked,
                t.power_losses
            );
        }
    }
    t.print(&cfg, args.iterations, started);
    if args.expect_loss {
        println!(
            "RESULT: FAILED: nothing acknowledged was lost in {} power losses, yet the store \
             never syncs: the power-loss simulation does not bite",
            t.power_losses
        );
        return ExitCode::from(1);
    }
    println!("RESULT: nothing acknowledged lost, nothing half applied");
    ExitCode::SUCCESS
}
