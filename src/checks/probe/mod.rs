//! Availability probes: every configured service probed on a fixed schedule, in-process, for
//! exactly as long as the caller keeps the [`Monitor`]. No background process, no stop file.
//!
//! Each service gets its own ticker; each tick launches its probe as a separate task, so a
//! slow probe never delays the next one, and a late tick is skipped rather than burst.

mod analyze;
mod command;
mod monitor;
mod request;
mod spec;
mod transport;

pub use crate::openstack::keystone::{Keystone, Tokens};
pub use analyze::{analyze, over_budget};
pub use monitor::Monitor;
pub use request::{Outcome, accepted, client, exchange, expand, send};
pub use spec::{BASELINE, Spec, specs};
pub use transport::{State, Transport};
