//! The shared conformance suite over every backend the enabled features provide.

use storage_core::conformance::MemoryHarness;

storage_core::conformance_tests!(memory, MemoryHarness);
