//! What a run checks of the system under test: availability during the upgrade (probes),
//! the smoke suite, and persistent resources.

pub mod availability;
pub mod persistent;
pub mod probe;
pub mod smoke;
