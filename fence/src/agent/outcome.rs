//! What came back from an agent: the raw transcript of each attempt, and its typed
//! meaning (exit code + stdout, §2.1 of the fencing reference).

use super::request::AgentRequest;
use crate::Action;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// The agent exited with this status.
    Code(i32),
    /// The agent was ended by this signal (not by us).
    Signal(i32),
    /// The deadline passed: the runner killed the agent's whole process group.
    TimedOut,
    /// The agent could not be started (not installed, not executable, ...).
    SpawnFailed(String),
}

/// The transcript of one run of an agent executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// How it ended.
    pub exit: Exit,
    /// Standard output (lossy UTF-8), at most the runner's cap.
    pub stdout: String,
    /// Standard error (lossy UTF-8), at most the runner's cap.
    pub stderr: String,
    /// Bytes of stdout beyond the cap, counted and dropped.
    pub stdout_dropped: u64,
    /// Bytes of stderr beyond the cap, counted and dropped.
    pub stderr_dropped: u64,
    /// From spawn to reaped.
    pub duration: Duration,
}

/// Everything one [`super::FenceAgent::run`] call produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReply {
    /// The stdin written to each attempt (empty for agents that are not processes).
    pub stdin: String,
    /// Each attempt in order (empty when nothing was run: a bad request, or an
    /// agent plugged in by the application that has no transcript).
    pub attempts: Vec<Attempt>,
    /// From the call to its answer, pauses between attempts included.
    pub duration: Duration,
    /// What it means.
    pub outcome: AgentOutcome,
}

/// Power state of a target or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Powered (not fenced).
    On,
    /// Powered off (fenced).
    Off,
    /// The device does not know (`list-status` only).
    Unknown,
}

/// One line of `list` / `list-status` output: `port[,alias[,state]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The port (plug) name or number.
    pub port: String,
    /// The alias (usually the host name), when given.
    pub alias: Option<String>,
    /// The state (`list-status` only).
    pub state: Option<PowerState>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request could not be turned into an invocation.
    BadRequest,
    /// The agent could not be started.
    SpawnFailed,
    /// The runner killed it at the deadline.
    TimedOut,
    /// A signal we did not send ended it.
    Signal(i32),
    /// The agent said the action is not supported (`Unrecognised action`).
    Unsupported,
    /// The agent reported that the device timed out (exit 1, "timed out" on stderr).
    DeviceTimeout,
    /// Any other non-success exit status.
    Exit(i32),
    /// The exit status and the output contradict each other, or the output is not
    /// what the action produces.
    BadOutput,
    /// A replayed call that the recording does not hold.
    NotRecorded,
    /// An agent plugged in by the application reported a failure.
    Agent,
}

/// A failed call: the kind, and a one-line message (the agent's `Failed: ...` line
/// when it printed one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFailure {
    /// Why.
    pub kind: FailureKind,
    /// What the agent (or the runner) said, at most [`MAX_MESSAGE`] bytes.
    pub message: String,
}

/// Longest failure message kept.
pub const MAX_MESSAGE: usize = 1024;

/// Most ports read from one `list` answer.
pub const MAX_PORTS: usize = 10_000;

/// The typed meaning of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutcome {
    /// `off`/`on`/`reboot`/`validate-all` succeeded (exit 0).
    Success,
    /// `status` answered (exit 0 = on, 2 = off), or `monitor` exited 2 (the
    /// single port is off).
    Power(PowerState),
    /// `monitor` exited 0: the device is reachable.
    Reachable,
    /// `list` / `list-status` answered with these ports.
    Ports(Vec<Port>),
    /// `list` answered `N/A`: the device has no ports (it fences one target).
    NoPorts,
    /// `metadata` answered with this XML.
    Metadata(String),
    /// The call failed.
    Failed(AgentFailure),
}

impl AgentOutcome {
    /// Whether the call did what was asked (anything but [`AgentOutcome::Failed`]).
    pub fn is_success(&self) -> bool {
        !matches!(self, AgentOutcome::Failed(_))
    }

    /// A failure of `kind` with `message` (cut to [`MAX_MESSAGE`] bytes).
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> AgentOutcome {
        AgentOutcome::Failed(AgentFailure {
            kind,
            message: clip(message.into()),
        })
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Reads one attempt of `request` into an outcome.
///
/// The exit status decides (as Pacemaker does); stdout supplies the details
/// (`Status:` line, port list, metadata). A `Status:` line that contradicts the exit
/// status is [`FailureKind::BadOutput`].
pub fn interpret(request: &AgentRequest, attempt: &Attempt) -> AgentOutcome {
    let code = match &attempt.exit {
        Exit::Code(c) => *c,
        Exit::TimedOut => {
            return AgentOutcome::failed(
                FailureKind::TimedOut,
                format!("timed out after {:?}", request.timeout),
            );
        }
        Exit::Signal(s) => {
            return AgentOutcome::failed(FailureKind::Signal(*s), format!("killed by signal {s}"));
        }
        Exit::SpawnFailed(why) => {
            return AgentOutcome::failed(FailureKind::SpawnFailed, why.clone());
        }
    };
    let status_line = status_line(&attempt.stdout);
    match (request.action, code) {
        (Action::Status, 0) | (Action::Status, 2) => {
            let state = if code == 0 {
                PowerState::On
            } else {
                PowerState::Off
            };
            match status_line {
                Some(said) if said != state => AgentOutcome::failed(
                    FailureKind::BadOutput,
                    format!("exit status {code} but stdout says {said:?}"),
                ),
                _ => AgentOutcome::Power(state),
            }
        }
        (Action::Monitor, 0) => AgentOutcome::Reachable,
        (Action::Monitor, 2) => AgentOutcome::Power(PowerState::Off),
        (Action::List | Action::ListStatus, 0) => parse_ports(request, &attempt.stdout),
        (Action::Metadata, 0) => AgentOutcome::Metadata(attempt.stdout.clone()),
        (Action::Off | Action::On | Action::Reboot | Action::ValidateAll, 0) => {
            AgentOutcome::Success
        }
        _ => failure(code, attempt),
    }
}

fn status_line(stdout: &str) -> Option<PowerState> {
    stdout.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Status:")?.trim();
        match v.to_ascii_uppercase().as_str() {
            "ON" => Some(PowerState::On),
            "OFF" => Some(PowerState::Off),
            _ => Some(PowerState::Unknown),
        }
    })
}

fn failure(code: i32, attempt: &Attempt) -> AgentOutcome {
    // Library agents log "<time> ERROR: Failed: ..." and then a usage hint: the
    // last line holding "Failed:" is the message, from that word on.
    let failed_line = |text: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.find("Failed:").map(|at| l[at..].trim().to_string()))
    };
    let message = failed_line(&attempt.stderr)
        .or_else(|| failed_line(&attempt.stdout))
        .or_else(|| {
            attempt
                .stderr
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("exit status {code}"));
    let lower = attempt.stderr.to_ascii_lowercase();
    let kind = if [
        "unrecognised action",
        "unrecognized action",
        "unsupported action",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        FailureKind::Unsupported
    } else if lower.contains("timed out") || lower.contains("timeout") {
        FailureKind::DeviceTimeout
    } else {
        FailureKind::Exit(code)
    };
    AgentOutcome::failed(kind, message)
}

fn parse_ports(request: &AgentRequest, stdout: &str) -> AgentOutcome {
    let sep = request
        .params
        .get("separator")
        .filter(|s| !s.is_empty())
        .map_or(",", String::as_str);
    let lines: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() == 1 && lines[0].eq_ignore_ascii_case("N/A") {
        return AgentOutcome::NoPorts;
    }
    let with_state = request.action == Action::ListStatus;
    let mut ports = Vec::new();
    for line in lines.into_iter().take(MAX_PORTS) {
        let mut fields = line.splitn(3, sep).map(str::trim);
        let port = fields.next().unwrap_or_default().to_string();
        if port.is_empty() {
            return AgentOutcome::failed(
                FailureKind::BadOutput,
                format!("list line without a port: {line:?}"),
            );
        }
        let alias = fields.next().filter(|a| !a.is_empty()).map(str::to_string);
        let state = if with_state {
            Some(
                match fields.next().map(str::to_ascii_uppercase).as_deref() {
                    Some("ON") => PowerState::On,
                    Some("OFF") => PowerState::Off,
                    _ => PowerState::Unknown,
                },
            )
        } else {
            None
        };
        ports.push(Port { port, alias, state });
    }
    AgentOutcome::Ports(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(code: i32, stdout: &str, stderr: &str) -> Attempt {
        Attempt {
            exit: Exit::Code(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            stdout_dropped: 0,
            stderr_dropped: 0,
            duration: Duration::ZERO,
        }
    }

    fn req(action: Action) -> AgentRequest {
        AgentRequest::new("fence_x", action)
    }

    #[test]
    fn status_reads_exit_code_and_checks_the_status_line() {
        let r = req(Action::Status);
        assert_eq!(
            interpret(&r, &attempt(0, "Status: ON\n", "")),
            AgentOutcome::Power(PowerState::On)
        );
        assert_eq!(
            interpret(&r, &attempt(2, "Status: OFF\n", "")),
            AgentOutcome::Power(PowerState::Off)
        );
        assert!(matches!(
            interpret(&r, &attempt(0, "Status: OFF\n", "")),
            AgentOutcome::Failed(AgentFailure {
                kind: FailureKind::BadOutput,
                ..
            })
        ));
        assert!(matches!(
            interpret(&r, &attempt(1, "", "Failed: Unable to connect\n")),
            AgentOutcome::Failed(AgentFailure { kind: FailureKind::Exit(1), ref message }) if message == "Failed: Unable to connect"
        ));
    }

    #[test]
    fn monitor_codes() {
        let r = req(Action::Monitor);
        assert_eq!(interpret(&r, &attempt(0, "", "")), AgentOutcome::Reachable);
        assert_eq!(
            interpret(&r, &attempt(2, "", "")),
            AgentOutcome::Power(PowerState::Off)
        );
        assert!(!interpret(&r, &attempt(1, "", "")).is_success());
    }

    #[test]
    fn failures_are_classified_from_stderr() {
        let r = req(Action::List);
        assert_eq!(
            interpret(
                &r,
                &attempt(
                    1,
                    "",
                    "2026 ERROR: Failed: Unrecognised action 'list'\n\nERROR: Please use '-h'\n"
                )
            ),
            AgentOutcome::failed(
                FailureKind::Unsupported,
                "Failed: Unrecognised action 'list'"
            )
        );
        let r = req(Action::Off);
        assert_eq!(
            interpret(
                &r,
                &attempt(1, "", "Failed: Timed out waiting to power OFF\n")
            ),
            AgentOutcome::failed(
                FailureKind::DeviceTimeout,
                "Failed: Timed out waiting to power OFF"
            )
        );
        assert_eq!(
            interpret(&r, &attempt(3, "", "")),
            AgentOutcome::failed(FailureKind::Exit(3), "exit status 3")
        );
        let mut a = attempt(0, "", "");
        a.exit = Exit::TimedOut;
        assert!(matches!(
            interpret(&r, &a),
            AgentOutcome::Failed(AgentFailure {
                kind: FailureKind::TimedOut,
                ..
            })
        ));
    }

    #[test]
    fn list_and_list_status_parse_ports() {
        let r = req(Action::List);
        assert_eq!(
            interpret(&r, &attempt(0, "N/A\n", "")),
            AgentOutcome::NoPorts
        );
        assert_eq!(
            interpret(&r, &attempt(0, "1,node1\n2,\n\n", "")),
            AgentOutcome::Ports(vec![
                Port {
                    port: "1".into(),
                    alias: Some("node1".into()),
                    state: None
                },
                Port {
                    port: "2".into(),
                    alias: None,
                    state: None
                },
            ])
        );
        let r = req(Action::ListStatus).param("separator", ":");
        assert_eq!(
            interpret(&r, &attempt(0, "1:n1:ON\n2:n2:off\n3:n3:??\n", "")),
            AgentOutcome::Ports(vec![
                Port {
                    port: "1".into(),
                    alias: Some("n1".into()),
                    state: Some(PowerState::On)
                },
                Port {
                    port: "2".into(),
                    alias: Some("n2".into()),
                    state: Some(PowerState::Off)
                },
                Port {
                    port: "3".into(),
                    alias: Some("n3".into()),
                    state: Some(PowerState::Unknown)
                },
            ])
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let msg = "é".repeat(MAX_MESSAGE);
        let AgentOutcome::Failed(f) = AgentOutcome::failed(FailureKind::Agent, msg) else {
            unreachable!("failed() builds a failure")
        };
        assert!(f.message.len() <= MAX_MESSAGE && f.message.len() >= MAX_MESSAGE - 1);
    }
}
