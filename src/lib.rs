//! # Phalanx — an embeddable high-availability cluster stack
//!
//! The facade re-exports the protocol crates. Applications link it and become cluster
//! nodes; there is no separate daemon.
#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod crypto;

pub mod link;

pub mod node;
pub mod util;

pub mod quorum_client;

pub mod stack;

pub use phalanx_cib as cib;
pub use phalanx_cpg as cpg;
pub use phalanx_dlm as dlm;
pub use phalanx_fence as fence;
pub use phalanx_logsys as logsys;
pub use phalanx_quorum as quorum;
pub use phalanx_totem as totem;
