//! Unfencing on join with a fabric device, for real: three `phalanxd` nodes whose
//! only device is `fence/test-agents/fence_phalanx_fabric`, an agent in the manner
//! of `fence_scsi` (its metadata marks `on` automatic; each `on`/`off` is appended
//! to the node's file in the fabric's directory).
//!
//! - At start every node is unfenced (`on`), and every node reports each member
//!   unfenced (`fence_unfenced`) — newcomers too: the coordinator unfences every
//!   member again when the membership grows, so they witness it.
//! - Node 3 is killed: the quorate side fences it through the fabric (`off`); the
//!   loss is fenced, not merely gone.
//! - Node 3 restarts: its new incarnation is unfenced again before it is reported
//!   unfenced, by its own process and by the others.

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::events::Event;
use common::recorder::{Recorder, start_quorate};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents")
}

/// The fabric's record of node `n`: its on/off lines, oldest first.
fn fabric(dir: &Path, n: u32) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("n{n}")))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Whether `observer`'s process `incarnation` reported `node` unfenced.
fn unfenced(log: &Recorder, observer: u32, incarnation: u32, node: u32) -> bool {
    let node = node.to_string();
    log.events.iter().any(|o| {
        o.node == observer
            && o.incarnation == incarnation
            && matches!(&o.event, Event::Service { kind, fields }
                if kind == "fence_unfenced" && fields.get("node") == Some(&node))
    })
}

#[test]
fn a_fabric_device_unfences_every_node_at_each_join() {
    let tag = "unfence";
    let dir = TestDir::new(tag);
    let fabric_dir = dir.path.join("fabric");
    std::fs::create_dir_all(&fabric_dir).unwrap();
    let addrs = loopback_addrs(3);
    let sections = format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {}\n    device {{\n        id: fabric\n        \
         agent: fence_phalanx_fabric\n        state_dir: {}\n        \
         pcmk_host_list: n1 n2 n3\n    }}\n}}\n",
        agent_dir().display(),
        fabric_dir.display()
    );
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &sections));
    let (mut cluster, mut log) = start_quorate(&conf, 3, None);
    cluster.until(
        &mut log,
        "every node to report every member unfenced",
        Duration::from_secs(20),
        |l| (1..=3).all(|obs| (1..=3).all(|n| unfenced(l, obs, 0, n))),
    );
    // Unfenced at least once each, never cut off (the coordinator unfences every
    // member again when the membership grows, so that newcomers witness it).
    for n in 1..=3 {
        let f = fabric(&fabric_dir, n);
        assert!(
            !f.is_empty() && f.iter().all(|l| l == "on"),
            "node {n}: {f:?}"
        );
    }

    // Which devices may fence node 2, as stonith_admin --query answers.
    let (code, text) = common::recorder::admin_tool(
        env!("CARGO_BIN_EXE_phalanx-fence"),
        &dir.admin_socket(1),
        &["--query", "n2"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fabric (yes)"), "{text}");
    let (code, text) = common::recorder::admin_tool(
        env!("CARGO_BIN_EXE_phalanx-fence"),
        &dir.admin_socket(1),
        &["--query", "nosuchnode"],
    );
    assert_eq!(code, 1, "{text}");

    cluster.kill9(3);
    cluster.until(
        &mut log,
        "nodes 1 and 2 to report node 3 fenced",
        Duration::from_secs(10),
        |l| {
            let by = l.fenced_by(3);
            by.contains(&1) && by.contains(&2)
        },
    );
    let f3 = fabric(&fabric_dir, 3);
    assert_eq!(
        f3.last().map(String::as_str),
        Some("off"),
        "cut off: {f3:?}"
    );

    let inc = cluster.spawn(3);
    cluster.until(
        &mut log,
        "node 3's new process unfenced, as all see it",
        Duration::from_secs(20),
        |l| {
            // Once per incarnation of node 3 on the survivors.
            unfenced(l, 3, inc, 3)
                && unfenced_reports(l, 1, 3) == 2
                && unfenced_reports(l, 2, 3) == 2
        },
    );
    let f3 = fabric(&fabric_dir, 3);
    let off = f3.iter().position(|l| l == "off").expect("fenced");
    assert!(
        f3.len() > off + 1 && f3[off + 1..].iter().all(|l| l == "on"),
        "let back in after the fencing, never cut off again: {f3:?}"
    );
    for n in [1, 2] {
        let f = fabric(&fabric_dir, n);
        assert!(f.iter().all(|l| l == "on"), "node {n}: {f:?}");
    }
    cluster.leave(&mut log, &[1, 2, 3]);
}

/// How many times `observer` (any of its processes) reported `node` unfenced.
fn unfenced_reports(log: &Recorder, observer: u32, node: u32) -> usize {
    let node = node.to_string();
    log.events
        .iter()
        .filter(|o| {
            o.node == observer
                && matches!(&o.event, Event::Service { kind, fields }
                    if kind == "fence_unfenced" && fields.get("node") == Some(&node))
        })
        .count()
}

/// The on_target fabric's record of node `n`: (action, pid of the process that
/// ran the agent), oldest first.
fn target_fabric(dir: &Path, n: u32) -> Vec<(String, u32)> {
    fabric(dir, n)
        .iter()
        .map(|l| {
            let (action, pid) = l.split_once(' ').expect("action and pid");
            (action.to_string(), pid.parse().expect("a pid"))
        })
        .collect()
}

/// With an `on_target` agent (`fence_phalanx_target`: `on automatic="1"
/// on_target="1"`, as fence_scsi and fence_mpath), each node's unfencing runs on
/// that node's own process — the coordinator hands it to the target's fencer —
/// while fencing (`off`) of a killed node runs on a survivor. The agent writes the
/// pid of the process that ran it (its parent, the node) next to each action.
#[test]
fn an_on_target_device_unfences_each_node_on_that_node() {
    let tag = "ontarget";
    let dir = TestDir::new(tag);
    let fabric_dir = dir.path.join("fabric");
    std::fs::create_dir_all(&fabric_dir).unwrap();
    let addrs = loopback_addrs(3);
    let sections = format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {}\n    device {{\n        id: scsi\n        \
         agent: fence_phalanx_target\n        state_dir: {}\n        \
         pcmk_host_list: n1 n2 n3\n    }}\n}}\n",
        agent_dir().display(),
        fabric_dir.display()
    );
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &sections));
    let (mut cluster, mut log) = start_quorate(&conf, 3, None);
    cluster.until(
        &mut log,
        "every node to report every member unfenced",
        Duration::from_secs(20),
        |l| (1..=3).all(|obs| (1..=3).all(|n| unfenced(l, obs, 0, n))),
    );
    for n in 1..=3 {
        let f = target_fabric(&fabric_dir, n);
        let pid = cluster.pid(n);
        assert!(
            !f.is_empty() && f.iter().all(|(a, p)| a == "on" && *p == pid),
            "node {n} (pid {pid}) must unfence itself: {f:?}"
        );
    }
    let survivors = [cluster.pid(1), cluster.pid(2)];

    cluster.kill9(3);
    cluster.until(
        &mut log,
        "nodes 1 and 2 to report node 3 fenced",
        Duration::from_secs(10),
        |l| {
            let by = l.fenced_by(3);
            by.contains(&1) && by.contains(&2)
        },
    );
    let f3 = target_fabric(&fabric_dir, 3);
    let (action, by) = f3.last().cloned().expect("a record");
    assert_eq!(action, "off", "cut off: {f3:?}");
    assert!(survivors.contains(&by), "fenced by a survivor: {f3:?}");

    let inc = cluster.spawn(3);
    cluster.until(
        &mut log,
        "node 3's new process unfenced, as all see it",
        Duration::from_secs(20),
        |l| unfenced(l, 3, inc, 3) && unfenced_reports(l, 1, 3) == 2,
    );
    let new_pid = cluster.pid(3);
    let f3 = target_fabric(&fabric_dir, 3);
    let off = f3.iter().position(|(a, _)| a == "off").expect("fenced");
    assert!(
        f3.len() > off + 1
            && f3[off + 1..]
                .iter()
                .all(|(a, p)| a == "on" && *p == new_pid),
        "node 3's new process (pid {new_pid}) lets itself back in: {f3:?}"
    );
    cluster.leave(&mut log, &[1, 2, 3]);
}
