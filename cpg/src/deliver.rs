//! Inputs from totem: deliveries and configuration changes, and applying a message
//! to the group state.

use crate::core::Cpg;
use crate::locals::LocalState;
use crate::sync::Buffered;
use crate::types::{
    Change, CpgEvent, GroupDelivery, GroupName, MemberId, Reason, TotemMembership, ViewId,
};
use crate::wire::{self, Control, Message};
use bytes::Bytes;
use phalanx_totem::{ConfigChange, ConfigKind, Guarantee, NodeId, RingId};

impl Cpg {
    /// Totem delivered a CPG message from `sender` (the wire prefix, if configured,
    /// already stripped). Malformed input is counted and dropped.
    pub fn handle_deliver(&mut self, sender: NodeId, guarantee: Guarantee, data: Bytes) {
        let msg = match wire::decode(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if sender == self.me {
            if let Message::Control {
                kind, local, group, ..
            } = &msg
            {
                self.note_own_control(*kind, *local, group);
            }
        }
        let msg = match msg {
            Message::JoinList(list) => return self.record_joinlist(sender, list),
            other => other,
        };
        let Some(ring) = self.ring else {
            // Totem delivers nothing before its first regular configuration.
            self.stats.dropped_unknown_node += 1;
            return;
        };
        match self.sync.as_mut() {
            Some(w) => w.buffered.push(Buffered {
                sender,
                guarantee,
                ring,
                msg,
            }),
            None => self.apply(sender, guarantee, ring, msg),
        }
    }

    /// Totem installed a configuration.
    pub fn handle_config(&mut self, change: &ConfigChange) {
        match change.kind {
            ConfigKind::Transitional => {
                self.close_window();
                if self.cfg.deliver_transitional {
                    self.events.push_back(CpgEvent::Totem(TotemMembership {
                        kind: ConfigKind::Transitional,
                        ring: change.ring,
                        members: change.members.clone(),
                    }));
                }
            }
            ConfigKind::Regular => self.start_sync(change.ring, &change.members),
        }
    }

    /// This node's own JOIN/LEAVE/PROCDOWN was delivered: what it will announce in
    /// its next JOINLIST changes now, whether or not the message is applied yet.
    fn note_own_control(&mut self, kind: Control, local: u32, group: &GroupName) {
        match kind {
            Control::Join => {
                self.own.entry(group.clone()).or_default().insert(local);
            }
            Control::Leave | Control::ProcDown => {
                self.finished.insert((local, group.clone()));
                let removed = self.own.get_mut(group).is_some_and(|s| s.remove(&local));
                if self.own.get(group).is_some_and(|s| s.is_empty()) {
                    self.own.remove(group);
                }
                if removed && self.sync.is_some() {
                    let reason = if kind == Control::Leave {
                        Reason::Leave
                    } else {
                        Reason::ProcDown
                    };
                    self.own_departures.push((group.clone(), local, reason));
                }
            }
        }
    }

    /// Applies one message in total order (outside an exchange).
    pub(crate) fn apply(
        &mut self,
        sender: NodeId,
        guarantee: Guarantee,
        ring: RingId,
        msg: Message,
    ) {
        match msg {
            Message::Control {
                kind,
                local,
                seq,
                group,
            } => self.apply_control(sender, ring, kind, local, seq, group),
            Message::Mcast {
                local,
                group,
                payload,
            } => self.deliver_mcast(sender, guarantee, local, group, payload),
            Message::JoinList(_) => self.stats.stale_joinlists += 1,
        }
    }

    fn apply_control(
        &mut self,
        sender: NodeId,
        ring: RingId,
        kind: Control,
        local: u32,
        seq: u64,
        group: GroupName,
    ) {
        if !self.applied.nodes.contains_key(&sender) {
            self.stats.dropped_unknown_node += 1;
            return;
        }
        let member = MemberId {
            node: sender,
            local,
        };
        let view = ViewId::Message { ring, sender, seq };
        let before_locals: Vec<u32> = self.local_members_of(&group);
        let members = self.applied.groups.entry(group.clone()).or_default();
        let change = match kind {
            Control::Join => members.insert(member).then_some((
                Vec::new(),
                vec![Change {
                    member,
                    reason: Reason::Join,
                }],
            )),
            Control::Leave | Control::ProcDown => members.remove(&member).then(|| {
                let reason = if kind == Control::Leave {
                    Reason::Leave
                } else {
                    Reason::ProcDown
                };
                (vec![Change { member, reason }], Vec::new())
            }),
        };
        if members.is_empty() {
            self.applied.groups.remove(&group);
        }
        if let Some((left, joined)) = change {
            self.emit_change(group.clone(), view, before_locals, left, joined);
        }
        if sender == self.me {
            match (kind, self.locals.get(local, group.as_bytes())) {
                (Control::Join, Some(LocalState::Joining)) => {
                    self.locals.set(local, group, LocalState::Joined)
                }
                (
                    Control::Leave | Control::ProcDown,
                    Some(LocalState::Leaving | LocalState::Down),
                ) => {
                    self.finished.remove(&(local, group.clone()));
                    self.locals.remove(local, group.as_bytes());
                    self.recipients.remove(&group);
                }
                _ => {}
            }
        }
    }

    /// This node's applied members of `group` (down ones included: the caller filters).
    pub(crate) fn local_members_of(&self, group: &GroupName) -> Vec<u32> {
        let me = self.me;
        self.applied
            .groups
            .get(group)
            .map(|m| {
                m.range(
                    MemberId { node: me, local: 0 }..=MemberId {
                        node: me,
                        local: u32::MAX,
                    },
                )
                .map(|m| m.local)
                .collect()
            })
            .unwrap_or_default()
    }

    /// Delivers a group message to the group's local members, if its sender is a
    /// member (otherwise counted and dropped, as Corosync does).
    pub(crate) fn deliver_mcast(
        &mut self,
        sender: NodeId,
        guarantee: Guarantee,
        local: u32,
        group: GroupName,
        data: Bytes,
    ) {
        let member = MemberId {
            node: sender,
            local,
        };
        if !self
            .applied
            .groups
            .get(&group)
            .is_some_and(|m| m.contains(&member))
        {
            self.stats.dropped_not_member += 1;
            return;
        }
        let recipients = self.recipients_of(&group);
        if recipients.is_empty() {
            return;
        }
        self.events.push_back(CpgEvent::Deliver(GroupDelivery {
            group,
            sender: member,
            guarantee,
            data,
            recipients,
        }));
    }
}
