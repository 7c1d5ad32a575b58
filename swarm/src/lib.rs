//! The facade's [`Stack`](phalanx::stack::Stack) under the deterministic simulator,
//! so the simulator judges the same composition the mio driver runs — links,
//! per-link crypto, totem, CPG and quorum — with every fault drawn from a seed:
//! several links per path and single links cut in one direction, replayed and
//! forged datagrams, failed and slow durable writes, on top of the engine's loss,
//! partitions, crashes and pauses.
//!
//! The simulator cannot depend on the facade (the facade's tests use the
//! simulator), so the adapters live in this crate, beside the `phalanx-swarm`
//! runner. Layers:
//!
//! - [`CpgFactory`] with `cpg_workload`: group churn, judged by the totem and CPG
//!   checkers (`--layer cpg`);
//! - [`StackRawFactory`]: raw multicasts only, judged by the totem checkers (`--layer
//!   totem`);
//! - [`QuorumFactory`]: votequorum with options drawn per run, judged by the totem
//!   and quorum checkers (`--layer quorum`);
//! - [`CibFactory`]: the CIB replication service on every node (with votequorum and
//!   writes only with quorum, or [`CibFactory::without_quorum`]), random CIB requests
//!   from every node, its writes on the simulated disks, judged by the totem and CIB
//!   checkers (`--layer cib`).

mod cib_node;
mod cpg_node;
mod quorum_node;
mod stack_node;

pub use cib_node::{CibFactory, CibNode};
pub use cpg_node::{CpgFactory, CpgNode, StackRawFactory};
pub use quorum_node::{QuorumFactory, full_cluster_quorate, quorum_config_for};
pub use stack_node::{LinkPlan, node_of_addr, sim_addr, stack_config};
