//! Where a node's admin socket is, and how the tools find it.

use crate::config::ConfigError;
use std::path::{Path, PathBuf};

/// The admin socket of node `node_id` under `state_dir`
/// (`<state_dir>/admin-<node_id>.sock`), where `phalanxd` serves it.
pub fn socket_path(state_dir: &Path, node_id: u32) -> PathBuf {
    state_dir.join(format!("admin-{node_id}.sock"))
}

/// The configuration file the tools read when given neither a socket nor a file
/// (the one `phalanxd` reads by default).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/phalanx/phalanx.conf";

/// Where the tools find a node's admin socket: `socket` when given; otherwise the
/// socket of the local node of the configuration `config` (default
/// [`DEFAULT_CONFIG_PATH`]), the node found as `phalanxd` finds it, `node_id`
/// choosing it when the file lists several nodes of this machine.
///
/// # Errors
/// The configuration cannot be read or parsed, or names no local node.
pub fn locate_socket(
    socket: Option<&Path>,
    config: Option<&Path>,
    node_id: Option<u32>,
) -> Result<PathBuf, ConfigError> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    let path = config.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let cfg = crate::config::load(path)?.config;
    let me = cfg.local_node(node_id)?.node_id;
    Ok(socket_path(&cfg.state_dir, me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_wins_else_the_configured_nodes_socket() {
        let dir = std::env::temp_dir().join(format!("phalanx-locate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("phalanx.toml");
        let state = dir.join("state");
        std::fs::write(
            &conf,
            format!(
                "cluster_name = \"t\"\nstate_dir = {:?}\n\
                 [[nodes]]\nid = 4\naddrs = [\"127.0.0.1:5405\"]\n\
                 [[nodes]]\nid = 7\naddrs = [\"127.0.0.1:5415\"]\n",
                state.display().to_string()
            ),
        )
        .unwrap();
        let given = Path::new("given.sock");
        assert_eq!(
            locate_socket(Some(given), Some(&conf), Some(7)).unwrap(),
            given
        );
        assert_eq!(
            locate_socket(None, Some(&conf), Some(7)).unwrap(),
            state.join("admin-7.sock")
        );
        let unknown = locate_socket(None, Some(&conf), Some(9)).unwrap_err();
        assert!(unknown.to_string().contains("node id 9"), "{unknown}");
        assert!(locate_socket(None, Some(&dir.join("missing.toml")), None).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
