//! The shared conformance suite on the memory backend (not persistent: no reopen, no crash
//! test).

use paxstore_core::conformance::MemoryHarness;

paxstore_core::conformance_tests!(memory, MemoryHarness);
