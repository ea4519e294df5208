//! The `rollci` binary: parse the command line, run, exit with the error's code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = rollci::cli::Cli::parse();
    let code = rollci::run(cli);
    std::process::ExitCode::from(code)
}
