//! Corruption: bits flipped in every part of a store, files removed, a foreign version. Each
//! must give a clear error (a typed `paxstore_files::Error` naming the file and, where it applies, the
//! offset) or, where the damage cannot matter, the right data; never a panic and never wrong
//! data.

mod common;

use std::path::{Path, PathBuf};

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::cases::{ballot, rewritten, snapshot_upto};
use paxstore_core::conformance::verify_store;
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::format;
use paxstore_files::RecoveryMode;
use tempfile::TempDir;

use common::*;

/// A store of several segments with a snapshot; the last segment holds six records whose
/// offsets are known.
struct Built {
    dir: TempDir,
    model: Model<KeyValue>,
    /// The model before the first record of the last segment.
    before_last: Model<KeyValue>,
    /// `(model after the record, start, end)` of each record of the last segment.
    last_records: Vec<(Model<KeyValue>, u64, u64)>,
}

fn build() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let options = opts().preallocate(false);
    let mut store = Store::open_with(dir.path(), options).unwrap();
    let mut model = Model::new();
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::SetPromise(ballot(2)),
            StorageOp::SetAcceptedRound(ballot(2)),
        ],
    );
    for _ in 0..50 {
        let ops = append_batch(&model, 30);
        apply(&mut store, &mut model, ops);
    }
    let t = model.first + 100;
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::Trim(t),
            StorageOp::SetCompactedIdx(t),
            StorageOp::SetSnapshot(Some(snapshot_upto(t))),
        ],
    );
    for _ in 0..10 {
        let ops = append_batch(&model, 30);
        apply(&mut store, &mut model, ops);
    }
    store.rotate().unwrap();
    let before_last = model.clone();
    let mut last_records = Vec::new();
    let mut start = 0;
    for k in 0..6 {
        let next = model.next;
        let ops = match k {
            1 => vec![StorageOp::SetDecidedIndex(next - 1)],
            3 => vec![StorageOp::AppendOnPrefix(
                next - 4,
                (next - 4..next + 2).map(rewritten).collect(),
            )],
            5 => vec![StorageOp::SetPromise(ballot(7))],
            _ => append_batch(&model, 10),
        };
        apply(&mut store, &mut model, ops);
        let last = last_segment(dir.path());
        if k == 0 {
            // The first record follows the header of the segment the rotation started.
            let (_, hlen) = format::decode_header(&std::fs::read(&last).unwrap()).unwrap();
            start = hlen as u64;
        }
        let end = std::fs::metadata(&last).unwrap().len();
        last_records.push((model.clone(), start, end));
        start = end;
    }
    store.wait_for_reclaim().unwrap();
    drop(store);
    assert!(segments(dir.path()).len() >= 4);
    Built {
        dir,
        model,
        before_last,
        last_records,
    }
}

/// A copy of the built store's directory.
fn copy_of(b: &Built) -> TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(b.dir.path(), d.path());
    d
}

/// The segment in `dir` with the same file name as `seg`.
fn same_file(dir: &Path, seg: &Path) -> PathBuf {
    dir.join(seg.file_name().unwrap())
}

/// A sealed segment whose entries are all live (not the oldest, not the newest).
fn middle_sealed(b: &Built) -> Sealed {
    let segs = segments(b.dir.path());
    let s = sealed(&segs[1]);
    assert!(s.first >= b.model.first as u64 && !s.locs.is_empty());
    s
}

/// `paxstore_files::verify` finds the damage too, without changing anything: a problem naming
/// `path` and, if given, `offset`.
fn expect_verify_finds(dir: &Path, path: &Path, offset: Option<u64>, ctx: &str) {
    let summary = verify_unchanged(dir, ctx).unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(
        summary
            .problems
            .iter()
            .any(|p| p.file == path && (offset.is_none() || p.offset == offset)),
        "{ctx}: verify does not report damage in {} at {offset:?}: {:?}",
        path.display(),
        summary.problems
    );
}

fn expect_corrupt(e: &paxstore_files::Error, path: &Path, offset: Option<u64>, ctx: &str) {
    match e {
        paxstore_files::Error::Corrupt {
            path: p, offset: o, ..
        } => {
            assert_eq!(p, path, "{ctx}: the error names the wrong file: {e}");
            if let Some(offset) = offset {
                assert_eq!(*o, offset, "{ctx}: the error names the wrong offset: {e}");
            }
        }
        other => panic!(
            "{ctx}: expected Corrupt naming {}, got {other}",
            path.display()
        ),
    }
}

/// Reads every entry, one by one, and checks that each read is either the model's entry or
/// a `Corrupt` error naming `seg`; entries outside `damaged` must read correctly. Returns
/// the indices that failed.
fn read_each(
    store: &Store,
    model: &Model<KeyValue>,
    damaged: std::ops::Range<u64>,
    seg: &Path,
    ctx: &str,
) -> Vec<u64> {
    let mut failed = Vec::new();
    for i in model.first..model.next {
        match store.get_entries(i, i + 1) {
            Ok(v) => assert_eq!(
                v,
                model.entries(i, i + 1),
                "{ctx}: entry {i} reads wrong data"
            ),
            Err(e) => {
                assert!(
                    damaged.contains(&(i as u64)),
                    "{ctx}: entry {i} outside the damaged segment fails: {e}"
                );
                let fe = files_err(e.as_ref()).expect("a paxstore_files::Error");
                expect_corrupt(fe, seg, None, ctx);
                failed.push(i as u64);
            }
        }
    }
    // The whole log at once: right, or an error.
    if let Ok(v) = store.get_entries(model.first, model.next) {
        assert!(
            failed.is_empty(),
            "{ctx}: a whole-log read hides a damaged entry"
        );
        assert!(
            v.iter().eq(model.log.values()),
            "{ctx}: whole-log read is wrong"
        );
    }
    failed
}

#[test]
fn flipped_bits_in_a_sealed_segments_records() {
    let b = build();
    let s = middle_sealed(&b);
    let run = s.first..s.first + s.locs.len() as u64;
    let mut detected = 0;
    let mut offsets: Vec<u64> = (s.header_len..s.seal_offset).step_by(37).collect();
    // The first and last byte of every tenth entry, and of its frame.
    for loc in s.locs.iter().step_by(10) {
        let o = loc.offset as u64;
        offsets.extend([o - 8, o, o + loc.len as u64 - 1]);
    }
    for &at in &offsets {
        let d = copy_of(&b);
        let path = same_file(d.path(), &s.path);
        flip_bit(&path, at, (at % 8) as u8);
        let ctx = format!("bit flipped at {at} of sealed {}", path.display());
        // Verify reads every record.
        expect_verify_finds(d.path(), &path, None, &ctx);
        // Open reads only the header and trailer of a sealed segment.
        let store = Store::open_with(d.path(), opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let failed = read_each(&store, &b.model, run.clone(), &path, &ctx);
        // A flip inside a live entry or its frame must fail exactly that entry.
        let hit = s.locs.iter().enumerate().find(|(_, l)| {
            let o = l.offset as u64;
            (o - 8..o + l.len as u64).contains(&at)
        });
        if let Some((k, l)) = hit {
            let i = s.first + k as u64;
            assert_eq!(failed, vec![i], "{ctx}: entry {i} holds the flipped bit");
            let e = store.get_entries(i as usize, i as usize + 1).unwrap_err();
            expect_corrupt(
                files_err(e.as_ref()).unwrap(),
                &path,
                Some(l.offset as u64),
                &ctx,
            );
            assert!(e.to_string().contains(&format!("entry {i}")), "{ctx}: {e}");
            detected += 1;
        } else {
            assert!(
                failed.is_empty(),
                "{ctx}: entries {failed:?} fail, none was hit"
            );
        }
        verify_metadata(&store, &b.model, &ctx);
    }
    assert!(detected > offsets.len() / 2, "most flips land in entries");
}

fn verify_metadata(store: &Store, model: &Model<KeyValue>, ctx: &str) {
    assert_eq!(store.get_promise().unwrap(), model.promise, "{ctx}");
    assert_eq!(store.get_decided_idx().unwrap(), model.decided_idx, "{ctx}");
    assert_eq!(store.get_log_len().unwrap(), model.log_len(), "{ctx}");
    assert_eq!(store.get_snapshot().unwrap(), model.snapshot, "{ctx}");
}

#[test]
fn flipped_bits_in_a_sealed_segments_seal_and_trailer() {
    let b = build();
    let s = middle_sealed(&b);
    let run = s.first..s.first + s.locs.len() as u64;
    let trailer_at = s.len - format::TRAILER_LEN as u64;
    let mut offsets: Vec<u64> = (s.seal_offset..s.seal_offset + 32).collect();
    offsets.extend((s.seal_offset + 32..trailer_at).step_by(29));
    offsets.extend(trailer_at..s.len);
    for &at in &offsets {
        let d = copy_of(&b);
        let path = same_file(d.path(), &s.path);
        flip_bit(&path, at, (at % 8) as u8);
        let ctx = format!(
            "bit flipped at {at} of sealed {} (seal at {})",
            path.display(),
            s.seal_offset
        );
        expect_verify_finds(d.path(), &path, None, &ctx);
        if at >= trailer_at {
            let e = Store::open_with(d.path(), opts()).expect_err(&ctx);
            expect_corrupt(&e, &path, Some(trailer_at), &ctx);
            continue;
        }
        // The seal record is read when the segment's entries are first read.
        let store = Store::open_with(d.path(), opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let failed = read_each(&store, &b.model, run.clone(), &path, &ctx);
        assert_eq!(
            failed,
            run.clone().collect::<Vec<_>>(),
            "{ctx}: every entry of the segment fails"
        );
        let e = store
            .get_entries(run.start as usize, run.start as usize + 1)
            .unwrap_err();
        expect_corrupt(
            files_err(e.as_ref()).unwrap(),
            &path,
            Some(s.seal_offset),
            &ctx,
        );
    }
}

#[test]
fn flipped_bits_in_segment_headers() {
    let b = build();
    let segs = segments(b.dir.path());
    for seg in [&segs[1], segs.last().unwrap()] {
        let bytes = std::fs::read(seg).unwrap();
        let (_, hlen) = format::decode_header(&bytes).unwrap();
        for at in 0..hlen as u64 {
            let d = copy_of(&b);
            let path = same_file(d.path(), seg);
            flip_bit(&path, at, (at % 8) as u8);
            let ctx = format!("bit flipped at {at} of the header of {}", path.display());
            match verify_unchanged(d.path(), &ctx) {
                Err(e) => assert!(
                    (8..12).contains(&at) && e.reason.contains("format version"),
                    "{ctx}: verify: {e}"
                ),
                Ok(_) => expect_verify_finds(d.path(), &path, None, &ctx),
            }
            match Store::open_with(d.path(), opts()) {
                Ok(_) => panic!("{ctx}: opened"),
                Err(paxstore_files::Error::FormatVersion {
                    path: p,
                    found,
                    expected,
                }) => {
                    assert!(
                        (8..12).contains(&at),
                        "{ctx}: version error from a non-version byte"
                    );
                    assert_eq!(
                        (p, expected),
                        (path.clone(), format::FORMAT_VERSION),
                        "{ctx}"
                    );
                    assert_ne!(found, format::FORMAT_VERSION, "{ctx}");
                }
                Err(e) => expect_corrupt(&e, &path, None, &ctx),
            }
        }
    }
}

#[test]
fn flipped_bits_in_the_last_segment_before_a_valid_record() {
    let b = build();
    let last = last_segment(b.dir.path());
    let n = b.last_records.len();
    for (k, (_, start, end)) in b.last_records.iter().enumerate() {
        for at in *start..*end {
            let d = copy_of(&b);
            let path = same_file(d.path(), &last);
            flip_bit(&path, at, (at % 8) as u8);
            let ctx = format!(
                "bit flipped at {at} of record {k} [{start}, {end}) of {}",
                path.display()
            );
            let verified = verify_unchanged(d.path(), &ctx).unwrap();
            let result = Store::open_with(d.path(), opts());
            if k + 1 < n {
                // Verify calls damage what open refuses, at the same offset.
                expect_verify_finds(d.path(), &path, Some(*start), &ctx);
                let e = result.expect_err(&format!("{ctx}: opened"));
                expect_corrupt(&e, &path, Some(*start), &ctx);
                // Lenient recovery opens the batches before the damaged record.
                if at % 5 == 0 {
                    let lenient = opts().recovery(RecoveryMode::Lenient);
                    let store = Store::open_with(d.path(), lenient)
                        .unwrap_or_else(|e| panic!("{ctx}: lenient open failed: {e}"));
                    let before = match k {
                        0 => b.before_last.clone(),
                        _ => b.last_records[k - 1].0.clone(),
                    };
                    if let Err(e) = verify_store(&store, &before) {
                        panic!("{ctx}: lenient open is not the state before the record: {e}");
                    }
                }
            } else {
                // The last record: indistinguishable from a torn write, it is cut; verify
                // says so, and calls the store clean.
                assert!(verified.is_clean(), "{ctx}: {:?}", verified.problems);
                assert!(
                    verified.notes.iter().any(|n| n.contains("next open cuts")),
                    "{ctx}: {:?}",
                    verified.notes
                );
                let store = result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let before = &b.last_records[k - 1].0;
                if let Err(e) = verify_store(&store, before) {
                    panic!("{ctx}: not the state before the damaged last record: {e}");
                }
            }
        }
    }
}

#[test]
fn flipped_bits_in_the_snapshot_file() {
    let b = build();
    let snap = snapshots(b.dir.path()).pop().unwrap();
    let len = std::fs::metadata(&snap).unwrap().len();
    for at in 0..len {
        if at >= format::SNAPSHOT_HEADER as u64 && at % 3 != 0 {
            continue;
        }
        let d = copy_of(&b);
        let path = same_file(d.path(), &snap);
        flip_bit(&path, at, (at % 8) as u8);
        let ctx = format!("bit flipped at {at} of {}", path.display());
        // Open checks the snapshot file's presence and size; the content when it is read.
        let store = Store::open_with(d.path(), opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let e = store.get_snapshot().expect_err(&ctx);
        match files_err(e.as_ref()).unwrap() {
            paxstore_files::Error::FormatVersion { path: p, .. } => {
                assert!((8..12).contains(&at), "{ctx}: {e}");
                assert_eq!(p, &path);
            }
            fe => expect_corrupt(fe, &path, None, &ctx),
        }
        // Everything else still reads.
        let mut m = b.model.clone();
        m.snapshot = None;
        assert_eq!(
            read_everything(&store, b.model.next + 2),
            1,
            "{ctx}: only get_snapshot fails"
        );
        assert_eq!(
            store.get_entries(m.first, m.next).unwrap().len(),
            m.log_len()
        );
    }
}

#[test]
fn truncated_snapshot_file() {
    let b = build();
    let d = copy_of(&b);
    let snap = snapshots(d.path()).pop().unwrap();
    let len = std::fs::metadata(&snap).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    expect_verify_finds(d.path(), &snap, None, "truncated snapshot file");
    let e = Store::open_with(d.path(), opts()).unwrap_err();
    expect_corrupt(&e, &snap, None, "truncated snapshot file");
}

#[test]
fn missing_snapshot_file() {
    let b = build();
    let d = copy_of(&b);
    let snap = snapshots(d.path()).pop().unwrap();
    std::fs::remove_file(&snap).unwrap();
    expect_verify_finds(d.path(), &snap, None, "missing snapshot file");
    let e = Store::open_with(d.path(), opts()).unwrap_err();
    expect_corrupt(&e, &snap, None, "missing snapshot file");
    assert!(e.to_string().contains("missing"), "{e}");

    let store = Store::open_with(d.path(), opts().recovery(RecoveryMode::Lenient)).unwrap();
    let mut m = b.model.clone();
    m.snapshot = None;
    if let Err(e) = verify_store(&store, &m) {
        panic!("lenient open without the snapshot file: {e}");
    }
}

#[test]
fn missing_oldest_segment_file() {
    let b = build();
    let d = copy_of(&b);
    let segs = segments(d.path());
    std::fs::remove_file(&segs[0]).unwrap();
    expect_verify_finds(d.path(), &segs[0], None, "missing oldest segment file");
    match Store::open_with(d.path(), opts()) {
        Err(paxstore_files::Error::Corrupt { .. }) => {}
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("opened without the segment holding the first entries"),
    }
}

#[test]
fn missing_segment_file() {
    let b = build();
    let d = copy_of(&b);
    let segs = segments(d.path());
    std::fs::remove_file(&segs[1]).unwrap();
    expect_verify_finds(d.path(), &segs[1], None, "missing segment file");
    let e = Store::open_with(d.path(), opts()).unwrap_err();
    expect_corrupt(&e, &segs[1], Some(0), "missing segment file");
}

/// Rewrites the version field of a segment header (and its checksum, so that only the
/// version is wrong).
fn set_segment_version(path: &Path, version: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let hlen = format::header_len(&bytes[..format::SEGMENT_HEADER_PREFIX]).unwrap();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c(&bytes[..hlen - 4]);
    bytes[hlen - 4..hlen].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// CRC32C (Castagnoli), bitwise: the tests do not depend on the engine's implementation.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn wrong_format_version() {
    let b = build();
    let segs = segments(b.dir.path());
    for seg in [&segs[1], segs.last().unwrap()] {
        let d = copy_of(&b);
        let path = same_file(d.path(), seg);
        set_segment_version(&path, 2);
        match Store::open_with(d.path(), opts()) {
            Err(paxstore_files::Error::FormatVersion {
                path: p,
                found: 2,
                expected: format::FORMAT_VERSION,
            }) => assert_eq!(p, path),
            Err(e) => panic!("expected FormatVersion for {}, got {e}", path.display()),
            Ok(_) => panic!("opened a segment of version 2"),
        }
    }
    // A snapshot file of another version.
    let d = copy_of(&b);
    let snap = snapshots(d.path()).pop().unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c(&bytes[..32]);
    bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&snap, bytes).unwrap();
    let store = Store::open_with(d.path(), opts()).unwrap();
    let e = store.get_snapshot().unwrap_err();
    match files_err(e.as_ref()).unwrap() {
        paxstore_files::Error::FormatVersion { path, found: 2, .. } => assert_eq!(path, &snap),
        other => panic!("expected FormatVersion for the snapshot file, got {other}"),
    }
}

#[test]
fn foreign_files_are_not_segments() {
    let b = build();
    let d = copy_of(&b);
    // A file with a segment's name that is not one.
    let segs = segments(d.path());
    std::fs::write(&segs[1], b"this is not a paxstore segment, just text").unwrap();
    expect_verify_finds(
        d.path(),
        &segs[1],
        Some(0),
        "a text file named like a segment",
    );
    let e = Store::open_with(d.path(), opts()).unwrap_err();
    expect_corrupt(&e, &segs[1], Some(0), "a text file named like a segment");
    // An empty one.
    std::fs::write(&segs[1], b"").unwrap();
    expect_verify_finds(
        d.path(),
        &segs[1],
        Some(0),
        "an empty file named like a segment",
    );
    let e = Store::open_with(d.path(), opts()).unwrap_err();
    expect_corrupt(&e, &segs[1], Some(0), "an empty file named like a segment");
}
