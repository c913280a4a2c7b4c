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

mod faulty;
mod sim;

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
            Ok(()) => Ok(Box::new(StdLock(f))),
            Err(fs4::TryLockError::WouldBlock) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            Err(fs4::TryLockError::Error(e)) => Err(e),
        }
    }
}
