//! The [`Stack`](crate::stack::Stack) as a simulated node, so the simulator judges
//! the same composition the mio driver runs. (The simulator cannot depend on the
//! facade, which depends on it, so the node lives here.)

mod cpg_node;
mod quorum_node;

pub use cpg_node::{CpgFactory, CpgNode};
pub use quorum_node::{QuorumFactory, full_cluster_quorate, quorum_config_for};
