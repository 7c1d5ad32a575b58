//! `phalanx-quorumtool` — quorum status, node list and runtime changes, like
//! corosync-quorumtool, through a running node's admin socket.
//!
//! ```text
//! phalanx-quorumtool [--socket PATH | --config FILE [--node-id N]]
//!     [-s | -l | -e VOTES | -v VOTES [-n NODEID] | --cancel-wait-for-all] [--json]
//! ```
//!
//! `-s` (default) prints quorum and membership information; `-l` the node list
//! with votes; `-e` sets expected votes cluster-wide; `-v` sets a node's votes
//! (this node unless `-n`); `--cancel-wait-for-all` stops waiting for all nodes.
//! The actions exclude each other. Exit status as corosync-quorumtool: with `-s`,
//! 0 when quorate, 2 when not; 1 on an error or bad usage. `--completions SHELL`
//! prints a shell completion script.

#[path = "common/admin_target.rs"]
mod admin_target;
#[path = "common/cli.rs"]
mod cli;

use admin_target::AdminTarget;
use clap::{ArgGroup, Parser};
use clap_complete::Shell;
use phalanx::admin::{AdminClient, QuorumStatus, Request, Response, Status};
use std::process::ExitCode;

/// Show a running node's quorum state or change its votes, like corosync-quorumtool.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-quorumtool",
    version,
    args_override_self = true,
    group(ArgGroup::new("action").args(["status", "list", "expected", "votes", "cancel_wait_for_all"])),
    after_help = "Exit status: 0 on success; with -s (the default) 2 when the node is not quorate; \
                  1 on an error or bad usage."
)]
struct Cli {
    #[command(flatten)]
    target: AdminTarget,
    /// Print quorum and membership information (the default action).
    #[arg(short = 's')]
    status: bool,
    /// List the member nodes with their votes.
    #[arg(short = 'l')]
    list: bool,
    /// Set the expected votes of the whole cluster.
    #[arg(short = 'e', value_name = "VOTES")]
    expected: Option<u32>,
    /// Set a node's votes: this node's, or NODEID's with -n.
    #[arg(short = 'v', value_name = "VOTES")]
    votes: Option<u32>,
    /// The node whose votes -v sets.
    #[arg(short = 'n', value_name = "NODEID", requires = "votes")]
    node: Option<u32>,
    /// Stop waiting for all nodes (wait_for_all) before the first quorum.
    #[arg(long)]
    cancel_wait_for_all: bool,
    /// Print the node's status and quorum answers as JSON (with -s or -l).
    #[arg(long)]
    json: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

enum Action {
    Status,
    List,
    Command(Request),
}

fn print_nodes(q: &QuorumStatus, me: u32) {
    println!("{:>10} {:>10} Name", "Nodeid", "Votes");
    for n in q.nodes.iter().filter(|n| n.member) {
        let local = if n.id == me { " (local)" } else { "" };
        println!("{:>10} {:>10} {}{local}", n.id, n.votes, n.name);
    }
}

fn print_status(s: &Status, q: &QuorumStatus) {
    let members = s.nodes.iter().filter(|n| n.member).count();
    println!("Quorum information\n------------------");
    println!("Quorum provider:  phalanx_votequorum");
    println!("Nodes:            {members}");
    println!("Node ID:          {}", s.node_id);
    println!("Ring ID:          {}.{}", s.ring.0, s.ring.1);
    println!("Quorate:          {}", if q.quorate { "Yes" } else { "No" });
    println!("\nVotequorum information\n----------------------");
    println!("Expected votes:   {}", q.expected_votes);
    println!("Highest expected: {}", q.highest_expected);
    println!("Total votes:      {}", q.total_votes);
    println!("Quorum:           {}", q.quorum);
    println!("Flags:            {}", q.flags.join(" "));
    if let Some(v) = q.device_votes {
        println!("Device votes:     {v}");
    }
    println!("\nMembership information\n----------------------");
    print_nodes(q, s.node_id);
}

fn ask(client: &mut AdminClient, req: Request) -> Result<Response, String> {
    match client.request(&req).map_err(|e| e.to_string())? {
        Response::Error { message } => Err(message),
        r => Ok(r),
    }
}

fn run(cli: &Cli) -> Result<bool, String> {
    let socket = cli.target.socket_path()?;
    let mut action = if cli.list {
        Action::List
    } else if let Some(votes) = cli.expected {
        Action::Command(Request::SetExpectedVotes { votes })
    } else if cli.cancel_wait_for_all {
        Action::Command(Request::CancelWaitForAll)
    } else {
        Action::Status
    };
    let mut client = AdminClient::connect(&socket).map_err(|e| e.to_string())?;
    if let Some(votes) = cli.votes {
        let node = match cli.node {
            Some(n) => n,
            None => match ask(&mut client, Request::Status)? {
                Response::Status(s) => s.node_id,
                other => return Err(format!("unexpected answer {other:?}")),
            },
        };
        action = Action::Command(Request::SetVotes { node, votes });
    }
    match action {
        Action::Command(req) => {
            ask(&mut client, req)?;
            Ok(true)
        }
        Action::Status | Action::List => {
            let status = match ask(&mut client, Request::Status)? {
                Response::Status(s) => s,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            let quorum = match ask(&mut client, Request::Quorum)? {
                Response::Quorum(q) => q,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            if cli.json {
                let both = serde_json::json!({ "status": status, "quorum": quorum });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&both).map_err(|e| e.to_string())?
                );
            } else if matches!(action, Action::List) {
                print_nodes(&quorum, status.node_id);
            } else {
                print_status(&status, &quorum);
            }
            Ok(quorum.quorate || matches!(action, Action::List))
        }
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
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("phalanx-quorumtool: {e}");
            ExitCode::FAILURE
        }
    }
}
