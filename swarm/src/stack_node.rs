//! What every simulated Stack node shares: the run's link plan (how many links,
//! which mode, crypto or not), synthetic addresses, and the Stack configuration.

use phalanx::config::LinkMode;
use phalanx::crypto::Cipher;
use phalanx::link::{LinkAddrs, LinkCrypto, LinkSpec, LinkTiming};
use phalanx::stack::StackConfig;
use phalanx_cpg::CpgConfig;
use phalanx_sim::{NodeId, Rng};
use phalanx_totem as totem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// How one run's nodes use links and crypto, drawn from the run seed (every node of
/// a run gets the same plan, as from one configuration file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkPlan {
    /// Links per node, 1 to 3.
    pub links: u8,
    /// How datagrams use them.
    pub mode: LinkMode,
    /// AES-256-GCM or ChaCha20-Poly1305 on every datagram, or none.
    pub cipher: Option<Cipher>,
}

impl LinkPlan {
    /// The plan of run `run_seed`: one link in half the runs, two or three in the
    /// rest; passive mode mostly; crypto in two thirds.
    pub fn draw(run_seed: u64) -> LinkPlan {
        let mut rng = Rng::new(run_seed ^ 0x6c69_6e6b_7321);
        let links = [1u8, 1, 2, 2, 3][rng.gen_range(0..5) as usize];
        let mode = match rng.gen_range(0..10) {
            0..=5 => LinkMode::Passive,
            6..=8 => LinkMode::Active,
            _ => LinkMode::Rr,
        };
        let cipher = match rng.gen_range(0..3) {
            0 => None,
            1 => Some(Cipher::Aes256Gcm),
            _ => Some(Cipher::ChaCha20Poly1305),
        };
        LinkPlan {
            links,
            mode,
            cipher,
        }
    }
}

/// Node `node`'s address on link `link`: `127.(100 + link).(node >> 8).(node & 255)`,
/// port 5405. Never bound — the simulator routes by node id — but real enough for
/// the link layer's address book.
pub fn sim_addr(node: NodeId, link: u8) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 100 + link, (node >> 8) as u8, node as u8);
    SocketAddr::new(IpAddr::V4(ip), 5405)
}

/// The `(node, link)` a [`sim_addr`] belongs to.
pub fn node_of_addr(addr: SocketAddr) -> Option<(NodeId, u8)> {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            (a == 127 && b >= 100).then(|| ((u32::from(c) << 8) | u32::from(d), b - 100))
        }
        IpAddr::V6(_) => None,
    }
}

/// The Stack configuration of node `totem.node_id` under `plan`: one address per
/// node and link, ping timing from the token timeout, crypto keyed from the run
/// seed with `boot_id` (fresh per incarnation, from the engine's node seed).
pub fn stack_config(
    totem: totem::Config,
    cpg: CpgConfig,
    plan: &LinkPlan,
    run_seed: u64,
    boot_id: u64,
) -> StackConfig {
    let timing = LinkTiming::for_token(totem.token_timeout);
    let links = (0..plan.links)
        .map(|link| LinkAddrs {
            spec: LinkSpec {
                number: link,
                // Link 0 preferred in passive mode.
                priority: u32::from(plan.links - link),
                timing,
            },
            addrs: totem
                .nodes
                .iter()
                .map(|&n| (n, sim_addr(n, link)))
                .collect(),
            group: None,
        })
        .collect();
    let crypto = plan.cipher.map(|cipher| {
        let mut rng = Rng::new(run_seed ^ 0x6b65_7973);
        LinkCrypto {
            key: (0..32).map(|_| rng.gen_range(0..256) as u8).collect(),
            cluster_name: "swarm".to_string(),
            cipher,
            boot_id,
        }
    });
    let mut cfg = StackConfig::new(totem, Default::default());
    cfg.cpg = cpg;
    cfg.links = links;
    cfg.link_mode = plan.mode;
    cfg.crypto = crypto;
    cfg
}

/// Totem's send hold in the Stack runs: off, unless
/// `PHALANX_SWARM_SEND_HOLD_US` names one for every run. (The bare totem swarm
/// draws it per seed; here the seeds pinned by the layers' tests keep the
/// histories they were found with.)
fn stack_send_hold() -> std::time::Duration {
    let us = std::env::var("PHALANX_SWARM_SEND_HOLD_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::time::Duration::from_micros(us)
}

/// What a Stack factory knows of its run: the run seed, and links fixed by a
/// scenario (drawn per run otherwise).
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct RunPlan {
    pub(crate) run_seed: u64,
    pub(crate) links: Option<LinkPlan>,
}

impl RunPlan {
    /// The run's links and crypto.
    pub(crate) fn links(&self) -> LinkPlan {
        self.links.unwrap_or_else(|| LinkPlan::draw(self.run_seed))
    }

    /// Node `id`'s Stack configuration: totem's parameters drawn from the run
    /// seed as for the plain totem nodes, CPG messages as large as totem's, links
    /// and crypto from the plan, `boot_id` fresh per incarnation.
    pub(crate) fn config(
        &self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        boot_id: u64,
    ) -> StackConfig {
        let mut totem = phalanx_sim::totem_node::config_for(id, all, self.run_seed);
        totem.send_hold = stack_send_hold();
        let cpg = CpgConfig {
            max_message_size: totem.max_message_size - phalanx_cpg::wire::MAX_HEADER,
            incarnation: u64::from(incarnation),
            ..CpgConfig::default()
        };
        stack_config(totem, cpg, &self.links(), self.run_seed, boot_id)
    }
}

/// What the simulator sees of a Stack node: its ring, members, and whether it is
/// quiescent (the same for every layer that runs a whole Stack).
pub fn status_of(stack: &phalanx::stack::Stack) -> phalanx_sim::node::NodeStatus {
    let totem = stack.totem();
    let r = totem.ring_id();
    phalanx_sim::node::NodeStatus {
        operational: totem.is_operational(),
        ring: Some((r.rep, r.seq)),
        members: totem.members().to_vec(),
        quiescent: stack.is_quiescent(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for node in [1, 2, 255, 256, 300] {
            for link in 0..3 {
                assert_eq!(node_of_addr(sim_addr(node, link)), Some((node, link)));
            }
        }
    }
}
