//! Three in-process OmniPaxos nodes decide 1,000 key-value commands, trim and
//! snapshot the log through OmniPaxos, survive a follower restart, and agree.
//!
//! Run with `cargo run --release --example cluster_demo`.

use omnipaxos::util::LogEntry;
use paxstore::cluster::{Cluster, KvCommand, SharedStorage};
use paxstore_core::MemoryStorage;
use std::error::Error;

const ENTRIES: usize = 1_000;
const KEYS: usize = 50;
const TRIM_IDX: usize = 300;
const SNAPSHOT_IDX: usize = 700;

type Store = SharedStorage<MemoryStorage<KvCommand>>;

fn cmd(i: usize) -> KvCommand {
    KvCommand::new(format!("key-{:02}", i % KEYS), i as u64)
}

fn describe(entry: Option<LogEntry<KvCommand>>) -> String {
    match entry {
        None => "none (beyond the log)".to_string(),
        Some(LogEntry::Decided(c)) => format!("Decided({} = {})", c.key, c.value),
        Some(LogEntry::Undecided(c)) => format!("Undecided({} = {})", c.key, c.value),
        Some(LogEntry::Trimmed(idx)) => format!("Trimmed(compacted idx {idx})"),
        Some(LogEntry::Snapshotted(s)) => format!(
            "Snapshotted(compacted idx {}, {} keys)",
            s.trimmed_idx,
            s.snapshot.snapshotted.len()
        ),
        Some(LogEntry::StopSign(_, decided)) => format!("StopSign(decided: {decided})"),
    }
}

fn print_status(c: &Cluster<Store>, when: &str) {
    println!("  [{when}]");
    for s in c.status() {
        if s.running {
            let leader = match s.leader {
                Some((l, true)) => format!("follows leader {l}"),
                Some((l, false)) => format!("promised {l}, not accepting yet"),
                None => "no leader".to_string(),
            };
            println!(
                "    node {}: decided idx {:>4}, compacted idx {:>4}, {}",
                s.pid, s.decided_idx, s.compacted_idx, leader
            );
        } else {
            println!("    node {}: stopped", s.pid);
        }
    }
}

fn print_reads(c: &Cluster<Store>, indices: &[usize]) -> Result<(), Box<dyn Error>> {
    for pid in c.running_pids() {
        let reads: Vec<String> = indices
            .iter()
            .map(|&i| c.read(pid, i).map(|e| format!("{i}: {}", describe(e))))
            .collect::<Result<_, _>>()?;
        println!("    node {pid} reads  {}", reads.join(" | "));
    }
    Ok(())
}

fn print_agreement(c: &Cluster<Store>) -> Result<bool, Box<dyn Error>> {
    let agree = c.agree();
    for pid in c.running_pids() {
        let state = c.kv_state(pid)?;
        println!(
            "    node {pid}: {} keys, applied up to {}, key-00 = {:?}, key-49 = {:?}",
            state.values.len(),
            state.applied_idx,
            state.values.get("key-00"),
            state.values.get("key-49"),
        );
    }
    println!(
        "  agreement of the running nodes: {}",
        if agree { "YES" } else { "NO" }
    );
    Ok(agree)
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("paxstore cluster demo: 3 in-process OmniPaxos 0.2.4 nodes");
    println!("storage backend: paxstore_core::MemoryStorage (behind SharedStorage handles, so a stopped node can be reopened)");

    let stores: Vec<Store> = (0..3)
        .map(|_| SharedStorage::new(MemoryStorage::new()))
        .collect();
    let mut c = Cluster::new(stores.clone())?;

    let leader = c.elect_leader()?;
    println!("\n1. leader election: node {leader} elected");
    print_status(&c, "after election");

    let decided = c.propose_all_and_wait((0..ENTRIES).map(cmd))?;
    println!(
        "\n2. proposed {ENTRIES} commands (key-00..key-{:02} := index) on the leader: decided idx {decided}",
        KEYS - 1
    );
    print_status(&c, "after deciding");
    print_reads(&c, &[0, TRIM_IDX, ENTRIES - 1, ENTRIES])?;

    match c.trim(Some(ENTRIES + 1)) {
        Ok(()) => println!("\n   trim({}) unexpectedly succeeded", ENTRIES + 1),
        Err(e) => println!("\n   trim({}) on the leader is rejected: {e}", ENTRIES + 1),
    }

    c.trim(Some(TRIM_IDX))?;
    println!("\n3. trim({TRIM_IDX}) through OmniPaxos on the leader");
    print_status(&c, "after trim");
    print_reads(&c, &[0, TRIM_IDX - 1, TRIM_IDX])?;

    c.snapshot(Some(SNAPSHOT_IDX))?;
    println!("\n4. snapshot({SNAPSHOT_IDX}, local_only = false) through OmniPaxos on the leader");
    print_status(&c, "after snapshot");
    print_reads(&c, &[0, TRIM_IDX, SNAPSHOT_IDX - 1, SNAPSHOT_IDX])?;
    let mut agree = print_agreement(&c)?;

    let follower = c
        .pids()
        .into_iter()
        .find(|&p| p != leader)
        .ok_or("no follower")?;
    drop(c.stop_node(follower)?);
    println!("\n5. node {follower} stopped; 100 more commands decided by the other two");
    let decided = c.propose_all_and_wait((ENTRIES..ENTRIES + 100).map(cmd))?;
    print_status(&c, &format!("decided idx {decided}"));
    match c.trim(Some(ENTRIES + 50)) {
        Ok(()) => println!("   trim({}) succeeded", ENTRIES + 50),
        Err(e) => println!(
            "   trim({}) while node {follower} is down is rejected: {e}",
            ENTRIES + 50
        ),
    }

    let reopened = stores[(follower - 1) as usize].clone();
    c.restart_node(follower, reopened)?;
    c.wait_decided(ENTRIES + 100)?;
    println!("\n6. node {follower} restarted from its store and caught up");
    print_status(&c, "after recovery");
    print_reads(&c, &[SNAPSHOT_IDX, ENTRIES + 99])?;
    agree &= print_agreement(&c)?;
    let resynced = c.node(follower)?.get_compacted_idx();
    if resynced > SNAPSHOT_IDX {
        println!(
            "   note: OmniPaxos re-synced node {follower} with a snapshot delta, so its whole log up to {resynced} is now a snapshot."
        );
        println!(
            "   OmniPaxos 0.2.4 drops the node's own decided prefix from that snapshot (known bug, pinned in"
        );
        println!(
            "   tests/omnipaxos_cluster.rs); the states agree here only because every key was rewritten since."
        );
    }

    println!(
        "\nmessages delivered: {}, dropped (to stopped node): {}",
        c.messages_delivered(),
        c.messages_dropped()
    );
    if agree {
        println!("RESULT: all nodes agree");
        Ok(())
    } else {
        Err("nodes disagree".into())
    }
}
