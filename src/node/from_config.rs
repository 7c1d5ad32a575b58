//! Node options from a loaded cluster configuration (corosync.conf or TOML).

use super::{CryptoOptions, NodeOptions};
use crate::config::{Cipher, ClusterConfig, ConfigError};
use std::collections::BTreeMap;

impl NodeOptions {
    /// Options for node `node_id` of `cfg`: totem timings, every node's link-0
    /// address (host names resolved now), the cluster key when crypto is on, and
    /// the state directory.
    ///
    /// ```
    /// let text = "
    /// totem {
    ///     cluster_name: c
    ///     crypto_cipher: none
    ///     crypto_hash: none
    /// }
    /// nodelist {
    ///     node {
    ///         nodeid: 1
    ///         ring0_addr: 127.0.0.1:5405
    ///     }
    ///     node {
    ///         nodeid: 2
    ///         ring0_addr: 127.0.0.1:5415
    ///     }
    /// }
    /// ";
    /// let cfg = phalanx::config::from_corosync_str(text, "corosync.conf").unwrap().config;
    /// let opts = phalanx::node::NodeOptions::from_config(&cfg, 2).unwrap();
    /// assert_eq!(opts.addrs[&1].port(), 5405);
    /// assert!(opts.crypto.is_none());
    /// ```
    pub fn from_config(cfg: &ClusterConfig, node_id: u32) -> Result<NodeOptions, ConfigError> {
        let file = cfg.source.file().to_string();
        let err = |key: String, msg: String| ConfigError::new(file.clone(), None, Some(key), msg);
        let totem = cfg.totem_config(node_id)?;
        let mut addrs = BTreeMap::new();
        for n in &cfg.nodes {
            let key = format!("nodelist.node[{}].ring0_addr", n.node_id);
            let a = n
                .addrs
                .first()
                .and_then(|a| a.as_ref())
                .ok_or_else(|| err(key.clone(), "no link 0 address".into()))?;
            let sa = a
                .resolve()
                .map_err(|e| err(key.clone(), format!("cannot resolve: {e}")))?
                .into_iter()
                .next()
                .ok_or_else(|| err(key, "resolves to no address".into()))?;
            addrs.insert(n.node_id, sa);
        }
        let crypto = cfg.load_key()?.map(|key| CryptoOptions {
            key,
            cluster_name: cfg.cluster_name.clone(),
            cipher: match cfg.crypto.cipher {
                Cipher::ChaCha20Poly1305 => phalanx_totem::crypto::Cipher::ChaCha20Poly1305,
                _ => phalanx_totem::crypto::Cipher::Aes256Gcm,
            },
        });
        let mut o = NodeOptions::new(totem, addrs);
        o.crypto = crypto;
        o.state_dir = Some(cfg.state_dir.clone());
        Ok(o)
    }
}
