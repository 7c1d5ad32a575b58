//! The cfg service's shutdown vote, as Corosync's cfg service runs it: clients
//! that called `corosync_cfg_trackstart` (Pacemaker's `pacemakerd` does) are
//! asked before a `corosync_cfg_try_shutdown` stops the node, and any of them
//! can veto it with `corosync_cfg_replyto_shutdown(NO)`.
//!
//! - `CFG_SHUTDOWN_FLAG_IMMEDIATE` (2): nobody is asked; the node stops.
//! - A vote already running: the new request gets `CS_ERR_EXIST`.
//! - No tracker besides the requester: the node stops at once.
//! - Otherwise every other tracker gets the shutdown callback (its flags) and
//!   the requester's reply waits for the outcome: all yes → `CS_OK` and the node
//!   stops; any no → `CS_ERR_BUSY` — unless the flag was
//!   `CFG_SHUTDOWN_FLAG_REGARDLESS` (1, `corosync-cfgtool -H --force`), which
//!   stops the node once everyone answered whatever they said.
//! - After the timeout (`cfg.shutdown_timeout` ms in cmap, default 5000) the
//!   silent count as no, the outcome is given, and every tracker is sent the
//!   callback again with error `CS_ERR_TIMEOUT` (Corosync does that too).
//! - A tracker that goes away (or calls `trackstop`) counts as yes; a tracker
//!   that starts tracking during a vote is asked too; a requester that goes away
//!   cancels the vote.
//! - An answer when no vote runs: `CS_ERR_ACCESS`.
//!
//! Pure: connection ids and the current time come in, [`Effect`]s come out.
//!
//! ```
//! use phalanx::compat::qb::cfg_shutdown::{Effect, ShutdownVote, REQUEST};
//! use std::time::{Duration, Instant};
//!
//! let now = Instant::now();
//! let mut vote = ShutdownVote::default();
//! vote.track_start(7); // pacemakerd
//! let asked = vote.try_shutdown(1, REQUEST, now, Duration::from_secs(5));
//! assert_eq!(asked, vec![Effect::Ask { conns: vec![7], flags: REQUEST, error: 1 }]);
//! let (error, outcome) = vote.reply(7, false);
//! assert_eq!(error, 1); // the answer itself is taken
//! assert_eq!(outcome, vec![Effect::Answer { conn: 1, error: 10 }]); // CS_ERR_BUSY
//! ```

use super::cs;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `CFG_SHUTDOWN_FLAG_REQUEST`: ask, and any tracker may veto.
pub const REQUEST: u32 = 0;
/// `CFG_SHUTDOWN_FLAG_REGARDLESS`: ask, then stop whatever the answers.
pub const REGARDLESS: u32 = 1;
/// `CFG_SHUTDOWN_FLAG_IMMEDIATE`: stop without asking.
pub const IMMEDIATE: u32 = 2;
/// Corosync's `DEFAULT_SHUTDOWN_TIMEOUT` (ms).
pub const DEFAULT_TIMEOUT_MS: u32 = 5000;

/// What the server must do after a step of the vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send the shutdown callback (`res_lib_cfg_testshutdown`) with `flags`
    /// and `error` to these connections.
    Ask {
        /// The connections to ask.
        conns: Vec<u64>,
        /// The requester's flags.
        flags: u32,
        /// `CS_OK`, or `CS_ERR_TIMEOUT` after the timeout.
        error: i32,
    },
    /// Answer connection `conn`'s waiting `corosync_cfg_try_shutdown`.
    Answer {
        /// The requester.
        conn: u64,
        /// `CS_OK` (the node stops) or `CS_ERR_BUSY` (vetoed).
        error: i32,
    },
    /// Stop the node.
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vote {
    Unknown,
    Yes,
    No,
}

#[derive(Debug)]
struct Round {
    requester: u64,
    flags: u32,
    votes: BTreeMap<u64, Vote>,
    deadline: Instant,
}

/// The trackers and the vote in progress, if any.
#[derive(Debug, Default)]
pub struct ShutdownVote {
    trackers: BTreeSet<u64>,
    round: Option<Round>,
}

impl ShutdownVote {
    /// `corosync_cfg_trackstart` on connection `conn`: asked from now on (at
    /// once when a vote runs).
    pub fn track_start(&mut self, conn: u64) -> Vec<Effect> {
        if !self.trackers.insert(conn) {
            return Vec::new();
        }
        match &mut self.round {
            Some(r) if r.requester != conn => {
                r.votes.insert(conn, Vote::Unknown);
                vec![Effect::Ask {
                    conns: vec![conn],
                    flags: r.flags,
                    error: cs::OK,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// `corosync_cfg_trackstop`: no longer asked; in a running vote, a yes.
    pub fn track_stop(&mut self, conn: u64) -> Vec<Effect> {
        if !self.trackers.remove(&conn) {
            return Vec::new();
        }
        if let Some(r) = &mut self.round {
            if let Some(v) = r.votes.get_mut(&conn) {
                *v = Vote::Yes;
            }
        }
        self.decide()
    }

    /// Connection `conn` closed: a requester cancels its vote, a tracker
    /// counts as yes.
    pub fn closed(&mut self, conn: u64) -> Vec<Effect> {
        if self.round.as_ref().is_some_and(|r| r.requester == conn) {
            self.round = None;
        }
        self.track_stop(conn)
    }

    /// `corosync_cfg_try_shutdown(flags)` from `conn` at `now`. The effects
    /// include the answer to `conn` unless it must wait for the vote.
    pub fn try_shutdown(
        &mut self,
        conn: u64,
        flags: u32,
        now: Instant,
        timeout: Duration,
    ) -> Vec<Effect> {
        let answer = |error| Effect::Answer { conn, error };
        if flags == IMMEDIATE {
            return vec![answer(cs::OK), Effect::Stop];
        }
        if self.round.is_some() {
            return vec![answer(cs::ERR_EXIST)];
        }
        let asked: Vec<u64> = self
            .trackers
            .iter()
            .copied()
            .filter(|&c| c != conn)
            .collect();
        if asked.is_empty() {
            return vec![answer(cs::OK), Effect::Stop];
        }
        self.round = Some(Round {
            requester: conn,
            flags,
            votes: asked.iter().map(|&c| (c, Vote::Unknown)).collect(),
            deadline: now + timeout,
        });
        vec![Effect::Ask {
            conns: asked,
            flags,
            error: cs::OK,
        }]
    }

    /// `corosync_cfg_replyto_shutdown` from `conn`: the error to answer it
    /// with, and what follows.
    pub fn reply(&mut self, conn: u64, yes: bool) -> (i32, Vec<Effect>) {
        let Some(r) = &mut self.round else {
            return (cs::ERR_ACCESS, Vec::new());
        };
        let vote = if yes { Vote::Yes } else { Vote::No };
        // Only the asked answer; anyone else's answer is taken and ignored,
        // as a repeated one is (Corosync would count it).
        if let Some(v) = r.votes.get_mut(&conn) {
            *v = vote;
        }
        (cs::OK, self.decide())
    }

    /// When the vote in progress times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.round.as_ref().map(|r| r.deadline)
    }

    /// Ends a vote whose deadline passed: the silent count as no.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let Some(r) = &mut self.round else {
            return Vec::new();
        };
        if now < r.deadline {
            return Vec::new();
        }
        for v in r.votes.values_mut() {
            if *v == Vote::Unknown {
                *v = Vote::No;
            }
        }
        let flags = r.flags;
        let mut out = self.decide();
        out.push(Effect::Ask {
            conns: self.trackers.iter().copied().collect(),
            flags,
            error: cs::ERR_TIMEOUT,
        });
        out
    }

    /// The outcome once every asked tracker answered.
    fn decide(&mut self) -> Vec<Effect> {
        let Some(r) = &self.round else {
            return Vec::new();
        };
        if r.votes.values().any(|v| *v == Vote::Unknown) {
            return Vec::new();
        }
        let all_yes = r.votes.values().all(|v| *v == Vote::Yes);
        let conn = r.requester;
        let stop = all_yes || r.flags == REGARDLESS;
        self.round = None;
        if stop {
            vec![
                Effect::Answer {
                    conn,
                    error: cs::OK,
                },
                Effect::Stop,
            ]
        } else {
            vec![Effect::Answer {
                conn,
                error: cs::ERR_BUSY,
            }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> (ShutdownVote, Instant) {
        let mut v = ShutdownVote::default();
        assert!(v.track_start(2).is_empty());
        assert!(v.track_start(3).is_empty());
        (v, Instant::now())
    }

    const T: Duration = Duration::from_secs(5);

    fn answer(conn: u64, error: i32) -> Effect {
        Effect::Answer { conn, error }
    }

    #[test]
    fn immediate_and_untracked_shutdowns_stop_at_once() {
        let mut v = ShutdownVote::default();
        let now = Instant::now();
        assert_eq!(
            v.try_shutdown(1, REQUEST, now, T),
            [answer(1, cs::OK), Effect::Stop]
        );
        let (mut v, now) = start();
        assert_eq!(
            v.try_shutdown(1, IMMEDIATE, now, T),
            [answer(1, cs::OK), Effect::Stop]
        );
        // The requester's own tracking does not ask it.
        let mut v = ShutdownVote::default();
        v.track_start(1);
        assert_eq!(
            v.try_shutdown(1, REQUEST, now, T),
            [answer(1, cs::OK), Effect::Stop]
        );
    }

    #[test]
    fn one_veto_refuses_a_request_but_not_a_regardless() {
        let (mut v, now) = start();
        let asked = v.try_shutdown(1, REQUEST, now, T);
        assert_eq!(
            asked,
            [Effect::Ask {
                conns: vec![2, 3],
                flags: REQUEST,
                error: cs::OK
            }]
        );
        assert_eq!(
            v.try_shutdown(9, REQUEST, now, T),
            [answer(9, cs::ERR_EXIST)]
        );
        assert_eq!(v.reply(2, false), (cs::OK, vec![]));
        assert_eq!(v.reply(3, true), (cs::OK, vec![answer(1, cs::ERR_BUSY)]));
        assert_eq!(v.deadline(), None);
        assert_eq!(v.reply(3, true).0, cs::ERR_ACCESS, "no vote runs");
        v.try_shutdown(1, REGARDLESS, now, T);
        v.reply(2, false);
        assert_eq!(
            v.reply(3, false),
            (cs::OK, vec![answer(1, cs::OK), Effect::Stop])
        );
    }

    #[test]
    fn silence_times_out_as_no_and_everyone_hears_of_it() {
        let (mut v, now) = start();
        v.try_shutdown(1, REQUEST, now, T);
        v.reply(2, true);
        assert!(v.tick(now + T / 2).is_empty());
        assert_eq!(
            v.tick(now + T),
            [
                answer(1, cs::ERR_BUSY),
                Effect::Ask {
                    conns: vec![2, 3],
                    flags: REQUEST,
                    error: cs::ERR_TIMEOUT
                }
            ]
        );
        v.try_shutdown(1, REGARDLESS, now, T);
        let out = v.tick(now + T);
        assert_eq!(&out[..2], [answer(1, cs::OK), Effect::Stop]);
    }

    #[test]
    fn leaving_trackers_say_yes_and_newcomers_are_asked() {
        let (mut v, now) = start();
        v.try_shutdown(1, REQUEST, now, T);
        assert_eq!(
            v.track_start(4),
            [Effect::Ask {
                conns: vec![4],
                flags: REQUEST,
                error: cs::OK
            }]
        );
        assert!(v.closed(2).is_empty());
        assert!(v.track_stop(3).is_empty());
        assert_eq!(v.closed(4), [answer(1, cs::OK), Effect::Stop]);
        // A requester that goes away cancels its vote.
        let (mut v, now) = start();
        v.try_shutdown(1, REQUEST, now, T);
        assert!(v.closed(1).is_empty());
        assert_eq!(v.deadline(), None);
        assert_eq!(v.reply(2, true).0, cs::ERR_ACCESS);
    }
}
