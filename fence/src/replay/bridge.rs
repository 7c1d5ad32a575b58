//! Between the fencer core's words ([`AgentCall`], [`CallOutcome`]) and the agent
//! runner's ([`AgentRequest`], [`AgentReply`]): the one translation a real node and
//! the simulator's replayed devices share, so a replayed reply reaches the fencer
//! exactly as a live one would.

use crate::agent::{AgentOutcome, AgentReply, AgentRequest, Exit, FailureKind, PowerState};
use crate::core::{AgentCall, CallOutcome};

/// The agent call as a runner takes it: the fencer already chose the port and
/// counts attempts itself, so the request makes one attempt.
///
/// ```
/// use phalanx_fence::Action;
/// use phalanx_fence::core::{AgentCall, CallId};
/// use phalanx_fence::replay::request_of_call;
/// use std::time::Duration;
///
/// let call = AgentCall {
///     call: CallId(1),
///     op: None,
///     device: "pdu".into(),
///     agent: "fence_dummy".into(),
///     action: Action::Off,
///     agent_action: "off".into(),
///     target: Some("node2".into()),
///     port: Some(("port".into(), "2".into())),
///     params: Default::default(),
///     timeout: Duration::from_secs(5),
///     attempt: 1,
/// };
/// let req = request_of_call(&call);
/// assert_eq!(req.stdin().unwrap(), "action=off\nnodename=node2\nport=2\n");
/// assert_eq!(req.attempts, 1);
/// ```
pub fn request_of_call(call: &AgentCall) -> AgentRequest {
    let mut req = AgentRequest::new(call.agent.clone(), call.action)
        .params(call.params.clone())
        .timeout(call.timeout)
        .attempts(1)
        .host_argument_default(None);
    if let Some(t) = &call.target {
        req = req.target(t.clone());
    }
    if let Some((arg, port)) = &call.port {
        req = req.param(arg.clone(), port.clone());
    }
    if call.agent_action != call.action.as_str() {
        // The device's `pcmk_<action>_action`: the runner writes it as `action=`.
        req = req.param(
            format!("pcmk_{}_action", call.action),
            call.agent_action.clone(),
        );
    }
    req
}

/// A runner's typed reply as the fencer core reads it: a timeout is
/// [`CallOutcome::TimedOut`], `status` exit 2 ("port off", the device reaches the
/// target) is a failure with exit code 2, any other failure keeps its exit code.
///
/// ```
/// use phalanx_fence::agent::{AgentOutcome, AgentReply, PowerState};
/// use phalanx_fence::core::CallOutcome;
/// use phalanx_fence::replay::call_outcome;
///
/// let off = AgentReply::without_transcript(AgentOutcome::Power(PowerState::Off));
/// assert!(matches!(call_outcome(&off), CallOutcome::Failed { exit_code: Some(2), .. }));
/// ```
pub fn call_outcome(reply: &AgentReply) -> CallOutcome {
    let output = reply
        .attempts
        .last()
        .map(|a| a.stdout.clone())
        .unwrap_or_default();
    match &reply.outcome {
        AgentOutcome::Failed(f) if f.kind == FailureKind::TimedOut => CallOutcome::TimedOut,
        AgentOutcome::Failed(f) => CallOutcome::Failed {
            exit_code: match reply.attempts.last().map(|a| &a.exit) {
                Some(Exit::Code(n)) => Some(*n),
                _ => None,
            },
            reason: f.message.clone(),
        },
        AgentOutcome::Power(PowerState::Off) => CallOutcome::Failed {
            exit_code: Some(2),
            reason: "Status: OFF".into(),
        },
        _ => CallOutcome::Success { output },
    }
}
