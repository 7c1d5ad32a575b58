//! What a [`NodeHandle`](super::NodeHandle) reads from the driver's last
//! publication: the installed ring and the counters.

use super::DriverStats;
use phalanx_totem::{NodeId, RingId, Stats};

/// The installed ring and its members, from
/// [`NodeHandle::membership`](super::NodeHandle::membership).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Membership {
    /// The ring.
    pub ring: RingId,
    /// Its members, ascending.
    pub members: Vec<NodeId>,
}

/// Protocol and driver counters, from
/// [`NodeHandle::stats`](super::NodeHandle::stats).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct NodeStats {
    /// Totem's counters.
    pub totem: Stats,
    /// The driver's: sockets, crypto, links, scheduling.
    pub driver: DriverStats,
    /// The fencing service's (zero without fencing).
    pub fence: crate::stack::FenceServiceStats,
}

impl Membership {
    pub(crate) fn new(ring: RingId, members: Vec<NodeId>) -> Self {
        Membership { ring, members }
    }
}

impl NodeStats {
    pub(crate) fn new(
        totem: Stats,
        driver: DriverStats,
        fence: crate::stack::FenceServiceStats,
    ) -> Self {
        NodeStats {
            totem,
            driver,
            fence,
        }
    }
}
