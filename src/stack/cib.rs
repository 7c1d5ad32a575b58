//! The Stack's CIB service: `phalanx-cib`'s replication core wired to totem.
//!
//! - a client's request ([`Request::Cib`](super::Request::Cib)): queries answer
//!   at once, modifying operations are queued as frames and multicast under
//!   [`ServiceId::Cib`] in agreed order when totem has room;
//! - every node applies every delivered request in that order, and on every
//!   regular configuration the members exchange versions and digests and the
//!   winner's copy is synced to the others;
//! - the service's events ([`CibEvent`]: replies, diffs, syncs, divergence reports)
//!   surface as [`StackEvent::Cib`]; its durable writes as [`Output::CibPersist`],
//!   answered with [`Input::CibPersisted`](super::Input::CibPersisted).
//!
//! Every member of a configuration must run the service (the exchange waits for
//! each member's offer), so a cluster enables it on all nodes or none.
//!
//! With quorum ([`CibSetup::require_quorum`], on by default when the Stack runs
//! votequorum) the service takes writes only in a quorate partition: the Stack
//! passes votequorum's verdict for the current ring after every input, tells the
//! service of transitional configurations, and multicasts the service's frames
//! with the *safe* guarantee (a request is applied in the regular configuration
//! only once every member holds it). `docs/cib-service.md` § Quorum.

use super::{InputError, Output, ServiceId, Stack, StackEvent};
use phalanx_cib::ops::{CibOp, OpContext};
use phalanx_cib::service::{CallId, CibEvent, CibService, CibServiceConfig, ClientId};
use phalanx_cib::xml::Element;
use phalanx_totem::{Guarantee, NodeId, RingId};

/// What the CIB service starts from (see [`StackConfig::cib`](super::StackConfig::cib)).
#[derive(Clone, Debug)]
pub struct CibSetup {
    /// The service's limits (frame size, queue bytes, history).
    pub service: CibServiceConfig,
    /// The CIB loaded from disk (or an empty one).
    pub initial: Element,
    /// Validates every change's result (`None`: no validation); every node of
    /// the cluster must be given validators that agree.
    pub validator: Option<std::sync::Arc<dyn phalanx_cib::schema::SchemaValidator>>,
    /// Writes only in a quorate partition
    /// ([`CibServiceConfig::require_quorum`]). `None`: on exactly when the Stack
    /// runs votequorum — a cluster that counts votes should not let a minority
    /// partition's writes out-version the majority's acknowledged changes at the
    /// merge; one without quorum has nothing to decide with. `Some(true)` without
    /// quorum is refused ([`StackConfigError::CibQuorumNeedsQuorum`](super::StackConfigError::CibQuorumNeedsQuorum)).
    pub require_quorum: Option<bool>,
    /// The quorate lineage persisted with `initial`
    /// ([`phalanx_cib::persist::quorate_seq_for`]; 0 for none).
    pub quorate_seq: u64,
    /// The lineage version persisted beside it
    /// ([`phalanx_cib::persist::lineage_for`]; None for none).
    pub lineage_version: Option<phalanx_cib::version::Version>,
}

/// A client's CIB request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CibRequest {
    /// The driver's number for the client; echoed in the reply.
    pub client: ClientId,
    /// The client's call; echoed in the reply.
    pub call: CallId,
    /// The operation.
    pub op: CibOp,
    /// Who asks, and the time text for `cib-last-written` (carried to every node).
    pub ctx: OpContext,
}

impl Stack {
    /// The CIB service, if the Stack runs it (queries: the CIB, version, digest).
    pub fn cib(&self) -> Option<&CibService> {
        self.cib.as_ref()
    }

    pub(super) fn on_cib_request(&mut self, r: CibRequest) -> Result<(), InputError> {
        let Some(c) = self.cib.as_mut() else {
            return Err(InputError::CibNotConfigured);
        };
        Ok(c.request(r.client, r.call, r.op, r.ctx)?)
    }

    pub(super) fn on_cib_persisted(&mut self, id: u64, result: Result<(), String>) {
        if let Some(c) = self.cib.as_mut() {
            // An unknown id is the driver's mistake; nothing to undo here.
            let _ = c.persisted(id, result);
        }
    }

    /// A CIB frame delivered in total order (decode errors are counted by the
    /// service).
    pub(super) fn on_cib_message(&mut self, sender: NodeId, frame: &[u8]) {
        match self.cib.as_mut() {
            Some(c) => {
                let _ = c.handle_message(sender, frame);
            }
            None => self.stats.unknown_service += 1,
        }
    }

    /// A regular configuration: the state exchange starts.
    pub(super) fn cib_config(
        &mut self,
        members: &[NodeId],
        joined: &[NodeId],
        left: &[NodeId],
        ring: RingId,
    ) {
        if let Some(c) = self.cib.as_mut() {
            c.handle_config(members, joined, left, ring);
        }
    }

    /// Passes votequorum's verdict for its current ring to the service (which
    /// announces a change in agreed order; nothing without `require_quorum`).
    /// Quorate only once votequorum has heard every member in that ring.
    pub(super) fn cib_follow_quorum(&mut self) {
        let (Some(c), Some(q)) = (self.cib.as_mut(), self.quorum.as_ref()) else {
            return;
        };
        if !c.requires_quorum() {
            return;
        }
        // Asked after every input: the verdict alone, not `info()`'s summary.
        if let (Some(ring), quorate) = q.ring_verdict() {
            c.set_quorum(ring, quorate);
        }
    }

    /// A transitional configuration: the old ring's remaining messages follow.
    pub(super) fn cib_transitional(&mut self) {
        if let Some(c) = self.cib.as_mut() {
            c.handle_transitional();
        }
    }

    /// Moves the service's events and persist requests to the outputs.
    pub(super) fn drain_cib(&mut self) {
        let Some(c) = self.cib.as_mut() else {
            return;
        };
        let mut events: Vec<CibEvent> = Vec::new();
        while let Some(e) = c.poll_event() {
            events.push(e);
        }
        let mut persists = Vec::new();
        while let Some(p) = c.poll_persist() {
            persists.push(p);
        }
        for e in events {
            self.emit(Output::Event(StackEvent::Cib(e)));
        }
        for p in persists {
            self.out.push_back(Output::CibPersist(p));
        }
        // Fencing devices and levels may be defined in the CIB.
        self.fence_follow_cib(false);
    }

    /// Feeds the service's frames to totem (agreed) while it has room; true if any
    /// moved.
    pub(super) fn pump_cib_sends(&mut self) -> bool {
        let Some(c) = self.cib.as_mut() else {
            return false;
        };
        // With quorum, a request is applied in the regular configuration only
        // once every member holds it, so a partition that keeps quorum holds
        // every change acknowledged before the split.
        let guarantee = if c.requires_quorum() {
            Guarantee::Safe
        } else {
            Guarantee::Agreed
        };
        let mut any = false;
        while let Some(n) = c.next_send_len() {
            if n + 1 > self.totem.send_queue_room() {
                break;
            }
            let Some(frame) = c.poll_send() else { break };
            let mut m = Vec::with_capacity(frame.len() + 1);
            m.push(ServiceId::Cib as u8);
            m.extend_from_slice(&frame);
            // Room was checked; only a node that left refuses, when dropping is right.
            let _ = self.totem.mcast_owned(self.now, guarantee, m);
            any = true;
        }
        any
    }

    pub(super) fn cib_is_quiescent(&self) -> bool {
        self.cib.as_ref().is_none_or(CibService::is_quiescent)
    }
}
