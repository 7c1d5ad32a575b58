//! The Stack's quorum service: requests passed through to votequorum, its sends
//! pumped into totem, its events surfaced (values to persist as
//! [`Output::Persist`](super::Output::Persist)).

use super::{
    InputError, Output, PersistItem, QuorumRequest, QuorumRequestError, ServiceId, Stack,
    StackEvent,
};
use phalanx_quorum::{Event, Votequorum};
use phalanx_totem::Guarantee;

impl Stack {
    /// The votequorum core (queries: `is_quorate`, `info`, `nodes`, `stats`), if the
    /// Stack runs quorum.
    pub fn quorum(&self) -> Option<&Votequorum> {
        self.quorum.as_ref()
    }

    pub(super) fn on_quorum_request(&mut self, r: QuorumRequest) -> Result<(), InputError> {
        let q = self
            .quorum
            .as_mut()
            .ok_or(QuorumRequestError::NotConfigured)?;
        let r = match r {
            QuorumRequest::SetExpectedVotes(v) => q.set_expected_votes(v),
            QuorumRequest::SetVotes { node, votes } => q.set_votes(node, votes),
            QuorumRequest::CancelWaitForAll => q.cancel_wait_for_all(),
            QuorumRequest::DeviceVote { ring, cast } => q.set_device_vote(ring, cast),
        };
        self.quorum_input = true;
        r.map_err(|e| InputError::Quorum(e.into()))
    }

    /// Whether the quorum core took an input (message, configuration, timeout,
    /// request) since the last call. Its state — votes counted, device vote — can
    /// change without an event; a driver that publishes that state re-reads it
    /// only then, not after every datagram.
    pub fn take_quorum_input(&mut self) -> bool {
        std::mem::take(&mut self.quorum_input)
    }

    /// Moves quorum's events to the output queue.
    pub(super) fn drain_quorum_events(&mut self) {
        while let Some(e) = self.quorum.as_mut().and_then(Votequorum::poll_event) {
            match e {
                Event::PersistExpectedVotes(n) => {
                    self.request_persist(PersistItem::ExpectedVotes(n));
                }
                e => {
                    self.fence_quorum_event(&e);
                    self.emit(Output::Event(StackEvent::Quorum(e)));
                }
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
