//! Compatibility with other cluster stacks' client interfaces: a libqb IPC
//! server so that Corosync client programs talk to a Phalanx node ([`qb`]).

pub mod qb;
