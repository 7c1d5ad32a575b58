//! The quorum and votequorum services over the node's [`Quorum`](crate::node::Quorum)
//! handle: state queries answer from the last published decision; tracking
//! connections get a notification for every change the node publishes.

use super::cs;
use super::qdevice::QdeviceSlot;
use super::quorum_wire::{
    self as w, QuorumCall, TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT, VotequorumCall,
    VqInfo, vq_flags, vq_res,
};
use crate::node::{NodeHandle, QuorumCallError, QuorumChange, QuorumInfo};
use phalanx_quorum::NodeState;
use std::time::Instant;

/// A libquorum connection.
#[derive(Debug, Default)]
pub struct QuorumSession {
    model_v1: bool,
    tracking: bool,
    /// Members in the last node list sent (model V1 reports joined and left).
    last_members: Vec<u32>,
}

/// A libvotequorum connection.
#[derive(Debug, Default)]
pub struct VotequorumSession {
    tracking: Option<u64>,
}

/// What a notification needs: quorate, ring, members, every node's state.
pub struct QuorumState {
    quorate: bool,
    rep: u32,
    seq: u64,
    members: Vec<u32>,
    nodes: Vec<(u32, u32)>,
}

fn state_code(s: NodeState) -> u32 {
    match s {
        NodeState::Member => 1,
        NodeState::Dead => 2,
        NodeState::Leaving => 3,
    }
}

impl QuorumState {
    /// From the node's last decision (`None` when quorum is not configured).
    pub fn current(node: &NodeHandle) -> Option<QuorumState> {
        let info = node.quorum().info()?;
        let ring = info.cluster.ring.unwrap_or_else(|| node.membership().ring);
        Some(QuorumState {
            quorate: info.cluster.quorate,
            rep: ring.rep,
            seq: ring.seq,
            members: info.cluster.members.clone(),
            nodes: info
                .nodes
                .iter()
                .map(|n| (n.node, state_code(n.state)))
                .collect(),
        })
    }
}

impl QuorumState {
    /// From a published change.
    pub fn from_change(c: &QuorumChange) -> QuorumState {
        QuorumState {
            quorate: c.quorate,
            rep: c.ring.rep,
            seq: c.ring.seq,
            members: c
                .nodes
                .iter()
                .filter(|n| n.state != NodeState::Dead)
                .map(|n| n.node)
                .collect(),
            nodes: c
                .nodes
                .iter()
                .map(|n| (n.node, state_code(n.state)))
                .collect(),
        }
    }
}

fn call_error(e: &QuorumCallError) -> i32 {
    match e {
        QuorumCallError::NotConfigured => cs::ERR_NOT_EXIST,
        QuorumCallError::Refused(_) => cs::ERR_INVALID_PARAM,
        _ => cs::ERR_LIBRARY,
    }
}

impl QuorumSession {
    /// Handles one request; callbacks it causes go to `out`.
    pub fn handle(
        &mut self,
        node: &NodeHandle,
        call: QuorumCall,
        out: &mut Vec<Vec<u8>>,
    ) -> Vec<u8> {
        let configured = node.quorum().info().is_some();
        let kind = if configured {
            w::QUORUM_SET
        } else {
            w::QUORUM_FREE
        };
        match call {
            QuorumCall::GetType => w::gettype(w::res::GETTYPE, kind),
            QuorumCall::ModelGetType { model } => {
                self.model_v1 = model == 1;
                w::gettype(w::res::MODEL_GETTYPE, kind)
            }
            QuorumCall::GetQuorate => w::getquorate(node.quorum().is_quorate()),
            QuorumCall::TrackStart { flags } => {
                // As Corosync: the current state for CURRENT or CHANGES, even
                // when already tracking (which is then refused).
                if flags & (TRACK_CURRENT | TRACK_CHANGES) != 0 {
                    if let Some(s) = QuorumState::current(node) {
                        // Model V1: the node list first (no joined / left here).
                        if self.model_v1 {
                            out.push(w::nodelist_v1(s.rep, s.seq, &s.members, &[], &[]));
                            self.last_members = s.members.clone();
                        }
                        out.push(self.notification(&s));
                    }
                }
                if self.tracking {
                    return w::header_only(w::res::TRACKSTART, cs::ERR_EXIST);
                }
                if flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY) != 0 {
                    self.tracking = true;
                }
                w::header_only(w::res::TRACKSTART, cs::OK)
            }
            QuorumCall::TrackStop => {
                // Corosync answers CS_OK whether or not tracking was on (its
                // handler overwrites the error), and corosync-quorumtool stops
                // a CURRENT-only tracking it never started: keep that answer.
                self.tracking = false;
                w::header_only(w::res::TRACKSTOP, cs::OK)
            }
        }
    }

    fn notification(&self, s: &QuorumState) -> Vec<u8> {
        if self.model_v1 {
            w::notification_v1(s.quorate, s.rep, s.seq, &s.members)
        } else {
            w::notification_v0(s.quorate, s.seq, &s.members)
        }
    }

    /// The notifications of a change, if this connection tracks changes:
    /// model V1 also gets the node list with who joined and left.
    pub fn on_change(&mut self, s: &QuorumState) -> Vec<Vec<u8>> {
        if !self.tracking {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.model_v1 && s.members != self.last_members {
            let joined: Vec<u32> = s
                .members
                .iter()
                .filter(|m| !self.last_members.contains(m))
                .copied()
                .collect();
            let left: Vec<u32> = self
                .last_members
                .iter()
                .filter(|m| !s.members.contains(m))
                .copied()
                .collect();
            out.push(w::nodelist_v1(s.rep, s.seq, &s.members, &joined, &left));
            self.last_members = s.members.clone();
        }
        out.push(self.notification(s));
        out
    }
}

fn vq_info(
    node: &NodeHandle,
    info: &QuorumInfo,
    nodeid: u32,
    device: &QdeviceSlot,
) -> Option<VqInfo> {
    let id = if nodeid == 0 { node.node_id() } else { nodeid };
    let n = info.nodes.iter().find(|n| n.node == id)?;
    let c = &info.cluster;
    let flags = [
        (c.two_node, vq_flags::TWONODE),
        (c.quorate, vq_flags::QUORATE),
        (c.wait_for_all, vq_flags::WAIT_FOR_ALL),
        (c.last_man_standing, vq_flags::LAST_MAN_STANDING),
        (c.auto_tie_breaker, vq_flags::AUTO_TIE_BREAKER),
        (c.allow_downscale, vq_flags::ALLOW_DOWNSCALE),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, f)| acc | f);
    // The device's state is known for this node only (other nodes' devices
    // reach votequorum as votes, not as registrations).
    let device_flags = if id == node.node_id() {
        device.flags()
    } else {
        0
    };
    Some(VqInfo {
        nodeid: id,
        state: state_code(n.state),
        votes: n.votes,
        expected_votes: n.expected,
        highest_expected: c.expected_votes,
        total_votes: c.total_votes,
        quorum: c.quorum,
        flags: flags | device_flags,
        qdevice_votes: c.device_votes,
        qdevice_name: device.name().to_vec(),
    })
}

impl VotequorumSession {
    /// Handles one request; callbacks it causes go to `out`. `device` is the
    /// node's quorum-device slot (shared by all connections).
    pub fn handle(
        &mut self,
        node: &NodeHandle,
        call: VotequorumCall,
        device: &mut QdeviceSlot,
        out: &mut Vec<Vec<u8>>,
    ) -> Vec<u8> {
        let status = |e: i32| w::header_only(vq_res::STATUS, e);
        match call {
            VotequorumCall::GetInfo { nodeid } => match node.quorum().info() {
                None => w::vq_getinfo(cs::ERR_NOT_EXIST, &VqInfo::default()),
                Some(info) => match vq_info(node, &info, nodeid, device) {
                    Some(i) => w::vq_getinfo(cs::OK, &i),
                    None => w::vq_getinfo(cs::ERR_NOT_EXIST, &VqInfo::default()),
                },
            },
            VotequorumCall::SetExpected { votes } => {
                status(match node.quorum().set_expected_votes(votes) {
                    Ok(()) => cs::OK,
                    Err(e) => call_error(&e),
                })
            }
            VotequorumCall::SetVotes { nodeid, votes } => {
                let id = if nodeid == 0 { node.node_id() } else { nodeid };
                status(match node.quorum().set_votes(id, votes) {
                    Ok(()) => cs::OK,
                    Err(e) => call_error(&e),
                })
            }
            VotequorumCall::TrackStart { context, flags } => {
                // As Corosync: the current state for CURRENT or CHANGES, even
                // when already tracking (which is then refused).
                if flags & (TRACK_CURRENT | TRACK_CHANGES) != 0 {
                    if let Some(s) = QuorumState::current(node) {
                        out.extend(Self::notifications(context, &s));
                    }
                }
                if self.tracking.is_some() {
                    return w::header_only(vq_res::STATUS, cs::ERR_EXIST);
                }
                if flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY) != 0 {
                    self.tracking = Some(context);
                }
                w::header_only(vq_res::STATUS, cs::OK)
            }
            VotequorumCall::TrackStop => {
                let e = if self.tracking.take().is_some() {
                    cs::OK
                } else {
                    cs::ERR_NOT_EXIST
                };
                status(e)
            }
            VotequorumCall::Qdevice(call) => {
                let ring = node.quorum().info().and_then(|i| i.cluster.ring);
                let (mut e, vote) = device.handle(Instant::now(), ring, call);
                if let Some(v) = vote {
                    match node.quorum().set_device_vote(v.ring, v.cast) {
                        Ok(()) => device.vote_sent(v),
                        // Not counted: the device polls again. (A withdrawal
                        // that was not taken is retried by the server's tick.)
                        Err(_) if v.cast => e = cs::ERR_TRY_AGAIN,
                        Err(_) => {}
                    }
                }
                status(e)
            }
        }
    }

    fn notifications(context: u64, s: &QuorumState) -> [Vec<u8>; 2] {
        // Corosync's order: the node list, then the quorum state.
        [
            w::vq_nodelist_notification(context, s.rep, s.seq, &s.members),
            w::vq_quorum_notification(s.quorate, context, &s.nodes),
        ]
    }

    /// The notifications of a change, if this connection tracks changes.
    pub fn on_change(&self, s: &QuorumState) -> Vec<Vec<u8>> {
        self.tracking
            .map(|c| Self::notifications(c, s).to_vec())
            .unwrap_or_default()
    }
}
