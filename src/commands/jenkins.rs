//! `rollci jenkins jenkinsfile | job-config | push | lint | strays-jenkinsfile |
//! strays-job-config`.

use std::path::Path;

use anyhow::Context;

use crate::cli::{Global, JenkinsCommand, SourceArgs, StraysJobArgs};
use crate::config::Config;
use crate::exit::{self, Kind, fail};
use crate::jenkins::api;
use crate::jenkins::render::{self, Source};
use crate::jenkins::strays::{self, StraysJob};

use super::lab;

/// Runs one `rollci jenkins …` subcommand.
pub fn run(g: &Global, command: &JenkinsCommand) -> anyhow::Result<u8> {
    match command {
        JenkinsCommand::Jenkinsfile(args) => {
            let (config, config_path) = lab_file(g)?;
            let text = render::jenkinsfile(&config, config_path)?;
            emit(&text, args.out.as_deref())
        }
        JenkinsCommand::JobConfig(args) => {
            let (config, config_path) = lab_file(g)?;
            let text = render::job_config(&config, config_path, &source(&args.source))?;
            emit(&text, args.out.as_deref())
        }
        JenkinsCommand::Push(args) => {
            let (config, config_path) = lab_file(g)?;
            push(&config, config_path, &args.job, &args.source)
        }
        JenkinsCommand::Lint => {
            let (config, config_path) = lab_file(g)?;
            lint(&config, config_path)
        }
        JenkinsCommand::StraysJenkinsfile(args) => {
            let text = strays::jenkinsfile(&strays_job(g, &args.job)?)?;
            emit(&text, args.out.as_deref())
        }
        JenkinsCommand::StraysJobConfig(args) => {
            let text = strays::job_config(&strays_job(g, &args.job)?, &source(&args.source))?;
            emit(&text, args.out.as_deref())
        }
    }
}

/// The lab file and its path as given.
fn lab_file(g: &Global) -> anyhow::Result<(Config, &str)> {
    let config = lab::load_config(g)?;
    Ok((config, config_path(g)?))
}

/// The strays job of the flags; the cloud is required (the job sweeps that one).
fn strays_job(g: &Global, args: &StraysJobArgs) -> anyhow::Result<StraysJob> {
    let cloud = g.cloud.clone().ok_or_else(|| {
        fail(
            Kind::Usage,
            "which cloud does the job sweep? name it with --cloud (or OS_CLOUD)",
        )
    })?;
    Ok(StraysJob {
        cloud,
        region: g.region.clone(),
        label: args.label.clone(),
        cron: args.cron.clone(),
        library: args.library.clone(),
        cloud_credentials: args.cloud_credentials.clone(),
        clouds_credentials: args.clouds_credentials.clone(),
    })
}

/// The lab file's path as given (the job's workspace resolves it, not this machine).
fn config_path(g: &Global) -> anyhow::Result<&str> {
    g.config.to_str().ok_or_else(|| {
        fail(
            Kind::Usage,
            format!("`{}`: the lab file's path is not UTF-8", g.config.display()),
        )
    })
}

fn source(args: &SourceArgs) -> Source {
    match &args.scm_url {
        Some(url) if !args.inline => Source::Git {
            url: url.clone(),
            branch: args.branch.clone(),
            script_path: args.script_path.clone(),
        },
        _ => Source::Inline,
    }
}

/// Prints `text`, or writes it atomically to `out` (its folder created if needed).
fn emit(text: &str, out: Option<&Path>) -> anyhow::Result<u8> {
    match out {
        None => crate::show!("{text}"),
        Some(path) => crate::workspace::atomic::write(path, text.as_bytes())
            .with_context(|| format!("failed to write `{}`", path.display()))?,
    }
    Ok(exit::OK)
}

fn push(config: &Config, config_path: &str, job: &str, args: &SourceArgs) -> anyhow::Result<u8> {
    let xml = render::job_config(config, config_path, &source(args))?;
    let mut server = api::Server::from_env()?;
    let pushed = server
        .push(job, &xml)
        .with_context(|| format!("failed to push job `{job}`"))?;
    crate::say!("--- jenkins: {pushed} job `{job}`: {}", server.job_url(job));
    Ok(exit::OK)
}

/// Prints the linter's answer; anything but [`api::LINT_OK`] is a failed check (exit 1).
fn lint(config: &Config, config_path: &str) -> anyhow::Result<u8> {
    let text = render::jenkinsfile(config, config_path)?;
    let answer = api::Server::from_env()?.lint(&text)?;
    crate::say!("{answer}");
    if answer == api::LINT_OK {
        Ok(exit::OK)
    } else {
        Err(fail(Kind::Check, "Jenkins' linter refused the Jenkinsfile"))
    }
}
