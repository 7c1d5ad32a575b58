//! The replication service: a sans-IO core that keeps this node's copy of the
//! CIB equal to every other member's by state-machine replication over
//! totem's agreed order (`docs/cib-service.md`).
//!
//! ```text
//!  request(client, call, op, ctx) ──query──▶ Reply at once (local copy)
//!        │ modifying: encoded, not applied
//!        ▼ poll_send() → Stack → totem (agreed order, our own come back)
//!  handle_message(sender, bytes) ─▶ ops::execute on every node, same order
//!        ├─ originator: Reply{client, call, result}
//!        └─ every node: Diff{patchset, version, cause}
//!  handle_config(members, ..) ─▶ Offer(version, digest) from everyone
//!        ─▶ all offers in: highest version wins (ties: lowest node id)
//!        ─▶ winner sends Sync(full CIB) if any digest differs
//!        ─▶ requests delivered meanwhile are applied after the sync
//! ```
//!
//! The driver (the Stack) calls, after each input, [`CibService::poll_send`]
//! (frames to multicast in agreed order), [`CibService::poll_event`] and
//! [`CibService::poll_persist`] (a CIB to write durably, reported back with
//! [`CibService::persisted`]). Nothing here reads a clock: the text for
//! `cib-last-written` comes in each request's [`OpContext::now`].

mod fingerprint;
pub mod fragment;
pub mod message;
mod quorum;
mod sync;
mod types;

pub use fingerprint::{Digest, Fingerprint, History};
pub use message::{PayloadError, ServiceMessage};
pub use types::{
    CallId, CibEvent, CibReply, CibServiceConfig, CibServiceError, CibServiceStats, ClientId,
    DiffCause, Divergence, MessageError, NO_QUORUM_EXIT, NO_QUORUM_RC, PersistRequest, ReplyError,
    UnknownPersist,
};

use std::collections::{BTreeMap, VecDeque};

use phalanx_totem::{NodeId, RingId};

use crate::ops::{self, CibOp, OpContext};
use crate::version::Version;
use crate::xml::Element;
use fragment::{FrameError, Reassembler};
use quorum::QuorumGate;
use sync::Phase;

/// One queued frame; `request` frames count against the queue bound, the
/// protocol's own (offers, syncs) do not and are dropped when a new
/// configuration makes them stale.
#[derive(Debug)]
struct Outgoing {
    frame: Vec<u8>,
    request: bool,
    /// The message the frame belongs to.
    id: u32,
}

/// A request delivered while a sync was in progress.
#[derive(Debug)]
struct Pending {
    sender: NodeId,
    id: u32,
    client: ClientId,
    call: CallId,
    op: CibOp,
    ctx: OpContext,
}

/// The CIB replication core of one node.
#[derive(Debug)]
pub struct CibService {
    cfg: CibServiceConfig,
    cib: Element,
    state: Fingerprint,
    history: History,
    phase: Phase,
    ring: Option<RingId>,
    members: Vec<NodeId>,
    pending: VecDeque<Pending>,
    reassembly: Reassembler,
    sends: VecDeque<Outgoing>,
    queued_request_bytes: usize,
    next_id: u32,
    /// Own requests sent and not yet answered: message id → (client, call).
    inflight: BTreeMap<u32, (ClientId, CallId)>,
    events: VecDeque<CibEvent>,
    persist_dirty: bool,
    persist_outstanding: Option<u64>,
    persist_enabled: bool,
    next_persist: u64,
    stats: CibServiceStats,
    /// Every change's result is validated with it when set.
    validator: Option<std::sync::Arc<dyn crate::schema::SchemaValidator>>,
    /// Quorum as the members announced it (used with `require_quorum`).
    gate: QuorumGate,
}

impl CibService {
    /// A service starting from `cib` (loaded from disk by the driver, see
    /// [`crate::persist::load`]). Until the first configuration's sync is
    /// over, requests delivered are held back.
    pub fn new(cfg: CibServiceConfig, cib: Element) -> Self {
        let state = Fingerprint::of(&cib);
        CibService {
            history: History::new(cfg.history, state),
            reassembly: Reassembler::new(cfg.max_message),
            cfg,
            cib,
            state,
            phase: Phase::Unconfigured,
            ring: None,
            members: Vec::new(),
            pending: VecDeque::new(),
            sends: VecDeque::new(),
            queued_request_bytes: 0,
            next_id: 0,
            inflight: BTreeMap::new(),
            events: VecDeque::new(),
            persist_dirty: false,
            persist_outstanding: None,
            persist_enabled: true,
            next_persist: 0,
            stats: CibServiceStats::default(),
            validator: None,
            gate: QuorumGate::default(),
        }
    }

    /// Validates the result of every change with `validator` from now on (or no
    /// longer, with `None`): a change whose result does not validate against the
    /// schema its `validate-with` names is refused with
    /// [`crate::ops::CibError::SchemaValidation`], on every node alike — so every
    /// node must be given validators that agree (the same schema files), as
    /// Pacemaker's nodes need the same schemas.
    pub fn set_validator(
        &mut self,
        validator: Option<std::sync::Arc<dyn crate::schema::SchemaValidator>>,
    ) {
        self.validator = validator;
    }

    /// A local client's request. Queries are answered at once from the local
    /// copy (a [`CibEvent::Reply`] is queued before this returns); modifying
    /// requests are queued for total-order broadcast and answered once
    /// applied here. `ctx` travels with the request (its `now`, user, groups
    /// are what every node uses); `keep_versions` is forced off.
    pub fn request(
        &mut self,
        client: ClientId,
        call: CallId,
        op: CibOp,
        mut ctx: OpContext,
    ) -> Result<(), CibServiceError> {
        ctx.keep_versions = false;
        if !op.is_modifying() {
            let result = ops::execute(&mut self.cib, &op, &ctx)
                .map(|o| CibReply {
                    output: o.output,
                    version: o.version,
                    changed: false,
                })
                .map_err(ReplyError::from);
            self.events.push_back(CibEvent::Reply {
                client,
                call,
                result,
            });
            return Ok(());
        }
        if self.cfg.require_quorum && !self.gate.local_quorate() {
            self.stats.no_quorum += 1;
            return Err(CibServiceError::NoQuorum);
        }
        let payload = ServiceMessage::Request {
            client,
            call,
            op,
            ctx,
        }
        .encode();
        if payload.len() > self.cfg.max_message {
            return Err(CibServiceError::TooLarge {
                size: payload.len(),
                max: self.cfg.max_message,
            });
        }
        if self.queued_request_bytes > 0
            && self.queued_request_bytes + payload.len() > self.cfg.send_queue_bytes
        {
            return Err(CibServiceError::TryAgain);
        }
        let id = self.queue(&payload, true);
        self.inflight.insert(id, (client, call));
        Ok(())
    }

    /// Queues a message's frames; returns its id.
    fn queue(&mut self, payload: &[u8], request: bool) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        for frame in fragment::split(id, payload, self.cfg.frame_size) {
            if request {
                self.queued_request_bytes += frame.len();
            }
            self.sends.push_back(Outgoing { frame, request, id });
        }
        id
    }

    /// The next frame to multicast in agreed order (at most
    /// [`CibServiceConfig::frame_size`] bytes).
    pub fn poll_send(&mut self) -> Option<Vec<u8>> {
        let o = self.sends.pop_front()?;
        if o.request {
            self.queued_request_bytes -= o.frame.len();
        }
        Some(o.frame)
    }

    /// Length of the frame [`CibService::poll_send`] would return (so a
    /// driver can check its transport's room first).
    pub fn next_send_len(&self) -> Option<usize> {
        self.sends.front().map(|o| o.frame.len())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CibEvent> {
        self.events.pop_front()
    }

    /// The next durable write, if the configuration changed since the last
    /// one and none is outstanding (writes are coalesced: the newest state is
    /// written).
    pub fn poll_persist(&mut self) -> Option<PersistRequest> {
        if !self.persist_dirty || self.persist_outstanding.is_some() || !self.persist_enabled {
            return None;
        }
        self.persist_dirty = false;
        let id = self.next_persist;
        self.next_persist += 1;
        self.persist_outstanding = Some(id);
        self.stats.persists += 1;
        let cib = crate::persist::disk_form(&self.cib);
        Some(PersistRequest {
            id,
            version: Version::of_cib(&cib),
            cib,
            quorate_seq: self.gate.quorate_seq,
            lineage_version: self.gate.lineage_version,
        })
    }

    /// The driver finished persist request `id` (`Err` with a description
    /// when the write failed: a [`CibEvent::PersistFailed`] follows and no
    /// further writes are requested).
    pub fn persisted(&mut self, id: u64, result: Result<(), String>) -> Result<(), UnknownPersist> {
        if self.persist_outstanding != Some(id) {
            return Err(UnknownPersist(id));
        }
        self.persist_outstanding = None;
        if let Err(error) = result {
            self.persist_enabled = false;
            self.events.push_back(CibEvent::PersistFailed { id, error });
        }
        Ok(())
    }

    /// A frame delivered in agreed order (this node's own included). A
    /// dropped frame is counted and reported; the driver need do nothing.
    pub fn handle_message(&mut self, sender: NodeId, frame: &[u8]) -> Result<(), MessageError> {
        self.stats.frames += 1;
        let (id, payload) = match self.reassembly.push(sender, frame) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let FrameError::Orphan { id, .. } | FrameError::TooLarge { id, .. } = e {
                    self.stats.orphans += u64::from(matches!(e, FrameError::Orphan { .. }));
                    self.own_lost(sender, id);
                } else {
                    self.stats.malformed += 1;
                }
                return Err(e.into());
            }
        };
        let msg = match ServiceMessage::decode(&payload) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                self.own_lost(sender, id);
                return Err(e.into());
            }
        };
        match msg {
            ServiceMessage::Request {
                client,
                call,
                op,
                ctx,
            } => {
                let p = Pending {
                    sender,
                    id,
                    client,
                    call,
                    op,
                    ctx,
                };
                if self.writable() {
                    self.apply(p);
                } else {
                    self.pending.push_back(p);
                }
            }
            ServiceMessage::Offer {
                ring,
                state,
                quorate_seq,
                lineage,
            } => self.on_offer(sender, ring, state, quorate_seq, lineage),
            ServiceMessage::Quorum { ring, quorate } => {
                self.on_quorum_marker(sender, ring, quorate);
            }
            ServiceMessage::Sync { ring, history, cib } => {
                self.on_sync(sender, ring, &history, cib);
            }
        }
        Ok(())
    }

    /// A message of ours was lost (cut by a configuration change, or did not
    /// decode): answer its client.
    fn own_lost(&mut self, sender: NodeId, id: u32) {
        if sender != self.cfg.local {
            return;
        }
        if let Some((client, call)) = self.inflight.remove(&id) {
            self.stats.interrupted += 1;
            self.events.push_back(CibEvent::Reply {
                client,
                call,
                result: Err(ReplyError::Interrupted),
            });
        }
    }

    /// Applies one request in order.
    fn apply(&mut self, p: Pending) {
        self.stats.applied += 1;
        let result =
            ops::execute_validated(&mut self.cib, &p.op, &p.ctx, self.validator.as_deref());
        let unconfirmed = self.cfg.require_quorum && self.gate.in_transitional();
        self.stats.unconfirmed += u64::from(unconfirmed);
        let mut reply = match result {
            Ok(outcome) => {
                if outcome.changed {
                    self.changed(outcome.config_changed);
                    if let Some(patchset) = outcome.patchset {
                        self.events.push_back(CibEvent::Diff {
                            patchset,
                            version: outcome.version,
                            cause: DiffCause::Request {
                                origin: p.sender,
                                client: p.client,
                                call: p.call,
                            },
                        });
                    }
                }
                Ok(CibReply {
                    output: outcome.output,
                    version: outcome.version,
                    changed: outcome.changed,
                })
            }
            Err(e) => {
                self.stats.failed += 1;
                Err(ReplyError::Op(e))
            }
        };
        if unconfirmed && reply.is_ok() {
            // Applied here as on every member that delivered it, but totem
            // cannot say which partition holds it: no acknowledgement.
            reply = Err(ReplyError::Unconfirmed);
        }
        if p.sender == self.cfg.local && self.inflight.remove(&p.id).is_some() {
            self.events.push_back(CibEvent::Reply {
                client: p.client,
                call: p.call,
                result: reply,
            });
        }
    }

    /// Bookkeeping after the copy changed.
    fn changed(&mut self, config_changed: bool) {
        // A change applied here is progress in the copy's own lineage.
        self.gate.lineage_version = None;
        self.state = Fingerprint::of(&self.cib);
        self.history.push(self.state);
        if config_changed {
            self.persist_dirty = true;
        }
    }

    /// The held-back requests, in order, once synced.
    fn drain_pending(&mut self) {
        while self.writable() {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.apply(p);
        }
    }

    /// Whether delivered requests are applied now: the exchange is over and,
    /// with `require_quorum`, a member announced quorum for this
    /// configuration (the same at every member: both follow the agreed order).
    fn writable(&self) -> bool {
        self.phase.is_synced() && (!self.cfg.require_quorum || self.gate.open())
    }

    /// Whether this service was configured with `require_quorum`.
    pub fn requires_quorum(&self) -> bool {
        self.cfg.require_quorum
    }

    /// The local copy (read-only; for publishing and queries by the driver).
    pub fn cib(&self) -> &Element {
        &self.cib
    }

    /// The local copy's version.
    pub fn version(&self) -> Version {
        self.state.version
    }

    /// The local copy's exact digest.
    pub fn digest(&self) -> Digest {
        self.state.digest
    }

    /// Whether the current configuration's exchange is over (requests are
    /// applied as delivered).
    pub fn is_synced(&self) -> bool {
        self.phase.is_synced()
    }

    /// Synced, nothing to send, no request held back, no message half
    /// received, no write outstanding or due.
    pub fn is_quiescent(&self) -> bool {
        self.phase.is_synced()
            && self.sends.is_empty()
            && self.pending.is_empty()
            && self.reassembly.is_empty()
            && self.inflight.is_empty()
            && self.persist_outstanding.is_none()
            && (!self.persist_dirty || !self.persist_enabled)
    }

    /// Counters.
    pub fn stats(&self) -> &CibServiceStats {
        &self.stats
    }

    /// The members and ring of the current configuration, if any.
    pub fn configuration(&self) -> Option<(RingId, &[NodeId])> {
        self.ring.map(|r| (r, self.members.as_slice()))
    }
}
