//! Replayed devices for the simulator (deterministic, no I/O): a recording of a
//! real agent's calls ([`crate::runner::RecordingAgent`]) turned into a device that
//! answers the fencer's [`AgentCall`](crate::core::AgentCall)s in virtual time,
//! with device faults drawn per seed laid over the recorded replies.
//!
//! ```text
//!   AgentCall ──► RecordedDevice::answer(call, fault, rng)
//!                   │ a recorded reply for the call's action=
//!                   │ + DeviceFault (hang, timeout, wrong status, crash, slow off)
//!                   │ → interpret() + the call's timeout (the runner's rules)
//!                   ▼
//!   ReplayedAnswer { after, outcome: Option<CallOutcome>, may_have_powered_off }
//! ```
//!
//! [`request_of_call`] and [`call_outcome`] are the translation between the core
//! and the runner that a real node uses too, so a replayed reply reaches the
//! fencer as a live one does.

mod bridge;
mod device;
mod faults;

pub use bridge::{call_outcome, request_of_call};
pub use device::{CRASH_SIGNAL, RecordedDevice, ReplayedAnswer};
pub use faults::{DeviceFault, DeviceFaults, MAX_FAULT_PCT, MAX_SLOW_FACTOR};
