//! Runs the shared benchmark workloads (`paxstore-workloads`) on `omnipaxos_storage`'s
//! `PersistentStorage` (RocksDB 0.21, one log per database) and prints one machine-readable
//! `RESULT` line per measurement.
//!
//! ```text
//! cd bench/baseline && CARGO_TARGET_DIR=../../target/baseline cargo run --release [-- --quick] [--only GROUPS]
//! ```
//!
//! `PersistentStorage` panics instead of returning errors when it cannot open a database;
//! that ends the run, which is all a benchmark needs.

use std::error::Error;
use std::path::Path;

use omnipaxos_storage::persistent_storage::{PersistentStorage, PersistentStorageConfig};
use paxstore_workloads::{self as workloads, Measurement, Sizes};
use paxstore_core::kv::KeyValue;

const BACKEND: &str = "baseline";

fn open(dir: &Path) -> PersistentStorage<KeyValue> {
    let path = dir.to_string_lossy().into_owned();
    PersistentStorage::open(PersistentStorageConfig::with_path(path))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let sizes = if args.iter().any(|a| a == "--quick") {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    // `--only append,trim,snapshot,long,half,parallel` runs some groups only.
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
        .prefix("paxstore-baseline-bench")
        .tempdir_in(base)?;
    let print = |m: &Measurement| println!("{}", m.line(BACKEND));

    let single = workloads::run_selected(
        root.path(),
        |dir| Ok(open(dir)),
        // PersistentStorage has no way to give trimmed space back: RocksDB compacts when it
        // happens to.
        |_| Ok(()),
        &sizes,
        selected,
    )?;
    single.iter().for_each(print);

    // One log per database: eight threads need eight databases (for reference only; the bar
    // compares paxstore's eight logs in one store with its own single log).
    if selected("parallel") {
        for threads in [1, 8] {
            let stores = (0..threads)
                .map(|i| open(&root.path().join(format!("parallel-{threads}-{i}"))))
                .collect();
            print(&workloads::parallel_append(stores, sizes.parallel_batches)?);
        }
    }
    Ok(())
}
