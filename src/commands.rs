//! One function per subcommand: open what it needs, run it, return the exit code.

use std::time::Instant;

use crate::cleanup;
use crate::cli::{Cli, Command, Global, Phase};
use crate::context::{self, Ctx};
use crate::exit::{self, Kind, fail};
use crate::journal::{self, Outcome};
use crate::provider;
use crate::report;
use crate::status;
use crate::steps::{self, Step};
use crate::tools::{self, Tool};

pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let global = cli.global.normalize();
    let g = &global;
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
        Command::Monitor(args) => monitor(g, args.duration),
        Command::Jenkins(command) => crate::jenkins::command(g, &command),
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

/// The `report` step: local reports first (they must survive a failed push), then
/// Elasticsearch when `ROLLCI_ES_URL` is set.
fn write_report(ctx: &mut Ctx) -> anyhow::Result<()> {
    steps::begin(ctx, "report", None)?;
    let result = local_reports(ctx).and_then(|()| push_reports(ctx));
    steps::end(ctx, &result)?;
    let _ = report::write_all(&ctx.journal.state, &ctx.workspace);
    result
}

fn local_reports(ctx: &Ctx) -> anyhow::Result<()> {
    for path in report::write_all(&ctx.journal.state, &ctx.workspace)? {
        println!("--- report: {}", path.display());
    }
    Ok(())
}

fn push_reports(ctx: &Ctx) -> anyhow::Result<()> {
    let Some(config) = crate::es::EsConfig::from_env()? else {
        return Ok(());
    };
    match crate::es::push_workspace(&ctx.workspace, &ctx.journal.state, &config) {
        Ok(outcome) => {
            println!("--- elasticsearch: {outcome}");
            Ok(())
        }
        Err(err) => Err(fail(
            Kind::Infra,
            format!("{err:#} (the local reports are written)"),
        )),
    }
}

fn cleanup_cmd(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = Ctx::open(g, false)?;
    // Jenkins runs cleanup in a stage and again in `post { always }`: the second finds a
    // finished journal and must neither redo nor re-record it.
    if ctx.journal.state.live().next().is_none()
        && ctx
            .journal
            .state
            .steps
            .last()
            .is_some_and(|s| s.step == "cleanup" && s.outcome == Outcome::Passed)
    {
        println!(
            "--- cleanup: nothing left to destroy (run {} is clean)",
            ctx.journal.state.run_id
        );
        return Ok(exit::OK);
    }
    cleanup_step(&mut ctx)?;
    Ok(exit::OK)
}

fn cleanup_step(ctx: &mut Ctx) -> anyhow::Result<()> {
    steps::banner(ctx, "cleanup");
    let started = Instant::now();
    steps::begin(ctx, "cleanup", None)?;
    let result = cleanup::run(ctx);
    steps::end(ctx, &result)?;
    // The reports must show the cleanup's outcome and any leak.
    let _ = report::write_all(&ctx.journal.state, &ctx.workspace);
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

/// Probes alone, for debugging by hand: no lock (an upgrade may be running in another
/// rollci), results in `evidence/monitor-<time>.jsonl` and printed per service.
fn monitor(g: &Global, duration: Option<std::time::Duration>) -> anyhow::Result<u8> {
    let config = context::load_config(g)?;
    let state = read_state(g)?;
    if config.probes.is_empty() {
        return Err(fail(Kind::Usage, "the lab file has no [[probes]]"));
    }
    let specs = crate::probe::specs(&config.probes, &crate::availability::host_vars(&state))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let file = crate::evidence::dir(&g.workspace()).join(format!("monitor-{stamp}.jsonl"));
    let mut availability = crate::evidence::Availability {
        started: Some(chrono::Utc::now()),
        probes_file: Some(file.clone()),
        ..Default::default()
    };
    let monitor = crate::probe::Monitor::start(specs.clone(), &file, "monitor")?;
    println!("--- probing {} service(s); Ctrl-C stops", specs.len());
    wait_for(duration)?;
    let records = monitor.stop()?;
    availability.ended = Some(chrono::Utc::now());
    availability.services = crate::probe::analyze(&specs, &records);
    crate::availability::print_services(&availability);
    let name = format!("monitor-{stamp}.json");
    let path = crate::evidence::write(&g.workspace(), &name, &availability)?;
    println!(
        "--- probes: {}\n--- summary: {}",
        file.display(),
        path.display()
    );
    let over = crate::probe::over_budget(&availability.services);
    if over.is_empty() {
        Ok(exit::OK)
    } else {
        Err(fail(
            Kind::Check,
            format!("downtime over budget: {}", over.join("; ")),
        ))
    }
}

/// Sleeps for the duration, or until Ctrl-C (SIGINT) or SIGTERM.
fn wait_for(duration: Option<std::time::Duration>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = tokio::signal::ctrl_c() => println!("--- interrupted: writing the results"),
            _ = term.recv() => println!("--- terminated: writing the results"),
        }
        Ok(())
    })
}
