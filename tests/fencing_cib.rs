//! Fencing devices defined in the CIB, as Pacemaker users define them: three
//! `phalanxd` nodes with `cib { }` and a `fencing` section that names no device.
//! A `primitive class="stonith"` created with `phalanx-cibadmin` on one node is
//! registered by every node's fencer (each reads the agent's metadata itself);
//! a `fencing-topology` in the CIB puts a failing device first; killing a node
//! then gets it fenced through the levels (the failing one tried first, then the
//! kill device); deleting the
//! primitive unregisters it everywhere; a primitive naming an agent that does not
//! exist is refused and counted (`stats.fence.cib_refused`), never registered.

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::{admin_tool, start_quorate, write_pid_files};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents")
}

fn cibadmin(dir: &TestDir, node: u32, args: &[&str]) -> (i32, String) {
    admin_tool(
        env!("CARGO_BIN_EXE_phalanx-cibadmin"),
        &dir.admin_socket(node),
        args,
    )
}

fn registered(dir: &TestDir, node: u32) -> String {
    let (code, text) = admin_tool(
        env!("CARGO_BIN_EXE_phalanx-fence"),
        &dir.admin_socket(node),
        &["--list-registered"],
    );
    assert_eq!(code, 0, "node {node}: {text}");
    text
}

fn stat(dir: &TestDir, node: u32, key: &str) -> u64 {
    let (code, text) = admin_tool(
        env!("CARGO_BIN_EXE_phalanx-stats"),
        &dir.admin_socket(node),
        &[key],
    );
    assert_eq!(code, 0, "node {node}: {text}");
    text.lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .and_then(|l| l.rsplit('=').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
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

#[test]
fn a_stonith_primitive_in_the_cib_is_every_nodes_device() {
    let tag = "fence-cib";
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
    assert!(
        !registered(&dir, 2).contains("kill"),
        "{}",
        registered(&dir, 2)
    );

    let primitive = format!(
        r#"<primitive id="kill" class="stonith" type="fence_phalanx_kill"><instance_attributes id="kill-ia"><nvpair id="kill-pd" name="pidfile_dir" value="{}"/><nvpair id="kill-hl" name="pcmk_host_list" value="n1 n2 n3"/></instance_attributes></primitive>"#,
        dir.path.display()
    );
    let (code, text) = cibadmin(&dir, 1, &["-C", "-o", "resources", "-X", &primitive]);
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2, 3], "the CIB device registered", |d, n| {
        registered(d, n).contains("kill (fence_phalanx_kill)")
    });
    until_all(&dir, &[1, 2, 3], "the CIB device counted", |d, n| {
        stat(d, n, "stats.fence.cib_devices") == 1
    });

    // A device whose agent does not exist is refused, counted, not registered.
    let (code, text) = cibadmin(
        &dir,
        2,
        &[
            "-C",
            "-o",
            "resources",
            "-X",
            r#"<primitive id="ghost" class="stonith" type="fence_no_such_agent"/>"#,
        ],
    );
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2, 3], "the missing agent counted", |d, n| {
        stat(d, n, "stats.fence.cib_refused") >= 1
    });
    for n in 1..=3 {
        assert!(!registered(&dir, n).contains("ghost"), "node {n}");
    }

    // A topology for node 3 in the CIB: level 1 a device that always fails,
    // level 2 the kill device.
    let count = dir.path.join("broken.count");
    let broken = format!(
        r#"<primitive id="broken" class="stonith" type="fence_phalanx_test"><instance_attributes id="broken-ia"><nvpair id="broken-m" name="mode" value="flaky"/><nvpair id="broken-f" name="fail_times" value="1000000"/><nvpair id="broken-c" name="count_file" value="{}"/><nvpair id="broken-hl" name="pcmk_host_list" value="n1 n2 n3"/></instance_attributes></primitive>"#,
        count.display()
    );
    let (code, text) = cibadmin(&dir, 1, &["-C", "-o", "resources", "-X", &broken]);
    assert_eq!(code, 0, "{text}");
    let topology = r#"<fencing-topology><fencing-level id="l1" index="1" target="n3" devices="broken"/><fencing-level id="l2" index="2" target="n3" devices="kill"/></fencing-topology>"#;
    let (code, text) = cibadmin(&dir, 1, &["-C", "-o", "configuration", "-X", topology]);
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2], "the second CIB device registered", |d, n| {
        registered(d, n).contains("broken (fence_phalanx_test)")
    });

    // Node 3 dies: the quorate side fences it through the CIB's levels.
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

    // Deleting the primitive unregisters the device everywhere.
    let (code, text) = cibadmin(
        &dir,
        2,
        &["-D", "-o", "resources", "-X", r#"<primitive id="kill"/>"#],
    );
    assert_eq!(code, 0, "{text}");
    until_all(&dir, &[1, 2], "the CIB device removed", |d, n| {
        !registered(d, n).contains("kill (fence_phalanx_kill)")
    });
    // Counters are published with the node's other statistics, a moment later.
    until_all(&dir, &[1, 2], "one CIB device (broken) left", |d, n| {
        stat(d, n, "stats.fence.cib_devices") == 1
    });
    assert!(registered(&dir, 1).contains("broken (fence_phalanx_test)"));
    cluster.leave(&mut log, &[1, 2]);
}
