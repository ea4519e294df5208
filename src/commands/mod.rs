//! One file per subcommand: open what it needs, run it, return the exit code. Only this
//! folder and `cli` know the command line; the domain modules take plain values.

mod cleanup;
mod deploy;
mod doctor;
mod inventory;
mod jenkins;
mod lab;
mod monitor;
mod provision;
mod report;
mod results;
mod run;
mod status;
mod strays;
mod upgrade;
mod verify;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let global = cli.global.normalize();
    let g = &global;
    match cli.command {
        Command::Provision(args) => provision::run(g, args.acquire_only),
        Command::Deploy => deploy::run(g),
        Command::Upgrade(args) => upgrade::run(g, args.restart),
        Command::Verify(args) => verify::run(g, args.phase),
        Command::Report => report::run(g),
        Command::Cleanup => cleanup::run(g),
        Command::Run => run::run(g),
        Command::Status(args) => status::run(g, args.json),
        Command::Inventory => inventory::run(g),
        Command::Doctor => doctor::run(g),
        Command::Results(args) => results::run(&args),
        Command::Monitor(args) => monitor::run(g, args.duration),
        Command::Strays(args) => strays::run(g, &args),
        Command::Jenkins(command) => jenkins::run(g, &command),
    }
}
