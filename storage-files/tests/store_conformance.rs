//! The shared conformance suite on one log of a many-logs [`FilesStore`](paxstore_files::FilesStore)
//! while a thread writes three other logs of the same store; the crash test kills writers of
//! the suite's log with SIGKILL (and, given a LazyFS mount, cuts the power).

use paxstore_files::testing::{open_store_log, StoreHarness};

paxstore_core::conformance_tests!(files_store, StoreHarness::new(), crash = open_store_log);
