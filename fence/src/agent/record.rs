//! Recordings of agent calls (JSON lines) and the agent that replays them.

use super::fence_agent::FenceAgent;
use super::outcome::{AgentOutcome, AgentReply, FailureKind};
use super::request::AgentRequest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// One recorded call: what was asked and everything that came back (stdin,
/// each attempt's stdout/stderr/exit/duration/timeout, the outcome).
///
/// A recording file holds one `CallRecord` as JSON per line, in call order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The request.
    pub request: AgentRequest,
    /// The reply.
    pub reply: AgentReply,
}

/// Longest line read from a recording (a call's stdout and stderr are each capped
/// by the runner, so a line is a few MiB at most).
pub const MAX_RECORD_LINE: usize = 8 * 1024 * 1024;

/// A recording line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording line {line}: {message}")]
pub struct RecordingError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl CallRecord {
    /// The record as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads a recording: one [`CallRecord`] per non-empty line.
pub fn parse_recording(text: &str) -> Result<Vec<CallRecord>, RecordingError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_RECORD_LINE {
            return Err(RecordingError {
                line: i + 1,
                message: "line too long".into(),
            });
        }
        let record = serde_json::from_str(line).map_err(|e| RecordingError {
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(record);
    }
    Ok(out)
}

/// What identifies "the same call" in a recording: the agent and the exact stdin
/// it would read (or, for a request with no valid stdin, its action and target).
pub fn replay_key(request: &AgentRequest) -> String {
    match request.stdin() {
        Ok(stdin) => format!("{}\n{stdin}", request.agent),
        Err(_) => format!(
            "{}\n!{}:{}",
            request.agent,
            request.action,
            request.target.as_deref().unwrap_or("")
        ),
    }
}

/// Answers calls from a recording, for the simulator: no process is run.
///
/// Calls with the same [`replay_key`] get the recorded replies in recorded order;
/// once only the last one is left it answers every further call (a status asked
/// again gets the last answer). A call the recording does not hold fails with
/// [`FailureKind::NotRecorded`].
#[derive(Debug)]
pub struct ReplayAgent {
    replies: Mutex<BTreeMap<String, VecDeque<AgentReply>>>,
}

impl ReplayAgent {
    /// An agent answering from `records`.
    pub fn new(records: impl IntoIterator<Item = CallRecord>) -> ReplayAgent {
        let mut replies: BTreeMap<String, VecDeque<AgentReply>> = BTreeMap::new();
        for r in records {
            replies
                .entry(replay_key(&r.request))
                .or_default()
                .push_back(r.reply);
        }
        ReplayAgent {
            replies: Mutex::new(replies),
        }
    }

    /// An agent answering from the text of a recording file.
    pub fn from_recording(text: &str) -> Result<ReplayAgent, RecordingError> {
        Ok(ReplayAgent::new(parse_recording(text)?))
    }
}

impl FenceAgent for ReplayAgent {
    fn run(&self, request: &AgentRequest) -> AgentReply {
        let mut replies = self
            .replies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let queue = replies.get_mut(&replay_key(request));
        match queue {
            Some(q) if q.len() > 1 => q.pop_front().unwrap_or_else(|| unrecorded(request)),
            Some(q) => q.front().cloned().unwrap_or_else(|| unrecorded(request)),
            None => unrecorded(request),
        }
    }
}

fn unrecorded(request: &AgentRequest) -> AgentReply {
    AgentReply::without_transcript(AgentOutcome::failed(
        FailureKind::NotRecorded,
        format!(
            "no recorded {} call of {} for {}",
            request.action,
            request.agent,
            request.target.as_deref().unwrap_or("no target")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use crate::agent::PowerState;

    fn record(req: &AgentRequest, outcome: AgentOutcome) -> CallRecord {
        CallRecord {
            request: req.clone(),
            reply: AgentReply::without_transcript(outcome),
        }
    }

    #[test]
    fn replays_in_order_then_repeats_the_last() {
        let status = AgentRequest::new("fence_x", Action::Status).target("n1");
        let text = [
            record(&status, AgentOutcome::Power(PowerState::On)).to_json_line(),
            record(&status, AgentOutcome::Power(PowerState::Off)).to_json_line(),
        ]
        .join("\n");
        let agent = ReplayAgent::from_recording(&text).unwrap();
        let answers: Vec<_> = (0..3).map(|_| agent.run(&status).outcome).collect();
        assert_eq!(
            answers,
            [PowerState::On, PowerState::Off, PowerState::Off].map(AgentOutcome::Power)
        );
        let other = AgentRequest::new("fence_x", Action::Status).target("n2");
        assert!(matches!(
            agent.run(&other).outcome,
            AgentOutcome::Failed(ref f) if f.kind == FailureKind::NotRecorded
        ));
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let err = parse_recording("\n{not json}\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
