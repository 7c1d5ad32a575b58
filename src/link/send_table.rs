//! A snapshot of how the link layer sends to each peer, for a thread other than
//! the driver's (the DLM's direct path sends its lock traffic from the
//! application thread that made it, one thread hop less per message).
//!
//! The driver's [`LinkLayer`](super::LinkLayer) stays the owner: it makes a
//! table with [`LinkLayer::send_table`](super::LinkLayer::send_table) when its
//! routes change ([`LinkLayer::route_generation`](super::LinkLayer::route_generation)).
//! A datagram sent through the table is sealed with the same key and counter as
//! the driver's ([`Sealer`]), so receivers cannot tell who sent it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use phalanx_totem::NodeId;

use super::LinkTransmit;
use crate::crypto::{OVERHEAD, Sealer};

/// Per peer, the (link slot, address) pairs a unicast datagram goes to, and the
/// link slots' sealers.
#[derive(Clone, Debug, Default)]
pub struct SendTable {
    pub(super) peers: BTreeMap<NodeId, Vec<(u8, SocketAddr)>>,
    /// Per link slot (`None`: crypto off).
    pub(super) sealers: Vec<Option<Arc<Sealer>>>,
}

impl SendTable {
    /// Whether `peer` has a route in this table.
    pub fn reaches(&self, peer: NodeId) -> bool {
        self.peers.get(&peer).is_some_and(|r| !r.is_empty())
    }

    /// The transmits of one datagram for `peer` (sealed on each link with
    /// crypto); `false` if the table has no route to `peer` or sealing failed
    /// (nothing is given to `out` then).
    pub fn send(&self, peer: NodeId, data: &[u8], out: &mut impl FnMut(LinkTransmit)) -> bool {
        let Some(routes) = self.peers.get(&peer).filter(|r| !r.is_empty()) else {
            return false;
        };
        let mut sealed = Vec::with_capacity(routes.len());
        for (slot, to) in routes {
            let bytes = match self.sealers.get(usize::from(*slot)) {
                Some(Some(s)) => {
                    let mut buf = Vec::with_capacity(data.len() + OVERHEAD);
                    if s.seal(data, &mut buf).is_err() {
                        return false;
                    }
                    Bytes::from(buf)
                }
                _ => Bytes::copy_from_slice(data),
            };
            sealed.push(LinkTransmit {
                link: *slot,
                to: *to,
                data: bytes,
            });
        }
        sealed.into_iter().for_each(&mut *out);
        true
    }
}
