//! What the CPG checkers share: a history split into per-member, per-group
//! timelines, and [`all`], the checker set for nodes that run CPG over totem.
//!
//! Vocabulary: a *member process* is `(node, incarnation, local id)`; it *failed* if
//! its node process crashed or left, and *went down* if its application called
//! `member_down`. Its *view* of a group is the last group view it received.

use super::Violation;
use crate::history::{
    CpgMember, CpgReason, CpgRequest, CpgViewId, EventKind, History, MsgId, Observation, Process,
};
use std::collections::{BTreeMap, BTreeSet};

/// `(node, incarnation, local)`.
pub(crate) type MemberProc = (u32, u32, u32);

/// One group view as one member received it.
#[derive(Clone, Debug)]
pub(crate) struct ViewStep {
    pub view: CpgViewId,
    /// Sorted.
    pub members: Vec<CpgMember>,
    pub left: Vec<(CpgMember, CpgReason)>,
    pub joined: Vec<(CpgMember, CpgReason)>,
}

/// One thing a member saw or did in one group, in order.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    View(ViewStep),
    Deliver {
        sender: CpgMember,
        msg: MsgId,
        intact: bool,
    },
    Sent(MsgId),
    Leave,
    /// The application dropped the member's handle.
    Down,
}

/// Everything one member process did in one group.
#[derive(Clone, Debug)]
pub(crate) struct MemberTimeline {
    pub member: MemberProc,
    pub group: Vec<u8>,
    pub failed: bool,
    pub went_down: bool,
    pub steps: Vec<Step>,
}

impl MemberTimeline {
    /// `(node, local)`.
    pub fn id(&self) -> CpgMember {
        (self.member.0, self.member.2)
    }
}

/// A history seen through CPG.
pub(crate) struct CpgHistory {
    pub timelines: Vec<MemberTimeline>,
    /// Requests by member `(node, local)` (local ids are unique across
    /// incarnations in the workload), in any group.
    pub requests: BTreeMap<CpgMember, BTreeSet<ReqKey>>,
    /// Every message some member multicast.
    pub sent: BTreeSet<MsgId>,
}

/// A request of a member: for `Down`, `group` is empty.
pub(crate) type ReqKey = (Vec<u8>, Req);

/// Orderable [`CpgRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Req {
    Join,
    Leave,
    Down,
}

impl CpgHistory {
    pub fn new(h: &History) -> Self {
        let mut failed: BTreeSet<Process> = BTreeSet::new();
        let mut down: BTreeSet<MemberProc> = BTreeSet::new();
        let mut requests: BTreeMap<CpgMember, BTreeSet<ReqKey>> = BTreeMap::new();
        let mut sent = BTreeSet::new();
        let mut steps: Vec<(Vec<u8>, MemberProc, Step)> = Vec::new();
        // Groups each member process has appeared in, so `Down` reaches them all.
        let mut groups_of: BTreeMap<MemberProc, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for e in &h.events {
            let (node, inc) = (e.node, e.incarnation);
            match &e.kind {
                EventKind::Crash | EventKind::Leave => {
                    failed.insert((node, inc));
                }
                EventKind::Observation(o) => match o {
                    Observation::CpgView {
                        group,
                        receiver,
                        view,
                        members,
                        left,
                        joined,
                    } => {
                        let mut members = members.clone();
                        members.sort_unstable();
                        steps.push((
                            group.clone(),
                            (node, inc, *receiver),
                            Step::View(ViewStep {
                                view: *view,
                                members,
                                left: left.clone(),
                                joined: joined.clone(),
                            }),
                        ));
                    }
                    Observation::CpgDeliver {
                        group,
                        receiver,
                        sender,
                        msg,
                        intact,
                    } => steps.push((
                        group.clone(),
                        (node, inc, *receiver),
                        Step::Deliver {
                            sender: *sender,
                            msg: *msg,
                            intact: *intact,
                        },
                    )),
                    Observation::CpgSent { group, sender, msg } => {
                        sent.insert(*msg);
                        steps.push((group.clone(), (node, inc, *sender), Step::Sent(*msg)));
                    }
                    Observation::CpgRequest {
                        group,
                        local,
                        request,
                    } => {
                        let req = match request {
                            CpgRequest::Join => Req::Join,
                            CpgRequest::Leave => {
                                steps.push((group.clone(), (node, inc, *local), Step::Leave));
                                Req::Leave
                            }
                            CpgRequest::Down => {
                                down.insert((node, inc, *local));
                                for g in groups_of.get(&(node, inc, *local)).into_iter().flatten() {
                                    steps.push((g.clone(), (node, inc, *local), Step::Down));
                                }
                                Req::Down
                            }
                        };
                        requests
                            .entry((node, *local))
                            .or_default()
                            .insert((group.clone(), req));
                    }
                    _ => {}
                },
                _ => {}
            }
            if let Some((g, m, _)) = steps.last() {
                if !g.is_empty() {
                    groups_of.entry(*m).or_default().insert(g.clone());
                }
            }
        }
        let mut map: BTreeMap<(Vec<u8>, MemberProc), MemberTimeline> = BTreeMap::new();
        for (group, m, step) in steps {
            map.entry((group.clone(), m))
                .or_insert_with(|| MemberTimeline {
                    member: m,
                    group,
                    failed: false,
                    went_down: false,
                    steps: Vec::new(),
                })
                .steps
                .push(step);
        }
        let mut timelines: Vec<MemberTimeline> = map.into_values().collect();
        for t in &mut timelines {
            t.failed = failed.contains(&(t.member.0, t.member.1));
            t.went_down = down.contains(&t.member);
        }
        Self {
            timelines,
            requests,
            sent,
        }
    }

    /// Whether member `m` asked for `req` (in `group`, or anywhere for `Down`).
    pub fn requested(&self, m: CpgMember, group: &[u8], req: Req) -> bool {
        let g: &[u8] = if req == Req::Down { &[] } else { group };
        self.requests
            .get(&m)
            .is_some_and(|s| s.contains(&(g.to_vec(), req)))
    }
}

/// `n2#0/7 in g0`.
pub(crate) fn who(t: &MemberTimeline) -> String {
    format!(
        "n{}#{}/{} in {}",
        t.member.0,
        t.member.1,
        t.member.2,
        t.group.escape_ascii()
    )
}

/// The totem checkers plus every CPG checker.
pub fn all(h: &History) -> Vec<Violation> {
    let mut v = super::all(h);
    let c = CpgHistory::new(h);
    v.extend(super::cpg_view_agreement::check_cpg(&c));
    v.extend(super::cpg_group_order::check_cpg(&c));
    v.extend(super::cpg_integrity::check_cpg(&c));
    v.extend(super::cpg_self_delivery::check_cpg(&c));
    v.extend(super::cpg_departure_once::check_cpg(&c));
    v.extend(super::cpg_no_delivery_before_join::check_cpg(&c));
    v.extend(super::cpg_convergence::check_cpg(h, &c));
    v
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for hand-made CPG histories (group "g", incarnation 0).
    use crate::history::{
        CpgMember, CpgReason, CpgRequest, CpgViewId, History, MsgId, Observation,
    };

    pub fn vid(sender: u32, seq: u64) -> CpgViewId {
        CpgViewId {
            ring: (1, 1),
            sender,
            seq,
        }
    }
    pub fn msg(sender: u32, seq: u64) -> MsgId {
        MsgId {
            sender,
            incarnation: 0,
            seq,
        }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn view(
        h: &mut History,
        node: u32,
        receiver: u32,
        view: CpgViewId,
        members: &[CpgMember],
        left: &[(CpgMember, CpgReason)],
        joined: &[(CpgMember, CpgReason)],
    ) {
        h.observe(
            0,
            node,
            0,
            Observation::CpgView {
                group: b"g".to_vec(),
                receiver,
                view,
                members: members.to_vec(),
                left: left.to_vec(),
                joined: joined.to_vec(),
            },
        );
    }
    pub fn deliver(h: &mut History, node: u32, receiver: u32, sender: CpgMember, m: MsgId) {
        h.observe(
            0,
            node,
            0,
            Observation::CpgDeliver {
                group: b"g".to_vec(),
                receiver,
                sender,
                msg: m,
                intact: true,
            },
        );
    }
    pub fn sent(h: &mut History, node: u32, sender: u32, m: MsgId) {
        h.observe(
            0,
            node,
            0,
            Observation::CpgSent {
                group: b"g".to_vec(),
                sender,
                msg: m,
            },
        );
    }
    pub fn request(h: &mut History, node: u32, local: u32, request: CpgRequest) {
        let group = if request == CpgRequest::Down {
            Vec::new()
        } else {
            b"g".to_vec()
        };
        h.observe(
            0,
            node,
            0,
            Observation::CpgRequest {
                group,
                local,
                request,
            },
        );
    }
    /// Members (1,1) and (2,1) join "g" and each sees both views.
    pub fn two_members() -> History {
        let mut h = History::new(vec![1, 2]);
        request(&mut h, 1, 1, CpgRequest::Join);
        request(&mut h, 2, 1, CpgRequest::Join);
        let j = CpgReason::Join;
        view(&mut h, 1, 1, vid(1, 0), &[(1, 1)], &[], &[((1, 1), j)]);
        for n in [1, 2] {
            view(
                &mut h,
                n,
                1,
                vid(2, 0),
                &[(1, 1), (2, 1)],
                &[],
                &[((2, 1), j)],
            );
        }
        h
    }
}
