//! The `paxstore` command: see `paxstore --help`.
//!
//! - `demo` (the default): a three-node OmniPaxos key-value store in one process;
//! - `bench`: the main storage workloads over chosen backends, as one table;
//! - `inspect DIR` / `verify DIR`: what a store directory holds, and whether it is intact;
//! - `torture`: SIGKILL a writer at random moments and check nothing acknowledged is lost.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use paxstore::Backend;

mod bench;
mod demo;
mod inspect;
mod torture;

/// Tested, interchangeable storage backends for OmniPaxos.
///
/// Without a subcommand, runs `demo`.
#[derive(Parser, Debug)]
#[command(name = "paxstore", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Three OmniPaxos nodes in one process: write, compact, stop a node, restart it from its
    /// directory, let it catch up, and check that all nodes agree (exit 1 if not).
    Demo(demo::DemoArgs),
    /// The main storage workloads (durable and non-durable append, trim,
    /// snapshot-plus-truncate, reads, reopen; durable append by 1 and 8 threads, each on a log
    /// of its own) over the chosen backends, as one table with ratios to the first backend.
    Bench(bench::BenchArgs),
    /// Show what a store directory holds: backend, format version, marker (store id), log
    /// bounds, compacted and decided index, promise, stop-sign, snapshot size, files or column
    /// families. Exit code 0: clean; 1: problems found; 3: the directory cannot be read or
    /// identified as a store (2 is a usage error).
    Inspect(DirArg),
    /// Read everything in a store directory and check every checksum and the store marker.
    /// Exit code 0: clean; 1: corrupt (each problem names the file and offset); 3: unreadable,
    /// or not identifiable as a store (an empty directory, one holding only LOCK, a RocksDB
    /// database without CURRENT): never "clean" for those. Exit code 2 is reserved for usage
    /// errors (a missing or unknown argument).
    Verify(DirArg),
    /// Repeatedly run a child process that applies random OmniPaxos-shaped batches, kill it
    /// with SIGKILL at a random moment, reopen the store and check that every acknowledged
    /// batch is there and none is half applied. Exit 1 at the first failure.
    Torture(torture::TortureArgs),
    /// (internal) The child process of `torture`.
    #[command(hide = true)]
    TortureChild(torture::ChildArgs),
}

/// A store directory.
#[derive(Args, Debug)]
struct DirArg {
    /// The store's directory (a `files`, `files-multi` or `rocks` store).
    dir: PathBuf,
}

/// Parses a backend name, refusing one that this build does not include.
fn parse_backend(s: &str) -> Result<Backend, String> {
    let backend: Backend = s.parse().map_err(|e: paxstore::AnyError| e.to_string())?;
    if !backend.is_compiled_in() {
        return Err(format!(
            "this build of paxstore does not include the `{backend}` backend; rebuild with \
             `--features {}` (built in: {})",
            backend.feature(),
            enabled_names()
        ));
    }
    Ok(backend)
}

fn enabled_names() -> String {
    Backend::enabled()
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Demo(demo::DemoArgs::default()));
    match command {
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Inspect(a) => inspect::inspect(&a.dir),
        Command::Verify(a) => inspect::verify(&a.dir),
        Command::Torture(args) => torture::run(args),
        Command::TortureChild(args) => torture::child(args),
    }
}
