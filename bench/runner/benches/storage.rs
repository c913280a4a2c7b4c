//! Criterion benchmarks of the storage operations OmniPaxos performs: one group per operation,
//! one line per backend, `Throughput::Elements` in log entries.
//!
//! | group | what is timed |
//! | --- | --- |
//! | `append_durable` | `write_atomically([AppendEntries(64 x 128 B), SetDecidedIndex])`, synced |
//! | `append_not_durable` | the same with `SyncPolicy::Never` (unsafe for consensus; for comparison) |
//! | `trim` | `write_atomically([Trim(i), SetCompactedIdx(i)])` dropping 10,000 entries |
//! | `snapshot_truncate` | `write_atomically([Trim(i), SetCompactedIdx(i), SetSnapshot(64 KiB)])` over 2,000 entries |
//! | `read` | `get_entries(a, a + 64)` at random `a` in a 100,000-entry log |
//! | `reopen` | opening a store holding a 100,000-entry log (persistent backends) |
//!
//! Lines: `files`, `rocks` (feature `rocks`), `memory` (`paxstore_core::MemoryStorage`) and
//! `omnipaxos_memory` (`omnipaxos_storage::memory_storage::MemoryStorage`, the store that
//! ships with OmniPaxos) as baselines. The memory stores appear in both append groups: they
//! have no sync to skip. Everything that prepares a timed call (filling the log to trim or
//! snapshot, building the batch) runs outside the timing (`iter_batched`).
//!
//! ```text
//! cargo bench -p paxstore-bench --bench storage                   # full run (3.5 minutes here)
//! cargo bench -p paxstore-bench --features rocks --bench storage  # with the RocksDB line
//! PAXSTORE_BENCH_SHORT=1 cargo bench -p paxstore-bench --bench storage -- --quick  # short mode (75 s here)
//! cargo bench -p paxstore-bench --bench storage -- trim           # one group
//! bench/scripts/bench-tables.sh --update                          # rewrite the tables in BENCHMARKS.md
//! ```
//!
//! `PAXSTORE_BENCH_DIR` chooses where the stores are created (default: the system temporary
//! directory; it must be a real disk, since fsync is what the durable lines measure).

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::kv::{KVSnapshot, KeyValue};
use paxstore_core::SyncPolicy;
use paxstore_workloads::{self as workloads, entries, BATCH_ENTRIES as BATCH};
use tempfile::TempDir;

type Dyn = Box<dyn Storage<KeyValue>>;

/// One line of every group: a backend and how to open it.
struct Line {
    name: &'static str,
    persistent: bool,
    open: fn(&Path, SyncPolicy) -> Dyn,
}

fn lines() -> Vec<Line> {
    let mut lines = Vec::new();
    #[cfg(feature = "files")]
    lines.push(Line {
        name: "files",
        persistent: true,
        open: |dir, sync| {
            Box::new(
                paxstore_files::FilesStorage::<KeyValue>::open_with(
                    dir,
                    paxstore_files::FilesOptions::new().sync(sync),
                )
                .expect("open files store"),
            )
        },
    });
    #[cfg(feature = "rocks")]
    lines.push(Line {
        name: "rocks",
        persistent: true,
        open: |dir, sync| {
            Box::new(
                paxstore_rocks::RocksStorage::<KeyValue>::open_with(
                    dir,
                    paxstore_rocks::RocksOptions::new().sync(sync),
                )
                .expect("open rocks store"),
            )
        },
    });
    lines.push(Line {
        name: "memory",
        persistent: false,
        open: |_, _| Box::new(paxstore_core::MemoryStorage::<KeyValue>::new()),
    });
    lines.push(Line {
        name: "omnipaxos_memory",
        persistent: false,
        open: |_, _| {
            Box::new(omnipaxos_storage::memory_storage::MemoryStorage::<KeyValue>::default())
        },
    });
    lines
}

/// Short mode (`PAXSTORE_BENCH_SHORT=1`): smaller logs, shorter measurements.
fn short() -> bool {
    std::env::var_os("PAXSTORE_BENCH_SHORT").is_some_and(|v| v != "0")
}

struct Sizes {
    trim: usize,
    snapshot_entries: usize,
    snapshot_bytes: usize,
    long_log: usize,
    measure: Duration,
}

fn sizes() -> Sizes {
    if short() {
        Sizes {
            trim: 2_000,
            snapshot_entries: 500,
            snapshot_bytes: 16 << 10,
            long_log: 20_000,
            measure: Duration::from_millis(300),
        }
    } else {
        Sizes {
            trim: 10_000,
            snapshot_entries: 2_000,
            snapshot_bytes: 64 << 10,
            long_log: 100_000,
            measure: Duration::from_secs(2),
        }
    }
}

fn tempdir() -> TempDir {
    match std::env::var_os("PAXSTORE_BENCH_DIR") {
        Some(root) => {
            std::fs::create_dir_all(&root).expect("PAXSTORE_BENCH_DIR");
            tempfile::tempdir_in(root).expect("temporary directory")
        }
        None => tempfile::tempdir().expect("temporary directory"),
    }
}

/// Appends `n` entries at the end of the log, which is at `next`, in batches of 1,000
/// (set-up, never timed).
fn fill(store: &mut Dyn, next: usize, n: usize) {
    debug_assert_eq!(
        store.get_compacted_idx().unwrap() + store.get_log_len().unwrap(),
        next
    );
    workloads::fill(&mut **store, n).expect("fill");
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, s: &Sizes) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(s.measure);
}

fn append(c: &mut Criterion, group_name: &str, sync: SyncPolicy) {
    let s = sizes();
    let mut group = c.benchmark_group(group_name);
    configure(&mut group, &s);
    group.throughput(Throughput::Elements(BATCH as u64));
    for line in lines() {
        let dir = tempdir();
        let store = RefCell::new((line.open)(dir.path(), sync));
        let next = Cell::new(0usize);
        group.bench_function(line.name, |b| {
            b.iter_batched(
                || {
                    let at = next.get();
                    // Keep the log short (outside the timing): trim everything every 1,024
                    // batches so disk use stays bounded however long criterion runs.
                    if at > 0 && (at / BATCH) % 1024 == 0 {
                        store
                            .borrow_mut()
                            .write_atomically(vec![
                                StorageOp::Trim(at),
                                StorageOp::SetCompactedIdx(at),
                            ])
                            .expect("trim between samples");
                    }
                    next.set(at + BATCH);
                    vec![
                        StorageOp::AppendEntries(entries(at, BATCH)),
                        StorageOp::SetDecidedIndex(at + BATCH),
                    ]
                },
                |ops| store.borrow_mut().write_atomically(ops).expect("append"),
                // One set-up right before each timed call, so the trim above sees the log
                // as the appends left it.
                BatchSize::PerIteration,
            )
        });
        drop(store);
    }
    group.finish();
}

fn append_durable(c: &mut Criterion) {
    append(c, "append_durable", SyncPolicy::Always);
}

fn append_not_durable(c: &mut Criterion) {
    append(c, "append_not_durable", SyncPolicy::Never);
}

/// `ops(next)` is timed on a store that was just filled with `n` entries (outside the timing).
fn compaction(
    c: &mut Criterion,
    group_name: &str,
    n: usize,
    ops: impl Fn(usize, u64) -> Vec<StorageOp<KeyValue>>,
) {
    let s = sizes();
    let mut group = c.benchmark_group(group_name);
    configure(&mut group, &s);
    group.throughput(Throughput::Elements(n as u64));
    for line in lines() {
        let dir = tempdir();
        let store = RefCell::new((line.open)(dir.path(), SyncPolicy::Always));
        let next = Cell::new(0usize);
        let round = Cell::new(0u64);
        group.bench_function(line.name, |b| {
            b.iter_batched(
                || {
                    let at = next.get();
                    fill(&mut store.borrow_mut(), at, n);
                    next.set(at + n);
                    round.set(round.get() + 1);
                    ops(at + n, round.get())
                },
                |ops| {
                    store
                        .borrow_mut()
                        .write_atomically(ops)
                        .expect("compaction")
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn trim(c: &mut Criterion) {
    let n = sizes().trim;
    compaction(c, "trim", n, |i, _| {
        vec![StorageOp::Trim(i), StorageOp::SetCompactedIdx(i)]
    });
}

fn snapshot_truncate(c: &mut Criterion) {
    let s = sizes();
    let bytes = s.snapshot_bytes;
    compaction(
        c,
        "snapshot_truncate",
        s.snapshot_entries,
        move |i, round| {
            let mut snapshot = KVSnapshot::sized(16, bytes);
            snapshot
                .snapshotted
                .insert("round".into(), (round, Default::default()));
            vec![
                StorageOp::Trim(i),
                StorageOp::SetCompactedIdx(i),
                StorageOp::SetSnapshot(Some(snapshot)),
            ]
        },
    );
}

fn read(c: &mut Criterion) {
    let s = sizes();
    let mut group = c.benchmark_group("read");
    configure(&mut group, &s);
    group.throughput(Throughput::Elements(BATCH as u64));
    for line in lines() {
        let dir = tempdir();
        let mut store = (line.open)(dir.path(), SyncPolicy::Never);
        fill(&mut store, 0, s.long_log);
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let span = (s.long_log - BATCH) as u64;
        group.bench_function(line.name, |b| {
            b.iter_batched(
                || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % span) as usize
                },
                |a| {
                    let got = store.get_entries(a, a + BATCH).expect("read");
                    assert_eq!(got.len(), BATCH);
                    got
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn reopen(c: &mut Criterion) {
    let s = sizes();
    let mut group = c.benchmark_group("reopen");
    configure(&mut group, &s);
    group.throughput(Throughput::Elements(s.long_log as u64));
    for line in lines().into_iter().filter(|l| l.persistent) {
        let dir = tempdir();
        let mut store = (line.open)(dir.path(), SyncPolicy::Always);
        fill(&mut store, 0, s.long_log);
        drop(store);
        group.bench_function(line.name, |b| {
            b.iter_batched(
                || (),
                // The store is returned so that closing it is not timed.
                |()| (line.open)(dir.path(), SyncPolicy::Always),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    append_durable,
    append_not_durable,
    trim,
    snapshot_truncate,
    read,
    reopen
);
criterion_main!(benches);
