//! The contract between the engine and the thing under test.
//!
//! The engine knows no protocol: a node consumes opaque datagrams and timeouts, emits
//! datagrams, and reports what its application saw as [`Observation`]s.

use crate::check::Violation;
pub use crate::history::{History, Observation, RingId};
use crate::rng::Rng;

/// Virtual time in nanoseconds since the start of a run.
pub type VTime = u64;
/// A node's identity; the engine numbers nodes `1..=n`.
pub type NodeId = u32;

/// Where a datagram goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One node.
    Node(NodeId),
    /// Every configured node except the sender.
    AllNodes,
}

/// One outgoing datagram.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Where it goes.
    pub dest: Destination,
    /// Which of the node's links it goes on (0 for nodes with one link; see
    /// [`NodeFactory::links`]).
    pub link: u8,
    /// The bytes on the wire.
    pub data: Vec<u8>,
}

/// A durable write a node asks for ([`SimNode::poll_persist`]). The engine writes
/// it to the node's [`Disk`] and reports it done — at once, later (a slow disk), or
/// failed — as the seed's fault plan draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistWrite {
    /// Reported back in [`SimNode::persist_done`].
    pub id: u64,
    /// The file in the node's state directory.
    pub file: String,
    /// Its new contents.
    pub bytes: Vec<u8>,
}

/// What the liveness checker and the trace want to know about a running node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeStatus {
    /// The node is in a formed ring and delivering.
    pub operational: bool,
    /// The ring it is in, if any.
    pub ring: Option<RingId>,
    /// The members of that ring.
    pub members: Vec<NodeId>,
    /// Nothing left to send and everything received delivered. The liveness phase
    /// runs on (up to `SimOptions::max_drain_ns`) until every node is quiescent, so
    /// the checkers judge a settled cluster rather than one cut mid-flight.
    pub quiescent: bool,
}

/// A simulated node: a sans-IO protocol plus a workload.
pub trait SimNode {
    /// `now` is the node's LOCAL clock (drifted), in ns. `link` is the link it
    /// arrived on. Returns whether the node's link layer accepted it (authentic,
    /// fresh, from a known source); a node without authentication accepts all.
    fn handle_datagram(&mut self, now: u64, from: NodeId, link: u8, data: &[u8]) -> bool;
    /// The deadline from [`SimNode::poll_timeout`] has passed (possibly late).
    fn handle_timeout(&mut self, now: u64);
    /// Next datagram to send; the engine drains this after every input.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next deadline in the node's local clock.
    fn poll_timeout(&self) -> Option<u64>;
    /// Workload hook: the engine calls this at random times (drawn from the seed) while
    /// the workload is on; the node may multicast application messages. `rng` is a
    /// per-node stream.
    fn app_tick(&mut self, now: u64, rng: &mut Rng);
    /// Clean leave (the engine then treats the node as down until restarted).
    fn leave(&mut self, now: u64);
    /// Next thing the application observed; the engine drains this after every input.
    fn poll_observation(&mut self) -> Option<Observation>;
    /// For the liveness checker and traces.
    fn status(&self) -> NodeStatus;
    /// Called after every input, before that input's datagrams leave: write whatever
    /// must survive a crash to `disk` (persist-before-send, synchronously, on a
    /// perfect disk). Default: nothing. Nodes that hold datagrams back until a write
    /// is durable use [`SimNode::poll_persist`] instead.
    fn persist(&mut self, _disk: &mut Disk) {}
    /// Next durable write the node waits for (see [`PersistWrite`]). Default: none.
    fn poll_persist(&mut self) -> Option<PersistWrite> {
        None
    }
    /// Write `id` is durable (`ok`) or failed.
    fn persist_done(&mut self, _now: u64, _id: u64, _ok: bool) {}
    /// The node stopped itself (e.g. after a failed durable write); the engine
    /// treats it as crashed and restarts it later from its disk.
    fn stopped(&self) -> bool {
        false
    }
    /// Whether [`SimNode::handle_datagram`]'s verdict means "authenticated": then
    /// the engine checks that replayed and forged datagrams are never accepted.
    fn authenticates(&self) -> bool {
        false
    }
}

/// Builds nodes. A factory must be a pure function of its arguments: the swarm runner
/// reuses one factory for many seeds, so state carried between runs would break replay.
pub trait NodeFactory {
    /// Called once at the start of every run, before any `create`, with the run's seed:
    /// a factory may draw per-run parameters shared by all nodes (timeouts, frame
    /// sizes) from it. Default: nothing.
    fn begin_run(&mut self, _run_seed: u64) {}

    /// Create (or re-create after a crash) node `id`. `disk` survives crashes of that node
    /// (it models the node's state directory); `logger` is that node slot's flight recorder.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        seed: u64,
        now: u64,
        disk: &mut Disk,
        logger: phalanx_logsys::Logger,
    ) -> Box<dyn SimNode>;

    /// Links per node for this run (after [`NodeFactory::begin_run`]); with more
    /// than one, the engine cuts single links in one direction as a fault.
    /// Default: 1.
    fn links(&self) -> u8 {
        1
    }

    /// Judges a finished run. Default: the totem checkers ([`crate::check::all`]);
    /// a factory whose nodes run more layers adds that layer's checkers.
    fn check(&self, history: &History) -> Vec<Violation> {
        crate::check::all(history)
    }
}

/// A node's persistent state directory: file name to contents.
pub type Disk = std::collections::BTreeMap<String, Vec<u8>>;
