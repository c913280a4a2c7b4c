//! Every file-system call the engine makes goes through [`FileSystem`], so tests can inject
//! faults ([`FaultyFs`]) at any call and simulate power loss ([`SimFs`]) at any call, and
//! check what the engine does about them.
//!
//! - [`StdFs`]: the real file system.
//! - [`FaultyFs`] (module `faulty`): the real file system, failing a chosen call.
//! - [`SimFs`] (module `sim`): an in-memory file system with a durable and a volatile state
//!   for every file and directory, which can lose power.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

pub mod faulty;
pub mod sim;

pub use faulty::{FaultKind, FaultyFs};
pub use sim::{CrashPattern, SimFs, Trigger};

/// Whether `e` says the call is not supported by this file system (`EOPNOTSUPP`, `ENOSYS`):
/// `fallocate` on FUSE, some NFS and ZFS setups.
pub fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
        )
}

/// An open file: positional reads and writes, sync, length.
pub trait FsFile: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: the data (and the size if it grew) is on stable storage.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: data and all metadata.
    fn sync_all(&self) -> io::Result<()>;
    /// Sets the file's length.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Reserves `len` bytes of disk for the file (the length may grow to `len`; the new bytes
    /// read as zeros). May fail with an error for which [`is_unsupported`] holds: the engine
    /// then writes without preallocating.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The lock on a directory; released when dropped.
pub trait FsLock: Send + Sync {}

/// The file-system calls of the engine.
pub trait FileSystem: Send + Sync {
    /// Creates the directory `dir` (not its parents): `AlreadyExists` if it exists, `NotFound`
    /// if its parent does not.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Creates a new file (failing if it exists), for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory, making creations, renames and removals in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Takes the exclusive advisory lock on `path` (created if missing); `WouldBlock` if held.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>>;
}

/// Whether `e` says the disk is full (`ENOSPC`, `EDQUOT`).
pub fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdFile(File);

impl FsFile for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        fs4::FileExt::allocate(&self.0, len)
    }
}

struct StdLock(#[allow(dead_code)] File);
impl FsLock for StdLock {}

impl FileSystem for StdFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match fs4::FileExt::try_lock(&f) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(io::Error::from(io::ErrorKind::WouldBlock))
            }
            Err(fs4::TryLockError::Error(e)) => return Err(e),
        }
        // RocksDB locks its `LOCK` with `fcntl`, which does not see `flock` locks: take both,
        // so that a RocksDB-based store and this one never run on one directory at once.
        fcntl_lock(&f)?;
        Ok(Box::new(StdLock(f)))
    }
}

/// An exclusive open-file-description lock (`F_OFD_SETLK`) on the whole file. It conflicts
/// with the classic `fcntl` locks RocksDB takes (in this process too), and unlike those it is
/// not dropped when the process closes some other descriptor of the file.
#[cfg(target_os = "linux")]
fn fcntl_lock(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is a plain C struct; all zeros is a valid value of it.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the descriptor is open for the duration of the call, and `lock` is a valid
    // `flock` that fcntl only reads for F_OFD_SETLK.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        _ => Err(e),
    }
}

/// Elsewhere only the `flock` is taken.
#[cfg(not(target_os = "linux"))]
fn fcntl_lock(_: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A classic `fcntl` write lock attempt, as RocksDB makes on its `LOCK`.
    fn classic_lock(f: &File) -> bool {
        // SAFETY: as in `fcntl_lock`.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: the descriptor is open; `lock` is valid.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &lock) == 0 }
    }

    #[test]
    fn the_lock_excludes_rocksdbs_kind_of_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let held = StdFs.lock(&path).unwrap();
        let other = File::options().read(true).write(true).open(&path).unwrap();
        assert!(
            !classic_lock(&other),
            "an fcntl lock was granted beside ours"
        );
        // Closing another descriptor of the file does not drop our lock (it would drop a
        // classic fcntl lock).
        drop(File::open(&path).unwrap());
        assert!(!classic_lock(&other));
        drop(held);
        assert!(classic_lock(&other), "released with the store");
    }
}
