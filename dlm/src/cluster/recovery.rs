//! Recovery of a lockspace after a change of its members (§3.7).
//!
//! ```text
//! Members(epoch e)   stop: calls park, peers' requests are held, lookups forgotten
//!   │ wait until every failed node is Fenced            (AwaitFence)
//!   ▼ purge the departed nodes' locks from the masters here (LVB invalid where a
//!     PW/EX holder died, PERSISTENT ones kept as orphans); resolve this node's
//!     calls that were at a departed master
//!   round 1: RecoverNames(e) to every member          (Names)
//!   ▼ all names in: every surviving master is known
//!   round 2: RecoverLocks(e): each lock whose master departed, to the resource's
//!     surviving master if any, else to its directory node, which becomes master
//!   ▼ all locks in                                    (Locks)
//!   finish: rebuild the directory share, install the recovered locks and value
//!     blocks, resume: replay held requests, send parked calls
//! ```
//!
//! A newer `Members` during recovery restarts it at the fence wait; departed nodes
//! accumulate until a recovery completes. Installing a recovered lock is idempotent
//! (a master skips a holder's lock it already has), so a restart after some nodes
//! finished the older epoch cannot duplicate a lock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::Conversion;
use crate::lock::Owner;
use crate::mode::Mode;
use crate::output::{SbFlags, Status};

use super::directory::directory_node;
use super::lockspace_state::{LsState, Phase};
use super::node::Output;
use super::process::{ExtraOp, MainOp};
use super::wire::{Msg, NodeId, RecoveredLock};

impl LsState {
    /// A new agreed member set (this node among them).
    pub(crate) fn members(
        &mut self,
        epoch: u64,
        members: Vec<NodeId>,
        failed: Vec<NodeId>,
        out: &mut VecDeque<Output>,
    ) {
        if epoch <= self.epoch {
            return;
        }
        let departed: Vec<NodeId> = self
            .members
            .iter()
            .copied()
            .filter(|n| !members.contains(n))
            .collect();
        // What a departed incarnation asked and this node still holds must not
        // create locks for it (a later incarnation asks again).
        self.held.retain(|(from, _)| !departed.contains(from));
        self.lost.extend(departed);
        // Every failed node not known fenced — also those that failed before this
        // node joined: a newcomer must not grant what they may still hold.
        for &node in &failed {
            if !members.contains(&node) && self.awaiting_fence.insert(node) {
                out.push_back(Output::AwaitFencing { node });
            }
        }
        self.epoch = epoch;
        self.members = members;
        self.phase = Phase::AwaitFence;
        self.names_from.clear();
        self.locks_from.clear();
        self.all_masters.clear();
        // Lookups were made against the old directory: they are asked again.
        self.lookups.clear();
        // Cached masters that departed — even if they rejoined since: a new
        // incarnation has none of the old one's resources.
        let lost = &self.lost;
        self.masters.retain(|_, m| !lost.contains(m));
        let future = std::mem::take(&mut self.future);
        for (from, msg) in future {
            self.recovery_message(from, msg, out);
        }
        self.advance(out);
    }

    /// `node` is fenced since it was lost.
    pub(crate) fn fenced(&mut self, node: NodeId, out: &mut VecDeque<Output>) {
        if self.awaiting_fence.remove(&node) {
            self.advance(out);
        }
    }

    pub(crate) fn recovery_message(&mut self, from: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        let epoch = match &msg {
            Msg::RecoverNames { epoch, .. } | Msg::RecoverLocks { epoch, .. } => *epoch,
            _ => return,
        };
        if epoch > self.epoch {
            if self.future.len() < self.max_early {
                self.future.push((from, msg));
            }
            return;
        }
        if epoch < self.epoch || !self.members.contains(&from) {
            return;
        }
        match msg {
            Msg::RecoverNames { names, .. } => {
                self.names_from.insert(from, names);
            }
            Msg::RecoverLocks { locks, .. } => {
                self.locks_from.insert(from, locks);
            }
            _ => return,
        }
        self.advance(out);
    }

    fn all_in<T>(&self, got: &BTreeMap<NodeId, T>) -> bool {
        self.members.iter().all(|m| got.contains_key(m))
    }

    /// Moves recovery on as far as the inputs allow.
    fn advance(&mut self, out: &mut VecDeque<Output>) {
        loop {
            match self.phase {
                Phase::Running => return,
                Phase::AwaitFence => {
                    if !self.awaiting_fence.is_empty() {
                        return;
                    }
                    self.purge_lost(out);
                    let mut names: Vec<Vec<u8>> = self.mastered.iter().cloned().collect();
                    names.sort();
                    let msg = Msg::RecoverNames {
                        lockspace: self.id,
                        epoch: self.epoch,
                        names: names.clone(),
                    };
                    for &to in &self.members {
                        if to != self.me {
                            self.send(to, &msg, out);
                        }
                    }
                    self.names_from.insert(self.me, names);
                    self.phase = Phase::Names;
                }
                Phase::Names => {
                    if !self.all_in(&self.names_from) {
                        return;
                    }
                    self.all_masters = self
                        .names_from
                        .iter()
                        .flat_map(|(node, names)| names.iter().map(move |n| (n.clone(), *node)))
                        .collect();
                    self.resolve_calls_at_departed_masters(out);
                    self.send_recovered_locks(out);
                    self.phase = Phase::Locks;
                }
                Phase::Locks => {
                    if !self.all_in(&self.locks_from) {
                        return;
                    }
                    self.finish(out);
                    return;
                }
            }
        }
    }

    /// Purges the departed nodes' locks from the resources mastered here. Only
    /// reached once every failed node is fenced: this is where the waiters their
    /// locks blocked are granted.
    fn purge_lost(&mut self, out: &mut VecDeque<Output>) {
        let lost = self.lost.clone();
        let mut owners = BTreeSet::new();
        let mut invalid = Vec::new();
        for view in self.engine.resources() {
            for lock in view
                .granted
                .iter()
                .chain(&view.converting)
                .chain(&view.waiting)
            {
                if lock.orphan || !lost.contains(&lock.owner.node) {
                    continue;
                }
                owners.insert(lock.owner);
                if matches!(lock.granted, Some(Mode::Pw | Mode::Ex)) {
                    invalid.push(view.name.as_bytes().to_vec());
                }
            }
        }
        for name in invalid {
            self.engine.invalidate_lvb(&name);
        }
        self.holders.retain(|_, (node, _)| !lost.contains(node));
        self.by_holder.retain(|(node, _), _| !lost.contains(node));
        for owner in owners {
            loop {
                let report = self.engine.purge_owner(owner);
                self.drain_engine(out);
                if report.complete {
                    break;
                }
            }
        }
    }

    /// This node's locks whose master departed — or does not list the resource
    /// any more (it rejoined as a new incarnation, or never finished the recovery
    /// that made it master) — go to a new master, and their calls (§3.7 step 4):
    /// unlocks and cancels
    /// complete here; a conversion keeps the mode it may rely on — the granted one
    /// for an up-conversion, the new one for a down-conversion (completed here), CR
    /// for PR↔CW — and is sent again after recovery; a new request is sent again.
    fn resolve_calls_at_departed_masters(&mut self, out: &mut VecDeque<Output>) {
        let ids: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| {
                l.master.is_some_and(|m| {
                    self.lost.contains(&m)
                        || (l.granted.is_some() && self.all_masters.get(&l.name) != Some(&m))
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(lock) = self.locks.get_mut(&id) else {
                continue;
            };
            lock.master = None;
            if matches!(lock.main, None | Some((_, false)))
                && matches!(lock.extra, None | Some((_, false)))
            {
                // Nothing of it reached the departed master: the lock is reported to
                // the new master as it is and the calls are sent there afterwards.
                lock.remaster = lock.granted.is_some();
                continue;
            }
            let extra = lock.extra.take();
            let main = lock.main.take();
            match (main, extra) {
                (_, Some((ExtraOp::ForceUnlock { flags, .. }, _)))
                | (Some((MainOp::Unlock { flags, .. }, _)), _) => {
                    // A value it wrote from PW/EX may be lost with the master: the
                    // completion says so (VALNOTVALID on an unlock completion means
                    // "the value written may not have been kept").
                    let wrote = matches!(lock.granted, Some(Mode::Pw | Mode::Ex))
                        && flags.contains(crate::LockFlags::VALBLK);
                    let sb = SbFlags {
                        valnotvalid: wrote,
                        ..SbFlags::default()
                    };
                    self.finish_locally(id, Status::Unlocked, sb, out);
                    continue;
                }
                (Some((MainOp::Request { .. }, _)), Some((ExtraOp::Cancel, _))) => {
                    self.finish_locally(id, Status::Cancelled, SbFlags::default(), out);
                    continue;
                }
                (Some((MainOp::Request { mode, flags, lvb }, _)), None) => {
                    lock.main = Some((MainOp::Request { mode, flags, lvb }, false));
                }
                (Some((MainOp::Convert { mode, flags, lvb }, _)), cancel) => {
                    let Some(held) = lock.granted else { continue };
                    let kind = held.conversion_to(mode);
                    // With CONVDEADLK the lost master may have demoted it to NL (and
                    // granted others on that basis): only NL is safe to report.
                    let demotable = flags.contains(crate::LockFlags::CONVDEADLK)
                        && !matches!(kind, Conversion::Down | Conversion::Same);
                    let base = match kind {
                        _ if demotable => Mode::Nl,
                        Conversion::Up => held,
                        Conversion::Middle => Mode::Cr,
                        Conversion::Down | Conversion::Same => mode,
                    };
                    lock.granted = Some(base);
                    lock.remaster = true;
                    if cancel.is_some() {
                        self.cancel_locally(id, base != held, out);
                    } else if matches!(kind, Conversion::Down | Conversion::Same) {
                        // Only gave rights away: done. A value it wrote from PW/EX may
                        // be lost with the master, so its copy no longer vouches for
                        // the block (the new master will mark it not valid).
                        let wrote = matches!(held, Mode::Pw | Mode::Ex)
                            && flags.contains(crate::LockFlags::VALBLK);
                        if wrote {
                            lock.lvb_valid = false;
                        }
                        let owner = lock.owner;
                        out.push_back(Output::Completion {
                            lockspace: self.id,
                            completion: crate::Completion {
                                lock: crate::LockId(id),
                                owner,
                                status: Status::Granted,
                                flags: SbFlags {
                                    valnotvalid: wrote,
                                    ..SbFlags::default()
                                },
                                granted: Some(base),
                                lvb: None,
                            },
                        });
                    } else {
                        // Sent again from the base mode (QUECVT stays valid from CR
                        // to CW or PR).
                        lock.main = Some((MainOp::Convert { mode, flags, lvb }, false));
                    }
                    continue;
                }
                (None, Some((ExtraOp::Cancel, _))) => {
                    // The conversion it meant to cancel had completed: nothing to
                    // cancel (what the master would have answered).
                    out.push_back(Output::Refused {
                        lockspace: self.id,
                        lock: crate::LockId(id),
                        owner: lock.owner,
                        errno: crate::EBUSY,
                    });
                }
                (None, None) => {}
            }
            if let Some(lock) = self.locks.get_mut(&id) {
                lock.remaster = lock.granted.is_some();
            }
        }
    }

    /// Round 2: every lock whose master departed goes to its new master.
    fn send_recovered_locks(&mut self, out: &mut VecDeque<Output>) {
        let mut per_node: BTreeMap<NodeId, Vec<RecoveredLock>> =
            self.members.iter().map(|m| (*m, Vec::new())).collect();
        let mut ids: Vec<u32> = self.locks.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let lock = &self.locks[&id];
            let Some(mode) = lock.granted else { continue };
            if !lock.remaster {
                continue;
            }
            let Some(to) = self.new_master(&lock.name) else {
                continue;
            };
            per_node.entry(to).or_default().push(RecoveredLock {
                local: id,
                pid: lock.owner.pid,
                name: lock.name.clone(),
                mode,
                persistent: lock.persistent,
                bast: lock.bast,
                lvb: lock.lvb.clone(),
                lvb_valid: lock.lvb_valid,
            });
        }
        for (to, locks) in per_node {
            if to == self.me {
                self.locks_from.insert(self.me, locks);
            } else {
                let msg = Msg::RecoverLocks {
                    lockspace: self.id,
                    epoch: self.epoch,
                    locks,
                };
                self.send(to, &msg, out);
            }
        }
    }

    /// A resource's master after this recovery: its surviving master, else its
    /// directory node.
    fn new_master(&self, name: &[u8]) -> Option<NodeId> {
        self.all_masters
            .get(name)
            .copied()
            .or_else(|| directory_node(&self.members, name))
    }

    fn finish(&mut self, out: &mut VecDeque<Output>) {
        // The directory share, from every surviving master's names.
        self.directory = self
            .all_masters
            .iter()
            .filter(|(name, _)| directory_node(&self.members, name) == Some(self.me))
            .map(|(name, node)| (name.clone(), *node))
            .collect();
        // Re-mastered resources: install the recovered locks.
        let mut rebuilt: BTreeMap<Vec<u8>, Vec<RecoveredLock>> = BTreeMap::new();
        let received = std::mem::take(&mut self.locks_from);
        // Calls held for recovered locks were made against a master their holder
        // has given up on: the holder sends them again, so the held copies go.
        let recovered: BTreeSet<(NodeId, u32)> = received
            .iter()
            .flat_map(|(from, locks)| locks.iter().map(move |l| (*from, l.local)))
            .collect();
        // (Calls sent in this epoch come after their holder's recovery: kept.)
        let epoch = self.epoch;
        self.held.retain(|(from, msg)| match msg {
            Msg::Convert {
                local, epoch: e, ..
            }
            | Msg::Unlock {
                local, epoch: e, ..
            } => *e == epoch || !recovered.contains(&(*from, *local)),
            _ => true,
        });
        for (from, locks) in received {
            for lock in locks {
                if self.by_holder.contains_key(&(from, lock.local)) {
                    continue;
                }
                let name = lock.name.clone();
                let owner = Owner::new(from, lock.pid);
                let Ok(id) = self.engine.recover_granted(
                    owner,
                    &name,
                    lock.mode,
                    lock.persistent,
                    lock.bast,
                ) else {
                    continue;
                };
                self.holders.insert(id, (from, lock.local));
                self.by_holder.insert((from, lock.local), id);
                if !self.all_masters.contains_key(&name) {
                    rebuilt.entry(name).or_default().push(lock);
                }
            }
        }
        for (name, locks) in rebuilt {
            // §3.6: a lock held above CR supplies the value (valid); otherwise the
            // best copy is kept but marked not valid.
            let strong = locks.iter().find(|l| l.mode > Mode::Cr && l.lvb.is_some());
            match strong {
                Some(l) => {
                    self.engine
                        .recover_lvb(&name, l.lvb.as_deref(), l.lvb_valid);
                }
                None => {
                    let any = locks.iter().find_map(|l| l.lvb.as_deref());
                    self.engine.recover_lvb(&name, any, false);
                }
            }
            self.mastered.insert(name.clone());
            self.masters.insert(name.clone(), self.me);
            self.directory.insert(name, self.me);
        }
        // Every surviving master is known now: cache them (saves lookups).
        for (name, master) in &self.all_masters {
            self.masters.insert(name.clone(), *master);
        }
        // This node's own re-mastered locks now live at their new masters.
        let ids: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| l.remaster)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(name) = self.locks.get(&id).map(|l| l.name.clone()) else {
                continue;
            };
            let master = self.new_master(&name);
            if let Some(lock) = self.locks.get_mut(&id) {
                lock.master = master;
                lock.remaster = false;
            }
            if let Some(master) = master {
                self.masters.insert(name, master);
            }
        }
        self.lost.clear();
        self.names_from.clear();
        self.all_masters.clear();
        self.phase = Phase::Running;
        out.push_back(Output::Recovered {
            lockspace: self.id,
            epoch: self.epoch,
        });
        self.drain_engine(out);
        for name in std::mem::take(&mut self.pending_removes) {
            if !self.mastered.contains(&name) {
                self.send_remove(name, out);
            }
        }
        self.replay_held(out);
        self.dispatch_all(out);
    }
}
