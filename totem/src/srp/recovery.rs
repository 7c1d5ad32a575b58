//! RECOVERY and the extended-virtual-synchrony delivery sequence on entering
//! OPERATIONAL.
//!
//! Members of the new ring that come from the same old ring (the transitional
//! members) re-send, encapsulated in new-ring frames, every old-ring frame some of
//! them may lack. Once every member holds all of that, each node delivers, in
//! order: old-ring messages that belong to the old configuration, the
//! transitional configuration, the remaining old-ring messages, and the regular
//! configuration. All transitional members then hold identical old-ring frames and
//! know the same `delivered_in_old`, so they deliver identical sequences.

use super::{ConfigChange, ConfigKind, Event, Recovery, State, Totem};
use crate::NodeId;
use crate::wire::{Commit, Guarantee, Token};
use phalanx_logsys::record;
use std::collections::VecDeque;

impl Totem {
    pub(super) fn enter_recovery(&mut self, c: &Commit) {
        let old = self.ring.id;
        let trans: Vec<_> = c.entries.iter().filter(|e| e.old_ring == old).collect();
        let low_aru = trans.iter().map(|e| e.aru).min().unwrap_or(0);
        let old_high = trans.iter().map(|e| e.high_seq).max().unwrap_or(0);
        let delivered_in_old = trans.iter().map(|e| e.high_delivered).max().unwrap_or(0);
        let everyone_complete = trans.iter().all(|e| e.aru == old_high);
        let mut to_resend = VecDeque::new();
        if !everyone_complete {
            let my_high = self.ring.store.high();
            // Released numbers hold nothing: start past them, not at a (possibly
            // forged) low aru of the commit token.
            let first = low_aru
                .saturating_add(1)
                .max(self.ring.store.released_through() + 1);
            for s in first..=my_high {
                if self.ring.store.get(s).is_some() {
                    to_resend.push_back(s);
                }
            }
        }
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Info,
            "totem",
            "entering RECOVERY for ring {}.{}: {} transitional members, old aru {}..{}, re-sending {}",
            c.ring.rep,
            c.ring.seq,
            trans.len(),
            low_aru,
            old_high,
            to_resend.len()
        );
        self.recovery = Some(Recovery {
            transitional: trans.iter().map(|e| e.node).collect(),
            delivered_in_old,
            to_resend,
            ..Default::default()
        });
        self.new_ring = Some(self.new_ring_state(c));
        self.state = State::Recovery;
        self.stats.recoveries += 1;
        self.tok = Default::default();
        self.timers.token_loss = Some(self.now + self.cfg.token_timeout);
    }

    /// The representative starts the new ring's token after the commit token's
    /// second rotation.
    pub(super) fn originate_recovery_token(&mut self) {
        let Some(rec) = self.recovery.as_mut() else {
            return;
        };
        if rec.token_originated {
            return;
        }
        rec.token_originated = true;
        let ring = self.new_ring.as_ref().map(|r| r.id).unwrap_or_default();
        self.visit(Token {
            ring,
            ..Default::default()
        });
    }

    /// Marks the token while this node still has old-ring frames to re-send. Only
    /// the node that set the mark clears it, so a clear mark seen after a whole
    /// rotation means nobody has anything left.
    pub(super) fn update_recovery_flag(&mut self, token: &mut Token) {
        let Some(rec) = self.recovery.as_ref() else {
            return;
        };
        if !rec.to_resend.is_empty() {
            token.retrans_owner = self.me;
        } else if token.retrans_owner == self.me {
            token.retrans_owner = 0;
        }
    }

    /// Checked on token arrival in RECOVERY: true once every member has re-sent
    /// everything and holds all of it.
    pub(super) fn recovery_may_finish(&mut self, token: &Token) -> bool {
        let safe_upto = self.new_ring.as_ref().map_or(0, |r| r.safe_upto);
        let Some(rec) = self.recovery.as_mut() else {
            return false;
        };
        if token.retrans_owner == 0 && rec.to_resend.is_empty() {
            rec.quiet_visits += 1;
        } else {
            rec.quiet_visits = 0;
        }
        if rec.quiet_visits >= 2 && rec.install_seq.is_none() {
            rec.install_seq = Some(token.seq);
        }
        rec.install_seq
            .is_some_and(|s| safe_upto >= s && token.aru >= s)
    }

    /// Installs the new ring, delivering the EVS sequence.
    pub(super) fn enter_operational(&mut self) {
        let (Some(rec), Some(new)) = (self.recovery.take(), self.new_ring.take()) else {
            return;
        };
        let old = std::mem::replace(&mut self.ring, new);
        let old_members = old.members.clone();

        // 1. Old-ring messages that belong to the old configuration: everything some
        //    transitional member already delivered there, then agreed messages
        //    while contiguous.
        let mut s = old.high_delivered + 1;
        while let Some(f) = old.store.get(s) {
            if s > rec.delivered_in_old && f.guarantee == Guarantee::Safe {
                break;
            }
            self.deliver_frame(f.sender, f.guarantee, &f.payload);
            s += 1;
        }

        // 2. The transitional configuration.
        if self.installed_any {
            self.events.push_back(Event::Config(ConfigChange {
                kind: ConfigKind::Transitional,
                ring: self.ring.id,
                previous: Some(old.id),
                members: rec.transitional.clone(),
                left: minus(&old_members, &rec.transitional),
                joined: Vec::new(),
            }));
        }

        // 3. The rest of the old ring: contiguous messages from anyone, and past
        //    the first gap only those of transitional members (a message after a
        //    gap from a departed sender may depend on the missing one).
        //    Only stored frames can be delivered: numbers past the store's highest
        //    (up to the transitional members' highest, which comes from the commit
        //    token, so a faulty or forged one can make it huge) hold nothing, and
        //    walking them one by one could take hours. The walk ends at the store's
        //    highest.
        let end = old.store.high();
        let mut gap = false;
        while s <= end {
            match old.store.get(s) {
                Some(f) => {
                    if !gap || rec.transitional.contains(&f.sender) {
                        self.deliver_frame(f.sender, f.guarantee, &f.payload);
                    }
                }
                None => gap = true,
            }
            s += 1;
        }

        // 4. The regular configuration. Unfinished fragmented messages can never
        //    finish now.
        self.stats.fragments_dropped += self.reassembly.clear() as u64;
        let members = self.ring.members.clone();
        let (previous, joined, left) = if self.installed_any {
            (
                Some(old.id),
                minus(&members, &old_members),
                minus(&old_members, &members),
            )
        } else {
            (None, members.clone(), Vec::new())
        };
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Notice,
            "totem",
            "ring {}.{} formed with {} members ({} joined, {} left)",
            self.ring.id.rep,
            self.ring.id.seq,
            members.len(),
            joined.len(),
            left.len()
        );
        self.events.push_back(Event::Config(ConfigChange {
            kind: ConfigKind::Regular,
            ring: self.ring.id,
            previous,
            members,
            left,
            joined,
        }));

        for n in &old_members {
            if !self.ring.members.contains(n) {
                self.left_behind.insert(*n, old.id);
            }
        }
        for n in &self.ring.members {
            self.left_behind.remove(n);
        }
        self.state = State::Operational;
        self.installed_any = true;
        self.stats.operationals += 1;
        self.procs.clear();
        self.failed.clear();
        self.consensus.clear();
        self.commit = None;
        if self.ring.id.rep == self.me {
            self.timers.merge_detect = Some(self.now + self.cfg.merge_interval);
        }
        self.deliver_ready();
    }
}

fn minus(a: &[NodeId], b: &[NodeId]) -> Vec<NodeId> {
    a.iter().copied().filter(|n| !b.contains(n)).collect()
}
