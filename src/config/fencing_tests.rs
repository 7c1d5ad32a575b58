//! The `fencing` section in both syntaxes.

use super::*;

const NODES: &str = "totem {
    cluster_name: t
}
nodelist {
    node {
        ring0_addr: 127.0.0.1
        nodeid: 1
    }
    node {
        ring0_addr: 127.0.0.2
        nodeid: 2
    }
}
";

fn corosync(fencing: &str) -> Result<Loaded, ConfigError> {
    from_corosync_str(&format!("{NODES}{fencing}"), "corosync.conf")
}

#[test]
fn absent_section_means_fencing_off() {
    let loaded = corosync("").unwrap();
    assert_eq!(loaded.config.fencing, FencingConfig::default());
    assert!(!loaded.config.fencing.enabled);
}

#[test]
fn corosync_section_maps_options_devices_and_levels() {
    let loaded = corosync(
        "
fencing {
    action: off
    timeout: 20000
    priority_fencing_delay: 5000
    no_quorum_policy: suicide
    device {
        id: kill
        agent: fence_phalanx_kill
        pcmk_host_map: node1:/run/n1.pid;node2:/run/n2.pid
        pcmk_delay_base: 2s
    }
    device {
        id: pdu
        agent: fence_dummy
    }
    level {
        index: 1
        target: node1
        devices: kill, pdu
    }
    level {
        index: 2
        target_attribute: rack
        target_value: r1
        devices: pdu
    }
    bogus: 1
}
",
    )
    .unwrap();
    let f = &loaded.config.fencing;
    assert!(f.enabled);
    assert_eq!(f.action, FencingAction::Off);
    assert_eq!(f.timeout.as_millis(), 20_000);
    assert_eq!(f.priority_delay.as_millis(), 5_000);
    assert_eq!(f.no_quorum_policy, NoQuorumPolicy::Suicide);
    assert_eq!(f.devices.len(), 2);
    let kill = f.device("kill").unwrap();
    assert_eq!(kill.agent, "fence_phalanx_kill");
    assert_eq!(
        kill.params,
        vec![
            (
                "pcmk_host_map".to_string(),
                "node1:/run/n1.pid;node2:/run/n2.pid".to_string()
            ),
            ("pcmk_delay_base".to_string(), "2s".to_string()),
        ]
    );
    assert_eq!(f.levels[0].devices, vec!["kill", "pdu"]);
    assert_eq!(f.levels[0].target, LevelTarget::Node("node1".into()));
    assert_eq!(
        f.levels[1].target,
        LevelTarget::Attribute {
            name: "rack".into(),
            value: "r1".into()
        }
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.key == "fencing.bogus" && w.message.contains("unknown key")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn bad_levels_and_devices_are_errors_with_their_line() {
    let err = corosync(
        "
fencing {
    device {
        id: a
        agent: fence_dummy
    }
    level {
        index: 1
        target: node1
        devices: a,missing
    }
}
",
    )
    .unwrap_err();
    assert!(err.message.contains("\"missing\""), "{err}");
    assert_eq!(err.line, Some(23), "{err}"); // the `devices:` line

    let err = corosync(
        "fencing {\n device {\n id: a\n agent: x\n }\n device {\n id: a\n agent: y\n }\n}\n",
    )
    .unwrap_err();
    assert!(err.message.contains("duplicate device id"), "{err}");

    let err = corosync("fencing {\n device {\n id: a\n agent: x\n }\n level {\n index: 0\n target: n\n devices: a\n }\n}\n")
        .unwrap_err();
    assert!(err.message.contains("not in 1..=9"), "{err}");

    let err =
        corosync("fencing {\n level {\n index: 1\n target_attribute: rack\n devices: a\n }\n}\n")
            .unwrap_err();
    assert!(err.message.contains("needs target_value"), "{err}");

    let err = corosync(
        "fencing {\n level {\n index: 1\n target: a\n target_pattern: b\n devices: a\n }\n}\n",
    )
    .unwrap_err();
    assert!(err.message.contains("exactly one of"), "{err}");

    let err = corosync("fencing {\n action: explode\n}\n").unwrap_err();
    assert!(err.message.contains("expected reboot or off"), "{err}");

    let err = corosync("fencing {\n device {\n id: a\n agent: /usr/sbin/fence_dummy\n }\n}\n")
        .unwrap_err();
    assert!(err.message.contains("not a path"), "{err}");

    let err = corosync("fencing {\n device {\n agent: x\n }\n}\n").unwrap_err();
    assert!(err.message.contains("needs an id"), "{err}");
}

#[test]
fn toml_section_maps_the_same_model() {
    let text = r#"
[[nodes]]
id = 1
name = "node1"
addrs = ["127.0.0.1"]
[[nodes]]
id = 2
name = "node2"
addrs = ["127.0.0.2"]

[fencing]
action = "off"
timeout_ms = 20000
no_quorum_policy = "ignore"

[[fencing.devices]]
id = "kill"
agent = "fence_phalanx_kill"
params = { pcmk_delay_max = "3s", retries = 2, verbose = true }

[[fencing.levels]]
index = 1
target_pattern = "node[0-9]+"
devices = ["kill"]
"#;
    let loaded = from_toml_str(text, "c.toml").unwrap();
    let f = &loaded.config.fencing;
    assert!(f.enabled);
    assert_eq!(f.action, FencingAction::Off);
    assert_eq!(f.timeout.as_millis(), 20_000);
    assert_eq!(f.no_quorum_policy, NoQuorumPolicy::Ignore);
    assert_eq!(
        f.device("kill").unwrap().params,
        vec![
            ("pcmk_delay_max".to_string(), "3s".to_string()),
            ("retries".to_string(), "2".to_string()),
            ("verbose".to_string(), "true".to_string()),
        ]
    );
    assert_eq!(
        f.levels[0].target,
        LevelTarget::Pattern("node[0-9]+".into())
    );

    let bad = text.replace("devices = [\"kill\"]", "devices = [\"nope\"]");
    let err = from_toml_str(&bad, "c.toml").unwrap_err();
    assert!(err.message.contains("\"nope\""), "{err}");
}

#[test]
fn watchdog_is_off_by_default_with_the_sbd_default_timeout() {
    let f = corosync("fencing {\n}\n").unwrap().config.fencing;
    assert_eq!(f.watchdog, WatchdogConfig::Off);
    assert_eq!(f.effective_watchdog_timeout(), DEFAULT_WATCHDOG_TIMEOUT);
}

#[test]
fn corosync_watchdog_process_device_and_timeout() {
    let f = corosync("fencing {\n    watchdog: process\n    watchdog_timeout: 1000\n}\n")
        .unwrap()
        .config
        .fencing;
    assert_eq!(f.watchdog, WatchdogConfig::Process);
    assert_eq!(f.effective_watchdog_timeout().as_millis(), 1000);
    let f = corosync("fencing {\n    watchdog: /dev/watchdog0\n}\n")
        .unwrap()
        .config
        .fencing;
    assert_eq!(
        f.watchdog,
        WatchdogConfig::Device(std::path::PathBuf::from("/dev/watchdog0"))
    );
    let e = corosync("fencing {\n    watchdog: dev/watchdog\n}\n").unwrap_err();
    assert!(e.to_string().contains("device path"), "{e}");
}

#[test]
fn toml_watchdog() {
    let text = "[totem]\ncluster_name = \"t\"\n[[nodes]]\nid = 1\naddrs = [\"127.0.0.1\"]\n\
                [fencing]\nwatchdog = \"process\"\nwatchdog_timeout_ms = 750\n";
    let f = from_toml_str(text, "c.toml").unwrap().config.fencing;
    assert_eq!(f.watchdog, WatchdogConfig::Process);
    assert_eq!(f.watchdog_timeout.as_millis(), 750);
    let bad = text.replace("\"process\"", "\"sometimes\"");
    let e = from_toml_str(&bad, "c.toml").unwrap_err();
    assert!(e.to_string().contains("fencing.watchdog"), "{e}");
}

#[test]
fn fencing_watchdog_timeout_needs_a_watchdog_suicide_and_a_longer_timeout() {
    let ok = corosync(
        "fencing {\n    watchdog: process\n    watchdog_timeout: 1000\n    \
         no_quorum_policy: suicide\n    fencing_watchdog_timeout: 2000\n}\n",
    )
    .unwrap()
    .config
    .fencing;
    assert_eq!(ok.fencing_watchdog_timeout.as_millis(), 2000);
    for (bad, why) in [
        (
            "no_quorum_policy: suicide\n    fencing_watchdog_timeout: 2000",
            "set watchdog",
        ),
        (
            "watchdog: process\n    fencing_watchdog_timeout: 9000",
            "suicide",
        ),
        (
            "watchdog: process\n    no_quorum_policy: suicide\n    watchdog_timeout: 1000\n    \
             fencing_watchdog_timeout: 1000",
            "must exceed",
        ),
    ] {
        let e = corosync(&format!("fencing {{\n    {bad}\n}}\n")).unwrap_err();
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
    let text = "[totem]\ncluster_name = \"t\"\n[[nodes]]\nid = 1\naddrs = [\"127.0.0.1\"]\n\
                [fencing]\nwatchdog = \"process\"\nno_quorum_policy = \"suicide\"\n\
                fencing_watchdog_timeout_ms = 12000\n";
    let f = from_toml_str(text, "c.toml").unwrap().config.fencing;
    assert_eq!(f.fencing_watchdog_timeout.as_millis(), 12_000);
}

#[test]
fn startup_fencing_dead_time_and_pending_timeout_in_both_syntaxes() {
    let d = corosync("fencing {\n}\n").unwrap().config.fencing;
    assert!(d.startup_fencing, "startup-fencing defaults to true");
    assert_eq!(d.dc_deadtime, DEFAULT_DC_DEADTIME);
    assert_eq!(
        d.node_pending_timeout,
        std::time::Duration::ZERO,
        "off by default"
    );
    let f = corosync(
        "fencing {\n    startup_fencing: no\n    dc_deadtime: 5000\n    \
         node_pending_timeout: 30000\n}\n",
    )
    .unwrap()
    .config
    .fencing;
    assert!(!f.startup_fencing);
    assert_eq!(f.dc_deadtime.as_millis(), 5000);
    assert_eq!(f.node_pending_timeout.as_millis(), 30_000);
    let text = "[totem]\ncluster_name = \"t\"\n[[nodes]]\nid = 1\naddrs = [\"127.0.0.1\"]\n\
                [fencing]\nstartup_fencing = false\ndc_deadtime_ms = 7000\n\
                node_pending_timeout_ms = 9000\n";
    let t = from_toml_str(text, "c.toml").unwrap().config.fencing;
    assert!(!t.startup_fencing);
    assert_eq!(t.dc_deadtime.as_millis(), 7000);
    assert_eq!(t.node_pending_timeout.as_millis(), 9000);
    let bad = corosync("fencing {\n    startup_fencing: maybe\n}\n").unwrap_err();
    assert!(bad.to_string().contains("startup_fencing"), "{bad}");
}
