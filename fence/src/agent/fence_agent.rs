//! The trait every way of fencing implements.

use super::outcome::{AgentOutcome, AgentReply, FailureKind};
use super::request::AgentRequest;
use std::time::Duration;

/// Something that can carry out an [`AgentRequest`]: a fence-agent executable
/// ([`crate::runner::ProcessAgent`]), a recording ([`super::ReplayAgent`]), or an
/// application's own code (an IPMI call, a cloud API).
///
/// `run` may block for up to the request's timeout, so it is never called on a
/// driver thread: [`crate::runner::AgentPool`] calls it on a worker and sends the
/// reply back as a message, which the driver feeds to the stack as an input. An
/// implementation must honour [`AgentRequest::timeout`] itself and must not panic
/// on any request; failures are [`AgentOutcome::Failed`].
///
/// ```
/// use phalanx_fence::Action;
/// use phalanx_fence::agent::{AgentOutcome, AgentReply, AgentRequest, FenceAgent, PowerState};
///
/// /// A plug-in that asks some management API; here it always says "off".
/// struct CloudApi;
/// impl FenceAgent for CloudApi {
///     fn run(&self, request: &AgentRequest) -> AgentReply {
///         let outcome = match request.action {
///             Action::Status => AgentOutcome::Power(PowerState::Off),
///             _ => AgentOutcome::Success,
///         };
///         AgentReply::without_transcript(outcome)
///     }
/// }
/// let reply = CloudApi.run(&AgentRequest::new("cloud", Action::Status).target("n1"));
/// assert_eq!(reply.outcome, AgentOutcome::Power(PowerState::Off));
/// ```
pub trait FenceAgent: Send + Sync {
    /// Carries out `request` and says what happened.
    fn run(&self, request: &AgentRequest) -> AgentReply;
}

impl<A: FenceAgent + ?Sized> FenceAgent for std::sync::Arc<A> {
    fn run(&self, request: &AgentRequest) -> AgentReply {
        (**self).run(request)
    }
}

impl<A: FenceAgent + ?Sized> FenceAgent for Box<A> {
    fn run(&self, request: &AgentRequest) -> AgentReply {
        (**self).run(request)
    }
}

impl AgentReply {
    /// A reply of an agent that runs no process (no stdin, no attempts).
    pub fn without_transcript(outcome: AgentOutcome) -> AgentReply {
        AgentReply {
            stdin: String::new(),
            attempts: Vec::new(),
            duration: Duration::ZERO,
            outcome,
        }
    }

    /// The reply to a request that could not be turned into an invocation.
    pub fn bad_request(why: impl std::fmt::Display) -> AgentReply {
        AgentReply::without_transcript(AgentOutcome::failed(
            FailureKind::BadRequest,
            why.to_string(),
        ))
    }
}
