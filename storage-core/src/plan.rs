//! The one place where a `write_atomically` batch becomes what a backend writes.
//!
//! A backend does not interpret [`StorageOp`]s itself. It builds a [`Plan`] from the batch and
//! the current [`Bounds`], which checks every op against the bounds it will meet (in order)
//! and refuses an invalid batch whole, before anything is applied; then it translates each
//! [`Step`] of the plan into its own writes, and finally takes the plan's resulting bounds:
//!
//! ```
//! use omnipaxos::storage::StorageOp;
//! use paxstore_core::{bounds::Bounds, kv::KeyValue, plan::{Plan, Step}};
//!
//! let ops = vec![
//!     StorageOp::AppendEntries(vec![KeyValue::new("k", 1, 8), KeyValue::new("k", 2, 8)]),
//!     StorageOp::Trim(11),
//!     StorageOp::SetDecidedIndex(12),
//! ];
//! let plan = Plan::new(Bounds::new(10, 10), ops).unwrap();
//! assert_eq!(plan.bounds(), Bounds::new(11, 12));
//! for step in plan {
//!     match step.unwrap() {
//!         Step::Put { at, old_next, entries } => assert_eq!((at, old_next, entries.len()), (10, 10, 2)),
//!         Step::DropPrefix { from, to } => assert_eq!((from, to), (10, 11)),
//!         Step::DecidedIdx(i) => assert_eq!(i, 12),
//!         _ => unreachable!(),
//!     }
//! }
//! // An invalid op anywhere refuses the whole batch.
//! let bad = vec![StorageOp::SetDecidedIndex(3), StorageOp::AppendOnPrefix(20, vec![KeyValue::new("k", 1, 8)])];
//! assert!(Plan::new(Bounds::new(10, 12), bad).is_err());
//! ```
//!
//! The rules of the log ([`append`], [`append_on_prefix`], [`trim`]) are public too, for
//! replaying what a backend stored (a record read back at recovery) with the same semantics.
//!
//! A plan owns the batch's op vector and gives the entries back by value: building and
//! walking it allocates nothing.

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, StorageOp},
};

use crate::bounds::Bounds;
use crate::error::{Error, Op, Result};

/// What one log operation does to the stored log `[first, next)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The stored entries `[at, old_next)` are dropped (none when `at == old_next`, a plain
    /// append), then `count` entries are stored from `at` on: the log becomes
    /// `[first, at + count)`.
    Put {
        /// Where the entries land.
        at: usize,
        /// The log's end before the change.
        old_next: usize,
        /// How many entries land.
        count: usize,
    },
    /// The stored entries `[from, to)` are dropped; the log keeps `[to, next)`.
    DropPrefix {
        /// The first index before the change.
        from: usize,
        /// The new first index.
        to: usize,
    },
    /// Every stored entry, `[from, next)`, is dropped and the log restarts empty at `to`
    /// (a trim past the log's end).
    Reset {
        /// The first index before the change.
        from: usize,
        /// The log's end before the change.
        next: usize,
        /// The new first and next index.
        to: usize,
    },
}

/// `append_entry` / `append_entries`: `count` entries at the log's end. `None` when nothing
/// changes (no entries).
pub fn append(bounds: &mut Bounds, count: usize) -> Result<Option<Change>> {
    let at = bounds.next;
    let next = at.checked_add(count).ok_or(Error::IndexOverflow {
        op: Op::Append,
        index: at,
    })?;
    if count == 0 {
        return Ok(None);
    }
    bounds.next = next;
    Ok(Some(Change::Put {
        at,
        old_next: at,
        count,
    }))
}

/// `append_on_prefix(at, count entries)`: needs `first <= at <= next` (past the end is a no-op
/// when there are no entries); drops the entries `>= at`, then appends at `at`. `None` when
/// nothing changes.
pub fn append_on_prefix(bounds: &mut Bounds, at: usize, count: usize) -> Result<Option<Change>> {
    if at < bounds.first || (at > bounds.next && count > 0) {
        return Err(Error::AppendOnPrefixOutOfRange {
            index: at,
            len: count,
            first: bounds.first,
            next: bounds.next,
        });
    }
    if count == 0 && at >= bounds.next {
        return Ok(None);
    }
    let old_next = bounds.next;
    bounds.next = at.checked_add(count).ok_or(Error::IndexOverflow {
        op: Op::AppendOnPrefix,
        index: at,
    })?;
    Ok(Some(Change::Put {
        at,
        old_next,
        count,
    }))
}

/// `trim(index)`: drops the entries below `index`; past the log's end the log restarts empty
/// at `index`. `None` when nothing changes (`index <= first`). This is the only
/// implementation of the trim rule.
pub fn trim(bounds: &mut Bounds, index: usize) -> Option<Change> {
    let Bounds { first, next } = *bounds;
    if index <= first {
        None
    } else if index <= next {
        bounds.first = index;
        Some(Change::DropPrefix {
            from: first,
            to: index,
        })
    } else {
        *bounds = Bounds::new(index, index);
        Some(Change::Reset {
            from: first,
            next,
            to: index,
        })
    }
}

/// The entries of a [`Step::Put`], by value: one (`AppendEntry`) or a vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Entries<T> {
    /// One entry.
    One(T),
    /// A vector of entries.
    Many(Vec<T>),
}

impl<T> Entries<T> {
    /// The entries as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Entries::One(e) => std::slice::from_ref(e),
            Entries::Many(v) => v,
        }
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is none (a `Put` with no entries only truncates).
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

impl<T> IntoIterator for Entries<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Entries::One(e) => Some(e).into_iter().chain(Vec::new()),
            Entries::Many(v) => None.into_iter().chain(v),
        }
    }
}

/// One validated step of a [`Plan`], in batch order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T: Entry> {
    /// Drop the stored entries `[at, old_next)` (none for a plain append), then store
    /// `entries` from `at` on. A `Put` without entries only truncates.
    Put {
        /// Where the entries land.
        at: usize,
        /// The log's end before this step.
        old_next: usize,
        /// The entries, in index order.
        entries: Entries<T>,
    },
    /// Drop the stored entries `[from, to)`: `to` is the new first index.
    DropPrefix {
        /// The first index before this step.
        from: usize,
        /// The new first index.
        to: usize,
    },
    /// Drop every stored entry, `[from, next)`, and restart the log empty at `to`.
    Reset {
        /// The first index before this step.
        from: usize,
        /// The log's end before this step.
        next: usize,
        /// The new first and next index.
        to: usize,
    },
    /// Set the promised round.
    Promise(Ballot),
    /// Set the accepted round.
    AcceptedRound(Ballot),
    /// Set the decided index.
    DecidedIdx(usize),
    /// Set the compacted index.
    CompactedIdx(usize),
    /// Set (or clear) the stop-sign.
    Stopsign(Option<StopSign>),
    /// Set (or clear) the snapshot. Only the batch's last `SetSnapshot` becomes a step: the
    /// earlier ones would be overwritten within the batch anyway.
    Snapshot(Option<T::Snapshot>),
}

/// What an op does to the bounds: the one dispatch from ops to the log rules.
fn change<T: Entry>(bounds: &mut Bounds, op: &StorageOp<T>) -> Result<Option<Change>> {
    match op {
        StorageOp::AppendEntry(_) => append(bounds, 1),
        StorageOp::AppendEntries(v) => append(bounds, v.len()),
        StorageOp::AppendOnPrefix(at, v) => append_on_prefix(bounds, *at, v.len()),
        StorageOp::Trim(i) => Ok(trim(bounds, *i)),
        _ => Ok(None),
    }
}

/// Checks one op against `bounds` and turns it into its step (`None` when it changes
/// nothing), updating `bounds`. On error `bounds` is unchanged. For a backend's single-op
/// calls; a batch goes through [`Plan`].
pub fn step<T: Entry>(bounds: &mut Bounds, op: StorageOp<T>) -> Result<Option<Step<T>>> {
    let change = change(bounds, &op)?;
    Ok(Some(match (op, change) {
        (_, Some(Change::DropPrefix { from, to })) => Step::DropPrefix { from, to },
        (_, Some(Change::Reset { from, next, to })) => Step::Reset { from, next, to },
        (StorageOp::AppendEntry(e), Some(Change::Put { at, old_next, .. })) => Step::Put {
            at,
            old_next,
            entries: Entries::One(e),
        },
        (
            StorageOp::AppendEntries(v) | StorageOp::AppendOnPrefix(_, v),
            Some(Change::Put { at, old_next, .. }),
        ) => Step::Put {
            at,
            old_next,
            entries: Entries::Many(v),
        },
        (StorageOp::SetPromise(b), _) => Step::Promise(b),
        (StorageOp::SetAcceptedRound(b), _) => Step::AcceptedRound(b),
        (StorageOp::SetDecidedIndex(i), _) => Step::DecidedIdx(i),
        (StorageOp::SetCompactedIdx(i), _) => Step::CompactedIdx(i),
        (StorageOp::SetStopsign(s), _) => Step::Stopsign(s),
        (StorageOp::SetSnapshot(s), _) => Step::Snapshot(s),
        // A log op that changes nothing.
        _ => return Ok(None),
    }))
}

/// A batch of ops checked against the bounds they meet, ready to be walked as [`Step`]s.
#[derive(Debug)]
pub struct Plan<T: Entry> {
    ops: Vec<StorageOp<T>>,
    before: Bounds,
    after: Bounds,
    /// Position of the last `SetSnapshot` op.
    last_snapshot: Option<usize>,
}

impl<T: Entry> Plan<T> {
    /// Checks every op of `ops` against the bounds it will meet, starting from `bounds`.
    /// Returns the first op's error (the batch is refused whole), or the plan.
    pub fn new(bounds: Bounds, ops: Vec<StorageOp<T>>) -> Result<Self> {
        let mut after = bounds;
        let mut last_snapshot = None;
        for (k, op) in ops.iter().enumerate() {
            change(&mut after, op)?;
            if matches!(op, StorageOp::SetSnapshot(_)) {
                last_snapshot = Some(k);
            }
        }
        Ok(Plan {
            ops,
            before: bounds,
            after,
            last_snapshot,
        })
    }

    /// The bounds once every step is applied.
    pub fn bounds(&self) -> Bounds {
        self.after
    }
}

impl<T: Entry> IntoIterator for Plan<T> {
    type Item = Result<Step<T>>;
    type IntoIter = Steps<T>;

    fn into_iter(self) -> Steps<T> {
        Steps {
            ops: self.ops.into_iter().enumerate(),
            bounds: self.before,
            last_snapshot: self.last_snapshot,
        }
    }
}

/// The steps of a [`Plan`], in batch order; ops that change nothing give no step.
///
/// Every item is `Ok`: the plan checked these ops from these bounds already. (The walk
/// repeats the same rules rather than storing their outcome, so that it allocates nothing.)
#[derive(Debug)]
pub struct Steps<T: Entry> {
    ops: std::iter::Enumerate<std::vec::IntoIter<StorageOp<T>>>,
    bounds: Bounds,
    last_snapshot: Option<usize>,
}

impl<T: Entry> Steps<T> {
    /// The bounds after the steps returned so far.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }
}

impl<T: Entry> Iterator for Steps<T> {
    type Item = Result<Step<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        for (k, op) in self.ops.by_ref() {
            if matches!(op, StorageOp::SetSnapshot(_)) && Some(k) != self.last_snapshot {
                continue;
            }
            match step(&mut self.bounds, op) {
                Ok(None) => continue,
                found => return found.transpose(),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KeyValue;

    fn kv(i: u64) -> KeyValue {
        KeyValue::new("k", i, 0)
    }

    #[test]
    fn trim_shapes() {
        let mut b = Bounds::new(5, 10);
        assert_eq!(trim(&mut b, 3), None);
        assert_eq!(trim(&mut b, 5), None);
        assert_eq!(trim(&mut b, 7), Some(Change::DropPrefix { from: 5, to: 7 }));
        assert_eq!(b, Bounds::new(7, 10));
        assert_eq!(
            trim(&mut b, 10),
            Some(Change::DropPrefix { from: 7, to: 10 })
        );
        assert_eq!(b, Bounds::new(10, 10));
        let mut b = Bounds::new(7, 10);
        assert_eq!(
            trim(&mut b, 20),
            Some(Change::Reset {
                from: 7,
                next: 10,
                to: 20
            })
        );
        assert_eq!(b, Bounds::new(20, 20));
    }

    #[test]
    fn append_on_prefix_edges() {
        let b = Bounds::new(5, 10);
        let attempt = |i, n| {
            let mut c = b;
            append_on_prefix(&mut c, i, n).map(|r| (r, c))
        };
        assert!(matches!(
            attempt(4, 0),
            Err(Error::AppendOnPrefixOutOfRange {
                index: 4,
                len: 0,
                first: 5,
                next: 10
            })
        ));
        assert!(attempt(11, 1).is_err());
        assert_eq!(attempt(11, 0).unwrap(), (None, b));
        assert_eq!(attempt(10, 0).unwrap(), (None, b));
        assert_eq!(
            attempt(6, 2).unwrap(),
            (
                Some(Change::Put {
                    at: 6,
                    old_next: 10,
                    count: 2
                }),
                Bounds::new(5, 8)
            )
        );
        assert_eq!(
            attempt(7, 0).unwrap(),
            (
                Some(Change::Put {
                    at: 7,
                    old_next: 10,
                    count: 0
                }),
                Bounds::new(5, 7)
            )
        );
        assert!(matches!(attempt(usize::MAX, 0).map(|(c, _)| c), Ok(None)));
        let mut end = Bounds::new(usize::MAX - 1, usize::MAX - 1);
        assert!(matches!(
            append_on_prefix(&mut end, usize::MAX - 1, 2),
            Err(Error::IndexOverflow {
                op: Op::AppendOnPrefix,
                ..
            })
        ));
    }

    #[test]
    fn append_counts() {
        let mut b = Bounds::new(3, 3);
        assert_eq!(append(&mut b, 0).unwrap(), None);
        assert_eq!(
            append(&mut b, 2).unwrap(),
            Some(Change::Put {
                at: 3,
                old_next: 3,
                count: 2
            })
        );
        assert_eq!(b, Bounds::new(3, 5));
        let mut end = Bounds::new(usize::MAX, usize::MAX);
        assert!(matches!(
            append(&mut end, 1),
            Err(Error::IndexOverflow { op: Op::Append, .. })
        ));
        // Even an empty append at the very end of the index space changes nothing.
        assert_eq!(append(&mut end, 0).unwrap(), None);
    }

    #[test]
    fn steps_in_batch_order_with_the_last_snapshot_only() {
        let ops = vec![
            StorageOp::AppendEntry(kv(0)),
            StorageOp::SetSnapshot(Some(Default::default())),
            StorageOp::AppendEntries(vec![]),
            StorageOp::AppendEntries(vec![kv(1), kv(2)]),
            StorageOp::Trim(1),
            StorageOp::AppendOnPrefix(2, vec![kv(9)]),
            StorageOp::AppendOnPrefix(9, vec![]),
            StorageOp::Trim(0),
            StorageOp::SetSnapshot(None),
            StorageOp::SetDecidedIndex(3),
            StorageOp::Trim(8),
        ];
        let plan = Plan::new(Bounds::new(0, 0), ops).unwrap();
        assert_eq!(plan.bounds(), Bounds::new(8, 8));
        let steps: Vec<Step<KeyValue>> = plan.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            steps,
            vec![
                Step::Put {
                    at: 0,
                    old_next: 0,
                    entries: Entries::One(kv(0))
                },
                Step::Put {
                    at: 1,
                    old_next: 1,
                    entries: Entries::Many(vec![kv(1), kv(2)])
                },
                Step::DropPrefix { from: 0, to: 1 },
                Step::Put {
                    at: 2,
                    old_next: 3,
                    entries: Entries::Many(vec![kv(9)])
                },
                Step::Snapshot(None),
                Step::DecidedIdx(3),
                Step::Reset {
                    from: 1,
                    next: 3,
                    to: 8
                },
            ]
        );
    }

    #[test]
    fn an_invalid_op_refuses_the_batch_with_its_error() {
        let ops = vec![
            StorageOp::AppendEntries(vec![kv(0), kv(1)]),
            StorageOp::Trim(1),
            StorageOp::AppendOnPrefix(0, vec![kv(2)]),
            StorageOp::AppendOnPrefix(9, vec![kv(3)]),
        ];
        let err = Plan::new(Bounds::new(0, 0), ops).unwrap_err();
        // The third op meets [1, 2): index 0 is below the trim point.
        assert!(
            matches!(
                err,
                Error::AppendOnPrefixOutOfRange {
                    index: 0,
                    len: 1,
                    first: 1,
                    next: 2
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn entries_by_value_and_by_slice() {
        let one = Entries::One(kv(4));
        assert_eq!(one.as_slice(), &[kv(4)]);
        assert_eq!(one.into_iter().collect::<Vec<_>>(), vec![kv(4)]);
        let many = Entries::Many(vec![kv(1), kv(2)]);
        assert_eq!(many.len(), 2);
        assert!(!many.is_empty());
        assert_eq!(many.into_iter().collect::<Vec<_>>(), vec![kv(1), kv(2)]);
        assert!(Entries::<KeyValue>::Many(vec![]).is_empty());
    }
}
