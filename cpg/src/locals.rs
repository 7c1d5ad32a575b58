//! This node's members and where each stands in each group (the per-connection
//! state machine of Corosync's exec side, keyed by (local id, group)).

use crate::types::GroupName;
use std::collections::BTreeMap;

/// Where a local member stands in one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalState {
    /// JOIN requested, not yet applied. May multicast.
    Joining,
    /// JOIN applied: the member has seen a view that contains it.
    Joined,
    /// LEAVE requested, not yet applied. Still receives the group's traffic.
    Leaving,
    /// The handle went away ([`crate::Cpg::member_down`]); its removal is not yet
    /// applied. Receives nothing.
    Down,
}

/// Local members by local id, then group.
#[derive(Debug, Default)]
pub(crate) struct Locals {
    map: BTreeMap<u32, BTreeMap<GroupName, LocalState>>,
}

impl Locals {
    pub fn get(&self, local: u32, group: &[u8]) -> Option<LocalState> {
        self.map.get(&local)?.get(group).copied()
    }

    pub fn set(&mut self, local: u32, group: GroupName, state: LocalState) {
        self.map.entry(local).or_default().insert(group, state);
    }

    pub fn remove(&mut self, local: u32, group: &[u8]) {
        if let Some(groups) = self.map.get_mut(&local) {
            groups.remove(group);
            if groups.is_empty() {
                self.map.remove(&local);
            }
        }
    }

    /// Groups of `local` and its state in each.
    pub fn groups_of(&self, local: u32) -> Vec<(GroupName, LocalState)> {
        self.map
            .get(&local)
            .map(|g| g.iter().map(|(n, s)| (n.clone(), *s)).collect())
            .unwrap_or_default()
    }

    /// Memberships in any state.
    pub fn count(&self) -> usize {
        self.map.values().map(|g| g.len()).sum()
    }

    pub fn is_down(&self, local: u32, group: &[u8]) -> bool {
        self.get(local, group) == Some(LocalState::Down)
    }

    /// Every (local, group, state), for the pass at the end of a state exchange.
    pub fn all(&self) -> Vec<(u32, GroupName, LocalState)> {
        self.map
            .iter()
            .flat_map(|(l, g)| g.iter().map(move |(n, s)| (*l, n.clone(), *s)))
            .collect()
    }
}
