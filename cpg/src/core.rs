//! The [`Cpg`] core: state, application requests and queries. Totem inputs are in
//! `deliver.rs`, the state exchange in `sync.rs`.

use crate::config::CpgConfig;
use crate::error::CpgError;
use crate::locals::{LocalState, Locals};
use crate::send_queue::SendQueue;
use crate::stats::CpgStats;
use crate::sync::{Buffered, SyncWindow};
use crate::types::{CpgEvent, GroupName, MemberId, Reason};
use crate::wire::{self, Control};
use bytes::Bytes;
use phalanx_totem::{Guarantee, NodeId, RingId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Group membership as applied: what the application has been told.
#[derive(Debug, Default, Clone)]
pub(crate) struct Applied {
    /// Non-empty groups and their members.
    pub groups: BTreeMap<GroupName, BTreeSet<MemberId>>,
    /// Nodes of the last completed exchange, with their incarnations.
    pub nodes: BTreeMap<NodeId, u64>,
}

/// The closed-process-group core of one node. See the crate docs for the run loop.
#[derive(Debug)]
pub struct Cpg {
    pub(crate) me: NodeId,
    pub(crate) cfg: CpgConfig,
    pub(crate) applied: Applied,
    pub(crate) locals: Locals,
    /// This node's members as its own delivered JOIN/LEAVE/PROCDOWN messages say,
    /// including ones delivered during an exchange and not yet applied: what this
    /// node announces in its JOINLIST.
    pub(crate) own: BTreeMap<GroupName, BTreeSet<u32>>,
    /// Own members removed by own messages delivered during exchanges since the last
    /// completed one, with the reason (announced so the others report it).
    pub(crate) own_departures: Vec<(GroupName, u32, Reason)>,
    /// Own members whose LEAVE or PROCDOWN has been delivered but whose local entry
    /// is not yet removed (it is removed when that message is applied, or at the end
    /// of an exchange that superseded it).
    pub(crate) finished: BTreeSet<(u32, GroupName)>,
    /// The exchange in progress, if any.
    pub(crate) sync: Option<SyncWindow>,
    /// Group messages delivered during interrupted exchanges, in order.
    pub(crate) stale: Vec<Buffered>,
    /// The ring totem is delivering on (None before the first regular config).
    pub(crate) ring: Option<RingId>,
    pub(crate) next_control_seq: u64,
    pub(crate) send: SendQueue,
    pub(crate) events: VecDeque<CpgEvent>,
    /// Local recipients per group, rebuilt when the group or a local state changes.
    pub(crate) recipients: BTreeMap<GroupName, Arc<[u32]>>,
    pub(crate) stats: CpgStats,
}

impl Cpg {
    /// A core for node `node` (non-zero, totem's id for this node).
    pub fn new(node: NodeId, cfg: CpgConfig) -> Self {
        let send = SendQueue::new(cfg.send_queue_bytes, cfg.send_queue_messages);
        Self {
            me: node,
            cfg,
            applied: Applied::default(),
            locals: Locals::default(),
            own: BTreeMap::new(),
            own_departures: Vec::new(),
            finished: BTreeSet::new(),
            sync: None,
            stale: Vec::new(),
            ring: None,
            next_control_seq: 0,
            send,
            events: VecDeque::new(),
            recipients: BTreeMap::new(),
            stats: CpgStats::default(),
        }
    }

    /// This node's id.
    pub fn local_node(&self) -> NodeId {
        self.me
    }

    /// The configuration in force.
    pub fn config(&self) -> &CpgConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &CpgStats {
        &self.stats
    }

    /// Asks for `local` to join `group`. Completes when the ordered JOIN is applied:
    /// `local` then receives a [`GroupChange`](crate::GroupChange) whose members
    /// include it. Errors: `NameTooLong`, `Exist` (joined or joining), `Busy`
    /// (leaving, or down and not yet removed), `TryAgain`.
    pub fn join(&mut self, local: u32, group: &[u8]) -> Result<(), CpgError> {
        let name = GroupName::new(group)?;
        match self.locals.get(local, group) {
            Some(LocalState::Joining | LocalState::Joined) => return Err(CpgError::Exist),
            Some(LocalState::Leaving | LocalState::Down) => return Err(CpgError::Busy),
            None => {}
        }
        // The JOINLIST carries every membership and, at worst, as many departures;
        // it must fit in one message or no exchange could complete.
        let per_entry = 2 * (4 + 2 + crate::types::MAX_GROUP_NAME);
        if (self.locals.count() + 1) * per_entry + 64 > self.cfg.max_message_size {
            return Err(CpgError::NoResources);
        }
        self.queue_control(Control::Join, local, &name, true)?;
        self.locals.set(local, name, LocalState::Joining);
        Ok(())
    }

    /// Asks for `local` to leave `group`. Completes when the ordered LEAVE is applied
    /// (`local` receives the change that removes it, then nothing more from the
    /// group). Errors: `NameTooLong`, `NotExist`, `Busy` (join or leave in flight),
    /// `TryAgain`.
    pub fn leave(&mut self, local: u32, group: &[u8]) -> Result<(), CpgError> {
        let name = GroupName::new(group)?;
        match self.locals.get(local, group) {
            None | Some(LocalState::Down) => return Err(CpgError::NotExist),
            Some(LocalState::Joining | LocalState::Leaving) => return Err(CpgError::Busy),
            Some(LocalState::Joined) => {}
        }
        self.queue_control(Control::Leave, local, &name, true)?;
        self.locals.set(local, name, LocalState::Leaving);
        Ok(())
    }

    /// The handle of `local` went away without leaving: every group it is in (or
    /// joining) gets an ordered PROCDOWN, and `local` receives nothing more. Never
    /// refused (the queue bound is not applied: the handle is already gone).
    pub fn member_down(&mut self, local: u32) {
        for (group, state) in self.locals.groups_of(local) {
            match state {
                LocalState::Joining | LocalState::Joined => {
                    // Cannot fail: the bound is not applied to PROCDOWN.
                    let _ = self.queue_control(Control::ProcDown, local, &group, false);
                }
                // Its LEAVE is already ordered and removes it; a down member only
                // needs its events stopped.
                LocalState::Leaving | LocalState::Down => {}
            }
            self.recipients.remove(&group);
            self.locals.set(local, group, LocalState::Down);
        }
    }

    /// Multicasts `data` to `group` from `local`, which must be joined or joining.
    /// Every member of the group receives it in the group's total order, the sender
    /// included. Errors: `NotExist`, `TooLarge`, `TryAgain`.
    pub fn mcast(
        &mut self,
        local: u32,
        group: &[u8],
        guarantee: Guarantee,
        data: &[u8],
    ) -> Result<(), CpgError> {
        match self.locals.get(local, group) {
            Some(LocalState::Joining | LocalState::Joined) => {}
            _ => return Err(CpgError::NotExist),
        }
        if data.len() > self.cfg.max_message_size {
            return Err(CpgError::TooLarge {
                size: data.len(),
                max: self.cfg.max_message_size,
            });
        }
        if !self.send.admits(wire::MAX_HEADER + data.len()) {
            self.stats.try_again += 1;
            return Err(CpgError::TryAgain);
        }
        let encoded = wire::encode_mcast(self.cfg.wire_prefix, local, group, data);
        self.send.push(guarantee, encoded.into());
        self.stats.mcasts_sent += 1;
        Ok(())
    }

    /// [`Cpg::mcast`] of a message the caller already encoded with
    /// [`wire::encode_mcast`] (this core's `wire_prefix`, `local` as sender), so a
    /// handle on another thread copies the payload once, into its final buffer.
    /// Same checks and errors as `mcast`; a message that is not such an encoding is
    /// refused with `NotExist`.
    pub fn mcast_encoded(
        &mut self,
        local: u32,
        guarantee: Guarantee,
        encoded: impl Into<Bytes>,
    ) -> Result<(), CpgError> {
        let encoded: Bytes = encoded.into();
        let Some(group) = wire::mcast_group(self.cfg.wire_prefix, &encoded) else {
            return Err(CpgError::NotExist);
        };
        match self.locals.get(local, group) {
            Some(LocalState::Joining | LocalState::Joined) => {}
            _ => return Err(CpgError::NotExist),
        }
        let header = usize::from(self.cfg.wire_prefix.is_some()) + 7 + group.len();
        let payload = encoded.len() - header;
        if payload > self.cfg.max_message_size {
            return Err(CpgError::TooLarge {
                size: payload,
                max: self.cfg.max_message_size,
            });
        }
        if !self.send.admits(wire::MAX_HEADER + payload) {
            self.stats.try_again += 1;
            return Err(CpgError::TryAgain);
        }
        self.send.push(guarantee, encoded);
        self.stats.mcasts_sent += 1;
        Ok(())
    }

    fn queue_control(
        &mut self,
        kind: Control,
        local: u32,
        group: &GroupName,
        bounded: bool,
    ) -> Result<(), CpgError> {
        let encoded = wire::encode_control(
            self.cfg.wire_prefix,
            kind,
            local,
            self.next_control_seq,
            group.as_bytes(),
        );
        if bounded && !self.send.admits(encoded.len()) {
            self.stats.try_again += 1;
            return Err(CpgError::TryAgain);
        }
        self.next_control_seq += 1;
        self.send.push(Guarantee::Agreed, encoded.into());
        Ok(())
    }

    /// Bytes of application messages that can be queued now (0 when full): a driver
    /// can offer "wait for room" instead of making applications retry `TryAgain`.
    pub fn send_room(&self) -> usize {
        self.send.room()
    }

    /// Bytes and messages in the send queue (application messages and controls,
    /// not the state announcement): what a driver mirrors to let handles answer
    /// `TryAgain` exactly when this core would.
    pub fn send_queue_usage(&self) -> (usize, usize) {
        self.send.usage()
    }

    /// Whether application messages are held: before the first state exchange
    /// completes and during every exchange.
    fn holding(&self) -> bool {
        self.sync.is_some() || self.ring.is_none()
    }

    /// Length of the next message [`poll_send`](Self::poll_send) would return, so a
    /// composition can check totem's room first (totem drops a refused owned
    /// message).
    pub fn next_send_len(&self) -> Option<usize> {
        self.send.next_len(self.holding())
    }

    /// The next encoded message for totem (agreed or safe), if one may go now.
    pub fn poll_send(&mut self) -> Option<(Guarantee, Bytes)> {
        let hold = self.holding();
        self.send.pop(hold)
    }

    /// The next event for applications.
    pub fn poll_event(&mut self) -> Option<CpgEvent> {
        self.events.pop_front()
    }

    /// Members of `group` as applied (what local members have been told), ascending.
    pub fn membership(&self, group: &[u8]) -> Vec<MemberId> {
        self.applied
            .groups
            .get(group)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every non-empty group cluster-wide and its members, by name.
    pub fn groups(&self) -> impl Iterator<Item = (&GroupName, &BTreeSet<MemberId>)> {
        self.applied.groups.iter()
    }

    /// The incarnation ([`CpgConfig::incarnation`]) `node` ran
    /// with at the last completed state exchange, if it took part: a service
    /// tells a node that restarted (another incarnation) from the same process
    /// coming back after a partition (the same one).
    pub fn node_incarnation(&self, node: NodeId) -> Option<u64> {
        self.applied.nodes.get(&node).copied()
    }

    /// Where `local` stands in `group`, if anywhere.
    pub fn local_state(&self, local: u32, group: &[u8]) -> Option<LocalState> {
        self.locals.get(local, group)
    }

    /// Whether a state exchange is in progress (or none has completed yet).
    pub fn is_syncing(&self) -> bool {
        self.holding()
    }

    /// Nothing queued, no exchange in progress, no event undelivered.
    pub fn is_quiescent(&self) -> bool {
        !self.holding() && self.send.is_empty() && self.events.is_empty()
    }

    /// The local members of `group` that receive its traffic now.
    pub(crate) fn recipients_of(&mut self, group: &GroupName) -> Arc<[u32]> {
        if let Some(r) = self.recipients.get(group) {
            return r.clone();
        }
        let r: Arc<[u32]> = self
            .local_members_of(group)
            .into_iter()
            .filter(|l| !self.locals.is_down(*l, group.as_bytes()))
            .collect();
        self.recipients.insert(group.clone(), r.clone());
        r
    }
}
