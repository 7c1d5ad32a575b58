//! Writes only with quorum ([`super::CibServiceConfig::require_quorum`]).
//!
//! Each member's votequorum decides on its own, and two members of one
//! configuration may briefly disagree (one has counted every vote, the other
//! not yet). Applying or refusing a request on that local view would let the
//! copies differ, so the decision travels in the agreed order instead: a
//! member whose votequorum reports the current configuration quorate
//! multicasts a `Quorum { ring, quorate: true }` marker (and `false` if it
//! loses quorum within the configuration). Requests delivered after a `true`
//! marker of the current configuration are applied, those delivered before
//! it are held (dropped as interrupted if the configuration changes first) —
//! at every member alike. An originator's own marker precedes its requests in
//! its send queue, so a request accepted while the node is quorate is not held.
//!
//! Once the gate opens in configuration `R`, the copy records `R`'s sequence
//! number (`quorate_seq`); it travels in the offers, and the sync winner is
//! the copy with the highest `quorate_seq` first, then the highest version.
//! `docs/cib-service.md` § Quorum argues why that keeps every change
//! acknowledged in a quorate partition.

use phalanx_totem::{NodeId, RingId};

use super::CibService;
use super::message::ServiceMessage;
use crate::version::Version;

/// The quorum state of the current configuration, as announced in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct QuorumGate {
    /// The driver reports the current configuration quorate.
    local: bool,
    /// What this node last announced in the current configuration.
    announced: bool,
    /// The last marker delivered in the current configuration said quorate.
    marker: bool,
    /// A transitional configuration came after the current regular one:
    /// messages delivered now are the old ring's leftovers.
    transitional: bool,
    /// The sequence number of the newest configuration in which this copy
    /// was writable (0: none since this process started).
    pub(super) quorate_seq: u64,
    /// The newest configuration in which this copy's own gate opened (not
    /// adopted from a sync winner), if any since this process started.
    pub(super) writable_ring: Option<RingId>,
    /// The version of the copy's last change in its lineage, when a sync
    /// raised the copy's version past it (None: the copy's own version).
    pub(super) lineage_version: Option<Version>,
}

impl QuorumGate {
    /// The driver last said this node's partition is quorate.
    pub(super) fn local_quorate(&self) -> bool {
        self.local
    }

    /// A quorate marker of the current configuration was delivered.
    pub(super) fn open(&self) -> bool {
        self.marker
    }

    /// Between a transitional configuration and the next regular one.
    pub(super) fn in_transitional(&self) -> bool {
        self.transitional
    }

    /// A new regular configuration: nothing is known of its quorum yet.
    pub(super) fn reset(&mut self) {
        let (quorate_seq, writable_ring, lineage_version) =
            (self.quorate_seq, self.writable_ring, self.lineage_version);
        *self = QuorumGate {
            quorate_seq,
            writable_ring,
            lineage_version,
            ..QuorumGate::default()
        };
    }
}

impl CibService {
    /// The driver's quorum state for configuration `ring` (the Stack passes
    /// votequorum's verdict once votequorum has heard every member in that
    /// ring). Ignored without `require_quorum`, and for another ring than the
    /// service's current one (counted as not quorate).
    pub fn set_quorum(&mut self, ring: RingId, quorate: bool) {
        if !self.cfg.require_quorum {
            return;
        }
        let Some(current) = self.ring else {
            return;
        };
        let quorate = quorate && ring == current;
        self.gate.local = quorate;
        if quorate != self.gate.announced {
            self.gate.announced = quorate;
            let marker = ServiceMessage::Quorum {
                ring: current,
                quorate,
            }
            .encode();
            self.queue(&marker, false);
        }
    }

    /// A transitional configuration was installed: until the next regular
    /// one, delivered requests are the old ring's leftovers, delivered to only
    /// part of it (their replies say [`super::ReplyError::Unconfirmed`] with
    /// `require_quorum`).
    pub fn handle_transitional(&mut self) {
        self.gate.transitional = true;
    }

    /// The sequence number of the newest configuration in which this copy
    /// took writes with quorum (0: none, or `require_quorum` off).
    pub fn quorate_seq(&self) -> u64 {
        self.gate.quorate_seq
    }

    /// The newest configuration in which this copy became writable with
    /// quorum itself (the exchange over and a quorum marker of that
    /// configuration delivered), if any since this process started. Unlike
    /// [`CibService::quorate_seq`], which a sync winner's lineage can raise,
    /// this names a configuration this node was a member of; it can open in the
    /// old configuration's transitional deliveries, right before the next
    /// regular configuration, so a driver that samples the current
    /// configuration after each input would miss it.
    pub fn writable_ring(&self) -> Option<RingId> {
        self.gate.writable_ring
    }

    /// At start, before any configuration: the `quorate_seq` persisted with
    /// the copy the service started from ([`crate::persist::quorate_seq_for`]),
    /// so a restarted node keeps its place in the quorate lineage.
    pub fn restore_quorate_seq(&mut self, seq: u64) {
        self.restore_lineage(seq, None);
    }

    /// [`restore_quorate_seq`](Self::restore_quorate_seq) with the lineage
    /// version persisted beside it ([`crate::persist::lineage_for`]; None: the
    /// copy's own version).
    pub fn restore_lineage(&mut self, seq: u64, lineage_version: Option<Version>) {
        if self.cfg.require_quorum && self.ring.is_none() {
            self.gate.quorate_seq = seq;
            self.gate.lineage_version = lineage_version.filter(|v| *v != self.state.version);
        }
    }

    /// How far this copy got in its lineage ([`CibService::quorate_seq`]): the
    /// version of its last change there. That is the copy's version, unless a
    /// sync raised it: a copy that lost to an older version's lineage is raised
    /// above every copy offered (so no version goes back), but it holds no more
    /// of that lineage's changes than the winner did. Offers compare lineages
    /// by this, not by the raised version: otherwise the raised copy would beat
    /// a copy of the same lineage holding later acknowledged changes (swarm
    /// seed 82230).
    pub fn lineage_version(&self) -> Version {
        self.gate.lineage_version.unwrap_or(self.state.version)
    }

    /// Sets the copy's lineage; a change is written with the next persist.
    pub(super) fn adopt_quorate_seq(&mut self, seq: u64) {
        if seq != self.gate.quorate_seq {
            self.gate.quorate_seq = seq;
            self.persist_dirty = true;
        }
    }

    /// The copy is now a sync winner's (its content installed): so are the
    /// winner's lineage and how far into it the winner's copy got.
    pub(super) fn adopt_lineage(&mut self, seq: u64, lineage_version: Version) {
        self.adopt_quorate_seq(seq);
        let lineage_version = Some(lineage_version).filter(|v| *v != self.state.version);
        if lineage_version != self.gate.lineage_version {
            self.gate.lineage_version = lineage_version;
            self.persist_dirty = true;
        }
    }

    pub(super) fn on_quorum_marker(&mut self, sender: NodeId, ring: RingId, quorate: bool) {
        if Some(ring) != self.ring || !self.members.contains(&sender) || !self.cfg.require_quorum {
            self.stats.stale += 1;
            return;
        }
        self.gate.marker = quorate;
        self.note_writable();
        self.drain_pending();
    }

    /// Records the configuration as the copy's newest quorate one once it is
    /// writable (the exchange over and quorum announced).
    pub(super) fn note_writable(&mut self) {
        if let (true, true, Some(ring)) = (self.cfg.require_quorum, self.writable(), self.ring) {
            self.gate.writable_ring = Some(ring);
            self.adopt_quorate_seq(self.gate.quorate_seq.max(ring.seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{CallOptions, CibOp, OpContext, Scope, empty_cib};
    use crate::service::{CibEvent, CibServiceConfig, CibServiceError, ReplyError};
    use crate::xml::Element;

    fn create(id: &str) -> CibOp {
        CibOp::Create {
            scope: Scope::section("resources"),
            input: Element::new("primitive")
                .with_attr("id", id)
                .with_attr("class", "ocf")
                .with_attr("provider", "heartbeat")
                .with_attr("type", "Dummy"),
            options: CallOptions::default(),
        }
    }

    /// Delivers every queued frame of `from` to every service of `all`.
    fn deliver(all: &mut [CibService], from: usize) {
        let sender = all[from].cfg.local;
        while let Some(f) = all[from].poll_send() {
            for s in all.iter_mut() {
                let _ = s.handle_message(sender, &f);
            }
        }
    }

    fn two_nodes() -> Vec<CibService> {
        let ring = RingId { seq: 8, rep: 1 };
        let mut all: Vec<CibService> = [1, 2]
            .into_iter()
            .map(|n| {
                let mut cfg = CibServiceConfig::new(n);
                cfg.require_quorum = true;
                CibService::new(cfg, empty_cib(1))
            })
            .collect();
        for s in &mut all {
            s.handle_config(&[1, 2], &[1, 2], &[], ring);
        }
        deliver(&mut all, 0);
        deliver(&mut all, 1);
        assert!(all.iter().all(CibService::is_synced));
        all
    }

    #[test]
    fn writes_are_refused_without_quorum_and_reads_work() {
        let mut all = two_nodes();
        assert_eq!(
            all[0].request(1, 1, create("a"), OpContext::default()),
            Err(CibServiceError::NoQuorum)
        );
        let query = CibOp::Query {
            scope: Scope::section("resources"),
            options: CallOptions::default(),
        };
        all[0]
            .request(1, 2, query, OpContext::default())
            .expect("reads are not refused");
        let reply = std::iter::from_fn(|| all[0].poll_event()).find_map(|e| match e {
            CibEvent::Reply { result, .. } => Some(result),
            _ => None,
        });
        assert!(matches!(reply, Some(Ok(_))), "{reply:?}");
        // Another ring's verdict does not count.
        all[0].set_quorum(RingId { seq: 4, rep: 1 }, true);
        assert_eq!(
            all[0].request(1, 3, create("a"), OpContext::default()),
            Err(CibServiceError::NoQuorum)
        );
        assert_eq!(all[0].stats().no_quorum, 2);
    }

    #[test]
    fn requests_wait_for_the_marker_and_apply_on_every_member() {
        let mut all = two_nodes();
        let ring = RingId { seq: 8, rep: 1 };
        // Node 2 reports quorum, sends a request behind its marker: every
        // member applies it only after the marker, at the same point.
        all[1].set_quorum(ring, true);
        all[1]
            .request(7, 1, create("a"), OpContext::default())
            .expect("quorate");
        let frames: Vec<Vec<u8>> = std::iter::from_fn(|| all[1].poll_send()).collect();
        assert_eq!(frames.len(), 2, "the marker, then the request");
        // The request alone (as if the marker were lost) is held back.
        let mut held = two_nodes();
        let _ = held[0].handle_message(2, &frames[1]);
        assert_eq!(held[0].stats().applied, 0);
        assert!(!held[0].is_quiescent(), "held, not dropped");
        for f in &frames {
            for s in all.iter_mut() {
                let _ = s.handle_message(2, f);
            }
        }
        assert_eq!(all[0].digest(), all[1].digest());
        assert_eq!(all[0].stats().applied, 1);
        assert_eq!(all[0].quorate_seq(), 8);
        let reply = std::iter::from_fn(|| all[1].poll_event()).find_map(|e| match e {
            CibEvent::Reply { result, .. } => Some(result),
            _ => None,
        });
        assert!(matches!(reply, Some(Ok(r)) if r.changed));
    }

    #[test]
    fn a_request_delivered_in_a_transitional_configuration_is_unconfirmed() {
        let mut all = two_nodes();
        let ring = RingId { seq: 8, rep: 1 };
        all[0].set_quorum(ring, true);
        all[0]
            .request(7, 1, create("a"), OpContext::default())
            .expect("quorate");
        all[0].handle_transitional();
        deliver(&mut all, 0);
        assert_eq!(all[0].stats().unconfirmed, 1);
        let reply = std::iter::from_fn(|| all[0].poll_event()).find_map(|e| match e {
            CibEvent::Reply { result, .. } => Some(result),
            _ => None,
        });
        assert_eq!(reply, Some(Err(ReplyError::Unconfirmed)));
        // Applied all the same, on both.
        assert_eq!(all[0].digest(), all[1].digest());
        assert_eq!(all[1].stats().applied, 1);
    }

    #[test]
    fn a_gate_opened_in_the_transitional_deliveries_names_its_configuration() {
        // Node 2's quorum marker for ring 8 is delivered only after the
        // transitional configuration, and ring 12 follows at once: the copies
        // became writable in ring 8 (its lineage), though the current
        // configuration is 12 by the time the driver looks (seed 50390).
        let mut all = two_nodes();
        let ring = RingId { seq: 8, rep: 1 };
        assert_eq!(all[0].writable_ring(), None);
        all[1].set_quorum(ring, true);
        for s in all.iter_mut() {
            s.handle_transitional();
        }
        deliver(&mut all, 1);
        let next = RingId { seq: 12, rep: 2 };
        for s in all.iter_mut() {
            s.handle_config(&[1, 2], &[], &[], next);
        }
        for s in &all {
            assert_eq!(s.writable_ring(), Some(ring));
            assert_eq!(s.quorate_seq(), 8);
            assert_eq!(s.configuration().map(|c| c.0), Some(next));
        }
        // Adopting a winner's lineage does not name a configuration this node
        // was not writable in.
        let mut fresh = {
            let mut cfg = CibServiceConfig::new(3);
            cfg.require_quorum = true;
            CibService::new(cfg, empty_cib(1))
        };
        fresh.adopt_quorate_seq(8);
        assert_eq!(fresh.writable_ring(), None);
    }

    #[test]
    fn the_newest_quorate_copy_wins_over_a_higher_version() {
        // Node 1's copy took writes in quorate ring 8; node 2's copy has a
        // higher version but was never writable (quorate_seq 0).
        let mut one = {
            let mut cfg = CibServiceConfig::new(1);
            cfg.require_quorum = true;
            CibService::new(cfg, empty_cib(1))
        };
        one.handle_config(&[1], &[1], &[], RingId { seq: 8, rep: 1 });
        while let Some(f) = one.poll_send() {
            let _ = one.handle_message(1, &f);
        }
        one.set_quorum(RingId { seq: 8, rep: 1 }, true);
        one.request(7, 1, create("kept"), OpContext::default())
            .expect("quorate");
        while let Some(f) = one.poll_send() {
            let _ = one.handle_message(1, &f);
        }
        assert_eq!(one.quorate_seq(), 8);
        let mut other_cib = empty_cib(1);
        other_cib.set_attr("epoch", "50");
        let two = {
            let mut cfg = CibServiceConfig::new(2);
            cfg.require_quorum = true;
            CibService::new(cfg, other_cib)
        };
        let mut all = vec![one, two];
        let ring = RingId { seq: 12, rep: 1 };
        for s in &mut all {
            s.handle_config(&[1, 2], &[1, 2], &[], ring);
        }
        for _ in 0..2 {
            deliver(&mut all, 0);
            deliver(&mut all, 1);
        }
        assert_eq!(all[0].digest(), all[1].digest());
        let resources = all[1]
            .cib()
            .find_child("configuration")
            .and_then(|c| c.find_child("resources"))
            .expect("resources");
        assert!(
            resources.find_child("primitive").is_some(),
            "the quorate write was kept"
        );
        assert_eq!(all[1].stats().divergences, 1);
        // Neither copy's version went back: both now stand above epoch 50.
        assert_eq!(all[0].version(), all[1].version());
        assert_eq!(all[1].version().epoch, 51);
    }
}
