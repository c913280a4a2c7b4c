//! The decoders and recovery never panic, whatever the bytes.
//!
//! - Every public decoder of `format` over random buffers, and over buffers that pass the
//!   first checks (right magic and version, valid checksums) so that the deeper code runs.
//! - Random mutations of the files of a valid store (bit flips, overwritten bytes, cuts,
//!   insertions), then an open in strict and lenient mode, a read of everything and a write.
//! - Foreign data with valid checksums: trailers, seal records, header checkpoints and batch
//!   records whose every field is arbitrary (0, `u64::MAX`, off by one, random), so that only
//!   the engine's own checks stand between them and a panic.
//!
//! Errors are fine; panics are not (proptest reports a panic as a failure, shrunk).

mod common;

use std::path::Path;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::cases::{ballot, entry, snapshot_upto};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::format::{self, BatchBuilder, Checkpoint, Loc, MetaOp, SnapshotRef, Trailer};
use paxstore_files::{FilesOptions, RecoveryMode};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tempfile::TempDir;

use common::*;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Values where arithmetic goes wrong, and random ones.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u32::MAX as u64),
        Just(1 << 32),
        Just(1 << 63),
        0u64..3000,
        any::<u64>(),
    ]
}

fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(7),
        Just(8),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        0u32..20_000,
        any::<u32>(),
    ]
}

// ---- the decoders alone ----

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn decoders_never_panic_on_random_bytes(
        bytes in vec(any::<u8>(), 0..400),
        body_offset in 0usize..64,
    ) {
        for start in 0..bytes.len().min(48) {
            let b = &bytes[start..];
            let _ = format::parse_frame(b);
            let _ = format::parse_batch(b, body_offset);
            let _ = format::parse_seal(b);
            let _ = format::header_len(b);
            let _ = format::decode_header(b);
            let _ = format::decode_trailer(b);
            let _ = format::decode_snapshot_header(b);
        }
        if bytes.len() >= format::TRAILER_LEN {
            let _ = format::decode_trailer(&bytes[..format::TRAILER_LEN]);
        }
    }

    /// Records with a valid checksum around random bodies: the frame parses, and the body
    /// decoders see bytes that passed the checksum.
    #[test]
    fn framed_random_bodies_never_panic(
        kind in prop_oneof![Just(format::KIND_BATCH), Just(format::KIND_SEAL), any::<u8>()],
        body in vec(any::<u8>(), 0..300),
        tail in vec(any::<u8>(), 0..20),
    ) {
        let mut rec = vec![0u8; format::RECORD_HEADER];
        rec.extend_from_slice(&body);
        format::seal_record_frame(&mut rec, kind);
        let total = rec.len();
        rec.extend_from_slice(&tail);
        match format::parse_frame(&rec) {
            format::Frame::Record { kind: k, body: range, total: t } => {
                prop_assert_eq!(k, kind);
                prop_assert_eq!(t, total);
                let _ = format::parse_batch(&rec[range.clone()], range.start);
                let _ = format::parse_seal(&rec[range]);
            }
            other => prop_assert!(
                kind != format::KIND_BATCH && kind != format::KIND_SEAL,
                "a valid frame of kind {} parsed as {:?}", kind, other
            ),
        }
    }

    /// Batch bodies made of well-formed op headers with arbitrary fields.
    #[test]
    fn structured_batch_bodies_never_panic(
        count in edge_u32(),
        ops in vec((0u8..5, edge_u64(), edge_u32(), vec(any::<u8>(), 0..40)), 0..8),
    ) {
        let mut body = count.to_le_bytes().to_vec();
        for (tag, a, b, bytes) in ops {
            body.push(tag);
            match tag {
                1 => {
                    body.extend_from_slice(&a.to_le_bytes());
                    body.extend_from_slice(&b.to_le_bytes());
                    body.extend_from_slice(&bytes);
                }
                2 => body.extend_from_slice(&a.to_le_bytes()),
                3 => {
                    body.extend_from_slice(&b.to_le_bytes());
                    body.extend_from_slice(&bytes);
                }
                _ => body.extend_from_slice(&bytes),
            }
        }
        let _ = format::parse_batch(&body, format::RECORD_HEADER);
    }

    /// Segment headers and snapshot headers with the right magic, version and checksum
    /// around arbitrary fields.
    #[test]
    fn checksummed_headers_never_panic(
        id in edge_u64(),
        first_index in edge_u64(),
        ckpt_len in prop_oneof![edge_u32(), 0u32..200],
        ckpt in vec(any::<u8>(), 0..200),
        r in (edge_u64(), edge_u64(), any::<u32>()),
        t in (edge_u64(), edge_u64(), edge_u64()),
    ) {
        let mut h = format::SEGMENT_MAGIC.to_vec();
        h.extend_from_slice(&format::FORMAT_VERSION.to_le_bytes());
        h.extend_from_slice(&id.to_le_bytes());
        h.extend_from_slice(&first_index.to_le_bytes());
        h.extend_from_slice(&ckpt_len.to_le_bytes());
        h.extend_from_slice(&ckpt);
        let crc = crc32c::crc32c(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        let _ = format::header_len(&h);
        let _ = format::decode_header(&h);

        let r = SnapshotRef { id: r.0, len: r.1, crc: r.2 };
        let sh = format::encode_snapshot_header(&r);
        prop_assert_eq!(format::decode_snapshot_header(&sh), Ok(r));
        let t = Trailer { seal_offset: t.0, first: t.1, count: t.2 };
        prop_assert_eq!(format::decode_trailer(&format::encode_trailer(&t)), Some(t));
    }
}

// ---- whole stores ----

/// A store of a few segments (preallocation off, so the last segment ends at its last
/// record) with a snapshot.
fn template() -> (TempDir, Model<KeyValue>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_with(dir.path(), options(RecoveryMode::Strict)).unwrap();
    let mut model = Model::new();
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::SetPromise(ballot(1)),
            StorageOp::SetAcceptedRound(ballot(1)),
        ],
    );
    for k in 0..40 {
        let ops = append_batch(&model, 30);
        apply(&mut store, &mut model, ops);
        if k == 20 {
            let t = model.first + 150;
            apply(
                &mut store,
                &mut model,
                vec![
                    StorageOp::Trim(t),
                    StorageOp::SetCompactedIdx(t),
                    StorageOp::SetSnapshot(Some(snapshot_upto(t))),
                ],
            );
        }
    }
    store.wait_for_reclaim().unwrap();
    drop(store);
    assert!(segments(dir.path()).len() >= 3);
    (dir, model)
}

fn options(mode: RecoveryMode) -> FilesOptions {
    opts().preallocate(false).recovery(mode)
}

/// Opens (strict and lenient, each on its own copy), reads everything, writes, reopens.
/// Returns how many of the two opens succeeded.
fn exercise(dir: &Path) -> usize {
    let mut opened = 0;
    for mode in [RecoveryMode::Strict, RecoveryMode::Lenient] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir, copy.path());
        let Ok(mut store) = Store::open_with(copy.path(), options(mode)) else {
            continue;
        };
        opened += 1;
        let b = store.bounds();
        let (first, next) = (b.first, b.next);
        let _ = store.get_promise();
        let _ = store.get_accepted_round();
        let _ = store.get_decided_idx();
        let _ = store.get_compacted_idx();
        let _ = store.get_stopsign();
        let _ = store.get_snapshot();
        let _ = store.get_log_len();
        for i in first..next.min(first.saturating_add(2000)) {
            let _ = store.get_entries(i, i.saturating_add(1));
        }
        let _ = store.get_entries(first, next);
        let _ = store.get_suffix(first);
        let _ = store.get_entries(next.saturating_sub(3), next);
        let _ = store.append_entries(vec![entry(next), entry(next.wrapping_add(1))]);
        let _ = store.append_on_prefix(next, vec![entry(next)]);
        let _ = store.trim(first.saturating_add(1));
        let _ = store.set_snapshot(Some(snapshot_upto(3)));
        drop(store);
        if let Ok(store) = Store::open_with(copy.path(), options(mode)) {
            let b = store.bounds();
            let _ = store.get_entries(b.first, b.next);
            let _ = store.get_snapshot();
        }
    }
    opened
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(u64, u8),
    Set(u64, u8),
    Cut(u64),
    Insert(u64, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<u64>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        2 => (any::<u64>(), any::<u8>()).prop_map(|(at, v)| Mutation::Set(at, v)),
        1 => any::<u64>().prop_map(Mutation::Cut),
        1 => (any::<u64>(), vec(any::<u8>(), 1..16)).prop_map(|(at, v)| Mutation::Insert(at, v)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len() as u64;
    if len == 0 {
        return;
    }
    match m {
        Mutation::Flip(at, bit) => bytes[(at % len) as usize] ^= 1 << bit,
        Mutation::Set(at, v) => bytes[(at % len) as usize] = *v,
        Mutation::Cut(at) => bytes.truncate((at % len) as usize),
        Mutation::Insert(at, v) => {
            let at = (at % len) as usize;
            bytes.splice(at..at, v.iter().copied());
        }
    }
}

#[test]
fn mutated_store_files_never_panic() {
    let (template, _) = template();
    let mut files = segments(template.path());
    files.extend(snapshots(template.path()));
    let n_files = files.len();
    let mut runner = TestRunner::new(config(300));
    let opened = std::cell::Cell::new(0);
    runner
        .run(&(0..n_files, vec(mutation(), 1..6)), |(file, mutations)| {
            let d = tempfile::tempdir().unwrap();
            copy_dir(template.path(), d.path());
            let path = d.path().join(files[file].file_name().unwrap());
            let mut bytes = std::fs::read(&path).unwrap();
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            std::fs::write(&path, bytes).unwrap();
            opened.set(opened.get() + exercise(d.path()));
            Ok(())
        })
        .unwrap();
    eprintln!("mutated stores: {} of 600 opens succeeded", opened.get());
}

/// What replaces part of a store with checksummed but arbitrary content.
#[derive(Debug, Clone)]
enum Crafted {
    /// The trailer of a sealed segment.
    Trailer {
        seal_offset: u64,
        first: u64,
        count: u64,
    },
    /// The seal record (and a trailer that agrees with it) of a sealed segment.
    Seal {
        first: u64,
        locs: Vec<(u32, u32)>,
        trailer_first: Option<u64>,
    },
    /// The header (and checkpoint) of the last segment.
    Header { first_index: u64, ckpt: Checkpoint },
    /// Batch records appended to the last segment.
    Records(Vec<Vec<CraftedOp>>),
}

#[derive(Debug, Clone)]
enum CraftedOp {
    Append(u64, usize),
    Trim(u64),
    Meta(MetaOp),
}

fn snapshot_ref() -> impl Strategy<Value = Option<SnapshotRef>> {
    prop_oneof![
        Just(None),
        (edge_u64(), edge_u64(), any::<u32>()).prop_map(|(id, len, crc)| Some(SnapshotRef {
            id,
            len,
            crc
        })),
        // The template's snapshot file is id 1.
        (Just(1u64), edge_u64(), any::<u32>()).prop_map(|(id, len, crc)| Some(SnapshotRef {
            id,
            len,
            crc
        })),
    ]
}

fn crafted_op() -> impl Strategy<Value = CraftedOp> {
    prop_oneof![
        (edge_u64(), 0usize..4).prop_map(|(at, n)| CraftedOp::Append(at, n)),
        edge_u64().prop_map(CraftedOp::Trim),
        edge_u64().prop_map(|i| CraftedOp::Meta(MetaOp::Decided(i))),
        edge_u64().prop_map(|i| CraftedOp::Meta(MetaOp::Compacted(i))),
        snapshot_ref().prop_map(|r| CraftedOp::Meta(MetaOp::Snapshot(r))),
        Just(CraftedOp::Meta(MetaOp::Stopsign(None))),
    ]
}

fn crafted() -> impl Strategy<Value = Crafted> {
    prop_oneof![
        (edge_u64(), edge_u64(), edge_u64()).prop_map(|(seal_offset, first, count)| {
            Crafted::Trailer {
                seal_offset,
                first,
                count,
            }
        }),
        (
            edge_u64(),
            vec((edge_u32(), edge_u32()), 0..40),
            proptest::option::of(edge_u64())
        )
            .prop_map(|(first, locs, trailer_first)| Crafted::Seal {
                first,
                locs,
                trailer_first,
            }),
        (
            edge_u64(),
            edge_u64(),
            edge_u64(),
            edge_u64(),
            edge_u64(),
            snapshot_ref()
        )
            .prop_map(|(first_index, first, next, decided, compacted, snapshot)| {
                Crafted::Header {
                    first_index,
                    ckpt: Checkpoint {
                        first,
                        next,
                        promise: None,
                        accepted: None,
                        decided,
                        compacted,
                        stopsign: None,
                        snapshot,
                    },
                }
            }),
        vec(vec(crafted_op(), 1..4), 1..3).prop_map(Crafted::Records),
    ]
}

/// Writes `c` into the store in `dir`.
fn plant(dir: &Path, c: &Crafted) {
    let segs = segments(dir);
    let last = segs.last().unwrap();
    match c {
        Crafted::Trailer {
            seal_offset,
            first,
            count,
        } => {
            let s = sealed(&segs[1]);
            let mut bytes = std::fs::read(&s.path).unwrap();
            let at = bytes.len() - format::TRAILER_LEN;
            bytes[at..].copy_from_slice(&format::encode_trailer(&Trailer {
                seal_offset: *seal_offset,
                first: *first,
                count: *count,
            }));
            std::fs::write(&s.path, bytes).unwrap();
        }
        Crafted::Seal {
            first,
            locs,
            trailer_first,
        } => {
            let s = sealed(&segs[1]);
            let mut bytes = std::fs::read(&s.path).unwrap();
            bytes.truncate(s.seal_offset as usize);
            let locs: Vec<Loc> = locs
                .iter()
                .map(|&(offset, len)| Loc { offset, len })
                .collect();
            bytes.extend_from_slice(&format::encode_seal(*first, &locs));
            bytes.extend_from_slice(&format::encode_trailer(&Trailer {
                seal_offset: s.seal_offset,
                first: trailer_first.unwrap_or(*first),
                count: locs.len() as u64,
            }));
            std::fs::write(&s.path, bytes).unwrap();
        }
        Crafted::Header { first_index, ckpt } => {
            let bytes = std::fs::read(last).unwrap();
            let (old, hlen) = format::decode_header(&bytes).unwrap();
            let mut new = format::encode_header(&format::SegmentHeader {
                id: old.id,
                first_index: *first_index,
                checkpoint: ckpt.clone(),
            })
            .unwrap();
            new.extend_from_slice(&bytes[hlen..]);
            std::fs::write(last, new).unwrap();
        }
        Crafted::Records(records) => {
            let mut bytes = std::fs::read(last).unwrap();
            for ops in records {
                let mut b = BatchBuilder::new();
                for op in ops {
                    match op {
                        CraftedOp::Append(at, n) => {
                            let entries: Vec<KeyValue> =
                                (0..*n).map(|k| entry(k + *at as usize % 1000)).collect();
                            b.append(*at, &entries).unwrap();
                        }
                        CraftedOp::Trim(i) => b.trim(*i),
                        CraftedOp::Meta(m) => b.meta(m.clone()).unwrap(),
                    }
                }
                let (rec, _) = b.finish();
                bytes.extend_from_slice(&rec);
            }
            std::fs::write(last, bytes).unwrap();
        }
    }
}

#[test]
fn checksummed_foreign_content_never_panics() {
    let (template, _) = template();
    let mut runner = TestRunner::new(config(400));
    let opened = std::cell::Cell::new(0);
    runner
        .run(&crafted(), |c| {
            let d = tempfile::tempdir().unwrap();
            copy_dir(template.path(), d.path());
            plant(d.path(), &c);
            opened.set(opened.get() + exercise(d.path()));
            Ok(())
        })
        .unwrap();
    eprintln!("crafted stores: {} of 800 opens succeeded", opened.get());
}

// ---- named cases the property tests found (each panicked before the engine checked it) ----

fn strict_open_fails_corrupt(dir: &Path, ctx: &str) {
    match Store::open_with(dir, options(RecoveryMode::Strict)) {
        Err(paxstore_files::Error::Corrupt { .. }) => {}
        Err(e) => panic!("{ctx}: expected Corrupt, got {e}"),
        Ok(_) => panic!("{ctx}: opened"),
    }
}

fn planted(template: &Path, c: &Crafted) -> TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(template, d.path());
    plant(d.path(), c);
    d
}

#[test]
fn trailer_fields_that_overflow_are_corruption() {
    let (template, _) = template();
    let s = sealed(&segments(template.path())[1]);
    let count = s.locs.len() as u64;
    for (seal_offset, first, count) in [
        (u64::MAX, 0, 0),
        (s.seal_offset, u64::MAX, count),
        (s.seal_offset, u64::MAX - 1, count),
        (s.seal_offset, s.first, u64::MAX / 4),
    ] {
        let c = Crafted::Trailer {
            seal_offset,
            first,
            count,
        };
        let d = planted(template.path(), &c);
        strict_open_fails_corrupt(d.path(), &format!("{c:?}"));
        exercise(d.path());
    }
}

#[test]
fn seal_positions_outside_the_segment_are_corruption() {
    let (template, model) = template();
    let s = sealed(&segments(template.path())[1]);
    let run = s.first as usize..s.first as usize + s.locs.len();
    let locs: Vec<(u32, u32)> = s.locs.iter().map(|l| (l.offset, l.len)).collect();
    let mut variants = Vec::new();
    for (k, loc) in [
        (0, (0, 0)),
        (0, (3, 10)),
        (1, (locs[1].0, u32::MAX)),
        (2, (u32::MAX, 1)),
    ] {
        let mut v = locs.clone();
        v[k] = loc;
        variants.push((k, v));
    }
    for (k, locs) in variants {
        let c = Crafted::Seal {
            first: s.first,
            locs,
            trailer_first: None,
        };
        let d = planted(template.path(), &c);
        // Open reads the seal lazily; the damaged positions surface on read.
        let store = Store::open_with(d.path(), options(RecoveryMode::Strict)).unwrap();
        let i = run.start + k;
        let e = store.get_entries(i, i + 1).unwrap_err();
        assert!(
            matches!(
                files_err(e.as_ref()),
                Some(paxstore_files::Error::Corrupt { .. })
            ),
            "entry {i}: {e}"
        );
        assert!(store.get_entries(run.start, run.end).is_err());
        // Entries of other segments still read.
        let j = run.end + 1;
        assert_eq!(
            store.get_entries(j, j + 1).unwrap(),
            model.entries(j, j + 1)
        );
    }
}

#[test]
fn batch_records_that_overflow_the_index_are_corruption() {
    let (template, _) = template();
    for records in [
        vec![
            vec![CraftedOp::Trim(u64::MAX - 1)],
            vec![CraftedOp::Append(u64::MAX - 1, 3)],
        ],
        vec![vec![
            CraftedOp::Trim(u64::MAX),
            CraftedOp::Append(u64::MAX, 1),
        ]],
    ] {
        let c = Crafted::Records(records);
        let d = planted(template.path(), &c);
        strict_open_fails_corrupt(d.path(), &format!("{c:?}"));
        exercise(d.path());
    }
}

#[test]
fn impossible_checkpoints_are_corruption() {
    let (template, _) = template();
    let last = segments(template.path()).pop().unwrap();
    let (header, _) = format::decode_header(&std::fs::read(last).unwrap()).unwrap();
    let mut inverted = header.checkpoint.clone();
    (inverted.first, inverted.next) = (inverted.next + 10, inverted.first);
    let mut huge_snapshot = header.checkpoint.clone();
    let r = huge_snapshot.snapshot.expect("the template has a snapshot");
    huge_snapshot.snapshot = Some(SnapshotRef { len: u64::MAX, ..r });
    for ckpt in [inverted, huge_snapshot.clone()] {
        let c = Crafted::Header {
            first_index: header.first_index,
            ckpt,
        };
        let d = planted(template.path(), &c);
        strict_open_fails_corrupt(d.path(), &format!("{c:?}"));
        exercise(d.path());
    }
    // Lenient recovery forgets a snapshot whose file does not match.
    let c = Crafted::Header {
        first_index: header.first_index,
        ckpt: huge_snapshot,
    };
    let d = planted(template.path(), &c);
    let store = Store::open_with(d.path(), options(RecoveryMode::Lenient)).unwrap();
    assert_eq!(store.get_snapshot().unwrap(), None);
}
