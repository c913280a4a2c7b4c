//! Tests of the `paxstore` command (written in the next commit).
