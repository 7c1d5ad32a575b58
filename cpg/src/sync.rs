//! The state exchange after every regular configuration.
//!
//! On a regular configuration for ring R every node announces its own members
//! (JOINLIST). Until a JOINLIST from every member of R has been delivered, group
//! messages are buffered, not applied, and the application's sends are held. At
//! completion the state is rebuilt from the JOINLISTs alone — every member of R has
//! delivered the same lists, so every member computes the same state — the
//! difference with the previous state is reported, and the buffered messages are
//! applied in total order. See `docs/cpg.md` for why each step is there.

use crate::core::{Applied, Cpg};
use crate::locals::LocalState;
use crate::types::TotemMembership;
use crate::types::{Change, CpgEvent, GroupChange, GroupName, MemberId, Reason, ViewId};
use crate::wire::{JoinList, Message};
use phalanx_totem::{ConfigKind, Guarantee, NodeId, RingId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A message delivered during an exchange, kept for later.
#[derive(Clone, Debug)]
pub(crate) struct Buffered {
    pub sender: NodeId,
    pub guarantee: Guarantee,
    /// The ring it was ordered on (names the views it causes).
    pub ring: RingId,
    pub msg: Message,
}

/// An exchange in progress on one ring.
#[derive(Debug)]
pub(crate) struct SyncWindow {
    /// The ring whose exchange this is; `None` once a transitional configuration
    /// was delivered: the exchange can no longer complete (see `close`).
    pub ring: Option<RingId>,
    /// Members of the ring, ascending.
    pub members: Vec<NodeId>,
    pub lists: BTreeMap<NodeId, JoinList>,
    /// Everything else delivered since the ring's regular configuration.
    pub buffered: Vec<Buffered>,
}

impl SyncWindow {
    /// A window that collects messages until the next regular configuration.
    pub fn closed() -> Self {
        Self {
            ring: None,
            members: Vec::new(),
            lists: BTreeMap::new(),
            buffered: Vec::new(),
        }
    }

    fn complete(&self) -> bool {
        self.members.iter().all(|n| self.lists.contains_key(n))
    }
}

impl Cpg {
    /// A regular configuration: start an exchange on it, keeping the group messages
    /// of an interrupted one.
    pub(crate) fn start_sync(&mut self, ring: RingId, members: &[NodeId]) {
        if let Some(old) = self.sync.take() {
            if !old.lists.is_empty() || old.ring.is_some() {
                self.stats.syncs_interrupted += 1;
            }
            // Membership messages of the interrupted window are superseded by the
            // JOINLISTs (each sender's includes the effect of its own); group
            // messages still have to be delivered.
            self.stale.extend(
                old.buffered
                    .into_iter()
                    .filter(|b| matches!(b.msg, Message::Mcast { .. })),
            );
        }
        self.ring = Some(ring);
        let list = JoinList {
            ring,
            incarnation: self.cfg.incarnation,
            members: self
                .own
                .iter()
                .flat_map(|(g, ls)| ls.iter().map(move |l| (g.clone(), *l)))
                .collect(),
            departures: self.own_departures.clone(),
        };
        self.send
            .set_joinlist(crate::wire::encode_joinlist(self.cfg.wire_prefix, &list));
        self.sync = Some(SyncWindow {
            ring: Some(ring),
            members: members.to_vec(),
            lists: BTreeMap::new(),
            buffered: Vec::new(),
        });
    }

    /// A transitional configuration: the old ring's remaining messages follow, and
    /// members in different transitional configurations may deliver different
    /// subsets of them (a message after a gap). Applying them would let views with
    /// the same id differ between nodes, so from here until the next regular
    /// configuration everything is buffered, as in an interrupted exchange: their
    /// membership effects reach the others through the next JOINLISTs, their group
    /// messages are delivered when that exchange completes.
    pub(crate) fn close_window(&mut self) {
        match self.sync.as_mut() {
            Some(w) => w.ring = None,
            None => self.sync = Some(SyncWindow::closed()),
        }
    }

    /// A JOINLIST was delivered during the window; completes the exchange if it was
    /// the last one missing.
    pub(crate) fn record_joinlist(&mut self, sender: NodeId, list: JoinList) {
        let Some(w) = self.sync.as_mut() else {
            self.stats.stale_joinlists += 1;
            return;
        };
        if w.ring != Some(list.ring)
            || !w.members.contains(&sender)
            || w.lists.contains_key(&sender)
        {
            self.stats.stale_joinlists += 1;
            return;
        }
        w.lists.insert(sender, list);
        if w.complete() {
            self.complete_sync();
        }
    }

    fn complete_sync(&mut self) {
        let Some(w) = self.sync.take() else { return };
        let Some(ring) = w.ring else { return };
        self.stats.syncs_completed += 1;
        // 1. Group messages of interrupted windows, in the views they were sent in
        //    (before this exchange's changes; see docs/cpg.md).
        for b in std::mem::take(&mut self.stale) {
            if let Message::Mcast {
                local,
                group,
                payload,
            } = b.msg
            {
                self.deliver_mcast(b.sender, b.guarantee, local, group, payload);
            }
        }
        // 2. The new state, from the JOINLISTs alone.
        let mut next = Applied::default();
        let mut departures: BTreeMap<(GroupName, MemberId), Reason> = BTreeMap::new();
        for (node, list) in &w.lists {
            next.nodes.insert(*node, list.incarnation);
            for (g, local) in &list.members {
                next.groups.entry(g.clone()).or_default().insert(MemberId {
                    node: *node,
                    local: *local,
                });
            }
            for (g, local, reason) in &list.departures {
                let m = MemberId {
                    node: *node,
                    local: *local,
                };
                departures.insert((g.clone(), m), *reason);
            }
        }
        // 3. Report the differences, group by group.
        let prev = std::mem::replace(&mut self.applied, next);
        let names: BTreeSet<GroupName> = prev
            .groups
            .keys()
            .chain(self.applied.groups.keys())
            .cloned()
            .collect();
        let empty = BTreeSet::new();
        // A node whose incarnation changed restarted: all its old members went down
        // and all its new ones came up, even if the ids coincide.
        let same_run = |n: NodeId, prev: &Applied, next: &Applied| {
            prev.nodes.contains_key(&n) && prev.nodes.get(&n) == next.nodes.get(&n)
        };
        for g in names {
            let before = prev.groups.get(&g).unwrap_or(&empty);
            let after = self.applied.groups.get(&g).unwrap_or(&empty);
            let mut left = Vec::new();
            let mut joined = Vec::new();
            for m in before {
                let continuing = same_run(m.node, &prev, &self.applied);
                if !continuing {
                    left.push(Change {
                        member: *m,
                        reason: Reason::NodeDown,
                    });
                } else if !after.contains(m) {
                    let reason = departures
                        .get(&(g.clone(), *m))
                        .copied()
                        .unwrap_or(Reason::Leave);
                    left.push(Change { member: *m, reason });
                }
            }
            for m in after {
                if !same_run(m.node, &prev, &self.applied) {
                    joined.push(Change {
                        member: *m,
                        reason: Reason::NodeUp,
                    });
                } else if !before.contains(m) {
                    joined.push(Change {
                        member: *m,
                        reason: Reason::Join,
                    });
                }
            }
            if left.is_empty() && joined.is_empty() {
                continue;
            }
            let before_locals: Vec<u32> = before
                .iter()
                .filter(|m| m.node == self.me)
                .map(|m| m.local)
                .collect();
            self.emit_change(g, ViewId::Sync(ring), before_locals, left, joined);
        }
        // 4. Local members follow the new state, except those whose own JOIN, LEAVE
        //    or PROCDOWN is still to be applied from this window (a dropped member
        //    must stay down until its PROCDOWN is applied, or it would receive).
        let pending: BTreeSet<(u32, &GroupName)> = w
            .buffered
            .iter()
            .filter(|b| b.sender == self.me)
            .filter_map(|b| match &b.msg {
                Message::Control { local, group, .. } => Some((*local, group)),
                _ => None,
            })
            .collect();
        for (local, g, state) in self.locals.all() {
            if pending.contains(&(local, &g)) {
                continue;
            }
            let present = self.applied.groups.get(&g).is_some_and(|m| {
                m.contains(&MemberId {
                    node: self.me,
                    local,
                })
            });
            // Removed only once its LEAVE / PROCDOWN was delivered: before that it
            // may still be in the send queue, or its JOIN may be yet to come.
            let finished = self.finished.contains(&(local, g.clone()));
            match (state, present) {
                (LocalState::Joining, true) => self.locals.set(local, g, LocalState::Joined),
                (LocalState::Leaving | LocalState::Down, false) if finished => {
                    self.finished.remove(&(local, g.clone()));
                    self.locals.remove(local, g.as_bytes())
                }
                _ => {}
            }
        }
        self.recipients.clear();
        self.own_departures.clear();
        self.events.push_back(CpgEvent::Totem(TotemMembership {
            kind: ConfigKind::Regular,
            ring,
            members: w.members.clone(),
        }));
        // 5. The window's messages, in total order.
        for b in w.buffered {
            self.apply(b.sender, b.guarantee, b.ring, b.msg);
        }
    }

    /// Emits a view change of `group` (already applied to `self.applied`).
    /// `before_locals`: this node's members before the change.
    pub(crate) fn emit_change(
        &mut self,
        group: GroupName,
        view: ViewId,
        before_locals: Vec<u32>,
        left: Vec<Change>,
        joined: Vec<Change>,
    ) {
        self.recipients.remove(&group);
        let members: Vec<MemberId> = self
            .applied
            .groups
            .get(&group)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        // Before or after, not down, and not the subject of its own PROCDOWN.
        let mut recipients: Vec<u32> = before_locals
            .into_iter()
            .chain(
                members
                    .iter()
                    .filter(|m| m.node == self.me)
                    .map(|m| m.local),
            )
            .filter(|l| !self.locals.is_down(*l, group.as_bytes()))
            .filter(|l| {
                !left.iter().any(|c| {
                    c.reason == Reason::ProcDown
                        && c.member
                            == MemberId {
                                node: self.me,
                                local: *l,
                            }
                })
            })
            .collect();
        recipients.sort_unstable();
        recipients.dedup();
        self.events
            .push_back(CpgEvent::Change(Box::new(GroupChange {
                group,
                view,
                members,
                left,
                joined,
                recipients: Arc::from(recipients),
            })));
    }
}
