//! Totem configuration and its documented defaults.

use crate::NodeId;
use crate::error::ConfigError;
use std::time::Duration;

/// Hard protocol limits (not configuration): what a decoder accepts.
pub mod limits {
    /// Most nodes a cluster may list (Corosync's PROCESSOR_COUNT_MAX).
    pub const MAX_NODES: usize = 384;
    /// Most retransmit requests a token carries.
    pub const MAX_RTR_ENTRIES: usize = 64;
    /// Largest datagram the codec accepts (UDP's limit).
    pub const MAX_DATAGRAM: usize = 65_507;
    /// Smallest frame payload that still fits a fragment header and some data.
    pub const MIN_FRAME: usize = 256;
}

/// Configuration of one totem node.
///
/// The defaults are chosen so that a crashed member is excluded and the new
/// configuration delivered well within one second on a LAN: token loss 300 ms +
/// consensus 250 ms + a few round trips, where Corosync's defaults (token 3 s plus
/// 650 ms per node beyond two, consensus 1.2 × token) take 6–8 s.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (non-zero, listed in `nodes`).
    pub node_id: NodeId,
    /// Every node id the cluster may contain. Datagrams from other ids are dropped.
    pub nodes: Vec<NodeId>,
    /// Token-loss timeout: a ring with no token for this long is abandoned.
    /// Default 300 ms.
    pub token_timeout: Duration,
    /// Re-send the last token if the ring shows no sign of it for this long.
    /// Default `token_timeout / 4.2` (≈ 71 ms), Corosync's rule.
    pub token_retransmit: Duration,
    /// Join re-send interval in GATHER. Default 30 ms.
    pub join_interval: Duration,
    /// Consensus timeout: members that have not agreed on the membership by then
    /// are declared failed. Default 250 ms; must exceed `join_interval`.
    pub consensus_timeout: Duration,
    /// How long the representative holds the token on an idle ring.
    /// Default `token_timeout / 5` (60 ms, below `token_retransmit` so the
    /// previous node does not re-send a held token); any node with work cancels
    /// the hold at once.
    pub hold: Duration,
    /// How long a node that has just sent everything it had may keep the token
    /// for more messages of its own (the *send hold*). Zero (the default) passes
    /// the token on at once, as Corosync does. With a hold, an application that
    /// sends again soon after its own message is delivered — a ping-pong, a
    /// request waiting for its own ordering — sends on the same visit instead of
    /// a whole rotation later; every other node's messages wait up to this long
    /// more per holding node and rotation. The hold ends early at `max_messages`
    /// frames in the visit. At most `token_timeout / 10`.
    pub send_hold: Duration,
    /// Rotations with no new message before the ring counts as idle. Default 30.
    pub idle_rotations: u32,
    /// Interval of the representative's merge-detect probe. Default 200 ms.
    pub merge_interval: Duration,
    /// Rotations during which this node holds the ring's aru back before it
    /// declares that it cannot receive and removes itself. Default 2500.
    pub fail_to_receive_rotations: u32,
    /// Frames one node may send per token visit. Default 64.
    pub max_messages: u32,
    /// Frames the whole ring may send per rotation. Default 256.
    pub window_size: u32,
    /// Largest frame payload in bytes (below the path MTU minus headers and
    /// crypto overhead). Default 1400.
    pub max_frame: usize,
    /// Largest application message; larger ones are fragmented across frames.
    /// Default 1 MiB.
    pub max_message_size: usize,
    /// Bytes of application messages that may wait to be sent. Default 8 MiB.
    /// A full queue answers [`crate::SendError::TryAgain`].
    pub send_queue_bytes: usize,
}

impl Config {
    /// A configuration with the documented defaults.
    pub fn new(node_id: NodeId, nodes: Vec<NodeId>) -> Self {
        let token_timeout = Duration::from_millis(300);
        Config {
            node_id,
            nodes,
            token_timeout,
            token_retransmit: token_timeout.mul_f64(1.0 / 4.2),
            join_interval: Duration::from_millis(30),
            consensus_timeout: Duration::from_millis(250),
            hold: token_timeout / 5,
            send_hold: Duration::ZERO,
            idle_rotations: 30,
            merge_interval: Duration::from_millis(200),
            fail_to_receive_rotations: 2500,
            max_messages: 64,
            window_size: 256,
            max_frame: 1400,
            max_message_size: 1 << 20,
            send_queue_bytes: 8 << 20,
        }
    }

    /// Scales every timer from a new token timeout, keeping the default ratios.
    pub fn with_token_timeout(mut self, token: Duration) -> Self {
        self.token_timeout = token;
        self.token_retransmit = token.mul_f64(1.0 / 4.2);
        self.hold = token / 5;
        self.consensus_timeout = token.mul_f64(250.0 / 300.0);
        self.join_interval = (token / 10).max(Duration::from_millis(1));
        self.merge_interval = token.mul_f64(200.0 / 300.0);
        self
    }

    /// Checks every field; the core refuses to start with an invalid config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_string(),
            })
        };
        if self.node_id == 0 {
            return bad("node_id", "0 is reserved");
        }
        if self.nodes.is_empty() || self.nodes.len() > limits::MAX_NODES {
            return bad("nodes", "must list 1..=384 nodes");
        }
        if self.nodes.contains(&0) {
            return bad("nodes", "node id 0 is reserved");
        }
        let mut sorted = self.nodes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.nodes.len() {
            return bad("nodes", "duplicate node id");
        }
        if !self.nodes.contains(&self.node_id) {
            return bad("node_id", "not listed in nodes");
        }
        let ms = Duration::from_millis(1);
        if self.token_timeout < 10 * ms {
            return bad("token_timeout", "must be at least 10 ms");
        }
        if self.token_retransmit.is_zero() || self.token_retransmit >= self.token_timeout {
            return bad(
                "token_retransmit",
                "must be non-zero and below token_timeout",
            );
        }
        if self.hold.is_zero() || self.hold >= self.token_timeout {
            return bad("hold", "must be non-zero and below token_timeout");
        }
        if self.send_hold > self.token_timeout / 10 {
            return bad("send_hold", "must be at most token_timeout / 10");
        }
        if self.join_interval.is_zero() {
            return bad("join_interval", "must be non-zero");
        }
        if self.consensus_timeout <= self.join_interval {
            return bad("consensus_timeout", "must exceed join_interval");
        }
        if self.merge_interval.is_zero() {
            return bad("merge_interval", "must be non-zero");
        }
        if self.idle_rotations == 0 || self.fail_to_receive_rotations == 0 {
            return bad("idle_rotations", "rotation counts must be non-zero");
        }
        if self.max_messages == 0 || self.window_size < self.max_messages {
            return bad(
                "window_size",
                "must be at least max_messages, which must be non-zero",
            );
        }
        if self.max_frame < limits::MIN_FRAME || self.max_frame > crate::wire::MAX_FRAME_PAYLOAD {
            return bad("max_frame", "must be between 256 and 65000 bytes");
        }
        if self.max_message_size == 0 || self.max_message_size > (1 << 30) {
            return bad("max_message_size", "must be between 1 byte and 1 GiB");
        }
        if self.send_queue_bytes < self.max_message_size {
            return bad(
                "send_queue_bytes",
                "must hold at least one maximum-size message",
            );
        }
        Ok(())
    }
}
