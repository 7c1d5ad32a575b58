//! # phalanx-sim — deterministic simulation of a cluster
//!
//! The engine knows no protocol: it moves opaque datagrams between [`SimNode`]s under
//! virtual time, with per-path latency, loss, duplication, reordering and MTU limits,
//! partitions, clock drift, crashes, pauses and clean leaves — every parameter drawn
//! from the seed ("swarm testing"). A run is a safety phase (faults and workload on)
//! followed by a liveness phase (faults off, every node up) after which the checkers in
//! [`check`] judge the recorded [`History`].
//!
//! ```
//! use phalanx_sim::{Sim, SimOptions, testnode::TestFactory};
//! let mut factory = TestFactory::default();
//! let report = Sim::new(SimOptions::new(3, 42), &mut factory).run();
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! ```
//!
//! Guarantees: a run is a pure function of its options and factory (single thread,
//! ordered collections, no clocks). Not done here: storage faults (the disk is perfect)
//! and any knowledge of what the datagrams mean.
#![warn(missing_docs)]

pub mod check;
pub mod clock;
pub mod engine;
pub mod faults;
pub mod history;
pub mod net;
pub mod node;
pub mod rng;
pub mod scale;
pub mod swarm;
pub mod testnode;
pub mod totem_node;

pub use check::Violation;
pub use engine::{FlightRecord, RunReport, Sim, SimOptions, Stats};
pub use faults::{FaultBounds, FaultPlan};
pub use history::{
    CibObservation, CibVersion, ConfigKind, CpgMember, CpgReason, CpgRequest, CpgViewId, Event,
    EventKind, Guarantee, History, MsgId, Observation, Process, RingId,
};
pub use node::{
    Destination, Disk, NodeFactory, NodeId, NodeStatus, PersistWrite, SimNode, Transmit, VTime,
};
pub use rng::Rng;
pub use swarm::{SwarmSummary, nodes_for_seed, replay, run_swarm};

/// The factory the `phalanx-sim` binary runs: the Totem core with a checking workload.
pub fn default_factory() -> impl NodeFactory {
    totem_node::TotemFactory::default()
}
