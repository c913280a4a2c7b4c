//! A power loss in the middle of a reclamation.
//!
//! A reclamation writes a range deletion of `[0, first)` and then drops the table files wholly
//! below `first` (`delete_file_in_range`, a synced MANIFEST change). If the range deletion is
//! not durable when the files are dropped, a power loss in between keeps the drop and loses
//! the deletion:
//!
//! - a dropped file may have held the trim's own range tombstone, which hid older copies of
//!   the entries in a lower-level file straddling `first`: those keys come back below
//!   `first`, which `paxstore verify` reports as corruption;
//! - under [`SyncPolicy::Never`] the trim itself may not be durable yet: the power loss brings
//!   the old trim point back while the files holding the entries above it are gone, and the
//!   log no longer opens.
//!
//! A real power loss cannot happen inside a test, so this one simulates it. The test binary
//! interposes `fdatasync`, `fsync` and `unlink` (RocksDB, linked statically into it, calls
//! them through these symbols): every successful sync records how much of the file it made
//! durable, and at a chosen `unlink` of a table file (the dropped files' removal, which RocksDB
//! does right after the MANIFEST change is synced) the database directory is copied as a power
//! loss at that instant would leave it: every write-ahead-log file cut to the prefix synced so
//! far. Every other file RocksDB syncs before anything refers to it (table files before the
//! MANIFEST names them, each MANIFEST change before the call that made it returns, `CURRENT`
//! by a synced rename), so those are copied whole. The copy is then opened and checked.
//!
//! `the_simulated_power_loss_drops_what_was_not_synced` checks the simulation itself: it loses
//! an unsynced write and keeps a synced one (were the interposition not to take, with RocksDB
//! linked as a shared library for instance, it would lose the synced one too and fail).
//!
//! Linux with glibc only: `/proc/self/fd` and glibc's `RTLD_NEXT`.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, OsStr};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::kv::KeyValue;
use paxstore_core::SyncPolicy;
use paxstore_rocks::rocksdb::{
    self, BottommostLevelCompaction, Cache, ColumnFamilyDescriptor, CompactOptions,
    WaitForCompactOptions, DB,
};
use paxstore_rocks::{RocksOptions, RocksStore};

// ---------------------------------------------------------------------------------------------
// The simulated power loss.

/// What the interposed functions track, for one database directory at a time.
struct Sim {
    /// The database directory (canonical).
    dir: PathBuf,
    /// For each file of `dir` synced so far: the length it had when the sync began.
    synced: HashMap<PathBuf, u64>,
    /// Armed: at the next `unlink` of a table file in `dir`, copy the power-loss image here.
    crash_into: Option<PathBuf>,
    /// The table file whose `unlink` triggered the image.
    crashed_at: Option<String>,
}

static SIM: Mutex<Option<Sim>> = Mutex::new(None);
/// The tests share `SIM` and the interposed functions: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}
/// glibc's `RTLD_NEXT`: the next definition after this executable's, i.e. libc's.
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

fn next_symbol(cache: &OnceLock<usize>, name: &CStr) -> usize {
    *cache.get_or_init(|| {
        // SAFETY: `name` is a NUL-terminated symbol name; dlsym has no other precondition.
        let f = unsafe { dlsym(RTLD_NEXT, name.as_ptr()) };
        assert!(!f.is_null(), "dlsym({name:?}) found no definition");
        f as usize
    })
}

type SyncFn = unsafe extern "C" fn(c_int) -> c_int;
type UnlinkFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// Runs libc's sync function `real` on `fd` and records the file's length as durable if it
/// succeeded (the length before the sync: anything appended meanwhile may not be covered).
fn sync_and_record(fd: c_int, real: SyncFn) -> c_int {
    let before = {
        let sim = lock(&SIM);
        sim.as_ref().and_then(|sim| {
            let path = fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            if path.parent() != Some(sim.dir.as_path()) {
                return None;
            }
            // SAFETY: `fd` is open for the duration of this call (the caller is syncing it);
            // ManuallyDrop keeps it from being closed here.
            let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            Some((path, file.metadata().ok()?.len()))
        })
    };
    // SAFETY: forwards the caller's arguments to libc's function of the same signature.
    let rc = unsafe { real(fd) };
    if let (0, Some((path, len))) = (rc, before) {
        if let Some(sim) = lock(&SIM).as_mut() {
            let durable = sim.synced.entry(path).or_insert(0);
            *durable = (*durable).max(len);
        }
    }
    rc
}

/// Interposes libc's `fdatasync` (see the module documentation).
#[no_mangle]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    // SAFETY: the address is libc's `fdatasync`, of this signature.
    let real: SyncFn = unsafe { std::mem::transmute(next_symbol(&REAL, c"fdatasync")) };
    sync_and_record(fd, real)
}

/// Interposes libc's `fsync` (see the module documentation).
#[no_mangle]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    // SAFETY: the address is libc's `fsync`, of this signature.
    let real: SyncFn = unsafe { std::mem::transmute(next_symbol(&REAL, c"fsync")) };
    sync_and_record(fd, real)
}

/// Interposes libc's `unlink`: takes the armed power-loss image first.
///
/// # Safety
///
/// As for libc's `unlink`: `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    // SAFETY: the caller passes a NUL-terminated path.
    let name = Path::new(OsStr::from_bytes(
        unsafe { CStr::from_ptr(path) }.to_bytes(),
    ));
    if let Some(sim) = lock(&SIM).as_mut() {
        let in_dir = name
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .is_some_and(|p| p == sim.dir);
        if in_dir && name.extension() == Some(OsStr::new("sst")) {
            if let Some(into) = sim.crash_into.take() {
                power_loss_image(&sim.dir, &sim.synced, &into);
                sim.crashed_at = Some(name.file_name().unwrap().to_string_lossy().into());
            }
        }
    }
    // SAFETY: the address is libc's `unlink`, of this signature; the arguments are the
    // caller's.
    unsafe {
        let real: UnlinkFn = std::mem::transmute(next_symbol(&REAL, c"unlink"));
        real(path)
    }
}

/// Copies database directory `dir` into `into` as a power loss now would leave it: each
/// write-ahead-log file (`*.log`) cut to its synced prefix, everything else whole.
fn power_loss_image(dir: &Path, synced: &HashMap<PathBuf, u64>, into: &Path) {
    fs::create_dir_all(into).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_file() {
            continue;
        }
        let (path, name) = (entry.path(), entry.file_name());
        let mut data = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut data).unwrap();
        if path.extension() == Some(OsStr::new("log")) {
            let durable = synced.get(&path).copied().unwrap_or(0) as usize;
            data.truncate(durable);
        }
        File::create(into.join(name))
            .unwrap()
            .write_all(&data)
            .unwrap();
    }
}

/// Tracks the syncs of files in `dir` from now on.
fn track(dir: &Path) {
    *lock(&SIM) = Some(Sim {
        dir: dir.canonicalize().unwrap(),
        synced: HashMap::new(),
        crash_into: None,
        crashed_at: None,
    });
}

/// Arms the simulated power loss: at the next `unlink` of a table file of the tracked
/// directory, its image is copied into `into`.
fn crash_at_next_table_file_removal(into: &Path) {
    let mut sim = lock(&SIM);
    let sim = sim.as_mut().expect("track() first");
    sim.crash_into = Some(into.to_path_buf());
    sim.crashed_at = None;
}

/// The table file whose removal the power loss happened at, if it happened; disarms it.
fn crashed_at() -> Option<String> {
    let mut sim = lock(&SIM);
    let sim = sim.as_mut().expect("track() first");
    sim.crash_into = None;
    sim.crashed_at.take()
}

/// The image of the tracked directory if power were lost now.
fn power_loss_now(into: &Path) {
    let sim = lock(&SIM);
    let sim = sim.as_ref().expect("track() first");
    power_loss_image(&sim.dir, &sim.synced, into);
}

fn untrack() {
    *lock(&SIM) = None;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const LOG: &str = "log";
const LOG_CF: &str = "paxstore.log.log";

fn kvs(from: usize, to: usize, payload: usize) -> Vec<KeyValue> {
    (from..to)
        .map(|i| KeyValue::new(format!("k{}", i % 7), i as u64, payload))
        .collect()
}

/// Opens the database in `dir` directly with RocksDB (the column-family options of `options`
/// for the logs) and runs `f` on it.
fn with_raw_db(dir: &Path, options: &RocksOptions, f: impl FnOnce(&DB)) {
    let db_opts = options.db_options();
    let cache = Cache::new_lru_cache(8 << 20);
    let names = DB::list_cf(&db_opts, dir).unwrap();
    let cfs = names.iter().map(|name| {
        let opts = if name.starts_with("paxstore.log.") {
            options.log_options(&cache)
        } else {
            let mut o = rocksdb::Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::None);
            o
        };
        ColumnFamilyDescriptor::new(name, opts)
    });
    let db = DB::open_cf_descriptors(&db_opts, dir, cfs).unwrap();
    f(&db);
}

/// The keys of log `LOG` stored in the database in `dir`, whatever its metadata says, read
/// the way `paxstore verify` reads them (a read-only open, every key scanned).
fn stored_indexes(dir: &Path) -> Vec<u64> {
    let opts = RocksOptions::new().db_options();
    let names = DB::list_cf(&opts, dir).unwrap();
    let db = DB::open_cf_for_read_only(&opts, dir, &names, false).unwrap();
    let cf = db.cf_handle(LOG_CF).unwrap();
    let mut it = db.raw_iterator_cf(cf);
    it.seek_to_first();
    let mut keys = Vec::new();
    while let Some(k) = it.key() {
        keys.push(u64::from_be_bytes(k.try_into().unwrap()));
        it.next();
    }
    it.status().unwrap();
    keys
}

/// The table files of log `LOG` as (level, first index, last index, file name).
fn log_files(db: &DB) -> Vec<(i32, u64, u64, String)> {
    let index = |k: &Option<Vec<u8>>| u64::from_be_bytes(k.as_deref().unwrap().try_into().unwrap());
    let mut files: Vec<_> = db
        .live_files()
        .unwrap()
        .into_iter()
        .filter(|f| f.column_family_name == LOG_CF)
        .map(|f| {
            let name = f.name.trim_start_matches('/').to_string();
            (f.level, index(&f.start_key), index(&f.end_key), name)
        })
        .collect();
    files.sort();
    files
}

/// Checks that the database in `image` opens, that log `LOG` holds exactly `[first, next)`
/// (`first` among `allowed_first`) with every entry readable, and that no key is stored
/// outside those bounds. Returns `first`.
fn check_image(image: &Path, options: RocksOptions, allowed_first: &[usize], next: usize) -> usize {
    let first = {
        let store = RocksStore::open_with(image, options).unwrap();
        let log = store.log::<KeyValue>(LOG).unwrap_or_else(|e| {
            panic!("after the power loss the log does not open: {e}");
        });
        let bounds = log.bounds();
        assert!(
            allowed_first.contains(&bounds.first) && bounds.next == next,
            "after the power loss the log holds [{}, {}), expected [one of {allowed_first:?}, \
             {next})",
            bounds.first,
            bounds.next
        );
        let entries = log.get_entries(bounds.first, bounds.next).unwrap();
        let values: Vec<u64> = entries.iter().map(|e| e.value).collect();
        assert_eq!(
            values,
            (bounds.first as u64..bounds.next as u64).collect::<Vec<_>>()
        );
        bounds.first
    };
    let stored = stored_indexes(image);
    if let Some(&lowest) = stored.first() {
        assert!(
            lowest >= first as u64,
            "after the power loss the log's metadata says it starts at {first}, but it stores \
             entries from {lowest} on: keys the reclamation had deleted came back (`paxstore \
             verify` reports this as corruption)"
        );
    }
    assert_eq!(stored.len(), next - first);
    first
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_simulated_power_loss_drops_what_was_not_synced() {
    let _serial = lock(&SERIAL);
    for (policy, survives) in [(SyncPolicy::Never, false), (SyncPolicy::Always, true)] {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        let options = || RocksOptions::new().sync(policy).reclaim_threshold(0);
        track(dir.path());
        let store = RocksStore::open_with(dir.path(), options()).unwrap();
        let mut log = store.log::<KeyValue>(LOG).unwrap();
        log.append_entries(kvs(0, 10, 100)).unwrap();
        power_loss_now(image.path());
        drop((log, store));
        untrack();

        let store = RocksStore::open_with(image.path(), options()).unwrap();
        let log = store.log::<KeyValue>(LOG).unwrap();
        let expected = if survives { 10 } else { 0 };
        assert_eq!(log.get_log_len().unwrap(), expected, "{policy:?}");
    }
}

/// The finding of issue 8 (item 6), under the default sync policy: the dropped file held the
/// trim's range tombstone, and a lower-level file straddling the trim point still held the
/// entries it hid.
#[test]
fn a_power_loss_after_reclamation_drops_files_brings_no_trimmed_entry_back() {
    let _serial = lock(&SERIAL);
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    // Static levels and no automatic compaction: the test places the table files itself.
    let options = |auto_compactions: bool| {
        RocksOptions::new()
            .reclaim_threshold(0)
            .tune_logs(move |o| {
                o.set_level_compaction_dynamic_level_bytes(false);
                o.set_disable_auto_compactions(!auto_compactions);
                o.set_level_zero_file_num_compaction_trigger(1);
            })
    };

    // Entries [0, 150), in one table file on the bottom level.
    {
        let store = RocksStore::open_with(dir.path(), options(false)).unwrap();
        let mut log = store.log::<KeyValue>(LOG).unwrap();
        log.write_atomically(vec![
            StorageOp::AppendEntries(kvs(0, 150, 100)),
            StorageOp::SetDecidedIndex(150),
        ])
        .unwrap();
    }
    with_raw_db(dir.path(), &options(false), |db| {
        let mut compact = CompactOptions::default();
        compact.set_change_level(true);
        compact.set_target_level(6);
        compact.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        let cf = db.cf_handle(LOG_CF).unwrap();
        db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &compact);
    });
    // Trim to 50: its range tombstone [0, 50) lands in a table file of its own on level 1
    // (flushed when the database is next opened, then moved down by an automatic compaction,
    // as happens in any large database).
    {
        let store = RocksStore::open_with(dir.path(), options(false)).unwrap();
        let mut log = store.log::<KeyValue>(LOG).unwrap();
        log.write_atomically(vec![StorageOp::Trim(50), StorageOp::SetCompactedIdx(50)])
            .unwrap();
    }
    let mut tombstone_file = String::new();
    with_raw_db(dir.path(), &options(true), |db| {
        db.wait_for_compact(&WaitForCompactOptions::default())
            .unwrap();
        let files = log_files(db);
        let shape: Vec<_> = files.iter().map(|f| (f.0, f.1, f.2)).collect();
        assert_eq!(
            shape,
            vec![(1, 0, 50), (6, 0, 149)],
            "the test needs the trim's tombstone alone in a file above the entries"
        );
        tombstone_file = files[0].3.clone();
    });

    // Trim to 100 and reclaim: the level-1 file lies wholly below 100 and is dropped; the
    // bottom file straddles 100 and stays. The power goes out as the dropped file is removed.
    track(dir.path());
    {
        let store = RocksStore::open_with(dir.path(), options(false)).unwrap();
        let mut log = store.log::<KeyValue>(LOG).unwrap();
        assert_eq!((log.bounds().first, log.bounds().next), (50, 150));
        log.write_atomically(vec![StorageOp::Trim(100), StorageOp::SetCompactedIdx(100)])
            .unwrap();
        crash_at_next_table_file_removal(image.path());
        log.reclaim().unwrap();
        assert_eq!(
            crashed_at(),
            Some(tombstone_file),
            "the reclamation's first removal must be the file it dropped"
        );
    }
    untrack();

    // The trim to 100 was synced before it was acknowledged: it must be there, with nothing
    // below it.
    check_image(image.path(), options(false), &[100], 150);
}

/// The same under `SyncPolicy::Never`, where the trim that the reclamation acts on is not
/// durable yet when the reclamation starts: dropping the files above the old trim point
/// before the trim is durable leaves, after a power loss, a log that does not open.
#[test]
fn a_power_loss_after_reclamation_drops_files_leaves_a_log_that_opens_under_sync_never() {
    let _serial = lock(&SERIAL);
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    // Small table files, so that a reclamation has whole files to drop.
    let options = || {
        RocksOptions::new()
            .sync(SyncPolicy::Never)
            .reclaim_threshold(0)
            .target_file_bytes(4 << 10)
    };
    // Entries [10, 150) in table files of about one 16 KiB block each, on the bottom level
    // (the first reclamation compacts them there).
    {
        let store = RocksStore::open_with(dir.path(), options()).unwrap();
        let mut log = store.log::<KeyValue>(LOG).unwrap();
        log.write_atomically(vec![
            StorageOp::AppendEntries(kvs(0, 150, 1000)),
            StorageOp::SetDecidedIndex(150),
        ])
        .unwrap();
        log.write_atomically(vec![StorageOp::Trim(10), StorageOp::SetCompactedIdx(10)])
            .unwrap();
        log.reclaim().unwrap();
    }
    let mut below_100 = Vec::new();
    with_raw_db(dir.path(), &options(), |db| {
        let files = log_files(db);
        below_100 = files
            .iter()
            .filter(|f| f.0 > 0 && f.2 < 100)
            .map(|f| f.3.clone())
            .collect();
        assert!(
            !below_100.is_empty() && files.iter().any(|f| f.1 < 100 && f.2 >= 100),
            "the test needs files wholly below 100 and one straddling it: {files:?}"
        );
    });

    // Trim to 100, not synced (the policy), and reclaim. The power goes out as the first
    // dropped file is removed.
    track(dir.path());
    {
        let store = RocksStore::open_with(dir.path(), options()).unwrap();
        let mut log = store.log::<KeyValue>(LOG).unwrap();
        log.write_atomically(vec![StorageOp::Trim(100), StorageOp::SetCompactedIdx(100)])
            .unwrap();
        crash_at_next_table_file_removal(image.path());
        log.reclaim().unwrap();
        let at = crashed_at();
        assert!(
            at.as_ref().is_some_and(|f| below_100.contains(f)),
            "the reclamation's first removal must be a file it dropped ({below_100:?}), \
             not {at:?}"
        );
    }
    untrack();

    // `SyncPolicy::Never` may lose the trim to 100, but the log must open, whole, either way.
    check_image(image.path(), options(), &[10, 100], 150);
}
