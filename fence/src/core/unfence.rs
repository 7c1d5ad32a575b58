//! Unfencing on join (§2.8 of the fencing reference): with a fabric device — an
//! agent whose metadata says `<action name="on" automatic="1"/>`, such as
//! `fence_scsi` or `fence_mpath`, which fences by cutting a node off shared
//! storage — every node must be let back in (`on`) before it uses that storage,
//! each time it joins. Pacemaker's scheduler runs it before any resource that
//! `requires=unfencing` starts on the node.
//!
//! Here, as for fencing, the coordinator (lowest member id) of a partition that
//! may fence asks for it: for each incarnation of each member (the ring it
//! joined in), again after a failure up to `max_attempts`. Every member learns
//! the results from the fencer's broadcasts — a result counts where the member
//! saw the operation start during the incarnation it knows (or the request named
//! that incarnation) — and answers
//! [`Unfencing::is_unfenced`] — the question a service using the fabric asks
//! before it touches shared storage for that node. Without a fabric device
//! nothing is owed and every member counts as unfenced.
//!
//! A node that joins did not see the earlier members' unfencing, and the ring in
//! which it first saw them is not the one they joined in, so it could never tell
//! that those results were about the incarnations it knows. So whenever the
//! membership grows, the coordinator unfences every member again (`on` is
//! idempotent: a fabric lets in a node already in): every member, the newcomer
//! included, then sees those operations start and counts their results.

use super::history::OpId;
use phalanx_quorum::NodeId;
use phalanx_totem::RingId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What unfencing asks for or reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnfenceOutput {
    /// Ask the fencer for `on` of `node` (allowed for the local node too).
    Unfence {
        /// The node.
        node: NodeId,
        /// The incarnation: the ring it joined in (the request's
        /// `target_joined`).
        joined: Option<RingId>,
    },
    /// `node` is unfenced in this incarnation: it may use the fabric.
    NodeUnfenced {
        /// The node.
        node: NodeId,
    },
}

#[derive(Debug, Clone, Default)]
struct Member {
    joined: Option<RingId>,
    done: bool,
    /// Unfence again so that members that joined since witness it.
    renew: bool,
    requested: bool,
    attempts: u32,
}

/// Unfencing of members, driven like the "who fences" decision.
#[derive(Debug, Clone)]
pub struct Unfencing {
    local: NodeId,
    max_attempts: u32,
    required: bool,
    may_request: bool,
    members: BTreeMap<NodeId, Member>,
    /// `on` operations whose start we saw delivered → (target, the incarnation
    /// we knew then); at most [`MAX_STARTED`](super::decision::MAX_STARTED).
    started: BTreeMap<OpId, (NodeId, Option<RingId>)>,
    out: VecDeque<UnfenceOutput>,
}

impl Unfencing {
    /// Nothing required until [`set_required`](Self::set_required); at most
    /// `max_attempts` requests per incarnation.
    pub fn new(local: NodeId, max_attempts: u32) -> Self {
        Unfencing {
            local,
            max_attempts: max_attempts.max(1),
            required: false,
            may_request: false,
            members: BTreeMap::new(),
            started: BTreeMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Whether some registered device needs unfencing (re-evaluated whenever the
    /// devices change).
    pub fn set_required(&mut self, required: bool) {
        if required != self.required {
            self.required = required;
            for m in self.members.values_mut() {
                m.attempts = 0;
            }
            self.evaluate();
        }
    }

    /// Whether unfencing is owed at all (a fabric device is registered).
    pub fn required(&self) -> bool {
        self.required
    }

    /// A new configuration: `members` of ring `ring`; `may_fence` is whether this
    /// partition may fence (quorate, or `no-quorum-policy=ignore`). A node not
    /// in the previous membership joined in `ring`: a new incarnation, owed
    /// unfencing.
    pub fn configuration(&mut self, ring: RingId, members: &BTreeSet<NodeId>, may_fence: bool) {
        let grew = members.iter().any(|n| !self.members.contains_key(n));
        self.members.retain(|n, _| members.contains(n));
        if grew {
            for m in self.members.values_mut() {
                m.renew = true;
                m.requested = false;
                m.attempts = 0;
            }
        }
        for n in members {
            self.members.entry(*n).or_insert_with(|| Member {
                joined: Some(ring),
                ..Member::default()
            });
        }
        self.may_request = may_fence;
        self.evaluate();
    }

    /// An `on` of `node` succeeded; `joined` is the incarnation its request was
    /// about. It counts for the member's current incarnation only.
    pub fn unfenced(&mut self, node: NodeId, joined: Option<RingId>) {
        if let Some(m) = self.members.get_mut(&node)
            && joined.is_some()
            && m.joined == joined
        {
            m.renew = false;
            m.requested = false;
            if !m.done {
                m.done = true;
                self.out.push_back(UnfenceOutput::NodeUnfenced { node });
            }
        }
    }

    /// The start of `on` operation `op` for `node` was delivered to us (agreed
    /// order with configuration changes): remember the incarnation we knew.
    pub fn operation_started(&mut self, op: OpId, node: NodeId) {
        if self.started.len() >= super::decision::MAX_STARTED
            && !self.started.contains_key(&op)
            && let Some(oldest) = self.started.keys().next().copied()
        {
            self.started.remove(&oldest);
        }
        let joined = self.members.get(&node).and_then(|m| m.joined);
        self.started.insert(op, (node, joined));
    }

    /// `on` operation `op` of `node` succeeded; `joined` is its requester's view
    /// of the incarnation. As for fencing results, it counts if the requester
    /// named our incarnation of `node`, or we saw it start during it (a member
    /// that joined after `node` did saw a later ring).
    pub fn operation_done(&mut self, node: NodeId, op: OpId, joined: Option<RingId>) {
        let seen = self
            .started
            .remove(&op)
            .filter(|(n, _)| *n == node)
            .and_then(|(_, j)| j);
        let known = self.members.get(&node).and_then(|m| m.joined);
        let about = if seen.is_some() && seen == known {
            seen
        } else {
            joined
        };
        self.unfenced(node, about);
    }

    /// Forgets the start of an operation that failed.
    pub fn operation_ended(&mut self, op: OpId) {
        self.started.remove(&op);
    }

    /// Our `on` request for `node` failed (or was refused): ask again if
    /// attempts remain.
    pub fn failed(&mut self, node: NodeId) {
        if let Some(m) = self.members.get_mut(&node)
            && m.requested
        {
            m.requested = false;
            self.evaluate();
        }
    }

    /// May `node` use the fabric? (Always, when no device needs unfencing.)
    pub fn is_unfenced(&self, node: NodeId) -> bool {
        !self.required || self.members.get(&node).is_some_and(|m| m.done)
    }

    /// The next request or report.
    pub fn poll(&mut self) -> Option<UnfenceOutput> {
        self.out.pop_front()
    }

    fn evaluate(&mut self) {
        let coordinator = self.members.keys().next() == Some(&self.local);
        if !self.required || !self.may_request || !coordinator {
            return;
        }
        for (n, m) in &mut self.members {
            if (!m.done || m.renew) && !m.requested && m.attempts < self.max_attempts {
                m.requested = true;
                m.attempts += 1;
                self.out.push_back(UnfenceOutput::Unfence {
                    node: *n,
                    joined: m.joined,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(seq: u64) -> RingId {
        RingId { seq, rep: 1 }
    }

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    fn drain(u: &mut Unfencing) -> Vec<UnfenceOutput> {
        std::iter::from_fn(|| u.poll()).collect()
    }

    #[test]
    fn the_coordinator_unfences_every_member_once_per_incarnation() {
        let mut u = Unfencing::new(1, 3);
        u.configuration(ring(4), &set(&[1, 2, 3]), true);
        assert!(
            drain(&mut u).is_empty(),
            "nothing owed without a fabric device"
        );
        assert!(u.is_unfenced(2));
        u.set_required(true);
        let asked = drain(&mut u);
        assert_eq!(asked.len(), 3, "{asked:?}");
        assert!(!u.is_unfenced(2));
        u.unfenced(2, Some(ring(4)));
        assert_eq!(drain(&mut u), [UnfenceOutput::NodeUnfenced { node: 2 }]);
        assert!(u.is_unfenced(2));
        for n in [1, 3] {
            u.unfenced(n, Some(ring(4)));
        }
        drain(&mut u);
        // The same membership again asks nothing new.
        u.configuration(ring(8), &set(&[1, 2, 3]), true);
        assert!(drain(&mut u).is_empty());
        // 2 leaves and rejoins: a new incarnation, unfenced again; the others are
        // unfenced again too, so that 2 witnesses it, but stay unfenced meanwhile.
        u.configuration(ring(12), &set(&[1, 3]), true);
        u.configuration(ring(16), &set(&[1, 2, 3]), true);
        assert!(!u.is_unfenced(2));
        assert!(u.is_unfenced(1) && u.is_unfenced(3));
        assert_eq!(
            drain(&mut u),
            [
                UnfenceOutput::Unfence {
                    node: 1,
                    joined: Some(ring(4))
                },
                UnfenceOutput::Unfence {
                    node: 2,
                    joined: Some(ring(16))
                },
                UnfenceOutput::Unfence {
                    node: 3,
                    joined: Some(ring(4))
                },
            ]
        );
        // A late result about the earlier incarnation does not count.
        u.unfenced(2, Some(ring(4)));
        assert!(!u.is_unfenced(2));
    }

    #[test]
    fn failures_are_retried_up_to_the_limit_and_only_the_coordinator_asks() {
        let mut u = Unfencing::new(1, 2);
        u.set_required(true);
        u.configuration(ring(4), &set(&[1, 2]), true);
        assert_eq!(drain(&mut u).len(), 2);
        u.failed(2);
        assert_eq!(drain(&mut u).len(), 1, "asked again");
        u.failed(2);
        assert!(drain(&mut u).is_empty(), "two attempts, no more");

        let mut other = Unfencing::new(2, 3);
        other.set_required(true);
        other.configuration(ring(4), &set(&[1, 2]), true);
        assert!(drain(&mut other).is_empty(), "node 1 coordinates");
        other.unfenced(2, Some(ring(4)));
        assert!(other.is_unfenced(2), "but every member learns the result");

        let mut inquorate = Unfencing::new(1, 3);
        inquorate.set_required(true);
        inquorate.configuration(ring(4), &set(&[1]), false);
        assert!(drain(&mut inquorate).is_empty());
    }
}
