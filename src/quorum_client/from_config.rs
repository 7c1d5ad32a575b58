//! From the loaded cluster configuration (`quorum { ... }`, `nodelist`) to the quorum
//! cores' settings, so the Stack and the daemon build them the same way.

use crate::config::{ClusterConfig, TieBreakerNode};
use phalanx_quorum::qdevice::client::ClientConfig;
use phalanx_quorum::{
    Algorithm, ConfigError, DeviceConfig, NodeId, NodeVotes, QuorumConfig, TieBreaker,
};
use thiserror::Error;

use super::DriverConfig;

/// Why the quorum settings cannot be built. Nothing was created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FromConfigError {
    /// The votequorum options are invalid or a forbidden combination.
    #[error("quorum: {0}")]
    Quorum(#[from] ConfigError),
    /// `quorum.device.model` is empty.
    #[error(
        "quorum.device.model: {0:?}: a model is required (`net`, or another name for a device registering over libvotequorum)"
    )]
    Model(String),
    /// `quorum.device.net.algorithm` is not `ffsplit` or `lms`.
    #[error("quorum.device.net.algorithm: {0:?} (expected ffsplit or lms)")]
    Algorithm(String),
    /// `quorum.device.net.tie_breaker` is not `lowest`, `highest` or a node id.
    #[error("quorum.device.net.tie_breaker: {0:?} (expected lowest, highest or a node id)")]
    TieBreaker(String),
    /// The arbitrator needs `quorum.device.net.host` and `totem.cluster_name`.
    #[error("quorum device: {0}")]
    Missing(&'static str),
}

fn algorithm(s: &str) -> Result<Algorithm, FromConfigError> {
    match s {
        "ffsplit" => Ok(Algorithm::Ffsplit),
        "lms" => Ok(Algorithm::Lms),
        _ => Err(FromConfigError::Algorithm(s.into())),
    }
}

/// Votequorum settings of node `local`.
pub fn votequorum_config(
    c: &ClusterConfig,
    local: NodeId,
) -> Result<QuorumConfig, FromConfigError> {
    let q = &c.quorum;
    let device = match &q.device {
        None => None,
        Some(d) if d.model.is_empty() => return Err(FromConfigError::Model(d.model.clone())),
        Some(d) if d.model == "net" => {
            let alg = d.net.as_ref().map_or("ffsplit", |n| n.algorithm.as_str());
            Some(DeviceConfig {
                algorithm: algorithm(alg)?,
                votes: d.votes,
            })
        }
        // Another model: an external device program registers over
        // libvotequorum (phalanxd's Corosync IPC). Its votes are configured,
        // or N−1 as Corosync computes them when unset (the `lms` default).
        Some(d) => Some(DeviceConfig {
            algorithm: Algorithm::Lms,
            votes: d.votes,
        }),
    };
    let cfg = QuorumConfig {
        local,
        nodes: c
            .nodes
            .iter()
            .map(|n| NodeVotes {
                node: n.node_id,
                votes: n.quorum_votes,
            })
            .collect(),
        expected_votes: q.expected_votes,
        two_node: q.two_node,
        wait_for_all: q.wait_for_all,
        last_man_standing: q.last_man_standing,
        last_man_standing_window: q.last_man_standing_window,
        auto_tie_breaker: q.auto_tie_breaker,
        auto_tie_breaker_node: match &q.auto_tie_breaker_node {
            TieBreakerNode::Lowest => TieBreaker::Lowest,
            TieBreakerNode::Highest => TieBreaker::Highest,
            TieBreakerNode::Nodes(l) => TieBreaker::Nodes(l.clone()),
        },
        allow_downscale: q.allow_downscale,
        expected_votes_tracking: q.expected_votes_tracking,
        tracked_expected_votes: None,
        device,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The quorum-device driver settings of node `local`, if a `net` device is
/// configured (other models are external programs: no driver).
/// `key` is the cluster key (the same bytes totem uses).
pub fn qdevice_config(
    c: &ClusterConfig,
    local: NodeId,
    key: Vec<u8>,
) -> Result<Option<DriverConfig>, FromConfigError> {
    let Some(d) = &c.quorum.device else {
        return Ok(None);
    };
    if d.model != "net" {
        // Not Phalanx's arbitrator: the device is an external program.
        return Ok(None);
    }
    let net = d.net.clone().unwrap_or_default();
    if net.host.is_empty() {
        return Err(FromConfigError::Missing(
            "quorum.device.net.host is required",
        ));
    }
    if c.cluster_name.is_empty() {
        return Err(FromConfigError::Missing(
            "totem.cluster_name is required (the arbitrator serves clusters by name)",
        ));
    }
    let tie_breaker = match net.tie_breaker.as_str() {
        "lowest" => TieBreaker::Lowest,
        "highest" => TieBreaker::Highest,
        s => match s.parse::<NodeId>() {
            Ok(n) if n != 0 => TieBreaker::Nodes(vec![n]),
            _ => return Err(FromConfigError::TieBreaker(s.into())),
        },
    };
    let host = if net.host.contains(':') && !net.host.starts_with('[') {
        format!("[{}]", net.host)
    } else {
        net.host.clone()
    };
    let mut config_nodes: Vec<NodeId> = c.nodes.iter().map(|n| n.node_id).collect();
    config_nodes.sort_unstable();
    let client = ClientConfig {
        cluster: c.cluster_name.as_bytes().to_vec(),
        node: local,
        key,
        algorithm: algorithm(&net.algorithm)?,
        tie_breaker,
        config_nodes,
        // Driven by the Stack: release only once votequorum delivered the withdrawal.
        confirm_release: true,
    };
    let mut driver = DriverConfig::new(&format!("{host}:{}", net.port), client);
    if let Some(h) = d.heuristics.as_ref().filter(|h| h.mode != "off") {
        driver.heuristics = h.exec.iter().map(|(_, cmd)| cmd.clone()).collect();
        driver.heuristics_timeout = h.timeout;
    }
    Ok(Some(driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
totem {
    cluster_name: alpha
}
nodelist {
    node {
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
    node {
        nodeid: 2
        ring0_addr: 127.0.0.2
    }
    node {
        nodeid: 3
        ring0_addr: 127.0.0.3
    }
    node {
        nodeid: 4
        ring0_addr: 127.0.0.4
    }
}
quorum {
    provider: corosync_votequorum
    device {
        model: net
        net {
            host: ::1
            algorithm: lms
            tie_breaker: 3
        }
    }
}
"#;

    #[test]
    fn builds_both() {
        let l = crate::config::from_corosync_str(CONF, "t.conf").unwrap();
        let q = votequorum_config(&l.config, 2).unwrap();
        assert_eq!(q.initial_expected_votes(), 7);
        let d = qdevice_config(&l.config, 2, vec![1; 32]).unwrap().unwrap();
        assert_eq!(d.addr, "[::1]:5403");
        assert_eq!(d.client.algorithm, Algorithm::Lms);
        assert_eq!(d.client.tie_breaker, TieBreaker::Nodes(vec![3]));
        assert_eq!(d.client.config_nodes, vec![1, 2, 3, 4]);
    }

    #[test]
    fn another_model_is_an_external_device() {
        let conf = CONF.replace("model: net", "model: mydevice");
        let l = crate::config::from_corosync_str(&conf, "t.conf").unwrap();
        let q = votequorum_config(&l.config, 2).unwrap();
        // Votes unset: N−1, as Corosync computes them.
        assert_eq!(q.device_votes(), 3);
        assert_eq!(q.initial_expected_votes(), 7);
        // No built-in client: the program registers over libvotequorum.
        assert!(qdevice_config(&l.config, 2, vec![1; 32]).unwrap().is_none());
        assert!(matches!(
            crate::compat::qb::qdevice_mode_from_config(&l.config),
            crate::compat::qb::qdevice::QdeviceMode::External { .. }
        ));
        let conf = CONF.replace("model: net", "model: mydevice\n        votes: 1");
        let l = crate::config::from_corosync_str(&conf, "t.conf").unwrap();
        assert_eq!(votequorum_config(&l.config, 2).unwrap().device_votes(), 1);
    }

    #[test]
    fn heuristics_commands_reach_the_driver_unless_off() {
        let with = |mode: &str| {
            CONF.replace(
                "            tie_breaker: 3\n        }",
                &format!(
                    "            tie_breaker: 3\n        }}\n        heuristics {{\n            mode: {mode}\n            timeout: 1500\n            exec_ping: /bin/true\n            exec_check: test -e /etc/hostname\n        }}"
                ),
            )
        };
        let l = crate::config::from_corosync_str(&with("sync"), "t.conf").unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let d = qdevice_config(&l.config, 2, vec![1; 32]).unwrap().unwrap();
        assert_eq!(d.heuristics, vec!["/bin/true", "test -e /etc/hostname"]);
        assert_eq!(d.heuristics_timeout, std::time::Duration::from_millis(1500));
        let l = crate::config::from_corosync_str(&with("off"), "t.conf").unwrap();
        let d = qdevice_config(&l.config, 2, vec![1; 32]).unwrap().unwrap();
        assert!(d.heuristics.is_empty());
        let e = crate::config::from_corosync_str(&with("sometimes"), "t.conf").unwrap_err();
        assert!(
            e.to_string().contains("quorum.device.heuristics.mode"),
            "{e}"
        );
    }

    #[test]
    fn refuses_forbidden() {
        let text = CONF.replace(
            "provider: corosync_votequorum",
            "provider: corosync_votequorum\n    last_man_standing: 1",
        );
        let l = crate::config::from_corosync_str(&text, "t.conf").unwrap();
        assert_eq!(
            votequorum_config(&l.config, 1),
            Err(FromConfigError::Quorum(
                ConfigError::LastManStandingWithDevice
            ))
        );
        let text = CONF.replace("algorithm: lms", "algorithm: 2nodelms");
        let l = crate::config::from_corosync_str(&text, "t.conf").unwrap();
        assert!(matches!(
            votequorum_config(&l.config, 1),
            Err(FromConfigError::Algorithm(_))
        ));
    }
}
