//! Focused scenarios of the distributed layer: message costs of §3.4, and the §3.7
//! rule that a failed node's locks keep blocking until it is fenced.

use std::collections::{BTreeMap, VecDeque};

use phalanx_dlm::cluster::{
    DlmConfig, DlmNode, Input, Msg, NodeId, Output, decode, directory_node,
};
use phalanx_dlm::{LockRequest, LockspaceConfig, Mode, Owner, Status, UnlockRequest};

const LS: u32 = 7;

/// Nodes and a FIFO of every message sent, delivered in order.
struct Cluster {
    nodes: BTreeMap<NodeId, DlmNode>,
    wire: VecDeque<(NodeId, NodeId, Vec<u8>)>,
    sent: Vec<(NodeId, NodeId, Msg)>,
    events: Vec<(NodeId, Output)>,
    epoch: u64,
}

impl Cluster {
    fn new(ids: &[NodeId]) -> Cluster {
        let config = DlmConfig {
            lockspace: LockspaceConfig {
                lvb_len: 8,
                ..LockspaceConfig::default()
            },
            ..DlmConfig::default()
        };
        let mut c = Cluster {
            nodes: ids
                .iter()
                .map(|&id| (id, DlmNode::new(id, config.clone()).unwrap()))
                .collect(),
            wire: VecDeque::new(),
            sent: Vec::new(),
            events: Vec::new(),
            epoch: 0,
        };
        c.members(&[]);
        c.run();
        c
    }

    fn members(&mut self, failed: &[NodeId]) {
        self.epoch += 1;
        let members: Vec<NodeId> = self.nodes.keys().copied().collect();
        for node in self.nodes.values_mut() {
            node.handle_input(Input::Members {
                lockspace: LS,
                epoch: self.epoch,
                members: members.clone(),
                failed: failed.to_vec(),
            })
            .unwrap();
        }
        self.collect();
    }

    fn collect(&mut self) {
        for (&id, node) in self.nodes.iter_mut() {
            while let Some(out) = node.poll_output() {
                match out {
                    Output::Send { to, bytes } => {
                        self.sent.push((id, to, decode(&bytes).unwrap()));
                        self.wire.push_back((id, to, bytes));
                    }
                    other => self.events.push((id, other)),
                }
            }
        }
    }

    fn run(&mut self) {
        while let Some((from, to, bytes)) = self.wire.pop_front() {
            if let Some(node) = self.nodes.get_mut(&to) {
                node.handle_input(Input::Message { from, bytes }).unwrap();
            }
            self.collect();
        }
    }

    fn granted(&self, node: NodeId, lock: u32) -> Option<Mode> {
        self.events.iter().rev().find_map(|(n, e)| match e {
            Output::Completion { completion, .. }
                if *n == node && completion.lock.get() == lock =>
            {
                Some(completion.granted)
            }
            _ => None,
        })?
    }
}

/// A name whose directory node (among `members`) is `dir`.
fn name_with_directory(members: &[NodeId], dir: NodeId) -> Vec<u8> {
    (0u32..)
        .map(|i| format!("res{i}").into_bytes())
        .find(|n| directory_node(members, n) == Some(dir))
        .unwrap()
}

#[test]
fn remote_lock_costs_a_lookup_once_then_a_request_and_an_ast() {
    let mut c = Cluster::new(&[1, 2, 3]);
    // Directory on node 3; node 2 asks first and becomes master; node 1 locks remotely.
    let name = name_with_directory(&[1, 2, 3], 3);
    let master = c.nodes.get_mut(&2).unwrap();
    let m = master
        .lock(
            LS,
            LockRequest::new(Owner::new(2, 1), name.clone(), Mode::Nl),
        )
        .unwrap();
    c.collect();
    c.run();
    assert_eq!(c.granted(2, m.get()), Some(Mode::Nl));

    c.sent.clear();
    let a = c
        .nodes
        .get_mut(&1)
        .unwrap()
        .lock(
            LS,
            LockRequest::new(Owner::new(1, 1), name.clone(), Mode::Pr),
        )
        .unwrap();
    c.collect();
    c.run();
    assert_eq!(c.granted(1, a.get()), Some(Mode::Pr));
    let kinds: Vec<(NodeId, NodeId, &str)> = c
        .sent
        .iter()
        .map(|(f, t, m)| {
            let kind = match m {
                Msg::Lookup { .. } => "lookup",
                Msg::LookupReply { .. } => "reply",
                Msg::Request { .. } => "request",
                Msg::Ast { .. } => "ast",
                _ => "other",
            };
            (*f, *t, kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, 3, "lookup"),
            (3, 1, "reply"),
            (1, 2, "request"),
            (2, 1, "ast")
        ]
    );

    // The master is cached: the next lock is one request and one AST.
    c.sent.clear();
    let b = c
        .nodes
        .get_mut(&1)
        .unwrap()
        .lock(
            LS,
            LockRequest::new(Owner::new(1, 2), name.clone(), Mode::Cr),
        )
        .unwrap();
    c.collect();
    c.run();
    assert_eq!(c.granted(1, b.get()), Some(Mode::Cr));
    assert_eq!(c.sent.len(), 2);

    // A lock mastered here costs nothing on the wire.
    c.sent.clear();
    c.nodes
        .get_mut(&2)
        .unwrap()
        .lock(LS, LockRequest::new(Owner::new(2, 2), name, Mode::Cr))
        .unwrap();
    c.collect();
    c.run();
    assert!(c.sent.is_empty());
}

#[test]
fn a_failed_holders_lock_blocks_until_it_is_fenced_and_its_lvb_is_then_not_valid() {
    let mut c = Cluster::new(&[1, 2, 3]);
    let name = name_with_directory(&[1, 2, 3], 2);
    // Node 2 masters the resource (first asker); node 3 takes PW with a value block.
    let m = c
        .nodes
        .get_mut(&2)
        .unwrap()
        .lock(
            LS,
            LockRequest::new(Owner::new(2, 1), name.clone(), Mode::Nl),
        )
        .unwrap();
    c.collect();
    c.run();
    assert_eq!(c.granted(2, m.get()), Some(Mode::Nl));
    let w = c
        .nodes
        .get_mut(&3)
        .unwrap()
        .lock(
            LS,
            LockRequest::new(Owner::new(3, 1), name.clone(), Mode::Pw).with_lvb(&[0; 8]),
        )
        .unwrap();
    c.collect();
    c.run();
    assert_eq!(c.granted(3, w.get()), Some(Mode::Pw));
    // Node 1 asks for EX and waits behind the PW.
    let r = c
        .nodes
        .get_mut(&1)
        .unwrap()
        .lock(
            LS,
            LockRequest::new(Owner::new(1, 1), name.clone(), Mode::Ex).with_lvb(&[0; 8]),
        )
        .unwrap();
    c.collect();
    c.run();
    assert_eq!(c.granted(1, r.get()), None);

    // Node 3 fails. The survivors recover — but not before it is fenced.
    c.nodes.remove(&3);
    c.wire.retain(|(f, t, _)| *f != 3 && *t != 3);
    c.members(&[3]);
    c.run();
    assert!(
        c.events
            .iter()
            .any(|(_, e)| matches!(e, Output::AwaitFencing { node: 3 }))
    );
    assert_eq!(c.nodes[&1].is_recovering(LS), Some(true));
    assert_eq!(
        c.granted(1, r.get()),
        None,
        "granted before the holder was fenced"
    );
    assert!(
        c.nodes[&2]
            .master_copies(LS)
            .iter()
            .any(|(_, holder, _, mode)| *holder == 3 && *mode == Mode::Pw)
    );

    for node in c.nodes.values_mut() {
        node.handle_input(Input::Fenced { node: 3 }).unwrap();
    }
    c.collect();
    c.run();
    assert_eq!(c.nodes[&1].is_recovering(LS), Some(false));
    let grant = c.events.iter().find_map(|(n, e)| match e {
        Output::Completion { completion, .. } if *n == 1 && completion.lock == r => {
            Some(completion.clone())
        }
        _ => None,
    });
    let grant = grant.expect("the waiter is granted after fencing");
    assert_eq!(grant.status, Status::Granted);
    assert!(
        grant.flags.valnotvalid,
        "a PW holder died: the value block is not valid"
    );

    // And the lock can be released again.
    c.nodes
        .get_mut(&1)
        .unwrap()
        .unlock(LS, UnlockRequest::new(Owner::new(1, 1), r))
        .unwrap();
    c.collect();
    c.run();
    assert!(c.nodes[&1].locks(LS).is_empty());
}

#[test]
fn garbage_messages_are_ignored() {
    let mut c = Cluster::new(&[1, 2]);
    for bytes in [vec![], vec![1], vec![9, 9, 9], vec![1, 4, 0, 0, 0, 7, 0xff]] {
        c.nodes
            .get_mut(&1)
            .unwrap()
            .handle_input(Input::Message { from: 2, bytes })
            .unwrap();
    }
    c.collect();
    assert!(c.wire.is_empty());
}
