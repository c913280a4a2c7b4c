//! [`SimFs`]: an in-memory file system that can lose power.
//!
//! Every file's data and every directory's entries have a *durable* state (what is on the
//! platter) and a *live* state (what a running process sees: the durable state plus the
//! volatile writes the page cache still holds):
//!
//! - `write_all_at`, `set_len` and `allocate` change a file's live data; `sync_data` and
//!   `sync_all` make all of it durable. A sync never makes a directory entry durable.
//! - `create`, `create_dir`, `rename` and `remove_file` change a directory's live entries;
//!   `sync_dir` makes all of that directory's entries durable (the entry of the directory
//!   itself lives in its parent, which needs its own `sync_dir`).
//!
//! Two events end a process:
//!
//! - [`SimFs::kill`]: `kill -9`. The page cache survives: the new process sees the live state,
//!   volatile parts included, and they stay volatile.
//! - [`SimFs::power_loss`]: the machine loses power. What survives is the durable state plus
//!   whatever part of the volatile state the disk happened to write, chosen by a
//!   [`CrashPattern`]: each unsynced write is kept, dropped, or cut at a 512-byte boundary
//!   (only its first sectors reached the disk); each unsynced `set_len`/`allocate` is kept or
//!   dropped; each unsynced directory operation is kept or dropped, a rename atomically. A
//!   directory whose own entry is lost is lost with everything in it.
//!
//! Both return a new, independent file system (the old one is left frozen, so the dead
//! process's handles fail), which is what lets a test explore many futures of one moment.
//!
//! [`SimFs::crash_at`] freezes the file system just before its `n`-th mutating call (a call
//! that changes data, entries or durability): that call and every later one fail, and the
//! test then takes `kill` or `power_loss` of the frozen state. Counting the calls of a clean
//! run first ([`SimFs::mutations`]) and then freezing at each of them in turn crashes a
//! workload at every file-system call.
//!
//! Paths are plain strings: no symbolic links, no `..`; a rename must stay within one
//! directory (all the engine needs).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileSystem, FsFile, FsLock};

/// The sector size: a write is cut only at multiples of it.
const SECTOR: u64 = 512;
/// Calls kept in the trace for failure reports.
const TRACE_LEN: usize = 64;

/// How a power loss treats the volatile state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPattern {
    /// Everything unsynced is lost (what LazyFS's `clear-cache` does).
    DropAll,
    /// Everything unsynced happened to reach the disk.
    KeepAll,
    /// Each unsynced operation independently kept, dropped or cut, from this seed.
    Random(u64),
}

#[derive(Clone, Debug)]
enum DataOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    /// `allocate`: grows the length to at least this.
    Grow(u64),
}

#[derive(Clone, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<DataOp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, Node),
    Unlink(String),
    Rename(String, String, Node),
}

#[derive(Clone, Default)]
struct Dir {
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    pending: Vec<DirOp>,
}

/// What a [`SimFs::trigger`] does to the first call it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Freeze the file system just before the call (like [`SimFs::crash_at`]).
    Crash,
    /// Fail the call with an I/O error, doing nothing; later calls work (a failed `fsync`
    /// leaves the data in the page cache, volatile).
    Fail,
}

#[derive(Clone)]
struct World {
    inodes: BTreeMap<usize, Inode>,
    next_ino: usize,
    trigger: Option<(String, Trigger)>,
    /// Directories by path ("/" is the root, always there).
    dirs: BTreeMap<String, Dir>,
    /// Locked paths.
    locks: HashMap<String, u64>,
    next_lock: u64,
    mutations: u64,
    crash_at: Option<u64>,
    frozen: bool,
    allocate_supported: bool,
    /// The disk's size: live bytes of linked files beyond it fail with `ENOSPC`.
    capacity: Option<u64>,
    trace: Vec<String>,
}

impl World {
    fn new() -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert("/".to_string(), Dir::default());
        World {
            inodes: BTreeMap::new(),
            next_ino: 0,
            trigger: None,
            dirs,
            locks: HashMap::new(),
            next_lock: 1,
            mutations: 0,
            crash_at: None,
            frozen: false,
            allocate_supported: true,
            capacity: None,
            trace: Vec::new(),
        }
    }

    fn dead() -> io::Error {
        io::Error::other("simulated crash: the file system is frozen")
    }

    /// Counts a mutating call; fails if the file system is frozen, freezes now, or a
    /// trigger fails this call.
    fn mutate(&mut self, what: impl FnOnce() -> String) -> io::Result<()> {
        if self.frozen {
            return Err(Self::dead());
        }
        let what = what();
        let triggered = match &self.trigger {
            Some((prefix, action)) if what.starts_with(prefix.as_str()) => Some(*action),
            _ => None,
        };
        if self.crash_at == Some(self.mutations) || triggered == Some(Trigger::Crash) {
            self.frozen = true;
            self.trigger = None;
            self.note(format!("CRASH before: {what}"));
            return Err(Self::dead());
        }
        self.mutations += 1;
        if triggered == Some(Trigger::Fail) {
            self.trigger = None;
            self.note(format!("FAILED: {what}"));
            return Err(io::Error::other(format!("simulated I/O error: {what}")));
        }
        self.note(what);
        Ok(())
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.frozen {
            return Err(Self::dead());
        }
        Ok(())
    }

    fn note(&mut self, s: String) {
        if self.trace.len() == TRACE_LEN {
            self.trace.remove(0);
        }
        self.trace.push(s);
    }

    /// The new world after the process dies: locks released, files no directory refers to
    /// forgotten (only the dead process had them open), the rest as it was.
    fn restarted(&self) -> World {
        let mut w = self.clone();
        let mut linked = std::collections::BTreeSet::new();
        for d in w.dirs.values() {
            let ops = d.pending.iter().map(|op| match op {
                DirOp::Link(_, n) | DirOp::Rename(_, _, n) => Some(*n),
                DirOp::Unlink(_) => None,
            });
            for node in d
                .live
                .values()
                .chain(d.durable.values())
                .copied()
                .map(Some)
                .chain(ops)
            {
                if let Some(Node::File(ino)) = node {
                    linked.insert(ino);
                }
            }
        }
        w.inodes.retain(|ino, _| linked.contains(ino));
        w.trigger = None;
        w.locks.clear();
        w.mutations = 0;
        w.crash_at = None;
        w.frozen = false;
        w.trace.clear();
        w
    }

    fn power_loss(&self, pattern: CrashPattern) -> World {
        let mut dice = Dice {
            pattern,
            rng: Rng::new(match pattern {
                CrashPattern::Random(seed) => seed,
                _ => 0,
            }),
        };
        let mut w = self.restarted();
        for inode in w.inodes.values_mut() {
            let mut data = std::mem::take(&mut inode.durable);
            for op in std::mem::take(&mut inode.pending) {
                match op {
                    DataOp::Write {
                        offset,
                        data: bytes,
                    } => {
                        let end = offset + bytes.len() as u64;
                        // Sector boundaries strictly inside the write.
                        let first_cut = (offset / SECTOR + 1) * SECTOR;
                        let cuttable = first_cut < end;
                        match dice.choose(cuttable) {
                            0 => write_at(&mut data, offset, &bytes),
                            2 => {
                                let cuts = (end - 1 - first_cut) / SECTOR + 1;
                                let k = dice.rng.next() % cuts;
                                let cut = first_cut + k * SECTOR;
                                write_at(&mut data, offset, &bytes[..(cut - offset) as usize]);
                            }
                            _ => {}
                        }
                    }
                    DataOp::SetLen(len) => {
                        if dice.choose(false) == 0 {
                            data.resize(len as usize, 0);
                        }
                    }
                    DataOp::Grow(len) => {
                        if dice.choose(false) == 0 && (data.len() as u64) < len {
                            data.resize(len as usize, 0);
                        }
                    }
                }
            }
            inode.live = data.clone();
            inode.durable = data;
        }
        for dir in w.dirs.values_mut() {
            let mut entries = std::mem::take(&mut dir.durable);
            for op in std::mem::take(&mut dir.pending) {
                if dice.choose(false) != 0 {
                    continue;
                }
                match op {
                    DirOp::Link(name, node) => {
                        entries.insert(name, node);
                    }
                    DirOp::Unlink(name) => {
                        entries.remove(&name);
                    }
                    DirOp::Rename(from, to, node) => {
                        if entries.get(&from) == Some(&node) {
                            entries.remove(&from);
                        }
                        entries.insert(to, node);
                    }
                }
            }
            dir.live = entries.clone();
            dir.durable = entries;
        }
        // A directory whose entry did not survive is gone, with everything below it.
        let paths: Vec<String> = w.dirs.keys().cloned().collect();
        for path in paths {
            if !w.reachable(&path) {
                w.dirs.remove(&path);
            }
        }
        w
    }

    fn reachable(&self, path: &str) -> bool {
        if path == "/" {
            return true;
        }
        let (parent, name) = split(path);
        self.dirs
            .get(&parent)
            .is_some_and(|d| d.live.get(&name) == Some(&Node::Dir))
            && self.reachable(&parent)
    }

    fn dir_mut(&mut self, path: &str) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no directory {path}")))
    }

    fn inode(&mut self, ino: usize) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::other("stale file handle"))
    }

    /// Live bytes of the files some directory links.
    fn used(&self) -> u64 {
        let mut linked = std::collections::BTreeSet::new();
        for d in self.dirs.values() {
            for node in d.live.values() {
                if let Node::File(ino) = node {
                    linked.insert(*ino);
                }
            }
        }
        linked
            .iter()
            .filter_map(|ino| self.inodes.get(ino))
            .map(|i| i.live.len() as u64)
            .sum()
    }

    /// Fails with `ENOSPC` if growing file `ino` to `len` bytes would overfill the disk.
    fn room_for(&self, ino: usize, len: u64) -> io::Result<()> {
        let Some(cap) = self.capacity else {
            return Ok(());
        };
        let have = self.inodes.get(&ino).map_or(0, |i| i.live.len() as u64);
        if len > have && self.used() + (len - have) > cap {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn lookup(&self, path: &str) -> io::Result<usize> {
        let (parent, name) = split(path);
        match self.dirs.get(&parent).and_then(|d| d.live.get(&name)) {
            Some(Node::File(ino)) => Ok(*ino),
            Some(Node::Dir) => Err(io::Error::other(format!("{path} is a directory"))),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no file {path}"),
            )),
        }
    }
}

fn write_at(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

/// Normalizes a path to "/a/b" form.
fn key(path: &Path) -> String {
    let mut out = String::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(s) => {
                out.push('/');
                out.push_str(&s.to_string_lossy());
            }
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            std::path::Component::ParentDir | std::path::Component::Prefix(_) => {
                out.push_str("/..");
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn split(path: &str) -> (String, String) {
    match path.rfind('/') {
        Some(0) => ("/".to_string(), path[1..].to_string()),
        Some(i) => (path[..i].to_string(), path[i + 1..].to_string()),
        None => ("/".to_string(), path.to_string()),
    }
}

/// What happens to one volatile operation at a power loss: 0 kept, 1 dropped, 2 cut.
struct Dice {
    pattern: CrashPattern,
    rng: Rng,
}

impl Dice {
    fn choose(&mut self, cuttable: bool) -> u8 {
        match self.pattern {
            CrashPattern::KeepAll => 0,
            CrashPattern::DropAll => 1,
            CrashPattern::Random(_) => (self.rng.next() % if cuttable { 3 } else { 2 }) as u8,
        }
    }
}

/// A small xorshift generator.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The simulated file system (see the [module docs](self)). Cheap to clone; clones share one
/// state.
#[derive(Clone)]
pub struct SimFs {
    world: Arc<Mutex<World>>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.world();
        f.debug_struct("SimFs")
            .field("mutations", &w.mutations)
            .field("frozen", &w.frozen)
            .finish()
    }
}

impl SimFs {
    /// An empty file system holding only the root directory `/`, which is durable.
    pub fn new() -> Self {
        Self::from_world(World::new())
    }

    fn from_world(w: World) -> Self {
        SimFs {
            world: Arc::new(Mutex::new(w)),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // Nothing panics while holding the lock but a failing test; the state stays whole.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `allocate` fail with `EOPNOTSUPP`, as on FUSE (LazyFS), some NFS and ZFS setups.
    pub fn without_allocate(self) -> Self {
        self.world().allocate_supported = false;
        self
    }

    /// Sets the disk's size (`None`: unlimited): writes, `set_len` and `allocate` that would
    /// make the live bytes of all linked files exceed it fail with `ENOSPC`, changing nothing.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.world().capacity = bytes;
    }

    /// Live bytes of all files some directory links (what counts against the capacity).
    pub fn used(&self) -> u64 {
        self.world().used()
    }

    /// Freezes the file system just before its `n`-th mutating call from now (0-based): that
    /// call and all later ones fail.
    pub fn crash_at(&self, n: u64) {
        let mut w = self.world();
        w.crash_at = Some(w.mutations + n);
    }

    /// Arms a trigger: the first call from now whose description starts with `prefix`
    /// (descriptions as in [`trace`](Self::trace): `create /d/f`, `write f @0 +9`, `fsync f`,
    /// `fsync dir /d`, `set_len f 9`, `allocate f 9`, `rename /d/a -> b`, `unlink /d/f`,
    /// `mkdir /d`) crashes or fails.
    pub fn trigger(&self, prefix: &str, action: Trigger) {
        self.world().trigger = Some((prefix.to_string(), action));
    }

    /// Mutating calls so far (in this process).
    pub fn mutations(&self) -> u64 {
        self.world().mutations
    }

    /// Whether a [`crash_at`](Self::crash_at) point was reached.
    pub fn frozen(&self) -> bool {
        self.world().frozen
    }

    /// Freezes the file system now.
    pub fn freeze(&self) {
        self.world().frozen = true;
    }

    /// The last calls made (for failure reports).
    pub fn trace(&self) -> Vec<String> {
        self.world().trace.clone()
    }

    /// The process was killed (`kill -9`): a new file system with the same live state,
    /// volatile parts still volatile, locks released. This one is frozen.
    pub fn kill(&self) -> SimFs {
        let mut w = self.world();
        w.frozen = true;
        Self::from_world(w.restarted())
    }

    /// The machine lost power: a new file system holding what reached the disk (see
    /// [`CrashPattern`]), all of it durable. This one is frozen.
    pub fn power_loss(&self, pattern: CrashPattern) -> SimFs {
        let mut w = self.world();
        w.frozen = true;
        Self::from_world(w.power_loss(pattern))
    }

    /// A copy of this file system as it is now, independent of it (locks released). This
    /// one is left as it was.
    pub fn fork(&self) -> SimFs {
        Self::from_world(self.world().restarted())
    }

    /// The live bytes of the file at `path`.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let w = self.world();
        let ino = w.lookup(&key(path))?;
        Ok(w.inodes
            .get(&ino)
            .map(|i| i.live.clone())
            .unwrap_or_default())
    }

    /// Writes a whole file, durably (entry included): for setting up test states.
    pub fn put(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut w = self.world();
        let path = key(path);
        let (parent, name) = split(&path);
        let ino = w.next_ino;
        w.next_ino += 1;
        w.inodes.insert(
            ino,
            Inode {
                live: bytes.to_vec(),
                durable: bytes.to_vec(),
                pending: Vec::new(),
            },
        );
        let d = w.dir_mut(&parent)?;
        d.live.insert(name.clone(), Node::File(ino));
        d.durable.insert(name, Node::File(ino));
        Ok(())
    }

    /// Whether anything is unsynced (a file's data or a directory's entries).
    pub fn has_volatile(&self) -> bool {
        let w = self.world();
        w.inodes.values().any(|i| !i.pending.is_empty())
            || w.dirs.values().any(|d| !d.pending.is_empty())
    }
}

struct SimFile {
    world: Arc<Mutex<World>>,
    ino: usize,
    name: String,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FsFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let w = self.lock();
        w.check_alive()?;
        let data = &w
            .inodes
            .get(&self.ino)
            .ok_or_else(|| io::Error::other("stale file handle"))?
            .live;
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(&data[offset as usize..end as usize]);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut w = self.lock();
        w.mutate(|| format!("write {} @{offset} +{}", self.name, buf.len()))?;
        w.room_for(self.ino, offset + buf.len() as u64)?;
        let inode = w.inode(self.ino)?;
        write_at(&mut inode.live, offset, buf);
        inode.pending.push(DataOp::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync_all()
    }
    fn sync_all(&self) -> io::Result<()> {
        let mut w = self.lock();
        w.mutate(|| format!("fsync {}", self.name))?;
        let inode = w.inode(self.ino)?;
        inode.durable = inode.live.clone();
        inode.pending.clear();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut w = self.lock();
        w.mutate(|| format!("set_len {} {len}", self.name))?;
        w.room_for(self.ino, len)?;
        let inode = w.inode(self.ino)?;
        inode.live.resize(len as usize, 0);
        inode.pending.push(DataOp::SetLen(len));
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        let w = self.lock();
        w.check_alive()?;
        Ok(w.inodes.get(&self.ino).map_or(0, |i| i.live.len() as u64))
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut w = self.lock();
        if !w.allocate_supported {
            w.check_alive()?;
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        w.mutate(|| format!("allocate {} {len}", self.name))?;
        w.room_for(self.ino, len)?;
        let inode = w.inode(self.ino)?;
        if (inode.live.len() as u64) < len {
            inode.live.resize(len as usize, 0);
        }
        inode.pending.push(DataOp::Grow(len));
        Ok(())
    }
}

struct SimLock {
    world: Arc<Mutex<World>>,
    path: String,
    token: u64,
}

impl FsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        if w.locks.get(&self.path) == Some(&self.token) {
            w.locks.remove(&self.path);
        }
    }
}

impl SimFs {
    fn file(&self, ino: usize, path: &str) -> Arc<dyn FsFile> {
        Arc::new(SimFile {
            world: self.world.clone(),
            ino,
            name: split(path).1,
        })
    }

    fn link_new(&self, w: &mut World, path: &str) -> io::Result<usize> {
        let (parent, name) = split(path);
        if w.dir_mut(&parent)?.live.contains_key(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{path} exists"),
            ));
        }
        let ino = w.next_ino;
        w.next_ino += 1;
        w.inodes.insert(ino, Inode::default());
        let d = w.dir_mut(&parent)?;
        d.live.insert(name.clone(), Node::File(ino));
        d.pending.push(DirOp::Link(name, Node::File(ino)));
        Ok(ino)
    }
}

impl FileSystem for SimFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut w = self.world();
        let path = key(dir);
        if w.dirs.contains_key(&path) {
            w.check_alive()?;
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{path} exists"),
            ));
        }
        let (parent, name) = split(&path);
        if !w.dirs.contains_key(&parent) {
            w.check_alive()?;
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory {parent}"),
            ));
        }
        w.mutate(|| format!("mkdir {path}"))?;
        let d = w.dir_mut(&parent)?;
        d.live.insert(name.clone(), Node::Dir);
        d.pending.push(DirOp::Link(name, Node::Dir));
        w.dirs.insert(path, Dir::default());
        Ok(())
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let w = self.world();
        w.check_alive()?;
        let path = key(path);
        let ino = w.lookup(&path)?;
        Ok(self.file(ino, &path))
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut w = self.world();
        let path = key(path);
        w.mutate(|| format!("create {path}"))?;
        let ino = self.link_new(&mut w, &path)?;
        Ok(self.file(ino, &path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut w = self.world();
        let (from, to) = (key(from), key(to));
        let ((pf, nf), (pt, nt)) = (split(&from), split(&to));
        if pf != pt {
            w.check_alive()?;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SimFs renames within one directory only",
            ));
        }
        w.mutate(|| format!("rename {from} -> {nt}"))?;
        let d = w.dir_mut(&pf)?;
        let node = d
            .live
            .remove(&nf)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {from}")))?;
        d.live.insert(nt.clone(), node);
        d.pending.push(DirOp::Rename(nf, nt, node));
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut w = self.world();
        let path = key(path);
        w.mutate(|| format!("unlink {path}"))?;
        w.lookup(&path)?;
        let (parent, name) = split(&path);
        let d = w.dir_mut(&parent)?;
        d.live.remove(&name);
        d.pending.push(DirOp::Unlink(name));
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut w = self.world();
        let path = key(dir);
        w.mutate(|| format!("fsync dir {path}"))?;
        let d = w.dir_mut(&path)?;
        d.durable = d.live.clone();
        d.pending.clear();
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut w = self.world();
        w.check_alive()?;
        Ok(w.dir_mut(&key(dir))?.live.keys().cloned().collect())
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let mut w = self.world();
        w.check_alive()?;
        let path = key(path);
        if w.lookup(&path).is_err() {
            // Like `open(O_CREAT)`: a new, empty lock file.
            w.mutate(|| format!("create {path}"))?;
            self.link_new(&mut w, &path)?;
        }
        if w.locks.contains_key(&path) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        let token = w.next_lock;
        w.next_lock += 1;
        w.locks.insert(path.clone(), token);
        Ok(Box::new(SimLock {
            world: self.world.clone(),
            path,
            token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_data_is_lost_and_synced_data_kept() {
        let fs = SimFs::new();
        fs.create_dir(&p("/d")).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        let f = fs.create(&p("/d/a")).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b" world", 5).unwrap();
        assert_eq!(fs.read(&p("/d/a")).unwrap(), b"hello world");
        let killed = fs.kill();
        assert_eq!(killed.read(&p("/d/a")).unwrap(), b"hello world");
        assert!(
            f.write_all_at(b"x", 0).is_err(),
            "the dead process's handle fails"
        );
        let lost = killed.power_loss(CrashPattern::DropAll);
        assert_eq!(lost.read(&p("/d/a")).unwrap(), b"hello");
        let kept = fs.fork().power_loss(CrashPattern::KeepAll);
        assert_eq!(kept.read(&p("/d/a")).unwrap(), b"hello world");
    }

    #[test]
    fn directory_entries_need_a_directory_fsync() {
        let fs = SimFs::new();
        fs.create_dir(&p("/d")).unwrap();
        let f = fs.create(&p("/d/a")).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_all().unwrap();
        // /d's own entry in / was never synced: the whole directory is lost.
        let lost = fs.fork().power_loss(CrashPattern::DropAll);
        assert!(lost.list(&p("/d")).is_err());
        fs.sync_dir(&p("/")).unwrap();
        let lost = fs.fork().power_loss(CrashPattern::DropAll);
        assert_eq!(lost.list(&p("/d")).unwrap(), Vec::<String>::new());
        fs.sync_dir(&p("/d")).unwrap();
        fs.rename(&p("/d/a"), &p("/d/b")).unwrap();
        let lost = fs.fork().power_loss(CrashPattern::DropAll);
        assert_eq!(lost.list(&p("/d")).unwrap(), vec!["a".to_string()]);
        fs.remove_file(&p("/d/b")).unwrap();
        let kept = fs.fork().power_loss(CrashPattern::KeepAll);
        assert_eq!(kept.list(&p("/d")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn random_patterns_cut_writes_at_sector_boundaries_only() {
        let mut seen_cut = false;
        for seed in 0..200 {
            let fs = SimFs::new();
            let f = fs.create(&p("/a")).unwrap();
            fs.sync_dir(&p("/")).unwrap();
            f.write_all_at(&[7u8; 2000], 100).unwrap();
            let after = fs.power_loss(CrashPattern::Random(seed));
            let data = after.read(&p("/a")).unwrap();
            let len = data.len() as u64;
            assert!(
                len == 0 || len == 2100 || (len % SECTOR == 0 && len > 100 && len < 2100),
                "length {len} is not a sector cut"
            );
            seen_cut |= len != 0 && len != 2100;
        }
        assert!(seen_cut);
    }

    #[test]
    fn crash_at_freezes_before_the_nth_mutation() {
        let fs = SimFs::new();
        fs.crash_at(2);
        let f = fs.create(&p("/a")).unwrap();
        f.write_all_at(b"1", 0).unwrap();
        assert!(f.sync_all().is_err());
        assert!(fs.frozen());
        assert!(f.read_exact_at(&mut [0u8; 1], 0).is_err());
        let after = fs.power_loss(CrashPattern::KeepAll);
        assert_eq!(after.read(&p("/a")).unwrap(), b"1");
    }

    #[test]
    fn locks_exclude_until_dropped_or_killed() {
        let fs = SimFs::new();
        let l = fs.lock(&p("/LOCK")).unwrap();
        assert!(fs.lock(&p("/LOCK")).is_err());
        drop(l);
        let _l = fs.lock(&p("/LOCK")).unwrap();
        let killed = fs.kill();
        assert!(killed.lock(&p("/LOCK")).is_ok());
    }
}
