//! An in-memory driver for several cores: a lossless, zero-latency network and a
//! virtual clock that jumps to the next deadline when nothing is in flight.
//!
//! It is the smallest real driver of the core — used by the core benchmark, the
//! bad-input tests and the examples. The fault-injecting simulator lives in
//! `phalanx-sim`.
//!
//! ```
//! use phalanx_totem::testing::MemNet;
//! use phalanx_totem::{Config, Guarantee};
//! let mut net = MemNet::new(3, |id, ids| Config::new(id, ids));
//! assert!(net.run_until_formed(1_000_000));
//! net.nodes[0].mcast(net.now, Guarantee::Agreed, b"x").unwrap();
//! net.run_until(1_000_000, |n| n.delivered.iter().all(|d| *d == 1));
//! ```

use crate::srp::{Destination, Event, Totem};
use crate::{Config, NodeId, Time};
use phalanx_logsys::Logger;
use std::collections::VecDeque;

/// N cores joined by a perfect network. A clone is an independent copy (a
/// snapshot of the whole network, datagrams in flight included).
#[derive(Clone)]
pub struct MemNet {
    /// The cores, node ids 1..=N in order.
    pub nodes: Vec<Totem>,
    /// Current virtual time.
    pub now: Time,
    /// Messages delivered per node (counted, payload dropped unless `keep`).
    pub delivered: Vec<u64>,
    /// Payload bytes delivered per node.
    pub delivered_bytes: Vec<u64>,
    /// Every event per node, when `keep_events` is set.
    pub events: Vec<Vec<Event>>,
    /// Keep events (and payloads) rather than only counting deliveries.
    pub keep_events: bool,
    /// Datagrams in flight: (destination index, bytes).
    wire: VecDeque<(usize, Vec<u8>)>,
    /// Every datagram that crossed the network, when `capture` is set.
    pub captured: Vec<Vec<u8>>,
    /// Capture datagrams (for mutation tests).
    pub capture: bool,
    /// Crashed nodes: they neither receive, send nor run timers.
    pub down: Vec<bool>,
}

impl MemNet {
    /// Creates `n` nodes with ids 1..=n; `cfg(id, all_ids)` makes each config.
    pub fn new(n: usize, cfg: impl Fn(NodeId, Vec<NodeId>) -> Config) -> Self {
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                Totem::new(cfg(id, ids.clone()), None, Time::ZERO, Logger::discard())
                    .expect("valid config")
            })
            .collect();
        MemNet {
            nodes,
            now: Time::ZERO,
            delivered: vec![0; n],
            delivered_bytes: vec![0; n],
            events: vec![Vec::new(); n],
            keep_events: false,
            wire: VecDeque::new(),
            captured: Vec::new(),
            capture: false,
            down: vec![false; n],
        }
    }

    /// Crashes node `i` (index, not id): it stops at once, and what was in flight
    /// to it is lost.
    pub fn crash(&mut self, i: usize) {
        self.down[i] = true;
        self.wire.retain(|(j, _)| *j != i);
    }

    /// Moves outputs of node `i` onto the wire and into the counters.
    pub fn drain(&mut self, i: usize) {
        if self.down[i] {
            return;
        }
        let n = self.nodes.len();
        while let Some(t) = self.nodes[i].poll_transmit() {
            if self.capture {
                self.captured.push(t.data.clone());
            }
            match &t.dest {
                Destination::Node(d) => self.wire.push_back((*d as usize - 1, t.data)),
                Destination::Members(m) => {
                    for d in m.iter() {
                        self.wire.push_back((*d as usize - 1, t.data.clone()));
                    }
                }
                Destination::All => {
                    for j in (0..n).filter(|j| *j != i) {
                        self.wire.push_back((j, t.data.clone()));
                    }
                }
            }
        }
        while let Some(e) = self.nodes[i].poll_event() {
            if let Event::Deliver(d) = &e {
                self.delivered[i] += 1;
                self.delivered_bytes[i] += d.data.len() as u64;
            }
            if self.keep_events {
                self.events[i].push(e);
            }
        }
    }

    /// One step: deliver one datagram if any is in flight, else jump to the next
    /// deadline and run it. Returns false if nothing at all can happen.
    pub fn step(&mut self) -> bool {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
        if let Some((j, data)) = self.wire.pop_front() {
            if self.down[j] {
                return true;
            }
            self.nodes[j].handle_datagram(self.now, &data);
            self.drain(j);
            return true;
        }
        let Some(next) = (0..self.nodes.len())
            .filter(|i| !self.down[*i])
            .filter_map(|i| self.nodes[i].poll_timeout())
            .min()
        else {
            return false;
        };
        self.now = self.now.max(next);
        for i in 0..self.nodes.len() {
            if !self.down[i] && self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
            }
        }
        true
    }

    /// Steps until `done` holds or `max_steps` pass; returns whether it held.
    pub fn run_until(&mut self, max_steps: u64, mut done: impl FnMut(&MemNet) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Steps until every node is operational on one ring holding all nodes.
    pub fn run_until_formed(&mut self, max_steps: u64) -> bool {
        self.run_until(max_steps, |n| n.is_formed())
    }

    /// Whether every node is operational on one ring holding all nodes.
    pub fn is_formed(&self) -> bool {
        let r = self.nodes[0].ring_id();
        self.nodes.iter().all(|x| {
            x.is_operational() && x.ring_id() == r && x.members().len() == self.nodes.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Guarantee;

    /// A clone is a snapshot: it runs on from the same point exactly as the original
    /// does, and running it leaves the original untouched (what the `totem_node`
    /// fuzz target relies on when it clones one formed ring for every input).
    #[test]
    fn a_clone_runs_on_like_the_original_and_apart_from_it() {
        let mut net = MemNet::new(3, Config::new);
        assert!(net.run_until_formed(100_000));
        let (now, ring) = (net.now, net.nodes[0].ring_id());
        let mut a = net.clone();
        let mut b = net.clone();
        for n in [&mut a, &mut b] {
            n.capture = true;
            n.nodes[1]
                .mcast(n.now, Guarantee::Agreed, b"snapshot")
                .unwrap();
            assert!(n.run_until(100_000, |n| n.delivered.iter().all(|d| *d == 1)));
        }
        assert_eq!(a.captured, b.captured);
        assert!(!a.captured.is_empty());
        assert_eq!(a.now, b.now);
        // The original did not move: no time passed, nothing delivered or sent.
        assert_eq!((net.now, net.nodes[0].ring_id()), (now, ring));
        assert_eq!(net.delivered, vec![0; 3]);
        assert!(net.captured.is_empty());
    }
}
