//! `on_target` agents (§2.8: fence_scsi, fence_mpath): the `on` (unfencing) of
//! such a device runs on the target node itself — the originating fencer hands it
//! to the target's fencer over the fencer messages ([`PeerMessage::Execute`]) and
//! finishes the operation with its answer ([`PeerMessage::Executed`]). Three
//! fencers, broadcasts delivered through their wire form to every other member.

use phalanx_fence::Action;
use phalanx_fence::core::{
    AgentCall, AgentCapabilities, CallOutcome, Device, FenceEvent, FenceRequest, Fencer,
    FencerConfig, FencerInput, FencerOutput, PeerMessage, decode_peer_message, encode_peer_message,
};
use phalanx_totem::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// fence_scsi's facts: no reboot, `on` automatic and on the target.
fn scsi_caps() -> AgentCapabilities {
    AgentCapabilities {
        reboot: false,
        on_automatic: true,
        on_target: true,
        ..AgentCapabilities::power_switch()
    }
}

fn device(id: &str, caps: AgentCapabilities) -> Device {
    let params = BTreeMap::from([("pcmk_host_check".to_string(), "none".to_string())]);
    Device::new(id, "fence_scsi", params, caps, 0).expect("device")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agents {
    Pass,
    /// Agents on this node never answer.
    HangOn(u32),
    /// Agents fail with exit 1.
    Fail,
}

struct Cluster {
    now: Time,
    nodes: BTreeMap<u32, Fencer>,
    members: BTreeSet<u32>,
    agents: Agents,
    /// (node that ran it, the call).
    ran: Vec<(u32, AgentCall)>,
    /// (node, event).
    events: Vec<(u32, FenceEvent)>,
    /// Answers due: (at, node, call, outcome).
    due: Vec<(Time, u32, phalanx_fence::core::CallId, CallOutcome)>,
    executes: usize,
}

impl Cluster {
    fn new(register: impl Fn(u32) -> Vec<Device>, agents: Agents) -> Cluster {
        let members: BTreeSet<u32> = (1..=3).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            let mut f = Fencer::new(FencerConfig::new(id, &format!("node{id}"), 1, id.into()));
            for d in register(id) {
                f.handle(Time::ZERO, FencerInput::RegisterDevice(d))
                    .expect("register");
            }
            f.handle(Time::ZERO, FencerInput::Members(members.clone()))
                .expect("members");
            nodes.insert(id, f);
        }
        let mut c = Cluster {
            now: Time::ZERO,
            nodes,
            members,
            agents,
            ran: Vec::new(),
            events: Vec::new(),
            due: Vec::new(),
            executes: 0,
        };
        c.settle();
        c
    }

    fn request(&mut self, from: u32, target: &str, action: Action) {
        let mut r = FenceRequest::new(target, action, "unfence", 1);
        r.timeout = Some(Duration::from_secs(10));
        r.allow_self = true;
        let now = self.now;
        self.nodes
            .get_mut(&from)
            .expect("node")
            .handle(now, FencerInput::Request(r))
            .expect("request taken");
        self.settle();
    }

    fn settle(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<u32> = self.nodes.keys().copied().collect();
            for id in ids {
                loop {
                    let out = self.nodes.get_mut(&id).expect("node").poll_output();
                    match out {
                        FencerOutput::Timeout(_) => break,
                        FencerOutput::AgentCall(c) => {
                            moved = true;
                            let answer = match self.agents {
                                Agents::HangOn(n) if n == id => None,
                                Agents::Fail => Some(CallOutcome::Failed {
                                    exit_code: Some(1),
                                    reason: "Failed: no reservation key".into(),
                                }),
                                _ => Some(CallOutcome::Success {
                                    output: "Success: Powered ON\n".into(),
                                }),
                            };
                            if let Some(o) = answer {
                                self.due.push((
                                    self.now + Duration::from_millis(200),
                                    id,
                                    c.call,
                                    o,
                                ));
                            }
                            self.ran.push((id, c));
                        }
                        FencerOutput::Broadcast(m) => {
                            moved = true;
                            if matches!(m, PeerMessage::Execute { .. }) {
                                self.executes += 1;
                            }
                            let m = decode_peer_message(&encode_peer_message(&m))
                                .expect("the wire form decodes");
                            let peers: Vec<u32> =
                                self.members.iter().copied().filter(|p| *p != id).collect();
                            for p in peers {
                                let now = self.now;
                                self.nodes
                                    .get_mut(&p)
                                    .expect("peer")
                                    .handle(
                                        now,
                                        FencerInput::Peer {
                                            from: id,
                                            msg: m.clone(),
                                        },
                                    )
                                    .expect("peer message");
                            }
                        }
                        FencerOutput::Event(e) => {
                            moved = true;
                            self.events.push((id, e));
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.settle();
            let answer = self.due.iter().map(|d| d.0).min();
            let timer = self.nodes.values().filter_map(|f| f.poll_timeout()).min();
            let Some(next) = [answer, timer].into_iter().flatten().min() else {
                return;
            };
            if next > end {
                return;
            }
            self.now = self.now.max(next);
            if let Some(i) = self.due.iter().position(|d| d.0 <= self.now) {
                let (_, node, call, outcome) = self.due.remove(i);
                let now = self.now;
                // A stale answer is ignored by the fencer (not an error).
                let _ = self
                    .nodes
                    .get_mut(&node)
                    .expect("node")
                    .handle(now, FencerInput::AgentDone { call, outcome });
            } else {
                for f in self.nodes.values_mut() {
                    if f.poll_timeout().is_some_and(|t| t <= self.now) {
                        f.handle(self.now, FencerInput::Timeout).expect("timeout");
                    }
                }
            }
        }
    }

    fn done(&self, node: u32) -> Option<Result<(), String>> {
        self.events.iter().find_map(|(n, e)| match e {
            FenceEvent::RequestDone { result, .. } if *n == node => {
                Some(result.clone().map(|_| ()).map_err(|f| f.reason))
            }
            _ => None,
        })
    }
}

fn everywhere(_: u32) -> Vec<Device> {
    vec![device("scsi", scsi_caps())]
}

#[test]
fn the_on_of_an_on_target_device_runs_on_the_target_node() {
    let mut c = Cluster::new(everywhere, Agents::Pass);
    c.request(1, "node3", Action::On);
    c.run(Duration::from_secs(60));
    // Exactly one agent call, on node 3, about node 3.
    let ran: Vec<(u32, Action, Option<String>)> = c
        .ran
        .iter()
        .map(|(n, call)| (*n, call.action, call.target.clone()))
        .collect();
    assert_eq!(ran, [(3, Action::On, Some("node3".to_string()))]);
    assert_eq!(c.executes, 1);
    assert_eq!(c.done(1), Some(Ok(())));
    // Every member records the unfencing as done.
    for id in 1..=3 {
        assert!(
            c.events.iter().any(|(n, e)| *n == id
                && matches!(e, FenceEvent::Fenced(h) if h.target == "node3" && h.action == Action::On)),
            "node {id} did not see the unfencing"
        );
    }
    assert_eq!(c.nodes[&1].stats().delegated, 1);
    assert_eq!(c.nodes[&3].stats().executed_for_peers, 1);
    assert_eq!(c.nodes[&2].stats().executed_for_peers, 0);
    assert_eq!(c.nodes[&3].calls_outstanding(), 0);
    assert_eq!(c.nodes[&1].calls_outstanding(), 0);
}

#[test]
fn off_and_unfencing_of_the_local_node_run_where_they_are_asked() {
    // `off` is not on_target: node 1 runs it itself.
    let mut c = Cluster::new(everywhere, Agents::Pass);
    c.request(1, "node3", Action::Off);
    c.run(Duration::from_secs(60));
    assert_eq!(
        c.ran
            .iter()
            .map(|(n, call)| (*n, call.action))
            .collect::<Vec<_>>(),
        [(1, Action::Off)]
    );
    assert_eq!(c.executes, 0);
    assert_eq!(c.done(1), Some(Ok(())));

    // Node 1 unfencing itself: it is the target, so it runs the `on` locally.
    let mut c = Cluster::new(everywhere, Agents::Pass);
    c.request(1, "node1", Action::On);
    c.run(Duration::from_secs(60));
    assert_eq!(
        c.ran
            .iter()
            .map(|(n, call)| (*n, call.action))
            .collect::<Vec<_>>(),
        [(1, Action::On)]
    );
    assert_eq!(c.executes, 0);
    assert_eq!(c.done(1), Some(Ok(())));

    // A device without on_target runs its `on` at the originator.
    let plain = AgentCapabilities {
        on_target: false,
        ..scsi_caps()
    };
    let mut c = Cluster::new(move |_| vec![device("scsi", plain.clone())], Agents::Pass);
    c.request(1, "node3", Action::On);
    c.run(Duration::from_secs(60));
    assert_eq!(
        c.ran
            .iter()
            .map(|(n, call)| (*n, call.action))
            .collect::<Vec<_>>(),
        [(1, Action::On)]
    );
}

#[test]
fn the_targets_failure_or_silence_fails_the_unfencing() {
    // The agent fails on the target: the originator hears it (with retries:
    // pcmk_on_retries defaults to 2 attempts, each on the target).
    let mut c = Cluster::new(everywhere, Agents::Fail);
    c.request(1, "node3", Action::On);
    c.run(Duration::from_secs(120));
    let reason = c.done(1).expect("done").expect_err("failed");
    assert!(reason.contains("no reservation key"), "{reason}");
    assert!(c.ran.iter().all(|(n, _)| *n == 3), "{:?}", c.ran);
    assert_eq!(c.executes, c.ran.len());

    // The target has no such device: it refuses at once, nothing runs.
    let mut c = Cluster::new(
        |id| {
            if id == 3 { vec![] } else { everywhere(id) }
        },
        Agents::Pass,
    );
    c.request(1, "node3", Action::On);
    c.run(Duration::from_secs(120));
    let reason = c.done(1).expect("done").expect_err("failed");
    assert!(reason.contains("not registered on node3"), "{reason}");
    assert!(c.ran.is_empty());

    // The target's agent never answers: the originator's bound ends it.
    let mut c = Cluster::new(everywhere, Agents::HangOn(3));
    c.request(1, "node3", Action::On);
    c.run(Duration::from_secs(600));
    assert!(matches!(c.done(1), Some(Err(_))), "{:?}", c.done(1));
    assert!(c.ran.iter().all(|(n, _)| *n == 3));
}

#[test]
fn a_remapped_reboot_skips_the_on_that_would_run_on_the_powered_off_target() {
    // One level of two devices: a power switch and an on_target fabric (not
    // automatic). The reboot is remapped to off on both, then on — but the
    // fabric's `on` would have to run on the target, which is off now.
    let fabric = AgentCapabilities {
        on_automatic: false,
        ..scsi_caps()
    };
    let devices = move |_| {
        vec![
            device("pdu", AgentCapabilities::power_switch()),
            device("fabric", fabric.clone()),
        ]
    };
    let mut c = Cluster::new(devices, Agents::Pass);
    for f in c.nodes.values_mut() {
        f.handle(
            Time::ZERO,
            FencerInput::RegisterLevel {
                target: phalanx_fence::core::LevelTarget::Node("node3".into()),
                index: 1,
                devices: vec!["pdu".into(), "fabric".into()],
            },
        )
        .expect("level");
    }
    c.request(1, "node3", Action::Reboot);
    c.run(Duration::from_secs(120));
    let ran: Vec<(u32, String, Action)> = c
        .ran
        .iter()
        .map(|(n, call)| (*n, call.device.clone(), call.action))
        .collect();
    assert_eq!(
        ran,
        [
            (1, "pdu".to_string(), Action::Off),
            (1, "fabric".to_string(), Action::Off),
            (1, "pdu".to_string(), Action::On),
        ]
    );
    assert_eq!(c.executes, 0);
    assert_eq!(c.done(1), Some(Ok(())));
}
