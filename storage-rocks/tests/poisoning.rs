//! A failed sync of the write-ahead log poisons the log: the write that met it fails,
//! `poisoned()` says why, every later write fails until the store is reopened from disk, and
//! the reopened store holds every acknowledged write.
//!
//! The test binary interposes `fdatasync` and `fsync` (RocksDB, linked statically into it,
//! calls them through these symbols) and makes them fail with `EIO` for the write-ahead-log
//! files of the test's database while a switch is on.
//!
//! Linux with glibc only: `/proc/self/fd`, glibc's `RTLD_NEXT` and `__errno_location`.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use omnipaxos::storage::Storage;
use paxstore_core::kv::KeyValue;
use paxstore_rocks::RocksStorage;

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn __errno_location() -> *mut c_int;
}
/// glibc's `RTLD_NEXT`: the next definition after this executable's, i.e. libc's.
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
const EIO: c_int = 5;

type SyncFn = unsafe extern "C" fn(c_int) -> c_int;

/// Syncs of write-ahead-log files under this directory fail while [`FAIL`] is on.
static FAIL_UNDER: Mutex<Option<PathBuf>> = Mutex::new(None);
static FAIL: AtomicBool = AtomicBool::new(false);

fn real(cache: &OnceLock<usize>, name: &CStr) -> SyncFn {
    let f = *cache.get_or_init(|| {
        // SAFETY: `name` is a NUL-terminated symbol name; dlsym has no other precondition.
        let f = unsafe { dlsym(RTLD_NEXT, name.as_ptr()) };
        assert!(!f.is_null(), "dlsym({name:?}) found no definition");
        f as usize
    });
    // SAFETY: the address is libc's sync function of that name, of this signature.
    unsafe { std::mem::transmute::<usize, SyncFn>(f) }
}

fn sync(fd: c_int, real: SyncFn) -> c_int {
    if FAIL.load(Ordering::SeqCst) {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let under = FAIL_UNDER.lock().ok().and_then(|g| g.clone());
        if let (Some(target), Some(under)) = (target, under) {
            if target.starts_with(&under) && target.extension().is_some_and(|e| e == "log") {
                // SAFETY: glibc's thread-local errno.
                unsafe { *__errno_location() = EIO };
                return -1;
            }
        }
    }
    // SAFETY: `real` is libc's function, called with the caller's descriptor.
    unsafe { real(fd) }
}

#[no_mangle]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    sync(fd, real(&REAL, c"fdatasync"))
}

#[no_mangle]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    sync(fd, real(&REAL, c"fsync"))
}

fn kv(i: u64) -> KeyValue {
    KeyValue::new("k", i, 64)
}

#[test]
fn a_failed_wal_sync_poisons_the_log_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    *FAIL_UNDER.lock().unwrap() = Some(path.clone());

    let mut log = RocksStorage::<KeyValue>::open(&path).unwrap();
    log.append_entries((0..10).map(kv).collect()).unwrap();
    assert_eq!(log.poisoned(), None);

    FAIL.store(true, Ordering::SeqCst);
    let err = log.append_entry(kv(10)).unwrap_err();
    FAIL.store(false, Ordering::SeqCst);
    let why = log.poisoned().expect("a failed WAL sync poisons the log");
    assert!(why.contains("write batch"), "{why}");
    assert!(
        err.to_string().contains("write batch"),
        "the failing call says what failed: {err}"
    );

    // The sync works again, but the log stays poisoned: retrying a failed sync is unsound.
    let again = log.append_entry(kv(11)).unwrap_err();
    assert!(again.to_string().contains("unknown outcome"), "{again}");
    assert!(log.poisoned().is_some());

    // Reopened from disk: every acknowledged write is there; the failed one may or may not
    // be (its outcome was unknown), never anything after it.
    drop(log);
    let log = RocksStorage::<KeyValue>::open(&path).unwrap();
    assert_eq!(log.poisoned(), None);
    let len = log.get_log_len().unwrap();
    assert!(len == 10 || len == 11, "{len} entries after reopening");
    assert_eq!(
        log.get_entries(0, 10).unwrap(),
        (0..10).map(kv).collect::<Vec<_>>()
    );
}
