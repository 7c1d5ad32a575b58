//! Fence agents, sans-IO: the [`FenceAgent`] trait, what a call asks
//! ([`AgentRequest`], including the exact stdin Pacemaker writes), what it means
//! ([`interpret`] → [`AgentOutcome`]), agent metadata ([`AgentMetadata`]), and
//! record/replay ([`CallRecord`], [`ReplayAgent`]).
//!
//! Nothing here starts a process, reads a clock or touches a file: running real
//! executables is [`crate::runner`]'s job.

mod fence_agent;
mod metadata;
mod outcome;
mod record;
mod request;
pub(crate) mod serde_action;
mod time_spec;

pub use fence_agent::FenceAgent;
pub use metadata::{
    ActionSpec, AgentMetadata, Content, ContentType, MAX_DEPTH, MAX_ITEMS, MAX_METADATA_BYTES,
    MetadataError, Parameter, Symlink,
};
pub use outcome::{
    AgentFailure, AgentOutcome, AgentReply, Attempt, Exit, FailureKind, MAX_MESSAGE, MAX_PORTS,
    Port, PowerState, interpret,
};
pub use record::{
    CallRecord, MAX_RECORD_LINE, RecordingError, ReplayAgent, parse_recording, replay_key,
};
pub use request::{
    AgentRequest, DEFAULT_ACTION_TIMEOUT, DEFAULT_ATTEMPTS, MAX_AGENT_NAME, MAX_ATTEMPTS,
    MAX_STDIN_BYTES, RequestError, passed_to_agent, validate_agent_name,
};
pub use time_spec::{BadDuration, MAX_DURATION, parse_duration};
