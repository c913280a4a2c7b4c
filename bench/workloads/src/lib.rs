//! The benchmark workloads shared by every paxstore backend, by the `paxstore bench` command
//! and by the `omnipaxos_storage` baseline, with the helpers they need ([`fill`],
//! [`dir_size`], [`human_bytes`]).
//!
//! Each workload drives any `S: Storage<KeyValue>` the way OmniPaxos does and returns
//! [`Measurement`]s: how many calls were timed, how many entries they covered, how long the
//! timed calls took in total (set-up is never timed) and, for disk workloads, bytes. Nothing
//! here asserts a timing: comparisons are ratios computed by whoever runs two backends in one
//! go (`bench/scripts/rocks-vs-baseline.sh` in this repository).
//!
//! The crate depends on no storage engine, so that a crate which links another RocksDB
//! version than the workspace (the `omnipaxos_storage` baseline, `bench/baseline`) runs the
//! very same code.
//!
//! ```
//! use paxstore_workloads as workloads;
//! use paxstore_core::{kv::KeyValue, MemoryStorage};
//! let mut store = MemoryStorage::<KeyValue>::new();
//! let m = workloads::durable_append(&mut store, 10).unwrap();
//! assert_eq!((m.ops, m.elements), (10, 640));
//! println!("{}", m.line("memory"));
//! ```

#![deny(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use omnipaxos::storage::{Storage, StorageOp, StorageResult};
use paxstore_core::kv::{KVSnapshot, KeyValue};

/// Entries per durable append batch.
pub const BATCH_ENTRIES: usize = 64;
/// Payload bytes per entry.
pub const PAYLOAD_BYTES: usize = 128;
/// Size of the snapshot written by [`snapshot_truncate`].
pub const SNAPSHOT_BYTES: usize = 1 << 20;
/// Entries per read window.
pub const WINDOW: usize = 64;
/// Entries per batch when a workload fills a log as set-up (not timed).
pub const FILL_BATCH: usize = 1000;

/// The outcome of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// The workload's name (stable: scripts match on it).
    pub name: String,
    /// Timed calls.
    pub ops: u64,
    /// Entries the timed calls covered (appended, trimmed, read), or calls for metadata reads.
    pub elements: u64,
    /// Total wall time of the timed calls.
    pub elapsed: Duration,
    /// The median time of one timed call, for workloads that time each call on its own (the
    /// mean otherwise). Robust against the stalls a shared machine adds to a few calls.
    pub median: Duration,
    /// Bytes, for disk workloads (0 otherwise).
    pub bytes: u64,
}

impl Measurement {
    /// A measurement of `ops` operations moving `elements` elements in `elapsed` (the median
    /// per op is `elapsed / ops`).
    pub fn timed(name: impl Into<String>, ops: u64, elements: u64, elapsed: Duration) -> Self {
        Measurement {
            name: name.into(),
            ops,
            elements,
            elapsed,
            median: if ops == 0 {
                Duration::ZERO
            } else {
                elapsed / ops as u32
            },
            bytes: 0,
        }
    }

    /// A measurement from the times of each call.
    fn sampled(name: impl Into<String>, elements: u64, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
        Measurement {
            median,
            ..Measurement::timed(name, samples.len() as u64, elements, samples.iter().sum())
        }
    }

    fn disk(name: impl Into<String>, bytes: u64) -> Self {
        Measurement {
            name: name.into(),
            ops: 0,
            elements: 0,
            elapsed: Duration::ZERO,
            median: Duration::ZERO,
            bytes,
        }
    }

    /// Mean time per timed call.
    pub fn per_op(&self) -> Duration {
        if self.ops == 0 {
            Duration::ZERO
        } else {
            self.elapsed / self.ops as u32
        }
    }

    /// Elements per second over the timed calls (0 when nothing was timed).
    pub fn elements_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.elements as f64 / secs
        } else {
            0.0
        }
    }

    /// One machine-readable line:
    /// `RESULT backend=B workload=W ops=N elements=N nanos=N bytes=N median_nanos=N`.
    pub fn line(&self, backend: &str) -> String {
        format!(
            "RESULT backend={backend} workload={} ops={} elements={} nanos={} bytes={} median_nanos={}",
            self.name,
            self.ops,
            self.elements,
            self.elapsed.as_nanos(),
            self.bytes,
            self.median.as_nanos()
        )
    }
}

/// The sizes of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// Durable append batches ([`BATCH_ENTRIES`] entries each).
    pub append_batches: usize,
    /// Entries per trim in [`trim`].
    pub trim_entries: usize,
    /// Trims timed in [`trim`].
    pub trim_rounds: usize,
    /// Snapshot-plus-truncate batches timed.
    pub snapshot_rounds: usize,
    /// Entries appended (and truncated) before each snapshot.
    pub snapshot_entries: usize,
    /// Bytes of each snapshot.
    pub snapshot_bytes: usize,
    /// Entries of the long log of [`long_log`].
    pub long_log_entries: usize,
    /// Trim steps taking the long log to 10% of its length.
    pub long_log_trim_steps: usize,
    /// Random windows read per read measurement.
    pub read_windows: usize,
    /// Calls per metadata getter measurement.
    pub meta_calls: usize,
    /// Reopens timed.
    pub reopens: usize,
    /// Batches per thread in [`parallel_append`].
    pub parallel_batches: usize,
}

impl Sizes {
    /// The sizes of the issue's bars: 1M-entry log, 100,000-entry trims, 1 MiB snapshots.
    pub fn full() -> Self {
        Sizes {
            append_batches: 2000,
            trim_entries: 100_000,
            trim_rounds: 10,
            snapshot_rounds: 20,
            snapshot_entries: 10_000,
            snapshot_bytes: SNAPSHOT_BYTES,
            long_log_entries: 1_000_000,
            long_log_trim_steps: 90,
            read_windows: 20_000,
            meta_calls: 200_000,
            reopens: 5,
            parallel_batches: 500,
        }
    }

    /// Small sizes, for checking that a backend runs the workloads at all.
    pub fn quick() -> Self {
        Sizes {
            append_batches: 20,
            trim_entries: 2_000,
            trim_rounds: 2,
            snapshot_rounds: 2,
            snapshot_entries: 500,
            snapshot_bytes: 64 << 10,
            long_log_entries: 20_000,
            long_log_trim_steps: 9,
            read_windows: 200,
            meta_calls: 1_000,
            reopens: 2,
            parallel_batches: 10,
        }
    }
}

/// The `i`-th entry of every workload: [`PAYLOAD_BYTES`] bytes of payload, 1024 distinct
/// keys.
pub fn entry(i: usize) -> KeyValue {
    sized_entry(i, PAYLOAD_BYTES)
}

/// The `i`-th entry with `payload` bytes of payload (key `key-{i % 1024}`, value `i`).
pub fn sized_entry(i: usize, payload: usize) -> KeyValue {
    KeyValue::new(format!("key-{}", i % 1024), i as u64, payload)
}

/// Entries `from..from + n` ([`entry`]).
pub fn entries(from: usize, n: usize) -> Vec<KeyValue> {
    (from..from + n).map(entry).collect()
}

/// One append batch as a leader writes it: `[AppendEntries(entries next..next + n of
/// payload bytes), SetDecidedIndex(next + n)]`.
pub fn append_batch(next: usize, n: usize, payload: usize) -> Vec<StorageOp<KeyValue>> {
    vec![
        StorageOp::AppendEntries((next..next + n).map(|i| sized_entry(i, payload)).collect()),
        StorageOp::SetDecidedIndex(next + n),
    ]
}

/// The log bounds `[first, next)` as seen through the trait: the workloads always set the
/// compacted index to the trim point, so it is `first`.
fn bounds<S: Storage<KeyValue> + ?Sized>(store: &S) -> StorageResult<(usize, usize)> {
    let first = store.get_compacted_idx()?;
    Ok((first, first + store.get_log_len()?))
}

/// Appends `n` entries ([`entry`]) at the end of the log in batches of [`FILL_BATCH`]
/// (set-up, not timed).
pub fn fill<S: Storage<KeyValue> + ?Sized>(store: &mut S, n: usize) -> StorageResult<()> {
    fill_batched(store, n, FILL_BATCH, PAYLOAD_BYTES)
}

/// Appends `n` entries of `payload` bytes at the end of the log, `batch` entries per
/// [`append_batch`] (set-up, not timed).
pub fn fill_batched<S: Storage<KeyValue> + ?Sized>(
    store: &mut S,
    n: usize,
    batch: usize,
    payload: usize,
) -> StorageResult<()> {
    let (_, mut next) = bounds(store)?;
    let end = next + n;
    while next < end {
        let k = batch.min(end - next);
        store.write_atomically(append_batch(next, k, payload))?;
        next += k;
    }
    Ok(())
}

/// Durable append as a leader does it: `batches` calls of
/// `write_atomically([AppendEntries(64 entries of 128 bytes), SetDecidedIndex])`.
pub fn durable_append<S: Storage<KeyValue>>(
    store: &mut S,
    batches: usize,
) -> StorageResult<Measurement> {
    let (_, mut next) = bounds(store)?;
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let batch = entries(next, BATCH_ENTRIES);
        let ops = vec![
            StorageOp::AppendEntries(batch),
            StorageOp::SetDecidedIndex(next + BATCH_ENTRIES),
        ];
        let t = Instant::now();
        store.write_atomically(ops)?;
        samples.push(t.elapsed());
        next += BATCH_ENTRIES;
    }
    Ok(Measurement::sampled(
        "durable_append",
        (batches * BATCH_ENTRIES) as u64,
        samples,
    ))
}

/// Trim as OmniPaxos does it, `rounds` times: append `entries` entries (not timed), then time
/// `write_atomically([Trim(i), SetCompactedIdx(i)])` dropping exactly those entries.
pub fn trim<S: Storage<KeyValue>>(
    store: &mut S,
    entries: usize,
    rounds: usize,
) -> StorageResult<Measurement> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        fill(store, entries)?;
        let (first, next) = bounds(store)?;
        let to = first + entries;
        check(
            to == next,
            "trim: the log does not hold the entries just appended",
        )?;
        let t = Instant::now();
        store.write_atomically(vec![StorageOp::Trim(to), StorageOp::SetCompactedIdx(to)])?;
        samples.push(t.elapsed());
        check(
            store.get_log_len()? == 0,
            "trim: entries left after the trim",
        )?;
    }
    Ok(Measurement::sampled(
        format!("trim_{entries}"),
        (rounds * entries) as u64,
        samples,
    ))
}

/// Snapshot-plus-truncate as OmniPaxos does it, `rounds` times: append `entries` entries
/// (not timed), then time `write_atomically([Trim(i), SetCompactedIdx(i),
/// SetSnapshot(Some(s))])` with a snapshot of `snapshot_bytes`.
pub fn snapshot_truncate<S: Storage<KeyValue>>(
    store: &mut S,
    entries: usize,
    snapshot_bytes: usize,
    rounds: usize,
) -> StorageResult<Measurement> {
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        fill(store, entries)?;
        let (_, next) = bounds(store)?;
        let mut snapshot = KVSnapshot::sized(64, snapshot_bytes);
        // a different snapshot each round
        snapshot
            .snapshotted
            .insert("round".into(), (round as u64, Default::default()));
        let ops = vec![
            StorageOp::Trim(next),
            StorageOp::SetCompactedIdx(next),
            StorageOp::SetSnapshot(Some(snapshot)),
        ];
        let t = Instant::now();
        store.write_atomically(ops)?;
        samples.push(t.elapsed());
    }
    check(
        store.get_snapshot()?.is_some(),
        "snapshot_truncate: no snapshot after the batches",
    )?;
    Ok(Measurement::sampled(
        "snapshot_truncate",
        (rounds * entries) as u64,
        samples,
    ))
}

/// A deterministic pseudo-random sequence (xorshift).
fn next_random(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Times `windows` calls of `get_entries(a, a + 64)` at random `a` within the log, and
/// checks each returns the 64 entries asked for (a read returning nothing would otherwise
/// look fast).
pub fn read_windows<S: Storage<KeyValue>>(
    store: &S,
    name: &str,
    windows: usize,
) -> StorageResult<Measurement> {
    let (first, next) = bounds(store)?;
    check(
        next - first >= WINDOW,
        "read_windows: the log is shorter than a window",
    )?;
    let span = (next - first - WINDOW + 1) as u64;
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let starts: Vec<usize> = (0..windows)
        .map(|_| first + (next_random(&mut seed) % span) as usize)
        .collect();
    let mut samples = Vec::with_capacity(windows);
    for &a in &starts {
        let t = Instant::now();
        let got = store.get_entries(a, a + WINDOW)?;
        samples.push(t.elapsed());
        check(
            got.len() == WINDOW && got[0].value == a as u64,
            "read_windows: a window came back wrong",
        )?;
    }
    Ok(Measurement::sampled(
        name,
        (windows * WINDOW) as u64,
        samples,
    ))
}

/// Times `calls` calls of `get_log_len` and of `get_compacted_idx`.
pub fn metadata_reads<S: Storage<KeyValue>>(
    store: &S,
    calls: usize,
) -> StorageResult<Vec<Measurement>> {
    let expected_len = store.get_log_len()?;
    let expected_compacted = store.get_compacted_idx()?;
    let mut agree = true;
    let t = Instant::now();
    for _ in 0..calls {
        agree &= std::hint::black_box(store.get_log_len()?) == expected_len;
    }
    let len_elapsed = t.elapsed();
    let t = Instant::now();
    for _ in 0..calls {
        agree &= std::hint::black_box(store.get_compacted_idx()?) == expected_compacted;
    }
    let compacted_elapsed = t.elapsed();
    check(agree, "metadata_reads: a getter changed its answer")?;
    Ok(vec![
        Measurement::timed("get_log_len", calls as u64, calls as u64, len_elapsed),
        Measurement::timed(
            "get_compacted_idx",
            calls as u64,
            calls as u64,
            compacted_elapsed,
        ),
    ])
}

/// The apparent size in bytes of every file under `path`, recursively (what a store occupies
/// on disk). A missing path counts as 0.
pub fn dir_size(path: &Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// `bytes` in human units (`512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`): the one in
/// `paxstore_core::verify`, which the backends' reports use.
pub use paxstore_core::verify::human_bytes;

/// The long-log scenario, in directory `dir` (opened with `open`):
///
/// 1. fill a log with `long_log_entries` entries; read random windows (`read_windows_full`);
/// 2. close and reopen (`disk_untrimmed`: the directory size after that reopen);
/// 3. reopen `reopens` more times (`reopen`, the time of `open`);
/// 4. trim 90% in `long_log_trim_steps` OmniPaxos trim batches (`trim_steps`), then call
///    `reclaim` (`reclaim`: the backend's own space reclamation, a no-op if it has none);
/// 5. read random windows of what is left (`read_windows_trimmed`), time the metadata
///    getters (`get_log_len`, `get_compacted_idx`);
/// 6. close and reopen (`disk_trimmed`: the directory size after that reopen).
pub fn long_log<S, O, R>(
    dir: &Path,
    mut open: O,
    mut reclaim: R,
    sizes: &Sizes,
) -> StorageResult<Vec<Measurement>>
where
    S: Storage<KeyValue>,
    O: FnMut(&Path) -> StorageResult<S>,
    R: FnMut(&mut S) -> StorageResult<()>,
{
    let mut out = Vec::new();
    let mut store = open(dir)?;
    fill(&mut store, sizes.long_log_entries)?;
    out.push(read_windows(
        &store,
        "read_windows_full",
        sizes.read_windows,
    )?);

    drop(store);
    let mut store = open(dir)?;
    out.push(Measurement::disk("disk_untrimmed", dir_size(dir)?));
    let mut reopens = Vec::with_capacity(sizes.reopens);
    for _ in 0..sizes.reopens {
        drop(store);
        let t = Instant::now();
        store = open(dir)?;
        reopens.push(t.elapsed());
    }
    out.push(Measurement::sampled(
        "reopen",
        sizes.reopens as u64,
        reopens,
    ));
    check(
        store.get_log_len()? == sizes.long_log_entries,
        "long_log: the reopened log lost entries",
    )?;

    let to_trim = sizes.long_log_entries / 10 * 9;
    let steps = sizes.long_log_trim_steps.max(1);
    let mut trims = Vec::with_capacity(steps);
    for step in 1..=steps {
        let i = to_trim * step / steps;
        let t = Instant::now();
        store.write_atomically(vec![StorageOp::Trim(i), StorageOp::SetCompactedIdx(i)])?;
        trims.push(t.elapsed());
    }
    out.push(Measurement::sampled("trim_steps", to_trim as u64, trims));
    let t = Instant::now();
    reclaim(&mut store)?;
    out.push(Measurement::timed(
        "reclaim",
        1,
        to_trim as u64,
        t.elapsed(),
    ));

    out.push(read_windows(
        &store,
        "read_windows_trimmed",
        sizes.read_windows,
    )?);
    out.extend(metadata_reads(&store, sizes.meta_calls)?);

    drop(store);
    let store = open(dir)?;
    out.push(Measurement::disk("disk_trimmed", dir_size(dir)?));
    check(
        store.get_log_len()? == sizes.long_log_entries - to_trim,
        "long_log: the trimmed log has the wrong length after reopen",
    )?;
    Ok(out)
}

/// One thread per store, each doing `batches` durable appends like [`durable_append`], all
/// started together: the measurement is the wall time until the last finished, with
/// `elements` the entries appended by all threads together. Run it with one store for the
/// single-thread reference.
pub fn parallel_append<S>(stores: Vec<S>, batches: usize) -> StorageResult<Measurement>
where
    S: Storage<KeyValue> + Send,
{
    let threads = stores.len();
    let barrier = std::sync::Barrier::new(threads + 1);
    let (elapsed, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .into_iter()
            .map(|mut store| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<(), String> {
                    let prepared: Result<Vec<_>, String> = bounds(&store)
                        .map(|(_, next)| {
                            (0..batches)
                                .map(|b| {
                                    let at = next + b * BATCH_ENTRIES;
                                    vec![
                                        StorageOp::AppendEntries(entries(at, BATCH_ENTRIES)),
                                        StorageOp::SetDecidedIndex(at + BATCH_ENTRIES),
                                    ]
                                })
                                .collect()
                        })
                        .map_err(|e| e.to_string());
                    // Wait even after an error, so that the other threads are released.
                    barrier.wait();
                    for ops in prepared? {
                        store.write_atomically(ops).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let results: Vec<Result<(), String>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a writer panicked".into())))
            .collect();
        (t.elapsed(), results)
    });
    for r in results {
        r?;
    }
    Ok(Measurement::timed(
        format!("parallel_append_{threads}"),
        (threads * batches) as u64,
        (threads * batches * BATCH_ENTRIES) as u64,
        elapsed,
    ))
}

/// Runs every single-log workload, each in its own subdirectory of `root`: durable append,
/// trim, snapshot-plus-truncate, the long-log scenario (see [`long_log`]) and the half-trimmed
/// reopen (see [`reopen_half_trimmed`]).
pub fn run_single_log<S, O, R>(
    root: &Path,
    open: O,
    reclaim: R,
    sizes: &Sizes,
) -> StorageResult<Vec<Measurement>>
where
    S: Storage<KeyValue>,
    O: FnMut(&Path) -> StorageResult<S>,
    R: FnMut(&mut S) -> StorageResult<()>,
{
    run_selected(root, open, reclaim, sizes, |_| true)
}

/// The groups of [`run_selected`], in the order they run.
pub const GROUPS: [&str; 5] = ["append", "trim", "snapshot", "long", "half"];

/// Like [`run_single_log`], running only the groups of [`GROUPS`] for which `selected`
/// returns true: `append` ([`durable_append`]), `trim` ([`trim`]), `snapshot`
/// ([`snapshot_truncate`]), `long` ([`long_log`]), `half` ([`reopen_half_trimmed`]).
pub fn run_selected<S, O, R>(
    root: &Path,
    mut open: O,
    mut reclaim: R,
    sizes: &Sizes,
    selected: impl Fn(&str) -> bool,
) -> StorageResult<Vec<Measurement>>
where
    S: Storage<KeyValue>,
    O: FnMut(&Path) -> StorageResult<S>,
    R: FnMut(&mut S) -> StorageResult<()>,
{
    let mut out = Vec::new();
    if selected("append") {
        let mut store = open(&root.join("append"))?;
        out.push(durable_append(&mut store, sizes.append_batches)?);
    }
    if selected("trim") {
        let mut store = open(&root.join("trim"))?;
        out.push(trim(&mut store, sizes.trim_entries, sizes.trim_rounds)?);
    }
    if selected("snapshot") {
        let mut store = open(&root.join("snapshot"))?;
        out.push(snapshot_truncate(
            &mut store,
            sizes.snapshot_entries,
            sizes.snapshot_bytes,
            sizes.snapshot_rounds,
        )?);
    }
    if selected("long") {
        out.extend(long_log(
            &root.join("long"),
            &mut open,
            &mut reclaim,
            sizes,
        )?);
    }
    if selected("half") {
        let half_trimmed = (sizes.long_log_entries / 5).max(2);
        out.extend(reopen_half_trimmed(
            &root.join("half-trimmed"),
            &mut open,
            &mut reclaim,
            half_trimmed,
            sizes.reopens,
        )?);
    }
    Ok(out)
}

/// The reopen scenario of the segment-file issue, in directory `dir`: fill a log with
/// `entries` entries, trim the first half in one OmniPaxos trim batch and call `reclaim`
/// (`trim_half`: the time of that trim; `disk_before_half_trim` / `disk_half_trimmed`: the
/// directory size before it and after the reclaim), close it, then time `reopens` opens
/// (`reopen_half_trimmed`).
pub fn reopen_half_trimmed<S, O, R>(
    dir: &Path,
    mut open: O,
    mut reclaim: R,
    entries: usize,
    reopens: usize,
) -> StorageResult<Vec<Measurement>>
where
    S: Storage<KeyValue>,
    O: FnMut(&Path) -> StorageResult<S>,
    R: FnMut(&mut S) -> StorageResult<()>,
{
    let mut out = Vec::new();
    let mut store = open(dir)?;
    fill(&mut store, entries)?;
    out.push(Measurement::disk("disk_before_half_trim", dir_size(dir)?));
    let half = entries / 2;
    let t = Instant::now();
    store.write_atomically(vec![
        StorageOp::Trim(half),
        StorageOp::SetCompactedIdx(half),
    ])?;
    out.push(Measurement::timed("trim_half", 1, half as u64, t.elapsed()));
    reclaim(&mut store)?;
    drop(store);
    out.push(Measurement::disk("disk_half_trimmed", dir_size(dir)?));
    let mut samples = Vec::with_capacity(reopens);
    for _ in 0..reopens {
        let t = Instant::now();
        let store = open(dir)?;
        samples.push(t.elapsed());
        check(
            store.get_log_len()? == entries - half,
            "reopen_half_trimmed: wrong length after reopen",
        )?;
    }
    out.push(Measurement::sampled(
        "reopen_half_trimmed",
        reopens as u64,
        samples,
    ));
    Ok(out)
}

fn check(ok: bool, what: &str) -> StorageResult<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnipaxos::ballot_leader_election::Ballot;
    use omnipaxos::storage::StopSign;
    use paxstore_core::MemoryStorage;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::rc::Rc;

    /// A memory store that "persists" across reopens: dropping it puts its state back in a
    /// map keyed by directory, opening takes it out again.
    struct Reopenable {
        dir: PathBuf,
        store: MemoryStorage<KeyValue>,
        disks: Rc<RefCell<HashMap<PathBuf, MemoryStorage<KeyValue>>>>,
    }

    impl Drop for Reopenable {
        fn drop(&mut self) {
            let store = std::mem::take(&mut self.store);
            self.disks.borrow_mut().insert(self.dir.clone(), store);
        }
    }

    impl Storage<KeyValue> for Reopenable {
        fn write_atomically(&mut self, ops: Vec<StorageOp<KeyValue>>) -> StorageResult<()> {
            self.store.write_atomically(ops)
        }
        fn append_entry(&mut self, e: KeyValue) -> StorageResult<()> {
            self.store.append_entry(e)
        }
        fn append_entries(&mut self, v: Vec<KeyValue>) -> StorageResult<()> {
            self.store.append_entries(v)
        }
        fn append_on_prefix(&mut self, i: usize, v: Vec<KeyValue>) -> StorageResult<()> {
            self.store.append_on_prefix(i, v)
        }
        fn set_promise(&mut self, b: Ballot) -> StorageResult<()> {
            self.store.set_promise(b)
        }
        fn set_decided_idx(&mut self, i: usize) -> StorageResult<()> {
            self.store.set_decided_idx(i)
        }
        fn get_decided_idx(&self) -> StorageResult<usize> {
            self.store.get_decided_idx()
        }
        fn set_accepted_round(&mut self, b: Ballot) -> StorageResult<()> {
            self.store.set_accepted_round(b)
        }
        fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
            self.store.get_accepted_round()
        }
        fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<KeyValue>> {
            self.store.get_entries(from, to)
        }
        fn get_log_len(&self) -> StorageResult<usize> {
            self.store.get_log_len()
        }
        fn get_suffix(&self, from: usize) -> StorageResult<Vec<KeyValue>> {
            self.store.get_suffix(from)
        }
        fn get_promise(&self) -> StorageResult<Option<Ballot>> {
            self.store.get_promise()
        }
        fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
            self.store.set_stopsign(s)
        }
        fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
            self.store.get_stopsign()
        }
        fn trim(&mut self, i: usize) -> StorageResult<()> {
            self.store.trim(i)
        }
        fn set_compacted_idx(&mut self, i: usize) -> StorageResult<()> {
            self.store.set_compacted_idx(i)
        }
        fn get_compacted_idx(&self) -> StorageResult<usize> {
            self.store.get_compacted_idx()
        }
        fn set_snapshot(&mut self, s: Option<KVSnapshot>) -> StorageResult<()> {
            self.store.set_snapshot(s)
        }
        fn get_snapshot(&self) -> StorageResult<Option<KVSnapshot>> {
            self.store.get_snapshot()
        }
    }

    #[test]
    fn single_log_workloads_measure_what_they_say() {
        let root = tempfile::tempdir().unwrap();
        let disks = Rc::new(RefCell::new(HashMap::new()));
        let open = |dir: &Path| -> StorageResult<Reopenable> {
            std::fs::create_dir_all(dir)?;
            let store = disks.borrow_mut().remove(dir).unwrap_or_default();
            Ok(Reopenable {
                dir: dir.to_path_buf(),
                store,
                disks: Rc::clone(&disks),
            })
        };
        let mut reclaims = 0;
        let sizes = Sizes::quick();
        let out = run_single_log(
            root.path(),
            open,
            |_: &mut Reopenable| {
                reclaims += 1;
                Ok(())
            },
            &sizes,
        )
        .unwrap();
        // once in the long-log scenario, once in the half-trimmed reopen
        assert_eq!(reclaims, 2);
        let names: Vec<&str> = out.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "durable_append",
                "trim_2000",
                "snapshot_truncate",
                "read_windows_full",
                "disk_untrimmed",
                "reopen",
                "trim_steps",
                "reclaim",
                "read_windows_trimmed",
                "get_log_len",
                "get_compacted_idx",
                "disk_trimmed",
                "disk_before_half_trim",
                "trim_half",
                "disk_half_trimmed",
                "reopen_half_trimmed",
            ]
        );
        let append = &out[0];
        assert_eq!(append.ops, sizes.append_batches as u64);
        assert!(append.median > Duration::ZERO && append.median <= append.elapsed);
        assert_eq!(
            append.elements,
            (sizes.append_batches * BATCH_ENTRIES) as u64
        );
        assert!(append.elapsed > Duration::ZERO);
        assert_eq!(
            out[1].elements,
            (sizes.trim_entries * sizes.trim_rounds) as u64
        );
        assert_eq!(out[6].elements, (sizes.long_log_entries / 10 * 9) as u64);
        let disks = disks.borrow();
        let long = &disks[&root.path().join("long")];
        assert_eq!(long.get_log_len().unwrap(), sizes.long_log_entries / 10);
        assert_eq!(
            long.get_compacted_idx().unwrap(),
            sizes.long_log_entries / 10 * 9
        );
    }

    #[test]
    fn selected_groups_only() {
        let root = tempfile::tempdir().unwrap();
        let out = run_selected(
            root.path(),
            |_: &Path| Ok(MemoryStorage::<KeyValue>::new()),
            |_: &mut MemoryStorage<KeyValue>| Ok(()),
            &Sizes::quick(),
            |g| g == "trim" || g == "snapshot",
        )
        .unwrap();
        let names: Vec<&str> = out.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["trim_2000", "snapshot_truncate"]);
    }

    #[test]
    fn medians_and_lines() {
        let ms = |v: &[u64]| v.iter().map(|&n| Duration::from_nanos(n)).collect();
        let m = Measurement::sampled("w", 30, ms(&[5, 1, 1000, 2, 3]));
        assert_eq!(
            (m.ops, m.elapsed, m.median),
            (5, Duration::from_nanos(1011), Duration::from_nanos(3))
        );
        assert_eq!(
            m.line("b"),
            "RESULT backend=b workload=w ops=5 elements=30 nanos=1011 bytes=0 median_nanos=3"
        );
        let t = Measurement::timed("t", 4, 4, Duration::from_nanos(400));
        assert_eq!(t.median, Duration::from_nanos(100));
    }

    #[test]
    fn a_store_that_forgets_on_reopen_fails_the_long_log() {
        let dir = tempfile::tempdir().unwrap();
        let result = long_log(
            dir.path(),
            |_: &Path| Ok(MemoryStorage::<KeyValue>::new()),
            |_: &mut MemoryStorage<KeyValue>| Ok(()),
            &Sizes::quick(),
        );
        assert!(result.is_err());
    }

    #[test]
    fn parallel_and_metadata_workloads() {
        let m = parallel_append(vec![MemoryStorage::<KeyValue>::new(); 3], 4).unwrap();
        assert_eq!((m.ops, m.elements), (12, 12 * 64));
        assert!(m
            .line("memory")
            .starts_with("RESULT backend=memory workload=parallel_append_3 ops=12 elements=768 "));
        let mut store = MemoryStorage::<KeyValue>::new();
        fill(&mut store, 100).unwrap();
        let ms = metadata_reads(&store, 10).unwrap();
        assert_eq!(ms[0].name, "get_log_len");
        assert_eq!(ms[1].ops, 10);
        // a log shorter than a window cannot be read in windows
        let mut short = MemoryStorage::<KeyValue>::new();
        fill(&mut short, 10).unwrap();
        assert!(read_windows(&short, "r", 5).is_err());
    }

    #[test]
    fn missing_dir_is_empty() {
        assert_eq!(dir_size(Path::new("/nonexistent/paxstore")).unwrap(), 0);
    }

    #[test]
    fn fill_appends_at_the_end_in_batches() {
        let mut store = MemoryStorage::<KeyValue>::new();
        fill(&mut store, 1500).unwrap();
        fill_batched(&mut store, 10, 4, 16).unwrap();
        assert_eq!(store.get_log_len().unwrap(), 1510);
        assert_eq!(store.get_decided_idx().unwrap(), 1510);
        let got = store.get_entries(1499, 1501).unwrap();
        assert_eq!(
            (got[0].clone(), got[1].clone()),
            (entry(1499), sized_entry(1500, 16))
        );
    }
}
