//! The cpg service: one libcpg handle = one connection = one [`CpgMember`] of
//! the node, in at most one group (libcpg's rule). The member's local id is
//! the client's pid when no other live member of this node has it (so other
//! members see the pid libcpg applications expect); otherwise a fresh id.

use super::cpg_partial::{Reassembly, Whole};
use super::cpg_wire::{self as w, Address, CpgCall, iteration, res};
use super::cs;
use crate::node::{CpgMember, DispatchMode, NodeHandle};
use phalanx_cpg::{CpgError, CpgEvent, Guarantee, MemberId};
use phalanx_totem::ConfigKind;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::RawFd;

/// Callbacks larger than this go out as partial deliveries (libcpg
/// reassembles them), so no datagram needs a socket buffer beyond it.
const FRAGMENT: usize = super::handshake::EVENT_BUFFER / 4;
/// Open listings per connection.
const MAX_ITERATIONS: usize = 64;
/// `CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF`.
const DELIVER_INITIAL_TOTEM_CONF: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinState {
    Unjoined,
    JoinStarted,
    Joined,
    LeaveStarted,
}

/// What became of a request.
pub enum Handled {
    /// Send this reply.
    Reply(Vec<u8>),
    /// No reply (multicasts are one-way).
    NoReply,
    /// The node's send queue is full: the multicast waits here; stop reading
    /// this client's requests and raise its flow control until it is sent.
    Held,
}

/// One libcpg connection's state.
pub struct CpgSession {
    member: CpgMember,
    group: Option<Vec<u8>>,
    state: JoinState,
    flags: u32,
    initial_totem_sent: bool,
    iterations: BTreeMap<u64, VecDeque<(Vec<u8>, u32, u32)>>,
    next_iteration: u64,
    pending: Option<(Vec<u8>, Guarantee, Vec<u8>)>,
    /// A message arriving as `PARTIAL_MCAST` fragments (bounded by the node's
    /// CPG message limit).
    partial: Reassembly,
}

fn error_code(e: &CpgError) -> i32 {
    match e {
        CpgError::Exist => cs::ERR_EXIST,
        CpgError::Busy => cs::ERR_BUSY,
        CpgError::NotExist => cs::ERR_NOT_EXIST,
        CpgError::NameTooLong(_) => cs::ERR_NAME_TOO_LONG,
        CpgError::TryAgain => cs::ERR_TRY_AGAIN,
        CpgError::NoResources => cs::ERR_NO_RESOURCES,
        CpgError::TooLarge { .. } => cs::ERR_TOO_BIG,
        _ => cs::ERR_LIBRARY,
    }
}

/// CPG_TYPE_SAFE (3) is real here; UNORDERED, FIFO and AGREED are agreed.
fn guarantee_of(cpg_guarantee: u32) -> Guarantee {
    if cpg_guarantee == 3 {
        Guarantee::Safe
    } else {
        Guarantee::Agreed
    }
}

fn address(m: &MemberId, reason: u32) -> Address {
    Address {
        nodeid: m.node,
        pid: m.local,
        reason,
    }
}

impl CpgSession {
    /// A session for a client with `pid`.
    pub fn new(node: &NodeHandle, pid: u32) -> Result<CpgSession, CpgError> {
        let cpg = node.cpg();
        let member = match cpg.member_with_id(pid) {
            Ok(m) => m,
            // The same process has another handle open: any free id will do.
            Err(CpgError::Exist) => cpg.member()?,
            Err(e) => return Err(e),
        };
        Ok(CpgSession {
            member,
            group: None,
            state: JoinState::Unjoined,
            flags: 0,
            initial_totem_sent: false,
            iterations: BTreeMap::new(),
            next_iteration: 1,
            pending: None,
            partial: Reassembly::default(),
        })
    }

    /// The member's event fd (readable while events wait).
    pub fn fd(&self) -> RawFd {
        self.member.fd()
    }

    /// Handles one request.
    pub fn handle(&mut self, node: &NodeHandle, call: CpgCall<'_>) -> Handled {
        let reply = match call {
            CpgCall::Join { group, flags, .. } => {
                w::header_only(res::JOIN, self.join(group, flags))
            }
            CpgCall::Leave { group } => w::header_only(res::LEAVE, self.leave(&group)),
            CpgCall::Mcast { guarantee, data } => return self.mcast(guarantee, data),
            CpgCall::PartialMcast {
                guarantee,
                msglen,
                kind,
                data,
            } => w::header_only(
                res::PARTIAL_SEND,
                self.partial_mcast(node, guarantee, msglen, kind, data),
            ),
            CpgCall::Membership { group } => {
                let members: Vec<Address> = node
                    .cpg()
                    .membership(&group)
                    .iter()
                    .map(|m| address(m, 0))
                    .collect();
                w::membership(cs::OK, &members)
            }
            CpgCall::LocalGet => w::local_get(node.node_id()),
            CpgCall::IterationInitialize { kind, group } => {
                self.iteration_start(node, kind, &group)
            }
            CpgCall::IterationNext { handle } => match self.iterations.get_mut(&handle) {
                None => w::iteration_next(cs::ERR_LIBRARY, None),
                Some(list) => match list.pop_front() {
                    None => w::iteration_next(cs::ERR_NO_SECTIONS, None),
                    Some((g, n, p)) => w::iteration_next(cs::OK, Some((&g, n, p))),
                },
            },
            CpgCall::IterationFinalize { handle } => {
                let e = if self.iterations.remove(&handle).is_some() {
                    cs::OK
                } else {
                    cs::ERR_LIBRARY
                };
                w::header_only(res::ITERATION_FINALIZE, e)
            }
            CpgCall::Finalize => w::header_only(res::FINALIZE, cs::OK),
            CpgCall::ZeroCopy(id) => w::header_only(id + 5, cs::ERR_NOT_SUPPORTED),
        };
        Handled::Reply(reply)
    }

    fn join(&mut self, group: Vec<u8>, flags: u32) -> i32 {
        match self.state {
            JoinState::JoinStarted | JoinState::Joined => return cs::ERR_EXIST,
            JoinState::LeaveStarted => return cs::ERR_BUSY,
            JoinState::Unjoined => {}
        }
        match self.member.join(&group) {
            Ok(()) => {
                self.group = Some(group);
                self.state = JoinState::JoinStarted;
                self.flags = flags;
                cs::OK
            }
            Err(e) => error_code(&e),
        }
    }

    fn leave(&mut self, group: &[u8]) -> i32 {
        if self.group.as_deref() != Some(group) {
            return cs::ERR_NOT_EXIST;
        }
        match self.state {
            JoinState::Unjoined => cs::ERR_NOT_EXIST,
            JoinState::JoinStarted | JoinState::LeaveStarted => cs::ERR_BUSY,
            JoinState::Joined => match self.member.leave(group) {
                Ok(()) => {
                    self.state = JoinState::LeaveStarted;
                    cs::OK
                }
                Err(e) => error_code(&e),
            },
        }
    }

    fn mcast(&mut self, guarantee: u32, data: &[u8]) -> Handled {
        let Some(group) = self.group.clone() else {
            return Handled::NoReply;
        };
        if !matches!(self.state, JoinState::JoinStarted | JoinState::Joined) {
            // libcpg does not wait for a reply; Corosync logs and drops too.
            return Handled::NoReply;
        }
        let g = guarantee_of(guarantee);
        match self.member.mcast(&group, g, data) {
            Err(CpgError::TryAgain) => {
                self.pending = Some((group, g, data.to_vec()));
                Handled::Held
            }
            _ => Handled::NoReply,
        }
    }

    /// One `PARTIAL_MCAST` fragment; the whole message is multicast at its
    /// LAST fragment. Answered (libcpg waits for each fragment's reply).
    fn partial_mcast(
        &mut self,
        node: &NodeHandle,
        guarantee: u32,
        msglen: u32,
        kind: u32,
        data: &[u8],
    ) -> i32 {
        let Some(group) = self.group.clone() else {
            self.partial.clear();
            return cs::ERR_NOT_EXIST;
        };
        if !matches!(self.state, JoinState::JoinStarted | JoinState::Joined) {
            self.partial.clear();
            return cs::ERR_NOT_EXIST;
        }
        let max = node.cpg().max_message_size();
        let whole: Whole = match self.partial.push(guarantee, msglen, kind, data, max) {
            Err(e) => return e,
            Ok(None) => return cs::OK,
            Ok(Some(w)) => w,
        };
        match self
            .member
            .mcast(&group, guarantee_of(whole.guarantee), &whole.data)
        {
            Ok(()) => cs::OK,
            Err(CpgError::TryAgain) => {
                // libcpg sends the LAST fragment again after a pause.
                self.partial.undo_last(whole);
                cs::ERR_TRY_AGAIN
            }
            Err(e) => error_code(&e),
        }
    }

    /// Retries a held multicast; true once it is gone (sent or refused).
    pub fn retry_pending(&mut self) -> bool {
        let Some((group, g, data)) = self.pending.take() else {
            return true;
        };
        match self.member.mcast(&group, g, &data) {
            Err(CpgError::TryAgain) => {
                self.pending = Some((group, g, data));
                false
            }
            _ => true,
        }
    }

    fn iteration_start(&mut self, node: &NodeHandle, kind: u32, group: &[u8]) -> Vec<u8> {
        if self.iterations.len() >= MAX_ITERATIONS {
            return w::iteration_initialize(cs::ERR_NO_RESOURCES, 0);
        }
        let mut list = VecDeque::new();
        for g in node.cpg().groups() {
            let name = g.name.as_bytes().to_vec();
            match kind {
                iteration::NAME_ONLY => list.push_back((name, 0, 0)),
                iteration::ONE_GROUP if name != group => {}
                iteration::ONE_GROUP | iteration::ALL => {
                    for m in &g.members {
                        list.push_back((name.clone(), m.node, m.local));
                    }
                }
                _ => return w::iteration_initialize(cs::ERR_INVALID_PARAM, 0),
            }
        }
        let handle = self.next_iteration;
        self.next_iteration += 1;
        self.iterations.insert(handle, list);
        w::iteration_initialize(cs::OK, handle)
    }

    /// Turns the member's waiting events into callbacks, in order.
    pub fn drain(&mut self, node: &NodeHandle, out: &mut Vec<Vec<u8>>) {
        let me = self.member.id();
        let mut events = Vec::new();
        self.member
            .dispatch(DispatchMode::All, |ev| events.push(ev));
        for ev in events {
            match ev {
                CpgEvent::Change(c) => {
                    let members: Vec<Address> = c.members.iter().map(|m| address(m, 0)).collect();
                    let left: Vec<Address> = c
                        .left
                        .iter()
                        .map(|x| address(&x.member, x.reason as u32))
                        .collect();
                    let joined: Vec<Address> = c
                        .joined
                        .iter()
                        .map(|x| address(&x.member, x.reason as u32))
                        .collect();
                    out.push(w::confchg(c.group.as_bytes(), &members, &left, &joined));
                    if c.joined.iter().any(|x| x.member == me) {
                        self.state = JoinState::Joined;
                        if self.flags & DELIVER_INITIAL_TOTEM_CONF != 0 && !self.initial_totem_sent
                        {
                            self.initial_totem_sent = true;
                            let m = node.membership();
                            out.push(w::totem_confchg(m.ring.rep, m.ring.seq, &m.members));
                        }
                    }
                    if c.left.iter().any(|x| x.member == me) {
                        self.state = JoinState::Unjoined;
                        self.group = None;
                    }
                }
                CpgEvent::Deliver(d) => {
                    let (g, n, p) = (d.group.as_bytes(), d.sender.node, d.sender.local);
                    if d.data.len() + 184 <= FRAGMENT {
                        out.push(w::deliver(g, n, p, &d.data));
                    } else {
                        out.extend(w::partial_deliver(g, n, p, &d.data, FRAGMENT));
                    }
                }
                CpgEvent::Totem(t) if t.kind == ConfigKind::Regular => {
                    out.push(w::totem_confchg(t.ring.rep, t.ring.seq, &t.members));
                }
                _ => {}
            }
        }
    }
}
