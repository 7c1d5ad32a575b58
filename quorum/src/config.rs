//! Votequorum options and their validation (the forbidden combinations).

use crate::NodeId;
use crate::error::ConfigError;
use crate::limits::{MAX_NODES, MAX_VOTES};
use std::collections::BTreeSet;
use std::time::Duration;

/// Which partition wins an exact half split with `auto_tie_breaker`, or a tie at the
/// arbitrator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TieBreaker {
    /// The partition holding the lowest configured node id.
    #[default]
    Lowest,
    /// The partition holding the highest configured node id.
    Highest,
    /// The first listed node that is present wins, provided no earlier listed node
    /// was in the previous partition (it may now be on the other side).
    ///
    /// Entries after the first are Corosync's guess that an absent node is dead; a
    /// node that was away and comes back on the other side makes both halves quorate.
    /// A one-entry list is as safe as `Lowest`/`Highest` (see `docs/quorum.md`).
    Nodes(Vec<NodeId>),
}

/// The arbitrator's algorithm for a quorum device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// Fifty-fifty split: the single device vote goes to the larger half, ties broken.
    #[default]
    Ffsplit,
    /// Last man standing: the device carries N−1 votes, so any partition that holds
    /// it — even one node — is quorate.
    Lms,
}

/// A quorum device (the node side of a qnetd arbitrator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The arbitrator's algorithm.
    pub algorithm: Algorithm,
    /// Votes the device casts; `None` = 1 for ffsplit, (sum of node votes − 1) for lms.
    pub votes: Option<u32>,
}

/// One configured node and its votes (`nodelist.node.quorum_votes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeVotes {
    /// Node id (non-zero).
    pub node: NodeId,
    /// Votes (default 1 in the config layer).
    pub votes: u32,
}

/// Votequorum configuration of one node. Build it, then [`crate::Votequorum::new`]
/// validates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    /// This node.
    pub local: NodeId,
    /// The node list with votes. May be empty if `expected_votes` is set (nodes
    /// then count with one vote until they announce theirs).
    pub nodes: Vec<NodeVotes>,
    /// `expected_votes`; overrides the node-list sum (and then includes the device's
    /// votes). `None` = sum of node votes + device votes.
    pub expected_votes: Option<u32>,
    /// `two_node`: quorate with 1 vote of 2; implies `wait_for_all` unless set.
    pub two_node: bool,
    /// `wait_for_all`; `None` = same as `two_node`.
    pub wait_for_all: Option<bool>,
    /// `last_man_standing`.
    pub last_man_standing: bool,
    /// `last_man_standing_window` (default 10 s).
    pub last_man_standing_window: Duration,
    /// `auto_tie_breaker`.
    pub auto_tie_breaker: bool,
    /// `auto_tie_breaker_node`.
    pub auto_tie_breaker_node: TieBreaker,
    /// `allow_downscale` (implies `expected_votes_tracking`).
    pub allow_downscale: bool,
    /// `expected_votes_tracking`: the highest expected votes ever seen is persisted
    /// (the core emits [`crate::Event::PersistExpectedVotes`]) and never lowered.
    pub expected_votes_tracking: bool,
    /// The value read back from the tracking file at start, if any.
    pub tracked_expected_votes: Option<u32>,
    /// A quorum device, if any.
    pub device: Option<DeviceConfig>,
}

impl QuorumConfig {
    /// A configuration with every option off: `nodes` with one vote each.
    pub fn new(local: NodeId, nodes: &[NodeId]) -> Self {
        QuorumConfig {
            local,
            nodes: nodes
                .iter()
                .map(|&node| NodeVotes { node, votes: 1 })
                .collect(),
            expected_votes: None,
            two_node: false,
            wait_for_all: None,
            last_man_standing: false,
            last_man_standing_window: Duration::from_secs(10),
            auto_tie_breaker: false,
            auto_tie_breaker_node: TieBreaker::Lowest,
            allow_downscale: false,
            expected_votes_tracking: false,
            tracked_expected_votes: None,
            device: None,
        }
    }

    /// Effective `wait_for_all` (implied by `two_node`).
    pub fn wait_for_all(&self) -> bool {
        self.wait_for_all.unwrap_or(self.two_node)
    }

    /// Effective `expected_votes_tracking` (implied by `allow_downscale`).
    pub fn tracking(&self) -> bool {
        self.expected_votes_tracking || self.allow_downscale
    }

    /// Sum of configured node votes.
    pub fn node_votes(&self) -> u32 {
        // Saturating: callable before validation, on any input.
        self.nodes
            .iter()
            .fold(0u32, |a, n| a.saturating_add(n.votes))
    }

    /// The device's effective votes (0 without a device).
    pub fn device_votes(&self) -> u32 {
        match &self.device {
            None => 0,
            Some(d) => d.votes.unwrap_or(match d.algorithm {
                Algorithm::Ffsplit => 1,
                Algorithm::Lms => self.node_votes().saturating_sub(1).max(1),
            }),
        }
    }

    /// Expected votes at start: configured, or node votes + device votes; raised to
    /// the tracked value.
    pub fn initial_expected_votes(&self) -> u32 {
        let base = self
            .expected_votes
            .unwrap_or(self.node_votes().saturating_add(self.device_votes()));
        match self.tracked_expected_votes {
            Some(t) if self.tracking() => base.max(t),
            _ => base,
        }
    }

    /// Checks ranges and the forbidden combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.local == 0 {
            return Err(ConfigError::ZeroNodeId);
        }
        if self.nodes.len() > MAX_NODES {
            return Err(ConfigError::TooManyNodes(self.nodes.len()));
        }
        let mut seen = BTreeSet::new();
        for n in &self.nodes {
            if n.node == 0 {
                return Err(ConfigError::ZeroNodeId);
            }
            if !seen.insert(n.node) {
                return Err(ConfigError::DuplicateNode(n.node));
            }
            if n.votes > MAX_VOTES {
                return Err(ConfigError::VotesOutOfRange(format!(
                    "node {} has {} votes (max {MAX_VOTES})",
                    n.node, n.votes
                )));
            }
        }
        if !self.nodes.is_empty() && !seen.contains(&self.local) {
            return Err(ConfigError::LocalNotListed(self.local));
        }
        if self.nodes.is_empty() && self.expected_votes.is_none() {
            return Err(ConfigError::NoExpectedVotes);
        }
        if let Some(e) = self.expected_votes {
            if e == 0 || e > MAX_VOTES {
                return Err(ConfigError::VotesOutOfRange(format!("expected_votes {e}")));
            }
        }
        if self.initial_expected_votes() == 0 {
            return Err(ConfigError::VotesOutOfRange(
                "total expected votes is 0".into(),
            ));
        }
        if self.two_node {
            if self.device.is_some() {
                return Err(ConfigError::TwoNodeWithDevice);
            }
            if self.auto_tie_breaker {
                return Err(ConfigError::TwoNodeWithAutoTieBreaker);
            }
            let two = self.nodes.len() == 2 && self.nodes.iter().all(|n| n.votes == 1);
            let exp_ok = self.expected_votes.is_none_or(|e| e == 2);
            if !two || !exp_ok {
                return Err(ConfigError::TwoNodeNeedsTwoNodes);
            }
        }
        if let Some(d) = &self.device {
            if self.last_man_standing {
                return Err(ConfigError::LastManStandingWithDevice);
            }
            if self.auto_tie_breaker {
                return Err(ConfigError::AutoTieBreakerWithDevice);
            }
            let dv = self.device_votes();
            if dv == 0 || dv > MAX_VOTES {
                return Err(ConfigError::DeviceVotes(format!("{dv}")));
            }
            if d.algorithm == Algorithm::Ffsplit {
                if dv != 1 {
                    return Err(ConfigError::FfsplitVotes(format!("device votes {dv}")));
                }
                if let Some(n) = self.nodes.iter().find(|n| n.votes != 1) {
                    return Err(ConfigError::FfsplitVotes(format!(
                        "node {} has {} votes",
                        n.node, n.votes
                    )));
                }
            }
        }
        if self.last_man_standing {
            if self.last_man_standing_window.is_zero() {
                return Err(ConfigError::ZeroWindow);
            }
            if let Some(n) = self.nodes.iter().find(|n| n.votes != 1) {
                return Err(ConfigError::LastManStandingMultiVote {
                    node: n.node,
                    votes: n.votes,
                });
            }
        }
        if self.auto_tie_breaker {
            if self.nodes.is_empty() {
                // Without a node list "lowest"/"highest" would depend on who is seen.
                return Err(ConfigError::BadTieBreakerList(
                    "auto_tie_breaker needs a node list".into(),
                ));
            }
            let e = self.initial_expected_votes();
            if e % 2 == 1 && !self.wait_for_all() {
                return Err(ConfigError::AutoTieBreakerOddWithoutWaitForAll(e));
            }
            if let TieBreaker::Nodes(list) = &self.auto_tie_breaker_node {
                if list.is_empty() {
                    return Err(ConfigError::BadTieBreakerList("empty list".into()));
                }
                let mut uniq = BTreeSet::new();
                for id in list {
                    if *id == 0 || (!self.nodes.is_empty() && !seen.contains(id)) {
                        return Err(ConfigError::BadTieBreakerList(format!(
                            "node {id} is not configured"
                        )));
                    }
                    if !uniq.insert(*id) {
                        return Err(ConfigError::BadTieBreakerList(format!(
                            "node {id} listed twice"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
