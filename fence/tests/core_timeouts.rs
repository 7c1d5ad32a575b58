//! The fencer's total-timeout arithmetic against the cts-fencing log vectors
//! ("Total timeout set to Ns"), each restated as a table row: the devices and
//! levels registered, the request, and the total the fencer announces.

mod core_support;

use core_support::{Harness, Mode, device, dummy_caps, no_on_caps};
use phalanx_fence::Action;
use phalanx_fence::core::{DeviceBudget, attempt_budget_secs};
use std::time::Duration;

const ALL3: &str = "node1 node2 node3";

/// (device id, its parameters, passes?)
type DeviceRow = (&'static str, &'static [(&'static str, &'static str)], bool);

struct Row {
    name: &'static str,
    devices: &'static [DeviceRow],
    levels: &'static [(u8, &'static [&'static str])],
    action: Action,
    timeout_s: u64,
    delay: Option<i64>,
    total: u64,
}

const ROWS: &[Row] = &[
    Row {
        name: "topology_simple (-t 5, one device in level 1)",
        devices: &[("true", &[("pcmk_host_list", ALL3)], true)],
        levels: &[(1, &["true"])],
        action: Action::Off,
        timeout_s: 5,
        delay: None,
        total: 6,
    },
    Row {
        name: "topology_add_remove (-t 5, no topology left)",
        devices: &[("true", &[("pcmk_host_list", ALL3)], true)],
        levels: &[],
        action: Action::Off,
        timeout_s: 5,
        delay: None,
        total: 6,
    },
    Row {
        name: "topology_device_fails (levels false/true, -t 20)",
        devices: &[
            ("false", &[("pcmk_host_list", ALL3)], false),
            ("true", &[("pcmk_host_list", ALL3)], true),
        ],
        levels: &[(1, &["false"]), (2, &["true"])],
        action: Action::Off,
        timeout_s: 20,
        delay: None,
        total: 48,
    },
    Row {
        name: "custom_timeout_1 (5+1+4, no topology)",
        devices: &[
            ("false1", &[("pcmk_host_list", ALL3)], false),
            (
                "true1",
                &[("pcmk_host_list", "node3"), ("pcmk_off_timeout", "1")],
                true,
            ),
            (
                "false2",
                &[("pcmk_host_list", "node3"), ("pcmk_off_timeout", "4")],
                false,
            ),
        ],
        levels: &[],
        action: Action::Off,
        timeout_s: 5,
        delay: None,
        total: 12,
    },
    Row {
        name: "custom_timeout_2 (5+1+4000 with topology)",
        devices: &[
            ("false1", &[("pcmk_host_list", ALL3)], false),
            (
                "true1",
                &[("pcmk_host_list", "node3"), ("pcmk_off_timeout", "1000ms")],
                true,
            ),
            (
                "false2",
                &[("pcmk_host_list", "node3"), ("pcmk_off_timeout", "4000s")],
                false,
            ),
        ],
        levels: &[(1, &["false1"]), (2, &["true1"]), (3, &["false2"])],
        action: Action::Off,
        timeout_s: 5,
        delay: None,
        total: 4807,
    },
    Row {
        name: "fence_multi_device_failure (3 devices, -t 2)",
        devices: &[
            ("false1", &[("pcmk_host_list", ALL3)], false),
            ("false2", &[("pcmk_host_list", ALL3)], false),
            ("false3", &[("pcmk_host_list", ALL3)], false),
        ],
        levels: &[],
        action: Action::Off,
        timeout_s: 2,
        delay: None,
        total: 7,
    },
    Row {
        name: "fence_device_failure_rollover (3 devices, -t 5)",
        devices: &[
            ("false1", &[("pcmk_host_list", ALL3)], false),
            ("true1", &[("pcmk_host_list", ALL3)], true),
            ("false2", &[("pcmk_host_list", ALL3)], false),
        ],
        levels: &[],
        action: Action::Off,
        timeout_s: 5,
        delay: None,
        total: 18,
    },
    Row {
        name: "topology_multi_level_fails (6 devices in 3 levels, -t 3)",
        devices: &[
            ("true1", &[("pcmk_host_list", ALL3)], true),
            ("true2", &[("pcmk_host_list", ALL3)], true),
            ("true3", &[("pcmk_host_list", ALL3)], true),
            ("true4", &[("pcmk_host_list", ALL3)], true),
            ("false1", &[("pcmk_host_list", ALL3)], false),
            ("false2", &[("pcmk_host_list", ALL3)], false),
        ],
        levels: &[
            (1, &["false1", "true1"]),
            (2, &["true2", "false2"]),
            (3, &["true3", "true4"]),
        ],
        action: Action::Off,
        timeout_s: 3,
        delay: None,
        total: 21,
    },
    Row {
        name: "topology_level_removal (levels 1 and 3 left, -t 20)",
        devices: &[
            ("true1", &[("pcmk_host_list", ALL3)], true),
            ("true2", &[("pcmk_host_list", ALL3)], true),
            ("true3", &[("pcmk_host_list", ALL3)], true),
            ("true4", &[("pcmk_host_list", ALL3)], true),
            ("false1", &[("pcmk_host_list", ALL3)], false),
            ("false2", &[("pcmk_host_list", ALL3)], false),
        ],
        levels: &[(1, &["false1", "true1"]), (3, &["true3", "true4"])],
        action: Action::Off,
        timeout_s: 20,
        delay: None,
        total: 96,
    },
    Row {
        name: "remap_simple (reboot over two devices, off timeouts 1 and 2)",
        devices: &[
            (
                "true1",
                &[
                    ("pcmk_host_list", "node_fake"),
                    ("pcmk_off_timeout", "1"),
                    ("pcmk_reboot_timeout", "10"),
                ],
                true,
            ),
            (
                "true2",
                &[
                    ("pcmk_host_list", "node_fake"),
                    ("pcmk_off_timeout", "2"),
                    ("pcmk_reboot_timeout", "20"),
                ],
                true,
            ),
        ],
        levels: &[(1, &["true1", "true2"])],
        action: Action::Reboot,
        timeout_s: 5,
        delay: None,
        total: 3,
    },
    Row {
        name: "topology_delays (default 120 s, --delay 1, base/max delays)",
        devices: &[
            (
                "true1",
                &[("pcmk_host_list", ALL3), ("pcmk_delay_base", "1")],
                true,
            ),
            (
                "false1",
                &[("pcmk_host_list", ALL3), ("pcmk_delay_base", "1")],
                false,
            ),
            (
                "true2",
                &[
                    ("pcmk_host_list", ALL3),
                    ("pcmk_delay_base", "1"),
                    ("pcmk_delay_max", "2"),
                ],
                true,
            ),
            (
                "true3",
                &[
                    ("pcmk_host_list", ALL3),
                    ("pcmk_delay_base", "2"),
                    ("pcmk_delay_max", "1"),
                ],
                true,
            ),
            ("true4", &[("pcmk_host_list", ALL3)], true),
        ],
        levels: &[(1, &["true1", "false1"]), (2, &["true2", "true3", "true4"])],
        action: Action::Off,
        timeout_s: 120,
        delay: Some(1),
        total: 727,
    },
];

fn target_of(row: &Row) -> &'static str {
    if row
        .devices
        .iter()
        .any(|d| d.1.iter().any(|p| p.1 == "node_fake"))
    {
        "node_fake"
    } else {
        "node3"
    }
}

#[test]
fn total_timeout_vectors_from_cts_fencing() {
    for row in ROWS {
        let mut h = Harness::new(1);
        for (id, params, pass) in row.devices {
            h.add(
                device(id, params, dummy_caps()),
                if *pass { Mode::Pass } else { Mode::Fail },
            );
        }
        for (index, devs) in row.levels {
            h.level(target_of(row), *index, devs);
        }
        h.request(target_of(row), row.action, row.timeout_s, row.delay);
        assert_eq!(h.total_timeout(), Some(row.total), "{}", row.name);
    }
}

#[test]
fn remap_simple_off_uses_off_timeouts_too() {
    // remap_simple_off: true1 stays off (pcmk_reboot_action=off), true2 has no `on`.
    let mut h = Harness::new(1);
    h.add(
        device(
            "true1",
            &[
                ("pcmk_host_list", "node_fake"),
                ("pcmk_off_timeout", "1"),
                ("pcmk_reboot_timeout", "10"),
                ("pcmk_reboot_action", "off"),
            ],
            dummy_caps(),
        ),
        Mode::Pass,
    );
    h.add(
        device(
            "true2",
            &[
                ("pcmk_host_list", "node_fake"),
                ("pcmk_off_timeout", "2"),
                ("pcmk_reboot_timeout", "20"),
            ],
            no_on_caps(),
        ),
        Mode::Pass,
    );
    h.level("node_fake", 1, &["true1", "true2"]);
    h.request("node_fake", Action::Reboot, 5, None);
    assert_eq!(h.total_timeout(), Some(3));
    h.run(Duration::from_secs(60));
    // Off on both, and no `on` at all: one stays off by configuration, the other
    // cannot.
    assert_eq!(
        h.fence_calls(),
        [
            ("true1".to_string(), Action::Off),
            ("true2".to_string(), Action::Off)
        ]
    );
    assert_eq!(h.outcome(), Some(true));
}

#[test]
fn per_attempt_budgets_of_topology_delays() {
    // "Requesting that … perform 'off' … using true1 (146s)", false1 145 s,
    // true2 146 s, true3 145 s: timeout 120 plus the delay allowance, × 1.2, plus
    // × 1.2 of the requested delay for the very first device only.
    let b = |base, max| DeviceBudget {
        timeout_s: 120,
        delay_base_s: base,
        delay_max_s: max,
    };
    let rows = [
        ("true1", b(1, 0), true, 146),
        ("false1", b(1, 0), false, 145),
        ("true2", b(1, 2), false, 146),
        ("true3", b(2, 1), false, 145),
        ("true4", b(0, 0), false, 144),
    ];
    for (name, budget, first, want) in rows {
        assert_eq!(attempt_budget_secs(&budget, Some(1), first), want, "{name}");
    }
}
