//! The lab's workspace on disk: the state journal, the evidence files, and the atomic
//! writes all of them go through.

pub mod atomic;
pub mod evidence;
pub mod generations;
pub mod journal;
