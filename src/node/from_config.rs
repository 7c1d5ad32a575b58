//! Node options from a loaded cluster configuration (corosync.conf or TOML).

use super::link_options::{ExtraLink, LinkOptions, LinkParams, Multicast};
use super::{CryptoOptions, NodeOptions};
use crate::config::{Cipher, ClusterConfig, ConfigError, LinkConfig, Transport};
use crate::link::LinkTiming;
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

impl NodeOptions {
    /// Options for node `node_id` of `cfg`: totem timings, every node's address on
    /// every link (host names resolved now), link mode, priorities and ping
    /// timing, the multicast group with `transport: udp`, the cluster key when
    /// crypto is on, and the state directory.
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
        let nlinks = cfg.nodes.first().map_or(1, |n| n.addrs.len().max(1));
        let mut per_link: Vec<BTreeMap<NodeId, SocketAddr>> = vec![BTreeMap::new(); nlinks];
        for n in &cfg.nodes {
            for (l, map) in per_link.iter_mut().enumerate() {
                let key = format!("nodelist.node[{}].ring{l}_addr", n.node_id);
                let Some(a) = n.addrs.get(l).and_then(|a| a.as_ref()) else {
                    if l == 0 {
                        return Err(err(key, "no link 0 address".into()));
                    }
                    continue;
                };
                let sa = a
                    .resolve()
                    .map_err(|e| err(key.clone(), format!("cannot resolve: {e}")))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| err(key, "resolves to no address".into()))?;
                map.insert(n.node_id, sa);
            }
        }
        let token = totem.token_timeout;
        let params = |l: usize| {
            let lc = cfg
                .links
                .iter()
                .find(|c| usize::from(c.link_number) == l)
                .cloned()
                .unwrap_or_else(|| LinkConfig::new(l as u8));
            LinkParams {
                priority: lc.priority,
                timing: Some(LinkTiming::with(
                    token,
                    lc.ping_interval,
                    lc.ping_timeout,
                    lc.pong_count,
                )),
                multicast: None,
            }
        };
        let mut links = LinkOptions {
            mode: cfg.link_mode,
            link0: params(0),
            extra: Vec::new(),
        };
        if let Transport::Udp { mcast_addr, ttl } = &cfg.transport {
            let port = cfg
                .links
                .iter()
                .find(|c| c.link_number == 0)
                .map_or(crate::config::DEFAULT_PORT, |c| c.port);
            let v6 = per_link[0].values().next().is_some_and(|a| a.is_ipv6());
            let group = mcast_addr.unwrap_or_else(|| default_group(&cfg.cluster_name, v6));
            links.link0.multicast = Some(Multicast {
                group: SocketAddr::new(group, port),
                ttl: u32::from(*ttl),
            });
        }
        let mut maps = per_link.into_iter();
        let addrs = maps.next().unwrap_or_default();
        for (l, map) in maps.enumerate().map(|(i, m)| (i + 1, m)) {
            if map.is_empty() {
                continue;
            }
            links.extra.push(ExtraLink {
                number: l as u8,
                addrs: map,
                params: params(l),
            });
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
        o.links = links;
        o.crypto = crypto;
        o.state_dir = Some(cfg.state_dir.clone());
        Ok(o)
    }
}

/// The multicast group when `mcastaddr` is not given: derived from the cluster name
/// (as Corosync 2 does), `239.192.h1.h2` or `ff15::h1h2`, with `h` the CRC32C of the
/// name — nodes of one cluster agree, clusters with different names mostly differ.
pub(crate) fn default_group(cluster: &str, v6: bool) -> IpAddr {
    let h = crc32c::crc32c(cluster.as_bytes());
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, h as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(239, 192, (h >> 8) as u8, h as u8))
    }
}
