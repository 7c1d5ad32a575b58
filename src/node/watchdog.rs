//! The node's own watchdog: opened at start, fed from the driver loop while the
//! [`WatchdogPolicy`] allows, disarmed on a clean leave. Feeding from the driver
//! loop itself (not a timer thread) is the point: a hung driver stops feeding and
//! the node is killed (process watchdog) or the machine reset (`/dev/watchdog`).
//! A driver that ends with an error does not disarm either.

use crate::config::{FencingConfig, WatchdogConfig};
use phalanx_fence::core::NoQuorumPolicy;
use phalanx_fence::watchdog::io::{DevWatchdog, ProcessWatchdog, SUPERVISOR_BIN, WatchdogError};
use phalanx_fence::watchdog::{Feed, Watchdog, WatchdogPolicy};
use phalanx_logsys::{Logger, record};
use phalanx_totem::{NodeId, Time};
use std::path::PathBuf;
use std::time::Duration;

/// Which watchdog a node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchdogKind {
    /// A kernel watchdog device (`/dev/watchdog`): the machine resets.
    Device(PathBuf),
    /// A supervisor process (the `phalanx-watchdog` executable at this path)
    /// that SIGKILLs this process.
    Process {
        /// The supervisor executable.
        supervisor: PathBuf,
    },
}

/// A node's watchdog: which, its timeout, and the policy that stops feeding it.
#[derive(Clone, Debug)]
pub struct WatchdogOptions {
    /// Device or supervisor process.
    pub kind: WatchdogKind,
    /// Time without a feed before it fires.
    pub timeout: Duration,
    /// `no-quorum-policy`: under `Fence` (suicide) losing quorum stops the feeds.
    pub no_quorum_policy: NoQuorumPolicy,
}

/// The supervisor executable next to the running one (phalanxd and
/// phalanx-watchdog are installed, and built, side by side).
pub fn default_supervisor() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(SUPERVISOR_BIN)))
        .unwrap_or_else(|| PathBuf::from(SUPERVISOR_BIN))
}

/// The watchdog of the configuration's `fencing` section (`None`: off).
pub fn watchdog_from_config(
    f: &FencingConfig,
    no_quorum_policy: NoQuorumPolicy,
) -> Option<WatchdogOptions> {
    let kind = match &f.watchdog {
        WatchdogConfig::Off => return None,
        WatchdogConfig::Process => WatchdogKind::Process {
            supervisor: default_supervisor(),
        },
        WatchdogConfig::Device(p) => WatchdogKind::Device(p.clone()),
    };
    Some(WatchdogOptions {
        kind,
        timeout: f.effective_watchdog_timeout(),
        no_quorum_policy,
    })
}

/// The driver's side: the open watchdog and its policy.
pub(crate) struct NodeWatchdog {
    dog: Box<dyn Watchdog>,
    policy: WatchdogPolicy,
    logger: Logger,
    node: NodeId,
    announced: bool,
    feed_errors: u64,
    /// Whether the driver loop has fed it (it runs); disarmed: no longer armed.
    fed: bool,
    disarmed: bool,
}

impl NodeWatchdog {
    /// Opens (arms) the watchdog.
    pub(crate) fn start(
        o: &WatchdogOptions,
        logger: Logger,
        node: NodeId,
    ) -> Result<NodeWatchdog, WatchdogError> {
        let dog: Box<dyn Watchdog> = match &o.kind {
            WatchdogKind::Device(p) => Box::new(DevWatchdog::open(p, o.timeout)?),
            WatchdogKind::Process { supervisor } => {
                Box::new(ProcessWatchdog::spawn(supervisor, o.timeout)?)
            }
        };
        Ok(Self::armed(dog, o.no_quorum_policy, logger, node))
    }

    /// Wraps an armed watchdog.
    fn armed(
        dog: Box<dyn Watchdog>,
        no_quorum_policy: NoQuorumPolicy,
        logger: Logger,
        node: NodeId,
    ) -> NodeWatchdog {
        // The timeout in force: a device may have rounded it.
        let policy = WatchdogPolicy::new(no_quorum_policy, dog.timeout());
        record!(
            logger,
            0,
            node,
            Notice,
            "watchdog",
            "armed: {}",
            dog.describe()
        );
        NodeWatchdog {
            dog,
            policy,
            logger,
            node,
            announced: false,
            feed_errors: 0,
            fed: false,
            disarmed: false,
        }
    }

    /// A votequorum event's quorum state.
    pub(crate) fn quorum(&mut self, now: Time, quorate: bool) {
        self.policy.quorum(now, quorate);
    }

    /// One driver pass: feeds if due and allowed. Returns how long the driver
    /// may sleep before the next feed (`None` once starving).
    pub(crate) fn pass(&mut self, now: Time) -> Option<Duration> {
        match self.policy.poll_feed(now) {
            Feed::Now => {
                self.fed = true;
                if let Err(e) = self.dog.feed() {
                    self.feed_errors += 1;
                    if self.feed_errors == 1 {
                        record!(
                            self.logger,
                            now.as_nanos(),
                            self.node,
                            Error,
                            "watchdog",
                            "feeding {} failed: {}",
                            self.dog.describe(),
                            e.to_string()
                        );
                    }
                }
            }
            Feed::NotDue => {}
            Feed::Starve => {
                if !self.announced {
                    self.announced = true;
                    let why = self
                        .policy
                        .starving()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    record!(
                        self.logger,
                        now.as_nanos(),
                        self.node,
                        Error,
                        "watchdog",
                        "self-fencing ({}): {} is no longer fed and fires within {} ms",
                        why,
                        self.dog.describe(),
                        self.policy.timeout().as_millis() as u64
                    );
                }
                return None;
            }
        }
        self.policy
            .next_feed()
            .map(|t| t.saturating_since(now).max(Duration::from_millis(1)))
    }

    /// Clean stop: disarms unless the node is fencing itself.
    pub(crate) fn leave(&mut self) {
        if !self.policy.may_disarm() || self.disarmed {
            return;
        }
        self.disarmed = true;
        if let Err(e) = self.dog.disarm() {
            record!(
                self.logger,
                0,
                self.node,
                Error,
                "watchdog",
                "disarming {} failed: {}",
                self.dog.describe(),
                e.to_string()
            );
        }
    }
}

impl Drop for NodeWatchdog {
    /// A watchdog the driver loop never fed belongs to a start that failed after
    /// arming it (`Node::start` returned an error): disarmed, or the caller's
    /// process would be killed for a node that never ran. Once fed, dropping does
    /// not disarm — a driver that ends without a clean leave is a node to fence.
    fn drop(&mut self) {
        if !self.fed && !self.disarmed {
            self.disarmed = true;
            let _ = self.dog.disarm();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Counts feeds and disarms.
    struct Counting(Arc<(AtomicU32, AtomicU32)>);

    impl Watchdog for Counting {
        fn feed(&mut self) -> std::io::Result<()> {
            self.0.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn timeout(&self) -> Duration {
            Duration::from_millis(1000)
        }
        fn disarm(&mut self) -> std::io::Result<()> {
            self.0.1.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    fn watchdog() -> (NodeWatchdog, Arc<(AtomicU32, AtomicU32)>) {
        let counts = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let dog = Box::new(Counting(counts.clone()));
        let w = NodeWatchdog::armed(dog, NoQuorumPolicy::Fence, Logger::discard(), 1);
        (w, counts)
    }

    fn ms(n: u64) -> Time {
        Time::from_nanos(n * 1_000_000)
    }

    #[test]
    fn dropped_before_the_first_feed_it_disarms() {
        let (w, counts) = watchdog();
        drop(w);
        assert_eq!(counts.1.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dropped_after_feeding_it_stays_armed() {
        let (mut w, counts) = watchdog();
        assert_eq!(w.pass(ms(0)), Some(Duration::from_millis(250)));
        drop(w);
        assert_eq!(counts.0.load(Ordering::SeqCst), 1);
        assert_eq!(counts.1.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn feeds_paced_then_starved_after_quorum_loss_and_never_disarmed() {
        let (mut w, counts) = watchdog();
        w.quorum(ms(0), true);
        assert!(w.pass(ms(0)).is_some());
        assert_eq!(w.pass(ms(100)), Some(Duration::from_millis(150)));
        assert!(w.pass(ms(250)).is_some());
        assert_eq!(counts.0.load(Ordering::SeqCst), 2);
        w.quorum(ms(300), false);
        assert_eq!(w.pass(ms(600)), None);
        w.leave();
        drop(w);
        assert_eq!(counts.0.load(Ordering::SeqCst), 2, "no feed while starving");
        assert_eq!(
            counts.1.load(Ordering::SeqCst),
            0,
            "a starving node stays armed"
        );
    }

    #[test]
    fn a_clean_leave_disarms_once() {
        let (mut w, counts) = watchdog();
        w.pass(ms(0));
        w.leave();
        w.leave();
        drop(w);
        assert_eq!(counts.1.load(Ordering::SeqCst), 1);
    }
}
