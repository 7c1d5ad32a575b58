//! The Stack's one input type and one output type.
//!
//! A driver (the mio node, the simulator, a test's `for` loop) feeds [`Input`]s and
//! drains [`Output`]s; adding a service adds variants here, not methods on the
//! Stack.

use super::RawDelivery;
use crate::link::{DatagramDrop, LinkEvent, LinkTransmit};
use bytes::Bytes;
use phalanx_cpg::{CpgError, CpgEvent};
use phalanx_totem::{ConfigChange, Guarantee, NodeId, RingId, SendError, Time};
use std::net::SocketAddr;
use thiserror::Error;

/// Everything that can happen to a Stack.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// A datagram arrived on link slot `link` (index in the node's link list, link
    /// 0 first) from source address `from`.
    Datagram {
        /// The link slot it arrived on.
        link: u8,
        /// Its source address.
        from: SocketAddr,
        /// Its bytes, as received.
        data: &'a [u8],
    },
    /// Time passed: whatever is due runs (call it when the deadline of
    /// [`Output::Timeout`] has passed; early calls are harmless).
    Timeout,
    /// An application request of any service.
    Request(Request),
    /// A [`Output::Persist`] write finished. A failure stops the Stack
    /// ([`Output::Stopped`]).
    Persisted {
        /// The write's id.
        id: PersistId,
        /// Whether it is durable.
        result: Result<(), PersistFailed>,
    },
    /// A CIB write from [`Output::CibPersist`] finished.
    CibPersisted {
        /// The request's id.
        id: u64,
        /// `Err` with the driver's description when it failed.
        result: Result<(), String>,
    },
    /// A fence agent call from [`Output::FenceAgent`] finished (the driver ran it off
    /// its thread).
    FenceAgentDone {
        /// The call's id.
        call: phalanx_fence::core::CallId,
        /// How it ended.
        outcome: phalanx_fence::core::CallOutcome,
    },
    /// The metadata of a fence agent from [`Output::FenceMetadata`]: its
    /// capabilities, or why they could not be read.
    FenceMetadata {
        /// The agent's name.
        agent: String,
        /// Its capabilities (`AgentMetadata::capabilities`), or the failure.
        result: Result<phalanx_fence::core::AgentCapabilities, String>,
    },
}

/// An application request, answered by [`Stack::handle_input`](super::Stack::handle_input)'s
/// result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Multicast a raw application message (service 0). `msg[0]` is a spare byte
    /// the Stack overwrites with the service id, so the payload is never copied
    /// again; an empty `msg` sends an empty message.
    Mcast {
        /// Agreed or safe.
        guarantee: Guarantee,
        /// One spare byte, then the payload.
        msg: Vec<u8>,
    },
    /// Leave the cluster cleanly (the Stack stops: [`Output::Stopped`]).
    Leave,
    /// A closed-process-group request.
    Cpg(CpgRequest),
    /// A quorum request (the Stack must run quorum).
    Quorum(QuorumRequest),
    /// A request to the fencer (fence, confirm, history cleanup).
    Fence(super::FenceCommand),
    /// A request to the CIB service.
    Cib(Box<super::CibRequest>),
    /// A request to the DLM service (lock ids are returned only by
    /// [`Stack::dlm_request`](super::Stack::dlm_request)).
    Dlm(Box<super::DlmRequest>),
}

/// Closed-process-group requests (see [`phalanx_cpg::Cpg`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpgRequest {
    /// Local member `local` joins `group`.
    Join {
        /// The local member.
        local: u32,
        /// The group.
        group: Vec<u8>,
    },
    /// Local member `local` leaves `group`.
    Leave {
        /// The local member.
        local: u32,
        /// The group.
        group: Vec<u8>,
    },
    /// Local member `local`'s handle went away: it leaves every group (PROCDOWN).
    MemberDown {
        /// The local member.
        local: u32,
    },
    /// Multicast `data` to a joined group (see [`phalanx_cpg::Cpg::mcast`]).
    Mcast {
        /// The sending member.
        local: u32,
        /// The group.
        group: Vec<u8>,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The payload.
        data: Vec<u8>,
    },
    /// Multicast a message the caller already encoded with
    /// [`phalanx_cpg::wire::encode_mcast`] and prefix [`ServiceId::Cpg`](super::ServiceId::Cpg)
    /// (see [`phalanx_cpg::Cpg::mcast_encoded`]): the handles' zero-extra-copy path.
    McastEncoded {
        /// The sending member.
        local: u32,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The encoded message, prefix byte included (often a slice of a
        /// buffer the handle carves many messages from).
        encoded: Bytes,
    },
}

/// Quorum requests (see [`phalanx_quorum::Votequorum`]); replicated, applied at
/// delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuorumRequest {
    /// Set the cluster's expected votes.
    SetExpectedVotes(u32),
    /// Set a node's votes.
    SetVotes {
        /// The node.
        node: NodeId,
        /// Its votes.
        votes: u32,
    },
    /// Stop waiting for all nodes.
    CancelWaitForAll,
    /// The local quorum device casts or withdraws its vote for `ring`.
    DeviceVote {
        /// The ring the vote is for.
        ring: RingId,
        /// Cast (true) or withdraw.
        cast: bool,
    },
}

/// Identifies one [`Output::Persist`] write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);

/// What must be made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistItem {
    /// The highest ring sequence this node has seen (`ringseq_<node>`). Datagrams
    /// produced after this request are released only when it is durable, so a
    /// restarted node never reuses a ring id.
    RingSeq(u64),
    /// Votequorum's expected votes (`expected_votes_<node>`).
    ExpectedVotes(u32),
}

impl PersistItem {
    /// Whether transmits wait for this write.
    pub fn gates_transmits(self) -> bool {
        matches!(self, PersistItem::RingSeq(_))
    }
}

/// A write the driver must perform, then report with [`Input::Persisted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persist {
    /// Report this id back.
    pub id: PersistId,
    /// What to write.
    pub item: PersistItem,
}

/// A persist write that failed (the driver's description of why).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PersistFailed(pub String);

/// Why a Stack stopped.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The application left ([`Request::Leave`]).
    #[error("left the cluster")]
    Left,
    /// A write that must be durable failed: the node cannot promise not to reuse a
    /// ring id, so it stops (as Corosync does).
    #[error("persisting {item:?} failed: {error}")]
    PersistFailed {
        /// What was being written.
        item: PersistItem,
        /// Why it failed.
        error: PersistFailed,
    },
}

/// Something the driver must act on or hand to applications.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send a datagram.
    Transmit(LinkTransmit),
    /// An event for a service's handles.
    Event(StackEvent),
    /// Make this durable, then report [`Input::Persisted`].
    Persist(Persist),
    /// The Stack stopped; it takes no further input. Emitted once.
    Stopped(StopReason),
    /// Write this CIB durably (`cib.xml` + `.sig`, a backup) and report it with
    /// [`Input::CibPersisted`]. Transmits are not held for it (Pacemaker writes
    /// the CIB asynchronously too).
    CibPersist(phalanx_cib::service::PersistRequest),
    /// Run this fence agent call off the driver thread and report it with
    /// [`Input::FenceAgentDone`].
    FenceAgent(phalanx_fence::core::AgentCall),
    /// Read this fence agent's metadata (`action=metadata`) off the driver thread
    /// and report its capabilities with [`Input::FenceMetadata`]: a device the CIB
    /// defines is registered once they are known.
    FenceMetadata {
        /// The agent's name.
        agent: String,
    },
    /// Nothing more now: feed [`Input::Timeout`] at this time (or any input
    /// earlier) and poll again. `None`: no deadline (a stopped Stack).
    Timeout(Option<Time>),
}

/// An event for applications, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackEvent {
    /// A raw application message.
    Deliver(RawDelivery),
    /// A totem configuration change (for raw-message applications).
    Config(ConfigChange),
    /// A CPG event for local members.
    Cpg(CpgEvent),
    /// A votequorum event (quorum changes, expected votes, device release). Only
    /// from a Stack built with quorum.
    Quorum(phalanx_quorum::Event),
    /// A link to a peer went up or down.
    Link(LinkEvent),
    /// Fencing: results, unclean and fenced nodes.
    Fence(super::FenceNotice),
    /// The CIB: a reply to a local client, a diff, a sync, a divergence report.
    Cib(phalanx_cib::service::CibEvent),
    /// The DLM: ASTs, lockspace membership and recovery.
    Dlm(super::DlmEvent),
}

/// Why [`Stack::handle_input`](super::Stack::handle_input) refused an input. Each
/// variant says whether state changed; none is a reason to panic.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// A received datagram was dropped (and counted); nothing else changed.
    #[error("datagram dropped: {0}")]
    Dropped(#[from] DatagramDrop),
    /// A raw multicast was refused; nothing was queued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A CPG request was refused; nothing changed.
    #[error(transparent)]
    Cpg(#[from] CpgError),
    /// A quorum request was refused; nothing changed.
    #[error(transparent)]
    Quorum(#[from] super::QuorumRequestError),
    /// The fencer refused a request (or fencing is not configured).
    #[error(transparent)]
    Fence(#[from] phalanx_fence::core::FencerError),
    /// The CIB service refused a request (queue full: try again; too large).
    #[error(transparent)]
    Cib(#[from] phalanx_cib::service::CibServiceError),
    /// The DLM service refused a request; nothing changed.
    #[error(transparent)]
    Dlm(#[from] super::DlmServiceError),
    /// The Stack does not run the CIB service.
    #[error("the CIB service is not configured")]
    CibNotConfigured,
    /// The Stack has stopped and takes no input.
    #[error("stopped: {0}")]
    Stopped(StopReason),
    /// A [`Input::Persisted`] for no outstanding write (ignored).
    #[error("no outstanding persist write {0:?}")]
    UnknownPersist(PersistId),
}
