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
}

impl Run {
    /// The position table if it is in memory.
    pub fn loaded(&self) -> Option<&[Loc]> {
        match &self.locs {
            Locs::Loaded(v) => Some(v),
            Locs::Lazy { cell, .. } => cell.get().map(|v| v.as_slice()),
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
            first.start = first.start.max(i);
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
                    v.extend(locs);
                    last.end += n;
                    return;
                }
            }
        }
        self.runs.push_back(Run {
            seg,
            base: at,
            start: at,
            end: at + n,
            locs: Locs::Loaded(locs.collect()),
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
        });
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

    /// The oldest segment any live entry lives in.
    pub fn oldest_segment(&self) -> Option<u64> {
        self.runs.front().map(|r| r.seg)
    }

    /// Bytes of position tables held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| match &r.locs {
                Locs::Loaded(v) => v.capacity() * std::mem::size_of::<Loc>(),
                Locs::Lazy { cell, .. } => cell.get().map_or(0, |v| v.capacity() * std::mem::size_of::<Loc>()),
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
}
