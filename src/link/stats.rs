//! What the link monitor reports: state and counters per peer and link.

use phalanx_totem::{NodeId, Time};
use std::time::Duration;

/// Whether a link to a peer is usable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Not (yet, or no longer) answering pings in time. The initial state.
    #[default]
    Down,
    /// `pong_count` timely pongs seen and no pong late since.
    Up,
}

/// Counters of one link to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Totem datagrams sent (pings and pongs not included).
    pub tx_packets: u64,
    /// Bytes of those.
    pub tx_bytes: u64,
    /// Datagrams received (totem and link datagrams).
    pub rx_packets: u64,
    /// Bytes of those.
    pub rx_bytes: u64,
    /// Pings sent.
    pub pings_tx: u64,
    /// Pings received.
    pub pings_rx: u64,
    /// Pongs sent.
    pub pongs_tx: u64,
    /// Pongs received and counted.
    pub pongs_rx: u64,
    /// Pongs for no outstanding ping (duplicates, stale, forged without crypto).
    pub pongs_unexpected: u64,
    /// Malformed or misaddressed link datagrams.
    pub rx_invalid: u64,
    /// Pings or pongs not queued because the link send queue was full.
    pub tx_dropped: u64,
    /// Down → up transitions.
    pub ups: u64,
    /// Up → down transitions.
    pub downs: u64,
}

/// One (peer, link) as seen from this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLinkStatus {
    /// The peer.
    pub peer: NodeId,
    /// The link number.
    pub link: u8,
    /// Current state.
    pub state: LinkState,
    /// When it entered that state (driver time: since the node started).
    pub since: Time,
    /// Last measured round-trip time.
    pub rtt: Option<Duration>,
    /// Counters.
    pub stats: LinkStats,
}
