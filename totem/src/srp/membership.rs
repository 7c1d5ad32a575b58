//! GATHER (join messages and consensus) and COMMIT (the commit token's two
//! rotations), after the Totem SRP paper §4 and Corosync's rules.

use super::{Destination, Event, RingState, State, Totem, Transmit};
use crate::NodeId;
use crate::wire::{self, Commit, CommitEntry, Join, Message, RingId};
use phalanx_logsys::record;
use std::collections::BTreeSet;

/// No honest cluster changes membership 2^32 times between two of a node's
/// rings; a larger jump in a ring sequence is refused (it would also risk
/// exhausting the sequence space).
const MAX_RING_SEQ_JUMP: u64 = 1 << 32;

impl Totem {
    /// Enters (or restarts) GATHER: announce our view and collect the others'.
    pub(crate) fn enter_gather(&mut self, reason: &'static str) {
        self.enter_gather_with(reason, &[]);
    }

    /// Enters GATHER believing `seen` alive besides our ring's members: the nodes
    /// whose datagrams sent us here. Without them our first join would propose our
    /// old ring alone, the old ring's members would agree on it within a round trip
    /// and install it again before the newcomer's join arrived — a second
    /// configuration change for one merge (found by the heal scenarios in
    /// `tests/heal.rs`).
    pub(crate) fn enter_gather_with(&mut self, reason: &'static str, seen: &[NodeId]) {
        let from = self.state;
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Info,
            "totem",
            "entering GATHER from {}: {}",
            state_name(from),
            reason
        );
        match from {
            State::Operational => {
                self.procs = self.ring.members.iter().copied().collect();
                self.failed.clear();
            }
            State::Recovery => {
                // Back to the old ring: recovered old-ring frames were already put
                // in its store; the new ring is forgotten.
                self.new_ring = None;
                self.recovery = None;
            }
            _ => {}
        }
        self.procs.insert(self.me);
        self.procs.extend(seen.iter().copied());
        self.failed.remove(&self.me);
        self.commit = None;
        self.state = State::Gather;
        self.stats.gathers += 1;
        self.tok = Default::default();
        self.send_queue.restart_partial();
        self.timers.token_loss = None;
        self.timers.token_retransmit = None;
        self.timers.hold = None;
        self.timers.merge_detect = None;
        self.restart_consensus();
    }

    /// Our view changed (or is new): everyone must agree afresh.
    fn restart_consensus(&mut self) {
        self.consensus.clear();
        self.consensus.insert(self.me);
        self.send_join();
        self.timers.join = Some(self.now + self.cfg.join_interval);
        self.timers.consensus = Some(self.now + self.cfg.consensus_timeout);
    }

    pub(crate) fn send_join(&mut self) {
        if self.state != State::Gather {
            self.timers.join = None;
            return;
        }
        let join = Join {
            ring_seq: self.ring_seq_known.max(self.ring.id.seq),
            old_ring: self.ring.id,
            procs: self.procs.iter().copied().collect(),
            failed: self.failed.iter().copied().collect(),
        };
        self.stats.joins_tx += 1;
        self.send(Destination::All, &Message::Join(join));
    }

    pub(super) fn on_join(&mut self, from: NodeId, join: Join) {
        self.stats.joins_rx += 1;
        if join
            .procs
            .iter()
            .chain(&join.failed)
            .any(|n| !self.cfg.nodes.contains(n))
            || !join.procs.contains(&from)
        {
            self.stats.rx_unknown_sender += 1;
            return;
        }
        if join.ring_seq
            > self
                .ring_seq_known
                .max(self.ring.id.seq)
                .saturating_add(MAX_RING_SEQ_JUMP)
        {
            self.stats.membership_invalid += 1;
            return;
        }
        // A node's join ring sequence never decreases, so a lower one than we have
        // seen from it is a delayed datagram from an earlier membership round:
        // acting on its stale sets would undo what everyone has since agreed.
        let mark = self.join_marks.entry(from).or_insert(0);
        if join.ring_seq < *mark {
            self.stats.joins_stale += 1;
            return;
        }
        *mark = join.ring_seq;
        self.ring_seq_known = self.ring_seq_known.max(join.ring_seq);
        // A join from a member of our installed ring that was sent before that ring
        // existed is simply late. (A restarted member knows the ring from its
        // persisted ring sequence, so its fresh joins pass.)
        if self.ring.members.contains(&from)
            && join.ring_seq < self.ring.id.seq
            && self.installed_any
        {
            return;
        }
        // Likewise a join from a node we left behind when we installed a ring
        // without it, sent before it knew of anything newer than the ring we left
        // it in: the sender was then still trying to rebuild that ring. Such joins
        // arrive in bursts when a partition heals — the sender's neighbour
        // resolution held them for seconds — and their stale `failed` sets (often
        // naming us) would split the merge. A live sender soon shows a newer ring
        // sequence: it forms a ring of its own, or hears ours. (A restarted node
        // has no old ring, sequence 0, and is not affected.)
        if self.left_behind.get(&from).is_some_and(|left| {
            join.ring_seq <= left.seq && join.old_ring.seq != 0 && join.old_ring.seq <= left.seq
        }) {
            self.stats.joins_stale += 1;
            return;
        }
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Debug,
            "totem",
            "join from {} ring_seq {} procs {} failed {}; mine procs {} failed {}",
            from,
            join.ring_seq,
            fmt_ids(&join.procs),
            fmt_ids(&join.failed),
            fmt_ids(&self.procs.iter().copied().collect::<Vec<_>>()),
            fmt_ids(&self.failed.iter().copied().collect::<Vec<_>>())
        );
        let procs: BTreeSet<NodeId> = join.procs.iter().copied().collect();
        let failed: BTreeSet<NodeId> = join.failed.iter().copied().collect();
        // The sender's round excludes a node we would not give up for it: us, or —
        // when the sender comes from another ring — a member of our own ring we
        // still count alive. A node that cannot hear a member for a consensus
        // timeout is right to fail it for itself, but taking its word would break
        // our working ring to form one with the newcomer: a heal installing a
        // configuration without a member that was never cut off (a link back in
        // one direction first). Its round can only end without us; it comes back
        // with its next round.
        let foreign = !self.ring.members.contains(&from);
        let excludes_ours = failed.contains(&self.me)
            || (foreign
                && failed
                    .iter()
                    .any(|n| self.ring.members.contains(n) && !self.failed.contains(n)));
        match self.state {
            State::Operational => {
                if excludes_ours {
                    return;
                }
                self.enter_gather_with("join received in OPERATIONAL", &join.procs);
            }
            State::Commit | State::Recovery => {
                let new_ring = self.commit_ring().unwrap_or_default();
                let member = self.commit_members().contains(&from);
                let knows_new_ring = join.ring_seq >= new_ring.seq;
                let news = !(procs.is_subset(&self.procs) && failed.is_subset(&self.failed));
                if !(member && (knows_new_ring || news)) {
                    return;
                }
                self.enter_gather("join received during membership change");
            }
            State::Gather => {}
            State::Left => return,
        }
        if self.failed.contains(&from) {
            return;
        }
        if procs == self.procs && failed == self.failed {
            self.consensus.insert(from);
        } else if procs.is_subset(&self.procs) && failed.is_subset(&self.failed) {
            // It will catch up with our join.
            return;
        } else {
            let before = (self.procs.len(), self.failed.len());
            self.procs.extend(procs.iter().copied());
            if excludes_ours {
                // It cannot hear us (or one of ours): keep it out of our ring.
                self.failed.insert(from);
            } else {
                self.failed.extend(failed.iter().copied());
            }
            if before != (self.procs.len(), self.failed.len()) {
                self.restart_consensus();
            }
            // A join that was a superset of our view is now exactly our view: its
            // sender already agrees. Not counting it would leave that sender
            // "silent" if it goes on to COMMIT (where it sends no joins), and our
            // consensus timeout would declare it failed.
            if procs == self.procs && failed == self.failed {
                self.consensus.insert(from);
            }
        }
        self.check_consensus(false);
    }

    /// If every live member agrees with us and we are the lowest id, start the
    /// commit token.
    ///
    /// A node that finds itself alone (everyone else failed) commits its one-node
    /// ring only when `alone_ok` — at a consensus timeout — never straight from a
    /// join: otherwise a lone node would form rings faster than joins cross the
    /// network, and every join in flight would belong to a finished round.
    pub(crate) fn check_consensus(&mut self, alone_ok: bool) {
        if self.state != State::Gather {
            return;
        }
        let live: Vec<NodeId> = self.procs.difference(&self.failed).copied().collect();
        if !live.iter().all(|n| self.consensus.contains(n)) || live.first() != Some(&self.me) {
            return;
        }
        if live.len() == 1 && !alone_ok {
            return;
        }
        let ring = RingId {
            rep: self.me,
            seq: self.ring_seq_known.max(self.ring.id.seq) + 1,
        };
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Info,
            "totem",
            "consensus on {} members, committing ring {}",
            live.len(),
            ring.seq
        );
        let entries = live
            .iter()
            .map(|&node| CommitEntry {
                node,
                ..Default::default()
            })
            .collect();
        let commit = Commit {
            ring,
            rotation: 1,
            entries,
        };
        self.accept_commit(commit);
    }

    pub(super) fn consensus_timeout(&mut self) {
        if self.state != State::Gather {
            return;
        }
        self.stats.consensus_timeouts += 1;
        let silent: Vec<NodeId> = self
            .procs
            .difference(&self.failed)
            .filter(|n| !self.consensus.contains(n))
            .copied()
            .collect();
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Info,
            "totem",
            "consensus timeout, {} members silent",
            silent.len()
        );
        if silent.is_empty() {
            // Everyone agreed but no commit token came: the representative died or
            // the token was lost. Agree afresh; a dead representative will be silent.
            self.restart_consensus();
        } else {
            self.failed.extend(silent);
            self.restart_consensus();
        }
        // Alone among the live (everyone else failed), this node commits its own
        // ring now; merge detection brings the others back later.
        self.check_consensus(true);
    }

    /// This node cannot receive what the ring sends: leave everyone else so the
    /// ring can go on, and rejoin through merge detection once it can.
    pub(crate) fn isolate_self(&mut self) {
        self.enter_gather("failed to receive");
        self.procs = BTreeSet::from([self.me]);
        self.failed = self
            .ring
            .members
            .iter()
            .copied()
            .filter(|n| *n != self.me)
            .collect();
        self.restart_consensus();
        self.check_consensus(true);
    }

    fn commit_ring(&self) -> Option<RingId> {
        self.commit.as_ref().map(|c| c.ring)
    }

    fn commit_members(&self) -> Vec<NodeId> {
        self.commit
            .as_ref()
            .map(|c| c.entries.iter().map(|e| e.node).collect())
            .unwrap_or_default()
    }

    pub(super) fn on_commit(&mut self, c: Commit) {
        match self.state {
            _ if c.ring.seq
                > self
                    .ring_seq_known
                    .max(self.ring.id.seq)
                    .saturating_add(MAX_RING_SEQ_JUMP) =>
            {
                self.stats.membership_invalid += 1;
            }
            State::Gather if c.rotation == 1 => {
                let live: Vec<NodeId> = self.procs.difference(&self.failed).copied().collect();
                let members: Vec<NodeId> = c.entries.iter().map(|e| e.node).collect();
                if members != live || c.ring.rep != members[0] || c.ring.seq <= self.ring.id.seq {
                    return;
                }
                // A re-sent copy of a commit token this node already filled: it
                // left that attempt, and the others may have too.
                if self
                    .commits_accepted
                    .get(&c.ring.rep)
                    .is_some_and(|s| c.ring.seq <= *s)
                {
                    return;
                }
                self.accept_commit(c);
            }
            State::Commit if Some(c.ring) == self.commit_ring() => {
                if c.rotation == 1 && c.ring.rep == self.me && c.entries.iter().all(|e| e.filled) {
                    // First rotation complete: everybody's old-ring state is known.
                    let mut c = c;
                    c.rotation = 2;
                    self.enter_recovery(&c);
                    self.pass_commit(c);
                } else if c.rotation == 2 && c.ring.rep != self.me {
                    self.enter_recovery(&c);
                    self.pass_commit(c);
                }
            }
            State::Recovery
                if c.rotation == 2
                    && c.ring.rep == self.me
                    && self.new_ring.as_ref().map(|r| r.id) == Some(c.ring) =>
            {
                self.originate_recovery_token();
            }
            _ => {}
        }
    }

    /// Fills our entry, enters COMMIT and passes the token on.
    fn accept_commit(&mut self, mut c: Commit) {
        let high_seq = self.ring.store.high().max(self.ring.my_aru);
        let Some(entry) = c.entries.iter_mut().find(|e| e.node == self.me) else {
            return;
        };
        *entry = CommitEntry {
            node: self.me,
            old_ring: self.ring.id,
            aru: self.ring.my_aru,
            high_seq,
            high_delivered: self.ring.high_delivered,
            filled: true,
        };
        self.ring_seq_known = self.ring_seq_known.max(c.ring.seq);
        let accepted = self.commits_accepted.entry(c.ring.rep).or_insert(0);
        *accepted = (*accepted).max(c.ring.seq);
        self.events
            .push_back(Event::PersistRingSeq(self.ring_seq_known));
        self.state = State::Commit;
        self.stats.commits += 1;
        self.timers.join = None;
        self.timers.consensus = None;
        self.timers.token_loss = Some(self.now + self.cfg.token_timeout);
        self.commit = Some(c.clone());
        self.pass_commit(c);
    }

    /// Sends the commit token to the next member, or handles it here on a
    /// one-node ring.
    ///
    /// The token is re-sent every `token_retransmit` until the ring shows it moved
    /// on (the next rotation, or the new ring's first token or frame), like the
    /// ordering token. Without that, one lost commit token left its members in
    /// COMMIT, silent, for a whole token timeout — longer than the consensus
    /// timeout of a member still in GATHER, which then declared them failed.
    fn pass_commit(&mut self, c: Commit) {
        self.commit = Some(c.clone());
        let members: Vec<NodeId> = c.entries.iter().map(|e| e.node).collect();
        let i = members.iter().position(|n| *n == self.me).unwrap_or(0);
        let next = members[(i + 1) % members.len()];
        if next == self.me {
            self.on_commit(c);
            return;
        }
        self.stats.commits_tx += 1;
        let mut data = Vec::with_capacity(64 + 64 * members.len());
        wire::encode(self.me, &Message::Commit(c), &mut data);
        self.tok.last_sent = Some((next, data.clone()));
        self.timers.token_retransmit = Some(self.now + self.cfg.token_retransmit);
        self.transmits.push_back(Transmit {
            dest: Destination::Node(next),
            data,
        });
    }

    /// Builds the new ring's state from the complete commit token.
    pub(crate) fn new_ring_state(&self, c: &Commit) -> RingState {
        RingState::new(c.ring, c.entries.iter().map(|e| e.node).collect(), self.me)
    }
}

fn fmt_ids(ids: &[NodeId]) -> String {
    let v: Vec<String> = ids.iter().map(|n| n.to_string()).collect();
    format!("[{}]", v.join(","))
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Gather => "GATHER",
        State::Commit => "COMMIT",
        State::Recovery => "RECOVERY",
        State::Operational => "OPERATIONAL",
        State::Left => "LEFT",
    }
}
