//! `paxstore torture`: SIGKILL a writer at random moments, check nothing acknowledged is lost
//! and nothing is half applied.
//!
//! The child (`paxstore torture-child`, hidden) opens the store and applies the batches of
//! `storage_core::conformance::crash::batch` (appends of varied sizes with a decided index,
//! trims, snapshot-plus-truncate, follower syncs that rewrite the tail, promises and
//! stop-signs, catch-up past the end), printing `PAXSTORE-ACK k` after batch `k` returned `Ok`. The
//! parent kills it after a random number of acknowledgements plus a random delay, reopens the
//! store, replays the acknowledged batches on the reference model and requires the store to
//! equal the model after `acked` or `acked + 1` batches (the one in flight may or may not
//! have landed, but never in part).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use paxstore::{AnyStorage, Backend, StoreOptions};
use storage_core::conformance::{
    crash::{batch, write_until_killed, ACK},
    verify_store,
};
use storage_core::kv::KeyValue;
use storage_core::model::Model;

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
    /// Most acknowledged batches before a kill (the count is drawn from 1..=this).
    #[arg(long, default_value_t = 400)]
    max_batches: u64,
    /// Seed of the random kill points (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep every iteration's store directory.
    #[arg(long)]
    keep: bool,
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
}

fn open(backend: Backend, dir: &Path) -> Result<AnyStorage<KeyValue>, String> {
    AnyStorage::open_spec(&backend.spec(dir), StoreOptions::default())
        .map_err(|e| format!("open {}: {e}", dir.display()))
}

/// The child: writes the crash test's batches until killed (see
/// `storage_core::conformance::crash::write_until_killed`).
pub fn child(args: ChildArgs) -> ExitCode {
    let opened = |dir: &Path| -> omnipaxos::storage::StorageResult<AnyStorage<KeyValue>> {
        Ok(open(args.backend, dir)?)
    };
    match write_until_killed(&args.dir, opened) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paxstore torture-child: {e}");
            ExitCode::from(3)
        }
    }
}

fn random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

struct Round {
    acked: usize,
    landed_in_flight: bool,
    reopen: Duration,
}

fn round(args: &TortureArgs, dir: &Path, seed: &mut u64) -> Result<Round, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find paxstore itself: {e}"))?;
    let mut proc = Command::new(&exe)
        .arg("torture-child")
        .arg("--backend")
        .arg(args.backend.name())
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", exe.display()))?;
    let stdout = proc.stdout.take().ok_or("the child has no stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(k) = line.strip_prefix(ACK).and_then(|k| k.parse::<usize>().ok()) {
                let _ = tx.send(k);
            }
        }
    });
    let target = 1 + (random(seed) % args.max_batches.max(1)) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = 0;
    let mut exited = None;
    while acked < target && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(k) => acked = k + 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = proc.try_wait().map_err(|e| e.to_string())? {
                    exited = Some(status);
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if exited.is_none() {
        // A random extra delay of up to 3 ms, so the kill lands anywhere in a write.
        std::thread::sleep(Duration::from_micros(random(seed) % 3000));
        let _ = proc.kill(); // SIGKILL
    }
    let status = proc.wait().map_err(|e| e.to_string())?;
    let _ = reader.join();
    while let Ok(k) = rx.try_recv() {
        acked = acked.max(k + 1);
    }
    if exited.is_some() || (acked == 0 && status.success()) {
        return Err(format!(
            "the child stopped by itself ({status}) after {acked} batches, before it was killed"
        ));
    }

    let t = Instant::now();
    let store = open(args.backend, dir).map_err(|e| format!("reopen after SIGKILL: {e}"))?;
    let reopen = t.elapsed();
    let mut model = Model::new();
    for k in 0..acked {
        let ops = batch(k, &model);
        model.apply_batch(&ops).map_err(|e| e.to_string())?;
    }
    match verify_store(&store, &model) {
        Ok(()) => Ok(Round {
            acked,
            landed_in_flight: false,
            reopen,
        }),
        Err(why_acked) => {
            let ops = batch(acked, &model);
            model.apply_batch(&ops).map_err(|e| e.to_string())?;
            match verify_store(&store, &model) {
                Ok(()) => Ok(Round {
                    acked,
                    landed_in_flight: true,
                    reopen,
                }),
                Err(why_next) => Err(format!(
                    "with {acked} batches acknowledged, the reopened store matches neither \
                     {acked} batches ({why_acked}) nor {} ({why_next}): an acknowledged batch \
                     was lost or a batch was half applied",
                    acked + 1
                )),
            }
        }
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
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!(
            "paxstore torture: cannot create {}: {e}",
            args.dir.display()
        );
        return ExitCode::from(2);
    }
    let mut seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }) | 1;
    println!(
        "torture: backend {}, {} iterations in {}, seed {seed}, up to {} batches per child",
        args.backend,
        args.iterations,
        args.dir.display(),
        args.max_batches
    );
    let started = Instant::now();
    let (mut total, mut landed, mut min, mut max) = (0usize, 0u32, usize::MAX, 0usize);
    let (mut reopen_sum, mut reopen_max) = (Duration::ZERO, Duration::ZERO);
    for i in 0..args.iterations {
        let dir = args.dir.join(format!("iteration-{i:05}"));
        let _ = std::fs::remove_dir_all(&dir);
        match round(&args, &dir, &mut seed) {
            Ok(r) => {
                total += r.acked;
                landed += u32::from(r.landed_in_flight);
                min = min.min(r.acked);
                max = max.max(r.acked);
                reopen_sum += r.reopen;
                reopen_max = reopen_max.max(r.reopen);
                if !args.keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                if (i + 1) % 10 == 0 || i + 1 == args.iterations {
                    println!(
                        "  {:>5}/{} iterations ok, {total} acknowledged batches checked",
                        i + 1,
                        args.iterations
                    );
                }
            }
            Err(e) => {
                println!("FAILED at iteration {i}: {e}");
                println!("  the store is kept in {}", dir.display());
                println!(
                    "  rerun with --seed {} to retry the same kill points",
                    args.seed.unwrap_or(seed)
                );
                return ExitCode::from(1);
            }
        }
    }
    let n = args.iterations.max(1);
    println!("torture summary ({}):", args.backend);
    println!("  iterations:                 {}", args.iterations);
    println!(
        "  batches acknowledged:       {total} (per kill: min {}, max {max})",
        if min == usize::MAX { 0 } else { min }
    );
    println!(
        "  in-flight batch had landed: {landed} of {} kills",
        args.iterations
    );
    println!(
        "  reopen after SIGKILL:       mean {:.1} ms, max {:.1} ms",
        (reopen_sum / n).as_secs_f64() * 1e3,
        reopen_max.as_secs_f64() * 1e3
    );
    println!("  lost acknowledged batches:  0");
    println!("  half-applied batches:       0");
    println!(
        "  time:                       {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("RESULT: nothing acknowledged lost, nothing half applied");
    ExitCode::SUCCESS
}
