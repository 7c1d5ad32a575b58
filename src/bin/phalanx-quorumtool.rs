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
//! Exit status as corosync-quorumtool: with `-s`, 0 when quorate, 2 when not.

use phalanx::admin::{AdminClient, QuorumStatus, Request, Response, Status, socket_from_args};
use std::process::ExitCode;

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

fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: phalanx-quorumtool [--socket PATH | --config FILE [--node-id N]] [-s | -l | -e VOTES | -v VOTES [-n NODEID] | --cancel-wait-for-all] [--json]"
        );
        return Ok(true);
    }
    let (socket, rest) = socket_from_args(&args)?;
    let mut action = Action::Status;
    let mut json = false;
    let mut votes = None;
    let mut node = None;
    let mut it = rest.iter();
    let num = |v: Option<&String>, what: &str| -> Result<u32, String> {
        let v = v.ok_or(format!("{what} needs a value"))?;
        v.parse().map_err(|_| format!("{what}: not a number: {v}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-s" => action = Action::Status,
            "-l" => action = Action::List,
            "-e" => {
                action = Action::Command(Request::SetExpectedVotes {
                    votes: num(it.next(), "-e")?,
                })
            }
            "-v" => votes = Some(num(it.next(), "-v")?),
            "-n" => node = Some(num(it.next(), "-n")?),
            "--cancel-wait-for-all" => action = Action::Command(Request::CancelWaitForAll),
            "--json" => json = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let mut client = AdminClient::connect(&socket).map_err(|e| e.to_string())?;
    if let Some(votes) = votes {
        let node = match node {
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
            if json {
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
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("phalanx-quorumtool: {e}");
            ExitCode::FAILURE
        }
    }
}
