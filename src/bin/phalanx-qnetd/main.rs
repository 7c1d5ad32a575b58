//! `phalanx-qnetd` — the third-site quorum arbitrator: gives a quorum-device vote to
//! at most one partition of each cluster it serves (algorithms ffsplit and lms, chosen
//! by the clusters' nodes), authenticated with each cluster's key.
//!
//! ```text
//! phalanx-qnetd -c NAME=KEYFILE [-c NAME2=KEYFILE2 ...] [-l ADDR] [--lease-ms MS]
//!               [--max-clients N]
//! ```
//!
//! It keeps no state on disk: after a restart it refuses to grant anything that could
//! conflict with a grant of its previous life until one lease has passed or every node
//! of the cluster has reported what it holds (see `docs/quorum.md`).

mod server;

use phalanx_quorum::qdevice::server::ServerConfig;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: phalanx-qnetd -c NAME=KEYFILE [-c ...] [-l ADDR] [--lease-ms MS] [--max-clients N]\n\
    \n  -c, --cluster NAME=KEYFILE  serve cluster NAME, authenticated with KEYFILE (repeatable)\
    \n  -l, --listen ADDR           listen address (default 0.0.0.0:5403)\
    \n      --lease-ms MS           vote lease in milliseconds (default 4000)\
    \n      --max-clients N         refuse connections beyond N (default 0 = unlimited)\
    \n  -h, --help                  print this help\n";

fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok(Some((addr, cfg))) => match server::run(&addr, cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("phalanx-qnetd: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("phalanx-qnetd: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: Vec<String>) -> Result<Option<(String, ServerConfig)>, String> {
    let mut addr = "0.0.0.0:5403".to_string();
    let mut keys = BTreeMap::new();
    let mut lease = Duration::from_secs(4);
    let mut max_clients = 0usize;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "-l" | "--listen" => addr = val(&a)?,
            "-c" | "--cluster" => {
                let v = val(&a)?;
                let (name, path) = v
                    .split_once('=')
                    .ok_or_else(|| format!("{a} wants NAME=KEYFILE, got {v:?}"))?;
                if name.is_empty() || name.len() > phalanx_quorum::qdevice::proto::MAX_CLUSTER_NAME
                {
                    return Err(format!("bad cluster name {name:?}"));
                }
                let key = phalanx::crypto::read_key_file(path).map_err(|e| e.to_string())?;
                if key.permissions_too_open() {
                    eprintln!("phalanx-qnetd: warning: {path} is readable by group or others");
                }
                keys.insert(name.as_bytes().to_vec(), key.bytes().to_vec());
            }
            "--lease-ms" => {
                let ms: u64 = val(&a)?.parse().map_err(|e| format!("--lease-ms: {e}"))?;
                if !(100..=600_000).contains(&ms) {
                    return Err("--lease-ms must be between 100 and 600000".into());
                }
                lease = Duration::from_millis(ms);
            }
            "--max-clients" => {
                max_clients = val(&a)?
                    .parse()
                    .map_err(|e| format!("--max-clients: {e}"))?;
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if keys.is_empty() {
        return Err("at least one -c NAME=KEYFILE is required".into());
    }
    let mut cfg = ServerConfig::new(keys);
    cfg.lease = lease;
    cfg.margin = lease / 4;
    cfg.max_clients = max_clients;
    Ok(Some((addr, cfg)))
}
