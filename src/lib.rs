//! rollci: the steps of a rolling-upgrade CI pipeline over a state journal.
//!
//! `main` parses the command line and calls [`run`]; everything else lives in one module
//! per concept.

pub mod attempt;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod context;
pub mod exec;
pub mod exit;
pub mod faultpoint;
pub mod flow;
pub mod jenkins;
pub mod lab_logs;
pub mod openstack;
pub mod procs;
pub mod provider;
pub mod reports;
pub mod results;
pub mod route;
pub mod secret;
pub mod signals;
pub mod steps;
pub mod teardown;
pub mod templates;
pub mod workspace;

/// Runs a parsed command line and returns the process exit code; errors are printed here,
/// once, with their cause chain.
pub fn run(cli: cli::Cli) -> u8 {
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            crate::say_err!("error: {err:#}");
            exit::kind_of(&err).code()
        }
    }
}

#[cfg(test)]
mod testing;
