//! The seeded fault schedule: a list of timed faults that is a function of the
//! seed, the node count and the options alone, so a printed seed gives the same
//! schedule again. (The interleaving of the real processes under it is not
//! reproducible; what they did is kept in the run directory.)
//!
//! The generator keeps a model of what it has done (which nodes are killed,
//! paused, how the network is cut) so every step is valid where it happens: a
//! restart only for a killed node, a resume only for a paused one, at most
//! `(n - 1) / 2` nodes killed or paused at once (a majority of processes keeps
//! running, so quorum is lost only by partitions).

use phalanx_sim::Rng;
use std::collections::BTreeSet;
use std::fmt;

/// One fault (or its repair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of the node's process.
    Kill(u32),
    /// A new process for a killed node; `clock_offset_s` > 0 starts it in a time
    /// namespace whose CLOCK_MONOTONIC and CLOCK_BOOTTIME are that far ahead of
    /// the host's (a clock step as the new process sees it).
    Restart {
        /// The node.
        node: u32,
        /// Seconds ahead of the host's monotonic clock.
        clock_offset_s: u32,
    },
    /// SIGSTOP.
    Pause(u32),
    /// SIGCONT.
    Resume(u32),
    /// The nodes split into groups, each on its own bridge (every node in exactly
    /// one group, at least two groups).
    Partition(Vec<Vec<u32>>),
    /// Every node back on one bridge.
    Heal,
    /// Datagrams from `.0` to `.1` are lost; the other direction still works.
    Cut(u32, u32),
    /// The cut from `.0` to `.1` is repaired.
    Uncut(u32, u32),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(n) => write!(f, "kill n{n}"),
            Fault::Restart {
                node,
                clock_offset_s: 0,
            } => write!(f, "restart n{node}"),
            Fault::Restart {
                node,
                clock_offset_s,
            } => write!(f, "restart n{node} clock+{clock_offset_s}s"),
            Fault::Pause(n) => write!(f, "pause n{n}"),
            Fault::Resume(n) => write!(f, "resume n{n}"),
            Fault::Partition(groups) => {
                let g: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                write!(f, "partition {}", g.join("|"))
            }
            Fault::Heal => write!(f, "heal"),
            Fault::Cut(a, b) => write!(f, "cut n{a}->n{b}"),
            Fault::Uncut(a, b) => write!(f, "uncut n{a}->n{b}"),
        }
    }
}

/// A fault and when, in ms after the cluster first formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Milliseconds after the start of the fault phase.
    pub at_ms: u64,
    /// What.
    pub fault: Fault,
}

/// What shapes a schedule.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Nodes 1..=nodes.
    pub nodes: u32,
    /// Number of steps.
    pub events: usize,
    /// Smallest gap between two steps, ms.
    pub min_gap_ms: u64,
    /// Largest gap between two steps, ms.
    pub max_gap_ms: u64,
    /// Whether one-way cuts can be made on this machine.
    pub cuts: bool,
    /// Whether restarts may shift the new process's clock.
    pub clock_steps: bool,
}

/// What the generator has done so far.
#[derive(Default)]
struct Model {
    killed: BTreeSet<u32>,
    paused: BTreeSet<u32>,
    partitioned: bool,
    cuts: BTreeSet<(u32, u32)>,
}

/// At most this many one-way cuts at once.
const MAX_CUTS: usize = 3;

/// The schedule for `seed`.
pub fn generate(seed: u64, shape: &Shape) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut m = Model::default();
    let mut at = 0;
    let mut steps = Vec::with_capacity(shape.events);
    let max_down = ((shape.nodes.saturating_sub(1)) / 2).max(1) as usize;
    while steps.len() < shape.events {
        at += rng.gen_range(shape.min_gap_ms..=shape.max_gap_ms.max(shape.min_gap_ms));
        let fault = next(&mut rng, &mut m, shape, max_down);
        steps.push(Step { at_ms: at, fault });
    }
    steps
}

/// A random element of `v` (which is not empty).
fn pick<T: Copy>(rng: &mut Rng, v: &[T]) -> T {
    v[rng.gen_range(0..v.len() as u64) as usize]
}

/// Picks and applies (to the model) the next fault.
fn next(rng: &mut Rng, m: &mut Model, shape: &Shape, max_down: usize) -> Fault {
    let all: Vec<u32> = (1..=shape.nodes).collect();
    let up: Vec<u32> = all
        .iter()
        .copied()
        .filter(|n| !m.killed.contains(n) && !m.paused.contains(n))
        .collect();
    let down = m.killed.len() + m.paused.len();
    // (weight, kind): repairs weigh more than new faults, so faults stay short.
    let mut kinds: Vec<(u64, u8)> = Vec::new();
    if !m.killed.is_empty() {
        kinds.push((3, 0));
    }
    if !m.paused.is_empty() {
        kinds.push((3, 1));
    }
    if m.partitioned {
        kinds.push((2, 2));
    }
    if !m.cuts.is_empty() {
        kinds.push((2, 3));
    }
    if down < max_down && !up.is_empty() {
        kinds.push((2, 4));
        kinds.push((2, 5));
    }
    if !m.partitioned && shape.nodes >= 2 {
        kinds.push((1, 6));
    }
    if shape.cuts && m.cuts.len() < MAX_CUTS && shape.nodes >= 2 {
        kinds.push((1, 7));
    }
    let total: u64 = kinds.iter().map(|k| k.0).sum();
    let mut r = rng.gen_range(0..total);
    let mut kind = kinds[0].1;
    for (w, k) in &kinds {
        if r < *w {
            kind = *k;
            break;
        }
        r -= w;
    }
    match kind {
        0 => {
            let killed: Vec<u32> = m.killed.iter().copied().collect();
            let node = pick(rng, &killed);
            m.killed.remove(&node);
            let clock_offset_s = if shape.clock_steps && rng.gen_range(0..4) == 0 {
                rng.gen_range(1..=86_400) as u32
            } else {
                0
            };
            Fault::Restart {
                node,
                clock_offset_s,
            }
        }
        1 => {
            let paused: Vec<u32> = m.paused.iter().copied().collect();
            let node = pick(rng, &paused);
            m.paused.remove(&node);
            Fault::Resume(node)
        }
        2 => {
            m.partitioned = false;
            Fault::Heal
        }
        3 => {
            let cuts: Vec<(u32, u32)> = m.cuts.iter().copied().collect();
            let (a, b) = pick(rng, &cuts);
            m.cuts.remove(&(a, b));
            Fault::Uncut(a, b)
        }
        4 => {
            let node = pick(rng, &up);
            m.killed.insert(node);
            Fault::Kill(node)
        }
        5 => {
            let node = pick(rng, &up);
            m.paused.insert(node);
            Fault::Pause(node)
        }
        6 => {
            m.partitioned = true;
            Fault::Partition(partition(rng, shape.nodes))
        }
        _ => {
            let a = rng.gen_range(1..=u64::from(shape.nodes)) as u32;
            let mut b = rng.gen_range(1..u64::from(shape.nodes)) as u32;
            if b >= a {
                b += 1;
            }
            if m.cuts.insert((a, b)) {
                Fault::Cut(a, b)
            } else {
                m.cuts.remove(&(a, b));
                Fault::Uncut(a, b)
            }
        }
    }
}

/// Nodes 1..=n in 2..=min(3, n) non-empty groups, any shape.
fn partition(rng: &mut Rng, n: u32) -> Vec<Vec<u32>> {
    let k = rng.gen_range(2..=u64::from(n.min(3))) as usize;
    loop {
        let mut groups = vec![Vec::new(); k];
        for node in 1..=n {
            groups[rng.gen_range(0..k as u64) as usize].push(node);
        }
        if groups.iter().all(|g| !g.is_empty()) {
            return groups;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(nodes: u32, events: usize) -> Shape {
        Shape {
            nodes,
            events,
            min_gap_ms: 100,
            max_gap_ms: 500,
            cuts: true,
            clock_steps: true,
        }
    }

    #[test]
    fn the_seed_decides_the_schedule() {
        assert_eq!(generate(7, &shape(5, 200)), generate(7, &shape(5, 200)));
        assert_ne!(generate(7, &shape(5, 200)), generate(8, &shape(5, 200)));
    }

    #[test]
    fn every_step_is_valid_where_it_happens() {
        for seed in 0..50 {
            let s = shape(5, 300);
            let mut m = Model::default();
            let mut last = 0;
            for step in generate(seed, &s) {
                assert!(step.at_ms >= last + s.min_gap_ms, "{seed}: gaps");
                last = step.at_ms;
                match &step.fault {
                    Fault::Kill(n) => {
                        assert!(
                            !m.paused.contains(n) && m.killed.insert(*n),
                            "{seed}: {step:?}"
                        )
                    }
                    Fault::Restart { node, .. } => assert!(m.killed.remove(node), "{seed}"),
                    Fault::Pause(n) => {
                        assert!(!m.killed.contains(n) && m.paused.insert(*n), "{seed}")
                    }
                    Fault::Resume(n) => assert!(m.paused.remove(n), "{seed}"),
                    Fault::Partition(g) => {
                        assert!(!m.partitioned && g.len() >= 2, "{seed}");
                        let mut all: Vec<u32> = g.concat();
                        all.sort_unstable();
                        assert_eq!(all, vec![1, 2, 3, 4, 5]);
                        m.partitioned = true;
                    }
                    Fault::Heal => {
                        assert!(m.partitioned, "{seed}");
                        m.partitioned = false;
                    }
                    Fault::Cut(a, b) => assert!(a != b && m.cuts.insert((*a, *b)), "{seed}"),
                    Fault::Uncut(a, b) => assert!(m.cuts.remove(&(*a, *b)), "{seed}"),
                }
                assert!(
                    m.killed.len() + m.paused.len() <= 2,
                    "{seed}: a majority runs"
                );
                assert!(m.cuts.len() <= MAX_CUTS);
            }
        }
    }

    #[test]
    fn every_kind_of_fault_occurs() {
        let steps = generate(1, &shape(5, 1000));
        let has = |f: fn(&Fault) -> bool| steps.iter().any(|s| f(&s.fault));
        assert!(has(|f| matches!(f, Fault::Kill(_))));
        assert!(has(|f| matches!(
            f,
            Fault::Restart {
                clock_offset_s: 0,
                ..
            }
        )));
        assert!(has(|f| matches!(
            f,
            Fault::Restart {
                clock_offset_s: 1..,
                ..
            }
        )));
        assert!(has(|f| matches!(f, Fault::Pause(_))));
        assert!(has(|f| matches!(f, Fault::Partition(g) if g.len() == 3)));
        assert!(has(|f| matches!(f, Fault::Cut(..))));
        assert!(has(|f| matches!(f, Fault::Uncut(..))));
        assert!(has(|f| matches!(f, Fault::Heal)));
    }

    #[test]
    fn without_cuts_or_clock_steps_there_are_none() {
        let mut s = shape(3, 500);
        s.cuts = false;
        s.clock_steps = false;
        for step in generate(3, &s) {
            assert!(!matches!(step.fault, Fault::Cut(..) | Fault::Uncut(..)));
            assert!(!matches!(
                step.fault,
                Fault::Restart {
                    clock_offset_s: 1..,
                    ..
                }
            ));
        }
    }
}
