//! Index bookkeeping shared by the backends: where the stored log starts and ends, and what
//! each log operation does to it under the contract.
//!
//! Backends validate a whole batch against a copy of [`Bounds`] before touching any state, so
//! an invalid operation anywhere in a batch is refused before anything is applied.

use std::ops::Range;

use crate::error::{Error, Op, Result};

/// The stored log is `[first, next)`, in absolute indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// The lowest stored index (the highest trim point so far).
    pub first: usize,
    /// One past the highest stored index.
    pub next: usize,
}

/// What a valid `append_on_prefix` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixEffect {
    /// Nothing changes (past the end with no entries, or at `next` with no entries).
    Noop,
    /// Entries `>= from` are dropped, then the new entries are appended at `from`.
    TruncateAndAppend {
        /// The index from which the old suffix is dropped and the new entries land.
        from: usize,
    },
}

/// What a `trim` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimEffect {
    /// `index <= first`: nothing changes.
    Noop,
    /// Entries `[first, to)` are dropped; the log keeps `[to, next)`.
    DropPrefix {
        /// The new first index.
        to: usize,
    },
    /// `index > next`: every entry is dropped and the log restarts empty at `to`.
    Reset {
        /// The new first and next index.
        to: usize,
    },
}

impl Bounds {
    /// Bounds of a log holding `[first, next)`.
    pub fn new(first: usize, next: usize) -> Self {
        Bounds { first, next }
    }

    /// Number of entries physically held.
    pub fn len(&self) -> usize {
        self.next - self.first
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.next == self.first
    }

    /// Records an append of `count` entries at `next`.
    pub fn append(&mut self, count: usize) -> Result<()> {
        self.next = self.next.checked_add(count).ok_or(Error::IndexOverflow {
            op: Op::Append,
            index: self.next,
        })?;
        Ok(())
    }

    /// Validates and records `append_on_prefix(index, count entries)`.
    pub fn append_on_prefix(&mut self, index: usize, count: usize) -> Result<PrefixEffect> {
        if index < self.first || (index > self.next && count > 0) {
            return Err(Error::AppendOnPrefixOutOfRange {
                index,
                len: count,
                first: self.first,
                next: self.next,
            });
        }
        if count == 0 && index >= self.next {
            return Ok(PrefixEffect::Noop);
        }
        self.next = index.checked_add(count).ok_or(Error::IndexOverflow {
            op: Op::AppendOnPrefix,
            index,
        })?;
        Ok(PrefixEffect::TruncateAndAppend { from: index })
    }

    /// Records `trim(index)`.
    pub fn trim(&mut self, index: usize) -> TrimEffect {
        if index <= self.first {
            TrimEffect::Noop
        } else if index <= self.next {
            self.first = index;
            TrimEffect::DropPrefix { to: index }
        } else {
            self.first = index;
            self.next = index;
            TrimEffect::Reset { to: index }
        }
    }

    /// The stored range `get_entries(from, to)` must return, or `None` when the contract says
    /// the answer is empty (`from >= to`, or any part of the range not stored).
    pub fn entries_range(&self, from: usize, to: usize) -> Option<Range<usize>> {
        (self.first <= from && from < to && to <= self.next).then_some(from..to)
    }

    /// The stored range `get_suffix(from)` must return, or `None` for an empty answer.
    pub fn suffix_range(&self, from: usize) -> Option<Range<usize>> {
        (self.first <= from && from < self.next).then_some(from..self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_shapes() {
        let mut b = Bounds::new(5, 10);
        assert_eq!(b.trim(3), TrimEffect::Noop);
        assert_eq!(b.trim(7), TrimEffect::DropPrefix { to: 7 });
        assert_eq!(b, Bounds::new(7, 10));
        assert_eq!(b.trim(20), TrimEffect::Reset { to: 20 });
        assert_eq!(b, Bounds::new(20, 20));
    }

    #[test]
    fn append_on_prefix_edges() {
        let b = Bounds::new(5, 10);
        let attempt = |i, n| {
            let mut c = b;
            c.append_on_prefix(i, n)
        };
        assert!(attempt(4, 0).is_err());
        assert!(attempt(11, 1).is_err());
        assert_eq!(attempt(11, 0).unwrap(), PrefixEffect::Noop);
        let mut c = b;
        assert_eq!(
            c.append_on_prefix(6, 2).unwrap(),
            PrefixEffect::TruncateAndAppend { from: 6 }
        );
        assert_eq!(c, Bounds::new(5, 8));
    }

    #[test]
    fn read_ranges() {
        let b = Bounds::new(5, 10);
        assert_eq!(b.entries_range(5, 10), Some(5..10));
        assert_eq!(b.entries_range(4, 6), None);
        assert_eq!(b.entries_range(6, 11), None);
        assert_eq!(b.entries_range(7, 7), None);
        assert_eq!(b.suffix_range(9), Some(9..10));
        assert_eq!(b.suffix_range(10), None);
        assert_eq!(b.suffix_range(4), None);
    }
}
