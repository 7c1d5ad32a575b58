//! `phalanx-dlm-tool` — the lock manager of a running node, like `dlm_tool`.
//!
//! ```text
//! phalanx-dlm-tool [--socket PATH | --config FILE [--node-id N]] COMMAND
//!   ls                              lockspaces with members and recovery state
//!   lockdump                        this node's locks and the master copies it holds
//!   join LOCKSPACE | leave LOCKSPACE
//!   lock LOCKSPACE RESOURCE MODE [--noqueue]   prints the lock id once granted
//!   unlock LOCKSPACE ID
//! ```
//!
//! Locks taken with `lock` belong to the node's process and stay until `unlock`
//! (or until the node stops). Exit status: 0 on success, 11 when `--noqueue`
//! could not be granted (`EAGAIN`), 1 on any other failure, 2 on bad usage.

#[path = "common/admin_target.rs"]
mod admin_target;

use admin_target::AdminTarget;
use clap::{Parser, Subcommand};
use phalanx::admin::{AdminClient, DlmAdmin, Request, Response};
use std::process::ExitCode;
use std::time::Duration;

/// Lockspaces and locks of a running node.
#[derive(Parser, Debug)]
#[command(name = "phalanx-dlm-tool", version)]
struct Cli {
    #[command(flatten)]
    target: AdminTarget,
    /// Longest wait for an answer, in seconds (a lock waits for its grant).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Lockspaces with members and recovery state.
    Ls,
    /// This node's locks and the master copies it holds.
    Lockdump,
    /// Join a lockspace.
    Join {
        /// Lockspace name.
        lockspace: String,
    },
    /// Leave a lockspace.
    Leave {
        /// Lockspace name.
        lockspace: String,
    },
    /// Lock a resource, wait for the grant, print the lock id.
    Lock {
        /// Lockspace name.
        lockspace: String,
        /// Resource name.
        resource: String,
        /// NL, CR, CW, PR, PW or EX.
        mode: String,
        /// Fail (exit 11) instead of waiting.
        #[arg(long)]
        noqueue: bool,
    },
    /// Unlock a lock taken with `lock`.
    Unlock {
        /// Lockspace name.
        lockspace: String,
        /// The id `lock` printed.
        id: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let op = match cli.command {
        Cmd::Ls => DlmAdmin::Ls,
        Cmd::Lockdump => DlmAdmin::Lockdump,
        Cmd::Join { lockspace } => DlmAdmin::Join { lockspace },
        Cmd::Leave { lockspace } => DlmAdmin::Leave { lockspace },
        Cmd::Lock {
            lockspace,
            resource,
            mode,
            noqueue,
        } => DlmAdmin::Lock {
            lockspace,
            resource,
            mode,
            noqueue,
        },
        Cmd::Unlock { lockspace, id } => DlmAdmin::Unlock {
            lockspace,
            lock: id,
        },
    };
    let answer = cli.target.socket_path().and_then(|path| {
        let mut c = AdminClient::connect(&path).map_err(|e| e.to_string())?;
        c.set_timeout(Duration::from_secs(cli.timeout))
            .map_err(|e| e.to_string())?;
        c.request(&Request::Dlm(op)).map_err(|e| e.to_string())
    });
    match answer {
        Ok(Response::Dlm(a)) => {
            print!("{}", a.output);
            if let Some(e) = a.error {
                eprintln!("phalanx-dlm-tool: {e}");
            }
            ExitCode::from(a.exit_code)
        }
        Ok(Response::Error { message }) => {
            eprintln!("phalanx-dlm-tool: {message}");
            ExitCode::from(1)
        }
        Ok(other) => {
            eprintln!("phalanx-dlm-tool: unexpected answer {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("phalanx-dlm-tool: {e}");
            ExitCode::from(1)
        }
    }
}
