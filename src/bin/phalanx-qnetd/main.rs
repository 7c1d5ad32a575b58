//! `phalanx-qnetd` — the third-site quorum arbitrator: gives a quorum-device vote to
//! at most one partition of each cluster it serves (algorithms ffsplit and lms, chosen
//! by the clusters' nodes), authenticated with each cluster's key.
//!
//! ```text
//! phalanx-qnetd -c NAME=KEYFILE [-c NAME2=KEYFILE2 ...] [-l ADDR] [--lease-ms MS]
//!               [--max-clients N]
//! ```
//!
//! `--help` tells every option; `--completions SHELL` prints a shell completion script.
//!
//! It keeps no state on disk: after a restart it refuses to grant anything that could
//! conflict with a grant of its previous life until one lease has passed or every node
//! of the cluster has reported what it holds (see `docs/quorum.md`).

#[path = "../common/cli.rs"]
mod cli;
mod server;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use phalanx_quorum::qdevice::proto::MAX_CLUSTER_NAME;
use phalanx_quorum::qdevice::server::ServerConfig;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// The quorum-device arbitrator: gives the vote of a third site to at most one
/// partition of each cluster it serves.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-qnetd",
    version,
    args_override_self = true,
    after_help = "Exit status: 0 after a clean stop, 1 when serving fails (e.g. the address \
                  cannot be bound), 2 on bad usage or an unreadable key file."
)]
struct Cli {
    /// Serve cluster NAME, authenticating its nodes with the key in KEYFILE (the file
    /// phalanx-keygen wrote for that cluster). Required; repeat for more clusters.
    #[arg(short = 'c', long = "cluster", value_name = "NAME=KEYFILE", value_parser = cluster_key)]
    clusters: Vec<ClusterKey>,
    /// Address to listen on (TCP).
    #[arg(
        short = 'l',
        long = "listen",
        value_name = "ADDR",
        default_value = "0.0.0.0:5403"
    )]
    listen: String,
    /// How long a granted vote lasts, in milliseconds (100 to 600000); the safety
    /// margin is a quarter of it.
    #[arg(long, value_name = "MS", default_value_t = 4000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    lease_ms: u64,
    /// Refuse connections beyond N at once (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_clients: usize,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

/// One `-c NAME=KEYFILE`: the cluster's name and its key, read at parse time so that
/// an unreadable file is reported like any other bad argument.
#[derive(Clone, Debug)]
struct ClusterKey {
    name: Vec<u8>,
    path: String,
    key: Vec<u8>,
    /// The file is readable by group or others: worth a warning, not a refusal.
    too_open: bool,
}

fn cluster_key(arg: &str) -> Result<ClusterKey, String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=KEYFILE, got {arg:?}"))?;
    if name.is_empty() || name.len() > MAX_CLUSTER_NAME {
        return Err(format!(
            "bad cluster name {name:?} (1 to {MAX_CLUSTER_NAME} bytes)"
        ));
    }
    let key = phalanx::crypto::read_key_file(path).map_err(|e| e.to_string())?;
    Ok(ClusterKey {
        name: name.as_bytes().to_vec(),
        path: path.to_string(),
        key: key.bytes().to_vec(),
        too_open: key.permissions_too_open(),
    })
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(2) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    if cli.clusters.is_empty() {
        // Checked here rather than as `required` so that `--completions` needs no -c.
        let _ = Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "at least one -c NAME=KEYFILE is required",
            )
            .print();
        return ExitCode::from(2);
    }
    let mut keys = BTreeMap::new();
    for c in cli.clusters {
        if c.too_open {
            eprintln!(
                "phalanx-qnetd: warning: {} is readable by group or others",
                c.path
            );
        }
        keys.insert(c.name, c.key);
    }
    let lease = Duration::from_millis(cli.lease_ms);
    let mut cfg = ServerConfig::new(keys);
    cfg.lease = lease;
    cfg.margin = lease / 4;
    cfg.max_clients = cli.max_clients;
    match server::run(&cli.listen, cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phalanx-qnetd: {e}");
            ExitCode::FAILURE
        }
    }
}
