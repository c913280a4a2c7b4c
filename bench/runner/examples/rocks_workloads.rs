//! Runs the shared benchmark workloads (`paxstore-workloads`) on `RocksStorage` and prints
//! one machine-readable `RESULT` line per measurement.
//!
//! ```text
//! cargo run --release -p paxstore-bench --features rocks --example rocks_workloads [-- --quick] [--only GROUPS]
//! ```
//!
//! `--only` takes a comma-separated list of `append,trim,snapshot,long,half,parallel` (see
//! `paxstore_workloads::run_selected`; `parallel` is eight threads on eight logs of one
//! store against one thread on one log). The stores live in a temporary directory under
//! `PAXSTORE_BENCH_DIR` (default: the system temporary directory); it must be on a real disk
//! for the durable workloads to mean anything. `bench/scripts/rocks-vs-baseline.sh` runs this
//! and the `omnipaxos_storage` baseline and prints the ratios.

use std::error::Error;

use paxstore_core::kv::KeyValue;
use paxstore_rocks::{RocksStorage, RocksStore};
use paxstore_workloads::{self as workloads, Measurement, Sizes};

const BACKEND: &str = "rocks";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let sizes = if args.iter().any(|a| a == "--quick") {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let only: Option<Vec<String>> =
        args.iter()
            .position(|a| a == "--only")
            .map(|i| match args.get(i + 1) {
                Some(list) => list.split(',').map(str::to_string).collect(),
                None => Vec::new(),
            });
    let selected = |group: &str| match &only {
        None => true,
        Some(groups) => groups.iter().any(|g| g == group),
    };
    let base = std::env::var_os("PAXSTORE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("paxstore-rocks-bench")
        .tempdir_in(base)?;
    let print = |m: &Measurement| println!("{}", m.line(BACKEND));

    let single = workloads::run_selected(
        root.path(),
        |dir| Ok(RocksStorage::<KeyValue>::open(dir)?),
        |log| {
            // Explicit reclamation, and whatever the trims queued in the background.
            log.reclaim()?;
            Ok(log.store().wait_for_reclaim()?)
        },
        &sizes,
        selected,
    )?;
    single.iter().for_each(print);

    // Group commit: eight threads on eight logs of one store, against one thread on one log.
    if selected("parallel") {
        for threads in [1, 8] {
            let store = RocksStore::open(root.path().join(format!("parallel-{threads}")))?;
            let logs = (0..threads)
                .map(|i| store.log::<KeyValue>(&format!("log-{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            print(&workloads::parallel_append(logs, sizes.parallel_batches)?);
        }
    }
    Ok(())
}
