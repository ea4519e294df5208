//! Running external tools: the process runner, Ansible's files and meanings, process
//! identity, and tool lookup.

pub mod ansible;
pub mod runner;
pub mod tools;
