//! `phalanx-cpgtool` — list process groups and their members, like
//! corosync-cpgtool, from a running node's admin socket.
//!
//! ```text
//! phalanx-cpgtool [--socket PATH | --config FILE [--node-id N]] [-n] [-e] [--json]
//! ```
//!
//! `-n` prints only the group names; `-e` prints names without escaping
//! non-printable bytes; `--json` prints the node's answer as JSON. `--help` tells
//! every option; `--completions SHELL` prints a shell completion script.

#[path = "common/admin_target.rs"]
mod admin_target;
#[path = "common/cli.rs"]
mod cli;

use admin_target::AdminTarget;
use clap::Parser;
use clap_complete::Shell;
use phalanx::admin::{AdminClient, Group, Request, Response};
use std::process::ExitCode;

/// List a running node's process groups (CPG) and their members, like corosync-cpgtool.
#[derive(Parser, Debug)]
#[command(name = "phalanx-cpgtool", version, args_override_self = true)]
struct Cli {
    #[command(flatten)]
    target: AdminTarget,
    /// Print only the group names, one per line.
    #[arg(short = 'n')]
    names_only: bool,
    /// Print group names as they are, without escaping non-printable bytes as \xNN.
    #[arg(short = 'e')]
    raw: bool,
    /// Print the node's answer as JSON.
    #[arg(long)]
    json: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

fn escaped(name: &[u8], raw: bool) -> String {
    if raw {
        return String::from_utf8_lossy(name).into_owned();
    }
    name.iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

fn print_groups(groups: &[Group], names_only: bool, raw: bool) {
    if names_only {
        for g in groups {
            println!("{}", escaped(&g.name, raw));
        }
        return;
    }
    println!("{:<32} {:>10} {:>10}", "Group Name", "Member", "Node ID");
    for g in groups {
        println!("{}", escaped(&g.name, raw));
        for m in &g.members {
            let name = if m.node_name.is_empty() {
                String::new()
            } else {
                format!(" ({})", m.node_name)
            };
            println!("{:<32} {:>10} {:>10}{name}", "", m.local, m.node);
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let socket = cli.target.socket_path()?;
    let mut client = AdminClient::connect(&socket).map_err(|e| e.to_string())?;
    let answer = client
        .request(&Request::CpgGroups)
        .map_err(|e| e.to_string())?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    match answer {
        Response::Groups { groups } => {
            print_groups(&groups, cli.names_only, cli.raw);
            Ok(())
        }
        Response::Error { message } => Err(message),
        other => Err(format!("unexpected answer {other:?}")),
    }
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
            eprintln!("phalanx-cpgtool: {e}");
            ExitCode::FAILURE
        }
    }
}
