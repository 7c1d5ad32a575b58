//! # phalanx-fence — fencing (skeleton)
//!
//! **Status: not yet implemented.** This crate will decide who must be fenced after a
//! membership loss (with quorum), hold fencing topology (levels of devices), apply
//! delays against fence races, unfence, keep history, and run ClusterLabs
//! fence-agents (key=value on stdin, metadata XML, exit codes) off the driver thread.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
