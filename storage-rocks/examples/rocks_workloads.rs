//! Runs the shared benchmark workloads (`storage_core::workloads`) on `RocksStorage` and
//! prints one machine-readable `RESULT` line per measurement.
//!
//! ```text
//! cargo run --release -p storage-rocks --example rocks_workloads [-- --quick]
//! ```
//!
//! The stores live in a temporary directory under `PAXSTORE_BENCH_DIR` (default: the system
//! temporary directory); it must be on a real disk for the durable workloads to mean anything.
//! `scripts/rocks-vs-baseline.sh` runs this and the `omnipaxos_storage` baseline and prints
//! the ratios.

use std::error::Error;

use storage_core::kv::KeyValue;
use storage_core::workloads::{self, Measurement, Sizes};
use storage_rocks::{RocksStorage, RocksStore};

const BACKEND: &str = "rocks";

fn main() -> Result<(), Box<dyn Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let base = std::env::var_os("PAXSTORE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("paxstore-rocks-bench")
        .tempdir_in(base)?;
    let print = |m: &Measurement| println!("{}", m.line(BACKEND));

    let single = workloads::run_single_log(
        root.path(),
        |dir| Ok(RocksStorage::<KeyValue>::open(dir)?),
        |log| {
            // Explicit reclamation, and whatever the trims queued in the background.
            log.reclaim()?;
            Ok(log.store().wait_for_reclaim()?)
        },
        &sizes,
    )?;
    single.iter().for_each(print);

    // Group commit: eight threads on eight logs of one store, against one thread on one log.
    for threads in [1, 8] {
        let store = RocksStore::open(root.path().join(format!("parallel-{threads}")))?;
        let logs = (0..threads)
            .map(|i| store.log::<KeyValue>(&format!("log-{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        print(&workloads::parallel_append(logs, sizes.parallel_batches)?);
    }
    Ok(())
}
