//! # phalanx-cpg — closed process groups (skeleton)
//!
//! **Status: not yet implemented.** This crate will own the closed-process-group
//! service: named groups (≤ 128 bytes) whose members are (node id, local member id),
//! asynchronous `join`/`leave` completed by their totem-ordered delivery, `mcast` with
//! agreed or safe delivery, configuration-change callbacks with the reasons JOIN,
//! LEAVE, NODEDOWN, NODEUP and PROCDOWN, and the state exchange after every totem
//! configuration change that makes all nodes agree on group membership after a merge.
//!
//! Like every Phalanx protocol crate it will be a sans-IO core driven by totem
//! deliveries; the thread-safe handles live in the `phalanx` facade.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
