//! What a run checks of the system under test: availability during the upgrade (probes),
//! the smoke suite, Rally's load figures, and persistent resources.

pub mod availability;
pub mod persistent;
pub mod probe;
pub mod rally;
pub mod smoke;
