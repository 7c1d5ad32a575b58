//! Whether to keep feeding the watchdog (sans-IO, deterministic).
//!
//! A node fences *itself* by no longer feeding its watchdog: the device (or the
//! supervisor process) then resets (or kills) it within the watchdog timeout. The
//! policy starves the watchdog, for good, when
//!
//! * the node **lost quorum** under `no-quorum-policy=fence` (`suicide`): it was
//!   quorate and no longer is. A node that has not been quorate since it started
//!   keeps feeding (as SBD does before Pacemaker is up): it owns nothing yet, and a
//!   cluster booting one node at a time must not reset itself in a loop;
//! * a **dead-man** condition tripped ([`WatchdogPolicy::dead_man`]): something the
//!   node depends on for safety is gone (a site ticket revoked under
//!   `loss-policy=fence`, say).
//!
//! Starving is latched: regaining quorum within the timeout does not resume
//! feeding, because the peers may already count on this node being gone after the
//! timeout (`fencing-watchdog-timeout`).
//!
//! Feeding is paced: at most once per [`WatchdogPolicy::feed_interval`] (a quarter
//! of the timeout), so a busy driver loop does not write to the device on every
//! pass, and a quiet one wakes at [`WatchdogPolicy::next_feed`].

use crate::core::NoQuorumPolicy;
use phalanx_totem::Time;
use std::time::Duration;

/// Shortest feed interval, whatever the timeout.
const MIN_FEED_INTERVAL: Duration = Duration::from_millis(1);

/// Why the watchdog is no longer fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StarveReason {
    /// Quorum was lost under `no-quorum-policy=fence`.
    QuorumLost {
        /// When the loss was learnt.
        at: Time,
    },
    /// A dead-man condition tripped.
    DeadMan {
        /// What tripped it.
        reason: String,
        /// When.
        at: Time,
    },
}

impl StarveReason {
    /// When the watchdog stopped being fed.
    pub fn at(&self) -> Time {
        match self {
            StarveReason::QuorumLost { at } | StarveReason::DeadMan { at, .. } => *at,
        }
    }
}

impl std::fmt::Display for StarveReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StarveReason::QuorumLost { .. } => {
                write!(f, "quorum lost under no-quorum-policy=suicide")
            }
            StarveReason::DeadMan { reason, .. } => write!(f, "dead-man condition: {reason}"),
        }
    }
}

/// What to do with the watchdog on this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Feed it now.
    Now,
    /// Fed recently enough: nothing to do until [`WatchdogPolicy::next_feed`].
    NotDue,
    /// Do not feed it, ever again: the node is fencing itself.
    Starve,
}

/// The decision to keep feeding a watchdog, from quorum state, time, the
/// configured `no-quorum-policy` and dead-man conditions.
#[derive(Debug, Clone)]
pub struct WatchdogPolicy {
    policy: NoQuorumPolicy,
    timeout: Duration,
    quorate: bool,
    ever_quorate: bool,
    last_feed: Option<Time>,
    starving: Option<StarveReason>,
}

impl WatchdogPolicy {
    /// A policy for a watchdog that fires `timeout` after the last feed; the
    /// node starts inquorate and never quorate (so it feeds).
    pub fn new(policy: NoQuorumPolicy, timeout: Duration) -> Self {
        WatchdogPolicy {
            policy,
            timeout,
            quorate: false,
            ever_quorate: false,
            last_feed: None,
            starving: None,
        }
    }

    /// The watchdog's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often the watchdog is fed: a quarter of the timeout, so three feeds
    /// may be late (a loaded machine) before it fires.
    pub fn feed_interval(&self) -> Duration {
        (self.timeout / 4).max(MIN_FEED_INTERVAL)
    }

    /// The partition's quorum state changed (every votequorum event).
    pub fn quorum(&mut self, now: Time, quorate: bool) {
        let lost = self.ever_quorate && self.quorate && !quorate;
        self.quorate = quorate;
        self.ever_quorate |= quorate;
        if lost && self.policy == NoQuorumPolicy::Fence {
            self.starve(StarveReason::QuorumLost { at: now });
        }
    }

    /// A dead-man condition tripped: stop feeding for good. (The tickets layer
    /// calls this when a ticket with `loss-policy=fence` is revoked.)
    pub fn dead_man(&mut self, now: Time, reason: impl Into<String>) {
        self.starve(StarveReason::DeadMan {
            reason: reason.into(),
            at: now,
        });
    }

    fn starve(&mut self, why: StarveReason) {
        // The first reason stays: it is the one that started the countdown.
        if self.starving.is_none() {
            self.starving = Some(why);
        }
    }

    /// Asks whether to feed now; [`Feed::Now`] counts as fed at `now`.
    pub fn poll_feed(&mut self, now: Time) -> Feed {
        if self.starving.is_some() {
            return Feed::Starve;
        }
        match self.last_feed {
            Some(last) if now.saturating_since(last) < self.feed_interval() => Feed::NotDue,
            _ => {
                self.last_feed = Some(now);
                Feed::Now
            }
        }
    }

    /// When the next feed is due (`None` while starving: nothing to wake for).
    pub fn next_feed(&self) -> Option<Time> {
        if self.starving.is_some() {
            return None;
        }
        Some(
            self.last_feed
                .map_or(Time::ZERO, |t| t + self.feed_interval()),
        )
    }

    /// Why the watchdog is starved, if it is.
    pub fn starving(&self) -> Option<&StarveReason> {
        self.starving.as_ref()
    }

    /// May the watchdog be disarmed (magic close) on a clean stop? Not while
    /// starving: a node that is fencing itself stays fenced.
    pub fn may_disarm(&self) -> bool {
        self.starving.is_none()
    }

    /// Is the partition quorate, as last reported?
    pub fn is_quorate(&self) -> bool {
        self.quorate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(1000);

    fn at(ms: u64) -> Time {
        Time::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn feeds_once_per_interval() {
        let mut p = WatchdogPolicy::new(NoQuorumPolicy::Fence, T);
        assert_eq!(p.feed_interval(), Duration::from_millis(250));
        assert_eq!(p.next_feed(), Some(Time::ZERO));
        assert_eq!(p.poll_feed(at(10)), Feed::Now);
        assert_eq!(p.next_feed(), Some(at(260)));
        assert_eq!(p.poll_feed(at(11)), Feed::NotDue);
        assert_eq!(p.poll_feed(at(259)), Feed::NotDue);
        assert_eq!(p.poll_feed(at(260)), Feed::Now);
        assert_eq!(p.next_feed(), Some(at(510)));
    }

    #[test]
    fn losing_quorum_under_suicide_starves_for_good() {
        let mut p = WatchdogPolicy::new(NoQuorumPolicy::Fence, T);
        p.quorum(at(0), true);
        assert_eq!(p.poll_feed(at(1)), Feed::Now);
        p.quorum(at(100), false);
        assert_eq!(
            p.starving(),
            Some(&StarveReason::QuorumLost { at: at(100) })
        );
        assert_eq!(p.poll_feed(at(300)), Feed::Starve);
        assert_eq!(p.next_feed(), None);
        assert!(!p.may_disarm());
        // Quorum back within the timeout: still starving (peers count on it).
        p.quorum(at(400), true);
        assert_eq!(p.poll_feed(at(500)), Feed::Starve);
        assert_eq!(p.starving().map(StarveReason::at), Some(at(100)));
    }

    #[test]
    fn other_policies_keep_feeding_without_quorum() {
        for policy in [
            NoQuorumPolicy::Stop,
            NoQuorumPolicy::Freeze,
            NoQuorumPolicy::Ignore,
            NoQuorumPolicy::Demote,
        ] {
            let mut p = WatchdogPolicy::new(policy, T);
            p.quorum(at(0), true);
            p.quorum(at(100), false);
            assert_eq!(p.poll_feed(at(200)), Feed::Now, "{policy:?}");
            assert!(p.may_disarm());
            assert!(!p.is_quorate());
        }
    }

    #[test]
    fn never_quorate_keeps_feeding() {
        let mut p = WatchdogPolicy::new(NoQuorumPolicy::Fence, T);
        p.quorum(at(0), false);
        p.quorum(at(5000), false);
        assert_eq!(p.poll_feed(at(6000)), Feed::Now);
        assert!(p.starving().is_none());
    }

    #[test]
    fn quorate_again_then_lost_starves() {
        let mut p = WatchdogPolicy::new(NoQuorumPolicy::Fence, T);
        p.quorum(at(0), false);
        p.quorum(at(10), true);
        // A repeated quorate event is not a loss.
        p.quorum(at(20), true);
        assert_eq!(p.poll_feed(at(30)), Feed::Now);
        p.quorum(at(40), false);
        assert_eq!(p.poll_feed(at(50)), Feed::Starve);
    }

    #[test]
    fn dead_man_starves_whatever_the_quorum_and_keeps_the_first_reason() {
        let mut p = WatchdogPolicy::new(NoQuorumPolicy::Ignore, T);
        p.quorum(at(0), true);
        assert_eq!(p.poll_feed(at(0)), Feed::Now);
        p.dead_man(at(70), "ticket-a revoked");
        p.dead_man(at(80), "ticket-b revoked");
        assert_eq!(p.poll_feed(at(1000)), Feed::Starve);
        let why = p.starving().unwrap();
        assert_eq!(why.at(), at(70));
        assert_eq!(why.to_string(), "dead-man condition: ticket-a revoked");
    }

    #[test]
    fn tiny_timeouts_still_pace_feeds() {
        let p = WatchdogPolicy::new(NoQuorumPolicy::Fence, Duration::from_millis(2));
        assert_eq!(p.feed_interval(), MIN_FEED_INTERVAL);
    }
}
