//! The quorum layer: [`Stack`]s running votequorum under the simulator, with
//! per-run quorum options drawn from the seed, judged by the totem checkers plus
//! the quorum checkers.
//!
//! Options are the *static expected votes* ones (no `two_node`, `last_man_standing`,
//! `allow_downscale`, runtime changes; `auto_tie_breaker` only `lowest`/`highest`):
//! the ones under which no two disjoint partitions may ever be quorate at once (see
//! `phalanx_sim::check::quorum_uniqueness`). Every node of a run gets the same
//! options, as a cluster's configuration file would give them.

use crate::cpg_node::{CpgNode, NodeStart};
use crate::stack_node::RunPlan;
use phalanx_logsys::Logger;
use phalanx_quorum::{NodeVotes, QuorumConfig, TieBreaker};
use phalanx_sim::{Disk, History, NodeFactory, NodeId, Rng, SimNode, Violation};

/// The quorum options of run `run_seed` for node `local` of `all`: votes 1–3 per
/// node; expected votes from the node list or explicit (total + 0..=2); wait_for_all
/// on or off; auto_tie_breaker off, lowest or highest (off if the combination is
/// refused, as with an odd expected count without wait_for_all).
pub fn quorum_config_for(local: NodeId, all: &[NodeId], run_seed: u64) -> QuorumConfig {
    let mut rng = Rng::new(run_seed ^ 0x7175_6f72_756d);
    let mut cfg = QuorumConfig::new(local, all);
    cfg.nodes = all
        .iter()
        .map(|&node| NodeVotes {
            node,
            votes: 1 + rng.gen_range(0..3) as u32,
        })
        .collect();
    if rng.gen_bool(0.5) {
        cfg.expected_votes = Some(cfg.node_votes() + rng.gen_range(0..3) as u32);
    }
    cfg.wait_for_all = Some(rng.gen_bool(0.5));
    match rng.gen_range(0..3) {
        0 => {}
        1 => cfg.auto_tie_breaker = true,
        _ => {
            cfg.auto_tie_breaker = true;
            cfg.auto_tie_breaker_node = TieBreaker::Highest;
        }
    }
    if cfg.validate().is_err() {
        cfg.auto_tie_breaker = false;
    }
    cfg
}

/// Builds quorum-layer nodes: a [`Stack`] with votequorum and a raw-message
/// workload (no CPG churn, to keep the run cheap; the CPG core still runs).
#[derive(Default, Debug, Clone)]
pub struct QuorumFactory {
    run: RunPlan,
}

impl NodeFactory for QuorumFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.run.run_seed = run_seed;
    }

    fn links(&self) -> u8 {
        self.run.links().links
    }

    fn create(
        &mut self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        seed: u64,
        now: u64,
        disk: &mut Disk,
        logger: Logger,
    ) -> Box<dyn SimNode> {
        let mut cfg = self.run.config(id, all, incarnation, seed);
        cfg.quorum = Some(quorum_config_for(id, all, self.run.run_seed));
        let start = NodeStart {
            plan: self.run.links(),
            id,
            incarnation,
            now,
            cpg_workload: false,
        };
        Box::new(CpgNode::start(cfg, start, disk, logger))
    }

    fn check(&self, history: &History) -> Vec<Violation> {
        let mut v = phalanx_sim::check::quorum::all(history);
        v.extend(final_outcome(history, self.run.run_seed));
        v
    }
}

/// Whether the whole cluster, every node present, is quorate under `cfg`: the total
/// votes T against the expected votes E (≥ T here): T > E/2, or exactly half with
/// `auto_tie_breaker` (the whole cluster holds the tie-breaker node); never while
/// waiting for all with T < E (the wait ends only with every expected vote seen).
pub fn full_cluster_quorate(cfg: &QuorumConfig) -> bool {
    let (t, e) = (
        u64::from(cfg.node_votes()),
        u64::from(cfg.initial_expected_votes()),
    );
    if cfg.wait_for_all() && t < e {
        return false;
    }
    2 * t > e || (cfg.auto_tie_breaker && 2 * t == e)
}

/// `quorum_outcome`: after the liveness phase (every node up, one ring), each
/// node's last quorum state is the one the options dictate for the whole cluster
/// ([`full_cluster_quorate`]) — so the runs are not vacuously safe (nobody ever
/// quorate) and the state exchange really completes through the Stack.
fn final_outcome(h: &History, run_seed: u64) -> Vec<Violation> {
    let want = full_cluster_quorate(&quorum_config_for(1, &h.nodes, run_seed));
    let mut last = std::collections::BTreeMap::new();
    for e in &h.events {
        if let phalanx_sim::EventKind::Observation(phalanx_sim::Observation::Quorum {
            quorate,
            ..
        }) = &e.kind
        {
            last.insert(e.node, (e.incarnation, *quorate));
        }
    }
    h.final_status
        .iter()
        .filter(|(_, s)| s.is_some())
        .filter_map(|(n, _)| match last.get(n) {
            Some((_, q)) if *q == want => None,
            got => Some(Violation {
                property: "quorum_outcome",
                detail: format!(
                    "n{n} ends with quorate {:?}, the options say {want} for the whole cluster",
                    got.map(|g| g.1)
                ),
            }),
        })
        .collect()
}
