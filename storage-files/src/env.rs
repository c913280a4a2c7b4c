//! Every file-system call the engine makes goes through [`FileSystem`], so tests can inject
//! faults ([`FaultyFs`]) at any call and check what the engine does about them.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
    /// read as zeros).
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
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
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
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
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

/// The kinds of call [`FaultyFs`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `create` (new files: segments, snapshots, temp files).
    Create,
    /// `write_all_at`: fails with nothing written.
    Write,
    /// `write_all_at`: writes the first half of the buffer, then fails.
    ShortWrite,
    /// `write_all_at`: fails with "no space left on device", nothing written.
    DiskFull,
    /// `sync_data` / `sync_all` on a file.
    Fsync,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Unlink,
    /// `sync_dir`.
    DirFsync,
    /// `open` of an existing file.
    Open,
    /// `set_len`.
    SetLen,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Create,
        FaultKind::Write,
        FaultKind::ShortWrite,
        FaultKind::DiskFull,
        FaultKind::Fsync,
        FaultKind::Rename,
        FaultKind::Unlink,
        FaultKind::DirFsync,
        FaultKind::Open,
        FaultKind::SetLen,
    ];

    /// The call this kind counts (the three write kinds all count writes).
    fn call(self) -> FaultKind {
        match self {
            FaultKind::ShortWrite | FaultKind::DiskFull => FaultKind::Write,
            k => k,
        }
    }
}

#[derive(Default)]
struct FaultState {
    calls: HashMap<FaultKind, u64>,
    /// Fail the n-th (1-based) call of this kind, counted from when the fault was armed.
    armed: Option<(FaultKind, u64)>,
    fired: bool,
}

/// A [`FileSystem`] over [`StdFs`] that counts calls and fails a chosen one.
///
/// Arm it with [`FaultyFs::fail_nth`]; the n-th matching call from then on fails once (a
/// short write first writes half its buffer). [`FaultyFs::calls`] counts calls since the last
/// [`FaultyFs::reset_counts`], so a test can first count the calls an operation makes and then
/// fail each in turn.
#[derive(Clone, Default)]
pub struct FaultyFs {
    state: Arc<Mutex<FaultState>>,
}

impl FaultyFs {
    /// A file system with no fault armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the `n`-th (1-based) call of `kind` from now on.
    pub fn fail_nth(&self, kind: FaultKind, n: u64) {
        let mut s = self.lock();
        s.calls.clear();
        s.armed = Some((kind, n));
        s.fired = false;
    }

    /// Disarms any fault and clears the counts.
    pub fn reset_counts(&self) {
        let mut s = self.lock();
        s.calls.clear();
        s.armed = None;
        s.fired = false;
    }

    /// Calls of `kind` since the counts were last reset (for write kinds: all writes).
    pub fn calls(&self, kind: FaultKind) -> u64 {
        self.lock().calls.get(&kind.call()).copied().unwrap_or(0)
    }

    /// Whether the armed fault has fired.
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic while holding this lock can only come from a test assertion; the state
        // stays consistent, so recover it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a call of `call` and says which armed fault (if any) fires on it.
    fn hit(&self, call: FaultKind) -> Option<FaultKind> {
        let mut s = self.lock();
        let n = {
            let c = s.calls.entry(call).or_insert(0);
            *c += 1;
            *c
        };
        match s.armed {
            Some((kind, at)) if kind.call() == call && at == n && !s.fired => {
                s.fired = true;
                Some(kind)
            }
            _ => None,
        }
    }
}

fn injected(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::DiskFull => io::Error::new(
            io::ErrorKind::StorageFull,
            "injected: no space left on device",
        ),
        k => io::Error::other(format!("injected fault: {k:?}")),
    }
}

struct FaultyFile {
    inner: Arc<dyn FsFile>,
    fs: FaultyFs,
}

impl FsFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.fs.hit(FaultKind::Write) {
            Some(FaultKind::ShortWrite) => {
                self.inner.write_all_at(&buf[..buf.len() / 2], offset)?;
                Err(injected(FaultKind::ShortWrite))
            }
            Some(k) => Err(injected(k)),
            None => self.inner.write_all_at(buf, offset),
        }
    }
    fn sync_data(&self) -> io::Result<()> {
        match self.fs.hit(FaultKind::Fsync) {
            Some(k) => Err(injected(k)),
            None => self.inner.sync_data(),
        }
    }
    fn sync_all(&self) -> io::Result<()> {
        match self.fs.hit(FaultKind::Fsync) {
            Some(k) => Err(injected(k)),
            None => self.inner.sync_all(),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        match self.fs.hit(FaultKind::SetLen) {
            Some(k) => Err(injected(k)),
            None => self.inner.set_len(len),
        }
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        if let Some(k) = self.hit(FaultKind::Open) {
            return Err(injected(k));
        }
        Ok(Arc::new(FaultyFile {
            inner: StdFs.open(path)?,
            fs: self.clone(),
        }))
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        if let Some(k) = self.hit(FaultKind::Create) {
            return Err(injected(k));
        }
        Ok(Arc::new(FaultyFile {
            inner: StdFs.create(path)?,
            fs: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.hit(FaultKind::Rename) {
            Some(k) => Err(injected(k)),
            None => StdFs.rename(from, to),
        }
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.hit(FaultKind::Unlink) {
            Some(k) => Err(injected(k)),
            None => StdFs.remove_file(path),
        }
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.hit(FaultKind::DirFsync) {
            Some(k) => Err(injected(k)),
            None => StdFs.sync_dir(dir),
        }
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        StdFs.lock(path)
    }
}
