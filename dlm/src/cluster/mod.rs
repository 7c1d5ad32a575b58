//! The distributed layer: one [`DlmNode`] per node, a sans-IO core that owns the
//! node's lockspaces, keeps the process copies of its own locks, masters the
//! resources it is master of with the single-node [`Lockspace`](crate::Lockspace)
//! engine, runs its share of the resource directory (§3.4) and recovers every
//! lockspace after a membership change (§3.7), waiting for the fencing of every
//! failed node first.
//!
//! ```text
//!   Input::Lock / Unlock            application calls (answered at once)
//!   Input::Message { from, bytes }  a DlmNode's Output::Send from another node
//!   Input::Members { .. }           agreed lockspace membership (the CPG group view)
//!   Input::Fenced { node }          FenceDecision::is_fenced_since_lost(node) holds
//!   Input::TossIdle { lockspace }   the driver's toss timer: forget idle resources
//!        │
//!        ▼ poll_output() until None
//!   Output::Send { to, bytes }      a wire message for one node
//!   Output::Completion / Blocking   ASTs for local processes
//!   Output::Refused                 a call the master refused (errno)
//!   Output::AwaitFencing { node }   recovery waits for this node's fencing
//!   Output::Recovered { .. }        the lockspace runs again
//! ```
//!
//! No clocks, threads, sockets or randomness: a run is a function of its inputs.
//! See `docs/dlm.md` ("Message flow of a remote lock", "Recovery timeline").
//!
//! ```
//! use phalanx_dlm::cluster::*;
//! use phalanx_dlm::{LockRequest, Mode, Owner, Status};
//!
//! // A single-node lockspace: the node is directory node and master; no message.
//! let mut node = DlmNode::new(1, DlmConfig::default()).unwrap();
//! node.handle_input(Input::Members { lockspace: 9, epoch: 1, members: vec![1], failed: vec![] })
//!     .unwrap();
//! let lock = node.lock(9, LockRequest::new(Owner::new(1, 100), "r", Mode::Ex)).unwrap();
//! let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
//! assert!(outputs.iter().any(|o| matches!(o,
//!     Output::Completion { completion, .. } if completion.lock == lock
//!         && completion.status == Status::Granted)));
//! assert!(!outputs.iter().any(|o| matches!(o, Output::Send { .. })));
//! ```

mod directory;
mod holder;
mod lockspace_state;
mod master;
mod node;
mod process;
mod recovery;
mod wire;

pub use directory::{directory_node, fnv1a64};
pub use node::{DlmConfig, DlmNode, Input, Output};
pub use process::{LocalLockView, PendingKind};
pub use wire::{
    LockspaceId, Msg, NodeId, OpKind, RecoveredLock, WIRE_VERSION, WireError, decode, encode,
};
