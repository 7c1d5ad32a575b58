//! A simulated device that answers from a recording of a real agent.

use super::bridge::{call_outcome, request_of_call};
use super::faults::DeviceFault;
use crate::Action;
use crate::agent::{
    AgentOutcome, AgentReply, Attempt, CallRecord, Exit, FailureKind, RecordingError, interpret,
    parse_recording,
};
use crate::core::{AgentCall, CallOutcome, SeededRng};
use std::collections::BTreeMap;
use std::time::Duration;

/// The signal a crashing agent dies of (SIGSEGV).
pub const CRASH_SIGNAL: i32 = 11;

/// Answers a fencer's [`AgentCall`]s with replies recorded from a real agent, in
/// virtual time, for the simulator.
///
/// Replies are grouped by the `action=` the agent read. A call gets one of the
/// recorded replies for its action — a healthy one (the agent did what was asked,
/// or answered a `status`) when the recording holds one, else what the agent did
/// (e.g. `Unrecognised action` for a `list` it lacks) — drawn from the caller's
/// generator; its last attempt's exit status, stdout, stderr and duration go
/// through the runner's own rules ([`interpret`], the call's timeout) and
/// [`call_outcome`], exactly as a live reply would. A [`DeviceFault`] is laid over
/// the recorded attempt first.
#[derive(Debug, Clone, Default)]
pub struct RecordedDevice {
    by_action: BTreeMap<String, Vec<AgentReply>>,
}

/// How a replayed call ends, in virtual time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedAnswer {
    /// When, after the call, its completion arrives.
    pub after: Duration,
    /// What the fencer is told; `None`: never ([`DeviceFault::Hang`]).
    pub outcome: Option<CallOutcome>,
    /// The reply the runner would have produced (the recorded one, with the fault
    /// applied).
    pub reply: AgentReply,
    /// The fault laid over the recording, if any.
    pub fault: Option<DeviceFault>,
    /// Whether the device may have cut the target's power (an `off`/`reboot` that
    /// succeeded, or that failed only in its verification or by running out of
    /// time). The simulator decides when, within [`ReplayedAnswer::after`].
    pub may_have_powered_off: bool,
}

impl RecordedDevice {
    /// A device answering from `records` (in recorded order within each action).
    pub fn new(records: impl IntoIterator<Item = CallRecord>) -> RecordedDevice {
        let mut by_action: BTreeMap<String, Vec<AgentReply>> = BTreeMap::new();
        for r in records {
            by_action
                .entry(r.request.agent_action().to_ascii_lowercase())
                .or_default()
                .push(r.reply);
        }
        RecordedDevice { by_action }
    }

    /// A device answering from the text of a recording file.
    ///
    /// ```
    /// use phalanx_fence::Action;
    /// use phalanx_fence::agent::{AgentRequest, Attempt, CallRecord, Exit, FenceAgent};
    /// use phalanx_fence::core::{AgentCall, CallId, CallOutcome, SeededRng};
    /// use phalanx_fence::replay::RecordedDevice;
    /// use std::time::Duration;
    ///
    /// // One recorded `off` of a real agent: exit 0, 180 ms.
    /// let request = AgentRequest::new("fence_dummy", Action::Off).target("n1");
    /// let attempt = Attempt {
    ///     exit: Exit::Code(0),
    ///     stdout: "Success: Powered OFF\n".into(),
    ///     stderr: String::new(),
    ///     stdout_dropped: 0,
    ///     stderr_dropped: 0,
    ///     duration: Duration::from_millis(180),
    /// };
    /// let reply = phalanx_fence::agent::AgentReply {
    ///     stdin: request.stdin().unwrap(),
    ///     attempts: vec![attempt.clone()],
    ///     duration: attempt.duration,
    ///     outcome: phalanx_fence::agent::interpret(&request, &attempt),
    /// };
    /// let text = CallRecord { request, reply }.to_json_line();
    /// let device = RecordedDevice::from_recording(&text).unwrap();
    ///
    /// let call = AgentCall {
    ///     call: CallId(9),
    ///     op: None,
    ///     device: "pdu".into(),
    ///     agent: "fence_dummy".into(),
    ///     action: Action::Off,
    ///     agent_action: "off".into(),
    ///     target: Some("node3".into()),
    ///     port: None,
    ///     params: Default::default(),
    ///     timeout: Duration::from_secs(20),
    ///     attempt: 1,
    /// };
    /// let answer = device.answer(&call, None, &mut SeededRng::new(1));
    /// assert_eq!(answer.after, Duration::from_millis(180));
    /// assert!(matches!(answer.outcome, Some(CallOutcome::Success { .. })));
    /// assert!(answer.may_have_powered_off);
    /// ```
    pub fn from_recording(text: &str) -> Result<RecordedDevice, RecordingError> {
        Ok(RecordedDevice::new(parse_recording(text)?))
    }

    /// The `action=` names the recording holds replies for.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.by_action.keys().map(String::as_str)
    }

    /// The recorded replies to `agent_action`, in recorded order.
    pub fn replies(&self, agent_action: &str) -> &[AgentReply] {
        self.by_action
            .get(&agent_action.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The answer to `call`, with `fault` laid over the recorded reply drawn
    /// (with `rng`) for its action.
    pub fn answer(
        &self,
        call: &AgentCall,
        fault: Option<DeviceFault>,
        rng: &mut SeededRng,
    ) -> ReplayedAnswer {
        let recorded = self.replies(&call.agent_action);
        let healthy: Vec<&AgentReply> =
            recorded.iter().filter(|r| r.outcome.is_success()).collect();
        let pool: Vec<&AgentReply> = if healthy.is_empty() {
            recorded.iter().collect()
        } else {
            healthy
        };
        let Some(chosen) = pick(&pool, rng) else {
            let reply = AgentReply::without_transcript(AgentOutcome::failed(
                FailureKind::NotRecorded,
                format!("no recorded {} call of {}", call.agent_action, call.agent),
            ));
            return ReplayedAnswer {
                after: Duration::ZERO,
                outcome: (fault != Some(DeviceFault::Hang)).then(|| call_outcome(&reply)),
                reply,
                fault,
                may_have_powered_off: false,
            };
        };
        self.replay(call, chosen, recorded, fault, rng)
    }

    fn replay(
        &self,
        call: &AgentCall,
        chosen: &AgentReply,
        recorded: &[AgentReply],
        fault: Option<DeviceFault>,
        rng: &mut SeededRng,
    ) -> ReplayedAnswer {
        let request = request_of_call(call);
        let powers_off = matches!(call.action, Action::Off | Action::Reboot);
        let Some(mut attempt) = chosen.attempts.last().cloned() else {
            // A recording of an agent that is not a process: its outcome as is.
            let reply = chosen.clone();
            let outcome = call_outcome(&reply);
            return ReplayedAnswer {
                after: reply.duration,
                may_have_powered_off: powers_off && reply.outcome.is_success(),
                outcome: (fault != Some(DeviceFault::Hang)).then_some(outcome),
                reply,
                fault,
            };
        };
        let mut maybe_acted = false;
        match fault {
            None | Some(DeviceFault::Hang) => {}
            Some(DeviceFault::Timeout) => {
                attempt.exit = Exit::TimedOut;
                attempt.duration = call.timeout;
                maybe_acted = true;
            }
            Some(DeviceFault::WrongStatus) => {
                wrong_status(call.action, &mut attempt, recorded);
                maybe_acted = true;
            }
            Some(DeviceFault::Crash) => {
                attempt.exit = Exit::Signal(CRASH_SIGNAL);
                attempt.stdout.clear();
                attempt.stderr = "Segmentation fault\n".into();
                let ms = duration_ms(attempt.duration);
                attempt.duration = Duration::from_millis(rng.up_to(ms));
            }
            Some(DeviceFault::SlowPowerOff(factor)) => {
                attempt.duration = attempt.duration.saturating_mul(factor.max(1));
            }
        }
        // The runner's rule: an agent still running at the timeout is killed.
        if attempt.duration > call.timeout {
            attempt.exit = Exit::TimedOut;
            attempt.duration = call.timeout;
            attempt.stdout.clear();
            maybe_acted = true;
        }
        let outcome = interpret(&request, &attempt);
        let may_have_powered_off = powers_off
            && (outcome.is_success()
                || (maybe_acted && fault != Some(DeviceFault::Crash) && rng.up_to(1) == 1));
        let reply = AgentReply {
            stdin: request.stdin().unwrap_or_default(),
            duration: attempt.duration,
            attempts: vec![attempt],
            outcome,
        };
        ReplayedAnswer {
            after: reply.duration,
            outcome: (fault != Some(DeviceFault::Hang)).then(|| call_outcome(&reply)),
            reply,
            fault,
            may_have_powered_off,
        }
    }
}

fn pick<'a>(pool: &[&'a AgentReply], rng: &mut SeededRng) -> Option<&'a AgentReply> {
    let last = pool.len().checked_sub(1)?;
    pool.get(rng.up_to(last as u64) as usize).copied()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The attempt of a device that reads the wrong power state.
fn wrong_status(action: Action, attempt: &mut Attempt, recorded: &[AgentReply]) {
    match action {
        Action::Status | Action::Monitor => {
            // The opposite state, said consistently (exit status and text).
            let (code, line) = match attempt.exit {
                Exit::Code(0) => (2, "Status: OFF\n"),
                _ => (0, "Status: ON\n"),
            };
            attempt.exit = Exit::Code(code);
            if action == Action::Status {
                attempt.stdout = line.into();
            }
        }
        _ => {
            // The agent's verification after acting fails: the recorded failure of
            // this action when there is one (fence_dummy's "Timed out waiting to
            // power OFF"), else the same words.
            let failed = recorded
                .iter()
                .filter(|r| !r.outcome.is_success())
                .find_map(|r| r.attempts.last());
            match failed {
                Some(f) if matches!(f.exit, Exit::Code(c) if c != 0) => {
                    attempt.exit = f.exit.clone();
                    attempt.stdout = f.stdout.clone();
                    attempt.stderr = f.stderr.clone();
                    attempt.duration = attempt.duration.max(f.duration);
                }
                _ => {
                    let state = if action == Action::On { "ON" } else { "OFF" };
                    attempt.exit = Exit::Code(1);
                    attempt.stdout.clear();
                    attempt.stderr = format!("Failed: Timed out waiting to power {state}\n");
                }
            }
        }
    }
}
