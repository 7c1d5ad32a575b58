//! Scenario tests over a hand-driven "totem": every member of a ring delivers the
//! same messages in the same order; configuration changes are injected by hand.

use crate::*;
use bytes::Bytes;
use phalanx_totem::{ConfigChange, ConfigKind};
use std::collections::BTreeMap;

struct Cluster {
    nodes: BTreeMap<NodeId, Cpg>,
    events: BTreeMap<NodeId, Vec<CpgEvent>>,
    /// Current rings: members and id.
    rings: Vec<(RingId, Vec<NodeId>)>,
    next_seq: u64,
}

fn cfg(incarnation: u64) -> CpgConfig {
    CpgConfig {
        incarnation,
        deliver_transitional: true,
        ..CpgConfig::default()
    }
}

impl Cluster {
    /// `n` nodes in one ring, exchange completed.
    fn new(n: u32) -> Self {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut c = Cluster {
            nodes: ids.iter().map(|&i| (i, Cpg::new(i, cfg(0)))).collect(),
            events: BTreeMap::new(),
            rings: Vec::new(),
            next_seq: 1,
        };
        c.configure(&[&ids]);
        c.settle();
        c
    }

    /// New rings: each group of nodes forms one (transitional = the members that
    /// were together before).
    fn configure(&mut self, groups: &[&[NodeId]]) {
        let old = std::mem::take(&mut self.rings);
        for g in groups {
            let ring = RingId {
                seq: self.next_seq,
                rep: g[0],
            };
            self.next_seq += 1;
            for &n in g.iter() {
                let previous = old.iter().find(|(_, m)| m.contains(&n));
                if let Some((prev, members)) = previous {
                    let trans: Vec<NodeId> =
                        members.iter().copied().filter(|m| g.contains(m)).collect();
                    self.nodes
                        .get_mut(&n)
                        .unwrap()
                        .handle_config(&ConfigChange {
                            kind: ConfigKind::Transitional,
                            ring,
                            previous: Some(*prev),
                            members: trans,
                            left: Vec::new(),
                            joined: Vec::new(),
                        });
                }
                self.nodes
                    .get_mut(&n)
                    .unwrap()
                    .handle_config(&ConfigChange {
                        kind: ConfigKind::Regular,
                        ring,
                        previous: previous.map(|p| p.0),
                        members: g.to_vec(),
                        left: Vec::new(),
                        joined: Vec::new(),
                    });
            }
            self.rings.push((ring, g.to_vec()));
        }
        self.drain_events();
    }

    /// Orders and delivers everything the nodes want to send, ring by ring, until
    /// nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for (_, members) in self.rings.clone() {
                let mut order = Vec::new();
                for &n in &members {
                    while let Some((g, data)) = self.nodes.get_mut(&n).unwrap().poll_send() {
                        order.push((n, g, data));
                    }
                }
                for (sender, g, data) in order {
                    moved = true;
                    for &n in &members {
                        let node = self.nodes.get_mut(&n).unwrap();
                        node.handle_deliver(sender, g, data.clone());
                    }
                }
            }
            self.drain_events();
            if !moved {
                break;
            }
        }
    }

    fn drain_events(&mut self) {
        for (id, n) in self.nodes.iter_mut() {
            while let Some(e) = n.poll_event() {
                self.events.entry(*id).or_default().push(e);
            }
        }
    }

    fn node(&mut self, n: NodeId) -> &mut Cpg {
        self.nodes.get_mut(&n).unwrap()
    }

    /// Group changes node `n` delivered to local member `local` in `group`.
    fn changes(&self, n: NodeId, local: u32, group: &[u8]) -> Vec<GroupChange> {
        self.events
            .get(&n)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                CpgEvent::Change(c)
                    if c.group.as_bytes() == group && c.recipients.contains(&local) =>
                {
                    Some((**c).clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Payloads node `n` delivered to `local` in `group`.
    fn delivered(&self, n: NodeId, local: u32, group: &[u8]) -> Vec<Vec<u8>> {
        self.events
            .get(&n)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                CpgEvent::Deliver(d)
                    if d.group.as_bytes() == group && d.recipients.contains(&local) =>
                {
                    Some(d.data.to_vec())
                }
                _ => None,
            })
            .collect()
    }
}

fn m(node: NodeId, local: u32) -> MemberId {
    MemberId { node, local }
}

fn change(node: NodeId, local: u32, reason: Reason) -> Change {
    Change {
        member: m(node, local),
        reason,
    }
}

#[test]
fn join_completes_with_a_view_containing_the_joiner_and_mcast_reaches_all_in_one_order() {
    let mut c = Cluster::new(3);
    c.node(1).join(10, b"g").unwrap();
    c.node(2).join(20, b"g").unwrap();
    assert_eq!(c.node(1).local_state(10, b"g"), Some(LocalState::Joining));
    c.settle();
    assert_eq!(c.node(1).local_state(10, b"g"), Some(LocalState::Joined));
    let first = &c.changes(1, 10, b"g")[0];
    assert_eq!(first.members, vec![m(1, 10)]);
    assert_eq!(first.joined, vec![change(1, 10, Reason::Join)]);
    let second = &c.changes(2, 20, b"g")[0];
    assert_eq!(second.members, vec![m(1, 10), m(2, 20)]);
    // Node 3 has no member: it still knows the group.
    assert_eq!(c.node(3).membership(b"g"), vec![m(1, 10), m(2, 20)]);
    c.node(1).mcast(10, b"g", Guarantee::Agreed, b"a").unwrap();
    c.node(2).mcast(20, b"g", Guarantee::Safe, b"b").unwrap();
    c.node(1).mcast(10, b"g", Guarantee::Agreed, b"c").unwrap();
    c.settle();
    let at1 = c.delivered(1, 10, b"g");
    assert_eq!(at1.len(), 3);
    assert_eq!(at1, c.delivered(2, 20, b"g"));
    assert!(c.delivered(3, 30, b"g").is_empty());
}

#[test]
fn requests_answer_with_corosync_errors() {
    let mut c = Cluster::new(1);
    let n = c.node(1);
    assert_eq!(n.join(1, b""), Err(CpgError::NameTooLong(0)));
    assert_eq!(n.join(1, &[b'x'; 129]), Err(CpgError::NameTooLong(129)));
    assert!(n.join(1, &[b'x'; 128]).is_ok());
    assert_eq!(n.leave(1, b"g"), Err(CpgError::NotExist));
    assert_eq!(
        n.mcast(1, b"g", Guarantee::Agreed, b"x"),
        Err(CpgError::NotExist)
    );
    n.join(1, b"g").unwrap();
    assert_eq!(n.join(1, b"g"), Err(CpgError::Exist));
    assert_eq!(n.leave(1, b"g"), Err(CpgError::Busy), "join in flight");
    // Joining members may multicast (ordered after their JOIN).
    assert!(n.mcast(1, b"g", Guarantee::Agreed, b"early").is_ok());
    let big = vec![0; n.config().max_message_size + 1];
    assert!(matches!(
        n.mcast(1, b"g", Guarantee::Agreed, &big),
        Err(CpgError::TooLarge { .. })
    ));
    c.settle();
    assert_eq!(c.delivered(1, 1, b"g"), vec![b"early".to_vec()]);
    let n = c.node(1);
    n.leave(1, b"g").unwrap();
    assert_eq!(n.leave(1, b"g"), Err(CpgError::Busy));
    assert_eq!(n.join(1, b"g"), Err(CpgError::Busy));
    c.settle();
    let last = c.changes(1, 1, b"g").pop().unwrap();
    assert_eq!(
        last.left,
        vec![change(1, 1, Reason::Leave)],
        "the leaver sees itself go"
    );
    assert_eq!(c.node(1).local_state(1, b"g"), None);
    assert!(c.node(1).join(1, b"g").is_ok(), "may join again");
}

#[test]
fn a_full_queue_answers_try_again_and_reports_no_room() {
    let mut n = Cpg::new(
        1,
        CpgConfig {
            send_queue_messages: 2,
            ..CpgConfig::default()
        },
    );
    n.join(1, b"g").unwrap();
    n.mcast(1, b"g", Guarantee::Agreed, b"x").unwrap();
    assert_eq!(n.send_room(), 0);
    assert_eq!(
        n.mcast(1, b"g", Guarantee::Agreed, b"y"),
        Err(CpgError::TryAgain)
    );
    assert_eq!(n.join(2, b"g"), Err(CpgError::TryAgain));
    assert_eq!(n.stats().try_again, 2);
}

#[test]
fn dropped_member_gives_procdown_to_the_others_and_nothing_to_itself() {
    let mut c = Cluster::new(2);
    c.node(1).join(1, b"g").unwrap();
    c.node(2).join(2, b"g").unwrap();
    c.settle();
    c.node(1).member_down(1);
    c.node(2)
        .mcast(2, b"g", Guarantee::Agreed, b"after")
        .unwrap();
    c.settle();
    let seen = c.changes(2, 2, b"g").pop().unwrap();
    assert_eq!(seen.left, vec![change(1, 1, Reason::ProcDown)]);
    assert_eq!(seen.members, vec![m(2, 2)]);
    let own: Vec<_> = c.changes(1, 1, b"g");
    assert!(own.iter().all(|ch| ch.left.is_empty()), "{own:?}");
    assert!(c.delivered(1, 1, b"g").is_empty());
    assert_eq!(c.node(1).local_state(1, b"g"), None);
}

#[test]
fn partition_gives_nodedown_and_merge_gives_nodeup_with_the_right_members() {
    let mut c = Cluster::new(3);
    for n in 1..=3 {
        c.node(n).join(n * 10, b"g").unwrap();
    }
    c.node(3).join(31, b"g").unwrap();
    c.settle();
    c.configure(&[&[1, 2], &[3]]);
    c.settle();
    let at1 = c.changes(1, 10, b"g").pop().unwrap();
    assert_eq!(
        at1.left,
        vec![
            change(3, 30, Reason::NodeDown),
            change(3, 31, Reason::NodeDown)
        ]
    );
    assert_eq!(at1.members, vec![m(1, 10), m(2, 20)]);
    let at3 = c.changes(3, 30, b"g").pop().unwrap();
    assert_eq!(at3.members, vec![m(3, 30), m(3, 31)]);
    // While apart, node 3's member leaves and node 1 gets a new one.
    c.node(3).leave(31, b"g").unwrap();
    c.node(1).join(11, b"g").unwrap();
    c.settle();
    c.configure(&[&[1, 2, 3]]);
    c.settle();
    let at2 = c.changes(2, 20, b"g").pop().unwrap();
    assert_eq!(at2.joined, vec![change(3, 30, Reason::NodeUp)]);
    let at3 = c.changes(3, 30, b"g").pop().unwrap();
    assert_eq!(
        at3.joined,
        vec![
            change(1, 10, Reason::NodeUp),
            change(1, 11, Reason::NodeUp),
            change(2, 20, Reason::NodeUp)
        ]
    );
    let all = vec![m(1, 10), m(1, 11), m(2, 20), m(3, 30)];
    for n in 1..=3 {
        assert_eq!(c.node(n).membership(b"g"), all);
    }
    assert_eq!(at2.view, at3.view, "same view id everywhere");
}

#[test]
fn interrupted_exchange_reports_each_change_once() {
    let mut c = Cluster::new(2);
    c.node(1).join(1, b"g").unwrap();
    c.node(2).join(2, b"g").unwrap();
    c.settle();
    // A new ring whose exchange never completes (nothing is delivered), then
    // another: node 2's member left in between.
    c.configure(&[&[1, 2]]);
    c.node(2).leave(2, b"g").unwrap();
    c.configure(&[&[1, 2]]);
    c.settle();
    c.settle();
    let at1 = c.changes(1, 1, b"g");
    let removals: Vec<_> = at1.iter().flat_map(|ch| ch.left.clone()).collect();
    assert_eq!(removals, vec![change(2, 2, Reason::Leave)]);
    assert_eq!(c.node(1).membership(b"g"), vec![m(1, 1)]);
    assert_eq!(c.node(2).membership(b"g"), vec![m(1, 1)]);
}

#[test]
fn application_sends_wait_for_the_exchange() {
    let mut c = Cluster::new(2);
    c.node(1).join(1, b"g").unwrap();
    c.settle();
    c.configure(&[&[1, 2]]);
    c.node(1)
        .mcast(1, b"g", Guarantee::Agreed, b"held")
        .unwrap();
    assert!(c.node(1).is_syncing());
    let (_, first) = c.node(1).poll_send().unwrap();
    assert!(matches!(
        wire::decode(first.clone()),
        Ok(wire::Message::JoinList(_))
    ));
    assert!(c.node(1).poll_send().is_none(), "the mcast waits");
    // Deliver the JOINLIST by hand, then the rest.
    for n in [1, 2] {
        c.node(n)
            .handle_deliver(1, Guarantee::Agreed, first.clone());
    }
    c.settle();
    assert_eq!(c.delivered(2, 2, b"g"), Vec::<Vec<u8>>::new());
    assert_eq!(c.delivered(1, 1, b"g"), vec![b"held".to_vec()]);
    assert!(c.node(1).is_quiescent());
}

#[test]
fn restarted_node_is_reported_down_and_up_even_with_the_same_ids() {
    let mut c = Cluster::new(2);
    c.node(1).join(1, b"g").unwrap();
    c.node(2).join(2, b"g").unwrap();
    c.settle();
    c.nodes.insert(2, Cpg::new(2, cfg(1)));
    c.node(2).join(2, b"g").unwrap();
    c.configure(&[&[1, 2]]);
    c.settle();
    let at1: Vec<_> = c.changes(1, 1, b"g");
    let last_two: Vec<_> = at1.iter().rev().take(2).rev().collect();
    let lists: Vec<_> = last_two
        .iter()
        .map(|ch| (ch.left.clone(), ch.joined.clone()))
        .collect();
    assert_eq!(
        lists,
        vec![
            (vec![change(2, 2, Reason::NodeDown)], vec![]),
            (vec![], vec![change(2, 2, Reason::Join)]),
        ]
    );
}

#[test]
fn malformed_input_is_counted_and_dropped() {
    let mut c = Cluster::new(1);
    let n = c.node(1);
    for junk in [
        &b""[..],
        b"\x01",
        b"\x07\x00",
        b"\x01\x03\x00\x00\x00\x00\x00",
    ] {
        n.handle_deliver(2, Guarantee::Agreed, Bytes::copy_from_slice(junk));
    }
    assert_eq!(n.stats().malformed, 4);
    assert!(n.poll_event().is_none());
}

#[test]
fn transitional_configuration_is_reported_only_when_asked() {
    let mut c = Cluster::new(2);
    c.configure(&[&[1], &[2]]);
    c.settle();
    let kinds: Vec<_> = c.events[&1]
        .iter()
        .filter_map(|e| match e {
            CpgEvent::Totem(t) => Some(t.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ConfigKind::Regular,
            ConfigKind::Transitional,
            ConfigKind::Regular
        ]
    );
    let mut quiet = Cpg::new(1, CpgConfig::default());
    quiet.handle_config(&ConfigChange {
        kind: ConfigKind::Transitional,
        ring: RingId { seq: 2, rep: 1 },
        previous: None,
        members: vec![1],
        left: vec![],
        joined: vec![],
    });
    assert!(quiet.poll_event().is_none());
}

#[test]
fn pre_encoded_mcasts_are_checked_like_mcast_and_delivered_alike() {
    let mut c = Cluster::new(1);
    let n = c.node(1);
    let prefix = n.config().wire_prefix;
    let enc = |local, group: &[u8], data: &[u8]| wire::encode_mcast(prefix, local, group, data);
    assert_eq!(
        n.mcast_encoded(1, Guarantee::Agreed, enc(1, b"g", b"x")),
        Err(CpgError::NotExist),
        "not joined"
    );
    for garbage in [
        vec![],
        vec![9u8; 3],
        wire::encode_control(prefix, wire::Control::Join, 1, 0, b"g"),
    ] {
        assert_eq!(
            n.mcast_encoded(1, Guarantee::Agreed, garbage),
            Err(CpgError::NotExist)
        );
    }
    n.join(1, b"g").unwrap();
    let big = vec![0; n.config().max_message_size + 1];
    assert!(matches!(
        n.mcast_encoded(1, Guarantee::Agreed, enc(1, b"g", &big)),
        Err(CpgError::TooLarge { .. })
    ));
    n.mcast_encoded(1, Guarantee::Safe, enc(1, b"g", b"pre"))
        .unwrap();
    n.mcast(1, b"g", Guarantee::Agreed, b"plain").unwrap();
    c.settle();
    assert_eq!(
        c.delivered(1, 1, b"g"),
        vec![b"pre".to_vec(), b"plain".to_vec()]
    );
}
