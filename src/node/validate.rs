//! Checking node options before anything is bound or started.

use super::{NodeError, NodeOptions};
use crate::crypto::DatagramCrypto;
use crate::link::LinkMonitor;
use crate::stack::StackConfigError;
use phalanx_totem::Time;

impl NodeOptions {
    /// Checks the options as [`Node::start`](super::Node::start) does before it
    /// binds a socket: totem's configuration, the links (numbers, ping timing,
    /// the same nodes on every link) and the cluster key and name.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.totem.validate().map_err(StackConfigError::from)?;
        for l in &self.links.extra {
            if l.addrs.keys().ne(self.addrs.keys()) {
                return Err(NodeError::LinkNodes { link: l.number });
            }
        }
        let me = self.totem.node_id;
        let specs = self.links.specs(self.totem.token_timeout);
        LinkMonitor::new(me, &[], specs, self.links.mode, Time::ZERO)?;
        if let Some(c) = &self.crypto {
            // The constructor the node keys each link with, so the check is
            // exactly the node's (key length, cluster name length per link). The
            // state is dropped unused: it never seals, so boot id 0 reuses no nonce.
            let numbers = std::iter::once(0).chain(self.links.extra.iter().map(|l| l.number));
            for number in numbers {
                let name = crate::link::link_cluster_name(&c.cluster_name, number);
                DatagramCrypto::new(&c.key, &name, me, &[], c.cipher, 0)?;
            }
        }
        Ok(())
    }
}
