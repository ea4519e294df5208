//! One function per subcommand: open what it needs, run it, return the exit code.

use std::time::Instant;

use crate::cleanup;
use crate::cli::{Cli, Command, Global, Phase};
use crate::context::{self, Ctx};
use crate::exit::{self, Kind, fail};
use crate::journal;
use crate::provider;
use crate::report;
use crate::status;
use crate::steps::{self, Step};
use crate::tools::{self, Tool};

pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Provision => step(g, Step::Provision, true),
        Command::Deploy => step(g, Step::Deploy, false),
        Command::Upgrade => step(g, Step::Upgrade, false),
        Command::Verify(args) => step(g, Step::Verify(args.phase), false),
        Command::Report => report_cmd(g),
        Command::Cleanup => cleanup_cmd(g),
        Command::Run => run_all(g),
        Command::Status(args) => status_cmd(g, args.json),
        Command::Inventory => inventory_cmd(g),
        Command::Doctor => doctor(g),
        Command::Results(args) => crate::results::command(&args),
    }
}

fn step(g: &Global, step: Step, new_run: bool) -> anyhow::Result<u8> {
    let mut ctx = Ctx::open(g, new_run)?;
    steps::run(&mut ctx, step)?;
    Ok(exit::OK)
}

fn report_cmd(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = Ctx::open(g, false)?;
    write_report(&mut ctx)?;
    Ok(exit::OK)
}

fn write_report(ctx: &mut Ctx) -> anyhow::Result<()> {
    steps::begin(ctx, "report", None)?;
    let result = report::write(&ctx.journal.state, &ctx.workspace).map(|path| {
        println!("--- report: {}", path.display());
    });
    steps::end(ctx, &result)?;
    result
}

fn cleanup_cmd(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = Ctx::open(g, false)?;
    cleanup_step(&mut ctx)?;
    Ok(exit::OK)
}

fn cleanup_step(ctx: &mut Ctx) -> anyhow::Result<()> {
    steps::banner(ctx, "cleanup");
    let started = Instant::now();
    steps::begin(ctx, "cleanup", None)?;
    let result = cleanup::run(ctx);
    steps::end(ctx, &result)?;
    // The summary must show the cleanup's outcome and any leak.
    let _ = report::write(&ctx.journal.state, &ctx.workspace);
    steps::outcome_banner("cleanup", &result, started);
    result
}

/// Every step in order; the first failure stops the flow, report and cleanup always run.
fn run_all(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = Ctx::open(g, true)?;
    let flow = [
        Step::Provision,
        Step::Deploy,
        Step::Verify(Phase::Before),
        Step::Upgrade,
        Step::Verify(Phase::After),
    ];
    let mut first_error = None;
    for s in flow {
        if let Err(err) = steps::run(&mut ctx, s) {
            first_error = Some(err);
            break;
        }
    }
    let reported = write_report(&mut ctx);
    let cleaned = cleanup_step(&mut ctx);
    print_where(&ctx);
    match first_error.map(Err).unwrap_or(reported).and(cleaned) {
        Ok(()) => Ok(exit::OK),
        Err(err) => Err(err),
    }
}

fn print_where(ctx: &Ctx) {
    println!(
        "--- state:   {}",
        journal::state_path(&ctx.workspace).display()
    );
    println!("--- logs:    {}", ctx.log_dir().display());
    println!("--- reports: {}", ctx.workspace.join("reports").display());
}

fn status_cmd(g: &Global, json: bool) -> anyhow::Result<u8> {
    let state = read_state(g)?;
    let workspace = g.workspace();
    if json {
        let value = status::json(&state, &workspace);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", status::table(&state, &workspace));
    }
    Ok(exit::OK)
}

fn inventory_cmd(g: &Global) -> anyhow::Result<u8> {
    let state = read_state(g)?;
    print!("{}", crate::ansible::inventory(&state)?);
    Ok(exit::OK)
}

fn read_state(g: &Global) -> anyhow::Result<journal::State> {
    let workspace = g.workspace();
    journal::read(&workspace)?.ok_or_else(|| {
        fail(
            Kind::Usage,
            format!(
                "no state journal in `{}`: nothing has run there yet",
                workspace.display()
            ),
        )
    })
}

/// Checks every tool the lab needs; exit 3 when one is missing.
fn doctor(g: &Global) -> anyhow::Result<u8> {
    let config = context::load_config(g)?;
    let provider = provider::from_config(&config, &g.workspace());
    let mut needed = provider.tools();
    for (key, action) in config.actions() {
        match (&action.playbook, &action.command) {
            (Some(_), _) => needed.push(Tool::new("ansible-playbook", "playbook actions")),
            (None, Some(argv)) => needed.push(Tool::new(&argv[0], &format!("`{key}`"))),
            _ => {}
        }
    }
    let checks = tools::check(&needed);
    let mut missing = 0;
    for c in &checks {
        match &c.found {
            Some(path) => println!("ok       {:<20} {}", c.tool.name, path.display()),
            None => {
                missing += 1;
                println!("MISSING  {:<20} needed for {}", c.tool.name, c.tool.why);
                println!("         hint: {}", tools::install_hint(&c.tool.name));
            }
        }
    }
    if missing > 0 {
        return Err(fail(Kind::Infra, format!("{missing} tool(s) missing")));
    }
    println!("all {} tools found", checks.len());
    Ok(exit::OK)
}
