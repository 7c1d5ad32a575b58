//! Ending an operation: history, the requester, every handle, the peers, and
//! the duplicates merged into it.

use super::*;

impl Fencer {
    pub(super) fn succeed(&mut self, now: Time, id: OpId) {
        self.finish(now, id, Ok(Delegate::Node(self.cfg.local)));
    }

    pub(super) fn fail(&mut self, now: Time, id: OpId, reason: String, timed_out: bool) {
        self.finish(now, id, Err(FenceFailure { reason, timed_out }));
    }

    /// Ends a local operation (and the duplicates merged into it).
    pub(super) fn finish(&mut self, now: Time, id: OpId, result: Result<Delegate, FenceFailure>) {
        let Some(op) = self.ops.remove(&id) else {
            return;
        };
        // Queued calls are dropped; running ones finish on their own (their slot
        // stays taken until then) and are then ignored.
        let mine: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.op == Some(id))
            .map(|(c, _)| *c)
            .collect();
        for cid in mine {
            let queued = self.calls.get(&cid).is_some_and(|c| c.guard.is_none());
            if queued {
                if let Some(c) = self.calls.remove(&cid)
                    && let Some(q) = self.queues.get_mut(&c.device)
                {
                    q.retain(|x| *x != cid);
                }
            } else if let Some(c) = self.calls.get_mut(&cid) {
                c.op = None;
            }
        }
        let (state, delegate, reason) = match &result {
            Ok(d) => (OpState::Done, Some(*d), None),
            Err(f) => (OpState::Failed, None, Some(f.reason.clone())),
        };
        let entry = HistoryEntry {
            id,
            target: op.req.target.clone(),
            action: op.req.action,
            origin: self.cfg.local,
            delegate,
            client: op.req.client.clone(),
            state,
            completed: Some(now),
            exit_reason: reason,
            target_joined: op.req.target_joined,
        };
        self.publish(entry);
        self.out
            .push_back(FencerOutput::Event(FenceEvent::RequestDone {
                op: id,
                client: op.req.client,
                call: op.req.call,
                result: result.clone(),
            }));
        self.finish_duplicates_of(now, id, &result);
    }

    pub(super) fn finish_duplicates_of(
        &mut self,
        now: Time,
        orig: OpId,
        result: &Result<Delegate, FenceFailure>,
    ) {
        let dups: Vec<OpId> = self
            .ops
            .values()
            .filter(|o| matches!(o.kind, OpKind::Duplicate(of) if of == orig))
            .map(|o| o.id)
            .collect();
        for d in dups {
            self.finish(now, d, result.clone());
        }
    }

    /// Records a final entry, notifies the handles and tells the peers.
    pub(super) fn publish(&mut self, entry: HistoryEntry) {
        self.history.record(entry.clone());
        let ev = match entry.state {
            OpState::Done => FenceEvent::Fenced(entry.clone()),
            _ => FenceEvent::FenceFailed(entry.clone()),
        };
        self.out.push_back(FencerOutput::Event(ev));
        self.out
            .push_back(FencerOutput::Broadcast(PeerMessage::Result(entry)));
    }
}
