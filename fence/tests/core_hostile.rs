//! Bad or hostile input never panics the fencer and never grows it without bound:
//! random inputs by seed — unknown and repeated call ids, peers' messages with
//! arbitrary fields (and raw bytes through the decoder), membership churn, time
//! that jumps back and forth.

mod core_support;

use core_support::{device, dummy_caps};
use phalanx_fence::Action;
use phalanx_fence::core::{
    CallId, CallOutcome, Delegate, FenceRequest, Fencer, FencerConfig, FencerInput, FencerOutput,
    HARD_MAX_HISTORY, HistoryEntry, LevelTarget, OpId, OpState, PeerMessage, SeededRng,
    decode_peer_message,
};
use phalanx_totem::Time;
use std::collections::BTreeSet;

fn pick<T: Copy>(rng: &mut SeededRng, v: &[T]) -> T {
    v[rng.up_to(v.len() as u64 - 1) as usize]
}

fn random_entry(rng: &mut SeededRng) -> HistoryEntry {
    let origin = 1 + rng.up_to(4) as u32;
    HistoryEntry {
        id: OpId {
            origin,
            incarnation: rng.up_to(3),
            seq: rng.up_to(1_000_000),
        },
        target: pick(rng, &["node1", "node2", "node3", "", "x"]).to_string(),
        action: pick(rng, &Action::ALL),
        origin: if rng.up_to(9) == 0 { 77 } else { origin },
        delegate: pick(
            rng,
            &[None, Some(Delegate::Manual), Some(Delegate::Node(3))],
        ),
        client: "c".repeat(rng.up_to(300) as usize),
        state: pick(rng, &[OpState::Pending, OpState::Done, OpState::Failed]),
        completed: (rng.up_to(1) == 0).then(|| Time::from_nanos(rng.next_u64())),
        exit_reason: (rng.up_to(1) == 0).then(|| "r".repeat(rng.up_to(2000) as usize)),
        target_joined: None,
    }
}

#[test]
fn random_hostile_inputs_never_panic() {
    let mut outputs = 0u64;
    let mut executed_for_peers = 0u64;
    for seed in 0..120 {
        let mut rng = SeededRng::new(seed);
        let mut f = Fencer::new(FencerConfig::new(1, "node1", 1, seed));
        let _ = f.handle(
            Time::ZERO,
            FencerInput::RegisterDevice(device("d", &[("pcmk_host_check", "none")], dummy_caps())),
        );
        let _ = f.handle(
            Time::ZERO,
            FencerInput::RegisterDevice(device("dl", &[], dummy_caps())),
        );
        // A fabric whose `on` runs on the target: peers may ask us to run it,
        // and our own `on` of another node goes out as an Execute.
        let on_target = phalanx_fence::core::AgentCapabilities {
            on_target: true,
            on_automatic: true,
            ..dummy_caps()
        };
        let _ = f.handle(
            Time::ZERO,
            FencerInput::RegisterDevice(device("scsi", &[("pcmk_host_check", "none")], on_target)),
        );
        let _ = f.handle(
            Time::ZERO,
            FencerInput::RegisterLevel {
                target: LevelTarget::Pattern("node[23]".into()),
                index: 2,
                devices: vec!["dl".into(), "ghost".into()],
            },
        );
        let mut now = Time::ZERO;
        for _ in 0..400 {
            // Time mostly moves on, sometimes jumps back.
            now = if rng.up_to(19) == 0 {
                Time::from_nanos(
                    now.as_nanos()
                        .saturating_sub(rng.up_to(100) * 1_000_000_000),
                )
            } else {
                now + std::time::Duration::from_millis(rng.up_to(20_000))
            };
            let input = match rng.up_to(9) {
                0 | 1 => {
                    let mut r = FenceRequest::new(
                        pick(&mut rng, &["node2", "node3", "node9"]),
                        pick(&mut rng, &Action::ALL),
                        pick(&mut rng, &["a", "b"]),
                        rng.up_to(5),
                    );
                    r.delay = pick(&mut rng, &[None, Some(-1), Some(0), Some(3)]);
                    r.timeout = Some(std::time::Duration::from_secs(rng.up_to(30)));
                    FencerInput::Request(r)
                }
                2 | 3 => {
                    let outcome = match rng.up_to(3) {
                        0 => CallOutcome::Success {
                            output: pick(&mut rng, &["", "node2\nnode3", "garbage ,;\\n"]).into(),
                        },
                        1 => CallOutcome::Failed {
                            exit_code: pick(&mut rng, &[None, Some(1), Some(2)]),
                            reason: "x".into(),
                        },
                        _ => CallOutcome::TimedOut,
                    };
                    FencerInput::AgentDone {
                        call: CallId(rng.up_to(40)),
                        outcome,
                    }
                }
                4 => {
                    let msg = match rng.up_to(5) {
                        // A peer asks us (or someone else) to run an action.
                        3 => PeerMessage::Execute {
                            id: OpId {
                                origin: pick(&mut rng, &[1, 2, 3]),
                                incarnation: 1,
                                seq: rng.up_to(50),
                            },
                            call: CallId(rng.up_to(40)),
                            device: pick(&mut rng, &["scsi", "d", "ghost"]).into(),
                            target: pick(&mut rng, &["node1", "NODE1", "node2"]).into(),
                            action: pick(&mut rng, &Action::ALL),
                            timeout_ms: pick(&mut rng, &[0, 1, 5_000, u64::MAX]),
                        },
                        // Answers to calls we may or may not have handed out.
                        4 => PeerMessage::Executed {
                            id: OpId {
                                origin: pick(&mut rng, &[1, 2]),
                                incarnation: pick(&mut rng, &[0, 1]),
                                seq: rng.up_to(50),
                            },
                            call: CallId(rng.up_to(40)),
                            outcome: if rng.up_to(1) == 0 {
                                CallOutcome::TimedOut
                            } else {
                                CallOutcome::Success {
                                    output: "x".repeat(rng.up_to(3000) as usize),
                                }
                            },
                        },
                        0 => PeerMessage::Started {
                            id: OpId {
                                origin: 2,
                                incarnation: 1,
                                seq: rng.up_to(50),
                            },
                            target: pick(&mut rng, &["node2", "node3", ""]).into(),
                            action: pick(&mut rng, &Action::ALL),
                            client: "p".into(),
                            total_timeout_s: pick(&mut rng, &[0, 5, u64::MAX]),
                            target_joined: None,
                        },
                        1 => PeerMessage::Result(random_entry(&mut rng)),
                        _ if rng.up_to(3) == 0 => PeerMessage::History(
                            (0..rng.up_to(1200))
                                .map(|_| random_entry(&mut rng))
                                .collect(),
                        ),
                        _ => PeerMessage::Result(random_entry(&mut rng)),
                    };
                    FencerInput::Peer {
                        from: pick(&mut rng, &[1, 2, 3]),
                        msg,
                    }
                }
                5 => {
                    let bytes: Vec<u8> = (0..rng.up_to(80)).map(|_| rng.next_u64() as u8).collect();
                    match decode_peer_message(&bytes) {
                        Ok(msg) => FencerInput::Peer { from: 2, msg },
                        Err(_) => FencerInput::Timeout,
                    }
                }
                6 => FencerInput::Members(
                    (1..=4)
                        .filter(|_| rng.up_to(1) == 0)
                        .collect::<BTreeSet<u32>>(),
                ),
                7 => FencerInput::Confirm {
                    target: pick(&mut rng, &["node2", "", "node1"]).into(),
                    client: "adm".into(),
                    call: 1,
                    target_joined: None,
                },
                _ => FencerInput::Timeout,
            };
            let _ = f.handle(now, input);
            loop {
                match f.poll_output() {
                    FencerOutput::Timeout(_) => break,
                    _ => outputs += 1,
                }
            }
            assert!(
                f.history().len() <= HARD_MAX_HISTORY,
                "seed {seed}: history {}",
                f.history().len()
            );
            assert!(f.in_flight() <= f.config().max_ops, "seed {seed}");
            assert!(
                f.calls_outstanding() <= 64 * 8,
                "seed {seed}: {} calls",
                f.calls_outstanding()
            );
        }
        executed_for_peers += f.stats().executed_for_peers;
    }
    // Peers' Execute messages did reach the agent runner path, not only refusals.
    assert!(executed_for_peers > 0, "no action run for a peer");
    assert!(
        outputs > 10_000,
        "the inputs did drive the fencer ({outputs} outputs)"
    );
}
