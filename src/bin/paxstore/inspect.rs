//! `paxstore inspect` and `paxstore verify`: printing [`paxstore::inspect::Summary`].

use std::path::Path;
use std::process::ExitCode;

/// The exit code of `inspect` and `verify` for a directory that cannot be read or identified
/// as a store (clap's usage errors exit with 2).
pub const UNREADABLE: u8 = 3;

fn marker_line(s: &Summary) -> String {
    match &s.marker {
        Some(m) => format!(
            "backend {}, format {}, store id {:032x}",
            m.backend, m.format, m.store_id
        ),
        None => "none readable (see the problems below)".into(),
    }
}

use paxstore::inspect::{describe_ballot, examine, Summary};
use paxstore_workloads::human_bytes;

fn print_summary(s: &Summary) {
    println!("store:          {}", s.dir.display());
    println!("backend:        {}", s.backend);
    println!("format version: {}", s.format_version);
    println!("marker:         {}", marker_line(s));
    for log in &s.logs {
        println!("log {:?}:", log.name);
        println!(
            "  entries:      [{}, {})  ({} held)",
            log.first,
            log.next,
            log.next.saturating_sub(log.first)
        );
        println!("  decided idx:  {}", log.decided);
        println!("  compacted:    {}", log.compacted);
        let ballot = |b: &Option<_>| b.as_ref().map_or("none".to_string(), describe_ballot);
        println!("  promise:      {}", ballot(&log.promise));
        println!("  accepted:     {}", ballot(&log.accepted));
        println!(
            "  stop-sign:    {}",
            log.stopsign.as_deref().unwrap_or("none")
        );
        println!(
            "  snapshot:     {}",
            log.snapshot_bytes.map_or("none".to_string(), |b| format!(
                "{b} bytes ({})",
                human_bytes(b)
            ))
        );
    }
    let total: u64 = s.parts.iter().map(|p| p.bytes).sum();
    println!("{} parts, {} in all:", s.parts.len(), human_bytes(total));
    let width = s.parts.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in &s.parts {
        println!(
            "  {:<width$}  {:>10}  {}",
            p.name,
            human_bytes(p.bytes),
            p.detail
        );
    }
    for n in &s.notes {
        println!("note: {n}");
    }
}

/// `paxstore inspect DIR`: exit 0 if clean, 1 with problems, 3 unreadable or unidentifiable.
pub fn inspect(dir: &Path) -> ExitCode {
    match examine(dir) {
        Ok(s) => {
            print_summary(&s);
            for p in &s.problems {
                println!("CORRUPT: {p}");
            }
            if s.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("paxstore inspect: cannot read {e}");
            ExitCode::from(UNREADABLE)
        }
    }
}

/// `paxstore verify DIR`: exit 0 clean, 1 corrupt, 3 unreadable or unidentifiable.
pub fn verify(dir: &Path) -> ExitCode {
    match examine(dir) {
        Ok(s) => {
            for n in &s.notes {
                println!("note: {n}");
            }
            if s.is_clean() {
                println!("marker: {}", marker_line(&s));
                println!(
                    "{}: clean ({} store, {} records and {} entries checked)",
                    s.dir.display(),
                    s.backend,
                    s.records_checked,
                    s.entries_checked
                );
                ExitCode::SUCCESS
            } else {
                println!("marker: {}", marker_line(&s));
                for p in &s.problems {
                    println!("CORRUPT: {p}");
                }
                println!(
                    "{}: CORRUPT, {} problem(s) ({} store, {} records and {} entries checked)",
                    s.dir.display(),
                    s.problems.len(),
                    s.backend,
                    s.records_checked,
                    s.entries_checked
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("paxstore verify: UNREADABLE: {e}");
            ExitCode::from(UNREADABLE)
        }
    }
}
