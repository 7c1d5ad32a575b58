//! What happened in a run: every observation of every process, plus the faults the
//! engine injected. Checkers are pure functions of a [`History`].

use crate::node::{NodeId, NodeStatus, VTime};
use std::fmt;

/// A ring identity: `(representative, sequence)`.
pub type RingId = (u32 /*rep*/, u64 /*seq*/);

/// A process: a node and its incarnation. A restarted node is a new process.
pub type Process = (NodeId, u32);

/// Identity of an application message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId {
    /// The node that multicast it.
    pub sender: NodeId,
    /// The sender's incarnation at the time.
    pub incarnation: u32,
    /// Per-process sequence number.
    pub seq: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.sender, self.incarnation, self.seq)
    }
}

/// The delivery guarantee requested for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Totally ordered.
    Agreed,
    /// Totally ordered and delivered only once every member has it.
    Safe,
}

/// Kind of configuration change (EVS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// The reduced configuration in which the old ring's leftovers are delivered.
    Transitional,
    /// A newly formed ring.
    Regular,
}

/// A closed-process-group member: its node and its node-local id.
pub type CpgMember = (NodeId, u32);

/// Why a member is in a CPG view's joined or left list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpgReason {
    /// It asked to join.
    Join,
    /// It asked to leave.
    Leave,
    /// Its node left the configuration.
    NodeDown,
    /// Its node arrived.
    NodeUp,
    /// Its handle went away.
    ProcDown,
}

/// Identity of a CPG group view, the same at every node that installs it: the ring
/// and, for a view caused by a JOIN/LEAVE/PROCDOWN message, its sender node and the
/// sender's sequence number (`sender` 0 = the state exchange on that ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpgViewId {
    /// The ring.
    pub ring: RingId,
    /// The node whose message caused it, 0 for the exchange.
    pub sender: NodeId,
    /// That node's control-message sequence number.
    pub seq: u64,
}

impl fmt::Display for CpgViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sender == 0 {
            write!(f, "sync@{}.{}", self.ring.0, self.ring.1)
        } else {
            write!(
                f,
                "msg {}:{}@{}.{}",
                self.sender, self.seq, self.ring.0, self.ring.1
            )
        }
    }
}

/// A CPG request an application made (and the core accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpgRequest {
    /// `join(local, group)`.
    Join,
    /// `leave(local, group)`.
    Leave,
    /// `member_down(local)` (`group` is empty).
    Down,
}

/// What a node's application saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The application's multicast was accepted by the protocol.
    Sent {
        /// The message.
        msg: MsgId,
        /// Requested guarantee.
        guarantee: Guarantee,
    },
    /// `intact` = the payload's embedded checksum/length verified.
    Deliver {
        /// The message.
        msg: MsgId,
        /// Guarantee it was delivered with.
        guarantee: Guarantee,
        /// Payload verified.
        intact: bool,
    },
    /// For Transitional, `ring` is the new ring and `old_ring` the ring being left;
    /// for Regular, `old_ring` is None.
    Config {
        /// Transitional or regular.
        kind: ConfigKind,
        /// The ring.
        ring: RingId,
        /// The ring being left (transitional only).
        old_ring: Option<RingId>,
        /// Members of the configuration.
        members: Vec<NodeId>,
    },
    /// A CPG member got a group view change.
    CpgView {
        /// The group.
        group: Vec<u8>,
        /// The local member that received it.
        receiver: u32,
        /// Which view.
        view: CpgViewId,
        /// Members after the change, ascending.
        members: Vec<CpgMember>,
        /// Members that left.
        left: Vec<(CpgMember, CpgReason)>,
        /// Members that joined.
        joined: Vec<(CpgMember, CpgReason)>,
    },
    /// A CPG member received a group message.
    CpgDeliver {
        /// The group.
        group: Vec<u8>,
        /// The local member that received it.
        receiver: u32,
        /// The member the core says sent it.
        sender: CpgMember,
        /// The message (from its self-describing payload).
        msg: MsgId,
        /// Payload verified (and its embedded sender matches `sender`).
        intact: bool,
    },
    /// A CPG member's multicast was accepted.
    CpgSent {
        /// The group.
        group: Vec<u8>,
        /// The sending local member.
        sender: u32,
        /// The message.
        msg: MsgId,
    },
    /// The node's quorum state changed (votequorum's `QuorumChanged`): whether its
    /// partition may act, the ring the decision belongs to, and the members it
    /// counted (after a transitional configuration: the transitional members).
    Quorum {
        /// Quorate or not.
        quorate: bool,
        /// The ring.
        ring: RingId,
        /// The members the decision counted, ascending.
        members: Vec<NodeId>,
    },
    /// What a node's CIB service did (the Stack's `cib` layer in the swarm).
    Cib(CibObservation),
    /// A CPG request was accepted.
    CpgRequest {
        /// The group (empty for `Down`).
        group: Vec<u8>,
        /// The local member.
        local: u32,
        /// What it asked.
        request: CpgRequest,
    },
}

/// A CIB version `(admin_epoch, epoch, num_updates)`, compared in that order.
pub type CibVersion = (i64, i64, i64);

/// What a node's CIB service did. Requests are named as [`MsgId`]s: the node that
/// asked, its incarnation (the service's client number) and a per-incarnation
/// sequence number (the call number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CibObservation {
    /// The copy after a change, or as loaded at start: its version, exact digest,
    /// and the workload's markers it holds (sorted).
    State {
        /// The version.
        version: CibVersion,
        /// The exact content digest.
        digest: [u8; 16],
        /// Marker objects present in the copy.
        markers: Vec<String>,
    },
    /// A request applied (with a change) in agreed order in configuration `ring`.
    Applied {
        /// The configuration the service was synced in.
        ring: RingId,
        /// The request.
        op: MsgId,
        /// The version after it.
        version: CibVersion,
        /// The result's digest as the patchset carries it.
        digest: String,
    },
    /// A local client's request succeeded with a change; `marker` is the marker
    /// object it created, if that was its purpose.
    Acked {
        /// The request.
        op: MsgId,
        /// The marker it created.
        marker: Option<String>,
    },
    /// A sync discarded this copy's own changes; the markers in the discarded part
    /// (the divergence report).
    Divergence {
        /// Markers reported as discarded.
        markers: Vec<String>,
    },
    /// With quorum required: the copy became writable in configuration `ring`
    /// (its quorate lineage is now `ring`'s sequence number).
    Writable {
        /// The configuration.
        ring: RingId,
    },
}

/// What kind of history event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Something the node's application observed.
    Observation(Observation),
    /// The node crashed: volatile state lost; the process is failed from now on.
    Crash,
    /// A new incarnation of the node started (the event carries the new incarnation).
    Restart,
    /// The node stopped being scheduled.
    Pause,
    /// The node is scheduled again.
    Resume,
    /// The node left cleanly; the process is failed from now on.
    Leave,
    /// The set of blocked directed links changed (empty = fully connected).
    /// Engine-wide: `node` and `incarnation` of the event are 0.
    PartitionChange {
        /// Blocked `(from, to)` links.
        blocked: Vec<(NodeId, NodeId)>,
    },
}

/// One entry of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Virtual time.
    pub time: VTime,
    /// The node.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: u32,
    /// What happened.
    pub kind: EventKind,
}

/// Everything a run observed, in virtual-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The configured nodes.
    pub nodes: Vec<NodeId>,
    /// Events in the order they happened.
    pub events: Vec<Event>,
    /// Each node's status at the end of the run; `None` if it was not running.
    pub final_status: Vec<(NodeId, Option<NodeStatus>)>,
    /// Virtual time at which the run ended.
    pub end: VTime,
    /// The run's network had no faults but single-link cuts and adversarial
    /// datagrams (see `FaultPlan::quiet`): a formed membership must never change.
    pub quiet_network: bool,
}

impl History {
    /// An empty history for `nodes`.
    pub fn new(nodes: Vec<NodeId>) -> Self {
        Self {
            nodes,
            ..Self::default()
        }
    }

    /// Appends an event (tests build histories with this).
    pub fn push(&mut self, time: VTime, node: NodeId, incarnation: u32, kind: EventKind) {
        self.events.push(Event {
            time,
            node,
            incarnation,
            kind,
        });
    }

    /// Appends an observation.
    pub fn observe(&mut self, time: VTime, node: NodeId, incarnation: u32, obs: Observation) {
        self.push(time, node, incarnation, EventKind::Observation(obs));
    }
}
