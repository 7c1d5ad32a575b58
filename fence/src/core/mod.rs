//! The fencer core (sans-IO): device registry, topology, timeouts and delays, the
//! fencer state machine, history, and the "who fences" decision.
//!
//! ```text
//!   FencerInput::Request | Confirm | AgentDone | Peer | Members | Timeout | (config)
//!        │ Fencer::handle(now, input) -> Result<(), FencerError>
//!        ▼
//!   plan (topology / capable devices, list/status queries) → run devices
//!        │
//!        ▼ Fencer::poll_output() until FencerOutput::Timeout
//!   AgentCall | Broadcast(PeerMessage) | Event(FenceEvent) | Timeout(deadline)
//! ```
//!
//! The agent runner executes each [`AgentCall`] and reports it with
//! [`FencerInput::AgentDone`]; the Stack sends each [`PeerMessage`] over CPG and
//! feeds the peers' back with [`FencerInput::Peer`]; [`FenceDecision`] turns
//! membership and quorum into requests and answers "is node N fenced since it was
//! lost?".
//!
//! No clocks, threads or files: time is the `now` argument and the random part of
//! `pcmk_delay_max` comes from [`FencerConfig::seed`].
//!
//! ```
//! use phalanx_fence::Action;
//! use phalanx_fence::core::*;
//! use phalanx_totem::Time;
//! use std::collections::BTreeMap;
//!
//! let mut f = Fencer::new(FencerConfig::new(1, "node1", 1, 42));
//! let params = BTreeMap::from([("pcmk_host_map".to_string(), "node2:2;node3:3".to_string())]);
//! let pdu = Device::new("pdu", "fence_apc", params, AgentCapabilities::power_switch(), 0).unwrap();
//! let now = Time::ZERO;
//! f.handle(now, FencerInput::RegisterDevice(pdu)).unwrap();
//! f.handle(now, FencerInput::Request(FenceRequest::new("node3", Action::Reboot, "admin", 7))).unwrap();
//! // The fencer asks for one agent call (and tells the peers it started).
//! let call = loop {
//!     match f.poll_output() {
//!         FencerOutput::AgentCall(c) => break c,
//!         FencerOutput::Timeout(_) => panic!("expected an agent call"),
//!         _ => {}
//!     }
//! };
//! assert_eq!((call.action, call.port.clone()), (Action::Reboot, Some(("port".into(), "3".into()))));
//! // The runner reports success; the client hears back.
//! let outcome = CallOutcome::Success { output: String::new() };
//! f.handle(now, FencerInput::AgentDone { call: call.call, outcome }).unwrap();
//! let done = std::iter::from_fn(|| match f.poll_output() {
//!     FencerOutput::Timeout(_) => None,
//!     o => Some(o),
//! })
//! .any(|o| matches!(o, FencerOutput::Event(FenceEvent::RequestDone { call: 7, result: Ok(_), .. })));
//! assert!(done);
//! ```

mod decision;
mod delay;
mod device;
mod duration;
mod fencer;
mod history;
mod hostmap;
mod io;
mod registry;
mod rng;
mod timeout;
mod topology;
mod unfence;
mod wire;

pub use decision::{
    DEFAULT_STARTUP_DEADTIME_MS, DecisionConfig, DecisionOutput, FenceDecision,
    MAX_KNOWN_INCARNATIONS, MAX_STARTED, NoQuorumPolicy, NodeFenceState, watchdog_only_nodes,
};
pub use delay::{NodePriority, device_delay_secs, priority_fencing_delay_secs, start_delay_secs};
pub use device::{
    AgentCapabilities, DEFAULT_RETRIES, Device, DeviceError, HostCheck, MAX_PARAM_LEN, MAX_PARAMS,
    is_fencing_action,
};
pub use duration::{
    DurationError, MAX_DURATION_TEXT, delay_ms_to_secs, parse_duration_ms, timeout_ms_to_secs,
};
pub use fencer::{Fencer, FencerConfig, FencerStats, MAX_PEER_EXECUTIONS};
pub use history::{
    Delegate, HARD_MAX_HISTORY, History, HistoryEntry, MAX_HISTORY, OpId, OpState, TRIMMED_HISTORY,
};
pub use hostmap::{MAX_MAP_ENTRIES, MAX_MAP_TEXT, MapError, NodeMap, parse_targets};
pub use io::{
    AgentCall, CallId, CallOutcome, FenceEvent, FenceFailure, FenceRequest, FencerError,
    FencerInput, FencerOutput, MAX_NAME_LEN, PeerMessage,
};
pub use registry::{Eligibility, LIST_CACHE_TTL, MAX_DEVICES, Registry, RegistryError};
pub use rng::SeededRng;
pub use timeout::{
    DeviceBudget, RequestedDelay, TIMEOUT_MULTIPLY_FACTOR, attempt_budget_secs, scaled,
    total_timeout_secs,
};
pub use topology::{
    LevelTarget, MAX_LEVEL, MAX_LEVEL_DEVICES, MAX_PATTERN_LEN, MAX_SELECTORS, MIN_LEVEL, Topology,
    TopologyError, parse_level_devices,
};
pub use unfence::{UnfenceOutput, Unfencing};
pub use wire::{
    MAX_REASON_LEN, WireError, decode as decode_peer_message, encode as encode_peer_message,
};
