//! Fault bounds (what a test allows) and the fault plan a seed draws within them.
//!
//! Swarm testing: rather than every run using every fault at a fixed rate, each seed
//! draws its own mix — some seeds have no loss, some no crashes, some only one-way
//! partitions — because a bug that one fault exposes is often masked by another.

use crate::node::NodeId;
use crate::rng::Rng;
use std::ops::RangeInclusive;

/// Limits within which each seed draws its fault parameters.
#[derive(Clone, Debug)]
pub struct FaultBounds {
    /// Base one-way latency of a path.
    pub latency_ns: RangeInclusive<u64>,
    /// Largest per-path loss probability.
    pub loss_max: f64,
    /// Largest per-path duplication probability.
    pub dup_max: f64,
    /// Largest fraction of packets given an extra reordering delay.
    pub reorder_max: f64,
    /// Largest extra reordering delay.
    pub reorder_delay_max_ns: u64,
    /// Fraction of seeds in which some paths have a maximum datagram size.
    pub mtu_probability: f64,
    /// Range of that maximum size.
    pub mtu_bytes: RangeInclusive<u64>,
    /// Largest clock drift magnitude, in parts per million.
    pub drift_ppm_max: u32,
    /// Largest local-clock offset at virtual time zero.
    pub clock_offset_max_ns: u64,
    /// Range of the mean time between injected faults (crash, pause, partition, leave).
    pub fault_interval_ns: RangeInclusive<u64>,
    /// How long a partition lasts before it heals.
    pub partition_ns: RangeInclusive<u64>,
    /// How long a pause lasts.
    pub pause_ns: RangeInclusive<u64>,
    /// Delay from crash or leave to restart.
    pub restart_delay_ns: RangeInclusive<u64>,
    /// Range of the mean time between workload ticks of one node.
    pub app_tick_ns: RangeInclusive<u64>,
    /// Datagrams a paused node's socket buffer holds before dropping.
    pub socket_buffer: usize,
    /// Probability that a given fault kind is switched off entirely for a seed.
    pub off_probability: f64,
    /// How long a single-link cut (one direction, one link of several) lasts.
    pub link_cut_ns: RangeInclusive<u64>,
    /// Fraction of seeds whose disks fail or stall writes.
    pub persist_fault_probability: f64,
    /// In such a seed, a write fails with a probability up to this.
    pub persist_fail_max: f64,
    /// In such a seed, a write is slow with a probability up to this.
    pub persist_slow_max: f64,
    /// How long a slow write takes.
    pub persist_slow_ns: RangeInclusive<u64>,
}

impl Default for FaultBounds {
    fn default() -> Self {
        Self {
            latency_ns: 20_000..=2_000_000,
            loss_max: 0.25,
            dup_max: 0.05,
            reorder_max: 0.2,
            reorder_delay_max_ns: 5_000_000,
            mtu_probability: 0.15,
            mtu_bytes: 512..=1500,
            drift_ppm_max: 200,
            clock_offset_max_ns: 1_000_000_000_000,
            fault_interval_ns: 100_000_000..=2_000_000_000,
            partition_ns: 20_000_000..=2_000_000_000,
            pause_ns: 10_000_000..=2_000_000_000,
            restart_delay_ns: 10_000_000..=1_000_000_000,
            app_tick_ns: 2_000_000..=100_000_000,
            socket_buffer: 256,
            off_probability: 0.25,
            link_cut_ns: 20_000_000..=3_000_000_000,
            persist_fault_probability: 0.2,
            persist_fail_max: 0.1,
            persist_slow_max: 0.3,
            persist_slow_ns: 1_000_000..=300_000_000,
        }
    }
}

impl FaultBounds {
    /// No faults at all: fixed small latency, nothing dropped, nothing crashed.
    pub fn none() -> Self {
        Self {
            latency_ns: 100_000..=100_000,
            loss_max: 0.0,
            dup_max: 0.0,
            reorder_max: 0.0,
            reorder_delay_max_ns: 0,
            mtu_probability: 0.0,
            drift_ppm_max: 0,
            clock_offset_max_ns: 0,
            off_probability: 1.0,
            persist_fault_probability: 0.0,
            ..Self::default()
        }
    }
}

/// Shape of the random part of a path's delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Jitter {
    /// Uniform in `[0, max_ns]`.
    Uniform {
        /// Upper bound.
        max_ns: u64,
    },
    /// Exponential with this mean (a long tail), capped at 50 ms.
    Exponential {
        /// Mean.
        mean_ns: u64,
    },
}

/// Relative frequency of each injected fault kind (0 = never in this seed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultWeights {
    /// Network partitions.
    pub partition: u32,
    /// Crashes (volatile state lost, disk kept).
    pub crash: u32,
    /// Pauses (process not scheduled; socket buffer fills).
    pub pause: u32,
    /// Clean leaves.
    pub leave: u32,
    /// One link of a path cut in one direction (only with several links per node;
    /// never the last uncut link of that direction).
    pub link_cut: u32,
    /// A datagram a node accepted earlier delivered to it again.
    pub replay: u32,
    /// A datagram a node accepted earlier, altered, delivered to it again.
    pub forge: u32,
}

impl FaultWeights {
    /// The faults that change who can talk to whom or who runs (everything but
    /// single-link cuts and adversarial datagrams).
    pub fn disruptive(&self) -> bool {
        self.partition + self.crash + self.pause + self.leave > 0
    }

    /// Sum of all weights.
    pub fn total(&self) -> u32 {
        self.partition
            + self.crash
            + self.pause
            + self.leave
            + self.link_cut
            + self.replay
            + self.forge
    }
}

/// The concrete fault parameters one seed drew.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Duration of the safety phase.
    pub safety_ns: u64,
    /// Per-path base latency is drawn uniformly in this range.
    pub latency_ns: (u64, u64),
    /// Random part of every packet's delay.
    pub jitter: Jitter,
    /// Per-path loss is drawn uniformly in `[0, loss]`.
    pub loss: f64,
    /// Per-path duplication is drawn uniformly in `[0, dup]`.
    pub dup: f64,
    /// Per-path reordering fraction is drawn uniformly in `[0, reorder]`.
    pub reorder: f64,
    /// Extra delay of a reordered packet is uniform in `[0, reorder_delay_ns]`.
    pub reorder_delay_ns: u64,
    /// `(max datagram, fraction of paths limited)` if this seed has MTU limits.
    pub mtu: Option<(u64, f64)>,
    /// Per-node drift is drawn in `±drift_ppm` (0 = perfect clocks).
    pub drift_ppm: u32,
    /// Largest local-clock offset.
    pub clock_offset_max_ns: u64,
    /// Mean time between injected faults.
    pub fault_interval_ns: u64,
    /// Which faults are injected and how often relative to each other.
    pub weights: FaultWeights,
    /// Mean time between one node's workload ticks.
    pub app_tick_ns: u64,
    /// Probability that a durable write fails (the node then stops).
    pub persist_fail: f64,
    /// Probability that a durable write is slow (drawn in `persist_slow_ns`).
    pub persist_slow: f64,
}

impl FaultPlan {
    /// Draws a plan within `b`; `safety` bounds the safety phase.
    pub fn draw(b: &FaultBounds, safety: &RangeInclusive<u64>, rng: &mut Rng) -> Self {
        let off = b.off_probability;
        // Each continuous fault is off in some seeds and otherwise drawn up to its bound.
        let level = |max: f64, rng: &mut Rng| {
            if rng.gen_bool(off) {
                0.0
            } else {
                rng.gen_f64() * max.max(0.0)
            }
        };
        let loss = level(b.loss_max, rng);
        let dup = level(b.dup_max, rng);
        let reorder = level(b.reorder_max, rng);
        let lo = rng.gen_range(b.latency_ns.clone());
        let hi = rng.gen_range(lo..=*b.latency_ns.end().max(&lo));
        let jitter_max = rng.gen_range(0..=hi / 2);
        let jitter = if rng.gen_bool(0.5) {
            Jitter::Uniform { max_ns: jitter_max }
        } else {
            Jitter::Exponential {
                mean_ns: jitter_max / 4,
            }
        };
        let mtu = rng
            .gen_bool(b.mtu_probability)
            .then(|| (rng.gen_range(b.mtu_bytes.clone()), rng.gen_f64()));
        let drift_ppm = if rng.gen_bool(off) {
            0
        } else {
            rng.gen_range(0..=u64::from(b.drift_ppm_max)) as u32
        };
        let weight = |rng: &mut Rng| {
            if rng.gen_bool(off) {
                0
            } else {
                rng.gen_range(1..=10) as u32
            }
        };
        let weights = FaultWeights {
            partition: weight(rng),
            crash: weight(rng),
            pause: weight(rng),
            leave: weight(rng),
            ..FaultWeights::default()
        };
        let mut plan = Self {
            safety_ns: rng.gen_range(safety.clone()),
            latency_ns: (lo, hi),
            jitter,
            loss,
            dup,
            reorder,
            reorder_delay_ns: rng.gen_range(0..=b.reorder_delay_max_ns),
            mtu,
            drift_ppm,
            clock_offset_max_ns: if rng.gen_bool(0.5) {
                b.clock_offset_max_ns
            } else {
                0
            },
            fault_interval_ns: rng
                .gen_log_range(*b.fault_interval_ns.start(), *b.fault_interval_ns.end()),
            weights,
            app_tick_ns: rng.gen_log_range(*b.app_tick_ns.start(), *b.app_tick_ns.end()),
            persist_fail: 0.0,
            persist_slow: 0.0,
        };
        // Drawn after everything above, so the earlier parameters of a seed do not
        // move when these are added.
        plan.weights.link_cut = weight(rng);
        plan.weights.replay = weight(rng);
        plan.weights.forge = weight(rng);
        if rng.gen_bool(b.persist_fault_probability) {
            plan.persist_fail = rng.gen_f64() * b.persist_fail_max;
            plan.persist_slow = rng.gen_f64() * b.persist_slow_max;
        }
        plan
    }

    /// A network that, apart from single-link cuts and adversarial datagrams,
    /// neither loses, partitions, crashes nor pauses: a formed membership must then
    /// never change.
    pub fn quiet(&self) -> bool {
        !self.weights.disruptive()
            && self.loss == 0.0
            && self.mtu.is_none()
            && self.persist_fail == 0.0
            && self.persist_slow == 0.0
    }
}

/// A partition shape, drawn per partition event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionKind {
    /// Two sides, neither hears the other.
    Symmetric,
    /// Two sides, one side's packets to the other are lost; the reverse gets through.
    OneWay,
    /// One node cut off both ways.
    IsolateOne,
    /// Each directed link independently cut (non-transitive connectivity).
    RandomLinks,
}

/// Draws a partition over nodes `1..=n`: the kind and the blocked directed links.
pub fn draw_partition(rng: &mut Rng, n: usize) -> (PartitionKind, Vec<(NodeId, NodeId)>) {
    let kind = match rng.gen_range(0..4) {
        0 => PartitionKind::Symmetric,
        1 => PartitionKind::OneWay,
        2 => PartitionKind::IsolateOne,
        _ => PartitionKind::RandomLinks,
    };
    let ids = 1..=n as NodeId;
    let mut blocked = Vec::new();
    if n < 2 {
        return (kind, blocked);
    }
    let side: Vec<bool> = match kind {
        PartitionKind::IsolateOne => {
            let x = rng.gen_range(1..=n as u64) as NodeId;
            ids.clone().map(|i| i == x).collect()
        }
        _ => {
            let mut s: Vec<bool> = ids.clone().map(|_| rng.gen_bool(0.5)).collect();
            // A split needs two non-empty sides.
            if s.iter().all(|b| *b) || s.iter().all(|b| !*b) {
                let x = rng.gen_range(0..n as u64) as usize;
                s[x] = !s[x];
            }
            s
        }
    };
    for a in ids.clone() {
        for b in ids.clone() {
            if a == b {
                continue;
            }
            let (sa, sb) = (side[a as usize - 1], side[b as usize - 1]);
            let cut = match kind {
                PartitionKind::Symmetric | PartitionKind::IsolateOne => sa != sb,
                PartitionKind::OneWay => sa && !sb,
                PartitionKind::RandomLinks => rng.gen_bool(0.3),
            };
            if cut {
                blocked.push((a, b));
            }
        }
    }
    (kind, blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_vary() {
        let b = FaultBounds::default();
        let s = 1_000_000_000..=4_000_000_000;
        let p1 = FaultPlan::draw(&b, &s, &mut Rng::new(5));
        assert_eq!(p1, FaultPlan::draw(&b, &s, &mut Rng::new(5)));
        let zero_loss = (0..200)
            .filter(|i| FaultPlan::draw(&b, &s, &mut Rng::new(*i)).loss == 0.0)
            .count();
        assert!(zero_loss > 10 && zero_loss < 150, "{zero_loss}");
    }

    #[test]
    fn partitions_split_into_two_sides() {
        let mut r = Rng::new(9);
        for n in [0, 1, 2, 5] {
            for _ in 0..50 {
                let (kind, blocked) = draw_partition(&mut r, n);
                if n < 2 {
                    assert!(blocked.is_empty());
                } else if kind != PartitionKind::RandomLinks {
                    assert!(!blocked.is_empty());
                }
                assert!(blocked.iter().all(|(a, b)| a != b));
            }
        }
    }
}
