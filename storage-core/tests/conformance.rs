//! The shared conformance suite on the memory backend (not persistent: no reopen, no crash
//! test).

use storage_core::conformance::MemoryHarness;

storage_core::conformance_tests!(memory, MemoryHarness);
