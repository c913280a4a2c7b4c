//! [`FaultyFs`]: the real file system, failing a chosen call.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{FileSystem, FsFile, FsLock, StdFs};

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
    /// `allocate`: fails as unsupported (`EOPNOTSUPP`, as on FUSE).
    AllocateUnsupported,
    /// `allocate`: fails with "no space left on device".
    AllocateDiskFull,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 12] = [
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
        FaultKind::AllocateUnsupported,
        FaultKind::AllocateDiskFull,
    ];

    /// The call this kind counts (the three write kinds all count writes, both allocate kinds
    /// count allocations).
    fn call(self) -> FaultKind {
        match self {
            FaultKind::ShortWrite | FaultKind::DiskFull => FaultKind::Write,
            FaultKind::AllocateDiskFull => FaultKind::AllocateUnsupported,
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
        FaultKind::DiskFull | FaultKind::AllocateDiskFull => io::Error::new(
            io::ErrorKind::StorageFull,
            "injected: no space left on device",
        ),
        FaultKind::AllocateUnsupported => io::Error::from_raw_os_error(libc::EOPNOTSUPP),
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
        match self.fs.hit(FaultKind::AllocateUnsupported) {
            Some(k) => Err(injected(k)),
            None => self.inner.allocate(len),
        }
    }
}

impl FileSystem for FaultyFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir(dir)
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
