//! Shared test support: a scheduled network for membership scenarios.

pub mod linknet;
