//! What a [`Stack`](super::Stack) is built from, and why it can refuse.

use phalanx_cpg::CpgConfig;
use phalanx_quorum::QuorumConfig;
use phalanx_totem::{Config, NodeId};
use thiserror::Error;

/// The configuration of every core the Stack runs.
///
/// ```
/// use phalanx::stack::StackConfig;
/// use phalanx_cpg::CpgConfig;
/// use phalanx_quorum::QuorumConfig;
/// use phalanx_totem::Config;
///
/// let nodes = [1, 2, 3];
/// let cfg = StackConfig {
///     totem: Config::new(1, nodes.to_vec()),
///     cpg: CpgConfig::default(),
///     // `None`: no quorum service (service-2 messages are counted and dropped).
///     quorum: Some(QuorumConfig::new(1, &nodes)),
/// };
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
