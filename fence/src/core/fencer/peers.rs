//! Other fencers: their started operations and results, history exchange, and
//! membership changes.

use super::*;

impl Fencer {
    pub(super) fn peer(&mut self, now: Time, from: NodeId, msg: PeerMessage) {
        if from == self.cfg.local {
            return; // our own broadcast coming back: already applied
        }
        match msg {
            PeerMessage::Started {
                id,
                target,
                action,
                client,
                total_timeout_s,
                target_joined,
            } => {
                if target.is_empty() || target.len() > MAX_NAME_LEN || client.len() > MAX_NAME_LEN {
                    return;
                }
                if self
                    .history
                    .get(&id)
                    .is_some_and(|e| e.state != OpState::Pending)
                {
                    return;
                }
                self.history.record(HistoryEntry {
                    id,
                    target: target.clone(),
                    action,
                    origin: id.origin,
                    delegate: None,
                    client: client.clone(),
                    state: OpState::Pending,
                    completed: None,
                    exit_reason: None,
                    target_joined,
                });
                if self.peer_ops.len() >= self.cfg.max_peer_ops
                    && let Some(oldest) = self
                        .peer_ops
                        .iter()
                        .min_by_key(|(id, p)| (p.created, **id))
                        .map(|(id, _)| *id)
                {
                    self.peer_ops.remove(&oldest);
                }
                self.peer_ops.insert(
                    id,
                    PeerOp {
                        target,
                        action,
                        client,
                        created: now,
                        total_timeout_s,
                        target_joined,
                    },
                );
            }
            PeerMessage::Result(entry) => self.peer_result(now, entry),
            PeerMessage::Execute {
                id,
                call,
                device,
                target,
                action,
                timeout_ms,
            } => {
                // Only the target runs it; every other member ignores it.
                if target.eq_ignore_ascii_case(&self.cfg.local_name) && id.origin == from {
                    self.execute_for_peer(now, id, call, device, action, timeout_ms);
                }
            }
            PeerMessage::Executed { id, call, outcome } => {
                if id.origin == self.cfg.local && id.incarnation == self.cfg.incarnation {
                    self.executed_by_peer(now, id, call, outcome);
                }
            }
            // For the Stack's fence decision, not the fencer.
            PeerMessage::Present { .. } => {}
            PeerMessage::History(entries) => {
                // A peer sends at most its own bounded history; anything beyond, or
                // malformed, is dropped rather than stored.
                let entries: Vec<HistoryEntry> = entries
                    .into_iter()
                    .filter(sane_entry)
                    .take(MAX_HISTORY)
                    .collect();
                let send = self
                    .history
                    .merge(entries, self.cfg.local, self.cfg.incarnation, now);
                for e in send {
                    self.out
                        .push_back(FencerOutput::Broadcast(PeerMessage::Result(e)));
                }
            }
        }
    }

    pub(super) fn peer_result(&mut self, now: Time, entry: HistoryEntry) {
        if entry.state == OpState::Pending || !sane_entry(&entry) {
            return;
        }
        self.peer_ops.remove(&entry.id);
        let already = self
            .history
            .get(&entry.id)
            .is_some_and(|e| e.state != OpState::Pending);
        self.history.record(entry.clone());
        if !already {
            let ev = match entry.state {
                OpState::Done => FenceEvent::Fenced(entry.clone()),
                _ => FenceEvent::FenceFailed(entry.clone()),
            };
            self.out.push_back(FencerOutput::Event(ev));
        }
        let result = match entry.state {
            OpState::Done => Ok(entry.delegate.unwrap_or(Delegate::Node(entry.origin))),
            _ => Err(FenceFailure {
                reason: entry.exit_reason.clone().unwrap_or_else(|| "failed".into()),
                timed_out: false,
            }),
        };
        self.finish_duplicates_of(now, entry.id, &result);
    }

    pub(super) fn membership(&mut self, now: Time, mut members: BTreeSet<NodeId>) {
        members.insert(self.cfg.local);
        let joined = members.difference(&self.members).next().is_some();
        self.members = members;
        let orphaned: Vec<OpId> = self
            .peer_ops
            .keys()
            .filter(|id| !self.members.contains(&id.origin))
            .copied()
            .collect();
        for id in orphaned {
            let Some(p) = self.peer_ops.remove(&id) else {
                continue;
            };
            let entry = HistoryEntry {
                id,
                target: p.target,
                action: p.action,
                origin: id.origin,
                delegate: None,
                client: p.client,
                state: OpState::Failed,
                completed: Some(now),
                exit_reason: Some("originator left the membership".into()),
                target_joined: p.target_joined,
            };
            // Every member sees the same membership change and does the same: no
            // broadcast needed.
            self.history.record(entry.clone());
            self.out
                .push_back(FencerOutput::Event(FenceEvent::FenceFailed(entry.clone())));
            self.finish_duplicates_of(
                now,
                id,
                &Err(FenceFailure {
                    reason: "originator left the membership".into(),
                    timed_out: false,
                }),
            );
        }
        if joined {
            let all: Vec<HistoryEntry> = self.history.entries().cloned().collect();
            self.out
                .push_back(FencerOutput::Broadcast(PeerMessage::History(all)));
        }
    }
}
