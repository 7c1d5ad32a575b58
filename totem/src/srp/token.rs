//! One token visit: safe point, retransmissions, sending, aru, flow control,
//! forwarding, and the representative's hold on an idle ring.

use super::{Destination, SendHold, State, Totem, Transmit};
use crate::config::limits;
use crate::store::Stored;
use crate::wire::{self, Encapsulated, Guarantee, Message, Token};
use bytes::Bytes;
use phalanx_logsys::record;

/// Most frames that may be outstanding (sent but not yet held by every member) on
/// a ring; bounds the store when a member lags.
pub(crate) const MAX_OUTSTANDING: u64 = 16_384;

impl Totem {
    pub(super) fn on_token(&mut self, token: Token) {
        let active = match self.state {
            State::Operational => self.ring.id,
            State::Recovery => match &self.new_ring {
                Some(r) => r.id,
                None => return,
            },
            _ => {
                self.stats.tokens_stale += 1;
                return;
            }
        };
        if token.ring != active
            || self
                .tok
                .last_token_seq
                .is_some_and(|s| token.token_seq <= s)
        {
            self.stats.tokens_stale += 1;
            return;
        }
        // The new ring's first token is this node's to make when it is the
        // representative: one that arrives before it did is forged (taking it
        // would let its sequence stand above the token this node then starts).
        if self.state == State::Recovery
            && active.rep == self.me
            && self.recovery.as_ref().is_some_and(|r| !r.token_originated)
        {
            self.stats.tokens_invalid += 1;
            return;
        }
        // A token whose sequence went backwards, or that claims more outstanding
        // frames than flow control allows, cannot come from an honest ring: using
        // it would reassign sequence numbers. Nor can one whose rotation counter is
        // exhausted (forwarding it must count one more rotation).
        let window = MAX_OUTSTANDING + u64::from(self.cfg.window_size);
        if token.token_seq == u64::MAX
            || token.aru > token.seq
            || token.seq < self.tok.seq_at_last_forward
            || token.seq - token.aru > window
            || token.seq > self.active().my_aru + 2 * window
        {
            self.stats.tokens_invalid += 1;
            return;
        }
        self.visit(token);
    }

    /// Processes a token addressed to this node.
    pub(super) fn visit(&mut self, token: Token) {
        // Forwarding counts one more rotation. A received token with an
        // exhausted counter is refused above, but a one-node ring hands its
        // token back to itself without those checks; only a forged token gets
        // this far (2^64 rotations), and dropping it is a token loss.
        if token.token_seq == u64::MAX {
            self.stats.tokens_invalid += 1;
            return;
        }
        let now = self.now;
        debug_assert!(
            token.seq >= self.tok.seq_at_last_forward,
            "token seq went back: {token:?} {}",
            self.debug_token_state()
        );
        self.stats.tokens_rx += 1;
        self.tok.last_token_seq = Some(token.token_seq);
        self.timers.token_retransmit = None;
        self.timers.token_loss = Some(now + self.cfg.token_timeout);
        self.tok.last_sent = None;

        // Safe point: an aru seen on two successive arrivals is held by everyone
        // (any member lacking a message would have lowered it in between, and only
        // it may raise it again).
        let arrival_aru = token.aru;
        if let Some(prev) = self.tok.prev_arrival_aru {
            let ring = self.active_ring();
            ring.safe_upto = ring.safe_upto.max(prev.min(arrival_aru)).min(ring.my_aru);
        }
        self.tok.prev_arrival_aru = Some(arrival_aru);

        // RECOVERY: once every member has re-sent everything, wait until all hold
        // it, then install the ring.
        if self.state == State::Recovery && self.recovery_may_finish(&token) {
            self.enter_operational();
        }

        if token.seq == self.tok.seq_at_last_forward {
            self.tok.idle_visits = self.tok.idle_visits.saturating_add(1);
        } else {
            self.tok.idle_visits = 0;
            self.tok.hold_cancel_sent = false;
        }

        self.work_token(token, true);
    }

    /// Everything a visit does after the arrival bookkeeping: release, retransmit,
    /// send, request, aru, flow control, forward. `arrival` is false when the
    /// representative serves its own queue with a token it held: that is not a
    /// new arrival, so the aru it carries says nothing new about the others.
    fn work_token(&mut self, mut token: Token, arrival: bool) {
        let now = self.now;
        // Free what every member holds and this node has delivered.
        {
            let operational = self.state == State::Operational;
            let ring = self.active_ring();
            let upto = if operational {
                ring.safe_upto.min(ring.high_delivered)
            } else {
                0
            };
            if upto > ring.store.released_through() {
                ring.store.release_through(upto);
            }
        }

        // Flow control: this visit's allowance.
        let backlog = self.backlog_frames();
        let mut allowance = self.allowance(&token, backlog);
        // What a send hold may bring the visit to: the allowance of a node whose
        // backlog is all the ring's.
        let hold_cap = self.cfg.max_messages.min(
            self.cfg
                .window_size
                .saturating_sub(token.fcc.saturating_sub(self.tok.sent_last_visit)),
        );

        // Retransmissions first (always served up to max_messages so a full window
        // cannot starve recovery of losses).
        //
        // A request is normally served by the first holder that has the frame, and
        // taken off the token. If this node served the same request on its previous
        // visit, its copy did not arrive: the path from this node to the requester
        // is broken (after a cable is re-plugged, the kernel holds a node's
        // datagrams to a peer until neighbour resolution answers, up to a second,
        // while every other path works). Then the request stays on the token so the
        // next holders serve it too: without that, the node after the requester
        // would serve every request alone, the requester's aru would stay stuck, and
        // FAILED TO RECEIVE would split a node every other member can reach.
        let mut served = 0u32;
        let served_before = std::mem::take(&mut self.tok.served_last_visit);
        let mut served_now = Vec::new();
        let mut rtr = std::mem::take(&mut token.rtr);
        rtr.retain(|&seq| {
            if served >= self.cfg.max_messages {
                return true;
            }
            let ring = match self.state {
                State::Recovery => self.new_ring.as_ref(),
                _ => Some(&self.ring),
            };
            let Some(f) = ring.and_then(|r| r.store.get(seq)) else {
                return true;
            };
            let mut data =
                Vec::with_capacity(wire::MCAST_OVERHEAD + f.payload.len() + wire::ENCAP_OVERHEAD);
            let r = ring.map(|r| (r.id, r.others.clone()));
            if let Some((id, others)) = r {
                wire::encode_mcast(
                    f.sender,
                    id,
                    seq,
                    f.guarantee,
                    f.encapsulated.as_ref(),
                    &f.payload,
                    &mut data,
                );
                self.transmits.push_back(Transmit {
                    dest: Destination::Members(others),
                    data,
                });
            }
            served += 1;
            served_now.push(seq);
            served_before.contains(&seq)
        });
        self.tok.served_last_visit = served_now;
        self.stats.mcast_retransmits += served as u64;
        allowance = allowance.saturating_sub(served);

        // New frames: application data when OPERATIONAL, recovered old-ring frames
        // in RECOVERY.
        let mut sent = 0u32;
        while sent < allowance && token.seq.saturating_sub(token.aru) < MAX_OUTSTANDING {
            let ok = match self.state {
                State::Operational => self.send_app_frame(&mut token),
                _ => self.send_recovery_frame(&mut token),
            };
            if !ok {
                break;
            }
            sent += 1;
        }
        if sent > 0 {
            // Our own frames are activity too: the representative must not hold
            // the token right after sending (the others need a rotation to
            // acknowledge them, and safe delivery needs two).
            self.tok.idle_visits = 0;
            self.tok.hold_cancel_sent = false;
        }

        // Ask for what is missing: frames assigned before our previous forward had
        // a whole rotation to arrive.
        {
            let ring = self.active_ring();
            let my_aru = ring.my_aru;
            let mut s = my_aru + 1;
            let limit = self.tok.seq_at_last_forward.min(token.seq);
            while s <= limit && rtr.len() < limits::MAX_RTR_ENTRIES {
                let ring = self.active_ring();
                if !ring.store.has(s) && !rtr.contains(&s) {
                    rtr.push(s);
                }
                s += 1;
            }
        }
        token.rtr = rtr;

        self.update_aru(&mut token, arrival);
        let me = self.me;

        token.fcc = token
            .fcc
            .saturating_add(sent)
            .saturating_sub(self.tok.sent_last_visit);
        self.tok.sent_last_visit = sent;
        let backlog_now = self.backlog_frames();
        token.backlog = token
            .backlog
            .saturating_add(backlog_now)
            .saturating_sub(self.tok.backlog_last_visit);
        self.tok.backlog_last_visit = backlog_now;
        if self.state == State::Recovery {
            self.update_recovery_flag(&mut token);
        }
        token.token_seq += 1;
        self.tok.seq_at_last_forward = token.seq;

        if self.tok.aru_stuck_visits > self.cfg.fail_to_receive_rotations {
            self.stats.failed_to_receive += 1;
            record!(
                self.log,
                now.as_nanos(),
                me,
                Warn,
                "totem",
                "FAILED TO RECEIVE: aru stuck at {} for {} rotations",
                token.aru,
                self.tok.aru_stuck_visits
            );
            self.isolate_self();
            return;
        }

        if self.state == State::Operational {
            self.deliver_ready();
        }
        let hold = SendHold {
            until: now + self.cfg.send_hold,
            sent: served + sent,
            cap: hold_cap,
        };
        if sent > 0 && self.may_hold_for_sending(&hold) {
            self.stats.send_holds += 1;
            self.hold_for_sending(token, hold);
            return;
        }
        self.forward(token);
    }

    /// aru: lower it to ours, or raise it if we were the one holding it back.
    fn update_aru(&mut self, token: &mut Token, arrival: bool) {
        let my_aru = self.active_ring().my_aru;
        let me = self.me;
        if my_aru < token.aru || token.aru_addr == me || token.aru_addr == 0 {
            if !arrival {
                // Not a rotation: neither stuck nor unstuck.
            } else if token.aru_addr == me && token.aru == my_aru && token.aru < token.seq {
                self.tok.aru_stuck_visits += 1;
            } else {
                self.tok.aru_stuck_visits = 0;
            }
            token.aru = my_aru;
            token.aru_addr = me;
        } else if arrival {
            self.tok.aru_stuck_visits = 0;
        }
        if token.aru >= token.seq {
            token.aru = token.seq;
            token.aru_addr = 0;
        }
    }

    /// Whether a visit that has sent everything queued may keep the token for
    /// more of this node's messages ([`crate::Config::send_hold`]): only when
    /// operational, on a ring of several nodes, with room left in the visit's
    /// allowance and time left in the hold.
    fn may_hold_for_sending(&self, hold: &SendHold) -> bool {
        !self.cfg.send_hold.is_zero()
            && self.state == State::Operational
            && self.send_queue.is_empty()
            && hold.sent < hold.cap
            && self.now < hold.until
            && self.active().next_after(self.me) != self.me
    }

    fn hold_for_sending(&mut self, token: Token, hold: SendHold) {
        self.timers.hold = Some(hold.until);
        self.tok.send_hold = Some(hold);
        self.tok.held = Some(token);
    }

    /// A send hold ends (new messages, or its time is up): send what was queued
    /// meanwhile as part of the same visit, then hold again or pass the token on.
    /// The visit's bookkeeping (rotation count, retransmissions, requests) was
    /// done on arrival; only the new frames are added to it.
    fn continue_visit(&mut self, mut token: Token, mut hold: SendHold) {
        let mut sent = 0u32;
        while hold.sent + sent < hold.cap
            && token.seq.saturating_sub(token.aru) < MAX_OUTSTANDING
            && self.send_app_frame(&mut token)
        {
            sent += 1;
        }
        if sent > 0 {
            self.stats.send_hold_frames += u64::from(sent);
            self.update_aru(&mut token, false);
            token.fcc = token.fcc.saturating_add(sent);
            self.tok.sent_last_visit = self.tok.sent_last_visit.saturating_add(sent);
            self.tok.seq_at_last_forward = token.seq;
            self.deliver_ready();
            hold.sent += sent;
            if self.may_hold_for_sending(&hold) {
                self.hold_for_sending(token, hold);
                return;
            }
        }
        let next = self.active().next_after(self.me);
        self.transmit_token(next, &token);
    }

    fn backlog_frames(&self) -> u32 {
        match self.state {
            State::Operational => self.send_queue.frames_estimate(self.cfg.max_frame),
            _ => self
                .recovery
                .as_ref()
                .map_or(0, |r| r.to_resend.len() as u32),
        }
    }

    /// Frames this node may send on this visit (Corosync's fcc rules: a share of
    /// the window proportional to our backlog, at most `max_messages`).
    fn allowance(&self, token: &Token, backlog: u32) -> u32 {
        if backlog == 0 {
            return 0;
        }
        let used_by_others = token.fcc.saturating_sub(self.tok.sent_last_visit);
        let mut allowed = self
            .cfg
            .max_messages
            .min(self.cfg.window_size.saturating_sub(used_by_others));
        let total = token
            .backlog
            .saturating_add(backlog)
            .saturating_sub(self.tok.backlog_last_visit);
        if total > backlog {
            let share = (self.cfg.window_size as u64 * backlog as u64 / total as u64) as u32;
            allowed = allowed.min(share.max(1));
        }
        allowed.max(1)
    }

    fn send_app_frame(&mut self, token: &mut Token) -> bool {
        let mut frame = std::mem::take(&mut self.frame_buf);
        let Some(guarantee) = self.send_queue.pack(self.cfg.max_frame, &mut frame) else {
            self.frame_buf = frame;
            return false;
        };
        token.seq += 1;
        let seq = token.seq;
        self.originate(seq, guarantee, None, &frame);
        frame.clear();
        self.frame_buf = frame;
        true
    }

    fn send_recovery_frame(&mut self, token: &mut Token) -> bool {
        let Some(rec) = self.recovery.as_mut() else {
            return false;
        };
        let Some(old_seq) = rec.to_resend.pop_front() else {
            return false;
        };
        let Some(f) = self.ring.store.get(old_seq) else {
            return true;
        };
        let encap = Encapsulated {
            ring: self.ring.id,
            seq: old_seq,
            sender: f.sender,
            guarantee: f.guarantee,
        };
        let payload = f.payload.clone();
        token.seq += 1;
        self.stats.recovery_retransmits += 1;
        self.originate(token.seq, Guarantee::Agreed, Some(encap), &payload);
        true
    }

    /// Multicasts a new frame with sequence `seq` and keeps it in the store.
    fn originate(
        &mut self,
        seq: u64,
        guarantee: Guarantee,
        encap: Option<Encapsulated>,
        payload: &[u8],
    ) {
        let me = self.me;
        let ring = self.active_ring();
        let mut data =
            Vec::with_capacity(wire::MCAST_OVERHEAD + wire::ENCAP_OVERHEAD + payload.len());
        wire::encode_mcast(
            me,
            ring.id,
            seq,
            guarantee,
            encap.as_ref(),
            payload,
            &mut data,
        );
        let others = ring.others.clone();
        ring.store.insert(
            seq,
            Stored {
                sender: me,
                guarantee,
                encapsulated: encap,
                payload: Bytes::copy_from_slice(payload),
            },
        );
        ring.my_aru = ring.store.contiguous_from(ring.my_aru);
        self.stats.mcast_tx += 1;
        if !others.is_empty() {
            self.transmits.push_back(Transmit {
                dest: Destination::Members(others),
                data,
            });
        }
    }

    /// Passes the token on, or holds it when this node is the representative of an
    /// idle ring.
    fn forward(&mut self, token: Token) {
        let ring = self.active();
        let next = ring.next_after(self.me);
        let is_rep = ring.id.rep == self.me;
        let idle = self.state == State::Operational
            && self.tok.idle_visits >= self.cfg.idle_rotations
            && self.send_queue.is_empty()
            && token.rtr.is_empty()
            && token.aru == token.seq;
        if next == self.me || (is_rep && idle) {
            // One-node ring, or an idle ring: keep the token until there is work or
            // the hold interval ends (a one-node ring with work continues at once).
            if idle {
                self.stats.token_holds += 1;
                self.timers.hold = Some(self.now + self.cfg.hold);
            } else {
                self.timers.hold = Some(self.now);
            }
            self.tok.held = Some(token);
            return;
        }
        self.transmit_token(next, &token);
    }

    fn transmit_token(&mut self, next: crate::NodeId, token: &Token) {
        let mut data = Vec::with_capacity(64 + 8 * token.rtr.len());
        wire::encode(self.me, &Message::Token(token.clone()), &mut data);
        self.stats.tokens_tx += 1;
        self.tok.last_sent = Some((next, data.clone()));
        self.transmits.push_back(Transmit {
            dest: Destination::Node(next),
            data,
        });
        self.timers.token_retransmit = Some(self.now + self.cfg.token_retransmit);
    }

    /// The hold interval ended, or there is work: pass the held token on.
    pub(super) fn release_held_token(&mut self) {
        let Some(token) = self.tok.held.take() else {
            return;
        };
        self.timers.hold = None;
        if let Some(hold) = self.tok.send_hold.take() {
            if self.state == State::Operational {
                self.continue_visit(token, hold);
            } else {
                let next = self.active().next_after(self.me);
                self.transmit_token(next, &token);
            }
            return;
        }
        let next = self.active().next_after(self.me);
        if next == self.me {
            // One-node ring: the token comes straight back.
            self.visit(token);
        } else if self.state == State::Operational && !self.send_queue.is_empty() {
            // Work of our own ended the hold: send it now rather than after a
            // whole rotation (this is the representative's lat1idle path).
            self.work_token(token, false);
        } else {
            self.transmit_token(next, &token);
        }
    }

    /// New work while the ring may be idle: get the token moving.
    pub(super) fn cancel_hold(&mut self) {
        if self.tok.held.is_some() {
            // Run on the next timeout call rather than re-entering the visit here.
            self.timers.hold = Some(self.now);
            return;
        }
        // The representative holds after its own idle visit number
        // `idle_rotations`; the others have then seen one idle visit fewer.
        if self.tok.idle_visits.saturating_add(1) >= self.cfg.idle_rotations
            && !self.tok.hold_cancel_sent
        {
            let rep = self.ring.id.rep;
            if rep != self.me {
                self.tok.hold_cancel_sent = true;
                self.stats.hold_cancels_tx += 1;
                let msg = Message::HoldCancel { ring: self.ring.id };
                self.send(Destination::Node(rep), &msg);
            }
        }
    }
}
