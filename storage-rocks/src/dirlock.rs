//! The directory lock paxstore takes before RocksDB takes its own.
//!
//! RocksDB locks `LOCK` with a classic `fcntl` record lock; paxstore-files locks the same file
//! name with `flock`. On Linux the two never conflict, so without more both backends could
//! run on one directory at once. paxstore-rocks therefore also takes an `flock` on `LOCK`
//! before it opens RocksDB, and holds it until after the database is closed.
//!
//! Two hazards of `fcntl` locks shape this module:
//!
//! - they belong to the process, and closing *any* descriptor of the file drops them: so the
//!   `flock` descriptor stays open for the database's whole life (it is closed after the
//!   database), and a second opener in this process must not open `LOCK` at all while the
//!   database is open;
//! - they do not exclude the process that holds them: a second RocksDB instance in this
//!   process, reaching the directory by another path, would take the lock again.
//!
//! Hence a process-wide set of locked directories, keyed by the directory's device and inode
//! (its canonical path where there are none): an opener in this process finds the directory
//! held there and never touches `LOCK`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A directory's identity within this machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DirKey(
    #[cfg(unix)] (u64, u64),
    #[cfg(not(unix))] std::path::PathBuf,
);

impl DirKey {
    /// The key of existing directory `dir`.
    pub(crate) fn of(dir: &Path) -> std::io::Result<DirKey> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(dir)?;
            Ok(DirKey((m.dev(), m.ino())))
        }
        #[cfg(not(unix))]
        {
            Ok(DirKey(std::fs::canonicalize(dir)?))
        }
    }
}

/// The directories this process holds locked.
static HELD: Mutex<Option<HashSet<DirKey>>> = Mutex::new(None);

fn held() -> std::sync::MutexGuard<'static, Option<HashSet<DirKey>>> {
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long open keeps trying a held lock before reporting [`Error::Locked`]: a process that
/// forks holds a copy of the `flock` descriptor until the child execs, so a store closed and
/// reopened by a process that spawns children can find its own released lock still held for
/// that instant (and another thread of this process may be closing the store).
const PATIENCE: Duration = Duration::from_millis(500);

/// The held lock: the open `LOCK` file with its `flock`, and the directory's place in the
/// process-wide set. Dropping it closes the file first, then frees the place.
pub(crate) struct DirLock {
    file: Option<File>,
    key: DirKey,
}

impl DirLock {
    /// The locked directory's key.
    pub(crate) fn key(&self) -> &DirKey {
        &self.key
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the flock (and would drop any fcntl lock of this
        // process on the file: the database is closed by now).
        drop(self.file.take());
        if let Some(set) = held().as_mut() {
            set.remove(&self.key);
        }
    }
}

/// Locks existing directory `dir`: its place in this process's set, then an `flock` on its
/// `LOCK` file (created if missing).
pub(crate) fn lock(dir: &Path) -> Result<DirLock> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    let key = DirKey::of(dir).map_err(io("stat directory", dir))?;
    let lock_path = dir.join("LOCK");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let placed = held().get_or_insert_with(HashSet::new).insert(key.clone());
        if placed {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path);
            let outcome = match file {
                Ok(f) => match fs4::FileExt::try_lock(&f) {
                    Ok(()) => return Ok(DirLock { file: Some(f), key }),
                    Err(fs4::TryLockError::WouldBlock) => None,
                    Err(fs4::TryLockError::Error(e)) => Some(e),
                },
                Err(e) => Some(e),
            };
            if let Some(set) = held().as_mut() {
                set.remove(&key);
            }
            if let Some(source) = outcome {
                return Err(Error::Io {
                    op: "lock",
                    path: lock_path,
                    source,
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
                detail: if placed {
                    format!("{} is locked by another process", lock_path.display())
                } else {
                    "it is open in this process".into()
                },
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
