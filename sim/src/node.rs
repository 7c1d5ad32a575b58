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
    /// The bytes on the wire.
    pub data: Vec<u8>,
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
    /// `now` is the node's LOCAL clock (drifted), in ns.
    fn handle_datagram(&mut self, now: u64, from: NodeId, data: &[u8]);
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
    /// must survive a crash to `disk` (persist-before-send). Default: nothing.
    fn persist(&mut self, _disk: &mut Disk) {}
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

    /// Judges a finished run. Default: the totem checkers ([`crate::check::all`]);
    /// a factory whose nodes run more layers adds that layer's checkers.
    fn check(&self, history: &History) -> Vec<Violation> {
        crate::check::all(history)
    }
}

/// A node's persistent state directory: file name to contents.
pub type Disk = std::collections::BTreeMap<String, Vec<u8>>;
