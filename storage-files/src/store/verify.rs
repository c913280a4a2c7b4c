//! Checking a many-logs store's directory without opening it: [`verify_store`].

use std::path::Path;

use paxstore_core::verify::{check_marker, Part, Problem, Summary, Unreadable};

use super::recover::{read_seal, replay};
use super::State;
use crate::env::StdFs;
use crate::format::{self, Effect};
use crate::recovery::{is_torn_store_tail, live_from, scan_with, ScanEnd};

/// Reads and checks the many-logs store (`FilesStore`, marker `files-multi`) in `dir` without
/// opening it: no lock, nothing written or cut. It checks what open reads, by open's own
/// functions: the newest segment's header (every log's checkpoint), every sealed segment's
/// header prefix, trailer and seal record, the newest segment's records replayed (each
/// entry's checksum checked), that every log's entries are all held, and that every snapshot
/// a log refers to is there with its size. A torn final record is a note (the next open cuts
/// it off); damage with valid records after it is a problem.
///
/// [`Unreadable`] when `dir` cannot be read or is not a many-logs store.
pub fn verify_store(dir: &Path) -> Result<Summary, Unreadable> {
    let fs = StdFs;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut parts = Vec::new();
    let mut segments = Vec::new();
    let mut snapshots = Vec::new();
    for name in paxstore_core::verify::list_dir(dir)? {
        let bytes = std::fs::symlink_metadata(dir.join(&name))
            .map(|m| m.len())
            .unwrap_or(0);
        match format::parse_name(&name) {
            Some(("segment", id)) => segments.push((id, name.clone(), bytes)),
            Some((_, id)) => snapshots.push((id, name.clone(), bytes)),
            None if format::is_own_name(&name) => {}
            None => problems.push(Problem {
                file: dir.join(&name),
                offset: None,
                reason: "a file no paxstore-files store writes".into(),
            }),
        }
        parts.push((name, bytes));
    }
    segments.sort_unstable();
    let (marker, missing) = check_marker(
        dir,
        super::BACKEND,
        format::FORMAT_VERSION,
        "`FilesOptions::adopt_unmarked_store(true)`",
    )?;
    if marker.is_none() && segments.is_empty() {
        return Err(Unreadable::new(dir, "not a many-logs paxstore-files store"));
    }
    problems.extend(missing);
    let live = live_from(&segments.iter().map(|s| s.0).collect::<Vec<_>>());
    for (_, name, _) in &segments[..live] {
        notes.push(format!(
            "{name}: below a gap in the segment ids, dead (deleted at the next open)"
        ));
    }
    let segments = &segments[live..];
    let mut state = State::default();
    let mut records = 0u64;
    let mut entries = 0u64;
    let problem = |path: &Path, offset: Option<u64>, reason: String| Problem {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    if let Some((newest, newest_name, _)) = segments.last() {
        let path = dir.join(newest_name);
        let buf = std::fs::read(&path).map_err(|e| Unreadable::new(&path, e.to_string()))?;
        match format::decode_store_header(&buf) {
            Err(e) => problems.push(problem(&path, Some(0), format!("segment header: {e:?}"))),
            Ok((_, mut next_log_id, ckpt, hlen)) => {
                match State::from_checkpoint(ckpt.logs) {
                    Ok(s) => state = s,
                    Err(e) => problems.push(problem(&path, Some(0), e)),
                }
                for (id, name, _) in &segments[..segments.len() - 1] {
                    let spath = dir.join(name);
                    match read_seal(&fs, &spath) {
                        Ok((_, _, runs)) => {
                            records += 2;
                            // Every position table against its checksum (open reads them on
                            // first use).
                            let bytes = std::fs::read(&spath)
                                .map_err(|e| Unreadable::new(&spath, e.to_string()))?;
                            for r in &runs {
                                let table = (r.table_offset as usize)
                                    .checked_add(8 * r.count as usize)
                                    .and_then(|end| bytes.get(r.table_offset as usize..end));
                                if let Err(e) = table
                                    .ok_or(format::DecodeError::Corrupt("outside the file".into()))
                                    .and_then(|t| format::parse_table(r, t))
                                {
                                    problems.push(problem(
                                        &spath,
                                        Some(r.table_offset),
                                        format!("position table: {e:?}"),
                                    ));
                                }
                            }
                            state.apply_seal(*id, runs);
                        }
                        Err(e) => problems.push(problem(&spath, None, e.to_string())),
                    }
                }
                state.clamp();
                let mut bad_entries = Vec::new();
                let scan = scan_with(
                    &buf,
                    hlen,
                    format::KIND_STORE_SEAL,
                    |pos, kind, body, start| {
                        if kind == format::KIND_LOG_BATCH {
                            if let Ok((_, effects)) = format::parse_log_batch(body, start) {
                                for e in &effects {
                                    if let Effect::Append { locs, .. }
                                    | Effect::Relocate { locs, .. } = e
                                    {
                                        for l in locs {
                                            entries += 1;
                                            let at = pos + l.offset as usize;
                                            let crc = buf.get(at - 4..at).map(|b| {
                                                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                                            });
                                            if buf.get(at..at + l.len as usize).map(crc32c::crc32c)
                                                != crc
                                            {
                                                bad_entries.push(at as u64);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        replay(
                            &mut state,
                            *newest,
                            pos,
                            kind,
                            body,
                            start,
                            &mut next_log_id,
                        )
                    },
                );
                for at in bad_entries {
                    problems.push(problem(&path, Some(at), "entry checksum mismatch".into()));
                }
                records += scan.records;
                match scan.end {
                    ScanEnd::Open { .. } | ScanEnd::Sealed { .. } => {}
                    ScanEnd::Rejected { at, reason } => {
                        problems.push(problem(&path, Some(at as u64), reason))
                    }
                    ScanEnd::Undecodable { at, what, error } => problems.push(problem(
                        &path,
                        Some(at as u64),
                        format!("{what}: {error:?}"),
                    )),
                    ScanEnd::Truncated { at }
                    | ScanEnd::Bad { at, .. }
                    | ScanEnd::SealWithoutTrailer { at, .. } => {
                        if is_torn_store_tail(&buf, at) {
                            notes.push(format!(
                                "{newest_name}: a torn final record at offset {at} (cut off at the next open)"
                            ));
                        } else {
                            problems.push(problem(
                                &path,
                                Some(at as u64),
                                "damaged record with valid records after it".into(),
                            ));
                        }
                    }
                }
                for log in state.logs.values() {
                    if !log.index.covers(log.meta.first, log.meta.next) {
                        problems.push(problem(
                            dir,
                            None,
                            format!(
                                "log `{}` holds [{}, {}) but the segments hold {} of those entries",
                                log.name,
                                log.meta.first,
                                log.meta.next,
                                log.index.len()
                            ),
                        ));
                    }
                    if let Some(r) = log.meta.snapshot {
                        let ok = snapshots.iter().any(|(id, _, bytes)| {
                            *id == r.id
                                && bytes.checked_sub(format::SNAPSHOT_HEADER as u64) == Some(r.len)
                        });
                        if !ok {
                            problems.push(problem(
                                &dir.join(format::snapshot_name(r.id)),
                                None,
                                format!(
                                    "snapshot of log `{}` missing or of the wrong size",
                                    log.name
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    let logs = state
        .logs
        .values()
        .map(|l| crate::verify::log_summary(&l.name, &l.meta))
        .collect();
    let parts = parts
        .into_iter()
        .map(|(name, bytes)| {
            let detail = match format::parse_name(&name) {
                Some(("segment", _)) => "segment",
                Some(_) => "snapshot",
                None => "",
            };
            Part {
                name,
                bytes,
                detail: detail.into(),
            }
        })
        .collect();
    Ok(Summary {
        backend: super::BACKEND.into(),
        dir: dir.to_path_buf(),
        format_version: format::FORMAT_VERSION,
        marker,
        logs,
        parts,
        records_checked: records,
        entries_checked: entries,
        problems,
        notes,
    })
}
