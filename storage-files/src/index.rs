//! The in-memory index: where each live entry's bytes are, never the entries themselves.
//!
//! The index is a queue of runs; a run is a contiguous range of absolute indices stored in one
//! segment, with an 8-byte position per entry. Runs of sealed segments found at open are lazy:
//! their positions are read from the segment's seal record on first use, so opening a store
//! reads a fixed number of bytes per segment whatever the log's length.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use crate::format::Loc;

/// The positions of a run's entries.
#[derive(Debug)]
pub enum Locs {
    /// In memory (the active segment, or loaded from a seal record).
    Loaded(Vec<Loc>),
    /// In the seal record at `seal_offset` of the run's segment; loaded on first use.
    Lazy {
        /// Offset of the seal record.
        seal_offset: u64,
        /// Positions, once loaded.
        cell: OnceLock<Arc<Vec<Loc>>>,
    },
    /// In a many-logs store's position table (see `format::SealRunRef`); loaded on first use.
    Table {
        /// Where the table is, its length and CRC.
        table: crate::format::SealRunRef,
        /// Positions, once loaded.
        cell: OnceLock<Arc<Vec<Loc>>>,
    },
}

/// A contiguous range `[start, end)` of live entries stored in segment `seg`; position `k`
/// of its table is the entry `base + k`.
#[derive(Debug)]
pub struct Run {
    /// The segment id.
    pub seg: u64,
    /// Absolute index of the first position in `locs`.
    pub base: u64,
    /// First live index.
    pub start: u64,
    /// One past the last live index.
    pub end: u64,
    /// The positions.
    pub locs: Locs,
    /// Bytes of the live entries `[start, end)` (0 for a lazy run not loaded at creation:
    /// only the many-logs store counts bytes, and its runs are all loaded).
    pub bytes: u64,
}

impl Run {
    /// Bytes of the entries `[from, to)` of this run: exact if its positions are in memory,
    /// else its share of the run's byte count.
    fn bytes_of(&self, from: u64, to: u64) -> u64 {
        if from >= to {
            return 0;
        }
        match self.loaded() {
            Some(v) => v
                .get((from - self.base) as usize..(to - self.base) as usize)
                .map_or(0, |s| s.iter().map(|l| l.len as u64).sum()),
            None if self.end > self.start => {
                (self.bytes as u128 * (to - from) as u128 / (self.end - self.start) as u128) as u64
            }
            None => 0,
        }
    }

    /// A copy sharing nothing mutable (a loaded table is copied, a lazy one shares its cell).
    fn duplicate(&self) -> Run {
        Run {
            seg: self.seg,
            base: self.base,
            start: self.start,
            end: self.end,
            locs: match &self.locs {
                Locs::Loaded(v) => Locs::Loaded(v.clone()),
                Locs::Lazy { seal_offset, cell } => Locs::Lazy {
                    seal_offset: *seal_offset,
                    cell: cell.clone(),
                },
                Locs::Table { table, cell } => Locs::Table {
                    table: *table,
                    cell: cell.clone(),
                },
            },
            bytes: self.bytes,
        }
    }

    /// The position table if it is in memory.
    pub fn loaded(&self) -> Option<&[Loc]> {
        match &self.locs {
            Locs::Loaded(v) => Some(v),
            Locs::Lazy { cell, .. } | Locs::Table { cell, .. } => cell.get().map(|v| v.as_slice()),
        }
    }
}

/// The index of all live entries.
#[derive(Debug, Default)]
pub struct Index {
    runs: VecDeque<Run>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The runs, in index order (segment ids are non-decreasing along it).
    pub fn runs(&self) -> &VecDeque<Run> {
        &self.runs
    }

    /// One past the last indexed entry.
    #[cfg(test)]
    pub fn end(&self) -> Option<u64> {
        self.runs.back().map(|r| r.end)
    }

    /// The first indexed entry.
    pub fn start(&self) -> Option<u64> {
        self.runs.front().map(|r| r.start)
    }

    /// Number of indexed entries.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether nothing is indexed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Drops every entry `>= at`.
    pub fn truncate(&mut self, at: u64) {
        while let Some(last) = self.runs.back_mut() {
            if last.start >= at {
                self.runs.pop_back();
                continue;
            }
            if last.end > at {
                last.bytes -= last.bytes_of(at, last.end).min(last.bytes);
                last.end = at;
                if let Locs::Loaded(v) = &mut last.locs {
                    v.truncate((at - last.base) as usize);
                }
            }
            break;
        }
    }

    /// Drops every entry `< i`.
    pub fn trim(&mut self, i: u64) {
        while self.runs.front().is_some_and(|r| r.end <= i) {
            self.runs.pop_front();
        }
        if let Some(first) = self.runs.front_mut() {
            if i > first.start {
                first.bytes -= first.bytes_of(first.start, i).min(first.bytes);
                first.start = i;
            }
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.runs.clear();
    }

    /// Appends entries at `at` (which must be the end of the index, or anything when empty)
    /// stored in segment `seg`.
    pub fn append(&mut self, seg: u64, at: u64, locs: impl ExactSizeIterator<Item = Loc>) {
        let n = locs.len() as u64;
        if n == 0 {
            return;
        }
        if let Some(last) = self.runs.back_mut() {
            if let Locs::Loaded(v) = &mut last.locs {
                if last.seg == seg && last.end == at && last.base + v.len() as u64 == at {
                    let from = v.len();
                    v.extend(locs);
                    last.bytes += v[from..].iter().map(|l| l.len as u64).sum::<u64>();
                    last.end += n;
                    return;
                }
            }
        }
        let locs: Vec<Loc> = locs.collect();
        self.runs.push_back(Run {
            seg,
            base: at,
            start: at,
            end: at + n,
            bytes: locs.iter().map(|l| l.len as u64).sum(),
            locs: Locs::Loaded(locs),
        });
    }

    /// Appends the lazy run of a sealed segment found at open.
    pub fn push_lazy(&mut self, seg: u64, base: u64, count: u64, seal_offset: u64) {
        if count == 0 {
            return;
        }
        self.runs.push_back(Run {
            seg,
            base,
            start: base,
            end: base + count,
            locs: Locs::Lazy {
                seal_offset,
                cell: OnceLock::new(),
            },
            bytes: 0,
        });
    }

    /// Puts the entries `[at, at + locs.len())`, stored in segment `seg`, in place of what the
    /// index held for them (nothing, or older copies), splitting runs at the edges. The many-
    /// logs store's recovery (a seal's runs over older seals') and its rewriter use it.
    pub fn replace(&mut self, seg: u64, at: u64, locs: Vec<Loc>) {
        let bytes = locs.iter().map(|l| l.len as u64).sum();
        self.replace_run(Run {
            seg,
            base: at,
            start: at,
            end: at + locs.len() as u64,
            locs: Locs::Loaded(locs),
            bytes,
        });
    }

    /// [`replace`](Self::replace) with a run whose positions are in a many-logs store's
    /// position table, read on first use.
    pub fn replace_table(&mut self, seg: u64, table: crate::format::SealRunRef) {
        self.replace_run(Run {
            seg,
            base: table.at,
            start: table.at,
            end: table.at + table.count as u64,
            locs: Locs::Table {
                table,
                cell: OnceLock::new(),
            },
            bytes: table.bytes,
        });
    }

    fn replace_run(&mut self, new: Run) {
        let (at, end) = (new.start, new.end);
        if end <= at {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.runs.len() + 2);
        for run in self.runs.drain(..) {
            if run.end <= at || run.start >= end {
                kept.push_back(run);
                continue;
            }
            if run.end > end {
                let mut right = run.duplicate();
                right.bytes = right.bytes_of(end, right.end);
                right.start = end;
                if run.start < at {
                    let mut left = run;
                    left.bytes = left.bytes_of(left.start, at);
                    left.end = at;
                    kept.push_back(left);
                }
                kept.push_back(right);
            } else if run.start < at {
                let mut left = run;
                left.bytes = left.bytes_of(left.start, at);
                left.end = at;
                if let Locs::Loaded(v) = &mut left.locs {
                    v.truncate((at - left.base) as usize);
                }
                kept.push_back(left);
            }
        }
        let k = kept.partition_point(|r| r.end <= at);
        kept.insert(k, new);
        self.runs = kept;
    }

    /// Bytes of the live entries (loaded runs only).
    pub fn live_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.bytes).sum()
    }

    /// Whether the runs cover `[first, next)` exactly, without gaps or overlaps.
    pub fn covers(&self, first: u64, next: u64) -> bool {
        let contiguous = self
            .runs
            .iter()
            .zip(self.runs.iter().skip(1))
            .all(|(a, b)| a.end == b.start);
        contiguous && self.len() == next - first && (first == next || self.start() == Some(first))
    }

    /// The position of the run holding index `i`.
    pub fn find(&self, i: u64) -> Option<usize> {
        let k = self.runs.partition_point(|r| r.end <= i);
        (k < self.runs.len() && self.runs[k].start <= i).then_some(k)
    }

    /// The run of segment `seg` if it is the last run (the active segment's entries).
    pub fn tail_run_of(&self, seg: u64) -> Option<&Run> {
        self.runs.back().filter(|r| r.seg == seg)
    }

    /// The oldest segment any live entry lives in (runs the many-logs store relocated sit in
    /// newer segments than the runs after them).
    pub fn oldest_segment(&self) -> Option<u64> {
        self.runs.iter().map(|r| r.seg).min()
    }

    /// Bytes of position tables held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| match &r.locs {
                Locs::Loaded(v) => v.capacity() * std::mem::size_of::<Loc>(),
                Locs::Lazy { cell, .. } | Locs::Table { cell, .. } => cell.get().map_or(0, |v| v.capacity() * std::mem::size_of::<Loc>()),
            } + std::mem::size_of::<Run>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locs(n: u32) -> impl ExactSizeIterator<Item = Loc> {
        (0..n).map(|k| Loc {
            offset: k * 10,
            len: 10,
        })
    }

    #[test]
    fn append_truncate_trim() {
        let mut ix = Index::new();
        ix.append(1, 0, locs(10));
        ix.append(1, 10, locs(5));
        assert_eq!(ix.runs().len(), 1);
        ix.append(2, 15, locs(5));
        assert_eq!((ix.start(), ix.end(), ix.len()), (Some(0), Some(20), 20));
        ix.truncate(12);
        assert_eq!((ix.end(), ix.runs().len()), (Some(12), 1));
        ix.append(2, 12, locs(3));
        assert_eq!(ix.find(13), Some(1));
        assert_eq!(ix.find(11), Some(0));
        ix.trim(13);
        assert_eq!(
            (ix.start(), ix.len(), ix.oldest_segment()),
            (Some(13), 2, Some(2))
        );
        assert_eq!(ix.find(12), None);
        ix.trim(100);
        assert!(ix.is_empty());
    }

    #[test]
    fn replace_splits_runs_and_counts_bytes() {
        let mut ix = Index::new();
        ix.append(1, 0, locs(10)); // [0, 10) in 1, 100 bytes
        ix.append(2, 10, locs(10)); // [10, 20) in 2
        assert_eq!(ix.live_bytes(), 200);
        ix.replace(3, 5, locs(3).collect()); // [5, 8) now in 3
        let shape: Vec<(u64, u64, u64, u64)> = ix
            .runs()
            .iter()
            .map(|r| (r.seg, r.start, r.end, r.bytes))
            .collect();
        assert_eq!(
            shape,
            [
                (1, 0, 5, 50),
                (3, 5, 8, 30),
                (1, 8, 10, 20),
                (2, 10, 20, 100)
            ]
        );
        assert_eq!(ix.live_bytes(), 200);
        assert!(ix.covers(0, 20));
        assert_eq!(ix.oldest_segment(), Some(1));
        ix.replace(4, 0, locs(12).collect()); // [0, 12) now in 4
        let shape: Vec<(u64, u64, u64)> =
            ix.runs().iter().map(|r| (r.seg, r.start, r.end)).collect();
        assert_eq!(shape, [(4, 0, 12), (2, 12, 20)]);
        assert_eq!((ix.live_bytes(), ix.oldest_segment()), (200, Some(2)));
        ix.trim(14);
        ix.truncate(18);
        assert_eq!(ix.live_bytes(), 40);
        assert!(ix.covers(14, 18) && !ix.covers(13, 18));
    }
}
