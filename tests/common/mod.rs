//! Helpers shared by the integration tests (each test binary uses what it needs).
#![allow(dead_code)]

pub mod cbuild;
pub mod cluster;
pub mod conf;
// The parser of phalanxd's controller lines lives with the tools that read them
// (phalanx-nemesis); the tests use the same one.
#[path = "../../src/bin/common/control_events.rs"]
pub mod events;
pub mod netns;
pub mod recorder;
pub mod wait;
