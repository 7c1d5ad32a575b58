//! The lock manager's own share of a recovery: three sans-IO `DlmNode`s in this
//! thread with an in-memory router (per-pair FIFO), the same lock layout as the
//! process scenario (`recovery.rs`), node 3 dropped; then `Members` without it and
//! `Fenced` at once, and the messages routed until both survivors report
//! `Recovered`. No fencing, network or thread wake-up in it: the CPU time the
//! purge, the two recovery rounds and the rebuild cost.

use phalanx::dlm::cluster::{DlmConfig, DlmNode, Input, Output};
use phalanx::dlm::{LockRequest, Mode, Owner, Status};
use std::collections::VecDeque;
use std::time::Instant;

const LS: u32 = 1;

struct Net {
    nodes: Vec<Option<DlmNode>>,
    wire: VecDeque<(u32, u32, Vec<u8>)>,
    granted: usize,
    recovered: Vec<u32>,
    bytes: usize,
}

impl Net {
    fn node(&mut self, id: u32) -> &mut DlmNode {
        self.nodes[id as usize - 1].as_mut().expect("a live node")
    }

    /// Moves outputs and messages until nothing is left.
    fn settle(&mut self) {
        loop {
            for i in 0..self.nodes.len() {
                let Some(n) = self.nodes[i].as_mut() else {
                    continue;
                };
                let from = n.id();
                while let Some(o) = n.poll_output() {
                    match o {
                        Output::Send { to, bytes } => {
                            self.bytes += bytes.len();
                            self.wire.push_back((from, to, bytes));
                        }
                        Output::Completion { completion, .. } => {
                            assert_eq!(completion.status, Status::Granted, "{completion:?}");
                            self.granted += 1;
                        }
                        Output::Recovered { .. } => self.recovered.push(from),
                        _ => {}
                    }
                }
            }
            let Some((from, to, bytes)) = self.wire.pop_front() else {
                return;
            };
            if let Some(n) = self.nodes[to as usize - 1].as_mut() {
                n.handle_input(Input::Message { from, bytes }).unwrap();
            }
        }
    }
}

/// Runs it; prints the time from the view without node 3 to both survivors
/// recovered, and the bytes the recovery sent.
pub fn run(locks: usize) {
    // The set-up asks for many locks at once; the bound is not what is measured.
    let config = DlmConfig {
        max_parked: usize::MAX,
        ..DlmConfig::default()
    };
    let mut net = Net {
        nodes: (1..=3)
            .map(|id| Some(DlmNode::new(id, config.clone()).unwrap()))
            .collect(),
        wire: VecDeque::new(),
        granted: 0,
        recovered: Vec::new(),
        bytes: 0,
    };
    for id in 1..=3 {
        net.node(id)
            .handle_input(Input::Members {
                lockspace: LS,
                epoch: 1,
                members: vec![1, 2, 3],
                failed: vec![],
            })
            .unwrap();
    }
    net.settle();
    let r = (locks / 9).max(1);
    let lock = |net: &mut Net, node: u32, prefix: u32| {
        for i in 0..r {
            let name = format!("m{prefix}-{i}");
            net.node(node)
                .lock(LS, LockRequest::new(Owner::new(node, 1), name, Mode::Pr))
                .unwrap();
            if i % 256 == 255 {
                net.settle();
            }
        }
        net.settle();
    };
    for k in 1..=3 {
        lock(&mut net, k, k);
    }
    for k in 1..=3 {
        for j in (1..=3).filter(|j| *j != k) {
            lock(&mut net, k, j);
        }
    }
    assert_eq!(net.granted, 9 * r, "every lock granted");
    net.nodes[2] = None;
    net.recovered.clear();
    net.bytes = 0;
    let t0 = Instant::now();
    for id in 1..=2 {
        let n = net.node(id);
        n.handle_input(Input::Members {
            lockspace: LS,
            epoch: 2,
            members: vec![1, 2],
            failed: vec![3],
        })
        .unwrap();
        n.handle_input(Input::Fenced { node: 3 }).unwrap();
    }
    net.settle();
    let took = t0.elapsed();
    assert_eq!(net.recovered.len(), 2, "both survivors recovered");
    let remastered = net.node(1).master_copies(LS).len() + net.node(2).master_copies(LS).len();
    println!(
        "recovery, core only: {} locks, node 3 lost: both survivors recovered in {:.1} ms \
         (one thread, no network); {} recovery bytes; {remastered} master copies after",
        9 * r,
        took.as_secs_f64() * 1e3,
        net.bytes
    );
}
