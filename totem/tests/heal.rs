//! Healing a partition is one configuration change at every node.
//!
//! Scenario: nodes on LAN latencies (50–200 µs a link), a partition (e.g.
//! {1,2} | {3}), both sides form their rings, then — at a random phase of the
//! token, hold and merge timers — the links come back, at once or one direction
//! after the other, maybe losing their first datagrams or flushing old ones.
//! Each node must install exactly one regular configuration between the heal and
//! the merged ring, and in no schedule may a node lose a peer of its own side
//! (one it was never cut off from). Before the fixes described in docs/totem.md
//! ("Heal: one configuration change") a third of clean heals took two changes, a
//! direction coming back some 80 ms after the others could cost node 1 its peer
//! 2, and datagrams flushed by neighbour resolution made nearly every heal two
//! changes.
//!
//! `sweep` and `replay` (ignored) explore schedules by hand; see their docs.

mod common;

use common::linknet::{LinkNet, Rng, fmt_ns};
use phalanx_logsys::Logger;
use phalanx_totem::wire::{self, Join, Message};
use phalanx_totem::{Config, NodeId, RingId, Time, Totem};
use std::time::Duration;

const MS: u64 = 1_000_000;

/// One heal schedule.
#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    token_ms: u64,
    side_a: Vec<NodeId>,
    side_b: Vec<NodeId>,
    /// Time between both sides being formed and the heal (phase of the timers).
    settle_ns: u64,
    /// Each direction of each cut link comes back up to this long after the heal.
    asym_max_ns: u64,
    /// Each direction drops up to this many datagrams after coming back.
    drop_first_max: u32,
    /// Each node is stalled once, for up to this long, at a random time in the
    /// second after the heal.
    stall_max_ns: u64,
    /// Directions that come back this long after the heal (instead of a random
    /// delay).
    late: Vec<(NodeId, NodeId, u64)>,
    /// Datagrams sent on a cut link up to this long before it comes back are
    /// delivered then (a neighbour-resolution queue flushing); 0: none.
    flush_ns: u64,
    latency_ns: (u64, u64),
    jitter_ns: u64,
}

impl Plan {
    fn symmetric(seed: u64, token_ms: u64) -> Self {
        let mut r = Rng::new(seed ^ 0x1234);
        Plan {
            seed,
            token_ms,
            side_a: vec![1, 2],
            side_b: vec![3],
            settle_ns: r.range(0, 3 * token_ms * MS),
            asym_max_ns: 0,
            drop_first_max: 0,
            stall_max_ns: 0,
            late: Vec::new(),
            flush_ns: 0,
            latency_ns: (50_000, 200_000),
            jitter_ns: 20_000,
        }
    }
}

struct Outcome {
    heal_ns: u64,
    merged_ns: Option<u64>,
    /// Per node: members of each regular configuration installed since the heal.
    regulars: Vec<Vec<Vec<NodeId>>>,
    net: LinkNet,
}

fn config(token_ms: u64) -> impl Fn(NodeId, Vec<NodeId>) -> Config {
    move |id, ids| Config::new(id, ids).with_token_timeout(Duration::from_millis(token_ms))
}

fn run(plan: &Plan, trace: bool) -> Outcome {
    let all: Vec<NodeId> = {
        let mut v: Vec<NodeId> = plan.side_a.iter().chain(&plan.side_b).copied().collect();
        v.sort();
        v
    };
    let mut net = LinkNet::new(
        all.len(),
        config(plan.token_ms),
        plan.seed,
        plan.latency_ns,
        plan.jitter_ns,
        trace,
    );
    assert!(
        net.run_until(10_000 * MS, |n| n.formed(&all)),
        "seed {}: never formed",
        plan.seed
    );
    net.run_to(net.now + 500 * MS);
    net.hold_while_down(plan.flush_ns);
    net.partition(&plan.side_a, &plan.side_b);
    let (a, b) = (plan.side_a.clone(), plan.side_b.clone());
    assert!(
        net.run_until(net.now + 20_000 * MS, |n| n.formed(&a) && n.formed(&b)),
        "seed {}: sides never formed",
        plan.seed
    );
    net.run_to(net.now + plan.settle_ns);
    let mut r = Rng::new(plan.seed ^ 0xBEEF);
    let heal_ns = net.now;
    for &x in &plan.side_a {
        for &y in &plan.side_b {
            for (f, t) in [(x, y), (y, x)] {
                let late = plan.late.iter().find(|l| (l.0, l.1) == (f, t));
                let at = heal_ns + late.map_or_else(|| r.range(0, plan.asym_max_ns), |l| l.2);
                let drop = r.range(0, u64::from(plan.drop_first_max)) as u32;
                net.schedule_up(at, f, t, drop);
            }
        }
    }
    if plan.stall_max_ns > 0 {
        for &id in &all {
            let at = heal_ns + r.range(0, 1000 * MS);
            let d = r.range(0, plan.stall_max_ns);
            net.schedule_stall(at, id, d);
        }
    }
    let merged = net.run_until(heal_ns + 30_000 * MS, |n| n.formed(&all));
    let merged_ns = merged.then_some(net.now);
    // Anything more would show within a few token timeouts.
    net.run_to(net.now + 4 * plan.token_ms * MS);
    let regulars = all
        .iter()
        .map(|&id| {
            net.regulars_since(id, heal_ns)
                .iter()
                .map(|c| c.members.clone())
                .collect()
        })
        .collect();
    Outcome {
        heal_ns,
        merged_ns,
        regulars,
        net,
    }
}

fn summary(o: &Outcome) -> String {
    format!(
        "heal at {}, merged after {}, regular configurations per node {:?}",
        fmt_ns(o.heal_ns),
        o.merged_ns
            .map(|m| fmt_ns(m - o.heal_ns))
            .unwrap_or_else(|| "never".into()),
        o.regulars
    )
}

/// Whether some node installed a configuration without a member of its own side
/// (a peer it was never cut off from).
fn lost_own_side(plan: &Plan, o: &Outcome) -> bool {
    let all: Vec<NodeId> = (1..=o.regulars.len() as NodeId).collect();
    all.iter().zip(&o.regulars).any(|(id, regs)| {
        let side = if plan.side_a.contains(id) {
            &plan.side_a
        } else {
            &plan.side_b
        };
        regs.iter().any(|m| side.iter().any(|p| !m.contains(p)))
    })
}

fn clean(o: &Outcome) -> bool {
    o.merged_ns.is_some() && o.regulars.iter().all(|r| r.len() == 1)
}

/// Runs `seeds` plans made by `make` and returns the summaries of those that
/// fail `ok`.
fn failures(
    seeds: std::ops::Range<u64>,
    make: impl Fn(u64) -> Plan,
    ok: impl Fn(&Plan, &Outcome) -> bool,
) -> Vec<String> {
    seeds
        .filter_map(|seed| {
            let p = make(seed);
            let o = run(&p, false);
            (!ok(&p, &o)).then(|| format!("{p:?}: {}", summary(&o)))
        })
        .collect()
}

fn sides(p: &mut Plan, a: &[NodeId], b: &[NodeId]) {
    p.side_a = a.to_vec();
    p.side_b = b.to_vec();
}

#[test]
fn a_clean_heal_is_one_configuration_change() {
    // Before the fix one seed in three failed: the merge probe of the other side
    // sent each node of {1,2} to GATHER with only its own ring's members, and they
    // re-installed {1,2} before the newcomer's join arrived.
    let splits: [(&[NodeId], &[NodeId]); 3] =
        [(&[1, 2], &[3]), (&[1, 2], &[3, 4]), (&[1], &[2, 3, 4])];
    for token_ms in [300, 1000] {
        for (a, b) in splits {
            let bad = failures(
                0..60,
                |seed| {
                    let mut p = Plan::symmetric(seed, token_ms);
                    sides(&mut p, a, b);
                    p
                },
                |_, o| clean(o),
            );
            assert!(
                bad.is_empty(),
                "{} heals were not one change:\n{}",
                bad.len(),
                bad.join("\n")
            );
        }
    }
}

#[test]
fn a_heal_one_direction_first_is_one_configuration_change() {
    // Real links come back one direction before the other, and lose their first
    // datagrams. Before the fix, a commit token lost that way left {1,2} silent in
    // COMMIT for a whole token timeout; node 3's shorter consensus timeout declared
    // node 2 failed, and node 1 believed it: ring {1,3}, node 2 alone.
    for (token_ms, asym_ms) in [(300, 100), (1000, 300)] {
        let bad = failures(
            0..150,
            |seed| {
                let mut p = Plan::symmetric(seed, token_ms);
                p.asym_max_ns = asym_ms * MS;
                p.drop_first_max = 2;
                if seed % 2 == 1 {
                    sides(&mut p, &[1, 2], &[3, 4]);
                }
                p
            },
            |_, o| clean(o),
        );
        assert!(
            bad.is_empty(),
            "{} heals were not one change:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
}

#[test]
fn the_lost_commit_token_schedule_is_one_configuration_change() {
    // 3->1, 1->3 and 3->2 are back at once, 2->3 only 50 ms later, so the
    // commit token node 2 passes to node 3 is lost; its re-sending must get
    // through before node 3's consensus timeout.
    let mut p = Plan::symmetric(930, 1000);
    p.late = vec![(2, 3, 50 * MS)];
    let o = run(&p, false);
    assert!(clean(&o), "{}", summary(&o));
}

#[test]
fn no_heal_costs_a_node_a_peer_of_its_own_side() {
    // One direction down longer than the consensus timeout: the node that cannot
    // hear a peer legitimately declares it failed, so the heal may take several
    // configuration changes — but a working ring must not be split for it.
    let bad = failures(
        0..200,
        |seed| {
            let mut p = Plan::symmetric(seed, 1000);
            p.asym_max_ns = 2500 * MS;
            p.drop_first_max = 3;
            if seed % 2 == 1 {
                sides(&mut p, &[1, 2], &[3, 4]);
            }
            p
        },
        |p, o| o.merged_ns.is_some() && !lost_own_side(p, o),
    );
    assert!(
        bad.is_empty(),
        "{} heals split a side:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn a_direction_down_past_the_consensus_timeout_costs_the_newcomer_only() {
    // Inherent, and why: 2->3 stays down 1.5 s, past node 3's consensus timeout
    // (833 ms at token 1000 ms). Node 3 never hears node 2 — neither its join nor
    // the commit token it forwards — so it must declare node 2 failed; node 2,
    // told so, excludes node 3; node 1 takes the word of its own ring's member.
    // {1,2} re-form without 3, and the merge completes once 2->3 is back.
    let mut p = Plan::symmetric(7, 1000);
    p.late = vec![(2, 3, 1500 * MS)];
    let o = run(&p, false);
    assert!(o.merged_ns.is_some(), "{}", summary(&o));
    assert!(!lost_own_side(&p, &o), "{}", summary(&o));
    assert_eq!(
        o.regulars,
        vec![
            vec![vec![1, 2], vec![1, 2, 3]],
            vec![vec![1, 2], vec![1, 2, 3]],
            vec![vec![3], vec![1, 2, 3]],
        ],
        "{}",
        summary(&o)
    );
}

#[test]
fn stale_joins_flushed_at_the_heal_are_one_configuration_change() {
    // Seen in the network-namespace tests: while the cable is out, each side's
    // neighbour resolution holds the datagrams for the other side, and flushes
    // them — seconds old — when the cable is back. Among them are the joins each
    // side sent when it lost the other, ending with `failed {the other side}`.
    // Before, node 1 took node 3's old `failed {1,2}` as news, excluded node 3,
    // and {1,2} re-formed while node 3 waited a consensus timeout alone.
    let splits: [(&[NodeId], &[NodeId]); 2] = [(&[1, 2], &[3]), (&[1, 2], &[3, 4])];
    for token_ms in [300, 1000] {
        for (a, b) in splits {
            let bad = failures(
                0..60,
                |seed| {
                    let mut p = Plan::symmetric(seed, token_ms);
                    sides(&mut p, a, b);
                    p.flush_ns = 3000 * MS;
                    p
                },
                |_, o| clean(o),
            );
            assert!(
                bad.is_empty(),
                "{} heals were not one change:\n{}",
                bad.len(),
                bad.join("\n")
            );
        }
    }
}

#[test]
fn a_newcomer_that_excludes_a_member_of_our_ring_does_not_disturb_it() {
    // Node 3, back from a partition, still in a round in which it could not hear
    // node 1 (a direction that came back late), sends `failed {1}`. Node 2 must
    // not start a round for it: the round could only end with {1,2} again. Before,
    // {1,2} re-formed at each of node 3's joins until its round ended.
    let mut net = LinkNet::new(3, config(1000), 3, (50_000, 200_000), 20_000, false);
    assert!(net.run_until(10_000 * MS, |n| n.formed(&[1, 2, 3])));
    net.partition(&[1, 2], &[3]);
    assert!(net.run_until(net.now + 10_000 * MS, |n| n.formed(&[1, 2])));
    let ring = net.nodes[1].ring_id();
    let gathers = net.nodes[1].stats().gathers;
    let join = Join {
        ring_seq: ring.seq,
        old_ring: RingId {
            rep: 3,
            seq: ring.seq,
        },
        procs: vec![1, 2, 3],
        failed: vec![1],
    };
    let mut bytes = Vec::new();
    wire::encode(3, &Message::Join(join), &mut bytes);
    net.nodes[1].handle_datagram(Time::from_nanos(net.now), &bytes);
    assert!(net.nodes[1].is_operational());
    assert_eq!(net.nodes[1].ring_id(), ring);
    assert_eq!(
        net.nodes[1].stats().gathers,
        gathers,
        "node 2 started a round"
    );
}

/// The joins node `t` sent since the last call, decoded.
fn joins_sent(t: &mut Totem) -> Vec<Join> {
    let mut out = Vec::new();
    while let Some(tx) = t.poll_transmit() {
        if let Ok(Message::Join(j)) = wire::decode(&tx.data).map(|d| d.message) {
            out.push(j);
        }
    }
    out
}

#[test]
fn a_join_that_is_our_merged_view_counts_as_agreement() {
    // Node 3 hears node 1's join {1,2,3} and nothing more (node 1 goes on to
    // COMMIT, where it sends no joins; node 2 cannot reach node 3). Node 1's join
    // was exactly node 3's view after merging it, so at the consensus timeout only
    // node 2 is silent. Before, node 3 declared node 1 failed too and went on to a
    // ring of its own one consensus timeout early.
    let cfg = Config::new(3, vec![1, 2, 3]);
    let consensus = cfg.consensus_timeout;
    let mut t = Totem::new(cfg, None, Time::ZERO, Logger::discard()).unwrap();
    joins_sent(&mut t);
    let join = Join {
        ring_seq: 0,
        old_ring: RingId { rep: 1, seq: 0 },
        procs: vec![1, 2, 3],
        failed: vec![],
    };
    let mut bytes = Vec::new();
    wire::encode(1, &Message::Join(join), &mut bytes);
    let now = Time::from_nanos(MS);
    t.handle_datagram(now, &bytes);
    let merged = joins_sent(&mut t);
    assert_eq!(merged.last().map(|j| j.procs.clone()), Some(vec![1, 2, 3]));
    let deadline = now + consensus;
    assert_eq!(t.poll_timeout().map(|d| d <= deadline), Some(true));
    // Run the join timers up to the consensus timeout.
    while let Some(d) = t.poll_timeout().filter(|d| *d <= deadline) {
        t.handle_timeout(d);
    }
    let after = joins_sent(&mut t);
    let last = after.last().expect("a join after the consensus timeout");
    assert_eq!(last.failed, vec![2], "only node 2 was silent: {after:?}");
}

/// A plan from `key=value` words: `seed`, `token` (ms), `sides` (`12|3`), `asym`
/// (ms), `drop`, `stall` (ms), `late` (`23:1500`, repeatable), `flush` (ms).
fn plan_from(words: &str, seed: u64) -> Plan {
    let mut token_ms = 1000;
    let mut sides = "12|3".to_string();
    let (mut asym, mut drop, mut stall, mut flush) = (0, 0, 0, 0);
    let mut late = Vec::new();
    for w in words.split_whitespace() {
        let (k, v) = w.split_once('=').expect("key=value");
        match k {
            "token" => token_ms = v.parse().unwrap(),
            "sides" => sides = v.to_string(),
            "asym" => asym = v.parse().unwrap(),
            "drop" => drop = v.parse().unwrap(),
            "stall" => stall = v.parse().unwrap(),
            "flush" => flush = v.parse().unwrap(),
            "late" => {
                // `late=23:1500`: 2->3 comes back 1500 ms after the heal.
                let (link, ms) = v.split_once(':').expect("late=FT:ms");
                let b = link.as_bytes();
                let ms: u64 = ms.parse().unwrap();
                late.push((
                    NodeId::from(b[0] - b'0'),
                    NodeId::from(b[1] - b'0'),
                    ms * MS,
                ));
            }
            _ => {}
        }
    }
    let mut p = Plan::symmetric(seed, token_ms);
    let (a, b) = sides.split_once('|').expect("sides a|b");
    let ids = |s: &str| s.bytes().map(|c| NodeId::from(c - b'0')).collect();
    p.side_a = ids(a);
    p.side_b = ids(b);
    p.asym_max_ns = asym * MS;
    p.drop_first_max = drop;
    p.stall_max_ns = stall * MS;
    p.late = late;
    p.flush_ns = flush * MS;
    p
}

fn env_words(var: &str) -> (String, u64, u64) {
    let spec = std::env::var(var).unwrap_or_default();
    let get = |k: &str| {
        spec.split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
    };
    let seeds = get("seeds").unwrap_or(1000);
    let seed = get("seed").unwrap_or(0);
    (spec, seeds, seed)
}

/// Exploration: `HEAL_SWEEP="seeds=2000 token=1000 sides=12|3 asym=10 drop=3
/// stall=100" cargo test -p phalanx-totem --release --test heal sweep --
/// --ignored --nocapture`; prints the seeds whose heal was not one
/// configuration change.
#[test]
#[ignore = "exploration sweep, run by hand"]
fn sweep() {
    let (spec, seeds, _) = env_words("HEAL_SWEEP");
    let mut bad = 0;
    let mut lost = 0;
    let mut hist = std::collections::BTreeMap::new();
    for seed in 0..seeds {
        let p = plan_from(&spec, seed);
        let o = run(&p, false);
        let max = o.regulars.iter().map(|r| r.len()).max().unwrap_or(0);
        *hist.entry(max).or_insert(0) += 1;
        if lost_own_side(&p, &o) {
            lost += 1;
            eprintln!("seed {seed}: lost an own-side peer: {}", summary(&o));
        }
        if !clean(&o) {
            bad += 1;
            if bad <= 10 {
                eprintln!("seed {seed}: {}", summary(&o));
            }
        }
    }
    eprintln!(
        "{seeds} seeds, {bad} not one change, {lost} lost an own-side peer; max changes per node histogram {hist:?}"
    );
}

/// `HEAL_REPLAY="seed=N token=.. sides=.. asym=.. drop=.. stall=.."`: the full
/// trace of one run.
#[test]
#[ignore = "replay of one seed, run by hand"]
fn replay() {
    let (spec, _, seed) = env_words("HEAL_REPLAY");
    let p = plan_from(&spec, seed);
    let o = run(&p, true);
    for l in o.net.trace_lines(o.heal_ns.saturating_sub(10 * MS)) {
        println!("{l}");
    }
    println!("{p:?}\n{}", summary(&o));
}

/// After a re-plug the kernel may hold one node's datagrams to one peer until
/// neighbour resolution answers (up to a second), while every other path works:
/// here node 3 cannot reach node 2 for a second, with traffic from every node.
/// Node 2 still receives node 3's messages, through the other members'
/// retransmissions, so nobody leaves the ring: node 3 (the holder after node 2)
/// used to serve every one of node 2's requests alone, node 2's aru stayed stuck,
/// and FAILED TO RECEIVE split node 2 off after 2 500 token rotations — a quarter
/// of a second on a fast idle ring (`tests/heal_cycles.rs` found it on real
/// processes in network namespaces).
#[test]
fn a_member_that_cannot_hear_one_peer_for_a_second_stays_in_the_ring() {
    let all = [1, 2, 3];
    // veth latencies: a token rotation takes about 0.1 ms, 2 500 of them 0.25 s.
    let mut net = LinkNet::new(3, config(300), 11, (20_000, 40_000), 5_000, false);
    assert!(
        net.run_until(10_000 * MS, |n| n.formed(&all)),
        "never formed"
    );
    net.run_to(net.now + 500 * MS);
    let start = net.now;
    let before = net.delivered.clone();
    net.set_link(3, 2, false);
    let mut sent = 0u64;
    for round in 0..20u32 {
        for id in all {
            net.mcast(id, &round.to_le_bytes());
            sent += 1;
        }
        net.run_to(net.now + 50 * MS);
    }
    net.set_link(3, 2, true);
    assert!(
        net.run_until(net.now + 5_000 * MS, |n| n
            .delivered
            .iter()
            .zip(&before)
            .all(|(d, b)| d - b == sent)),
        "not every message delivered everywhere: {:?} of {sent} since {:?}",
        net.delivered
            .iter()
            .zip(&before)
            .map(|(d, b)| d - b)
            .collect::<Vec<_>>(),
        before
    );
    for id in all {
        let changes = net.regulars_since(id, start);
        assert!(
            changes.is_empty(),
            "node {id} installed {:?} while node 3 could not reach node 2",
            changes.iter().map(|c| &c.members).collect::<Vec<_>>()
        );
        assert_eq!(
            net.nodes[id as usize - 1].stats().failed_to_receive,
            0,
            "node {id} gave up as FAILED TO RECEIVE"
        );
    }
}
