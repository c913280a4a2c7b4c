//! `paxstore bench`: the shared workloads of `paxstore_workloads` over chosen backends,
//! one table, ratios to the first backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use omnipaxos::storage::StorageResult;
use paxstore::cluster::SharedStorage;
use paxstore::{AnyStorage, Backend, StorageSpec, StoreOptions, SyncPolicy, Syntax};
use paxstore_core::kv::KeyValue;
use paxstore_core::MemoryStorage;
use paxstore_workloads::{self as workloads, human_bytes, Measurement, Sizes};

/// How big a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Size {
    /// A few seconds per backend: checks that everything runs.
    Quick,
    /// Under a minute per backend: 200,000-entry log, 20,000-entry trims.
    Medium,
    /// The sizes of the backend issues' bars: 1M-entry log, 100,000-entry trims, 1 MiB
    /// snapshots (minutes per backend).
    Full,
}

/// Arguments of `paxstore bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Backends to compare, comma-separated; ratios are to the first. Default: every
    /// backend this build includes (persistent ones first).
    #[arg(long, value_delimiter = ',', value_parser = crate::parse_backend)]
    backends: Vec<Backend>,
    /// Run size.
    #[arg(long, value_enum, default_value_t = Size::Medium)]
    size: Size,
    /// Where the stores are created (must be a real disk: fsync matters): bench creates a
    /// fresh subdirectory `paxstore-bench-XXXXXX` in it (and `DIR` itself if missing), works
    /// only there and removes it at the end; nothing else in `DIR` is touched. Default: the
    /// system's temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also print the machine-readable `RESULT ...` line of every measurement.
    #[arg(long)]
    raw: bool,
}

fn sizes(size: Size) -> Sizes {
    match size {
        Size::Quick => Sizes::quick(),
        Size::Full => Sizes::full(),
        Size::Medium => Sizes {
            append_batches: 300,
            trim_entries: 20_000,
            trim_rounds: 3,
            snapshot_rounds: 5,
            snapshot_entries: 2_000,
            snapshot_bytes: 256 << 10,
            long_log_entries: 200_000,
            long_log_trim_steps: 30,
            read_windows: 5_000,
            meta_calls: 50_000,
            reopens: 3,
            parallel_batches: 300,
        },
    }
}

type MemoryDisks = BTreeMap<PathBuf, SharedStorage<MemoryStorage<KeyValue>>>;

/// Runs every workload on `backend` under `root`.
fn run_backend(backend: Backend, root: &Path, sizes: &Sizes) -> StorageResult<Vec<Measurement>> {
    std::fs::create_dir_all(root)?;
    if backend == Backend::Memory {
        // "Reopening" a memory store returns the same data: the long-log scenario checks it.
        let mut disks = MemoryDisks::new();
        let mut open = move |dir: &Path| -> StorageResult<SharedStorage<MemoryStorage<KeyValue>>> {
            std::fs::create_dir_all(dir)?;
            Ok(disks
                .entry(dir.to_path_buf())
                .or_insert_with(|| SharedStorage::new(MemoryStorage::new()))
                .clone())
        };
        let mut store = open(&root.join("append-relaxed"))?;
        let mut relaxed = workloads::durable_append(&mut store, sizes.append_batches)?;
        relaxed.name = "append_not_durable".into();
        let mut out = workloads::run_single_log(root, open, |_| Ok(()), sizes)?;
        out.insert(1, relaxed);
        return Ok(out);
    }
    let open_with = |dir: &Path, sync: SyncPolicy| -> StorageResult<AnyStorage<KeyValue>> {
        Ok(AnyStorage::open_spec(
            &backend.spec(dir),
            StoreOptions::new().sync(sync),
        )?)
    };
    let mut store = open_with(&root.join("append-relaxed"), SyncPolicy::Never)?;
    let mut relaxed = workloads::durable_append(&mut store, sizes.append_batches)?;
    relaxed.name = "append_not_durable".into();
    drop(store);
    let reclaim = |s: &mut AnyStorage<KeyValue>| -> StorageResult<()> { Ok(s.reclaim()?) };
    let mut out = workloads::run_single_log(
        root,
        |dir: &Path| open_with(dir, SyncPolicy::Always),
        reclaim,
        sizes,
    )?;
    out.insert(1, relaxed);
    out.extend(parallel(backend, root, sizes)?);
    Ok(out)
}

/// `parallel_append` with 1 thread on 1 log and 8 threads on 8 logs, durable: for `files`,
/// each log in a directory of its own; for `files-multi` and `rocks`, the logs of one store
/// (`<name>:<dir>#log-<k>`), which share its stream and group commit.
fn parallel(backend: Backend, root: &Path, sizes: &Sizes) -> StorageResult<Vec<Measurement>> {
    let options = StoreOptions::new().sync(SyncPolicy::Always);
    let mut out = Vec::new();
    for threads in [1, 8] {
        let dir = root.join(format!("parallel-{threads}"));
        let specs = (0..threads)
            .map(|k| match backend.syntax() {
                Syntax::DirAndLog => StorageSpec::new(backend, &dir, Some(&format!("log-{k}"))),
                _ => Ok(backend.spec(&dir.join(format!("log-{k}")))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stores = specs
            .iter()
            .map(|spec| AnyStorage::<KeyValue>::open_spec(spec, options.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(workloads::parallel_append(stores, sizes.parallel_batches)?);
    }
    Ok(out)
}

fn describe(name: &str) -> String {
    match name {
        "durable_append" => "append 64 x 128 B, durable".into(),
        "append_not_durable" => "append 64 x 128 B, not synced".into(),
        "snapshot_truncate" => "snapshot-plus-truncate".into(),
        "read_windows_full" => "get_entries 64, untrimmed log".into(),
        "read_windows_trimmed" => "get_entries 64, 90% trimmed".into(),
        "reopen" => "reopen of the long log".into(),
        "trim_steps" => "trim 90% of the long log in steps".into(),
        "reclaim" => "reclaim space after the trims".into(),
        "disk_untrimmed" => "disk, long log".into(),
        "disk_trimmed" => "disk, long log 90% trimmed".into(),
        "parallel_append_1" => "append 64 x 128 B, durable, 1 log".into(),
        n if n.starts_with("parallel_append_") => {
            format!("append durable, {} threads x 1 log", &n[16..])
        }
        n if n.starts_with("trim_") => format!("trim {} entries", &n[5..]),
        n => n.replace('_', " "),
    }
}

fn per_op(m: &Measurement) -> String {
    let ns = m.per_op().as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// `paxstore bench`.
pub fn run(args: BenchArgs) -> ExitCode {
    let backends = if args.backends.is_empty() {
        Backend::enabled()
    } else {
        args.backends.clone()
    };
    let sizes = sizes(args.size);
    // Always a fresh directory of our own: bench deletes only what it created.
    let parent = match &args.dir {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("paxstore bench: creating {}: {e}", d.display());
                return ExitCode::from(2);
            }
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let temp = match tempfile::Builder::new()
        .prefix("paxstore-bench-")
        .tempdir_in(&parent)
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "paxstore bench: creating a fresh directory in {}: {e}",
                parent.display()
            );
            return ExitCode::from(2);
        }
    };
    let root = temp.path().to_path_buf();
    println!(
        "paxstore bench: {:?} sizes, backends {}, stores in {}",
        args.size,
        backends
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", "),
        root.display()
    );
    let mut results: Vec<(Backend, Vec<Measurement>)> = Vec::new();
    for &backend in &backends {
        let t = Instant::now();
        eprint!("  running {backend}...");
        // Inside our fresh directory, so new: created here, and the only thing removed below.
        let dir = root.join(backend.name());
        match run_backend(backend, &dir, &sizes) {
            Ok(ms) => {
                eprintln!(" {:.1} s", t.elapsed().as_secs_f64());
                if args.raw {
                    for m in &ms {
                        println!("{}", m.line(backend.name()));
                    }
                }
                results.push((backend, ms));
            }
            Err(e) => {
                eprintln!(" failed");
                eprintln!("paxstore bench: {backend}: {e}");
                return ExitCode::from(1);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    print_table(&results);
    ExitCode::SUCCESS
}

fn print_table(results: &[(Backend, Vec<Measurement>)]) {
    let Some((first, base)) = results.first() else {
        return;
    };
    let mut header = format!("{:<36}", "workload (time per call; ratio)");
    for (b, _) in results {
        header.push_str(&format!(" | {:>22}", b.name()));
    }
    println!();
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    // Every workload any backend ran, in the order first seen (the first backend's first):
    // `parallel_append_*` runs on some backends only.
    let mut names: Vec<&str> = Vec::new();
    for (_, ms) in results {
        for m in ms {
            if !names.contains(&m.name.as_str()) {
                names.push(&m.name);
            }
        }
    }
    for name in names {
        let m0 = base.iter().find(|m| m.name == name);
        let mut line = format!("{:<36}", describe(name));
        for (_, ms) in results {
            let Some(m) = ms.iter().find(|m| m.name == name) else {
                line.push_str(&format!(" | {:>22}", "-"));
                continue;
            };
            let cell = if m.ops == 0 {
                // a disk size: ratio of bytes, smaller is better
                let ratio = match m0 {
                    Some(m0) if m0.bytes > 0 => {
                        format!("{:.2}x", m.bytes as f64 / m0.bytes as f64)
                    }
                    _ => "-".into(),
                };
                format!("{} ({ratio})", human_bytes(m.bytes))
            } else {
                let b = m.per_op().as_secs_f64();
                let ratio = match m0 {
                    Some(m0) if b > 0.0 => format!("{:.2}x", m0.per_op().as_secs_f64() / b),
                    _ => "-".into(),
                };
                format!("{} ({ratio})", per_op(m))
            };
            line.push_str(&format!(" | {cell:>22}"));
        }
        println!("{line}");
    }
    println!();
    println!(
        "ratios: for times, how many times faster than {first} (higher is better); for disk, size \
         relative to {first} (lower is better). One run on one machine: compare ratios, not \
         absolute numbers."
    );
}
