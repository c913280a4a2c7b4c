//! Helpers shared by the integration tests of `paxstore-files`.
//!
//! Each test binary uses a different subset of them.
#![allow(dead_code)]

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::{cases, verify_store};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::FileSystem;
#[cfg(feature = "format")]
use paxstore_files::format::{self, Frame, Loc};
use paxstore_files::{FilesOptions, FilesStorage};

/// Small segments, so that a few hundred entries span several of them.
pub const SEGMENT: u64 = 4096 * 4;

pub type Store = FilesStorage<KeyValue>;

/// The default options with small segments.
pub fn opts() -> FilesOptions {
    FilesOptions::new().segment_size(SEGMENT)
}

/// The default options with small segments over the file system `fs`.
pub fn opts_on(fs: Arc<dyn FileSystem>) -> FilesOptions {
    opts().file_system(fs)
}

/// Opens `dir` with plain options, panicking with the error if it fails.
pub fn open(dir: &Path) -> Store {
    match Store::open_with(dir, opts()) {
        Ok(s) => s,
        Err(e) => panic!("open {} failed: {e}", dir.display()),
    }
}

/// The `paxstore_files::Error` behind a boxed `StorageResult` error.
pub fn files_err<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a paxstore_files::Error> {
    e.downcast_ref::<paxstore_files::Error>()
}

/// Applies `ops` to the store and, if the store accepted them, to the model.
pub fn apply(store: &mut Store, model: &mut Model<KeyValue>, ops: Vec<StorageOp<KeyValue>>) {
    let copy: Vec<_> = ops
        .iter()
        .map(paxstore_core::conformance::clone_op)
        .collect();
    model
        .apply_batch(&copy)
        .expect("the model accepts the batch");
    if let Err(e) = store.write_atomically(ops) {
        panic!("write_atomically failed: {e}");
    }
}

/// Panics unless the store's reads equal the model.
pub fn expect_state(store: &Store, model: &Model<KeyValue>, ctx: &str) {
    if let Err(e) = verify_store(store, model) {
        panic!("{ctx}: {e}");
    }
}

/// Copies the store directory `from` into `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    paxstore_core::conformance::copy_dir(from, to).unwrap();
}

/// Every file of `dir` with its bytes: to check that something changed nothing.
pub fn dir_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    paxstore_core::conformance::dir_bytes(dir).unwrap()
}

/// `paxstore_files::verify` of `dir`, checking that it changed nothing in the directory.
pub fn verify_unchanged(
    dir: &Path,
    ctx: &str,
) -> Result<paxstore_core::verify::Summary, paxstore_core::verify::Unreadable> {
    let before = dir_bytes(dir);
    let result = paxstore_files::verify(dir);
    assert!(
        dir_bytes(dir) == before,
        "{ctx}: verify changed the directory"
    );
    result
}

/// The segment files of `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "seg-", ".log")
}

/// The snapshot files of `dir`, oldest first.
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "snap-", ".snap")
}

fn files_with(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    v.sort();
    v
}

/// The newest segment file of `dir`.
pub fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("a segment file")
}

/// Flips bit `bit` of the byte at `offset` of `path`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 1 << bit;
    fs::write(path, bytes).unwrap();
}

/// Entries `[from, from + n)` with a payload of `payload` bytes, distinguishable from the
/// suite's `entry(i)` by their key.
pub fn big_entries(from: usize, n: usize, payload: usize) -> Vec<KeyValue> {
    (from..from + n)
        .map(|i| KeyValue::new(format!("big-{}", i % 11), i as u64, payload))
        .collect()
}

/// `[AppendEntries(entry(next..next + n)), SetDecidedIndex(next)]`.
pub fn append_batch(model: &Model<KeyValue>, n: usize) -> Vec<StorageOp<KeyValue>> {
    let next = model.next;
    vec![
        StorageOp::AppendEntries(cases::entries(next..next + n)),
        StorageOp::SetDecidedIndex(next),
    ]
}

/// Every read a user can make, each one separately, without panicking; returns how many
/// failed. Reads that succeed must agree with `model` where the model is known, which callers
/// check separately; this only proves that nothing panics.
pub fn read_everything(store: &Store, upto: usize) -> usize {
    let mut failed = 0;
    let mut count = |ok: bool| failed += usize::from(!ok);
    count(store.get_promise().is_ok());
    count(store.get_accepted_round().is_ok());
    count(store.get_decided_idx().is_ok());
    count(store.get_compacted_idx().is_ok());
    count(store.get_stopsign().is_ok());
    count(store.get_snapshot().is_ok());
    count(store.get_log_len().is_ok());
    for i in 0..upto {
        count(store.get_entries(i, i + 1).is_ok());
    }
    count(store.get_entries(0, upto).is_ok());
    count(store.get_suffix(0).is_ok());
    failed
}

/// The header length, trailer and seal positions of a sealed segment.
#[cfg(feature = "format")]
pub struct Sealed {
    pub path: PathBuf,
    pub header_len: u64,
    pub seal_offset: u64,
    pub first: u64,
    pub locs: Vec<Loc>,
    pub len: u64,
}

/// Reads a sealed segment's layout (feature `format`: it decodes the on-disk format).
#[cfg(feature = "format")]
pub fn sealed(path: &Path) -> Sealed {
    let bytes = std::fs::read(path).unwrap();
    let (_, header_len) = format::decode_header(&bytes).unwrap();
    let t = format::decode_trailer(&bytes[bytes.len() - format::TRAILER_LEN..]).unwrap();
    let Frame::Record { body, .. } = format::parse_frame(&bytes[t.seal_offset as usize..]) else {
        panic!("no seal record at {}", t.seal_offset)
    };
    let seal = &bytes[t.seal_offset as usize..];
    let (first, locs) = format::parse_seal(&seal[body]).unwrap();
    assert_eq!(first, t.first);
    Sealed {
        path: path.to_path_buf(),
        header_len: header_len as u64,
        seal_offset: t.seal_offset,
        first,
        locs,
        len: bytes.len() as u64,
    }
}
