//! With the default configuration a crashed member is excluded and the new
//! configuration delivered within one second (of protocol time: the in-memory
//! network has no latency, so this measures the timers and the rounds), where
//! Corosync's defaults take 6.6–8 s. A clean leave is faster still.

use phalanx_totem::testing::MemNet;
use phalanx_totem::{Config, ConfigKind, Event, Guarantee};
use std::time::Duration;

/// Whether node `i` installed, among its events from index `from` on, a regular
/// configuration without `gone`.
fn regular_without(net: &MemNet, i: usize, from: usize, gone: u32) -> bool {
    net.events[i][from..]
        .iter()
        .any(|e| matches!(e, Event::Config(c) if c.kind == ConfigKind::Regular && !c.members.contains(&gone)))
}

fn detection_time(nodes: usize, crash: bool) -> Duration {
    let mut net = MemNet::new(nodes, Config::new);
    net.keep_events = true;
    assert!(net.run_until_formed(1_000_000));
    // Traffic before the failure, so recovery has something to do.
    for k in 0..20u32 {
        net.nodes[(k as usize) % nodes]
            .mcast(net.now, Guarantee::Safe, &k.to_le_bytes())
            .unwrap();
    }
    assert!(net.run_until(1_000_000, |n| n.delivered.iter().all(|d| *d == 20)));
    let victim = nodes - 1;
    let gone = victim as u32 + 1;
    let t0 = net.now;
    let marks: Vec<usize> = net.events.iter().map(|e| e.len()).collect();
    if crash {
        net.crash(victim);
    } else {
        net.nodes[victim].leave(net.now);
        net.drain(victim);
        net.crash(victim);
    }
    let survivors: Vec<usize> = (0..nodes - 1).collect();
    assert!(
        net.run_until(5_000_000, |n| survivors
            .iter()
            .all(|&i| regular_without(n, i, marks[i], gone))),
        "no new configuration without node {gone}"
    );
    net.now - t0
}

#[test]
fn a_crashed_member_is_excluded_within_one_second() {
    for nodes in [2, 3, 5, 7] {
        let t = detection_time(nodes, true);
        eprintln!("{nodes} nodes: crash to new configuration {t:?}");
        assert!(t < Duration::from_secs(1), "{nodes} nodes took {t:?}");
        // Not faster than the token timeout: the member must really be silent.
        assert!(
            t >= Duration::from_millis(300),
            "{nodes} nodes: {t:?} is faster than a token timeout"
        );
    }
}

#[test]
fn a_clean_leave_skips_the_timeouts() {
    for nodes in [3, 5] {
        let t = detection_time(nodes, false);
        eprintln!("{nodes} nodes: leave to new configuration {t:?}");
        assert!(t < Duration::from_millis(100), "{nodes} nodes took {t:?}");
    }
}
