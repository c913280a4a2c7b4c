//! The named cases of the conformance suite. Each takes a fresh harness and returns `Ok` or a
//! [`Failure`](super::Failure) that says which read disagreed with the contract.

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{StopSign, StorageOp},
    util::FlexibleQuorum,
    ClusterConfig,
};

use super::{CaseResult, Harness, Subject};
use crate::kv::{KVSnapshot, KeyValue};

use StorageOp::*;

/// The entry the suite writes at absolute index `i` on first write: `value == i`.
pub fn entry(i: usize) -> KeyValue {
    KeyValue::new(format!("key-{}", i % 7), i as u64, 16)
}

/// An entry written at `i` by a later leader (distinguishable from [`entry`]): `value == 1_000_000 + i`.
pub fn rewritten(i: usize) -> KeyValue {
    KeyValue::new(format!("key-{}", i % 5), 1_000_000 + i as u64, 24)
}

/// `entry(i)` for every `i` in `range`.
pub fn entries(range: std::ops::Range<usize>) -> Vec<KeyValue> {
    range.map(entry).collect()
}

fn rewrites(range: std::ops::Range<usize>) -> Vec<KeyValue> {
    range.map(rewritten).collect()
}

fn values(range: std::ops::Range<usize>) -> Vec<u64> {
    range.map(|i| i as u64).collect()
}

fn rewritten_values(range: std::ops::Range<usize>) -> Vec<u64> {
    range.map(|i| 1_000_000 + i as u64).collect()
}

/// A ballot with round `n`.
pub fn ballot(n: u32) -> Ballot {
    Ballot {
        config_id: 1,
        n,
        priority: 0,
        pid: (n % 3 + 1) as u64,
    }
}

/// A stop-sign to configuration `id`.
pub fn stopsign(id: u32) -> StopSign {
    StopSign::with(
        ClusterConfig {
            configuration_id: id,
            nodes: vec![1, 2, 3, id as u64 + 3],
            flexible_quorum: None,
        },
        Some(vec![id as u8; 3]),
    )
}

/// A ballot whose every field depends on `k` and differs from [`ballot`]'s: configuration id,
/// round, priority (never 0) and pid. `distinct_ballot(k)` and `distinct_ballot(k + 1)` differ
/// in every field, so a field a backend does not persist shows up.
pub fn distinct_ballot(k: u32) -> Ballot {
    Ballot {
        config_id: 2 + (k % 5) * 3,
        n: 10 + k * 7,
        priority: 1 + (k * 13) % 97,
        pid: 4 + u64::from(k % 6),
    }
}

/// A stop-sign whose every field depends on `k`: configuration id, nodes, a flexible quorum
/// (present for even `k`) and metadata (`k` bytes, so `Some` of an empty vector for `k = 0`,
/// which must not come back as `None`).
pub fn distinct_stopsign(k: u32) -> StopSign {
    let nodes: Vec<u64> = (0..3 + u64::from(k % 4))
        .map(|i| 10 * i + 1 + u64::from(k))
        .collect();
    let flexible_quorum = (k % 2 == 0).then(|| FlexibleQuorum {
        read_quorum_size: 2 + (k as usize % 3),
        write_quorum_size: 5 - (k as usize % 3),
    });
    StopSign::with(
        ClusterConfig {
            configuration_id: 5 + k,
            nodes,
            flexible_quorum,
        },
        Some((0..k).map(|i| (i * 31 + k) as u8).collect()),
    )
}

/// A snapshot of the entries `[0, upto)` as the suite writes them.
pub fn snapshot_upto(upto: usize) -> KVSnapshot {
    use omnipaxos::storage::Snapshot;
    KVSnapshot::create(&entries(0..upto))
}

fn with_log<H: Harness>(h: H, n: usize) -> CaseResult<Subject<H>> {
    let mut s = Subject::new(h)?;
    if n > 0 {
        s.op(AppendEntries(entries(0..n)))?;
    }
    Ok(s)
}

// ---- fresh state and metadata ----

/// A fresh store: no promise, round, stop-sign or snapshot; decided 0, compacted 0, empty log.
pub fn fresh_store_is_empty<H: Harness>(h: H) -> CaseResult {
    let s = Subject::new(h)?;
    s.expect_len(0)?;
    s.expect_entries(0, 1, &[])?;
    s.expect_suffix(0, &[])?;
    s.finish()
}

/// `set_promise`: set, overwritten (also by a lower round: last write wins), read back.
pub fn promise_set_and_overwritten<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(SetPromise(ballot(3)))?;
    s.op(SetPromise(ballot(7)))?;
    s.op(SetPromise(ballot(5)))?;
    s.finish()
}

/// `set_accepted_round`: set and overwritten.
pub fn accepted_round_set_and_overwritten<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(SetAcceptedRound(ballot(2)))?;
    s.op(SetAcceptedRound(ballot(4)))?;
    s.finish()
}

/// `set_decided_idx`: set and overwritten, independent of the log length.
pub fn decided_idx_set_and_overwritten<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(SetDecidedIndex(4))?;
    s.op(SetDecidedIndex(9))?;
    s.finish()
}

/// `set_compacted_idx`: set and overwritten; it does not trim by itself.
pub fn compacted_idx_set_and_overwritten<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(SetCompactedIdx(3))?;
    s.op(SetCompactedIdx(6))?;
    s.expect_len(10)?;
    s.finish()
}

/// `set_stopsign`: set, overwritten, cleared with `None`.
pub fn stopsign_set_overwritten_and_cleared<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(SetStopsign(Some(stopsign(2))))?;
    s.op(SetStopsign(Some(stopsign(3))))?;
    s.reopen()?;
    s.op(SetStopsign(None))?;
    s.finish()
}

/// `set_snapshot`: set, overwritten, cleared with `None`.
pub fn snapshot_set_overwritten_and_cleared<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(SetSnapshot(Some(snapshot_upto(5))))?;
    s.op(SetSnapshot(Some(snapshot_upto(9))))?;
    s.reopen()?;
    s.op(SetSnapshot(None))?;
    s.finish()
}

/// Every metadata field written twice in one batch: the last write of each wins.
pub fn metadata_batch_last_write_wins<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.batch(vec![
        SetPromise(ballot(1)),
        SetAcceptedRound(ballot(1)),
        SetDecidedIndex(1),
        SetCompactedIdx(1),
        SetStopsign(Some(stopsign(2))),
        SetSnapshot(Some(snapshot_upto(1))),
        SetPromise(ballot(2)),
        SetAcceptedRound(ballot(2)),
        SetDecidedIndex(2),
        SetCompactedIdx(2),
        SetStopsign(None),
        SetSnapshot(Some(snapshot_upto(2))),
    ])?;
    s.finish()
}

// ---- appends and reads ----

/// `append_entry` lands at `next`, one at a time.
pub fn append_entry_lands_at_next<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    for i in 0..5 {
        s.op(AppendEntry(entry(i)))?;
    }
    s.expect_entries(0, 5, &values(0..5))?;
    s.finish()
}

/// `append_entries` lands at `next`, batch after batch.
pub fn append_entries_lands_at_next<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(AppendEntries(entries(0..3)))?;
    s.op(AppendEntries(entries(3..10)))?;
    s.expect_entries(2, 5, &values(2..5))?;
    s.expect_len(10)?;
    s.finish()
}

/// `append_entries(vec![])` changes nothing.
pub fn append_empty_vec_is_noop<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 3)?;
    s.op(AppendEntries(vec![]))?;
    s.expect_len(3)?;
    s.batch(vec![AppendEntries(vec![])])?;
    s.expect_len(3)?;
    s.finish()
}

/// `get_entries(first, next)` returns the whole log.
pub fn get_entries_whole_log<H: Harness>(h: H) -> CaseResult {
    let s = with_log(h, 20)?;
    s.expect_entries(0, 20, &values(0..20))?;
    s.finish()
}

/// `get_entries(from, to)` is half-open: `to` is excluded.
pub fn get_entries_is_half_open<H: Harness>(h: H) -> CaseResult {
    let s = with_log(h, 10)?;
    s.expect_entries(3, 4, &[3])?;
    s.expect_entries(3, 7, &values(3..7))?;
    s.expect_entries(9, 10, &[9])?;
    s.finish()
}

/// `get_entries(i, i)` and `get_entries(j, i)` with `j > i` are empty.
pub fn get_entries_empty_range_is_empty<H: Harness>(h: H) -> CaseResult {
    let s = with_log(h, 10)?;
    s.expect_entries(4, 4, &[])?;
    s.expect_entries(6, 2, &[])?;
    s.expect_entries(0, 0, &[])?;
    s.finish()
}

/// A range reaching past `next` is empty, never a partial answer.
pub fn get_entries_past_end_is_empty<H: Harness>(h: H) -> CaseResult {
    let s = with_log(h, 10)?;
    s.expect_entries(5, 11, &[])?;
    s.expect_entries(10, 12, &[])?;
    s.expect_entries(50, 60, &[])?;
    s.expect_entries(0, usize::MAX, &[])?;
    s.finish()
}

/// After a trim, a range wholly below the trim point is empty.
pub fn get_entries_below_trim_point_is_empty<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(6))?;
    s.expect_entries(0, 3, &[])?;
    s.expect_entries(2, 6, &[])?;
    s.finish()
}

/// After a trim, a range that starts below the trim point and ends above it is empty.
pub fn get_entries_straddling_trim_point_is_empty<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(6))?;
    s.expect_entries(5, 8, &[])?;
    s.expect_entries(0, 10, &[])?;
    s.finish()
}

/// After a trim, reads use absolute indices: entry `i` is still at `i`.
pub fn reads_after_trim_use_absolute_indices<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(4))?;
    s.expect_entries(4, 6, &[4, 5])?;
    s.expect_entries(9, 10, &[9])?;
    s.expect_suffix(7, &[7, 8, 9])?;
    s.finish()
}

/// `get_suffix(from)` for every `from` in the log returns `[from, next)`.
pub fn get_suffix_from_each_position<H: Harness>(h: H) -> CaseResult {
    let s = with_log(h, 8)?;
    for from in 0..8 {
        s.expect_suffix(from, &values(from..8))?;
    }
    s.finish()
}

/// `get_suffix(from)` at or past `next` is empty.
pub fn get_suffix_past_end_is_empty<H: Harness>(h: H) -> CaseResult {
    let s = with_log(h, 8)?;
    s.expect_suffix(8, &[])?;
    s.expect_suffix(9, &[])?;
    s.expect_suffix(usize::MAX, &[])?;
    s.finish()
}

/// `get_suffix(from)` below the trim point is empty.
pub fn get_suffix_below_trim_point_is_empty<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 8)?;
    s.op(Trim(5))?;
    s.expect_suffix(0, &[])?;
    s.expect_suffix(4, &[])?;
    s.expect_suffix(5, &[5, 6, 7])?;
    s.finish()
}

// ---- append_on_prefix ----

/// `append_on_prefix(i, v)` with a short `v` drops the old suffix: the log shrinks.
pub fn append_on_prefix_shrinks<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(4, rewrites(4..6)))?;
    s.expect_len(6)?;
    s.expect_entries(3, 6, &[3, 1_000_004, 1_000_005])?;
    s.expect_entries(5, 8, &[])?;
    s.finish()
}

/// `append_on_prefix(i, v)` with a long `v` replaces the suffix and extends the log.
pub fn append_on_prefix_extends<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(7, rewrites(7..15)))?;
    s.expect_len(15)?;
    s.expect_entries(7, 15, &rewritten_values(7..15))?;
    s.expect_entries(6, 7, &[6])?;
    s.finish()
}

/// `append_on_prefix(next, v)` is an append.
pub fn append_on_prefix_at_next_appends<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(10, rewrites(10..12)))?;
    s.expect_entries(0, 12, &[values(0..10), rewritten_values(10..12)].concat())?;
    s.finish()
}

/// `append_on_prefix(i, vec![])` inside the log truncates it at `i`.
pub fn append_on_prefix_with_no_entries_truncates<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(6, vec![]))?;
    s.expect_len(6)?;
    s.op(AppendEntry(rewritten(6)))?;
    s.expect_entries(5, 7, &[5, 1_000_006])?;
    s.finish()
}

/// Right after a trim, `append_on_prefix(first, v)` replaces the whole stored log.
pub fn append_on_prefix_at_first_after_trim<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(5))?;
    s.op(AppendOnPrefix(5, rewrites(5..8)))?;
    s.expect_len(3)?;
    s.expect_entries(5, 8, &rewritten_values(5..8))?;
    s.finish()
}

/// `append_on_prefix(i, vec![])` with `i > next` is a no-op (a stop-sign counted past the end).
pub fn append_on_prefix_past_next_without_entries_is_noop<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(11, vec![]))?;
    s.op(AppendOnPrefix(500, vec![]))?;
    s.expect_len(10)?;
    s.op(AppendEntry(entry(10)))?;
    s.expect_entries(10, 11, &[10])?;
    s.finish()
}

/// `append_on_prefix(i, v)` with `i > next` and entries is an error that changes nothing.
pub fn append_on_prefix_past_next_with_entries_is_error<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(12, rewrites(12..14)))?;
    s.expect_len(10)?;
    s.finish()
}

/// `append_on_prefix(i, v)` with `i < first` is an error that changes nothing.
pub fn append_on_prefix_below_first_is_error<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(5))?;
    s.op(AppendOnPrefix(3, rewrites(3..9)))?;
    s.op(AppendOnPrefix(4, vec![]))?;
    s.expect_entries(5, 10, &values(5..10))?;
    s.finish()
}

// ---- trim ----

/// `trim(i)` with `i <= first` changes nothing.
pub fn trim_below_first_is_noop<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(0))?;
    s.op(Trim(6))?;
    s.op(Trim(3))?;
    s.op(Trim(6))?;
    s.expect_len(4)?;
    s.finish()
}

/// `trim(i)` inside the log drops exactly `[first, i)`.
pub fn trim_partial_drops_prefix<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(3))?;
    s.expect_len(7)?;
    s.expect_entries(3, 10, &values(3..10))?;
    s.expect_entries(2, 4, &[])?;
    s.finish()
}

/// `trim(next)` empties the log; appends continue at `next`.
pub fn trim_exactly_to_next_empties_log<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(10))?;
    s.expect_len(0)?;
    s.op(AppendEntries(entries(10..12)))?;
    s.expect_entries(10, 12, &[10, 11])?;
    s.finish()
}

/// `trim(i)` past `next` empties the log with `first = next = i`; appends land at `i`.
pub fn trim_beyond_end_then_append<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(25))?;
    s.expect_len(0)?;
    s.op(AppendEntries(entries(25..28)))?;
    s.expect_entries(25, 28, &[25, 26, 27])?;
    s.expect_entries(10, 26, &[])?;
    s.finish()
}

/// Follower catch-up: `trim(i)` past `next`, then `append_on_prefix(i, v)` there.
pub fn trim_beyond_end_then_append_on_prefix<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(40))?;
    s.op(AppendOnPrefix(40, rewrites(40..45)))?;
    s.expect_entries(40, 45, &rewritten_values(40..45))?;
    s.expect_len(5)?;
    s.finish()
}

/// Repeated trims move `first` forward only, each dropping exactly what it should.
pub fn trim_repeated<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 30)?;
    for i in [2, 5, 5, 11, 4, 20, 29, 30] {
        s.op(Trim(i))?;
    }
    s.expect_len(0)?;
    s.op(AppendEntry(entry(30)))?;
    s.expect_suffix(30, &[30])?;
    s.finish()
}

/// `trim` on a fresh store: `trim(0)` is a no-op, `trim(5)` starts the empty log at 5.
pub fn trim_on_fresh_store<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(Trim(0))?;
    s.op(Trim(5))?;
    s.op(AppendEntry(entry(5)))?;
    s.expect_entries(5, 6, &[5])?;
    s.finish()
}

/// `get_log_len` counts only entries physically held, never trimmed ones.
pub fn log_len_counts_only_held_entries<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(4))?;
    s.expect_len(6)?;
    s.op(AppendEntries(entries(10..13)))?;
    s.expect_len(9)?;
    s.op(Trim(100))?;
    s.expect_len(0)?;
    s.finish()
}

// ---- write_atomically ----

/// OmniPaxos's trim shape: `[Trim(i), SetCompactedIdx(i)]`.
pub fn batch_trim_shape<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 50)?;
    s.op(SetDecidedIndex(40))?;
    s.batch(vec![Trim(30), SetCompactedIdx(30)])?;
    s.expect_entries(30, 32, &[30, 31])?;
    s.batch(vec![Trim(40), SetCompactedIdx(40)])?;
    s.expect_len(10)?;
    s.finish()
}

/// OmniPaxos's snapshot-plus-truncate shape: `[Trim(i), SetCompactedIdx(i), SetSnapshot(s)]`.
pub fn batch_snapshot_plus_truncate_shape<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 50)?;
    s.op(SetDecidedIndex(50))?;
    s.batch(vec![
        Trim(20),
        SetCompactedIdx(20),
        SetSnapshot(Some(snapshot_upto(20))),
    ])?;
    s.batch(vec![
        Trim(45),
        SetCompactedIdx(45),
        SetSnapshot(Some(snapshot_upto(45))),
    ])?;
    s.expect_entries(44, 46, &[])?;
    s.expect_entries(45, 50, &values(45..50))?;
    s.finish()
}

/// OmniPaxos's `sync_log` shape with a complete snapshot beyond the local log end.
pub fn batch_sync_log_with_snapshot_beyond_end<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(SetDecidedIndex(8))?;
    s.batch(vec![
        SetAcceptedRound(ballot(4)),
        SetDecidedIndex(60),
        Trim(60),
        SetCompactedIdx(60),
        SetSnapshot(Some(snapshot_upto(60))),
        AppendOnPrefix(60, rewrites(60..70)),
    ])?;
    s.expect_entries(60, 70, &rewritten_values(60..70))?;
    s.finish()
}

/// OmniPaxos's `sync_log` shape without a snapshot: the follower's suffix is replaced.
pub fn batch_sync_log_replaces_suffix<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(SetDecidedIndex(5))?;
    s.batch(vec![
        SetAcceptedRound(ballot(3)),
        SetDecidedIndex(6),
        AppendOnPrefix(6, rewrites(6..12)),
    ])?;
    s.expect_entries(5, 8, &[5, 1_000_006, 1_000_007])?;
    s.finish()
}

/// `sync_log` with a stop-sign counted one past the log end: `AppendOnPrefix(next + 1, [])`
/// is a no-op and the stop-sign is stored.
pub fn batch_sync_log_with_stopsign_past_end<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.batch(vec![
        SetAcceptedRound(ballot(5)),
        SetDecidedIndex(10),
        AppendOnPrefix(11, vec![]),
        SetStopsign(Some(stopsign(2))),
    ])?;
    s.expect_len(10)?;
    s.finish()
}

/// Ops in a batch apply in order: later ops see the effect of earlier ones.
pub fn batch_ops_apply_in_order<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.batch(vec![
        AppendEntries(entries(0..10)),
        Trim(4),
        AppendOnPrefix(6, rewrites(6..8)),
        AppendEntry(rewritten(8)),
        Trim(5),
        SetDecidedIndex(7),
    ])?;
    s.expect_entries(5, 9, &[5, 1_000_006, 1_000_007, 1_000_008])?;
    s.finish()
}

/// A batch whose last op fails (`AppendOnPrefix` past `next`) changes nothing at all.
pub fn batch_failing_last_op_changes_nothing<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(SetPromise(ballot(1)))?;
    let accepted = s.batch(vec![
        SetPromise(ballot(9)),
        AppendEntries(entries(10..15)),
        Trim(3),
        SetDecidedIndex(12),
        AppendOnPrefix(100, rewrites(100..101)),
    ])?;
    if accepted {
        return Err(s.fail("a batch ending in AppendOnPrefix past next was accepted"));
    }
    s.expect_len(10)?;
    s.finish()
}

/// A compaction batch followed by a failing op changes nothing: no trim, no snapshot.
pub fn batch_failing_after_compaction_changes_nothing<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 20)?;
    s.batch(vec![
        Trim(15),
        SetCompactedIdx(15),
        SetSnapshot(Some(snapshot_upto(15))),
        AppendOnPrefix(3, rewrites(3..4)),
    ])?;
    s.expect_entries(0, 20, &values(0..20))?;
    s.finish()
}

/// A batch holding an entry the codec refuses: either the backend does not encode and
/// applies it all, or it refuses the whole batch and nothing changes.
pub fn batch_with_unencodable_entry_is_all_or_nothing<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.batch(vec![
        SetPromise(ballot(3)),
        Trim(2),
        AppendEntries(entries(10..12)),
        AppendEntry(KeyValue::unencodable("poison", 12)),
    ])?;
    s.op(AppendEntries(vec![
        entry(20),
        KeyValue::unencodable("poison", 21),
    ]))?;
    s.finish()
}

/// An empty batch changes nothing.
pub fn empty_batch_is_noop<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 5)?;
    s.batch(vec![])?;
    s.finish()
}

/// A failed single call (`append_on_prefix` out of range) leaves later calls working.
pub fn store_usable_after_rejected_call<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 5)?;
    s.op(AppendOnPrefix(9, rewrites(9..10)))?;
    s.op(AppendEntry(entry(5)))?;
    s.batch(vec![AppendEntries(entries(6..8)), SetDecidedIndex(7)])?;
    s.expect_entries(4, 8, &values(4..8))?;
    s.finish()
}

// ---- sizes ----

/// Entries of 1 MiB each are stored and read back intact.
pub fn large_entries_one_mib<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    let big: Vec<KeyValue> = (0..3).map(|i| KeyValue::new("big", i, 1 << 20)).collect();
    s.op(AppendEntries(big))?;
    s.op(AppendEntry(KeyValue::new("big", 3, 1 << 20)))?;
    s.op(Trim(1))?;
    s.expect_len(3)?;
    s.finish()
}

/// A snapshot of about 1 MiB is stored, replaced and read back intact.
pub fn large_snapshot<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.batch(vec![
        Trim(5),
        SetCompactedIdx(5),
        SetSnapshot(Some(KVSnapshot::sized(64, 1 << 20))),
    ])?;
    s.batch(vec![
        Trim(8),
        SetCompactedIdx(8),
        SetSnapshot(Some(KVSnapshot::sized(16, 1 << 20))),
    ])?;
    s.finish()
}

/// A log of 100,000 entries: appended in batches of 5,000 (each checked at both bounds, the
/// whole log once loaded), trimmed in steps, read at both ends.
pub fn long_log_hundred_thousand_entries<H: Harness>(h: H) -> CaseResult {
    const N: usize = 100_000;
    let mut s = Subject::new(h)?;
    s.bulk(|s| {
        for chunk in (0..N).step_by(5000) {
            s.batch(vec![
                AppendEntries(entries(chunk..chunk + 5000)),
                SetDecidedIndex(chunk),
            ])?;
        }
        Ok(())
    })?;
    s.expect_len(N)?;
    s.expect_entries(N - 3, N, &values(N - 3..N))?;
    s.batch(vec![Trim(60_000), SetCompactedIdx(60_000)])?;
    s.expect_entries(59_999, 60_001, &[])?;
    s.expect_entries(60_000, 60_002, &[60_000, 60_001])?;
    s.op(AppendOnPrefix(99_000, rewrites(99_000..99_010)))?;
    s.expect_len(39_010)?;
    s.finish()
}

// ---- reopen ----

/// Reopening a fresh store shows a fresh store.
pub fn reopen_fresh_store<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.reopen()?;
    s.reopen()?;
    s.finish()
}

/// Every field of the state survives a reopen.
pub fn reopen_preserves_all_state<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 30)?;
    s.batch(vec![
        SetPromise(ballot(8)),
        SetAcceptedRound(ballot(7)),
        SetDecidedIndex(25),
        Trim(12),
        SetCompactedIdx(12),
        SetSnapshot(Some(snapshot_upto(12))),
        SetStopsign(Some(stopsign(4))),
    ])?;
    s.reopen()?;
    s.expect_entries(12, 30, &values(12..30))?;
    s.finish()
}

/// After a reopen, appends land at the right absolute index.
pub fn appends_after_reopen_land_at_absolute_index<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(Trim(7))?;
    s.reopen()?;
    s.op(AppendEntries(entries(10..13)))?;
    s.expect_entries(7, 13, &values(7..13))?;
    s.reopen()?;
    s.op(AppendEntry(entry(13)))?;
    s.expect_suffix(12, &[12, 13])?;
    s.finish()
}

/// A trim past the end survives a reopen: the empty log still starts at the trim point.
pub fn reopen_after_trim_beyond_end<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.batch(vec![Trim(33), SetCompactedIdx(33)])?;
    s.reopen()?;
    s.op(AppendEntries(entries(33..35)))?;
    s.expect_entries(33, 35, &[33, 34])?;
    s.finish()
}

/// A shrinking `append_on_prefix` survives a reopen: the dropped suffix stays dropped.
pub fn reopen_after_append_on_prefix<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 20)?;
    s.op(AppendOnPrefix(8, rewrites(8..10)))?;
    s.reopen()?;
    s.expect_len(10)?;
    s.op(AppendEntry(entry(10)))?;
    s.expect_entries(9, 11, &[1_000_009, 10])?;
    s.finish()
}

/// A rejected batch leaves nothing behind that a reopen would bring back.
pub fn reopen_after_rejected_batch<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.batch(vec![
        AppendEntries(entries(10..20)),
        SetSnapshot(Some(snapshot_upto(3))),
        AppendOnPrefix(50, rewrites(50..51)),
    ])?;
    s.reopen()?;
    s.expect_len(10)?;
    s.finish()
}

/// Many reopens in a row with writes in between: each shows exactly what was acknowledged.
pub fn repeated_reopen_with_writes<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    for round in 0..6usize {
        let base = round * 10;
        s.op(AppendEntries(entries(base..base + 10)))?;
        s.batch(vec![
            SetDecidedIndex(base + 5),
            Trim(base + 2),
            SetCompactedIdx(base + 2),
        ])?;
        s.reopen()?;
    }
    s.finish()
}

// ---- values that differ in every field, metadata lowered ----

/// Promise and accepted round: ballots that differ in every field (configuration id, round,
/// priority, pid), raised and then lowered in every field, each value read back after a reopen.
pub fn ballots_keep_every_field_raised_and_lowered<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(SetPromise(distinct_ballot(1)))?;
    s.op(SetAcceptedRound(distinct_ballot(2)))?;
    s.reopen()?;
    s.batch(vec![
        SetPromise(distinct_ballot(4)),
        SetAcceptedRound(distinct_ballot(3)),
    ])?;
    s.reopen()?;
    // Lower in every field, the priority to 0 and the pid to 1.
    let low = Ballot {
        config_id: 1,
        n: 2,
        priority: 0,
        pid: 1,
    };
    s.op(SetPromise(low))?;
    s.op(SetAcceptedRound(Ballot { n: 1, ..low }))?;
    s.reopen()?;
    s.batch(vec![
        SetPromise(Ballot {
            priority: u32::MAX,
            pid: u64::MAX,
            ..distinct_ballot(7)
        }),
        SetAcceptedRound(distinct_ballot(0)),
    ])?;
    s.finish()
}

/// Stop-signs that differ in every field (configuration id, nodes, flexible quorum, metadata),
/// set alone and in batches, `Some` of empty metadata distinct from `None`, each read back
/// after a reopen.
pub fn stopsign_keeps_every_field<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(SetStopsign(Some(distinct_stopsign(2))))?;
    s.reopen()?;
    s.op(SetStopsign(Some(distinct_stopsign(3))))?;
    s.reopen()?;
    s.batch(vec![SetStopsign(Some(distinct_stopsign(0)))])?;
    s.reopen()?;
    let mut no_metadata = distinct_stopsign(6);
    no_metadata.metadata = None;
    s.batch(vec![SetDecidedIndex(0), SetStopsign(Some(no_metadata))])?;
    s.reopen()?;
    s.op(SetStopsign(Some(distinct_stopsign(9))))?;
    s.finish()
}

/// The decided and compacted indices lowered (alone and in batches): the last value written
/// wins across reopens, not the highest.
pub fn metadata_lowered_survives_reopen<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 20)?;
    s.op(SetDecidedIndex(15))?;
    s.op(SetCompactedIdx(9))?;
    s.reopen()?;
    s.op(SetDecidedIndex(6))?;
    s.op(SetCompactedIdx(2))?;
    s.reopen()?;
    s.batch(vec![SetDecidedIndex(18), SetCompactedIdx(11)])?;
    s.batch(vec![SetDecidedIndex(3), SetCompactedIdx(1)])?;
    s.reopen()?;
    s.batch(vec![
        SetDecidedIndex(12),
        SetDecidedIndex(0),
        SetCompactedIdx(7),
        SetCompactedIdx(0),
    ])?;
    s.finish()
}

// ---- clearing inside a batch ----

/// `SetStopsign(None)` and `SetSnapshot(None)` inside a batch clear what the store holds from
/// before the batch, on their own and between other ops.
pub fn batch_clears_held_stopsign_and_snapshot<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.batch(vec![
        Trim(4),
        SetCompactedIdx(4),
        SetSnapshot(Some(snapshot_upto(4))),
        SetStopsign(Some(distinct_stopsign(4))),
    ])?;
    s.reopen()?;
    s.batch(vec![SetStopsign(None)])?;
    s.batch(vec![SetSnapshot(None)])?;
    s.reopen()?;
    s.batch(vec![
        SetSnapshot(Some(snapshot_upto(6))),
        SetStopsign(Some(distinct_stopsign(5))),
    ])?;
    s.reopen()?;
    s.batch(vec![
        AppendEntries(entries(10..12)),
        SetStopsign(None),
        SetDecidedIndex(11),
        SetSnapshot(None),
        SetAcceptedRound(distinct_ballot(3)),
    ])?;
    s.finish()
}

// ---- append_on_prefix at the edges ----

/// `append_on_prefix(next, [])` (a caught-up follower's `sync_log`) is a no-op, alone and in
/// the `sync_log` batch shape; appends then still land at `next`.
pub fn append_on_prefix_at_next_without_entries_is_noop<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(10, vec![]))?;
    s.expect_len(10)?;
    s.batch(vec![
        SetAcceptedRound(distinct_ballot(1)),
        SetDecidedIndex(10),
        AppendOnPrefix(10, vec![]),
    ])?;
    s.expect_len(10)?;
    s.op(Trim(4))?;
    s.op(AppendOnPrefix(10, vec![]))?;
    s.op(AppendEntry(entry(10)))?;
    s.expect_entries(9, 11, &[9, 10])?;
    s.op(Trim(20))?;
    s.op(AppendOnPrefix(20, vec![]))?;
    s.expect_len(0)?;
    s.op(AppendEntry(entry(20)))?;
    s.expect_entries(20, 21, &[20])?;
    s.finish()
}

/// `append_on_prefix(next + 1, v)` with entries is an error that changes nothing, alone and as
/// the last op of a batch (it would leave a gap at `next`).
pub fn append_on_prefix_one_past_next_with_entries_is_error<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 10)?;
    s.op(AppendOnPrefix(11, rewrites(11..13)))?;
    s.expect_len(10)?;
    let accepted = s.batch(vec![
        SetDecidedIndex(9),
        AppendEntries(entries(10..12)),
        AppendOnPrefix(13, rewrites(13..14)),
    ])?;
    if accepted {
        return Err(s.fail("a batch ending in AppendOnPrefix(next + 1, entries) was accepted"));
    }
    s.op(Trim(30))?;
    s.op(AppendOnPrefix(31, rewrites(31..32)))?;
    s.op(AppendEntry(entry(30)))?;
    s.expect_entries(30, 31, &[30])?;
    s.finish()
}

// ---- an empty log's position ----

/// An empty log keeps its position across a reopen: after a trim of everything (on a fresh
/// store, exactly to `next`, past `next`) or a truncation to `first`, with a compacted index
/// that differs from the trim point, the first append after the reopen lands at the old `next`.
pub fn empty_log_position_survives_reopen<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.op(Trim(7))?;
    s.reopen()?;
    s.op(AppendEntries(entries(7..10)))?;
    s.expect_entries(7, 10, &[7, 8, 9])?;
    // Exactly to next, compacted index elsewhere.
    s.op(SetCompactedIdx(3))?;
    s.op(Trim(10))?;
    s.reopen()?;
    s.op(AppendEntry(entry(10)))?;
    s.expect_entries(10, 11, &[10])?;
    // Past next, in a batch, compacted index elsewhere.
    s.batch(vec![Trim(25), SetCompactedIdx(12)])?;
    s.reopen()?;
    s.op(AppendEntries(entries(25..27)))?;
    s.expect_entries(25, 27, &[25, 26])?;
    // Truncated back to first by append_on_prefix.
    s.op(AppendOnPrefix(25, vec![]))?;
    s.op(SetCompactedIdx(40))?;
    s.reopen()?;
    s.expect_len(0)?;
    s.op(AppendEntry(rewritten(25)))?;
    s.expect_entries(25, 26, &[1_000_025])?;
    s.finish()
}

// ---- failures after a snapshot ----

/// A compaction batch that installs a new snapshot and then cannot be encoded (an unencodable
/// entry after the `SetSnapshot`), or fails on an out-of-range op after clearing the snapshot
/// and stop-sign, leaves the old snapshot, stop-sign and log in place (or, for a backend that
/// does not encode, applies the first batch whole).
pub fn batch_failing_after_snapshot_changes_nothing<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 20)?;
    s.batch(vec![
        Trim(5),
        SetCompactedIdx(5),
        SetSnapshot(Some(snapshot_upto(5))),
        SetStopsign(Some(distinct_stopsign(1))),
    ])?;
    s.reopen()?;
    s.batch(vec![
        Trim(15),
        SetCompactedIdx(15),
        SetSnapshot(Some(snapshot_upto(15))),
        AppendEntries(vec![entry(20), KeyValue::unencodable("poison", 21)]),
    ])?;
    s.reopen()?;
    let (first, next) = (s.model().first, s.model().next);
    let accepted = s.batch(vec![
        SetSnapshot(None),
        SetStopsign(None),
        Trim(first + 1),
        AppendOnPrefix(next + 3, rewrites(next + 3..next + 4)),
    ])?;
    if accepted {
        return Err(s.fail("a batch ending in AppendOnPrefix past next was accepted"));
    }
    s.finish()
}

/// A snapshot that cannot be encoded: `set_snapshot` alone, and a compaction batch holding
/// it, either store it (a backend that does not encode) or fail and change nothing.
pub fn batch_with_unencodable_snapshot_is_all_or_nothing<H: Harness>(h: H) -> CaseResult {
    let mut s = with_log(h, 12)?;
    s.op(SetSnapshot(Some(snapshot_upto(2))))?;
    s.op(SetSnapshot(Some(KVSnapshot::unencodable("poison", 1))))?;
    s.reopen()?;
    s.batch(vec![
        SetPromise(distinct_ballot(2)),
        AppendEntries(entries(12..14)),
        Trim(6),
        SetCompactedIdx(6),
        SetSnapshot(Some(KVSnapshot::unencodable("poison", 2))),
        SetDecidedIndex(13),
    ])?;
    s.reopen()?;
    s.op(AppendEntry(entry(s.model().next)))?;
    s.finish()
}

// ---- extreme read bounds ----

/// Reads at `usize::MAX` bounds are empty, never a panic or an overflow: `get_entries` from,
/// to and across `usize::MAX`, `get_suffix(usize::MAX)`, before and after a trim.
pub fn reads_at_usize_max_bounds_are_empty<H: Harness>(h: H) -> CaseResult {
    const MAX: usize = usize::MAX;
    let mut s = with_log(h, 10)?;
    for round in 0..2 {
        s.expect_entries(MAX, MAX, &[])?;
        s.expect_entries(MAX - 1, MAX, &[])?;
        s.expect_entries(MAX, 0, &[])?;
        s.expect_entries(MAX, 5, &[])?;
        s.expect_entries(5, MAX, &[])?;
        s.expect_entries(9, MAX, &[])?;
        s.expect_entries(10, MAX, &[])?;
        s.expect_entries(MAX - 5, MAX - 1, &[])?;
        s.expect_suffix(MAX, &[])?;
        s.expect_suffix(MAX - 1, &[])?;
        if round == 0 {
            s.op(Trim(4))?;
        }
    }
    s.expect_entries(4, 10, &values(4..10))?;
    s.finish()
}

// ---- single-op calls across an unclean reopen ----

/// Every single-op call (`append_entry`, `append_entries`, `append_on_prefix`, `trim`, and every
/// metadata setter, raising, lowering and clearing) survives a reopen in which the store is
/// abandoned without running its destructor ([`Harness::reopen_abandoned`]): what a killed
/// process leaves behind. Catches a backend that buffers single-op writes until `Drop` or the
/// next batch.
pub fn single_ops_survive_reopen_without_drop<H: Harness>(h: H) -> CaseResult {
    let mut s = Subject::new(h)?;
    s.batch(vec![AppendEntries(entries(0..10)), SetDecidedIndex(2)])?;
    s.op(AppendEntry(entry(10)))?;
    s.op(AppendEntries(entries(11..14)))?;
    s.op(AppendOnPrefix(12, rewrites(12..15)))?;
    s.op(Trim(3))?;
    s.reopen_abandoned()?;
    s.expect_entries(11, 13, &[11, 1_000_012])?;
    s.op(SetPromise(distinct_ballot(1)))?;
    s.op(SetAcceptedRound(distinct_ballot(2)))?;
    s.op(SetDecidedIndex(9))?;
    s.op(SetCompactedIdx(3))?;
    s.op(SetStopsign(Some(distinct_stopsign(2))))?;
    s.op(SetSnapshot(Some(snapshot_upto(3))))?;
    s.reopen_abandoned()?;
    s.op(SetPromise(distinct_ballot(0)))?;
    s.op(SetDecidedIndex(5))?;
    s.op(SetStopsign(None))?;
    s.op(SetSnapshot(None))?;
    s.op(AppendOnPrefix(13, vec![]))?;
    s.reopen_abandoned()?;
    s.op(Trim(40))?;
    s.reopen_abandoned()?;
    s.op(AppendEntry(entry(40)))?;
    s.expect_entries(40, 41, &[40])?;
    s.finish()
}
