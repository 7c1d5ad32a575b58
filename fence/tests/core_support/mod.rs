//! A small driver for the fencer core in tests: a simulated agent per device, and
//! a loop that answers agent calls and jumps virtual time to the next deadline.
#![allow(dead_code)]

use phalanx_fence::Action;
use phalanx_fence::core::{
    AgentCall, AgentCapabilities, CallOutcome, Device, FenceEvent, FenceRequest, Fencer,
    FencerConfig, FencerInput, FencerOutput, LevelTarget, PeerMessage,
};
use phalanx_totem::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a simulated device answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exit 0 after `latency`.
    Pass,
    /// Exit 1 after `latency`.
    Fail,
    /// Reported as timed out after the call's timeout.
    Timeout,
    /// Never answers (a lost call).
    Hang,
    /// Off and reboot pass, `on` fails.
    FailOn,
    /// `list` answers with this device's target list; everything else passes.
    List(&'static str),
    /// `status` exits 2 (port off: reachable); everything else passes.
    StatusOff,
}

/// `fence_dummy`-like capabilities (every action, `port`).
pub fn dummy_caps() -> AgentCapabilities {
    AgentCapabilities::power_switch()
}

/// Capabilities of a fence_dummy variant without `on`.
pub fn no_on_caps() -> AgentCapabilities {
    AgentCapabilities {
        on: false,
        ..AgentCapabilities::power_switch()
    }
}

pub fn device(id: &str, params: &[(&str, &str)], caps: AgentCapabilities) -> Device {
    let p: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Device::new(id, "fence_dummy", p, caps, 0).unwrap_or_else(|e| panic!("{id}: {e}"))
}

pub fn secs(s: u64) -> Time {
    Time::from_nanos(s * 1_000_000_000)
}

/// One emitted agent call with the virtual time it was emitted at.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub at: Time,
    pub call: AgentCall,
}

pub struct Harness {
    pub f: Fencer,
    pub now: Time,
    pub modes: BTreeMap<String, Mode>,
    pub latency: Duration,
    pub calls: Vec<Emitted>,
    pub broadcasts: Vec<PeerMessage>,
    pub events: Vec<FenceEvent>,
    /// Calls waiting for their simulated answer: (answer time, call id, outcome).
    pending: Vec<(Time, phalanx_fence::core::CallId, CallOutcome)>,
}

impl Harness {
    pub fn new(seed: u64) -> Self {
        let cfg = FencerConfig::new(1, "node1", 1, seed);
        Harness {
            f: Fencer::new(cfg),
            now: Time::ZERO,
            modes: BTreeMap::new(),
            latency: Duration::from_millis(100),
            calls: Vec::new(),
            broadcasts: Vec::new(),
            events: Vec::new(),
            pending: Vec::new(),
        }
    }

    pub fn add(&mut self, d: Device, mode: Mode) {
        self.modes.insert(d.id().to_string(), mode);
        self.f
            .handle(self.now, FencerInput::RegisterDevice(d))
            .expect("device registers");
    }

    pub fn level(&mut self, target: &str, index: u8, devices: &[&str]) {
        self.f
            .handle(
                self.now,
                FencerInput::RegisterLevel {
                    target: LevelTarget::Node(target.into()),
                    index,
                    devices: devices.iter().map(|s| s.to_string()).collect(),
                },
            )
            .expect("level registers");
    }

    pub fn input(&mut self, input: FencerInput) {
        self.f.handle(self.now, input).expect("input accepted");
        self.drain();
    }

    pub fn request(&mut self, target: &str, action: Action, timeout_s: u64, delay: Option<i64>) {
        let mut r = FenceRequest::new(target, action, "stonith_admin", 1);
        r.timeout = Some(Duration::from_secs(timeout_s));
        r.delay = delay;
        self.input(FencerInput::Request(r));
    }

    /// Collects outputs; schedules the simulated answers of agent calls.
    pub fn drain(&mut self) {
        loop {
            match self.f.poll_output() {
                FencerOutput::Timeout(_) => break,
                FencerOutput::AgentCall(c) => {
                    let mode = self.modes.get(&c.device).copied().unwrap_or(Mode::Fail);
                    let ok = CallOutcome::Success {
                        output: String::new(),
                    };
                    let fail = CallOutcome::Failed {
                        exit_code: Some(1),
                        reason: "mode=fail".into(),
                    };
                    let (at, outcome) = match mode {
                        Mode::Hang => {
                            self.calls.push(Emitted {
                                at: self.now,
                                call: c,
                            });
                            continue;
                        }
                        Mode::FailOn if c.action == Action::On => (self.now + self.latency, fail),
                        Mode::List(out) if c.action == Action::List => (
                            self.now + self.latency,
                            CallOutcome::Success { output: out.into() },
                        ),
                        Mode::StatusOff if c.action == Action::Status => (
                            self.now + self.latency,
                            CallOutcome::Failed {
                                exit_code: Some(2),
                                reason: "off".into(),
                            },
                        ),
                        Mode::Pass | Mode::FailOn | Mode::List(_) | Mode::StatusOff => {
                            (self.now + self.latency, ok)
                        }
                        Mode::Fail => (self.now + self.latency, fail),
                        Mode::Timeout => (self.now + c.timeout, CallOutcome::TimedOut),
                    };
                    self.pending.push((at, c.call, outcome));
                    self.calls.push(Emitted {
                        at: self.now,
                        call: c,
                    });
                }
                FencerOutput::Broadcast(m) => self.broadcasts.push(m),
                FencerOutput::Event(e) => self.events.push(e),
            }
        }
    }

    /// Runs until the fencer is idle (no deadline, no pending answers) or `limit`
    /// virtual seconds have passed.
    pub fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.drain();
            let next_answer = self.pending.iter().map(|p| p.0).min();
            let next_timer = self.f.poll_timeout();
            let next = match (next_answer, next_timer) {
                (Some(a), Some(t)) => a.min(t),
                (Some(a), None) => a,
                (None, Some(t)) => t,
                (None, None) => return,
            };
            if next > end {
                return;
            }
            self.now = self.now.max(next);
            if next_answer == Some(next) {
                let i = self
                    .pending
                    .iter()
                    .position(|p| p.0 == next)
                    .expect("present");
                let (_, call, outcome) = self.pending.remove(i);
                self.f
                    .handle(self.now, FencerInput::AgentDone { call, outcome })
                    .expect("agent result accepted");
            } else {
                self.f
                    .handle(self.now, FencerInput::Timeout)
                    .expect("timeout accepted");
            }
        }
    }

    /// The total timeout of the (first) operation, from its Started broadcast.
    pub fn total_timeout(&self) -> Option<u64> {
        self.broadcasts.iter().find_map(|m| match m {
            PeerMessage::Started {
                total_timeout_s, ..
            } => Some(*total_timeout_s),
            _ => None,
        })
    }

    /// `(device, action)` of every fencing call in order (queries left out).
    pub fn fence_calls(&self) -> Vec<(String, Action)> {
        self.calls
            .iter()
            .filter(|e| e.call.action.changes_power())
            .map(|e| (e.call.device.clone(), e.call.action))
            .collect()
    }

    /// The result of the first local request.
    pub fn outcome(&self) -> Option<bool> {
        self.events.iter().find_map(|e| match e {
            FenceEvent::RequestDone { result, .. } => Some(result.is_ok()),
            _ => None,
        })
    }
}
