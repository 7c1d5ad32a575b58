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
        let key = cfg.load_key()?;
        let crypto = key.clone().map(|key| CryptoOptions {
            key,
            cluster_name: cfg.cluster_name.clone(),
            cipher: match cfg.crypto.cipher {
                Cipher::ChaCha20Poly1305 => crate::crypto::Cipher::ChaCha20Poly1305,
                _ => crate::crypto::Cipher::Aes256Gcm,
            },
        });
        let mut o = NodeOptions::new(totem, addrs);
        // `totem.max_message_size` (a Phalanx extension) is the largest
        // application message: CPG's limit follows it (the Stack raises totem's
        // to fit CPG's header), and CPG's queue holds at least one such message.
        if let Some(m) = cfg.totem.max_message_size {
            o.cpg.max_message_size = m;
            let one = m.saturating_add(phalanx_cpg::wire::MAX_HEADER);
            o.cpg.send_queue_bytes = o.cpg.send_queue_bytes.max(one);
        }
        o.links = links;
        o.crypto = crypto;
        o.state_dir = Some(cfg.state_dir.clone());
        o.cluster_name = cfg.cluster_name.clone();
        // Votequorum runs when the quorum section names a provider, as Corosync
        // loads votequorum only for `provider: corosync_votequorum`.
        if cfg.quorum.provider.is_some() {
            let qerr =
                |e: crate::quorum_client::FromConfigError| err("quorum".into(), e.to_string());
            o.quorum = Some(crate::quorum_client::votequorum_config(cfg, node_id).map_err(qerr)?);
            // Only Phalanx's own device client (`model: net`) needs the key.
            if cfg.quorum.device.as_ref().is_some_and(|d| d.model == "net") {
                let key = key.clone().ok_or_else(|| {
                    err(
                        "quorum.device".into(),
                        "a quorum device authenticates with the cluster key: set totem.keyfile (crypto on)"
                            .into(),
                    )
                })?;
                o.qdevice =
                    crate::quorum_client::qdevice_config(cfg, node_id, key).map_err(qerr)?;
            }
        }
        o.node_names = cfg
            .nodes
            .iter()
            .filter_map(|n| n.name.clone().map(|name| (n.node_id, name)))
            .collect();
        o.cib = cfg.cib;
        o.cib_schemas = cfg.cib_schemas.clone();
        o.cib_require_quorum = cfg.cib_require_quorum;
        // A `dlm` section turns the lock manager on (it costs nothing until a
        // lockspace is joined) and chooses the lock traffic's path.
        if let Some(t) = cfg.dlm_lock_traffic {
            o.dlm = Some(crate::stack::DlmSetup {
                direct: t == crate::config::DlmLockTraffic::Direct,
                ..Default::default()
            });
        }
        if cfg.fencing.enabled {
            if o.quorum.is_none() {
                return Err(cfg.source.error(
                    "fencing",
                    "fencing decides with quorum: set quorum.provider (corosync_votequorum)",
                ));
            }
            let draw = || {
                crate::crypto::random_boot_id()
                    .map_err(|e| err("fencing".into(), format!("no randomness: {e}")))
            };
            o.fencing = super::fencing::fencing_from_config(cfg, node_id, draw()?, draw()?)?;
            let policy = o
                .fencing
                .as_ref()
                .map(|f| f.setup.decision.no_quorum_policy);
            if let Some(policy) = policy {
                o.watchdog = super::watchdog::watchdog_from_config(&cfg.fencing, policy);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinkMode;
    use std::time::Duration;

    fn load(text: &str) -> ClusterConfig {
        crate::config::from_corosync_str(text, "corosync.conf")
            .unwrap()
            .config
    }

    #[test]
    fn links_priorities_and_ping_timing_map_to_node_options() {
        let cfg = load(
            "totem {
                cluster_name: c
                crypto_cipher: none
                crypto_hash: none
                link_mode: active
                token: 1000
                interface {
                    linknumber: 0
                    knet_link_priority: 2
                    knet_ping_interval: 100
                    knet_ping_timeout: 400
                    knet_pong_count: 3
                }
                interface {
                    linknumber: 1
                    knet_link_priority: 7
                    mcastport: 6000
                }
            }
            nodelist {
                node {
                    nodeid: 1
                    ring0_addr: 10.0.0.1
                    ring1_addr: fd00::1
                }
                node {
                    nodeid: 2
                    ring0_addr: 10.0.0.2
                    ring1_addr: fd00::2
                }
            }",
        );
        let o = NodeOptions::from_config(&cfg, 1).unwrap();
        assert_eq!(o.links.mode, LinkMode::Active);
        assert_eq!(o.addrs[&2], "10.0.0.2:5405".parse().unwrap());
        assert_eq!(o.links.link0.priority, 2);
        let t0 = o.links.link0.timing.unwrap();
        assert_eq!(
            (t0.ping_interval, t0.ping_timeout, t0.pong_count),
            (Duration::from_millis(100), Duration::from_millis(400), 3)
        );
        assert!(o.links.link0.multicast.is_none());
        assert_eq!(o.links.extra.len(), 1);
        let l1 = &o.links.extra[0];
        assert_eq!(l1.number, 1);
        assert_eq!(l1.params.priority, 7);
        assert_eq!(l1.addrs[&2], "[fd00::2]:6000".parse().unwrap());
        // Unset timing: the default rule on the effective token.
        let t1 = l1.params.timing.unwrap();
        assert_eq!(t1, LinkTiming::for_token(o.totem.token_timeout));
    }

    #[test]
    fn udp_transport_maps_to_a_multicast_group() {
        let text = |mcast: &str| {
            format!(
                "totem {{
                    cluster_name: mc
                    crypto_cipher: none
                    crypto_hash: none
                    transport: udp
                    interface {{
                        linknumber: 0
                        mcastport: 5500
                        {mcast}
                        ttl: 3
                    }}
                }}
                nodelist {{
                    node {{
                        nodeid: 1
                        ring0_addr: 10.0.0.1
                    }}
                    node {{
                        nodeid: 2
                        ring0_addr: 10.0.0.2
                    }}
                }}"
            )
        };
        let o = NodeOptions::from_config(&load(&text("mcastaddr: 239.1.2.3")), 2).unwrap();
        assert_eq!(
            o.links.link0.multicast,
            Some(Multicast {
                group: "239.1.2.3:5500".parse().unwrap(),
                ttl: 3
            })
        );
        // Without mcastaddr: derived from the cluster name.
        let o = NodeOptions::from_config(&load(&text("")), 2).unwrap();
        let g = o.links.link0.multicast.unwrap().group;
        assert_eq!(g.ip(), default_group("mc", false));
        assert!(g.ip().is_multicast());
        assert!(default_group("mc", true).is_multicast());
    }

    #[test]
    fn ping_timeout_not_above_interval_is_a_config_error() {
        let e = crate::config::from_corosync_str(
            "totem {
                interface {
                    linknumber: 0
                    knet_ping_interval: 200
                    knet_ping_timeout: 200
                }
            }
            nodelist {
                node {
                    nodeid: 1
                    ring0_addr: 10.0.0.1
                }
            }",
            "corosync.conf",
        )
        .unwrap_err();
        assert!(e.to_string().contains("knet_ping_timeout"), "{e}");
    }
}
