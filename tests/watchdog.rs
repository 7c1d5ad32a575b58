//! Self-fencing with the process watchdog, for real: `phalanxd` processes with
//! votequorum and `fencing { no_quorum_policy: suicide; watchdog: process;
//! watchdog_timeout: 1000 }` — each node starts a `phalanx-watchdog` supervisor
//! that SIGKILLs it when its driver loop stops feeding.
//!
//! - **quorum lost**: three nodes; nodes 1 and 2 are killed (-9); node 3 loses
//!   quorum, stops feeding, and its supervisor kills it within the timeout (plus
//!   a margin); the time from its "NOT quorate" to its death is printed.
//! - **quorate nodes live**: node 3 is killed; nodes 1 and 2 keep quorum and keep
//!   feeding through several timeouts, then leave cleanly (the watchdog disarmed:
//!   exit status 0).
//! - **hung node**: a quorate node whose process is stopped (SIGSTOP: its driver
//!   thread no longer runs) is killed by its supervisor within the timeout.
//!
//! - **watchdog fencing** (`fencing_watchdog_timeout: 2000`, no device): node 3
//!   is killed (-9); nodes 1 and 2 request no fencing and report it fenced 2 s
//!   after they lost it.
//!
//! No /dev/watchdog test: the machine these tests were written on has no watchdog
//! device (and a kernel without modules, so no softdog); `DevWatchdog` is
//! unit-tested without one (phalanx-fence).

mod common;

use common::cluster::{Cluster, Observed, Observer, mono_ns, ms};
use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::events::Event;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

const TIMEOUT_MS: u64 = 1000;

/// Every event, in arrival order.
#[derive(Default)]
struct Log {
    events: Vec<Observed>,
}

impl Observer for Log {
    fn observe(&mut self, o: &Observed) {
        self.events.push(o.clone());
    }

    fn describe(&self) -> String {
        self.events
            .iter()
            .filter(|o| matches!(o.event, Event::Quorum(_) | Event::Eof))
            .map(|o| format!("n{} {:?}\n", o.node, o.event))
            .collect()
    }
}

impl Log {
    /// The last quorum report of `node`: (quorate, members, when).
    fn quorum(&self, node: u32) -> Option<(bool, &[u32], u64)> {
        self.events.iter().rev().find_map(|o| match &o.event {
            Event::Quorum(q) if o.node == node => Some((q.quorate, &q.members[..], o.at)),
            _ => None,
        })
    }

    fn quorate_with(&self, node: u32, members: &[u32]) -> bool {
        self.quorum(node).is_some_and(|(q, m, _)| q && m == members)
    }

    /// When `node` reported the fencing event `kind` about `target`.
    fn fence_event(&self, node: u32, kind: &str, target: u32) -> Option<u64> {
        let t = target.to_string();
        self.events.iter().find_map(|o| match &o.event {
            Event::Service { kind: k, fields }
                if o.node == node && k == kind && fields.get("node") == Some(&t) =>
            {
                Some(o.at)
            }
            _ => None,
        })
    }

    /// When `node`'s output ended.
    fn ended_at(&self, node: u32) -> Option<u64> {
        self.events.iter().find_map(|o| match o.event {
            Event::Eof if o.node == node => Some(o.at),
            _ => None,
        })
    }
}

fn start(tag: &str, policy: &str) -> (TestDir, Cluster, Log) {
    start_with(tag, policy, "")
}

fn start_with(tag: &str, policy: &str, extra: &str) -> (TestDir, Cluster, Log) {
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(3);
    let sections = format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    no_quorum_policy: {policy}\n    watchdog: process\n    \
         watchdog_timeout: {TIMEOUT_MS}\n{extra}}}\n"
    );
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &sections));
    let mut cluster = Cluster::start(&conf, 1..=3, None);
    let mut log = Log::default();
    cluster.until(
        &mut log,
        "all three quorate",
        Duration::from_secs(20),
        |l| (1..=3).all(|n| l.quorate_with(n, &[1, 2, 3])),
    );
    (dir, cluster, log)
}

/// Node `id` exits by SIGKILL (its supervisor's: nothing else here kills it).
fn assert_killed(cluster: &mut Cluster, id: u32) {
    let status = cluster.wait_exit(id);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "node {id} ended with {status}, not by its watchdog's SIGKILL"
    );
}

#[test]
fn a_node_that_loses_quorum_under_suicide_is_killed_by_its_watchdog() {
    let (_dir, mut cluster, mut log) = start("wd-suicide", "suicide");
    let inc3 = cluster.incarnation(3);
    cluster.kill9(1);
    let second_kill = cluster.kill9(2);
    cluster.until(
        &mut log,
        "node 3 to lose quorum",
        Duration::from_secs(10),
        |l| l.quorum(3).is_some_and(|(q, ..)| !q),
    );
    let lost_at = log.quorum(3).unwrap().2;
    cluster.until_ended(&mut log, 3, inc3);
    let dead_at = log.ended_at(3).unwrap();
    assert_killed(&mut cluster, 3);
    let after_loss = ms(dead_at.saturating_sub(lost_at));
    eprintln!(
        "node 3: quorum lost {:.0} ms after the second kill -9, killed by its watchdog \
         {after_loss:.0} ms after losing quorum (timeout {TIMEOUT_MS} ms)",
        ms(lost_at.saturating_sub(second_kill)),
    );
    // The last feed came at most a feed interval (timeout / 4) before the loss
    // (more on a starved machine): not killed at once for another reason.
    let earliest = TIMEOUT_MS as f64 * 0.5;
    let latest = TIMEOUT_MS as f64 + 500.0;
    assert!(
        (earliest..latest).contains(&after_loss),
        "killed {after_loss:.0} ms after losing quorum, expected {earliest:.0}..{latest:.0} ms"
    );
}

#[test]
fn quorate_nodes_keep_feeding_and_leave_cleanly() {
    let (_dir, mut cluster, mut log) = start("wd-quorate", "suicide");
    let incs = [cluster.incarnation(1), cluster.incarnation(2)];
    cluster.kill9(3);
    cluster.until(
        &mut log,
        "nodes 1 and 2 quorate without node 3",
        Duration::from_secs(10),
        |l| l.quorate_with(1, &[1, 2]) && l.quorate_with(2, &[1, 2]),
    );
    let from = mono_ns();
    cluster.observe_for(&mut log, Duration::from_millis(4 * TIMEOUT_MS));
    for (id, inc) in [(1, incs[0]), (2, incs[1])] {
        assert!(
            !cluster.ended(id, inc),
            "quorate node {id} died while fed:\n{}",
            log.describe()
        );
    }
    eprintln!(
        "nodes 1 and 2 alive and quorate {:.0} ms (4 watchdog timeouts) after node 3's loss",
        ms(mono_ns() - from)
    );
    // Exit status 0 from both: the disarmed supervisors killed no one.
    cluster.leave(&mut log, &[1, 2]);
}

#[test]
fn a_hung_node_is_killed_by_its_watchdog() {
    // Policy stop: quorum plays no part; only the feeds stop.
    let (_dir, mut cluster, mut log) = start("wd-hang", "stop");
    let inc3 = cluster.incarnation(3);
    let stopped_at = mono_ns();
    cluster.signal(3, libc::SIGSTOP);
    cluster.until_ended(&mut log, 3, inc3);
    let dead_at = log.ended_at(3).unwrap();
    assert_killed(&mut cluster, 3);
    let took = ms(dead_at.saturating_sub(stopped_at));
    eprintln!("node 3 stopped (SIGSTOP) → killed by its watchdog in {took:.0} ms");
    assert!(
        took < TIMEOUT_MS as f64 + 500.0,
        "killed {took:.0} ms after it hung"
    );
    cluster.leave(&mut log, &[1, 2]);
}

#[test]
fn peers_assume_a_lost_node_fenced_after_the_fencing_watchdog_timeout() {
    const ASSUME_MS: u64 = 2 * TIMEOUT_MS;
    let (_dir, mut cluster, mut log) = start_with(
        "wd-assume",
        "suicide",
        &format!("    fencing_watchdog_timeout: {ASSUME_MS}\n"),
    );
    cluster.kill9(3);
    cluster.until(
        &mut log,
        "nodes 1 and 2 to report node 3 fenced",
        Duration::from_secs(10),
        |l| {
            [1, 2]
                .iter()
                .all(|&n| l.fence_event(n, "fence_fenced", 3).is_some())
        },
    );
    for n in [1, 2] {
        let unclean = log.fence_event(n, "fence_unclean", 3).unwrap();
        let fenced = log.fence_event(n, "fence_fenced", 3).unwrap();
        let waited = ms(fenced - unclean);
        eprintln!("node {n}: node 3 unclean → assumed fenced by its watchdog in {waited:.0} ms");
        // The countdown starts at the step that handles the loss, whose clock is
        // read before that step prints `fence_unclean`; the step's own work
        // (well under 50 ms) can make the printed interval that much shorter.
        // Never sooner than the timeout is checked exactly in
        // `fence/tests/core_decision_watchdog.rs`.
        assert!(
            (ASSUME_MS as f64 - 50.0..ASSUME_MS as f64 + 500.0).contains(&waited),
            "node {n} assumed node 3 fenced {waited:.0} ms after losing it"
        );
    }
    let requests: Vec<String> = log
        .events
        .iter()
        .filter_map(|o| match &o.event {
            Event::Service { kind, fields } if kind == "fence_done" || kind == "fence_result" => {
                Some(format!("n{} {kind} {fields:?}", o.node))
            }
            _ => None,
        })
        .collect();
    assert!(requests.is_empty(), "no device was asked: {requests:?}");
    cluster.leave(&mut log, &[1, 2]);
}
