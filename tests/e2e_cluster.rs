//! End-to-end: three OmniPaxos nodes on every enabled backend, each node's store opened
//! through `AnyStorage` in its own directory, and reopened from that directory when the node
//! restarts (the memory backend keeps its store behind a shared handle instead).
//!
//! - a cluster replicates, trims and snapshots through OmniPaxos, and the compaction is on disk;
//! - a node restarted from its directory rejoins with its promise, accepted round and log intact;
//! - a follower that was down while the others compacted catches up from a snapshot;
//! - a reconfiguration through a stop-sign survives a restart of every node.

use std::collections::BTreeMap;
use std::path::PathBuf;

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Snapshot, Storage},
    util::{LogEntry, NodeId},
    ClusterConfig, OmniPaxosConfig, ServerConfig,
};
use paxstore::cluster::{Cluster, KvCommand, KvSnapshot, SharedStorage};
use paxstore::{AnyStorage, Backend, StoreOptions};

type Store = SharedStorage<AnyStorage<KvCommand>>;

/// Opens each node's store; a second open of a pid reopens the same data.
struct Stores {
    backend: Backend,
    dir: tempfile::TempDir,
    memory: BTreeMap<NodeId, Store>,
}

impl Stores {
    fn new(backend: Backend) -> Self {
        Stores {
            backend,
            dir: tempfile::tempdir().expect("temporary directory"),
            memory: BTreeMap::new(),
        }
    }

    fn node_dir(&self, pid: NodeId) -> PathBuf {
        self.dir.path().join(format!("node-{pid}"))
    }

    /// The node's store: for a persistent backend, a fresh open of its directory (the old
    /// handle must be dropped first, or the directory is still locked).
    fn open(&mut self, pid: NodeId) -> Store {
        if self.backend.is_persistent() {
            let spec = self.backend.spec(&self.node_dir(pid));
            SharedStorage::new(
                AnyStorage::open_spec(&spec, StoreOptions::default())
                    .unwrap_or_else(|e| panic!("open {spec}: {e}")),
            )
        } else {
            self.memory
                .entry(pid)
                .or_insert_with(|| SharedStorage::new(AnyStorage::open("memory").unwrap()))
                .clone()
        }
    }

    fn cluster(&mut self) -> Cluster<Store> {
        let stores = (1..=3).map(|pid| self.open(pid)).collect();
        Cluster::new(stores).expect("cluster builds")
    }
}

/// What a node's store holds, read through the `Storage` trait.
#[derive(Debug, Clone, PartialEq)]
struct Durable {
    promise: Option<Ballot>,
    accepted: Option<Ballot>,
    decided: usize,
    compacted: usize,
    log_len: usize,
    snapshot: Option<KvSnapshot>,
    stopsign: Option<omnipaxos::storage::StopSign>,
}

fn durable(store: &Store) -> Durable {
    store
        .with(|s| Durable {
            promise: s.get_promise().unwrap(),
            accepted: s.get_accepted_round().unwrap(),
            decided: s.get_decided_idx().unwrap(),
            compacted: s.get_compacted_idx().unwrap(),
            log_len: s.get_log_len().unwrap(),
            snapshot: s.get_snapshot().unwrap(),
            stopsign: s.get_stopsign().unwrap(),
        })
        .unwrap()
}

/// Writes cycle through 50 keys (so that a delta-snapshot catch-up, which OmniPaxos 0.2.4
/// gets wrong, cannot hide behind stale keys: every key is rewritten every 50 entries).
fn cmd(i: usize) -> KvCommand {
    KvCommand::new(format!("key-{:02}", i % 50), i as u64)
}

fn cmds(r: std::ops::Range<usize>) -> Vec<KvCommand> {
    r.map(cmd).collect()
}

fn model(r: std::ops::Range<usize>) -> BTreeMap<String, u64> {
    KvSnapshot::create(&cmds(r)).snapshotted
}

fn follower_of(c: &Cluster<Store>, leader: NodeId) -> NodeId {
    c.pids().into_iter().find(|&p| p != leader).unwrap()
}

/// Replication, trim and snapshot through OmniPaxos; then every node is stopped and its
/// store reopened: the compaction is durable.
fn replicates_trims_and_snapshots(backend: Backend) {
    let mut stores = Stores::new(backend);
    let mut c = stores.cluster();
    let leader = c.elect_leader().unwrap();
    assert_eq!(c.propose_all_and_wait(cmds(0..1000)).unwrap(), 1000);
    for pid in c.pids() {
        for i in [0, 299, 300, 999] {
            assert_eq!(c.read(pid, i).unwrap(), Some(LogEntry::Decided(cmd(i))));
        }
    }
    c.trim(Some(300)).unwrap();
    c.snapshot(Some(700)).unwrap();
    let expected_snapshot = KvSnapshot::create(&cmds(300..700));
    for pid in c.pids() {
        let n = c.node(pid).unwrap();
        assert_eq!(n.get_compacted_idx(), 700, "node {pid}");
        match c.read(pid, 10).unwrap() {
            Some(LogEntry::Snapshotted(s)) => {
                assert_eq!(s.trimmed_idx, 700);
                assert_eq!(s.snapshot, expected_snapshot);
            }
            other => panic!("node {pid}: {other:?}"),
        }
        assert_eq!(c.read(pid, 700).unwrap(), Some(LogEntry::Decided(cmd(700))));
        assert_eq!(c.kv_state(pid).unwrap().values, model(0..1000));
    }
    assert!(c.agree());
    assert_eq!(c.leader(), Some(leader));

    // Stop every node and look at what each store holds after a reopen.
    for pid in c.pids() {
        drop(c.stop_node(pid).unwrap());
    }
    drop(c);
    for pid in 1..=3 {
        let store = stores.open(pid);
        let d = durable(&store);
        assert_eq!(d.decided, 1000, "node {pid}");
        assert_eq!(d.compacted, 700, "node {pid}");
        assert_eq!(d.log_len, 300, "node {pid}: entries 700..1000 held");
        assert_eq!(d.snapshot.as_ref(), Some(&expected_snapshot), "node {pid}");
        let tail = store.with(|s| s.get_entries(700, 1000).unwrap()).unwrap();
        assert_eq!(tail, cmds(700..1000), "node {pid}");
        assert!(store
            .with(|s| s.get_entries(0, 700).unwrap())
            .unwrap()
            .is_empty());
    }
}

/// A follower stopped and reopened from its directory has its promise, accepted round and
/// log; it rejoins, and so does the leader after it.
fn restarted_node_rejoins_with_its_state(backend: Backend) {
    let mut stores = Stores::new(backend);
    let mut c = stores.cluster();
    let leader = c.elect_leader().unwrap();
    c.propose_all_and_wait(cmds(0..200)).unwrap();
    let ballot = c.node(leader).unwrap().get_promise();
    let follower = follower_of(&c, leader);
    drop(c.stop_node(follower).unwrap());

    // What the follower's store holds after the stop, from a fresh open of its directory.
    let reopened = stores.open(follower);
    let d = durable(&reopened);
    assert_eq!(d.promise, Some(ballot), "promise survives");
    assert_eq!(d.accepted, Some(ballot), "accepted round survives");
    assert_eq!(d.decided, 200);
    assert_eq!(d.compacted, 0);
    assert_eq!(d.log_len, 200);
    assert_eq!(
        reopened.with(|s| s.get_entries(0, 200).unwrap()).unwrap(),
        cmds(0..200),
        "log survives"
    );

    // It rejoins: it follows the same leader in the same round and keeps deciding.
    c.restart_node(follower, reopened).unwrap();
    c.wait_until("the follower follows the leader again", |c| {
        c.node(follower)
            .is_ok_and(|n| n.get_current_leader() == Some((leader, true)))
    })
    .unwrap();
    assert_eq!(c.node(follower).unwrap().get_promise(), ballot);
    for i in [0, 199] {
        assert_eq!(
            c.read(follower, i).unwrap(),
            Some(LogEntry::Decided(cmd(i)))
        );
    }
    assert_eq!(c.propose_all_and_wait(cmds(200..300)).unwrap(), 300);
    assert!(c.agree());

    // The leader too: stopped, a new leader takes over, the old one comes back from its
    // directory as a follower.
    drop(c.stop_node(leader).unwrap());
    let new_leader = c.elect_leader().unwrap();
    assert_ne!(new_leader, leader);
    assert_eq!(c.propose_all_and_wait(cmds(300..400)).unwrap(), 400);
    let reopened = stores.open(leader);
    assert_eq!(durable(&reopened).decided, 300);
    c.restart_node(leader, reopened).unwrap();
    c.wait_decided(400).unwrap();
    assert_eq!(c.propose_all_and_wait(cmds(400..500)).unwrap(), 500);
    assert!(c.agree(), "{:?}", c.status());
    for pid in c.pids() {
        assert_eq!(c.kv_state(pid).unwrap().values, model(0..500), "node {pid}");
    }
}

/// A follower down while the others decided and compacted past it catches up from the
/// leader's snapshot, and that snapshot is on its disk afterwards.
fn lagging_follower_catches_up_from_snapshot(backend: Backend) {
    let mut stores = Stores::new(backend);
    let mut c = stores.cluster();
    let leader = c.elect_leader().unwrap();
    // Unique keys: a snapshot that missed anything would show.
    let unique = |i: usize| KvCommand::new(format!("unique-{i}"), i as u64);
    c.propose_all_and_wait((0..100).map(unique)).unwrap();
    let follower = follower_of(&c, leader);
    drop(c.stop_node(follower).unwrap());
    c.propose_all_and_wait((100..600).map(unique)).unwrap();
    c.snapshot(Some(550)).unwrap();
    for pid in c.running_pids() {
        assert_eq!(c.node(pid).unwrap().get_compacted_idx(), 550);
    }

    c.restart_node(follower, stores.open(follower)).unwrap();
    c.wait_decided(600).unwrap();
    let all: Vec<KvCommand> = (0..600).map(unique).collect();
    let expected = KvSnapshot::create(&all).snapshotted;
    let n = c.node(follower).unwrap();
    assert!(
        n.get_compacted_idx() >= 550,
        "caught up through a snapshot: {:?}",
        c.status()
    );
    assert_eq!(c.kv_state(follower).unwrap().values, expected);
    assert!(c.agree(), "{:?}", c.status());
    c.propose_all_and_wait((600..650).map(unique)).unwrap();
    assert!(c.agree());

    // The snapshot it received is durable: stop it and reopen its store.
    drop(c.stop_node(follower).unwrap());
    let d = durable(&stores.open(follower));
    assert!(d.compacted >= 550);
    assert_eq!(d.decided, 650);
    let mut state = d.snapshot.expect("a snapshot on disk").snapshotted;
    let reopened = stores.open(follower);
    // (memory: the same handle; persistent: opened again after the previous one was dropped)
    drop(reopened);
    let store = stores.open(follower);
    let tail = store
        .with(|s| s.get_entries(d.compacted, 650).unwrap())
        .unwrap();
    for e in tail {
        state.insert(e.key, e.value);
    }
    let all: Vec<KvCommand> = (0..650).map(unique).collect();
    assert_eq!(state, KvSnapshot::create(&all).snapshotted);
}

/// A reconfiguration decided through a stop-sign is on every node's disk and survives a
/// restart of all nodes; the stopped configuration refuses new entries.
fn stopsign_survives_restart(backend: Backend) {
    let mut stores = Stores::new(backend);
    let mut c = stores.cluster();
    let leader = c.elect_leader().unwrap();
    c.propose_all_and_wait(cmds(0..100)).unwrap();
    let next = ClusterConfig {
        configuration_id: 2,
        nodes: vec![1, 2, 3, 4],
        ..Default::default()
    };
    c.node_mut(leader)
        .unwrap()
        .reconfigure(next.clone(), Some(vec![7, 7]))
        .unwrap();
    c.wait_until("the stop-sign is decided everywhere", |c| {
        c.running_pids()
            .iter()
            .all(|&p| c.node(p).is_ok_and(|n| n.is_reconfigured().is_some()))
    })
    .unwrap();
    assert!(
        c.propose(cmd(100)).is_err(),
        "a stopped configuration refuses appends"
    );

    // Stop every node. Each store, reopened from its directory, holds the stop-sign, and an
    // OmniPaxos node recovering from it knows the configuration is stopped.
    for pid in c.pids() {
        drop(c.stop_node(pid).unwrap());
    }
    for pid in c.pids() {
        let store = stores.open(pid);
        let d = durable(&store);
        let ss = d
            .stopsign
            .unwrap_or_else(|| panic!("node {pid} lost its stop-sign"));
        assert_eq!(ss.next_config.configuration_id, 2);
        assert_eq!(ss.next_config.nodes, vec![1, 2, 3, 4]);
        assert_eq!(ss.metadata, Some(vec![7, 7]));
        assert_eq!(
            d.decided, 101,
            "node {pid}: the stop-sign counts as index 100"
        );
        assert_eq!(d.log_len, 100, "node {pid}");
        let recovered = OmniPaxosConfig {
            cluster_config: ClusterConfig {
                configuration_id: 1,
                nodes: vec![1, 2, 3],
                ..Default::default()
            },
            server_config: ServerConfig {
                pid,
                ..Default::default()
            },
        }
        .build(store)
        .unwrap();
        let ss = recovered
            .is_reconfigured()
            .unwrap_or_else(|| panic!("node {pid} recovered without its reconfiguration"));
        assert_eq!(ss.next_config.configuration_id, 2);
        let log = recovered.read_decided_suffix(0).unwrap();
        assert_eq!(log.len(), 101, "node {pid}");
        assert_eq!(log[99], LogEntry::Decided(cmd(99)));
        assert!(
            matches!(&log[100], LogEntry::StopSign(ss, true) if ss.next_config.configuration_id == 2)
        );
    }

    // Restart them all from their directories: they elect a leader again, the stopped
    // configuration still refuses entries, and every store keeps its stop-sign and log.
    // (OmniPaxos 0.2.4 then re-syncs the nodes and may write a decided index one past the
    // stop-sign, after which its `is_reconfigured()` returns `None` on that node although
    // the stop-sign is in its store; the same happens with MemoryStorage, so it is
    // OmniPaxos' state cache, not the store.)
    let mut handles = Vec::new();
    for pid in c.pids() {
        let store = stores.open(pid);
        handles.push(store.clone());
        c.restart_node(pid, store).unwrap();
    }
    c.run_ticks(50).unwrap();
    for pid in c.pids() {
        assert!(c.node_mut(pid).unwrap().append(cmd(101)).is_err());
    }
    for (store, pid) in handles.iter().zip(c.pids()) {
        let after = durable(store);
        assert_eq!(
            after.stopsign.map(|s| s.next_config.configuration_id),
            Some(2)
        );
        assert!(after.decided >= 101, "node {pid}");
        assert_eq!(
            store.with(|s| s.get_entries(0, 100).unwrap()).unwrap(),
            cmds(0..100)
        );
    }
}

macro_rules! e2e_tests {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn replicates_trims_and_snapshots() {
                super::replicates_trims_and_snapshots($backend);
            }

            #[test]
            fn restarted_node_rejoins_with_its_state() {
                super::restarted_node_rejoins_with_its_state($backend);
            }

            #[test]
            fn lagging_follower_catches_up_from_snapshot() {
                super::lagging_follower_catches_up_from_snapshot($backend);
            }

            #[test]
            fn stopsign_survives_restart() {
                super::stopsign_survives_restart($backend);
            }
        }
    };
}

e2e_tests!(memory, Backend::Memory);
#[cfg(feature = "files")]
e2e_tests!(files, Backend::Files);
#[cfg(feature = "rocks")]
e2e_tests!(rocks, Backend::Rocks);
