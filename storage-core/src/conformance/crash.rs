//! Crash test: a child process applies acknowledged batches and is killed with SIGKILL at a
//! random moment; the parent reopens the store and checks that every acknowledged batch is
//! there and that no batch is half applied.
//!
//! The child is the test binary itself, re-executed with the test's own name and
//! [`CHILD_ENV`] set to the store directory. It reports each batch on standard output
//! (`PAXSTORE-ACK k`) only after `write_atomically` returned `Ok`. The batches are a
//! deterministic function of their number and the state before them, so the parent replays
//! them on the reference model: the reopened store must equal the model after `acked` or
//! `acked + 1` batches (the one in flight may or may not have landed, but never in part).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use omnipaxos::storage::{Storage, StorageOp, StorageResult};

use super::cases::{ballot, stopsign};
use super::verify_store;
use crate::kv::{KVSnapshot, KeyValue};
use crate::model::Model;

/// Set in the child's environment to the directory of the store it writes.
pub const CHILD_ENV: &str = "PAXSTORE_CRASH_CHILD_DIR";
/// Environment variable giving the number of kill iterations.
pub const ITERATIONS_ENV: &str = "PAXSTORE_CRASH_ITERATIONS";
/// The line prefix a child writes after each acknowledged batch: `PAXSTORE-ACK k`.
pub const ACK: &str = "PAXSTORE-ACK ";
/// The child stops by itself after this many batches if it was not killed.
const MAX_BATCHES: usize = 100_000;

/// The iteration count: `PAXSTORE_CRASH_ITERATIONS`, or 20.
pub fn iterations_from_env() -> u32 {
    std::env::var(ITERATIONS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Batch number `k` (from 0), given the state before it: mostly appends of entries of varied
/// size with a decided index, and every few batches a trim, a snapshot-plus-truncate, a
/// follower sync that rewrites the tail, a promise, or a catch-up past the end.
pub fn batch(k: usize, before: &Model<KeyValue>) -> Vec<StorageOp<KeyValue>> {
    let (first, next) = (before.first, before.next);
    let entry = |i: usize, len: usize| {
        KeyValue::new(format!("key-{}", i % 13), (k * 1_000_000 + i) as u64, len)
    };
    let appended = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| entry(i, 64 + (i * 37 + k) % 4000))
            .collect::<Vec<_>>()
    };
    match k % 29 {
        6 | 13 | 20 if next > first => {
            let i = first + (next - first) / 2;
            vec![StorageOp::Trim(i), StorageOp::SetCompactedIdx(i)]
        }
        10 | 24 if next > first => {
            let i = first + (next - first) * 2 / 3;
            let snapshot = KVSnapshot::sized(8, 1024 + (k % 7) * 20_000);
            vec![
                StorageOp::Trim(i),
                StorageOp::SetCompactedIdx(i),
                StorageOp::SetSnapshot(Some(snapshot)),
            ]
        }
        17 if next > first + 2 => {
            let i = next - 2;
            vec![
                StorageOp::SetAcceptedRound(ballot(k as u32)),
                StorageOp::SetDecidedIndex(first),
                StorageOp::AppendOnPrefix(i, appended(i, 5)),
            ]
        }
        22 => vec![
            StorageOp::SetPromise(ballot(k as u32)),
            StorageOp::SetStopsign(Some(stopsign(k as u32))),
        ],
        28 => {
            let i = next + 7;
            vec![
                StorageOp::SetAcceptedRound(ballot(k as u32)),
                StorageOp::SetDecidedIndex(i),
                StorageOp::Trim(i),
                StorageOp::SetCompactedIdx(i),
                StorageOp::SetSnapshot(Some(KVSnapshot::sized(4, 4096))),
                StorageOp::AppendOnPrefix(i, appended(i, 3)),
                StorageOp::SetStopsign(None),
            ]
        }
        _ => vec![
            StorageOp::AppendEntries(appended(next, 1 + k % 9)),
            StorageOp::SetDecidedIndex(next),
        ],
    }
}

/// The child side: opens the store in `dir` with `open` and applies [`batch`]es `0, 1, …`,
/// writing `{ACK}k` to standard output (flushed) after batch `k` returned `Ok`, until killed
/// or 100,000 batches. Used by the crash test and by `paxstore torture`.
pub fn write_until_killed<S: Storage<KeyValue>>(
    dir: &Path,
    open: impl Fn(&Path) -> StorageResult<S>,
) -> Result<(), String> {
    let mut store = open(dir).map_err(|e| format!("child: open {}: {e}", dir.display()))?;
    let mut model = Model::new();
    let mut out = std::io::stdout().lock();
    for k in 0..MAX_BATCHES {
        let ops = batch(k, &model);
        model
            .apply_batch(&ops)
            .map_err(|e| format!("child: batch {k} invalid: {e}"))?;
        store
            .write_atomically(ops)
            .map_err(|e| format!("child: batch {k} failed: {e}"))?;
        writeln!(out, "{ACK}{k}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A small xorshift generator, seeded from the clock and the iteration.
fn random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Runs the crash test. In the child (when [`CHILD_ENV`] is set) it writes batches until
/// killed; in the parent it runs `iterations` kill-and-check rounds. `test_name` is the
/// libtest name of the calling test (the child runs exactly that test).
pub fn run<S, F>(test_name: &str, open: F, iterations: u32) -> Result<(), String>
where
    S: Storage<KeyValue>,
    F: Fn(&Path) -> StorageResult<S>,
{
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return write_until_killed(Path::new(&dir), open);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut total_acked = 0;
    for iteration in 0..iterations {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mut proc = Command::new(&exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", exe.display()))?;
        let stdout = proc.stdout.take().ok_or("child has no stdout")?;
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(k) = line.strip_prefix(ACK).and_then(|k| k.parse::<usize>().ok()) {
                    let _ = tx.send(k);
                }
            }
        });
        // Kill after a random number of acknowledgements (so the kill lands while the store is
        // warm and mid-write), with a random extra delay of up to 3 ms.
        let target = 1 + (random(&mut seed) % 400) as usize;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut acked = 0;
        while acked < target && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(k) => acked = k + 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if proc.try_wait().map_err(|e| e.to_string())?.is_some() {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        std::thread::sleep(Duration::from_micros(random(&mut seed) % 3000));
        let _ = proc.kill(); // SIGKILL on Unix
        let status = proc.wait().map_err(|e| e.to_string())?;
        let _ = reader.join();
        // Acknowledgements written before the kill are still in the pipe: count them all.
        while let Ok(k) = rx.try_recv() {
            acked = acked.max(k + 1);
        }
        if acked == 0 && status.success() {
            return Err(format!("iteration {iteration}: the child exited without writing (is `{test_name}` the right test name?)"));
        }
        total_acked += acked;

        let store = open(dir.path())
            .map_err(|e| format!("iteration {iteration}: reopen after SIGKILL failed: {e}"))?;
        let mut model = Model::new();
        for k in 0..acked {
            let ops = batch(k, &model);
            model.apply_batch(&ops).map_err(|e| e.to_string())?;
        }
        let with_acked = verify_store(&store, &model);
        if let Err(why_acked) = with_acked {
            let ops = batch(acked, &model);
            model.apply_batch(&ops).map_err(|e| e.to_string())?;
            if let Err(why_next) = verify_store(&store, &model) {
                return Err(format!(
                    "iteration {iteration}: after SIGKILL with {acked} batches acknowledged, the store \
                     matches neither {acked} batches ({why_acked}) nor {} ({why_next})",
                    acked + 1
                ));
            }
        }
    }
    eprintln!("crash test: {iterations} iterations, {total_acked} acknowledged batches checked");
    Ok(())
}
