//! State the node publishes without an event: link states, vote counts and
//! totem's recovery counters, polled and reported when they change; and quorum
//! notifications, relayed as they arrive.

use super::Ctx;
use super::emit::{Emitter, ids};
use phalanx::node::{LinkState, Quorum};
use phalanx::quorum::{NodeState, NodeStatus};
use phalanx::totem::Stats;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the poller looks unless told otherwise (`poll MS`). Link changes
/// are timed from the line's timestamp, so the interval bounds the error of a
/// measured fail-over; a controller that measures asks for a shorter one.
pub const DEFAULT_POLL_MS: u64 = 20;

fn members(nodes: &[NodeStatus]) -> String {
    let m: Vec<u32> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Member)
        .map(|n| n.node)
        .collect();
    ids(&m)
}

/// Relays every quorum notification as a `quorum` line, timestamped on arrival;
/// first the state as last decided, unless a notification is already queued
/// (the node publishes its state before notifying, so a queued notification is
/// at least as new and follows). Nothing when quorum is not configured.
///
/// Each line carries the driver step that decided it, as `config` lines do:
/// this thread and the event loop print independently, so a line's place in
/// the output does not say which configuration the decision came with; the
/// step does (equal steps: the same Stack inputs).
pub fn relay_quorum(quorum: &Quorum, out: Emitter) {
    let changes = quorum.notifications();
    let Some(phalanx::node::QuorumInfo {
        cluster: info,
        nodes,
        step,
        ..
    }) = quorum.info()
    else {
        return;
    };
    if let (true, Some(ring)) = (changes.is_empty(), info.ring) {
        out.emit(
            "quorum",
            &format!(
                "quorate={} ring={ring} members={} step={step}",
                u8::from(info.quorate),
                members(&nodes)
            ),
        );
    }
    let spawned = std::thread::Builder::new()
        .name("phalanxd-quorum".into())
        .spawn(move || {
            for c in changes.iter() {
                out.emit(
                    "quorum",
                    &format!(
                        "quorate={} ring={} members={} step={}",
                        u8::from(c.quorate),
                        c.ring,
                        members(&c.nodes),
                        c.step
                    ),
                );
            }
        });
    if let Err(e) = spawned {
        eprintln!("phalanxd: cannot relay quorum notifications: {e}");
    }
}

/// Totem's recovery counters as fields.
pub fn recovery_fields(t: &Stats) -> String {
    format!(
        "token_retransmits={} mcast_retransmits={} token_losses={} consensus_timeouts={} failed_to_receive={}",
        t.token_retransmits,
        t.mcast_retransmits,
        t.token_losses,
        t.consensus_timeouts,
        t.failed_to_receive
    )
}

/// Polls (every `poll_ms`) until the node stops: `link` lines for every (peer, link) first seen or
/// changed, `votes` lines when the vote count changes (the device's vote alone
/// does not change the notified quorum state), and with `recovery-trace on`,
/// `recovery` lines when totem's recovery counters change.
pub fn start_poller(ctx: Arc<Ctx>, quorum: Quorum) {
    let spawned = std::thread::Builder::new()
        .name("phalanxd-poll".into())
        .spawn(move || {
            let mut links: BTreeMap<(u32, u8), LinkState> = BTreeMap::new();
            let mut votes = None;
            let mut recovery = None;
            while !ctx.stop.load(Ordering::SeqCst) {
                for l in ctx.handle.links() {
                    if links.insert((l.peer, l.link), l.state) != Some(l.state) {
                        let state = if l.state == LinkState::Up {
                            "up"
                        } else {
                            "down"
                        };
                        let rtt = l.rtt.map_or("-".into(), |d| d.as_micros().to_string());
                        ctx.out.emit(
                            "link",
                            &format!("peer={} link={} state={state} rtt_us={rtt}", l.peer, l.link),
                        );
                    }
                }
                if let Some(i) = quorum.info().map(|q| q.cluster) {
                    let now = (
                        i.quorate,
                        i.ring,
                        i.total_votes,
                        i.expected_votes,
                        i.quorum,
                        i.device_cast,
                    );
                    if votes != Some(now) {
                        votes = Some(now);
                        ctx.out.emit(
                            "votes",
                            &format!(
                                "quorate={} ring={} total={} expected={} quorum={} device={}",
                                u8::from(i.quorate),
                                i.ring.map_or("-".into(), |r| r.to_string()),
                                i.total_votes,
                                i.expected_votes,
                                i.quorum,
                                u8::from(i.device_cast)
                            ),
                        );
                    }
                }
                if ctx.recovery_trace.load(Ordering::SeqCst) {
                    let fields = recovery_fields(&ctx.handle.stats().totem);
                    if recovery.as_ref() != Some(&fields) {
                        ctx.out.emit("recovery", &fields);
                        recovery = Some(fields);
                    }
                }
                let every = ctx.poll_ms.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(every));
            }
        });
    if let Err(e) = spawned {
        eprintln!("phalanxd: cannot start the poller: {e}");
    }
}
