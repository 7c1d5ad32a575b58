//! # phalanx-cib — replicated configuration database (skeleton)
//!
//! **Status: not yet implemented.** This crate will own an XML configuration tree
//! compatible with Pacemaker's CIB: the version triple (admin_epoch, epoch,
//! num_updates), v2 patchsets, query/create/modify/replace/delete, replication in
//! total order over CPG, atomic persistence with a digest, and ACLs.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
