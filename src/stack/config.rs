//! What a [`Stack`](super::Stack) is built from, and why it can refuse.

use crate::config::LinkMode;
use crate::link::{LinkAddrs, LinkCrypto, LinkLayerError, LinkSpec, LinkTiming};
use phalanx_cpg::CpgConfig;
use phalanx_quorum::QuorumConfig;
use phalanx_totem::{Config, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use thiserror::Error;

/// The configuration of every layer the Stack runs.
///
/// ```
/// use phalanx::stack::StackConfig;
/// use phalanx_quorum::QuorumConfig;
/// use phalanx_totem::Config;
/// use std::collections::BTreeMap;
///
/// let nodes = [1, 2, 3];
/// let addrs: BTreeMap<u32, std::net::SocketAddr> = nodes
///     .iter()
///     .map(|&n| (n, format!("127.0.0.1:{}", 5400 + n).parse().unwrap()))
///     .collect();
/// // One link, no crypto, CPG defaults, no quorum ...
/// let mut cfg = StackConfig::new(Config::new(1, nodes.to_vec()), addrs);
/// // ... plus votequorum (service-2 messages are counted and dropped without it).
/// cfg.quorum = Some(QuorumConfig::new(1, &nodes));
/// # let _ = cfg;
/// ```
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Totem. Its `max_message_size` and `send_queue_bytes` are raised, if needed,
    /// to hold a maximal CPG message (see [`Stack::new`](super::Stack::new)).
    pub totem: Config,
    /// Closed process groups. `wire_prefix` is overwritten with
    /// [`ServiceId::Cpg`](super::ServiceId::Cpg); `incarnation` must differ on every
    /// start of the node.
    pub cpg: CpgConfig,
    /// Votequorum, or `None` to run without quorum. Its `local` must be totem's
    /// `node_id`.
    pub quorum: Option<QuorumConfig>,
    /// The links, link 0 first (1 to 8); each lists every node of `totem.nodes`.
    pub links: Vec<LinkAddrs>,
    /// How datagrams use the links (passive, active, rr).
    pub link_mode: LinkMode,
    /// The cluster key (`None`: datagrams in the clear, for benchmarks and tests).
    pub crypto: Option<LinkCrypto>,
    /// Fencing (the fencer and the who-fences decision); needs quorum.
    pub fencing: Option<super::FencingSetup>,
    /// The CIB replication service (every node of the cluster or none).
    pub cib: Option<super::CibSetup>,
    /// The distributed lock manager (lockspaces over CPG groups; every node that
    /// joins a lockspace runs it).
    pub dlm: Option<super::DlmSetup>,
}

impl StackConfig {
    /// Totem's configuration over one link with the given node addresses (every
    /// node of `totem.nodes`), ping timing derived from the token timeout, CPG
    /// defaults, no quorum, no crypto.
    pub fn new(totem: Config, addrs: BTreeMap<NodeId, SocketAddr>) -> Self {
        let timing = LinkTiming::for_token(totem.token_timeout);
        StackConfig {
            totem,
            cpg: CpgConfig::default(),
            quorum: None,
            links: vec![LinkAddrs {
                spec: LinkSpec {
                    number: 0,
                    priority: 0,
                    timing,
                },
                addrs,
                group: None,
            }],
            link_mode: LinkMode::default(),
            crypto: None,
            fencing: None,
            cib: None,
            dlm: None,
        }
    }
}

/// A [`StackConfig`] that cannot run. Nothing was created; fix the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StackConfigError {
    /// Totem refused its configuration.
    #[error("totem: {0}")]
    Totem(#[from] phalanx_totem::ConfigError),
    /// Votequorum refused its configuration.
    #[error("quorum: {0}")]
    Quorum(#[from] phalanx_quorum::ConfigError),
    /// The link layer refused its configuration.
    #[error("links: {0}")]
    Links(#[from] LinkLayerError),
    /// Link 0 does not list exactly totem's nodes.
    #[error("link 0 must list an address for every node of totem's node list, and no other")]
    LinkNodesDiffer,
    /// Fencing decides with quorum: it cannot run without it.
    #[error("fencing needs quorum to be configured")]
    FencingNeedsQuorum,
    /// The CIB was asked to take writes only with quorum, and quorum is not
    /// configured.
    #[error("the CIB's require_quorum needs quorum to be configured")]
    CibQuorumNeedsQuorum,
    /// A fencing device or level was refused.
    #[error("fencing: {0}")]
    Fencing(#[from] phalanx_fence::core::FencerError),
    /// The DLM configuration is invalid.
    #[error("dlm: {0}")]
    Dlm(#[from] phalanx_dlm::ConfigError),
    /// The quorum configuration is for another node than totem's.
    #[error("quorum local node {quorum} is not totem node {totem}")]
    QuorumNodeMismatch {
        /// Totem's `node_id`.
        totem: NodeId,
        /// The quorum configuration's `local`.
        quorum: NodeId,
    },
}

/// A quorum request the Stack could not take. No state changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuorumRequestError {
    /// The Stack runs without quorum (`StackConfig::quorum` was `None`). Retrying
    /// will not help.
    #[error("quorum is not configured")]
    NotConfigured,
    /// The votequorum core refused it (see each variant for whether to retry).
    #[error(transparent)]
    Quorum(#[from] phalanx_quorum::QuorumError),
}
