//! Where a node's admin socket is, and how the tools find it.

use std::path::{Path, PathBuf};

/// The admin socket of node `node_id` under `state_dir`
/// (`<state_dir>/admin-<node_id>.sock`), where `phalanxd` serves it.
pub fn socket_path(state_dir: &Path, node_id: u32) -> PathBuf {
    state_dir.join(format!("admin-{node_id}.sock"))
}

/// The tools' common options: `--socket PATH`, or `--config FILE [--node-id N]`
/// (the node is found as `phalanxd` finds it), or the default configuration
/// `/etc/phalanx/phalanx.conf`. Returns the socket path and the remaining
/// arguments.
pub fn socket_from_args(args: &[String]) -> Result<(PathBuf, Vec<String>), String> {
    let mut socket = None;
    let mut config = None;
    let mut node_id = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--config" => config = Some(value()?),
            "--node-id" => {
                let v = value()?;
                node_id = Some(v.parse::<u32>().map_err(|_| format!("--node-id: {v}"))?);
            }
            _ => rest.push(a.clone()),
        }
    }
    if let Some(s) = socket {
        return Ok((s, rest));
    }
    let path = config.unwrap_or_else(|| "/etc/phalanx/phalanx.conf".to_string());
    let loaded = crate::config::load(&path).map_err(|e| e.to_string())?;
    let cfg = loaded.config;
    let me = cfg.local_node(node_id).map_err(|e| e.to_string())?.node_id;
    Ok((socket_path(&cfg.state_dir, me), rest))
}
