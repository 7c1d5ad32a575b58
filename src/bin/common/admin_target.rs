//! The options by which `phalanx-cpgtool` and `phalanx-quorumtool` find the node to
//! ask: its admin socket directly, or the configuration the node runs from.

use clap::Args;
use phalanx::admin::locate_socket;
use std::path::PathBuf;

/// Which node's admin socket to talk to.
#[derive(Args, Debug)]
pub struct AdminTarget {
    /// The node's admin socket; when given, no configuration file is read.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Configuration file of the node; its socket is `<state_dir>/admin-<node id>.sock`
    /// [default: /etc/phalanx/phalanx.conf].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which node of the configuration is the local one, as `phalanxd --node-id`
    /// (default: the file's local node, or the one node with an address of this host).
    #[arg(long, value_name = "N")]
    pub node_id: Option<u32>,
}

impl AdminTarget {
    /// The socket path, reading the configuration when no `--socket` was given.
    pub fn socket_path(&self) -> Result<PathBuf, String> {
        locate_socket(self.socket.as_deref(), self.config.as_deref(), self.node_id)
            .map_err(|e| e.to_string())
    }
}
