//! The watchdog through `Node::start` in this process (its own test binary: a
//! bug here gets the test process SIGKILLed, which fails the run rather than
//! other tests).
//!
//! - a start that fails after the watchdog was armed (the admin socket fails after
//!   the driver thread runs; its leave disarms the watchdog) leaves this process
//!   alive past the watchdog timeout (a start failing before the driver runs
//!   disarms on drop: unit-tested in src/node/watchdog.rs);
//! - a missing supervisor, or a device that is not a watchdog, is a typed
//!   `NodeError::Watchdog`.

mod common;

use phalanx::fence::core::NoQuorumPolicy;
use phalanx::fence::watchdog::io::WatchdogError;
use phalanx::node::{Node, NodeError, NodeOptions, WatchdogKind, WatchdogOptions};
use phalanx::totem::Config;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(300);

fn options(kind: WatchdogKind) -> NodeOptions {
    let mut o = NodeOptions::new(
        Config::new(1, vec![1, 2]),
        common::conf::loopback_node_addrs(2),
    );
    o.watchdog = Some(WatchdogOptions {
        kind,
        timeout: TIMEOUT,
        no_quorum_policy: NoQuorumPolicy::Fence,
    });
    o
}

fn supervisor() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_phalanx-watchdog"))
}

#[test]
fn a_failed_start_leaves_the_caller_alive() {
    let dir = std::env::temp_dir().join(format!("phalanx-wd-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let mut o = options(WatchdogKind::Process {
        supervisor: supervisor(),
    });
    // The admin socket fails after the driver (and its watchdog) exist.
    o.admin_socket = Some(file.join("node.sock"));
    let err = Node::start(o).err().expect("the start must fail");
    assert!(matches!(err, NodeError::AdminSocket { .. }), "{err:?}");
    // Were the supervisor still armed, it would SIGKILL this process within
    // TIMEOUT; three timeouts later we are alive.
    let start = Instant::now();
    while start.elapsed() < TIMEOUT * 3 {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_supervisor_is_a_watchdog_error() {
    let o = options(WatchdogKind::Process {
        supervisor: PathBuf::from("/nonexistent/phalanx-watchdog"),
    });
    match Node::start(o).err().expect("the start must fail") {
        NodeError::Watchdog(WatchdogError::Spawn { path, .. }) => {
            assert_eq!(path, PathBuf::from("/nonexistent/phalanx-watchdog"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_device_that_is_not_a_watchdog_is_a_watchdog_error() {
    let o = options(WatchdogKind::Device(PathBuf::from("/dev/null")));
    match Node::start(o).err().expect("the start must fail") {
        NodeError::Watchdog(WatchdogError::Ioctl { what, .. }) => {
            assert_eq!(what, "WDIOC_SETTIMEOUT")
        }
        other => panic!("{other:?}"),
    }
}
