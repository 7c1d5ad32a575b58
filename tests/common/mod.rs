//! Helpers shared by the integration tests (each test binary uses what it needs).
#![allow(dead_code)]

pub mod cbuild;
pub mod cluster;
pub mod conf;
pub mod events;
pub mod netns;
pub mod recorder;
pub mod wait;
