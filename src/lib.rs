//! rollci: the steps of a rolling-upgrade CI pipeline over a state journal.
//!
//! `main` parses the command line and calls [`run`]; everything else lives in one module
//! per concept.

pub mod action;
pub mod ansible;
pub mod atomic;
pub mod availability;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod es;
pub mod evidence;
pub mod exit;
pub mod html;
pub mod jenkins;
pub mod journal;
pub mod junit;
pub mod persistent;
pub mod probe;
pub mod procs;
pub mod provider;
pub mod render;
pub mod report;
pub mod results;
pub mod runner;
pub mod smoke;
pub mod status;
pub mod steps;
pub mod subunit;
pub mod tools;

/// Runs a parsed command line and returns the process exit code; errors are printed here,
/// once, with their cause chain.
pub fn run(cli: cli::Cli) -> u8 {
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::kind_of(&err).code()
        }
    }
}
