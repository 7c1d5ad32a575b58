//! What the service takes and gives: configuration, errors, events, persist
//! requests and counters.

use phalanx_totem::{NodeId, RingId};
use thiserror::Error;

use crate::ops::CibError;
use crate::version::Version;
use crate::xml::Element;

use super::fragment::FrameError;
use super::message::PayloadError;

/// A local client, as the driver numbers them (opaque to the service).
pub type ClientId = u64;
/// A client's call number (echoed in its reply).
pub type CallId = u64;

/// Limits of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CibServiceConfig {
    /// This node.
    pub local: NodeId,
    /// Largest frame handed to [`super::CibService::poll_send`] (header
    /// included). Default 128 KiB: far below totem's default
    /// `max_message_size` of 1 MiB, so the Stack need not raise it.
    pub frame_size: usize,
    /// Largest reassembled message (a request, or a sync carrying the whole
    /// CIB). Default 64 MiB, the XML parser's document limit.
    pub max_message: usize,
    /// Bytes of client requests that may wait in the send queue before
    /// [`super::CibService::request`] answers [`CibServiceError::TryAgain`].
    /// Default 4 MiB (one request of any allowed size is always taken when
    /// none waits).
    pub send_queue_bytes: usize,
    /// States remembered to tell a copy that is merely behind from one with
    /// changes of its own (default 256).
    pub history: usize,
    /// Writes only in a quorate partition (default off here; the Stack turns it
    /// on when it runs votequorum, see `docs/cib-service.md` § Quorum): a
    /// modifying request is refused with [`CibServiceError::NoQuorum`] unless
    /// the driver reported the current configuration quorate
    /// ([`super::CibService::set_quorum`]); a delivered one is applied only
    /// once a member announced quorum for the configuration; the copy last
    /// written in the newest quorate configuration wins the sync; requests go
    /// out with totem's *safe* guarantee. Reads are never refused.
    pub require_quorum: bool,
}

impl CibServiceConfig {
    /// The defaults for node `local`.
    pub fn new(local: NodeId) -> Self {
        CibServiceConfig {
            local,
            frame_size: 128 << 10,
            max_message: 64 << 20,
            send_queue_bytes: 4 << 20,
            history: 256,
            require_quorum: false,
        }
    }
}

/// A request refused at once (nothing was queued).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CibServiceError {
    /// The send queue is full; retry after [`super::CibService::poll_send`]
    /// has drained some.
    #[error("send queue full, try again")]
    TryAgain,
    /// The encoded request exceeds [`CibServiceConfig::max_message`].
    #[error("request of {size} bytes exceeds {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// [`CibServiceConfig::require_quorum`] is on and this node's partition
    /// is not quorate (or its quorum state for the current configuration is
    /// not known yet): writes are refused, reads still work. Pacemaker's
    /// `pcmk_err_no_quorum`; `cibadmin` exits with [`NO_QUORUM_EXIT`].
    #[error("no quorum: writes are refused in a partition without quorum")]
    NoQuorum,
}

/// Pacemaker's legacy code for a write refused without quorum
/// (`-pcmk_err_no_quorum`, as a client sees it in `cib_rc`).
pub const NO_QUORUM_RC: i32 = -202;
/// The exit status of `cibadmin` for a write refused without quorum
/// (`CRM_EX_QUORUM`, "quorum required").
pub const NO_QUORUM_EXIT: u8 = 106;

/// A delivered message that was dropped (counted in [`CibServiceStats`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// Bad framing, or a frame of a message cut by a configuration change.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// The reassembled message did not decode.
    #[error("message: {0}")]
    Payload(#[from] PayloadError),
}

/// A successful request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CibReply {
    /// The query result (queries only).
    pub output: Option<Element>,
    /// The CIB's version after the request.
    pub version: Version,
    /// Whether the request changed the CIB.
    pub changed: bool,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// The operation failed (on every node alike: nothing changed anywhere).
    #[error(transparent)]
    Op(#[from] CibError),
    /// A configuration change came before the request could be applied; it
    /// was applied on no node and may be sent again.
    #[error("interrupted by a configuration change; not applied")]
    Interrupted,
    /// With [`CibServiceConfig::require_quorum`]: the request was applied
    /// while the membership was changing (delivered in a transitional
    /// configuration), where totem cannot say which partition holds it. It
    /// is kept unless a partition that kept quorum, which may lack it,
    /// discards it at the merge (then a [`CibEvent::Divergence`] reports
    /// it). Not an acknowledgement: query before sending it again.
    #[error("applied during a membership change; not confirmed (may be discarded at merge)")]
    Unconfirmed,
}

/// Why the CIB changed (in a [`CibEvent::Diff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffCause {
    /// A request applied in order.
    Request {
        /// The originating node.
        origin: NodeId,
        /// The originator's client.
        client: ClientId,
        /// The client's call.
        call: CallId,
    },
    /// A sync from the winner of a configuration change replaced the copy.
    Sync {
        /// The winner.
        winner: NodeId,
    },
}

/// The copy of this node lost a sync while holding changes the winner does
/// not have (made in another partition): they are discarded, and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The configuration whose sync discarded them.
    pub ring: RingId,
    /// The node whose copy won.
    pub winner: NodeId,
    /// This copy's version before the sync.
    pub ours: Version,
    /// The winner's version.
    pub theirs: Version,
    /// The v2 patchset from the winner's CIB to the discarded copy (apply it
    /// to the new CIB to see or redo what was lost); `None` when the two
    /// cannot be compared (different root names or ids).
    pub discarded: Option<Element>,
}

/// Something the driver routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CibEvent {
    /// A local client's request finished (queries at once, modifying
    /// requests once applied in total order here).
    Reply {
        /// The client.
        client: ClientId,
        /// Its call.
        call: CallId,
        /// The outcome.
        result: Result<CibReply, ReplyError>,
    },
    /// The CIB changed (for subscribers; every node emits these).
    Diff {
        /// The v2 patchset (`--cib` form, with the result's digest).
        patchset: Element,
        /// The version after the change.
        version: Version,
        /// What changed it.
        cause: DiffCause,
    },
    /// The configuration's state exchange is over; requests are applied again.
    Synced {
        /// The configuration.
        ring: RingId,
        /// Whose copy won.
        winner: NodeId,
        /// The version now shared.
        version: Version,
    },
    /// This copy's own changes were discarded by a sync.
    Divergence(Divergence),
    /// A durable write failed; no further writes are requested (as Pacemaker
    /// disables writes after a failure).
    PersistFailed {
        /// The failed request.
        id: u64,
        /// The driver's description.
        error: String,
    },
}

/// "Write this CIB durably" (see [`crate::persist::plan_write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRequest {
    /// Echo it in [`super::CibService::persisted`].
    pub id: u64,
    /// The CIB as it goes to disk: no `status`, `num_updates="0"`.
    pub cib: Element,
    /// The version written (`num_updates` 0).
    pub version: Version,
    /// The copy's quorate lineage (see `docs/cib-service.md` § Quorum): write
    /// it ([`crate::persist::QUORATE_SEQ`], with [`crate::persist::quorate_file`])
    /// **before** `cib`, and give back [`crate::persist::quorate_seq_for`] with
    /// [`super::CibService::restore_quorate_seq`] at start.
    pub quorate_seq: u64,
    /// How far the copy got in that lineage, when a sync raised its version
    /// past it ([`super::CibService::lineage_version`]; None: the copy's own
    /// version): write it with [`crate::persist::quorate_file_with`], give it
    /// back with [`super::CibService::restore_lineage`].
    pub lineage_version: Option<Version>,
}

/// An unknown id was reported to [`super::CibService::persisted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no outstanding persist request {0}")]
pub struct UnknownPersist(pub u64);

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CibServiceStats {
    /// Configuration changes seen.
    pub configs: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Frames or messages dropped as malformed (bad framing or payload).
    pub malformed: u64,
    /// Frames dropped as orphans of a message cut by a configuration change.
    pub orphans: u64,
    /// Offers and syncs of another configuration, or from a non-winner.
    pub stale: u64,
    /// Requests applied (successfully or not).
    pub applied: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Requests dropped by a configuration change before being applied.
    pub interrupted: u64,
    /// Syncs this node sent as winner.
    pub syncs_sent: u64,
    /// Syncs installed.
    pub syncs_installed: u64,
    /// Installed syncs whose content did not match the winner's offer.
    pub sync_mismatch: u64,
    /// Divergences reported.
    pub divergences: u64,
    /// Writes refused at once for want of quorum.
    pub no_quorum: u64,
    /// Requests applied in a transitional configuration (answered
    /// [`ReplyError::Unconfirmed`] with `require_quorum`).
    pub unconfirmed: u64,
    /// Persist requests issued.
    pub persists: u64,
}
