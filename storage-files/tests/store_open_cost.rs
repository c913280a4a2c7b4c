//! What a many-logs store's open reads: the newest segment whole, and of each sealed segment
//! only its header prefix, its trailer and its seal summary (40 bytes per log with entries in
//! it), never its records nor its position tables (read on first use), as the single-log
//! store's open reads only trailers.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use omnipaxos::storage::Storage;
use paxstore_core::kv::KeyValue;
use paxstore_files::env::{FileSystem, FsFile, FsLock, StdFs};
use paxstore_files::{FilesOptions, FilesStore};

/// The real file system, counting the bytes read per file name.
#[derive(Default)]
struct Counting {
    read: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    total: Arc<AtomicU64>,
}

struct CountingFile {
    inner: Arc<dyn FsFile>,
    name: String,
    read: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    total: Arc<AtomicU64>,
}

impl FsFile for CountingFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        *self
            .read
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += buf.len() as u64;
        self.total.fetch_add(buf.len() as u64, Ordering::SeqCst);
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
}

impl Counting {
    fn wrap(&self, path: &Path, f: Arc<dyn FsFile>) -> Arc<dyn FsFile> {
        Arc::new(CountingFile {
            inner: f,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            read: self.read.clone(),
            total: self.total.clone(),
        })
    }
}

impl FileSystem for Counting {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        Ok(self.wrap(path, StdFs.open(path)?))
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        Ok(self.wrap(path, StdFs.create(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        StdFs.lock(path)
    }
}

#[test]
fn open_reads_the_newest_segment_and_only_the_seals_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let segment = 64 << 10;
    let options = || FilesOptions::new().segment_size(segment);
    {
        let store = FilesStore::open_with(dir.path(), options()).unwrap();
        let mut logs: Vec<_> = (0..20)
            .map(|k| store.log::<KeyValue>(&format!("log-{k}")).unwrap())
            .collect();
        // About 1.6 MiB of entries, none trimmed: some 25 sealed segments.
        for round in 0..40u64 {
            for log in logs.iter_mut() {
                log.append_entries(
                    (0..8)
                        .map(|i| KeyValue::new("k", round * 8 + i, 200))
                        .collect(),
                )
                .unwrap();
            }
        }
    }
    let mut segments: Vec<(String, u64)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    segments.sort();
    assert!(segments.len() >= 10, "only {} segments", segments.len());
    let (newest, newest_len) = segments.last().cloned().unwrap();
    let sealed_bytes: u64 = segments[..segments.len() - 1].iter().map(|s| s.1).sum();

    let fs = Arc::new(Counting::default());
    let store = FilesStore::open_with(dir.path(), options().file_system(fs.clone())).unwrap();
    let read = fs.read.lock().unwrap().clone();
    let total = fs.total.load(Ordering::SeqCst);
    // The newest segment whole; a sealed one: 32-byte header prefix, 32-byte trailer and its
    // summary (13 bytes and 40 per run; 20 logs here), nothing of its records or tables.
    assert_eq!(read.get(&newest), Some(&newest_len), "{read:?}");
    let sealed = segments.len() as u64 - 1;
    for (name, len) in &segments[..segments.len() - 1] {
        let got = read.get(name).copied().unwrap_or(0);
        assert!(
            got <= 32 + 32 + 13 + 40 * 20,
            "open read {got} of the {len} bytes of sealed segment {name}"
        );
    }
    assert!(
        total <= newest_len + sealed * (32 + 32 + 13 + 40 * 20) + 4096,
        "open read {total} bytes; the newest segment holds {newest_len}, the {sealed} sealed ones {sealed_bytes}"
    );
    // And what it built is right: every log reads back whole (loading the tables).
    for k in 0..20 {
        let log = store.log::<KeyValue>(&format!("log-{k}")).unwrap();
        assert_eq!(log.get_log_len().unwrap(), 320);
        let e = log.get_entries(0, 320).unwrap();
        assert!(e.iter().enumerate().all(|(i, kv)| kv.value == i as u64));
    }
}
