//! The votequorum core's requests (answered at once, applied by every member when
//! delivered), outputs and queries.

use super::{ClusterInfo, Event, NodeStatus, Stats, Votequorum, status};
use crate::NodeId;
use crate::config::QuorumConfig;
use crate::error::QuorumError;
use crate::limits::{MAX_SEND_QUEUE, MAX_VOTES};
use crate::wire::{self, Message, Reconfigure};
use phalanx_totem::RingId;

impl Votequorum {
    // ----- requests (answered at once; applied when delivered) -----------------

    fn request(&mut self, m: Message) -> Result<(), QuorumError> {
        if self.ring.is_none() {
            return Err(QuorumError::NotReady);
        }
        if self.send.len() >= MAX_SEND_QUEUE {
            return Err(QuorumError::TryAgain);
        }
        self.send.push_back(wire::encode(&m));
        Ok(())
    }

    /// Sets the cluster's expected votes (may lower quorum). Replicated: applied by
    /// every member when delivered.
    pub fn set_expected_votes(&mut self, expected: u32) -> Result<(), QuorumError> {
        let total = self.decision().total();
        if expected == 0 || expected > MAX_VOTES || expected < total {
            return Err(QuorumError::InvalidExpectedVotes {
                requested: expected,
                total,
            });
        }
        self.request(Message::Reconfigure(Reconfigure::SetExpected(expected)))
    }

    /// Sets a node's votes. Replicated.
    pub fn set_votes(&mut self, node: NodeId, votes: u32) -> Result<(), QuorumError> {
        if votes > MAX_VOTES || (self.cfg.last_man_standing && votes > 1) {
            return Err(QuorumError::InvalidVotes(votes));
        }
        if !self.nodes.contains_key(&node) {
            return Err(QuorumError::UnknownNode(node));
        }
        self.request(Message::Reconfigure(Reconfigure::SetVotes { node, votes }))
    }

    /// Stops waiting for all nodes (`wait_for_all`). Replicated.
    pub fn cancel_wait_for_all(&mut self) -> Result<(), QuorumError> {
        self.request(Message::Reconfigure(Reconfigure::CancelWaitForAll))
    }

    /// The local quorum device casts (or withdraws) its vote for `ring` — the ring the
    /// arbitrator granted it for. Replicated; ignored at delivery if the ring changed
    /// meanwhile (a new ring starts with no device vote).
    pub fn set_device_vote(&mut self, ring: RingId, cast: bool) -> Result<(), QuorumError> {
        if self.cfg.device.is_none() {
            return Err(QuorumError::NoDevice);
        }
        if self.ring.is_none() {
            return Err(QuorumError::NotReady);
        }
        if self.send.len() >= MAX_SEND_QUEUE {
            return Err(QuorumError::TryAgain);
        }
        self.local_device_cast = cast;
        self.send
            .push_back(wire::encode(&Message::DeviceVote { ring, cast }));
        Ok(())
    }

    /// Announces a clean leave (with `allow_downscale`, the others lower their
    /// expected votes by this node's votes when it is gone).
    pub fn leave(&mut self) -> Result<(), QuorumError> {
        self.request(Message::Leaving)?;
        self.leaving = true;
        Ok(())
    }

    // ----- outputs --------------------------------------------------------------

    /// The next payload to multicast (agreed order) through totem.
    pub fn poll_send(&mut self) -> Option<Vec<u8>> {
        self.send.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- queries --------------------------------------------------------------

    /// Quorate or not.
    pub fn is_quorate(&self) -> bool {
        self.quorate
    }

    /// The ring the verdict belongs to and whether it is quorate once every
    /// member was heard there (`synced && quorate`): what [`Self::info`] says of
    /// it, without computing the whole summary (the Stack asks after every input).
    pub fn ring_verdict(&self) -> (Option<RingId>, bool) {
        (self.ring, self.synced && self.quorate)
    }

    /// The partition's state.
    pub fn info(&self) -> ClusterInfo {
        let d = self.decision();
        ClusterInfo {
            local: self.cfg.local,
            ring: self.ring,
            members: self.members.iter().copied().collect(),
            synced: self.synced,
            quorate: self.quorate,
            quorum: self.quorum,
            expected_votes: self.expected,
            total_votes: d.total(),
            device_votes: self.cfg.device_votes(),
            device_cast: !self.device_cast.is_empty(),
            two_node: self.cfg.two_node,
            wait_for_all: self.cfg.wait_for_all(),
            wfa_waiting: self.wfa_waiting,
            last_man_standing: self.cfg.last_man_standing,
            auto_tie_breaker: self.cfg.auto_tie_breaker,
            allow_downscale: self.cfg.allow_downscale,
        }
    }

    /// One node's status (configured or ever seen).
    pub fn node(&self, node: NodeId) -> Option<NodeStatus> {
        self.nodes.get(&node).map(|r| status(node, r))
    }

    /// Every known node, ascending.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.nodes.iter().map(|(n, r)| status(*n, r)).collect()
    }

    /// Whether the local device's last request was to cast.
    pub fn local_device_cast(&self) -> bool {
        self.local_device_cast
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &QuorumConfig {
        &self.cfg
    }
}
