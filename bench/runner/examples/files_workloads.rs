//! Runs the shared benchmark workloads (`paxstore-workloads`) on `FilesStorage` and prints
//! one machine-readable `RESULT` line per measurement, in the format of the baseline and
//! RocksDB runners, so that `bench/scripts/files-vs-baseline.sh` can compare them.
//!
//! ```text
//! cargo run --release -p paxstore-bench --example files_workloads [-- --quick]
//! ```
//!
//! The stores live in a temporary directory under `PAXSTORE_BENCH_DIR` (default: the system
//! temporary directory); it must be on a real disk for the durable workloads to mean anything.

use std::error::Error;

use paxstore_core::kv::KeyValue;
use paxstore_files::{FilesOptions, FilesStorage};
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
    eprintln!(
        "FilesStorage segment size: {} MiB",
        options.segment_size_bytes() >> 20
    );
    let single = workloads::run_single_log(
        root.path(),
        |dir| Ok(FilesStorage::<KeyValue>::open_with(dir, options.clone())?),
        // Dead segments are deleted in the background; "reclaim" waits for that.
        |log| Ok(log.wait_for_reclaim()?),
        &sizes,
    )?;
    single.iter().for_each(print);
    Ok(())
}
