//! `phalanx-stats` — every counter of a running node, like `corosync-cmapctl -m
//! stats`, through its admin socket.
//!
//! ```text
//! phalanx-stats [--socket PATH | --config FILE [--node-id N]] [PREFIX] [--json]
//! ```
//!
//! Prints `key (u64) = value` (or `(str)` for states), one per line, in a fixed
//! order: totem (`stats.srp.*`), sockets (`stats.transport.*`), every dropped
//! datagram by reason (`stats.rx_drop.*`: unknown address, failed authentication,
//! replayed, malformed, spoofed, ...), the driver, then each peer's links
//! (`stats.link.node<N>.link<L>.*`). `PREFIX` keeps only keys that start with it.
//! Exit status 0, or 1 on an error or bad usage.

#[path = "common/admin_target.rs"]
mod admin_target;
#[path = "common/cli.rs"]
mod cli;

use admin_target::AdminTarget;
use clap::Parser;
use clap_complete::Shell;
use phalanx::admin::{AdminClient, Request, Response, StatValue};
use std::process::ExitCode;

/// Print a running node's counters (totem, sockets, drops by reason, links).
#[derive(Parser, Debug)]
#[command(name = "phalanx-stats", version, args_override_self = true)]
struct Cli {
    #[command(flatten)]
    target: AdminTarget,
    /// Only keys that start with this (e.g. `stats.rx_drop`).
    #[arg(value_name = "PREFIX")]
    prefix: Option<String>,
    /// Print the keys as a JSON array of {key, value}.
    #[arg(long)]
    json: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

fn run(cli: &Cli) -> Result<(), String> {
    let socket = cli.target.socket_path()?;
    let mut client = AdminClient::connect(&socket).map_err(|e| e.to_string())?;
    let mut stats = match client.request(&Request::Stats).map_err(|e| e.to_string())? {
        Response::Stats { stats } => stats,
        Response::Error { message } => return Err(message),
        other => return Err(format!("unexpected answer {other:?}")),
    };
    if let Some(p) = &cli.prefix {
        stats.retain(|s| s.key.starts_with(p.as_str()));
    }
    if cli.json {
        let text = serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    for s in &stats {
        match &s.value {
            StatValue::Count(n) => println!("{} (u64) = {n}", s.key),
            StatValue::Text(t) => println!("{} (str) = {t}", s.key),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(1) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phalanx-stats: {e}");
            ExitCode::FAILURE
        }
    }
}
