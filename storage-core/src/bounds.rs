//! Where the stored log starts and ends, and which stored range a read must return.
//!
//! What each log operation does to the bounds (the append, `append_on_prefix` and trim
//! rules) lives in [`plan`](crate::plan), the one place a batch is checked and turned into
//! steps.

use std::ops::Range;

/// The stored log is `[first, next)`, in absolute indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// The lowest stored index (the highest trim point so far).
    pub first: usize,
    /// One past the highest stored index.
    pub next: usize,
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
