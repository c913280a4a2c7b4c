//! paxstore: tested, interchangeable storage backends for OmniPaxos.

pub mod cluster;
