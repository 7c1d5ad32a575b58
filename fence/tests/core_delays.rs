//! Delays against fence races (§2.7): the `topology_delays` vectors, the requested
//! delay applying only before the first device, and priority-fencing-delay.

mod core_support;

use core_support::{Harness, Mode, device, dummy_caps};
use phalanx_fence::Action;
use phalanx_fence::core::{
    NodePriority, SeededRng, device_delay_secs, priority_fencing_delay_secs, start_delay_secs,
};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn device_delay_vectors() {
    // (base, max, the set of delays that must all occur and nothing else)
    let rows: &[(u64, u64, &[u64])] = &[
        (1, 0, &[1]),
        (1, 2, &[1, 2]),
        (2, 1, &[1]),
        (0, 0, &[0]),
        (0, 3, &[0, 1, 2, 3]),
        (5, 5, &[5]),
    ];
    for (base, max, want) in rows {
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            seen.insert(device_delay_secs(*base, *max, &mut SeededRng::new(seed)));
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            *want,
            "base={base} max={max}"
        );
    }
}

#[test]
fn requested_delay_only_first_and_negative_disables() {
    let mut rng = SeededRng::new(3);
    // (requested, first device, base, max, expected)
    let rows = [
        (Some(1), true, 1, 0, 2),
        (Some(1), false, 1, 0, 1),
        (Some(5), true, 0, 0, 5),
        (None, true, 0, 0, 0),
        (Some(-1), true, 4, 0, 0),
        (Some(-1), false, 4, 9, 0),
        (Some(0), true, 3, 0, 3),
    ];
    for (req, first, base, max, want) in rows {
        assert_eq!(
            start_delay_secs(req, first, base, max, &mut rng),
            want,
            "{req:?} {first} {base} {max}"
        );
    }
}

#[test]
fn topology_delays_through_the_fencer() {
    let all = "node1 node2 node3";
    let mut saw_true2 = BTreeSet::new();
    for seed in 0..40 {
        let mut h = Harness::new(seed);
        h.add(
            device(
                "true1",
                &[("pcmk_host_list", all), ("pcmk_delay_base", "1")],
                dummy_caps(),
            ),
            Mode::Pass,
        );
        h.add(
            device(
                "false1",
                &[("pcmk_host_list", all), ("pcmk_delay_base", "1")],
                dummy_caps(),
            ),
            Mode::Fail,
        );
        h.add(
            device(
                "true2",
                &[
                    ("pcmk_host_list", all),
                    ("pcmk_delay_base", "1"),
                    ("pcmk_delay_max", "2"),
                ],
                dummy_caps(),
            ),
            Mode::Pass,
        );
        h.add(
            device(
                "true3",
                &[
                    ("pcmk_host_list", all),
                    ("pcmk_delay_base", "2"),
                    ("pcmk_delay_max", "1"),
                ],
                dummy_caps(),
            ),
            Mode::Pass,
        );
        h.add(
            device("true4", &[("pcmk_host_list", all)], dummy_caps()),
            Mode::Pass,
        );
        h.level("node3", 1, &["true1", "false1"]);
        h.level("node3", 2, &["true2", "true3", "true4"]);
        h.request("node3", Action::Off, 120, Some(1));
        h.run(Duration::from_secs(600));
        assert_eq!(h.outcome(), Some(true));
        // Gap between one call's answer (100 ms after it) and the next call.
        let mut prev_done = phalanx_totem::Time::ZERO;
        let mut gaps = Vec::new();
        for e in &h.calls {
            gaps.push((e.call.device.clone(), (e.at - prev_done).as_millis()));
            prev_done = e.at + h.latency;
        }
        let g = |i: usize| gaps[i].1;
        let names: Vec<&str> = gaps.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(
            names,
            ["true1", "false1", "false1", "true2", "true3", "true4"]
        );
        assert_eq!(
            g(0),
            2000,
            "requested 1 s + base 1 s before the first device"
        );
        assert_eq!(g(1), 1000, "base only for the next device");
        assert_eq!(g(2), 1000, "the retry pause, no new delay");
        assert!(
            g(3) == 1000 || g(3) == 2000,
            "true2: 1 or 2 s, got {}",
            g(3)
        );
        saw_true2.insert(g(3));
        assert_eq!(g(4), 1000, "true3: base capped to max = 1 s");
        assert_eq!(g(5), 0, "true4: no delay");
    }
    assert_eq!(
        saw_true2.len(),
        2,
        "both random outcomes occur over the seeds"
    );
}

fn node(online: bool, priority: i64) -> NodePriority {
    NodePriority {
        cluster_node: true,
        online,
        priority,
    }
}

#[test]
fn priority_fencing_delay_conditions() {
    let lost_top = node(false, 10);
    let us = node(true, 0);
    // (option ms, target, all nodes, expected seconds)
    let rows: Vec<(&str, u64, NodePriority, Vec<NodePriority>, u64)> = vec![
        (
            "applies: 1 of 2 online, target highest",
            5000,
            lost_top,
            vec![us, lost_top],
            5,
        ),
        ("option off", 0, lost_top, vec![us, lost_top], 0),
        (
            "target online in our partition",
            5000,
            node(true, 10),
            vec![us, node(true, 10)],
            0,
        ),
        (
            "we hold more than half",
            5000,
            lost_top,
            vec![us, node(true, 0), lost_top],
            0,
        ),
        (
            "exactly half is not more than half",
            5000,
            lost_top,
            vec![us, node(true, 0), lost_top, node(false, 0)],
            5,
        ),
        (
            "all priorities equal",
            5000,
            node(false, 0),
            vec![us, node(false, 0)],
            0,
        ),
        (
            "target not the highest",
            5000,
            node(false, 5),
            vec![node(true, 10), node(false, 5)],
            0,
        ),
        (
            "ties for highest still delay",
            5000,
            lost_top,
            vec![node(true, 10), lost_top, node(false, 1)],
            5,
        ),
        (
            "remote nodes do not count and are never delayed",
            5000,
            NodePriority {
                cluster_node: false,
                online: false,
                priority: 99,
            },
            vec![us, lost_top],
            0,
        ),
        (
            "rounds like a timeout",
            1500,
            lost_top,
            vec![us, lost_top],
            2,
        ),
    ];
    for (name, option, target, all, want) in rows {
        assert_eq!(
            priority_fencing_delay_secs(option, &target, &all),
            want,
            "{name}"
        );
    }
}
