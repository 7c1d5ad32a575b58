//! Run-time registration through `phalanx-fence`, as with `stonith_admin
//! --register/--register-level/--deregister/--deregister-level`: three `phalanxd`
//! nodes with `cib { }` and a `fencing` section that names no device. Devices and
//! levels registered on one node reach every node's fencer; killing a node then
//! gets it fenced through them by the real test agents (the run-time level 1, a
//! device that always fails, is tried first; level 2, the kill device, fences);
//! deregistering removes them everywhere. Bad input gets a typed refusal (exit 1
//! with the reason) and changes nothing.

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::{admin_tool, start_quorate, write_pid_files};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents")
}

fn fence_tool(dir: &TestDir, node: u32, args: &[&str]) -> (i32, String) {
    admin_tool(
        env!("CARGO_BIN_EXE_phalanx-fence"),
        &dir.admin_socket(node),
        args,
    )
}

fn registered(dir: &TestDir, node: u32) -> String {
    let (code, text) = fence_tool(dir, node, &["--list-registered"]);
    assert_eq!(code, 0, "node {node}: {text}");
    text
}

/// `--query NODE`: the devices that may fence it (exit 1 when none).
fn query(dir: &TestDir, node: u32, target: &str) -> String {
    fence_tool(dir, node, &["--query", target]).1
}

/// Polls (bounded) until every listed node satisfies `ok`: the CIB change reaches
/// each node in agreed order, and each then reads the agent's metadata in the
/// background before it registers the device.
fn until_all(dir: &TestDir, nodes: &[u32], what: &str, ok: impl Fn(&TestDir, u32) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for &n in nodes {
        while !ok(dir, n) {
            assert!(Instant::now() < deadline, "node {n}: {what} after 20 s");
            std::thread::sleep(Duration::from_millis(20)); // poll interval
        }
    }
}

/// Runs the tool on `node` and expects a refusal naming `why`.
fn refused(dir: &TestDir, node: u32, args: &[&str], why: &str) {
    let (code, text) = fence_tool(dir, node, args);
    assert_eq!(code, 1, "{args:?}: {text}");
    assert!(text.contains(why), "{args:?}: expected {why:?} in {text}");
}

#[test]
fn devices_and_levels_registered_at_run_time_fence_a_killed_node() {
    let tag = "fence-reg";
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(3);
    let sections = format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {}\n}}\ncib {{\n}}\n",
        agent_dir().display()
    );
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &sections));
    let (mut cluster, mut log) = start_quorate(&conf, 3, None);
    write_pid_files(&dir.path, &cluster, &[1, 2, 3]);

    // Bad input: typed refusals, nothing registered.
    refused(
        &dir,
        1,
        &["--register", "ghost", "--agent", "fence_no_such_agent"],
        "unknown agent fence_no_such_agent",
    );
    refused(
        &dir,
        1,
        &["--register", "1bad", "--agent", "fence_phalanx_kill"],
        "bad name",
    );
    refused(
        &dir,
        2,
        &["--deregister", "nothing"],
        "unknown device nothing",
    );
    refused(
        &dir,
        2,
        &["--register-level", "n3", "1", "nothing"],
        "unknown device nothing",
    );
    refused(
        &dir,
        2,
        &["--register-level", "n3", "x", "kill"],
        "bad level",
    );
    refused(&dir, 2, &["--deregister-level", "n3", "1"], "bad level");
    assert!(registered(&dir, 1).contains("0 devices"));

    // Two devices registered through node 1, with attributes as -o.
    let pid_dir = format!("pidfile_dir={}", dir.path.display());
    let (code, text) = fence_tool(
        &dir,
        1,
        &[
            "--register",
            "kill",
            "--agent",
            "fence_phalanx_kill",
            "-o",
            &pid_dir,
            "-o",
            "pcmk_host_list=n1 n2 n3",
            // Without levels the fencer would try this device first (higher
            // priority) and never the failing one: a try of that one shows the
            // run-time level was used.
            "-o",
            "priority=10",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let count = dir.path.join("broken.count");
    let count_file = format!("count_file={}", count.display());
    let (code, text) = fence_tool(
        &dir,
        1,
        &[
            "--register",
            "broken",
            "--agent",
            "fence_phalanx_test",
            "-o",
            "mode=flaky",
            "-o",
            "fail_times=1000000",
            "-o",
            &count_file,
            "-o",
            "pcmk_host_list=n1 n2 n3",
        ],
    );
    assert_eq!(code, 0, "{text}");
    refused(
        &dir,
        3,
        &["--register", "kill", "--agent", "fence_phalanx_kill"],
        "device kill is already registered",
    );
    until_all(
        &dir,
        &[1, 2, 3],
        "the run-time devices registered",
        |d, n| {
            let r = registered(d, n);
            r.contains("kill (fence_phalanx_kill)") && r.contains("broken (fence_phalanx_test)")
        },
    );
    for n in 1..=3 {
        let q = query(&dir, n, "n3");
        assert!(q.contains("kill") && q.contains("broken"), "node {n}: {q}");
    }

    // Levels for node 3 registered through node 2: the failing device first.
    refused(
        &dir,
        2,
        &["--register-level", "n3", "12", "kill"],
        "index 12 is not in 1..9",
    );
    refused(
        &dir,
        2,
        &["--register-level", "nowhere", "1", "kill"],
        "unknown node nowhere",
    );
    for (level, device) in [("1", "broken"), ("2", "kill")] {
        let (code, text) = fence_tool(&dir, 2, &["--register-level", "n3", level, device]);
        assert_eq!(code, 0, "{text}");
    }
    refused(
        &dir,
        1,
        &["--register-level", "n3", "2", "kill"],
        "n3 already has a level 2",
    );

    // Node 3 dies: the quorate side fences it through the run-time levels.
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
    let done: Vec<_> = log
        .fence()
        .into_iter()
        .filter(|(_, k, f, _)| *k == "fence_done" && f["client"] == "phalanx-decision")
        .collect();
    assert_eq!(done.len(), 1, "{}", log.fence_lines());
    assert_eq!(done[0].2["ok"], "1", "{}", log.fence_lines());
    let tries = std::fs::read_to_string(&count).unwrap_or_default();
    assert!(
        !tries.trim().is_empty() && tries.trim() != "0",
        "level 1 was not tried first (count file: {tries:?})"
    );

    // Deregistering removes the level and the device on every node.
    let (code, text) = fence_tool(&dir, 1, &["--deregister-level", "n3", "1"]);
    assert_eq!(code, 0, "{text}");
    refused(&dir, 1, &["--deregister-level", "n3", "1"], "bad level");
    let (code, text) = fence_tool(&dir, 2, &["--deregister", "broken"]);
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2], "the device deregistered", |d, n| {
        !registered(d, n).contains("broken")
    });
    for n in [1, 2] {
        let q = query(&dir, n, "n3");
        assert!(q.contains("kill") && !q.contains("broken"), "node {n}: {q}");
    }
    let (code, text) = fence_tool(&dir, 1, &["--deregister", "kill"]);
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2], "no device left", |d, n| {
        registered(d, n).contains("0 devices")
    });
    refused(&dir, 1, &["--deregister", "kill"], "unknown device kill");
    cluster.leave(&mut log, &[1, 2]);
}

/// Devices of the configuration file are a separate source: run-time
/// registration may neither take nor remove their ids, and a run-time device
/// registered beside them joins them on every node.
#[test]
fn configuration_file_devices_are_not_run_time_ones() {
    let tag = "fence-reg-conf";
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(2);
    let sections = format!(
        "quorum {{\n    provider: corosync_votequorum\n    two_node: 1\n}}\n\
         fencing {{\n    agent_dir: {}\n    device {{\n        id: kill\n        \
         agent: fence_phalanx_kill\n        pidfile_dir: {}\n        \
         pcmk_host_list: n1 n2\n    }}\n}}\ncib {{\n}}\n",
        agent_dir().display(),
        dir.path.display()
    );
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &sections));
    let (mut cluster, mut log) = start_quorate(&conf, 2, None);
    refused(
        &dir,
        1,
        &["--deregister", "kill"],
        "device kill is defined in the configuration file",
    );
    refused(
        &dir,
        2,
        &["--register", "kill", "--agent", "fence_phalanx_test"],
        "device kill is already registered",
    );
    let (code, text) = fence_tool(
        &dir,
        2,
        &[
            "--register",
            "extra",
            "--agent",
            "fence_phalanx_test",
            "-o",
            "pcmk_host_list=n1",
        ],
    );
    assert_eq!(code, 0, "{text}");
    until_all(
        &dir,
        &[1, 2],
        "the run-time device beside the file's",
        |d, n| {
            let r = registered(d, n);
            r.contains("extra (fence_phalanx_test)") && r.contains("kill (fence_phalanx_kill)")
        },
    );
    let (code, text) = fence_tool(&dir, 1, &["--deregister", "extra"]);
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2], "only the file's device left", |d, n| {
        let r = registered(d, n);
        !r.contains("extra") && r.contains("kill (fence_phalanx_kill)")
    });
    cluster.leave(&mut log, &[1, 2]);
}
