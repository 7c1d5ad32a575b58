//! The simulated network: per-path delay, loss, duplication, reordering, MTU, and
//! partitions (a set of blocked directed links, checked when a packet is sent).

use crate::faults::{FaultPlan, Jitter};
use crate::node::NodeId;
use crate::rng::Rng;

/// Why a packet did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The link was cut by a partition.
    Partition,
    /// Random loss.
    Loss,
    /// Larger than the path's maximum datagram size.
    Mtu,
}

impl DropReason {
    /// Short name for traces.
    pub fn name(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Loss => "loss",
            Self::Mtu => "mtu",
        }
    }
}

/// Fault parameters of one directed path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathParams {
    /// Fixed part of the delay.
    pub base_ns: u64,
    /// Loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub dup: f64,
    /// Probability of an extra reordering delay.
    pub reorder: f64,
    /// Maximum datagram size.
    pub mtu: Option<u64>,
}

/// Cap on exponential jitter so one packet cannot stall a run.
const JITTER_CAP_NS: u64 = 50_000_000;
/// Loopback delay for a node sending to itself.
const LOOPBACK_NS: u64 = 1_000;

/// All paths between nodes `1..=n`.
#[derive(Clone, Debug)]
pub struct Network {
    n: usize,
    paths: Vec<PathParams>,
    blocked: Vec<bool>,
    jitter: Jitter,
    reorder_delay_ns: u64,
}

impl Network {
    /// Draws every path's parameters from `plan`.
    pub fn new(n: usize, plan: &FaultPlan, rng: &mut Rng) -> Self {
        let mut paths = Vec::with_capacity(n * n);
        for _ in 0..n * n {
            let (lo, hi) = plan.latency_ns;
            paths.push(PathParams {
                base_ns: rng.gen_range(lo..=hi),
                loss: rng.gen_f64() * plan.loss,
                dup: rng.gen_f64() * plan.dup,
                reorder: rng.gen_f64() * plan.reorder,
                mtu: plan
                    .mtu
                    .and_then(|(size, frac)| rng.gen_bool(frac).then_some(size)),
            });
        }
        Self {
            n,
            paths,
            blocked: vec![false; n * n],
            jitter: plan.jitter,
            reorder_delay_ns: plan.reorder_delay_ns,
        }
    }

    fn index(&self, from: NodeId, to: NodeId) -> Option<usize> {
        let (f, t) = (
            (from as usize).checked_sub(1)?,
            (to as usize).checked_sub(1)?,
        );
        (f < self.n && t < self.n).then_some(f * self.n + t)
    }

    /// Parameters of the path `from -> to`.
    pub fn path(&self, from: NodeId, to: NodeId) -> Option<&PathParams> {
        self.paths.get(self.index(from, to)?)
    }

    fn delay(&self, p: &PathParams, rng: &mut Rng) -> u64 {
        let jitter = match self.jitter {
            Jitter::Uniform { max_ns } => rng.gen_range(0..=max_ns),
            Jitter::Exponential { mean_ns } => rng.gen_exp(mean_ns).min(JITTER_CAP_NS),
        };
        let extra = if rng.gen_bool(p.reorder) {
            rng.gen_range(0..=self.reorder_delay_ns)
        } else {
            0
        };
        p.base_ns
            .saturating_add(jitter)
            .saturating_add(extra)
            .max(1)
    }

    /// Decides a packet's fate: the delay of the copy that arrives and of a duplicate,
    /// or why it is lost.
    pub fn route(
        &self,
        rng: &mut Rng,
        from: NodeId,
        to: NodeId,
        len: usize,
    ) -> Result<(u64, Option<u64>), DropReason> {
        if from == to {
            return Ok((LOOPBACK_NS, None));
        }
        let Some(i) = self.index(from, to) else {
            return Err(DropReason::Partition);
        };
        if self.blocked[i] {
            return Err(DropReason::Partition);
        }
        let p = self.paths[i];
        if p.mtu.is_some_and(|m| len as u64 > m) {
            return Err(DropReason::Mtu);
        }
        if rng.gen_bool(p.loss) {
            return Err(DropReason::Loss);
        }
        let first = self.delay(&p, rng);
        let dup = rng.gen_bool(p.dup).then(|| self.delay(&p, rng));
        Ok((first, dup))
    }

    /// Replaces the set of blocked directed links.
    pub fn set_blocked(&mut self, links: &[(NodeId, NodeId)]) {
        self.blocked.iter_mut().for_each(|b| *b = false);
        for &(a, b) in links {
            if let Some(i) = self.index(a, b) {
                self.blocked[i] = true;
            }
        }
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.blocked.iter().any(|b| *b)
    }

    /// Turns off loss, duplication, reordering and MTU limits (latency stays).
    pub fn calm(&mut self) {
        for p in &mut self.paths {
            p.loss = 0.0;
            p.dup = 0.0;
            p.reorder = 0.0;
            p.mtu = None;
        }
    }
}
