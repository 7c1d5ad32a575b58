//! The vocabulary of closed process groups: names, members, reasons, views, events.

use crate::error::CpgError;
use bytes::Bytes;
use phalanx_totem::{ConfigKind, Guarantee, NodeId, RingId};
use std::fmt;
use std::sync::Arc;

/// Longest group name, in bytes (Corosync's `CPG_MAX_NAME_LENGTH`).
pub const MAX_GROUP_NAME: usize = 128;

/// A group name: 1..=128 arbitrary bytes. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(Bytes);

impl GroupName {
    /// Checks the length (1..=128 bytes).
    pub fn new(name: impl AsRef<[u8]>) -> Result<Self, CpgError> {
        let name = name.as_ref();
        if name.is_empty() || name.len() > MAX_GROUP_NAME {
            return Err(CpgError::NameTooLong(name.len()));
        }
        Ok(Self(Bytes::copy_from_slice(name)))
    }

    /// From bytes already checked by the decoder (no copy).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        Self(b)
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Lets maps keyed by name be searched with a plain byte slice (no copy on the
/// send path). Consistent with `Ord`: `Bytes` orders as its bytes.
impl std::borrow::Borrow<[u8]> for GroupName {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// A group member: a node and a member id local to that node (the role of the pid
/// in Corosync). The application chooses local ids; a local id may be in many groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    /// The member's node.
    pub node: NodeId,
    /// The member's id on that node.
    pub local: u32,
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.local)
    }
}

/// Why a member appears in a joined or left list (Corosync's `cpg_reason_t`, same
/// numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Reason {
    /// The member asked to join.
    Join = 1,
    /// The member asked to leave.
    Leave = 2,
    /// The member's node left the configuration (crash, partition, clean leave).
    NodeDown = 3,
    /// The member's node arrived in the configuration (start, merge).
    NodeUp = 4,
    /// The member's handle went away without leaving ([`crate::Cpg::member_down`]).
    ProcDown = 5,
}

impl Reason {
    /// From the wire number.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Join,
            2 => Self::Leave,
            3 => Self::NodeDown,
            4 => Self::NodeUp,
            5 => Self::ProcDown,
            _ => return None,
        })
    }
}

/// A member in a joined or left list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Who.
    pub member: MemberId,
    /// Why.
    pub reason: Reason,
}

/// Where in the total order a group view was installed. Every node that installs the
/// view computes the same id, so views can be compared across nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ViewId {
    /// The state exchange on this ring completed.
    Sync(RingId),
    /// A JOIN / LEAVE / PROCDOWN message, identified by its ring, sender node and the
    /// sender's control-message sequence number.
    Message {
        /// Ring the message was ordered on.
        ring: RingId,
        /// Node that sent it.
        sender: NodeId,
        /// Sender's sequence number of control messages.
        seq: u64,
    },
}

/// A group's membership changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupChange {
    /// The group.
    pub group: GroupName,
    /// Where this view was installed.
    pub view: ViewId,
    /// Members after the change, ascending.
    pub members: Vec<MemberId>,
    /// Members that left, ascending.
    pub left: Vec<Change>,
    /// Members that joined, ascending.
    pub joined: Vec<Change>,
    /// Local members to deliver this to: local members of the group before or after
    /// the change, except members that went down.
    pub recipients: Arc<[u32]>,
}

/// A message delivered to a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDelivery {
    /// The group.
    pub group: GroupName,
    /// Who sent it.
    pub sender: MemberId,
    /// The guarantee it was sent with.
    pub guarantee: Guarantee,
    /// The payload, shared by every local recipient (no copy per recipient).
    pub data: Bytes,
    /// Local members to deliver it to.
    pub recipients: Arc<[u32]>,
}

/// The totem configuration, for applications that want it (Corosync's V1 totem
/// confchg callback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotemMembership {
    /// Regular, or transitional when [`crate::CpgConfig::deliver_transitional`] is on.
    pub kind: ConfigKind,
    /// The ring.
    pub ring: RingId,
    /// Its members, ascending.
    pub members: Vec<NodeId>,
}

/// What the core tells applications, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpgEvent {
    /// A group view change (boxed: it is rare and large, and every event is moved
    /// through several queues on the way to the application).
    Change(Box<GroupChange>),
    /// A group message.
    Deliver(GroupDelivery),
    /// A totem configuration: the regular one once the state exchange on it has
    /// completed (after that exchange's group changes); a transitional one as
    /// totem delivers it, only if opted in.
    Totem(TotemMembership),
}
