//! One journaled run of a tool against the lab: the variables every action gets, the
//! invocation (argv, the lab's environment, inventory and variables file) and the attempt
//! record around it. Steps' actions, the smoke and Rally commands and the keeping of the
//! hosts' logs at teardown all run this way.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::config::Action;
use crate::context::Ctx;
use crate::exec::ansible;
use crate::exec::runner::{Ended, Invocation};
use crate::exec::tools::Tool;
use crate::procs::RUN_MARKER;

/// Variables handed to an action.
pub type Vars = Map<String, Value>;

/// The variables every action of a step gets.
pub fn base_vars(ctx: &Ctx, step: &str, release: &str) -> Vars {
    let state = &ctx.journal.state;
    let mut vars: Vars = ctx.provider.vars();
    vars.insert("rollci_run_id".into(), json!(state.run_id));
    vars.insert("rollci_step".into(), json!(step));
    vars.insert("rollci_release".into(), json!(release));
    vars.insert("rollci_from_release".into(), json!(state.from_release));
    vars.insert("rollci_to_release".into(), json!(state.to_release));
    // The lab's SOCKS tunnel, for smoke suites and playbooks that call the lab's APIs from
    // this machine the way rollci's probes do.
    if let Some(socks) = crate::route::socks() {
        vars.insert("rollci_socks_proxy".into(), json!(socks));
    }
    vars
}

/// Runs one journaled attempt: recorded as running before it starts, closed with how it
/// ended and whether that counts as passed (`passed` decides: a test runner's exit status
/// does not), the journal reconciled in between.
pub fn attempt_of(
    ctx: &mut Ctx,
    name: &str,
    attempt: u32,
    inv: &Invocation,
    passed: impl Fn(Ended) -> bool,
) -> anyhow::Result<Ended> {
    ctx.journal.begin_attempt(name, attempt, &inv.log)?;
    let Ctx {
        executor, journal, ..
    } = ctx;
    // The group is journaled the moment it exists: a rollci killed now leaves it findable.
    let ended = executor.run(inv, &mut |group| {
        let _ = journal.attempt_started(group);
    });
    ctx.provider.reconcile(&mut ctx.journal)?;
    let ran = ended.as_ref().ok().copied();
    let aborted = matches!(ran, Some(Ended::Aborted(_)));
    ctx.journal.end_attempt(
        ran.map(Ended::code),
        ran.is_some_and(&passed) && !aborted,
        aborted,
    )?;
    ended
}

/// The invocation of an action's attempt (also used for the smoke command).
pub fn invocation(
    ctx: &Ctx,
    action: &Action,
    vars: &Vars,
    label: String,
    log: PathBuf,
) -> anyhow::Result<Invocation> {
    let base = ctx.config.base_dir();
    let tmp = ansible::temp_dir(&ctx.workspace);
    std::fs::create_dir_all(&tmp)
        .with_context(|| format!("failed to create `{}`", tmp.display()))?;
    let mut env = ansible::environment(&ctx.workspace);
    env.extend(ctx.provider.tool_env());
    env.push((RUN_MARKER.into(), ctx.journal.state.run_id.clone()));
    env.push((
        "ROLLCI_VARS".into(),
        Value::Object(vars.clone()).to_string(),
    ));
    for h in &ctx.journal.state.hosts {
        let name = format!("ROLLCI_HOST_{}", h.name.to_uppercase().replace('-', "_"));
        env.push((name.clone(), format!("{}:{}", h.address, h.port)));
        for (port_name, port) in &h.ports {
            let port_name = port_name.to_uppercase().replace(['-', '.'], "_");
            env.push((
                format!("{name}_{port_name}"),
                format!("{}:{port}", h.address),
            ));
        }
    }
    let exported = vars.iter().filter(|(k, _)| k.starts_with("rollci_"));
    env.extend(exported.filter_map(|(k, v)| Some((k.to_uppercase(), v.as_str()?.to_string()))));
    let timeout = action.timeout.unwrap_or(ctx.config.lab.default_timeout);
    let (program, args) = match (&action.playbook, &action.command) {
        (Some(playbook), _) => {
            let program = Tool::new("ansible-playbook", "playbook actions").locate()?;
            let inventory = ansible::write_inventory(&ctx.journal.state, &ctx.workspace)?;
            let playbook = std::path::absolute(base.join(playbook))?;
            std::fs::create_dir_all(ctx.log_dir())?;
            let vars_file = log.with_extension("vars.yml");
            ansible::write_vars(&Value::Object(vars.clone()), &vars_file)?;
            (
                program,
                ansible::playbook_args(&inventory, &playbook, &vars_file),
            )
        }
        (None, Some(argv)) => {
            let program = Tool::new(&argv[0], "a command action").locate()?;
            let args: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
            (program, args)
        }
        (None, None) => anyhow::bail!("action `{}` has nothing to run", action.name),
    };
    Ok(Invocation {
        program,
        args,
        env,
        cwd: base,
        timeout,
        label,
        log,
        stdout: None,
    })
}
