//! `phalanx-cpgtool` — list process groups and their members, like
//! corosync-cpgtool, from a running node's admin socket.
//!
//! ```text
//! phalanx-cpgtool [--socket PATH | --config FILE [--node-id N]] [-n] [-e] [--json]
//! ```
//!
//! `-n` prints only the group names; `-e` prints names without escaping
//! non-printable bytes; `--json` prints the node's answer as JSON.

use phalanx::admin::{AdminClient, Group, Request, Response, socket_from_args};
use std::process::ExitCode;

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

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: phalanx-cpgtool [--socket PATH | --config FILE [--node-id N]] [-n] [-e] [--json]"
        );
        return Ok(());
    }
    let (socket, rest) = socket_from_args(&args)?;
    let (mut names_only, mut raw, mut json) = (false, false, false);
    for a in &rest {
        match a.as_str() {
            "-n" => names_only = true,
            "-e" => raw = true,
            "--json" => json = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let mut client = AdminClient::connect(&socket).map_err(|e| e.to_string())?;
    let answer = client
        .request(&Request::CpgGroups)
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    match answer {
        Response::Groups { groups } => {
            print_groups(&groups, names_only, raw);
            Ok(())
        }
        Response::Error { message } => Err(message),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phalanx-cpgtool: {e}");
            ExitCode::FAILURE
        }
    }
}
