//! `cache_serve`: a profile's Jira REST API served from its cache.
//!
//! Thin front end: parses flags, sets up logging (the access log is at info,
//! shown by default), loads the profile, checks the listen address, builds
//! the library's server ([`jira_cache::serve::Server`]) and runs it until
//! SIGINT or SIGTERM, letting the requests under way finish (30 s at most). With `--warm`
//! it also warms through the library's [`jira_cache::warm::WarmSession`].

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod unit;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use jira_cache::exit;
use jira_cache::profile::{self, DEFAULT_SERVE_LISTEN, LoadOptions};
use jira_cache::schedule::CronSchedule;
use jira_cache::serve::Server;
use jira_cache::serve::schedule::{Warmed, warm_on_schedule};
use jira_cache::warm::{self, Interrupt, NoProgress, WarmOutcome};

const SIGTERM: Interrupt = Interrupt {
    code: exit::SIGTERM,
    signal: "SIGTERM",
};

use cli::Cli;

fn main() -> ExitCode {
    // `COMPLETE=bash cache_…`: the shell asks for completions (profile
    // names included); answered here, before anything else runs.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    common::remember_user_flags(cli.config.as_deref(), cli.profile.as_deref());
    let exit_status = common::exit_status_rows(cli::NEVER_EXITS_WITH, cli::OWN_EXIT_MEANINGS, &[]);
    if let Some(code) =
        common::print_completions_or_man::<Cli>(cli.completions, cli.man, &exit_status)
    {
        return code;
    }
    // The access log is the point of a server's stderr: info by default.
    if let Err(e) = common::init_logging(cli.verbose + 1, cli.quiet, cli.log_file.as_deref()) {
        eprintln!("cache_serve: {e}");
        return ExitCode::from(exit::CONFIG);
    }
    common::run_to_exit("cache_serve", run(cli), None, |_| {})
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let options = LoadOptions::from_process_env(cli.config.clone(), cli.profile.clone());
    let profile = profile::load(&options)?;
    if cli.print_systemd {
        let (text, warning) = unit::systemd(&profile, cli.warm);
        print!("{text}");
        if let Some(warning) = warning {
            eprintln!("{warning}");
        }
        return Ok(exit::OK);
    }
    let default_listen = DEFAULT_SERVE_LISTEN.parse().expect("a valid address");
    let listen = cli
        .listen
        .or(profile.serve_listen)
        .unwrap_or(default_listen);
    if !listen.ip().is_loopback() {
        if !cli.allow_remote {
            eprintln!(
                "cache_serve: {listen} is not a loopback address; the traffic is plain HTTP and carries \
                 credentials and Jira data: pass --allow-remote to listen there anyway"
            );
            return Ok(exit::USAGE);
        }
        eprintln!(
            "cache_serve: warning: listening on {listen}, beyond this machine, over plain HTTP: \
             credentials and Jira data cross the network unencrypted; put TLS in front of it"
        );
    }
    let mut limits = jira_cache::serve::Limits {
        header_read: cli.header_timeout,
        ..Default::default()
    };
    if let Some(n) = cli.max_connections {
        limits.max_connections = n as usize;
    }
    let server = Server::new(&profile, common::retry_policy())
        .await?
        .with_limits(limits);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; pick another --listen address or port")
        })?;
    let bound = listener.local_addr().unwrap_or(listen);
    println!(
        "Serving profile `{}` ({}, {}) at http://{bound}",
        profile.name, profile.url, server.deployment
    );
    // One signal listener; the server and the warm both watch what it saw,
    // so a signal between two warms is not missed.
    let (signalled, seen) = tokio::sync::watch::channel(None::<Interrupt>);
    tokio::spawn(async move {
        let _ = signalled.send(Some(warm::until_signal().await));
    });
    let stop = move || {
        let mut seen = seen.clone();
        async move {
            let interrupt = seen
                .wait_for(Option::is_some)
                .await
                .map(|i| i.unwrap_or(SIGTERM));
            match interrupt {
                Ok(interrupt) => interrupt,
                // The listener is gone: nothing will stop us but a kill.
                Err(_) => std::future::pending().await,
            }
        }
    };
    // The warm runs beside the server in this task (its futures borrow and
    // need not be `Send`); both stop at the same signal, the warm recording
    // its run as interrupted.
    let warmer = async {
        if !cli.warm {
            return;
        }
        // The profile's load checked the schedule; this is only a guard.
        let cron = match profile.schedule.parse::<CronSchedule>() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(
                    "profile `{}`: schedule: {e}; warming at start only",
                    profile.name
                );
                None
            }
        };
        warm_on_schedule(
            profile.clone(),
            cron,
            common::retry_policy(),
            Arc::new(NoProgress),
            log_warm,
            &stop,
        )
        .await;
    };
    let shutdown = {
        let stop = stop();
        async move {
            stop.await;
        }
    };
    let (served, ()) = tokio::join!(server.serve(listener, shutdown), warmer);
    served.context("serving")?;
    Ok(exit::OK)
}

fn log_warm(outcome: Warmed) {
    match outcome {
        Warmed::Done(WarmOutcome::Ran { report, .. }) => {
            let (written, unchanged, removed) = report.totals();
            tracing::info!(
                "warm {:?}: {written} written, {unchanged} unchanged, {removed} removed in {:.1} s",
                report.result,
                report.seconds
            );
            for e in report.errors() {
                tracing::warn!("warm: {}", e.message);
            }
        }
        Warmed::Done(WarmOutcome::NothingToDo { .. }) => tracing::info!("warm: nothing stale"),
        Warmed::Failed(e) => tracing::warn!("warm failed: {e}"),
    }
}
