//! The shared conformance suite on this backend, persistent: every case ends with a reopen,
//! and the crash test kills writers with SIGKILL (and, given a LazyFS mount, cuts the power:
//! see `paxstore_core::conformance::crash`).

use paxstore_rocks::testing::{harness, open};

paxstore_core::conformance_tests!(rocks, harness(), crash = open);
