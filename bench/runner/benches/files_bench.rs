//! The segment engine against the physical limits of the disk it runs on, in one process.
//!
//! Every figure is a ratio between two things measured here, in the same run, on the same
//! disk, interleaved (A, B, A, B, A, B; the best round of each counts): absolute numbers on
//! these shared machines vary from run to run, ratios much less. Prints a Markdown table.
//!
//! ```text
//! cargo bench -p paxstore-bench --bench files_bench            # full sizes
//! cargo bench -p paxstore-bench --bench files_bench -- --quick # a short run
//! ```

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::kv::{KVSnapshot, KeyValue};
use paxstore_core::{MemoryStorage, SyncPolicy};
use paxstore_files::{FilesOptions, FilesStorage};
use paxstore_workloads::{append_batch, dir_size, fill_batched, sized_entry};

type Files = FilesStorage<KeyValue>;

struct Row {
    name: &'static str,
    ours: String,
    reference: String,
    ratio: f64,
    bar: &'static str,
    met: bool,
}

fn open(dir: &Path, opts: FilesOptions) -> Files {
    FilesStorage::open_with(dir, opts).expect("open store")
}

fn best<F: FnMut() -> Duration>(rounds: usize, mut f: F) -> Duration {
    (0..rounds).map(|_| f()).min().unwrap_or_default()
}

/// `n` appends of batches of 64 entries of 128 bytes; returns the time and bytes written.
fn files_append(policy: SyncPolicy, n: usize) -> (Duration, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FilesOptions::new().sync(policy));
    s.write_atomically(append_batch(0, 64, 128)).unwrap(); // segment created outside the timing
    let batches: Vec<_> = (1..=n).map(|k| append_batch(k * 64, 64, 128)).collect();
    let before = s.stats().bytes_written;
    let t = Instant::now();
    for b in batches {
        s.write_atomically(b).unwrap();
    }
    (t.elapsed(), s.stats().bytes_written - before)
}

/// The same bytes written by a bare loop: `write` (+ `fdatasync`), optionally into a
/// preallocated file.
fn bare_append(record: usize, n: usize, sync: bool, preallocate: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    if preallocate {
        fs4::FileExt::allocate(&f, (record * (n + 1)) as u64).unwrap();
        f.sync_all().unwrap();
    }
    let buf = vec![0x5au8; record];
    let t = Instant::now();
    for k in 0..n {
        f.write_all_at(&buf, (k * record) as u64).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
    }
    t.elapsed()
}

fn throughput(n: usize, d: Duration) -> String {
    format!("{:.0} batches/s", n as f64 / d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn durable_and_buffered_append(rows: &mut Vec<Row>, n_durable: usize, n_buffered: usize) {
    let mut ours = Duration::MAX;
    let mut bare_grow = Duration::MAX;
    let mut bare_pre = Duration::MAX;
    let mut record = 0;
    for _ in 0..3 {
        let (d, bytes) = files_append(SyncPolicy::Always, n_durable);
        ours = ours.min(d);
        record = (bytes / n_durable as u64) as usize;
        bare_grow = bare_grow.min(bare_append(record, n_durable, true, false));
        bare_pre = bare_pre.min(bare_append(record, n_durable, true, true));
    }
    let bare = bare_grow.min(bare_pre);
    rows.push(Row {
        name: "durable append, 64 × 128 B per batch",
        ours: throughput(n_durable, ours),
        reference: format!(
            "bare write+fdatasync of the same {record} B: {} (growing file {}, preallocated {})",
            throughput(n_durable, bare),
            throughput(n_durable, bare_grow),
            throughput(n_durable, bare_pre)
        ),
        ratio: bare.as_secs_f64() / ours.as_secs_f64(),
        bar: "≥ 0.8",
        met: bare.as_secs_f64() / ours.as_secs_f64() >= 0.8,
    });
    let ours = best(3, || files_append(SyncPolicy::Never, n_buffered).0);
    let bare = best(3, || bare_append(record, n_buffered, false, false));
    let ratio = bare.as_secs_f64() / ours.as_secs_f64();
    rows.push(Row {
        name: "non-durable append (SyncPolicy::Never)",
        ours: throughput(n_buffered, ours),
        reference: format!(
            "bare write loop of the same bytes: {}",
            throughput(n_buffered, bare)
        ),
        ratio,
        bar: "≥ 0.5",
        met: ratio >= 0.5,
    });
}

/// A new store in `dir` holding `n` entries of `payload` bytes, written unsynced in batches
/// of 4096 and then flushed (set-up, never timed).
fn fill(dir: &Path, opts: FilesOptions, n: usize, payload: usize) {
    let mut s = open(dir, opts.sync(SyncPolicy::Never));
    fill_batched(&mut s, n, 4096, payload).unwrap();
    drop(s);
    // The fill was not synced: flush it now so that the timed calls do not pay for it.
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .unwrap();
    }
}

fn trim(rows: &mut Vec<Row>, n: usize) {
    let seg = 4 << 20;
    let mut trim_time = Duration::MAX;
    let mut append_time = Duration::MAX;
    let (mut disk_after, mut live_after) = (0, 0);
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        fill(
            dir.path(),
            FilesOptions::new().segment_size(seg),
            n + n / 5,
            128,
        );
        let mut s = open(dir.path(), FilesOptions::new().segment_size(seg));
        let per_entry = s.stats().segment_bytes / (n + n / 5) as u64;
        let t = Instant::now();
        s.write_atomically(vec![StorageOp::Trim(n), StorageOp::SetCompactedIdx(n)])
            .unwrap();
        trim_time = trim_time.min(t.elapsed());
        s.wait_for_reclaim().unwrap();
        disk_after = dir_size(dir.path()).unwrap();
        live_after = per_entry * (n / 5) as u64;
        let big = KeyValue::new("big", 1, 8192);
        let t = Instant::now();
        s.append_entry(big).unwrap();
        append_time = append_time.min(t.elapsed());
    }
    let ratio = trim_time.as_secs_f64() / append_time.as_secs_f64();
    rows.push(Row {
        name: "trim of 100,000 entries (4 MiB segments; files deleted in the background)",
        ours: ms(trim_time),
        reference: format!("one durable 8 KiB append: {}", ms(append_time)),
        ratio,
        bar: "≤ 3 (time ratio)",
        met: ratio <= 3.0,
    });
    let bound = live_after + seg;
    rows.push(Row {
        name: "disk use after that trim",
        ours: format!("{:.1} MiB", disk_after as f64 / (1 << 20) as f64),
        reference: format!(
            "live data {:.1} MiB + one segment 4 MiB",
            live_after as f64 / (1 << 20) as f64
        ),
        ratio: disk_after as f64 / bound as f64,
        bar: "≤ 1 (of live + one segment)",
        met: disk_after <= bound,
    });
}

fn snapshot(rows: &mut Vec<Row>) {
    let snap = KVSnapshot::sized(16, 1 << 20);
    let mut ours = Duration::MAX;
    let mut bare = Duration::MAX;
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path(), FilesOptions::new());
        s.write_atomically(append_batch(0, 1000, 128)).unwrap();
        s.write_atomically(vec![
            StorageOp::Trim(100),
            StorageOp::SetCompactedIdx(100),
            StorageOp::SetSnapshot(Some(snap.clone())),
        ])
        .unwrap();
        let t = Instant::now();
        s.write_atomically(vec![
            StorageOp::Trim(500 + round),
            StorageOp::SetCompactedIdx(500 + round),
            StorageOp::SetSnapshot(Some(snap.clone())),
        ])
        .unwrap();
        ours = ours.min(t.elapsed());

        let bytes = paxstore_core::codec::encode("snapshot", &snap).unwrap();
        let log = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.path().join("bare.log"))
            .unwrap();
        let t = Instant::now();
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.path().join("bare.snap"))
            .unwrap();
        f.write_all_at(&bytes, 0).unwrap();
        f.sync_all().unwrap();
        std::fs::File::open(dir.path()).unwrap().sync_all().unwrap();
        log.write_all_at(&[1u8; 64], 0).unwrap();
        log.sync_data().unwrap();
        bare = bare.min(t.elapsed());
    }
    let ratio = ours.as_secs_f64() / bare.as_secs_f64();
    rows.push(Row {
        name: "snapshot-plus-truncate, 1 MiB snapshot",
        ours: ms(ours),
        reference: format!(
            "write 1 MiB + fsync + directory fsync + 64 B fdatasync: {}",
            ms(bare)
        ),
        ratio,
        bar: "≤ 1.5 (time ratio)",
        met: ratio <= 1.5,
    });
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn reopen_and_memory(rows: &mut Vec<Row>, small: usize, large: usize) {
    let reopen = |n: usize| -> (Duration, u64) {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), FilesOptions::new(), n, 16);
        let mut d = Duration::MAX;
        let mut index = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let s = open(dir.path(), FilesOptions::new());
            d = d.min(t.elapsed());
            // Reading the whole log loads every position table.
            let _ = s.get_entries(n - 1, n).unwrap();
            let _ = s.get_entries(0, 1).unwrap();
            index = s.stats().index_bytes;
        }
        (d, index)
    };
    let (d_small, _) = reopen(small);
    let (d_large, _) = reopen(large);
    let ratio = d_large.as_secs_f64() / d_small.as_secs_f64();
    rows.push(Row {
        name: "reopen, 10× the entries (16 B payloads)",
        ours: format!("{} entries: {}", large, ms(d_large)),
        reference: format!("{} entries: {}", small, ms(d_small)),
        ratio,
        bar: "≤ 2 (time ratio)",
        met: ratio <= 2.0,
    });

    // Memory: a writer that appended `large` entries holds every position in memory.
    let dir = tempfile::tempdir().unwrap();
    let rss_before = rss_bytes();
    let mut s = open(dir.path(), FilesOptions::new().sync(SyncPolicy::Never));
    fill_batched(&mut s, large, 4096, 16).unwrap();
    let _ = s.get_entries(0, 1).unwrap();
    let index = s.stats().index_bytes;
    let rss = rss_bytes().saturating_sub(rss_before);
    let per = index as f64 / large as f64;
    rows.push(Row {
        name: "index memory per live entry",
        ours: format!(
            "{per:.2} B ({:.1} MiB for {large} entries)",
            index as f64 / (1 << 20) as f64
        ),
        reference: format!(
            "process RSS grew {:.1} MiB while writing them",
            rss as f64 / (1 << 20) as f64
        ),
        ratio: per,
        bar: "≤ 16 B",
        met: per <= 16.0,
    });
}

fn reads(rows: &mut Vec<Row>, n: usize, windows: usize) {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), FilesOptions::new(), n, 128);
    let files = open(dir.path(), FilesOptions::new());
    let mut mem = MemoryStorage::<KeyValue>::new();
    for start in (0..n).step_by(4096) {
        mem.append_entries(
            (start..(start + 4096).min(n))
                .map(|i| sized_entry(i, 128))
                .collect(),
        )
        .unwrap();
    }
    let mut x: u64 = 0x9E37_79B9;
    let starts: Vec<usize> = (0..windows)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as usize) % (n - 64)
        })
        .collect();
    let run = |s: &dyn Fn(usize) -> usize| {
        let t = Instant::now();
        let mut total = 0;
        for &a in &starts {
            total += s(a);
        }
        assert_eq!(total, windows * 64);
        t.elapsed()
    };
    let _ = run(&|a| files.get_entries(a, a + 64).unwrap().len()); // page cache and tables warm
    let mut f = Duration::MAX;
    let mut m = Duration::MAX;
    for _ in 0..3 {
        f = f.min(run(&|a| files.get_entries(a, a + 64).unwrap().len()));
        m = m.min(run(&|a| mem.get_entries(a, a + 64).unwrap().len()));
    }
    let ratio = m.as_secs_f64() / f.as_secs_f64();
    rows.push(Row {
        name: "random 64-entry window reads (page cache)",
        ours: format!("{:.0} windows/s", windows as f64 / f.as_secs_f64()),
        reference: format!(
            "MemoryStorage: {:.0} windows/s",
            windows as f64 / m.as_secs_f64()
        ),
        ratio,
        bar: "≥ 0.25",
        met: ratio >= 0.25,
    });
}

/// What open's syncs cost: open syncs the newest segment, the store directory and its parent
/// before it deletes or cuts anything. Measured against the open itself, on a store of
/// `n` entries whose files are all clean (the usual restart), and after writes that were
/// never synced (a restart after a kill, when the syncs have data to flush).
fn open_syncs(rows: &mut Vec<Row>, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    fill(&store_dir, FilesOptions::new(), n, 128);
    let last = {
        let mut segs: Vec<_> = std::fs::read_dir(&store_dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        segs.sort();
        segs.pop().expect("a segment")
    };
    let syncs = || {
        let t = Instant::now();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&last)
            .unwrap();
        f.sync_all().unwrap();
        std::fs::File::open(&store_dir).unwrap().sync_all().unwrap();
        std::fs::File::open(dir.path()).unwrap().sync_all().unwrap();
        t.elapsed()
    };
    let reopen = || {
        let t = Instant::now();
        let s = open(&store_dir, FilesOptions::new());
        let d = t.elapsed();
        drop(s);
        d
    };
    let (mut open_best, mut sync_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        open_best = open_best.min(reopen());
        sync_best = sync_best.min(syncs());
    }
    let share = sync_best.as_secs_f64() / open_best.as_secs_f64();
    rows.push(Row {
        name: "open's syncs (newest segment, directory, parent), clean files",
        ours: format!("the three fsyncs alone: {}", ms(sync_best)),
        reference: format!("open of {n} entries: {}", ms(open_best)),
        ratio: share,
        bar: "reported (share of open)",
        met: true,
    });
    // A restart after a kill: the last writes were never synced.
    let (mut open_dirty, mut bare_dirty) = (Duration::MAX, Duration::MAX);
    for round in 0..5 {
        let mut s = open(&store_dir, FilesOptions::new().sync(SyncPolicy::Never));
        let next = n + round * 2 * 256;
        for k in 0..4 {
            s.write_atomically(append_batch(next + k * 64, 64, 128))
                .unwrap();
        }
        drop(s);
        open_dirty = open_dirty.min(reopen());
        let mut s = open(&store_dir, FilesOptions::new().sync(SyncPolicy::Never));
        for k in 4..8 {
            s.write_atomically(append_batch(next + k * 64, 64, 128))
                .unwrap();
        }
        drop(s);
        bare_dirty = bare_dirty.min(syncs());
        drop(open(&store_dir, FilesOptions::new()));
    }
    rows.push(Row {
        name: "open after 4 unsynced batches (a restart after a kill)",
        ours: format!("open: {}", ms(open_dirty)),
        reference: format!(
            "the three fsyncs alone, same dirty data: {}",
            ms(bare_dirty)
        ),
        ratio: open_dirty.as_secs_f64() / bare_dirty.as_secs_f64(),
        bar: "reported",
        met: true,
    });
}

/// A torn tail of adversarial bytes: every 8th offset claims a record of 64 KiB with the kind
/// of a batch (and the others records of a byte or none), so that strict recovery must rule
/// out a valid record at each of them. Checking each by computing its checksum over what it
/// claims costs 64 KiB per candidate (quadratic); the prefix-checksum algebra makes it
/// constant. The open's time for tails of 16, 32 and 64 MiB must grow like their size.
fn adversarial_tail(rows: &mut Vec<Row>) {
    let mut times = Vec::new();
    for mib in [16u64, 32, 64] {
        let dir = tempfile::tempdir().unwrap();
        let opts = FilesOptions::new().preallocate(false);
        let mut s = open(dir.path(), opts.clone());
        for k in 0..3 {
            s.write_atomically(append_batch(k * 64, 64, 128)).unwrap();
        }
        drop(s);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "log"))
            .expect("a segment");
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        let end = f.metadata().unwrap().len();
        let pattern = [1u8, 0, 1, 0, 0, 0, 0, 0];
        let tail: Vec<u8> = pattern
            .iter()
            .copied()
            .cycle()
            .take((mib << 20) as usize)
            .collect();
        f.write_all_at(&tail, end).unwrap();
        drop(f);
        let t = Instant::now();
        let s = open(dir.path(), opts);
        let d = t.elapsed();
        assert_eq!(s.stats().torn_tail_bytes_cut, mib << 20, "the tail was cut");
        times.push((mib, d));
    }
    let (small, large) = (times[0], times[2]);
    let ratio = large.1.as_secs_f64() / small.1.as_secs_f64();
    rows.push(Row {
        name: "open with a torn tail of adversarial bytes (linear in its size)",
        ours: format!(
            "{} MiB: {}",
            large.0,
            times
                .iter()
                .map(|(m, d)| format!("{m} MiB {}", ms(*d)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        reference: format!("{} MiB: {}", small.0, ms(small.1)),
        ratio,
        bar: "≈ 4 (4 × the bytes)",
        met: ratio <= 6.0,
    });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut rows = Vec::new();
    let (durable, buffered, trim_n, small, large, read_n, windows) = if quick {
        (300, 5_000, 100_000, 100_000, 1_000_000, 100_000, 5_000)
    } else {
        (
            2_000, 50_000, 100_000, 1_000_000, 10_000_000, 1_000_000, 50_000,
        )
    };
    // Optional workload names after `--` select a subset: append, trim, snapshot, reads, reopen,
    // open-syncs, torn-tail.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("append") {
        durable_and_buffered_append(&mut rows, durable, buffered);
    }
    if run("trim") {
        trim(&mut rows, trim_n);
    }
    if run("snapshot") {
        snapshot(&mut rows);
    }
    if run("reads") {
        reads(&mut rows, read_n, windows);
    }
    if run("reopen") {
        reopen_and_memory(&mut rows, small, large);
    }
    if run("torn-tail") {
        adversarial_tail(&mut rows);
    }
    if run("open-syncs") {
        open_syncs(&mut rows, small / 10);
    }
    println!("| workload | paxstore-files | reference (same run) | ratio | bar | met |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.2} | {} | {} |",
            r.name,
            r.ours,
            r.reference,
            r.ratio,
            r.bar,
            if r.met { "yes" } else { "**no**" }
        );
    }
}
