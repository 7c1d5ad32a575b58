//! The Stack's quorum service: requests passed through to votequorum, its sends
//! pumped into totem, its events surfaced.

use super::{QuorumRequestError, ServiceId, Stack, StackEvent};
use phalanx_quorum::{QuorumError, Votequorum};
use phalanx_totem::{Guarantee, NodeId, RingId, Time};

impl Stack {
    /// The votequorum core (queries: `is_quorate`, `info`, `nodes`, `stats`), if the
    /// Stack runs quorum.
    pub fn quorum(&self) -> Option<&Votequorum> {
        self.quorum.as_ref()
    }

    /// Quorum: sets the cluster's expected votes (see
    /// [`Votequorum::set_expected_votes`]); replicated, applied at delivery.
    pub fn quorum_set_expected_votes(
        &mut self,
        now: Time,
        expected: u32,
    ) -> Result<(), QuorumRequestError> {
        self.quorum_request(now, |q| q.set_expected_votes(expected))
    }

    /// Quorum: sets `node`'s votes (see [`Votequorum::set_votes`]); replicated.
    pub fn quorum_set_votes(
        &mut self,
        now: Time,
        node: NodeId,
        votes: u32,
    ) -> Result<(), QuorumRequestError> {
        self.quorum_request(now, |q| q.set_votes(node, votes))
    }

    /// Quorum: stops waiting for all nodes (see [`Votequorum::cancel_wait_for_all`]);
    /// replicated.
    pub fn quorum_cancel_wait_for_all(&mut self, now: Time) -> Result<(), QuorumRequestError> {
        self.quorum_request(now, Votequorum::cancel_wait_for_all)
    }

    /// Quorum: the local quorum device casts or withdraws its vote for `ring` (see
    /// [`Votequorum::set_device_vote`]); replicated.
    pub fn quorum_set_device_vote(
        &mut self,
        now: Time,
        ring: RingId,
        cast: bool,
    ) -> Result<(), QuorumRequestError> {
        self.quorum_request(now, |q| q.set_device_vote(ring, cast))
    }

    fn quorum_request(
        &mut self,
        now: Time,
        f: impl FnOnce(&mut Votequorum) -> Result<(), QuorumError>,
    ) -> Result<(), QuorumRequestError> {
        let q = self
            .quorum
            .as_mut()
            .ok_or(QuorumRequestError::NotConfigured)?;
        self.now = now;
        let r = f(q);
        self.quorum_input = true;
        self.pump();
        Ok(r?)
    }

    /// Whether the quorum core took an input (message, configuration, timeout,
    /// request) since the last call. Its state — votes counted, device vote — can
    /// change without an event; a driver that publishes that state re-reads it
    /// only then, not after every datagram.
    pub fn take_quorum_input(&mut self) -> bool {
        std::mem::take(&mut self.quorum_input)
    }

    /// Moves quorum's events to the Stack's queue.
    pub(super) fn drain_quorum_events(&mut self) {
        if let Some(q) = self.quorum.as_mut() {
            while let Some(e) = q.poll_event() {
                self.events.push_back(StackEvent::Quorum(e));
            }
        }
    }

    /// Feeds quorum's queued messages to totem (agreed) while totem has room; true if
    /// any moved.
    pub(super) fn pump_quorum_sends(&mut self) -> bool {
        let Some(q) = self.quorum.as_mut() else {
            return false;
        };
        let mut any = false;
        loop {
            let msg = match self.quorum_out.take() {
                Some(m) => m,
                None => match q.poll_send() {
                    Some(p) => {
                        let mut m = Vec::with_capacity(1 + p.len());
                        m.push(ServiceId::Quorum as u8);
                        m.extend_from_slice(&p);
                        m
                    }
                    None => break,
                },
            };
            if msg.len() > self.totem.send_queue_room() {
                self.quorum_out = Some(msg);
                break;
            }
            // Room was checked and quorum messages are far below totem's maximum, so
            // this is accepted unless totem has left, when dropping is right.
            let _ = self.totem.mcast_owned(self.now, Guarantee::Agreed, msg);
            any = true;
        }
        any
    }

    /// No quorum message waiting for totem, and the state exchange of the current
    /// ring (if any) complete. True without quorum.
    pub(super) fn quorum_is_quiescent(&self) -> bool {
        self.quorum_out.is_none()
            && self.quorum.as_ref().is_none_or(|q| {
                let i = q.info();
                i.ring.is_none() || i.synced
            })
    }
}
