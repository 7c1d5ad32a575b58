//! # phalanx-quorum — quorum (skeleton)
//!
//! **Status: not yet implemented.** This crate will own votequorum arithmetic
//! (expected votes, `two_node`, `wait_for_all`, `last_man_standing`,
//! `auto_tie_breaker`, `allow_downscale`), the quorum-device vote from a third-site
//! arbitrator (ffsplit and lms algorithms), quorum notifications, and booth-like site
//! tickets. Every member of a partition computes the same result from state exchanged
//! at each configuration change.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
