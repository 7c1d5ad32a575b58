//! Configuration changes: the state exchange, the winner, the sync and the
//! divergence report.
//!
//! On every regular configuration each member multicasts an offer (its
//! version and digest, tagged with the ring). When every member's offer for
//! the ring is in, every node computes the same winner: the **highest
//! version** `(admin_epoch, epoch, num_updates)`, and among equal versions
//! the **lowest node id** — with `require_quorum`, first the copy last
//! writable in the **newest quorate configuration** (see [`super::quorum`]). If some member's digest differs from the
//! winner's, the winner multicasts its whole CIB, and every member (the
//! winner too) is synced when that sync comes back in agreed order; members
//! whose digest equals the winner's keep their copy. Requests delivered
//! before it wait and are applied by every member after it, or, if the
//! configuration changes first, by none (their originators answer
//! "interrupted").

use std::collections::BTreeMap;

use phalanx_totem::{NodeId, RingId};

use super::CibService;
use super::fingerprint::{Fingerprint, History};
use super::message::ServiceMessage;
use super::types::{CibEvent, DiffCause, Divergence, ReplyError};
use crate::patch::{DiffOptions, diff};
use crate::xml::Element;

/// Where the service stands in the current configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// No configuration yet.
    Unconfigured,
    /// Collecting the members' offers.
    Exchange {
        /// Offers in so far.
        offers: BTreeMap<NodeId, Offered>,
    },
    /// Waiting for the winner's sync.
    AwaitSync {
        /// The winner.
        winner: NodeId,
        /// Its offered state.
        expected: Fingerprint,
        /// Its copy's newest quorate configuration (ours once synced).
        quorate_seq: u64,
        /// Its copy's lineage version (ours once synced).
        lineage: crate::version::Version,
        /// With quorum a lower version can win; every member then raises the
        /// installed copy's version above every offer, so that no copy's
        /// version goes back.
        raise_to: Option<crate::version::Version>,
    },
    /// Requests are applied as delivered.
    Synced,
}

/// One member's offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Offered {
    /// The newest configuration its copy was writable in with quorum.
    pub(super) quorate_seq: u64,
    /// How far its copy got in that lineage ([`CibService::lineage_version`]).
    pub(super) lineage: crate::version::Version,
    /// Its state.
    pub(super) state: Fingerprint,
}

impl Offered {
    /// What the winner is chosen by: the newest quorate lineage, then how far
    /// into it (the lineage version: a version raised by a sync says nothing
    /// about that), then the version. Without a quorate lineage (0) the
    /// version alone counts, as in Pacemaker.
    fn rank(&self) -> (u64, crate::version::Version, crate::version::Version) {
        let progress = if self.quorate_seq > 0 {
            self.lineage
        } else {
            self.state.version
        };
        (self.quorate_seq, progress, self.state.version)
    }
}

impl Phase {
    pub(super) fn is_synced(&self) -> bool {
        matches!(self, Phase::Synced)
    }
}

/// The winner among offers: newest quorate configuration (all 0 without
/// `require_quorum`), then furthest into it ([`Offered::rank`]), then highest
/// version, then lowest node id.
pub(super) fn winner(offers: &BTreeMap<NodeId, Offered>) -> Option<(NodeId, Offered)> {
    // BTreeMap iterates by ascending id; `max_by` keeps the last maximum, so
    // iterate in reverse to keep the lowest id among equal keys.
    offers
        .iter()
        .rev()
        .max_by(|a, b| a.1.rank().cmp(&b.1.rank()))
        .map(|(n, f)| (*n, *f))
}

impl CibService {
    /// A new regular configuration (transitional ones are not passed in):
    /// `members` ascending, `ring` its id. `joined` and `left` are for the
    /// record; every member takes part in the exchange.
    pub fn handle_config(
        &mut self,
        members: &[NodeId],
        joined: &[NodeId],
        left: &[NodeId],
        ring: RingId,
    ) {
        let _ = (joined, left);
        self.stats.configs += 1;
        self.gate.reset();
        // Half-received messages cannot complete on every member alike.
        self.reassembly.clear();
        // Requests held back for the last sync were delivered to the old
        // members only: applying them now could diverge, so every member
        // drops them; their originators answer "interrupted".
        for p in std::mem::take(&mut self.pending) {
            self.stats.interrupted += 1;
            if p.sender == self.cfg.local && self.inflight.remove(&p.id).is_some() {
                self.events.push_back(CibEvent::Reply {
                    client: p.client,
                    call: p.call,
                    result: Err(ReplyError::Interrupted),
                });
            }
        }
        // Offers and syncs still queued are for an older ring. A request cut
        // in the middle is found out by its orphan frames. With quorum, a
        // request was accepted for the old ring's quorum: the new ring may have
        // none (it would wait there), so it is answered "interrupted" instead.
        let mut kept = std::collections::VecDeque::new();
        let mut dropped = Vec::new();
        for o in std::mem::take(&mut self.sends) {
            if o.request && self.cfg.require_quorum {
                self.queued_request_bytes -= o.frame.len();
                if dropped.last() != Some(&o.id) {
                    dropped.push(o.id);
                }
            } else if o.request {
                kept.push_back(o);
            }
        }
        self.sends = kept;
        for id in dropped {
            if let Some((client, call)) = self.inflight.remove(&id) {
                self.stats.interrupted += 1;
                self.events.push_back(CibEvent::Reply {
                    client,
                    call,
                    result: Err(ReplyError::Interrupted),
                });
            }
        }
        let mut members = members.to_vec();
        members.sort_unstable();
        members.dedup();
        self.members = members;
        self.ring = Some(ring);
        self.phase = Phase::Exchange {
            offers: BTreeMap::new(),
        };
        let offer = ServiceMessage::Offer {
            ring,
            state: self.state,
            quorate_seq: self.gate.quorate_seq,
            lineage: self.lineage_version(),
        }
        .encode();
        self.queue(&offer, false);
    }

    pub(super) fn on_offer(
        &mut self,
        sender: NodeId,
        ring: RingId,
        state: Fingerprint,
        quorate_seq: u64,
        lineage: crate::version::Version,
    ) {
        let Phase::Exchange { offers } = &mut self.phase else {
            self.stats.stale += 1;
            return;
        };
        if Some(ring) != self.ring || !self.members.contains(&sender) {
            self.stats.stale += 1;
            return;
        }
        offers.entry(sender).or_insert(Offered {
            quorate_seq,
            lineage,
            state,
        });
        if offers.len() < self.members.len() {
            return;
        }
        let Some((winner, best)) = winner(offers) else {
            return;
        };
        let (quorate_seq, lineage) = (best.quorate_seq, best.lineage);
        let highest = offers.values().map(|o| o.state.version).max();
        let raise_to = highest
            .filter(|h| *h > best.state.version)
            .map(|h| crate::version::Version::new(h.admin_epoch, h.epoch.saturating_add(1), 0));
        let best = best.state;
        if offers.values().all(|f| f.state.digest == best.digest) {
            // Every copy is the winner's: so is its quorate lineage.
            self.adopt_lineage(quorate_seq, lineage);
            self.synced(ring, winner);
            return;
        }
        // Everyone, the winner included, waits for the sync to come back in
        // order: requests delivered before it are applied by every member
        // after it, or (if the configuration changes first) by none.
        if winner == self.cfg.local {
            self.stats.syncs_sent += 1;
            let sync = ServiceMessage::Sync {
                ring,
                history: self.history.to_vec(),
                cib: self.cib.clone(),
            }
            .encode();
            self.queue(&sync, false);
        }
        self.phase = Phase::AwaitSync {
            winner,
            expected: best,
            quorate_seq,
            lineage,
            raise_to,
        };
    }

    pub(super) fn on_sync(
        &mut self,
        sender: NodeId,
        ring: RingId,
        history: &[Fingerprint],
        cib: Element,
    ) {
        let Phase::AwaitSync {
            winner,
            expected,
            quorate_seq,
            lineage,
            raise_to,
        } = self.phase
        else {
            self.stats.stale += 1;
            return;
        };
        if Some(ring) != self.ring || sender != winner {
            self.stats.stale += 1;
            return;
        }
        // The copy is (or now becomes) the winner's, and so is its lineage.
        if self.state.digest == expected.digest {
            self.adopt_lineage(quorate_seq, lineage);
            // The winner itself, and members already equal to it.
            self.raise_version(raise_to);
            self.synced(ring, winner);
            return;
        }
        let old = std::mem::replace(&mut self.cib, cib);
        let before = self.state;
        self.state = Fingerprint::of(&self.cib);
        if self.state != expected {
            self.stats.sync_mismatch += 1;
        }
        self.stats.syncs_installed += 1;
        let winner_history = History::from_states(history);
        let behind = winner_history.contains(&before)
            || (before.fresh_from_disk(&old) && winner_history.contains_configuration(&before));
        if !behind {
            // Our copy is not a state the winner went through (nor, for a
            // copy read from disk, a configuration it went through): it
            // holds changes the winner never saw. Report them.
            self.stats.divergences += 1;
            let discarded = diff(&self.cib, &old, &DiffOptions::default());
            self.events.push_back(CibEvent::Divergence(Divergence {
                ring,
                winner,
                ours: before.version,
                theirs: self.state.version,
                discarded,
            }));
        }
        let options = DiffOptions {
            cib: true,
            ..Default::default()
        };
        if let Some(patchset) = diff(&old, &self.cib, &options) {
            self.events.push_back(CibEvent::Diff {
                patchset,
                version: self.state.version,
                cause: DiffCause::Sync { winner },
            });
        }
        if old.find_child("configuration") != self.cib.find_child("configuration") {
            self.persist_dirty = true;
        }
        self.history = winner_history;
        self.history.set_max(self.cfg.history);
        self.history.push(self.state);
        self.adopt_lineage(quorate_seq, lineage);
        self.raise_version(raise_to);
        self.synced(ring, winner);
    }

    /// Sets the copy's version to `to` (the same on every member, after the
    /// same sync): a winner of an older version must not make any copy's
    /// version go back.
    fn raise_version(&mut self, to: Option<crate::version::Version>) {
        let Some(v) = to else { return };
        // The raise adds nothing to the lineage: remember how far it got.
        self.gate.lineage_version = Some(self.lineage_version());
        self.cib.set_attr("admin_epoch", v.admin_epoch.to_string());
        self.cib.set_attr("epoch", v.epoch.to_string());
        self.cib.set_attr("num_updates", v.num_updates.to_string());
        self.state = Fingerprint::of(&self.cib);
        self.history.push(self.state);
        self.persist_dirty = true;
    }

    fn synced(&mut self, ring: RingId, winner: NodeId) {
        self.phase = Phase::Synced;
        self.events.push_back(CibEvent::Synced {
            ring,
            winner,
            version: self.state.version,
        });
        self.note_writable();
        self.drain_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Version;

    #[test]
    fn highest_version_then_lowest_id_wins() {
        let f = |a, e, n| Offered {
            quorate_seq: 0,
            lineage: Version::default(),
            state: Fingerprint {
                version: Version::new(a, e, n),
                ..Default::default()
            },
        };
        let offers = BTreeMap::from([
            (1, f(0, 5, 2)),
            (2, f(0, 6, 0)),
            (3, f(0, 6, 0)),
            (4, f(0, 5, 9)),
        ]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(2));
        let offers = BTreeMap::from([(5, f(1, 0, 0)), (2, f(0, 60, 0))]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(5));
        assert_eq!(winner(&BTreeMap::new()), None);
    }

    #[test]
    fn the_newest_quorate_configuration_wins_before_the_version() {
        let f = |q, e| Offered {
            quorate_seq: q,
            lineage: Version::new(0, e, 0),
            state: Fingerprint {
                version: Version::new(0, e, 0),
                ..Default::default()
            },
        };
        let offers = BTreeMap::from([(1, f(8, 3)), (2, f(4, 90)), (3, f(8, 3)), (4, f(0, 99))]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(1));
        let offers = BTreeMap::from([(1, f(8, 3)), (3, f(8, 4))]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(3));
    }

    #[test]
    fn a_copy_raised_by_a_sync_loses_to_a_copy_further_into_its_lineage() {
        // Swarm seed 82230: lineage 4's copy at (0,2,0) won an exchange against
        // an older lineage's (0,6,0) and was raised to (0,7,0); another copy of
        // lineage 4 held an acknowledged change at (0,3,0). Comparing raised
        // versions, (0,7,0) won and discarded it.
        let offer = |q, lineage: Version, version: Version| Offered {
            quorate_seq: q,
            lineage,
            state: Fingerprint {
                version,
                ..Default::default()
            },
        };
        let raised = offer(4, Version::new(0, 2, 0), Version::new(0, 7, 0));
        let further = offer(4, Version::new(0, 3, 0), Version::new(0, 3, 0));
        let offers = BTreeMap::from([(1, raised), (3, further)]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(3));
        // A newer lineage still wins whatever its progress.
        let newer = offer(5, Version::new(0, 1, 0), Version::new(0, 1, 0));
        let offers = BTreeMap::from([(1, raised), (3, further), (4, newer)]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(4));
        // Without a quorate lineage the version alone counts (Pacemaker's rule).
        let a = offer(0, Version::new(0, 2, 0), Version::new(0, 7, 0));
        let b = offer(0, Version::new(0, 3, 0), Version::new(0, 3, 0));
        let offers = BTreeMap::from([(1, a), (3, b)]);
        assert_eq!(winner(&offers).map(|w| w.0), Some(1));
    }
}
