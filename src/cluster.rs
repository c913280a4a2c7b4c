//! An in-process OmniPaxos cluster (three nodes by default) driven by hand.
//!
//! [`Cluster`] owns one [`OmniPaxos`] instance per node, all running in the
//! calling thread. There is no network and no clock: the caller (a test, an
//! example, a benchmark) advances time with [`Cluster::tick_all`] and moves
//! messages between `take_outgoing_messages()` and `handle_incoming()` with
//! [`Cluster::deliver_all`]. Messages addressed to a stopped node are dropped,
//! which is how crashes are simulated.
//!
//! The replicated state machine is a tiny key-value store: every log entry is a
//! [`KvCommand`] (`key := value`) and its snapshot type is [`KvSnapshot`] (the
//! last value of every key), shaped like the `KeyValue`/`KVSnapshot` example of
//! the OmniPaxos documentation.
//!
//! # Compaction semantics (OmniPaxos 0.2.4)
//!
//! * [`Cluster::trim`] calls `OmniPaxos::trim` on the leader. It only succeeds
//!   if **every** node of the configuration (including stopped ones) has
//!   acknowledged (accepted) the index, otherwise it fails with
//!   `CompactionErr::NotAllDecided(min_accepted_idx)`. Trimmed entries are
//!   gone: reading an index below the compacted index yields
//!   `LogEntry::Trimmed(compacted_idx)`.
//! * [`Cluster::snapshot`] calls `OmniPaxos::snapshot(idx, false)` on the
//!   leader; it only needs the index to be decided locally and asks the other
//!   nodes to snapshot too (they silently ignore the request when they cannot
//!   comply). Reading an index below the compacted index then yields
//!   `LogEntry::Snapshotted` carrying the compacted index and the snapshot.
//!   Once a node holds a snapshot, *every* compacted index reads as
//!   `Snapshotted`, including indices that were trimmed earlier; the snapshot
//!   only covers the entries that still existed when it was taken.
//! * Because [`KvSnapshot::use_snapshots`] is `true`, a node that catches up
//!   (after a restart or a leader change) receives the decided entries it
//!   missed as a snapshot, so its whole decided log becomes compacted and its
//!   compacted index differs from its peers'. In OmniPaxos 0.2.4, when that
//!   snapshot is a *delta*, the node's own decided prefix is left out of the
//!   merged snapshot (`sync_log` raises the decided index before snapshotting
//!   the local log), so keys written only in that prefix are lost on that node.
//!   [`Cluster::agree`] detects the resulting disagreement.
//!
//! # Panics
//!
//! The cluster itself does not panic on normal paths; every failure is
//! returned as a [`ClusterError`]. OmniPaxos 0.2.4, however, calls `expect` on
//! storage results in several places (`OmniPaxosConfig::build` when reading the
//! promise, `read`/`read_decided_suffix`, message handling, and `trim` if the
//! storage returns an error that is not a `CompactionErr`), so a storage backend
//! that returns `Err` can still make OmniPaxos panic.

#![deny(missing_docs)]

use omnipaxos::{
    ballot_leader_election::Ballot,
    errors::ConfigError,
    messages::Message,
    storage::{Entry, Snapshot, StopSign, Storage, StorageOp, StorageResult},
    util::{LogEntry, NodeId},
    ClusterConfig, CompactionErr, OmniPaxos, OmniPaxosConfig, ProposeErr, ServerConfig,
};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// One command of the replicated key-value store: set `key` to `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    /// The key that is written.
    pub key: String,
    /// The value written to `key`.
    pub value: u64,
}

impl KvCommand {
    /// Creates the command `key := value`.
    pub fn new(key: impl Into<String>, value: u64) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

impl Entry for KvCommand {
    type Snapshot = KvSnapshot;
}

/// Snapshot of a prefix of [`KvCommand`]s: the last value written to each key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSnapshot {
    /// Last value per key among the snapshotted entries.
    pub snapshotted: BTreeMap<String, u64>,
}

impl Snapshot<KvCommand> for KvSnapshot {
    fn create(entries: &[KvCommand]) -> Self {
        let mut snapshotted = BTreeMap::new();
        for KvCommand { key, value } in entries {
            snapshotted.insert(key.clone(), *value);
        }
        Self { snapshotted }
    }

    fn merge(&mut self, delta: Self) {
        for (k, v) in delta.snapshotted {
            self.snapshotted.insert(k, v);
        }
    }

    fn use_snapshots() -> bool {
        true
    }
}

/// The key-value state of one node, computed from its decided log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    /// Last decided value per key.
    pub values: BTreeMap<String, u64>,
    /// Number of log entries the state reflects (the decided index it was
    /// computed at, as if the log had never been compacted).
    pub applied_idx: usize,
    /// `Some(idx)` if the log started with a `LogEntry::Trimmed(idx)`: the
    /// effect of the entries below `idx` is unknown (they were discarded).
    pub trimmed_idx: Option<usize>,
    /// `Some(idx)` if the log started with a snapshot of the entries below `idx`.
    pub snapshot_idx: Option<usize>,
}

impl KvState {
    /// Computes the state obtained by applying `entries` (as returned by
    /// `read_decided_suffix(0)`) to an empty store.
    pub fn from_log<'a>(entries: impl IntoIterator<Item = &'a LogEntry<KvCommand>>) -> Self {
        let mut state = Self::default();
        for e in entries {
            state.apply(e);
        }
        state
    }

    /// Applies one log entry. `Decided` entries overwrite their key,
    /// `Snapshotted` entries merge their snapshot, `Trimmed` entries only
    /// advance the applied index (their content is lost). `Undecided` and
    /// `StopSign` entries are ignored.
    pub fn apply(&mut self, entry: &LogEntry<KvCommand>) {
        match entry {
            LogEntry::Decided(KvCommand { key, value }) => {
                self.values.insert(key.clone(), *value);
                self.applied_idx += 1;
            }
            LogEntry::Snapshotted(s) => {
                self.values
                    .extend(s.snapshot.snapshotted.iter().map(|(k, v)| (k.clone(), *v)));
                self.applied_idx = self.applied_idx.max(s.trimmed_idx);
                self.snapshot_idx = Some(s.trimmed_idx);
            }
            LogEntry::Trimmed(idx) => {
                self.applied_idx = self.applied_idx.max(*idx);
                self.trimmed_idx = Some(*idx);
            }
            LogEntry::Undecided(_) | LogEntry::StopSign(_, _) => {}
        }
    }
}

/// Errors returned by [`Cluster`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster needs at least two stores (OmniPaxos rejects one-node clusters).
    #[error("a cluster needs at least 2 nodes, got {0}")]
    TooFewNodes(usize),
    /// OmniPaxos rejected the configuration of a node.
    #[error("invalid OmniPaxos configuration: {0}")]
    Config(#[from] ConfigError),
    /// The pid is not part of the cluster configuration.
    #[error("node {0} is not part of the cluster")]
    UnknownNode(NodeId),
    /// The node is stopped (taken out of the cluster).
    #[error("node {0} is stopped")]
    NodeStopped(NodeId),
    /// The node is already running, so it cannot be restarted.
    #[error("node {0} is already running")]
    NodeRunning(NodeId),
    /// No node is currently an accepted leader with a majority of followers.
    #[error("no leader is currently elected")]
    NoLeader,
    /// `append` was rejected by OmniPaxos (its error type implements neither `Display` nor
    /// `Error`, so it is shown with `Debug` and is not a `source`).
    #[error("proposal rejected: {0:?}")]
    Propose(ProposeErr<KvCommand>),
    /// `trim` or `snapshot` was rejected by OmniPaxos.
    #[error("compaction rejected: {0}")]
    Compaction(#[from] CompactionErr),
    /// A condition was not reached within the tick budget.
    #[error("timed out after {ticks} ticks waiting for {waiting_for}")]
    Timeout {
        /// What was being waited for.
        waiting_for: String,
        /// Number of ticks spent waiting.
        ticks: usize,
    },
    /// Message delivery did not become quiescent within the round budget.
    #[error("messages still in flight after {0} delivery rounds")]
    NotQuiescent(usize),
}

impl From<ProposeErr<KvCommand>> for ClusterError {
    fn from(e: ProposeErr<KvCommand>) -> Self {
        Self::Propose(e)
    }
}

/// Result type of [`Cluster`] operations.
pub type ClusterResult<T> = Result<T, ClusterError>;

/// Timing and budget settings of a [`Cluster`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `ServerConfig::election_tick_timeout`: ticks per heartbeat round of the
    /// leader election.
    pub election_tick_timeout: u64,
    /// `ServerConfig::resend_message_tick_timeout`: ticks before OmniPaxos
    /// resends messages it considers lost.
    pub resend_message_tick_timeout: u64,
    /// `ServerConfig::batch_size` (1 = no batching).
    pub batch_size: usize,
    /// `ServerConfig::flush_batch_tick_timeout`: ticks before a partial batch
    /// is flushed.
    pub flush_batch_tick_timeout: u64,
    /// Maximum number of ticks the `wait_*`/`elect_leader` methods spend.
    pub max_ticks: usize,
    /// Maximum number of delivery rounds of one [`Cluster::deliver_all`] call.
    pub max_delivery_rounds: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            election_tick_timeout: 5,
            resend_message_tick_timeout: 10,
            batch_size: 1,
            flush_batch_tick_timeout: 20,
            max_ticks: 1_000,
            max_delivery_rounds: 10_000,
        }
    }
}

/// A snapshot of one node's progress, for reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's pid.
    pub pid: NodeId,
    /// Whether the node is running (not stopped).
    pub running: bool,
    /// `get_decided_idx()`, or 0 if stopped.
    pub decided_idx: usize,
    /// `get_compacted_idx()`, or 0 if stopped.
    pub compacted_idx: usize,
    /// `get_current_leader()`: the leader this node promised to, and whether
    /// this node is in the accept phase.
    pub leader: Option<(NodeId, bool)>,
}

/// The OmniPaxos node type used by [`Cluster`].
pub type KvNode<S> = OmniPaxos<KvCommand, S>;

/// An in-process OmniPaxos cluster with nodes `1..=n`, one store each.
pub struct Cluster<S>
where
    S: Storage<KvCommand>,
{
    cluster_config: ClusterConfig,
    options: ClusterOptions,
    /// `nodes[pid - 1]`; `None` while the node is stopped.
    nodes: Vec<Option<KvNode<S>>>,
    delivered: u64,
    dropped: u64,
}

impl<S> Cluster<S>
where
    S: Storage<KvCommand>,
{
    /// Builds a cluster with default [`ClusterOptions`]; node `i + 1` uses
    /// `stores[i]`. Three stores give the usual three-node cluster.
    pub fn new(stores: Vec<S>) -> ClusterResult<Self> {
        Self::with_options(stores, ClusterOptions::default())
    }

    /// Builds a cluster with the given options; node `i + 1` uses `stores[i]`.
    /// Initial heartbeats are delivered, but no tick happens yet.
    pub fn with_options(stores: Vec<S>, options: ClusterOptions) -> ClusterResult<Self> {
        let n = stores.len();
        if n < 2 {
            return Err(ClusterError::TooFewNodes(n));
        }
        let cluster_config = ClusterConfig {
            configuration_id: 1,
            nodes: (1..=n as NodeId).collect(),
            ..Default::default()
        };
        let mut cluster = Self {
            cluster_config,
            options,
            nodes: Vec::with_capacity(n),
            delivered: 0,
            dropped: 0,
        };
        for (i, store) in stores.into_iter().enumerate() {
            let node = cluster.build_node(i as NodeId + 1, store)?;
            cluster.nodes.push(Some(node));
        }
        cluster.deliver_all()?;
        Ok(cluster)
    }

    fn build_node(&self, pid: NodeId, store: S) -> ClusterResult<KvNode<S>> {
        let server_config = ServerConfig {
            pid,
            election_tick_timeout: self.options.election_tick_timeout,
            resend_message_tick_timeout: self.options.resend_message_tick_timeout,
            batch_size: self.options.batch_size,
            flush_batch_tick_timeout: self.options.flush_batch_tick_timeout,
            ..Default::default()
        };
        let config = OmniPaxosConfig {
            cluster_config: self.cluster_config.clone(),
            server_config,
        };
        Ok(config.build(store)?)
    }

    /// The options the cluster was built with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// All pids of the configuration (`1..=n`), running or not.
    pub fn pids(&self) -> Vec<NodeId> {
        self.cluster_config.nodes.clone()
    }

    /// Pids of the running nodes.
    pub fn running_pids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_some())
            .map(|(i, _)| i as NodeId + 1)
            .collect()
    }

    /// Whether node `pid` is running.
    pub fn is_running(&self, pid: NodeId) -> bool {
        self.node(pid).is_ok()
    }

    fn slot(&self, pid: NodeId) -> ClusterResult<&Option<KvNode<S>>> {
        pid.checked_sub(1)
            .and_then(|i| self.nodes.get(i as usize))
            .ok_or(ClusterError::UnknownNode(pid))
    }

    fn slot_mut(&mut self, pid: NodeId) -> ClusterResult<&mut Option<KvNode<S>>> {
        pid.checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i as usize))
            .ok_or(ClusterError::UnknownNode(pid))
    }

    /// The running OmniPaxos instance of `pid`.
    pub fn node(&self, pid: NodeId) -> ClusterResult<&KvNode<S>> {
        self.slot(pid)?
            .as_ref()
            .ok_or(ClusterError::NodeStopped(pid))
    }

    /// The running OmniPaxos instance of `pid`, mutably (for calls the cluster
    /// does not wrap; remember to [`deliver_all`](Self::deliver_all) afterwards).
    pub fn node_mut(&mut self, pid: NodeId) -> ClusterResult<&mut KvNode<S>> {
        self.slot_mut(pid)?
            .as_mut()
            .ok_or(ClusterError::NodeStopped(pid))
    }

    /// Total number of messages delivered so far.
    pub fn messages_delivered(&self) -> u64 {
        self.delivered
    }

    /// Total number of messages dropped so far (addressed to stopped or
    /// unknown nodes).
    pub fn messages_dropped(&self) -> u64 {
        self.dropped
    }

    /// Calls `tick()` once on every running node (no message delivery).
    pub fn tick_all(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.tick();
        }
    }

    /// Moves messages from `take_outgoing_messages()` to the receivers'
    /// `handle_incoming()` until no node has anything left to send. Messages
    /// are delivered in per-sender FIFO order; messages to stopped nodes are
    /// dropped. Returns the number of messages delivered.
    pub fn deliver_all(&mut self) -> ClusterResult<usize> {
        let mut delivered = 0;
        let mut buffer = Vec::new();
        for _ in 0..self.options.max_delivery_rounds {
            for node in self.nodes.iter_mut().flatten() {
                node.take_outgoing_messages(&mut buffer);
            }
            if buffer.is_empty() {
                return Ok(delivered);
            }
            for msg in buffer.drain(..) {
                if self.route(msg) {
                    delivered += 1;
                }
            }
        }
        Err(ClusterError::NotQuiescent(self.options.max_delivery_rounds))
    }

    fn route(&mut self, msg: Message<KvCommand>) -> bool {
        match self.node_mut(msg.get_receiver()) {
            Ok(node) => {
                node.handle_incoming(msg);
                self.delivered += 1;
                true
            }
            Err(_) => {
                self.dropped += 1;
                false
            }
        }
    }

    /// One step of simulated time: tick every running node, then deliver all
    /// messages.
    pub fn step(&mut self) -> ClusterResult<()> {
        self.tick_all();
        self.deliver_all().map(|_| ())
    }

    /// Runs [`step`](Self::step) `ticks` times.
    pub fn run_ticks(&mut self, ticks: usize) -> ClusterResult<()> {
        for _ in 0..ticks {
            self.step()?;
        }
        Ok(())
    }

    /// Steps until `cond` holds, at most `max_ticks` times. `cond` is checked
    /// before the first step.
    pub fn wait_until(
        &mut self,
        waiting_for: &str,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> ClusterResult<()> {
        self.deliver_all()?;
        for _ in 0..self.options.max_ticks {
            if cond(self) {
                return Ok(());
            }
            self.step()?;
        }
        if cond(self) {
            return Ok(());
        }
        Err(ClusterError::Timeout {
            waiting_for: waiting_for.to_string(),
            ticks: self.options.max_ticks,
        })
    }

    /// The current leader: the running node with the highest ballot that is
    /// itself leader in the accept phase and is followed (promised and in the
    /// accept phase) by a majority of the configuration, itself included.
    pub fn leader(&self) -> Option<NodeId> {
        let majority = self.cluster_config.nodes.len() / 2 + 1;
        self.nodes
            .iter()
            .flatten()
            .filter(|n| n.get_current_leader() == Some((n.get_pid(), true)))
            .filter(|l| {
                let followers = self
                    .nodes
                    .iter()
                    .flatten()
                    .filter(|n| n.get_current_leader() == Some((l.get_pid(), true)))
                    .count();
                followers >= majority
            })
            .max_by_key(|l| l.get_promise())
            .map(|l| l.get_pid())
    }

    /// Ticks and delivers until a leader (see [`leader`](Self::leader)) is
    /// elected, and returns it.
    pub fn elect_leader(&mut self) -> ClusterResult<NodeId> {
        self.wait_until("leader election", |c| c.leader().is_some())?;
        self.leader().ok_or(ClusterError::NoLeader)
    }

    /// Proposes `cmd` with `append` on the current leader (electing one first
    /// if needed). The entry is replicated by the next [`deliver_all`](Self::deliver_all).
    pub fn propose(&mut self, cmd: KvCommand) -> ClusterResult<()> {
        let leader = match self.leader() {
            Some(l) => l,
            None => self.elect_leader()?,
        };
        self.propose_on(leader, cmd)
    }

    /// Proposes `cmd` with `append` on node `pid` (a follower forwards it to
    /// its leader).
    pub fn propose_on(&mut self, pid: NodeId, cmd: KvCommand) -> ClusterResult<()> {
        self.node_mut(pid)?.append(cmd)?;
        Ok(())
    }

    /// Steps until every running node has `get_decided_idx() >= idx`.
    pub fn wait_decided(&mut self, idx: usize) -> ClusterResult<()> {
        self.wait_until(&format!("decided index {idx} on all running nodes"), |c| {
            c.nodes.iter().flatten().all(|n| n.get_decided_idx() >= idx)
        })
    }

    /// Proposes every command and waits until all of them are decided on
    /// every running node. Returns the leader's decided index afterwards.
    pub fn propose_all_and_wait(
        &mut self,
        cmds: impl IntoIterator<Item = KvCommand>,
    ) -> ClusterResult<usize> {
        let leader = match self.leader() {
            Some(l) => l,
            None => self.elect_leader()?,
        };
        let start = self.node(leader)?.get_decided_idx();
        let mut count = 0;
        for cmd in cmds {
            self.propose_on(leader, cmd)?;
            count += 1;
        }
        self.wait_decided(start + count)?;
        Ok(self.node(leader)?.get_decided_idx())
    }

    /// `trim(idx)` through OmniPaxos on the current leader, then delivers the
    /// resulting compaction messages so the followers trim as well.
    ///
    /// Fails with `CompactionErr::NotAllDecided(i)` unless *all* nodes of the
    /// configuration (stopped ones included) have accepted `idx`.
    pub fn trim(&mut self, idx: Option<usize>) -> ClusterResult<()> {
        let leader = self.leader().ok_or(ClusterError::NoLeader)?;
        self.node_mut(leader)?.trim(idx)?;
        self.deliver_all()?;
        Ok(())
    }

    /// `snapshot(idx, false)` through OmniPaxos on the current leader, then
    /// delivers the resulting compaction messages so the followers snapshot
    /// as well (a follower that has not decided `idx` silently skips it).
    pub fn snapshot(&mut self, idx: Option<usize>) -> ClusterResult<()> {
        let leader = self.leader().ok_or(ClusterError::NoLeader)?;
        self.node_mut(leader)?.snapshot(idx, false)?;
        self.deliver_all()?;
        Ok(())
    }

    /// `read(idx)` on node `pid`: `None` if `idx` is beyond its log; a
    /// compacted index reads as `Trimmed`/`Snapshotted`.
    pub fn read(&self, pid: NodeId, idx: usize) -> ClusterResult<Option<LogEntry<KvCommand>>> {
        Ok(self.node(pid)?.read(idx))
    }

    /// `read_decided_suffix(from)` on node `pid`. If `from` is below the
    /// compacted index, the first element is a single `Trimmed`/`Snapshotted`
    /// entry standing for the whole compacted prefix, followed by the decided
    /// entries from the compacted index on.
    pub fn read_decided_suffix(
        &self,
        pid: NodeId,
        from: usize,
    ) -> ClusterResult<Option<Vec<LogEntry<KvCommand>>>> {
        Ok(self.node(pid)?.read_decided_suffix(from))
    }

    /// The whole decided log of `pid` (`read_decided_suffix(0)`, empty if
    /// nothing is decided).
    pub fn decided_log(&self, pid: NodeId) -> ClusterResult<Vec<LogEntry<KvCommand>>> {
        Ok(self.read_decided_suffix(pid, 0)?.unwrap_or_default())
    }

    /// The key-value state of `pid`, computed from its decided log.
    pub fn kv_state(&self, pid: NodeId) -> ClusterResult<KvState> {
        let log = self.decided_log(pid)?;
        Ok(KvState::from_log(&log))
    }

    /// Progress of every node of the configuration.
    pub fn status(&self) -> Vec<NodeStatus> {
        self.cluster_config
            .nodes
            .iter()
            .map(|&pid| match self.node(pid) {
                Ok(n) => NodeStatus {
                    pid,
                    running: true,
                    decided_idx: n.get_decided_idx(),
                    compacted_idx: n.get_compacted_idx(),
                    leader: n.get_current_leader(),
                },
                Err(_) => NodeStatus {
                    pid,
                    running: false,
                    decided_idx: 0,
                    compacted_idx: 0,
                    leader: None,
                },
            })
            .collect()
    }

    /// Whether all running nodes agree: same decided index, same key-value
    /// state, and identical decided entries above the highest compacted index.
    pub fn agree(&self) -> bool {
        let running = self.running_pids();
        let max_compacted = running
            .iter()
            .filter_map(|&p| self.node(p).ok())
            .map(|n| n.get_compacted_idx())
            .max()
            .unwrap_or(0);
        let views: Vec<_> = running
            .iter()
            .filter_map(|&p| {
                let n = self.node(p).ok()?;
                let decided = n.get_decided_idx();
                let state = self.kv_state(p).ok()?;
                let tail = if decided > max_compacted {
                    n.read_entries(max_compacted..decided)
                } else {
                    Some(Vec::new())
                };
                Some((decided, state.values, tail))
            })
            .collect();
        views.len() == running.len() && views.windows(2).all(|w| w[0] == w[1])
    }

    /// Stops node `pid`: takes its OmniPaxos instance out of the cluster (its
    /// volatile state is lost once dropped) and returns it. Messages to it are
    /// dropped until it is restarted.
    pub fn stop_node(&mut self, pid: NodeId) -> ClusterResult<KvNode<S>> {
        self.slot_mut(pid)?
            .take()
            .ok_or(ClusterError::NodeStopped(pid))
    }

    /// Restarts node `pid` from `store`, which must be the node's reopened
    /// durable store (or a fresh one, to model a node that lost its disk).
    ///
    /// This is OmniPaxos' fail-recovery path: `OmniPaxosConfig::build` on a
    /// store holding a promise puts the node in the recover phase and queues a
    /// `PrepareReq` to every peer, and the leader re-synchronises it. In
    /// addition, the restarted node and every running peer are told with
    /// `reconnected(pid)` that the connection came back, as the OmniPaxos docs
    /// require after a network-level reconnect. Messages are then delivered;
    /// use [`wait_decided`](Self::wait_decided) to wait for the catch-up.
    pub fn restart_node(&mut self, pid: NodeId, store: S) -> ClusterResult<()> {
        if self.slot(pid)?.is_some() {
            return Err(ClusterError::NodeRunning(pid));
        }
        let mut node = self.build_node(pid, store)?;
        let peers: Vec<NodeId> = self.running_pids();
        for &peer in &peers {
            node.reconnected(peer);
        }
        *self.slot_mut(pid)? = Some(node);
        for peer in peers {
            self.node_mut(peer)?.reconnected(pid);
        }
        self.deliver_all()?;
        Ok(())
    }
}

/// A cloneable handle to a store shared behind a mutex.
///
/// It lets an in-memory backend survive a simulated crash: give one clone to
/// [`Cluster`] and keep another; after [`Cluster::stop_node`] drops the
/// OmniPaxos instance, pass the kept clone to [`Cluster::restart_node`] as the
/// "reopened" store. Every `Storage` call locks the mutex; a poisoned mutex is
/// reported as a storage error.
#[derive(Debug, Default)]
pub struct SharedStorage<S> {
    inner: Arc<Mutex<S>>,
}

impl<S> Clone for SharedStorage<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> SharedStorage<S> {
    /// Wraps `store`.
    pub fn new(store: S) -> Self {
        Self {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    fn lock(&self) -> StorageResult<MutexGuard<'_, S>> {
        self.inner
            .lock()
            .map_err(|_| "shared store mutex poisoned".into())
    }

    /// Runs `f` on the wrapped store.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> StorageResult<R> {
        Ok(f(&mut *self.lock()?))
    }
}

impl<T, S> Storage<T> for SharedStorage<S>
where
    T: Entry,
    S: Storage<T>,
{
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        self.lock()?.write_atomically(ops)
    }
    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        self.lock()?.append_entry(entry)
    }
    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        self.lock()?.append_entries(entries)
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        self.lock()?.append_on_prefix(from_idx, entries)
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.lock()?.set_promise(n_prom)
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.lock()?.set_decided_idx(ld)
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        self.lock()?.get_decided_idx()
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.lock()?.set_accepted_round(na)
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.lock()?.get_accepted_round()
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        self.lock()?.get_entries(from, to)
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        self.lock()?.get_log_len()
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        self.lock()?.get_suffix(from)
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.lock()?.get_promise()
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.lock()?.set_stopsign(s)
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        self.lock()?.get_stopsign()
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.lock()?.trim(idx)
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.lock()?.set_compacted_idx(idx)
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        self.lock()?.get_compacted_idx()
    }
    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        self.lock()?.set_snapshot(snapshot)
    }
    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        self.lock()?.get_snapshot()
    }
}
