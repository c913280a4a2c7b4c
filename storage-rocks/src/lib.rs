//! RocksDB backend (work in progress).
