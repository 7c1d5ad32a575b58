//! Swarm test of the votequorum rules with static expected votes: random cluster
//! sizes, options (plain, wait_for_all, auto_tie_breaker in each mode, node weights)
//! and random sequences of partitions, crashes, pauses and restarts. After every
//! step: each partition's members agree, and no two disjoint partitions are quorate.
//! (last_man_standing, allow_downscale and set_expected lower expected votes on
//! purpose and can make two partitions quorate after a merge, as in Corosync;
//! two_node is quorate on both sides of a 1/1 split by design. Both are excluded.)

mod common;

use common::Cluster;
use phalanx_quorum::{NodeId, NodeVotes, QuorumConfig, TieBreaker};
use std::time::Duration;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config(rng: &mut Rng, n: u32) -> impl Fn(NodeId) -> QuorumConfig + 'static {
    let ids: Vec<NodeId> = (1..=n).collect();
    let weights: Vec<u32> = if rng.below(4) == 0 {
        ids.iter().map(|_| 1 + rng.below(3) as u32).collect()
    } else {
        vec![1; ids.len()]
    };
    let wfa = rng.below(2) == 0;
    let atb = rng.below(2) == 0;
    let tb = match rng.below(3) {
        0 => TieBreaker::Lowest,
        1 => TieBreaker::Highest,
        _ => {
            let mut l = ids.clone();
            for i in (1..l.len()).rev() {
                l.swap(i, rng.below(i as u64 + 1) as usize);
            }
            // One entry: a fallback entry is only as safe as Corosync's "was it in the
            // previous partition" guess (docs/quorum.md, "tie-breaker list hazard").
            l.truncate(1);
            TieBreaker::Nodes(l)
        }
    };
    move |me| {
        let mut c = QuorumConfig::new(me, &ids);
        c.nodes = ids
            .iter()
            .zip(&weights)
            .map(|(&node, &votes)| NodeVotes { node, votes })
            .collect();
        c.wait_for_all = Some(wfa);
        c.auto_tie_breaker = atb;
        c.auto_tie_breaker_node = tb.clone();
        if c.validate().is_err() {
            // e.g. an odd total with auto_tie_breaker and no wait_for_all
            c.wait_for_all = Some(true);
        }
        c
    }
}

/// Runs one seed; returns how many steps had a quorate partition. Panics (with the
/// seed and step) on a violation; `verbose` prints every step.
fn run_seed(seed: u64, verbose: bool) -> u64 {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 2 + rng.below(5) as u32;
    let ids: Vec<NodeId> = (1..=n).collect();
    let make = config(&mut rng, n);
    if verbose {
        println!("seed {seed}: {:?}", make(1));
    }
    let mut c = Cluster::new(&ids, make);
    let mut quorate_steps = 0;
    for step in 0..30 {
        let at = format!("seed {seed} step {step}");
        match rng.below(10) {
            // crash-restart a node (fresh core, it must rejoin)
            0 => {
                let victim = 1 + rng.below(n as u64) as u32;
                c.start(victim);
            }
            1 => c.advance(Duration::from_secs(rng.below(20))),
            _ => {}
        }
        // A random partitioning of a random subset (the rest is down/paused).
        let mut groups: Vec<Vec<NodeId>> = vec![Vec::new(); 1 + rng.below(3) as usize];
        for &id in &ids {
            if rng.below(6) != 0 {
                let g = rng.below(groups.len() as u64) as usize;
                groups[g].push(id);
            }
        }
        groups.retain(|g| !g.is_empty());
        if groups.is_empty() {
            continue;
        }
        let refs: Vec<&[NodeId]> = groups.iter().map(|g| g.as_slice()).collect();
        c.partition(&refs);
        if verbose {
            for g in &groups {
                let i = c.nodes[&g[0]].info();
                println!(
                    "{at}: {g:?} quorate={} E={} V={} quorum={} wfa={}",
                    i.quorate, i.expected_votes, i.total_votes, i.quorum, i.wfa_waiting
                );
            }
        }
        c.assert_partitions_agree(&at);
        c.assert_at_most_one_quorate(&at);
        quorate_steps += u64::from(groups.iter().any(|g| c.quorate(g[0])));
    }
    quorate_steps
}

#[test]
fn never_two_quorate_partitions() {
    let seeds: u64 = std::env::var("QUORUM_SWARM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    let quorate_steps: u64 = (1..=seeds).map(|s| run_seed(s, false)).sum();
    // The test must exercise quorate states, not only inquorate ones.
    assert!(
        quorate_steps > seeds * 3,
        "only {quorate_steps} quorate steps"
    );
}

/// Replays one seed verbosely: `SEED=57 cargo test -p phalanx-quorum --test
/// partition_swarm replay -- --ignored --nocapture`.
#[test]
#[ignore = "replay helper for a failing seed"]
fn replay() {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    run_seed(seed, true);
}
