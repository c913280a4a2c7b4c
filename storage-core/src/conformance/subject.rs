//! A backend under test driven in lock-step with the reference model.

use std::fmt::Write as _;

use omnipaxos::storage::{Entry, Storage, StorageOp, StorageResult};

use super::{CaseResult, Failure, Harness};
use crate::{kv::KeyValue, model::Model};

/// How many recent operations a failure message lists.
const HISTORY: usize = 12;

/// Clones an op (`StorageOp` itself is not `Clone`).
pub fn clone_op(op: &StorageOp<KeyValue>) -> StorageOp<KeyValue> {
    match op {
        StorageOp::AppendEntry(e) => StorageOp::AppendEntry(e.clone()),
        StorageOp::AppendEntries(v) => StorageOp::AppendEntries(v.clone()),
        StorageOp::AppendOnPrefix(i, v) => StorageOp::AppendOnPrefix(*i, v.clone()),
        StorageOp::SetPromise(b) => StorageOp::SetPromise(*b),
        StorageOp::SetDecidedIndex(i) => StorageOp::SetDecidedIndex(*i),
        StorageOp::SetAcceptedRound(b) => StorageOp::SetAcceptedRound(*b),
        StorageOp::SetCompactedIdx(i) => StorageOp::SetCompactedIdx(*i),
        StorageOp::Trim(i) => StorageOp::Trim(*i),
        StorageOp::SetStopsign(s) => StorageOp::SetStopsign(s.clone()),
        StorageOp::SetSnapshot(s) => StorageOp::SetSnapshot(s.clone()),
    }
}

/// A short description of an op for failure messages (entries are counted, not printed).
pub fn describe(op: &StorageOp<KeyValue>) -> String {
    match op {
        StorageOp::AppendEntry(e) => format!("AppendEntry(value {})", e.value),
        StorageOp::AppendEntries(v) => format!("AppendEntries({} entries)", v.len()),
        StorageOp::AppendOnPrefix(i, v) => format!("AppendOnPrefix({i}, {} entries)", v.len()),
        StorageOp::SetPromise(b) => format!("SetPromise({})", ballot_text(b)),
        StorageOp::SetDecidedIndex(i) => format!("SetDecidedIndex({i})"),
        StorageOp::SetAcceptedRound(b) => format!("SetAcceptedRound({})", ballot_text(b)),
        StorageOp::SetCompactedIdx(i) => format!("SetCompactedIdx({i})"),
        StorageOp::Trim(i) => format!("Trim({i})"),
        StorageOp::SetStopsign(s) => match s {
            Some(s) => format!("SetStopsign(config {})", s.next_config.configuration_id),
            None => "SetStopsign(None)".to_string(),
        },
        StorageOp::SetSnapshot(s) => format!(
            "SetSnapshot({})",
            s.as_ref().map_or("None".to_string(), |s| format!(
                "{} keys",
                s.snapshotted.len()
            ))
        ),
    }
}

fn ballot_text(b: &omnipaxos::ballot_leader_election::Ballot) -> String {
    format!(
        "n={} config={} priority={} pid={}",
        b.n, b.config_id, b.priority, b.pid
    )
}

/// Whether an op carries an entry or a snapshot that the codec refuses (see
/// [`KeyValue::unencodable`] and [`KVSnapshot::unencodable`](crate::kv::KVSnapshot::unencodable)).
pub(crate) fn has_unencodable(ops: &[StorageOp<KeyValue>]) -> bool {
    let bad = |e: &KeyValue| crate::codec::encode("entry", e).is_err();
    ops.iter().any(|op| match op {
        StorageOp::AppendEntry(e) => bad(e),
        StorageOp::AppendEntries(v) | StorageOp::AppendOnPrefix(_, v) => v.iter().any(bad),
        StorageOp::SetSnapshot(Some(s)) => crate::codec::encode("snapshot", s).is_err(),
        _ => false,
    })
}

/// A store from a [`Harness`] and the [`Model`], driven together; every call's outcome and every
/// read is compared.
pub struct Subject<H: Harness> {
    harness: H,
    store: Option<H::Store>,
    model: Model<KeyValue>,
    history: Vec<String>,
    /// Whether each call is followed by a read of the whole log (see [`Subject::bulk`]).
    whole_log_reads: bool,
}

impl<H: Harness> Subject<H> {
    /// A fresh store from `harness`, checked against a fresh model.
    pub fn new(mut harness: H) -> CaseResult<Self> {
        let store = harness
            .create()
            .map_err(|e| Failure::new(format!("creating a fresh store failed: {e}")))?;
        let s = Subject {
            harness,
            store: Some(store),
            model: Model::new(),
            history: Vec::new(),
            whole_log_reads: true,
        };
        s.verify("fresh store")?;
        Ok(s)
    }

    /// The model's view of the state.
    pub fn model(&self) -> &Model<KeyValue> {
        &self.model
    }

    /// The store under test.
    pub fn store(&self) -> &H::Store {
        // Invariant: `store` is `None` only inside `reopen`, which always puts one back or
        // returns an error that ends the case.
        self.store.as_ref().expect("store present outside reopen")
    }

    fn store_mut(&mut self) -> &mut H::Store {
        self.store.as_mut().expect("store present outside reopen")
    }

    /// A failure carrying `msg` and the recent history.
    pub fn fail(&self, msg: impl Into<String>) -> Failure {
        let mut m = msg.into();
        let start = self.history.len().saturating_sub(HISTORY);
        let _ = write!(
            m,
            "\n  model: first={} next={} decided={} compacted={}\n  last ops:",
            self.model.first, self.model.next, self.model.decided_idx, self.model.compacted_idx
        );
        for h in &self.history[start..] {
            let _ = write!(m, "\n    {h}");
        }
        Failure::new(m)
    }

    /// Applies one op through the trait method that matches it (not `write_atomically`).
    pub fn op(&mut self, op: StorageOp<KeyValue>) -> CaseResult<()> {
        let desc = describe(&op);
        let encodable = !has_unencodable(std::slice::from_ref(&op));
        let mut staged = self.model.clone();
        let expected = staged.apply(&op);
        let store = self.store_mut();
        let got = call_single_op(store, op);
        self.settle(desc, expected.is_ok(), encodable, got, staged)
    }

    /// Applies a batch through `write_atomically`. Returns whether the store accepted it.
    pub fn batch(&mut self, ops: Vec<StorageOp<KeyValue>>) -> CaseResult<bool> {
        let desc = format!(
            "write_atomically[{}]",
            ops.iter().map(describe).collect::<Vec<_>>().join(", ")
        );
        let encodable = !has_unencodable(&ops);
        let mut staged = self.model.clone();
        let expected = staged.apply_batch(&ops);
        let got = self.store_mut().write_atomically(ops);
        let accepted = got.is_ok();
        self.settle(desc, expected.is_ok(), encodable, got, staged)?;
        Ok(accepted)
    }

    fn settle(
        &mut self,
        desc: String,
        model_ok: bool,
        encodable: bool,
        got: omnipaxos::storage::StorageResult<()>,
        staged: Model<KeyValue>,
    ) -> CaseResult<()> {
        let outcome = match &got {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("err: {e}"),
        };
        self.history.push(format!("{desc} -> {outcome}"));
        match (model_ok, got) {
            (true, Ok(())) => self.model = staged,
            (false, Err(_)) => {}
            // A backend that encodes may refuse what it cannot encode; it must then change nothing.
            (true, Err(_)) if !encodable => {}
            (true, Err(e)) => {
                return Err(self.fail(format!("{desc} failed but the contract accepts it: {e}")))
            }
            (false, Ok(())) => {
                return Err(self.fail(format!("{desc} succeeded but the contract rejects it")))
            }
        }
        if self.whole_log_reads {
            self.verify(&desc)
        } else {
            verify_reads(self.store(), &self.model, false)
                .map_err(|m| self.fail(format!("after {desc}: {m}")))
        }
    }

    /// Compares every read of the store with the model.
    pub fn verify(&self, ctx: &str) -> CaseResult<()> {
        verify_store(self.store(), &self.model).map_err(|m| self.fail(format!("after {ctx}: {m}")))
    }

    /// Runs `f` with the reads after each call limited to the metadata, the length and
    /// windows around both bounds (no read of the whole log), then compares every read: for
    /// loading long logs without a quadratic cost.
    pub fn bulk(&mut self, f: impl FnOnce(&mut Self) -> CaseResult<()>) -> CaseResult<()> {
        self.whole_log_reads = false;
        let result = f(self);
        self.whole_log_reads = true;
        result?;
        self.verify("the bulk load")
    }

    /// Checks one `get_entries` read against the model and against `expect_values` (the `value`
    /// fields the contract requires, spelled out by the case).
    pub fn expect_entries(&self, from: usize, to: usize, expect_values: &[u64]) -> CaseResult<()> {
        let got = self
            .store()
            .get_entries(from, to)
            .map_err(|e| self.fail(format!("get_entries({from}, {to}) failed: {e}")))?;
        let values: Vec<u64> = got.iter().map(|e| e.value).collect();
        if values != expect_values || got != self.model.entries(from, to) {
            return Err(self.fail(format!(
                "get_entries({from}, {to}) returned values {values:?}, expected {expect_values:?}"
            )));
        }
        Ok(())
    }

    /// Checks one `get_suffix` read against the model and against `expect_values`.
    pub fn expect_suffix(&self, from: usize, expect_values: &[u64]) -> CaseResult<()> {
        let got = self
            .store()
            .get_suffix(from)
            .map_err(|e| self.fail(format!("get_suffix({from}) failed: {e}")))?;
        let values: Vec<u64> = got.iter().map(|e| e.value).collect();
        if values != expect_values || got != self.model.suffix(from) {
            return Err(self.fail(format!(
                "get_suffix({from}) returned values {values:?}, expected {expect_values:?}"
            )));
        }
        Ok(())
    }

    /// Checks `get_log_len` against an explicit expectation.
    pub fn expect_len(&self, len: usize) -> CaseResult<()> {
        let got = self
            .store()
            .get_log_len()
            .map_err(|e| self.fail(format!("get_log_len failed: {e}")))?;
        if got != len || len != self.model.log_len() {
            return Err(self.fail(format!("get_log_len() = {got}, expected {len}")));
        }
        Ok(())
    }

    /// Closes the store and opens it again through the harness, then compares every read.
    pub fn reopen(&mut self) -> CaseResult<()> {
        let store = self.store.take().expect("store present outside reopen");
        match self.harness.reopen(store) {
            Ok(s) => self.store = Some(s),
            Err(e) => return Err(self.fail(format!("reopen failed: {e}"))),
        }
        self.history.push("reopen".into());
        self.verify("reopen")
    }

    /// Abandons the store without running its destructor, as a killed process would, and opens
    /// what it left behind through [`Harness::reopen_abandoned`]; then compares every read.
    pub fn reopen_abandoned(&mut self) -> CaseResult<()> {
        let store = self.store.take().expect("store present outside reopen");
        match self.harness.reopen_abandoned(store) {
            Ok(s) => self.store = Some(s),
            Err(e) => return Err(self.fail(format!("reopen without a clean drop failed: {e}"))),
        }
        self.history.push("reopen without a clean drop".into());
        self.verify("reopen without a clean drop")
    }

    /// Ends a case: compares every read, reopens, compares again.
    pub fn finish(mut self) -> CaseResult<()> {
        self.verify("the last step")?;
        self.reopen()
    }
}

/// Compares every read of `store` with `model`: metadata, length, the whole log, and reads at
/// and around both bounds.
pub fn verify_store<S: Storage<KeyValue>>(
    store: &S,
    model: &Model<KeyValue>,
) -> Result<(), String> {
    verify_reads(store, model, true)
}

/// [`verify_store`], optionally without the reads of the whole log.
fn verify_reads<S: Storage<KeyValue>>(
    store: &S,
    model: &Model<KeyValue>,
    whole_log: bool,
) -> Result<(), String> {
    macro_rules! get {
        ($call:expr, $name:expr) => {
            $call.map_err(|e| format!("{} failed: {e}", $name))?
        };
    }
    macro_rules! same {
        ($got:expr, $want:expr, $name:expr) => {{
            let (g, w) = ($got, $want);
            if g != w {
                return Err(format!("{} = {:?}, expected {:?}", $name, g, w));
            }
        }};
    }
    same!(
        get!(store.get_promise(), "get_promise"),
        model.promise,
        "get_promise()"
    );
    same!(
        get!(store.get_accepted_round(), "get_accepted_round"),
        model.accepted_round,
        "get_accepted_round()"
    );
    same!(
        get!(store.get_decided_idx(), "get_decided_idx"),
        model.decided_idx,
        "get_decided_idx()"
    );
    same!(
        get!(store.get_compacted_idx(), "get_compacted_idx"),
        model.compacted_idx,
        "get_compacted_idx()"
    );
    same!(
        get!(store.get_stopsign(), "get_stopsign"),
        model.stopsign.clone(),
        "get_stopsign()"
    );
    let snap = get!(store.get_snapshot(), "get_snapshot");
    if snap != model.snapshot {
        return Err(format!(
            "get_snapshot() = {:?} keys, expected {:?} keys (or different contents)",
            snap.map(|s| s.snapshotted.len()),
            model.snapshot.as_ref().map(|s| s.snapshotted.len())
        ));
    }
    same!(
        get!(store.get_log_len(), "get_log_len"),
        model.log_len(),
        "get_log_len()"
    );

    if whole_log {
        verify_whole_log(store, model)?;
    }
    verify_windows(store, model)
}

fn verify_whole_log<S: Storage<KeyValue>>(
    store: &S,
    model: &Model<KeyValue>,
) -> Result<(), String> {
    macro_rules! get {
        ($call:expr, $name:expr) => {
            $call.map_err(|e| format!("{} failed: {e}", $name))?
        };
    }
    let (first, next) = (model.first, model.next);
    let whole = get!(store.get_entries(first, next), "get_entries(first, next)");
    if whole.len() != model.log_len() || whole.iter().ne(model.log.values()) {
        let got: Vec<u64> = whole.iter().take(8).map(|e| e.value).collect();
        let want: Vec<u64> = model.log.values().take(8).map(|e| e.value).collect();
        return Err(format!(
            "get_entries({first}, {next}) returned {} entries starting {got:?}, expected {} starting {want:?}",
            whole.len(),
            model.log_len()
        ));
    }
    let suffix = get!(store.get_suffix(first), "get_suffix(first)");
    if suffix != whole {
        return Err(format!(
            "get_suffix({first}) returned {} entries, get_entries({first}, {next}) {}",
            suffix.len(),
            whole.len()
        ));
    }
    Ok(())
}

/// Reads at and around both bounds; windows only, so that long logs stay cheap to check.
fn verify_windows<S: Storage<KeyValue>>(store: &S, model: &Model<KeyValue>) -> Result<(), String> {
    macro_rules! get {
        ($call:expr, $name:expr) => {
            $call.map_err(|e| format!("{} failed: {e}", $name))?
        };
    }
    let (first, next) = (model.first, model.next);
    let mut points = vec![
        0,
        1,
        first.saturating_sub(1),
        first,
        first + 1,
        (first + next) / 2,
    ];
    points.extend([next.saturating_sub(1), next, next + 1, next + 5]);
    points.sort_unstable();
    points.dedup();
    for &a in &points {
        for &b in &points {
            if b >= a && b - a > 64 && !(a == first && b == next) {
                continue;
            }
            let got = get!(store.get_entries(a, b), format!("get_entries({a}, {b})"));
            let want = model.entries(a, b);
            if got != want {
                return Err(format!(
                    "get_entries({a}, {b}) returned {} entries (values {:?}), expected {} (values {:?})",
                    got.len(),
                    got.iter().take(8).map(|e| e.value).collect::<Vec<_>>(),
                    want.len(),
                    want.iter().take(8).map(|e| e.value).collect::<Vec<_>>()
                ));
            }
        }
        if next.saturating_sub(a) <= 64 || a < first {
            let got = get!(store.get_suffix(a), format!("get_suffix({a})"));
            let want = model.suffix(a);
            if got != want {
                return Err(format!(
                    "get_suffix({a}) returned {} entries, expected {}",
                    got.len(),
                    want.len()
                ));
            }
        }
    }
    Ok(())
}

/// Applies one op through the `Storage` method that matches it (`append_entry`,
/// `set_promise`, `trim`, ...), not through `write_atomically`: how OmniPaxos makes most of
/// its writes.
pub fn call_single_op<T: Entry, S: Storage<T>>(
    store: &mut S,
    op: StorageOp<T>,
) -> StorageResult<()> {
    match op {
        StorageOp::AppendEntry(e) => store.append_entry(e),
        StorageOp::AppendEntries(v) => store.append_entries(v),
        StorageOp::AppendOnPrefix(i, v) => store.append_on_prefix(i, v),
        StorageOp::SetPromise(b) => store.set_promise(b),
        StorageOp::SetDecidedIndex(i) => store.set_decided_idx(i),
        StorageOp::SetAcceptedRound(b) => store.set_accepted_round(b),
        StorageOp::SetCompactedIdx(i) => store.set_compacted_idx(i),
        StorageOp::Trim(i) => store.trim(i),
        StorageOp::SetStopsign(s) => store.set_stopsign(s),
        StorageOp::SetSnapshot(s) => store.set_snapshot(s),
    }
}
