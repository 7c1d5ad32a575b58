//! How a node uses its links: the addresses of links beyond link 0, priorities,
//! ping timing, multicast groups and the link mode.

use crate::config::LinkMode;
use crate::link::{LinkSpec, LinkTiming};
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Settings of one link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkParams {
    /// Passive mode sends on the up link with the highest priority
    /// (`knet_link_priority`). Default 0.
    pub priority: u32,
    /// Ping timing; `None`: [`LinkTiming::for_token`] of the token timeout.
    pub timing: Option<LinkTiming>,
    /// IP multicast (`transport: udp`): datagrams for several nodes go as one
    /// datagram to this group and port instead of one unicast per node. Tokens
    /// and other single-node datagrams stay unicast.
    pub multicast: Option<Multicast>,
}

/// An IP multicast group for one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multicast {
    /// Group address and port every node of the link receives on (`mcastaddr`,
    /// `mcastport`).
    pub group: SocketAddr,
    /// Hop limit (`ttl`). Default 1.
    pub ttl: u32,
}

/// A link beyond link 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraLink {
    /// Link number, 1..=7.
    pub number: u8,
    /// Every configured node's address on this link, this node's included.
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    /// Settings.
    pub params: LinkParams,
}

/// The links of a node: link 0 (whose addresses are `NodeOptions::addrs`) and up
/// to seven more. The default is link 0 alone, passive mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkOptions {
    /// How links are used.
    pub mode: LinkMode,
    /// Settings of link 0.
    pub link0: LinkParams,
    /// Further links.
    pub extra: Vec<ExtraLink>,
}

impl LinkOptions {
    /// Monitor specs for every link, in slot order (link 0 first).
    pub(crate) fn specs(&self, token: Duration) -> Vec<LinkSpec> {
        let spec = |number: u8, p: &LinkParams| LinkSpec {
            number,
            priority: p.priority,
            timing: p.timing.unwrap_or_else(|| LinkTiming::for_token(token)),
        };
        std::iter::once(spec(0, &self.link0))
            .chain(self.extra.iter().map(|l| spec(l.number, &l.params)))
            .collect()
    }
}
