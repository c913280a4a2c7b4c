//! paxstore's benchmark runners. The crate has no library API: its targets are the benchmarks.
//!
//! | target | what it runs |
//! | --- | --- |
//! | `benches/storage.rs` (criterion) | one group per storage operation OmniPaxos performs, one line per backend (`files`, `rocks` with feature `rocks`, `memory`, and `omnipaxos_storage`'s memory store) |
//! | `benches/files_bench.rs` (feature `files`) | the segment engine against the physical limits of the disk, as ratios to bare I/O loops measured in the same run |
//! | `examples/files_workloads.rs` (feature `files`) | the shared workloads (`paxstore-workloads`) on `FilesStorage`, as `RESULT` lines for `bench/scripts/files-vs-baseline.sh` |
//! | `examples/rocks_workloads.rs` (feature `rocks`) | the same on `RocksStorage`, for `bench/scripts/rocks-vs-baseline.sh` |
//!
//! ```text
//! cargo bench -p paxstore-bench --bench storage                   # files and memory lines
//! cargo bench -p paxstore-bench --features rocks --bench storage  # with the RocksDB line
//! cargo bench -p paxstore-bench --bench files_bench -- --quick
//! cargo run --release -p paxstore-bench --example files_workloads -- --quick
//! cargo run --release -p paxstore-bench --features rocks --example rocks_workloads -- --quick
//! ```
//!
//! The `omnipaxos_storage` `PersistentStorage` baseline (RocksDB 0.21) cannot be built with the
//! workspace's RocksDB: it is the excluded crate `bench/baseline`, which runs the same
//! `paxstore-workloads` code. `BENCHMARKS.md` has the figures and the command behind each.

#![deny(missing_docs)]
