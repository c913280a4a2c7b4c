//! Runs the shared benchmark workloads (`paxstore-workloads`) on `FilesStorage` and on the
//! many-logs `FilesStore`, and prints one machine-readable `RESULT` line per measurement, in
//! the format of the baseline and RocksDB runners, so that
//! `bench/scripts/files-vs-baseline.sh` can compare them.
//!
//! Many-logs lines (backend `files-multi`): `parallel_append_1` and `parallel_append_8` (1 and
//! 8 threads, each on its own log of one store), `open_logs_1000x100` and
//! `open_logs_1x100000` (open of the store plus `log()` of every log, median of the reopens);
//! backend `files` adds `parallel_append_1` and `parallel_append_8` (one directory per log).
//!
//! ```text
//! cargo run --release -p paxstore-bench --example files_workloads [-- --quick]
//! ```
//!
//! The stores live in a temporary directory under `PAXSTORE_BENCH_DIR` (default: the system
//! temporary directory); it must be on a real disk for the durable workloads to mean anything.

use std::error::Error;

use std::path::Path;
use std::time::{Duration, Instant};

use paxstore_core::kv::KeyValue;
use paxstore_files::{FilesLog, FilesOptions, FilesStorage, FilesStore};
use paxstore_workloads::{self as workloads, Measurement, Sizes};

const BACKEND: &str = "files";

fn main() -> Result<(), Box<dyn Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let base = std::env::var_os("PAXSTORE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("paxstore-files-bench")
        .tempdir_in(base)?;
    let print = |m: &Measurement| println!("{}", m.line(BACKEND));
    // PAXSTORE_FILES_SEGMENT_MIB: segment size (default: the engine's default, 64 MiB).
    let mut options = FilesOptions::new();
    if let Some(mib) = std::env::var("PAXSTORE_FILES_SEGMENT_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options = options.segment_size(mib << 20);
    }
    // PAXSTORE_GROUP_WAIT_US, PAXSTORE_GROUPS_IN_FLIGHT: the many-logs store's group commit
    // knobs (FilesOptions::group_wait, groups_in_flight), for tuning runs.
    if let Some(us) = std::env::var("PAXSTORE_GROUP_WAIT_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options = options.group_wait(std::time::Duration::from_micros(us));
    }
    if let Some(n) = std::env::var("PAXSTORE_GROUPS_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options = options.groups_in_flight(n);
    }
    eprintln!(
        "FilesStorage segment size: {} MiB",
        options.segment_size_bytes() >> 20
    );
    // PAXSTORE_BENCH_ONLY_MANY=1: only the parallel and open workloads.
    if std::env::var_os("PAXSTORE_BENCH_ONLY_MANY").is_none() {
        let single = workloads::run_single_log(
            root.path(),
            |dir| Ok(FilesStorage::<KeyValue>::open_with(dir, options.clone())?),
            // Dead segments are deleted in the background; "reclaim" waits for that.
            |log| Ok(log.wait_for_reclaim()?),
            &sizes,
        )?;
        single.iter().for_each(print);
    }
    let batches = sizes.parallel_batches;
    for threads in [1, 8] {
        let dir = root.path().join(format!("single-parallel-{threads}"));
        let stores = (0..threads)
            .map(|k| FilesStorage::<KeyValue>::open_with(dir.join(k.to_string()), options.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        print(&workloads::parallel_append(stores, batches)?);
        let dir = root.path().join(format!("multi-parallel-{threads}"));
        let store = FilesStore::open_with(&dir, options.clone())?;
        let logs = (0..threads)
            .map(|k| store.log::<KeyValue>(&format!("log-{k}")))
            .collect::<Result<Vec<_>, _>>()?;
        let m = workloads::parallel_append(logs, batches)?;
        let stats = store.stats();
        eprintln!(
            "files-multi parallel_append_{threads}: {} records in {} groups ({:.1} per group)",
            stats.records,
            stats.groups,
            stats.records as f64 / stats.groups.max(1) as f64
        );
        println!("{}", m.line("files-multi"));
    }
    let (logs, entries, reopens) = if quick { (100, 100, 3) } else { (1000, 100, 5) };
    for (logs, entries) in [(logs, entries), (1, logs * entries)] {
        let dir = root.path().join(format!("open-{logs}x{entries}"));
        let m = open_many_logs(&dir, &options, logs, entries, reopens)?;
        println!("{}", m.line("files-multi"));
    }
    Ok(())
}

/// Fills `logs` logs of one store with `entries` entries each (batches of 64), closes it, and
/// times `reopens` opens of the store plus `log()` of every log (so that no lazy open hides
/// work): the median, as `open_logs_<logs>x<entries>`.
fn open_many_logs(
    dir: &Path,
    options: &FilesOptions,
    logs: usize,
    entries: usize,
    reopens: usize,
) -> Result<Measurement, Box<dyn Error>> {
    {
        let store = FilesStore::open_with(dir, options.clone())?;
        for k in 0..logs {
            let mut log = store.log::<KeyValue>(&format!("log-{k}"))?;
            workloads::fill_batched(&mut log, entries, 64, workloads::PAYLOAD_BYTES)?;
        }
    }
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..reopens {
        let t = Instant::now();
        let store = FilesStore::open_with(dir, options.clone())?;
        let handles = (0..logs)
            .map(|k| store.log::<KeyValue>(&format!("log-{k}")))
            .collect::<Result<Vec<FilesLog<KeyValue>>, _>>()?;
        times.push(t.elapsed());
        drop(handles);
    }
    times.sort();
    let median = times[times.len() / 2];
    Ok(Measurement::timed(
        format!("open_logs_{logs}x{entries}"),
        1,
        (logs * entries) as u64,
        median,
    ))
}
