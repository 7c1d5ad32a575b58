//! Fencing for real: `phalanxd` processes with votequorum and a `fencing` section
//! whose device is `fence/test-agents/fence_phalanx_kill`, a real agent speaking
//! the fence-agents stdin protocol that SIGKILLs the target's process (its pid file
//! is `<dir>/<node name>.pid`, written by this test).
//!
//! - **kill -9**: three nodes on loopback; node 3 is killed → exactly one fencing
//!   operation, requested by the quorate side's coordinator (node 1), done in under
//!   2 s from the kill with default timers; every survivor learns the result and
//!   reports node 3 fenced.
//! - **partition {1} | {2,3}** (network namespaces, node 1's cable pulled): node 1,
//!   inquorate, requests no fencing; {2,3} fence node 1, whose process the agent
//!   kills.
//! - **topology**: level 1 (an agent that fails) falls through to level 2 (the
//!   kill agent).
//!
//! Needs root for the namespaces and `sh` for the agents; fails, never skips.

mod common;

use common::cluster::{Cluster, mono_ns, ms};
use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::events::Event;
use common::netns::star;
use common::recorder::{Recorder, admin_tool, start_quorate, write_pid_files};
use std::path::PathBuf;
use std::time::Duration;

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents")
}

/// The `quorum` and `fencing` sections: one kill device for every node (static
/// list), optionally preceded by a failing level 1.
fn sections(dir: &TestDir, nodes: u32, failing_level: bool) -> String {
    let list: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let mut s = format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {agents}\n    device {{\n        id: kill\n        \
         agent: fence_phalanx_kill\n        pidfile_dir: {pids}\n        \
         pcmk_host_list: {hosts}\n    }}\n",
        agents = agent_dir().display(),
        pids = dir.path.display(),
        hosts = list.join(" "),
    );
    if failing_level {
        s += &format!(
            "    device {{\n        id: broken\n        agent: fence_phalanx_test\n        \
             mode: flaky\n        fail_times: 1000000\n        count_file: {count}\n        \
             pcmk_host_list: {hosts}\n    }}\n",
            count = dir.path.join("broken.count").display(),
            hosts = list.join(" ")
        );
        for i in 1..=nodes {
            s += &format!(
                "    level {{\n        index: 1\n        target: n{i}\n        devices: broken\n    }}\n\
                 \x20   level {{\n        index: 2\n        target: n{i}\n        devices: kill\n    }}\n"
            );
        }
    }
    s + "}\n"
}

fn start_loopback(tag: &str, failing_level: bool) -> (TestDir, Cluster, Recorder) {
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(3);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        tag,
        "",
        &one_link(&addrs),
        &sections(&dir, 3, failing_level),
    ));
    let (cluster, log) = start_quorate(&conf, 3, None);
    write_pid_files(&dir.path, &cluster, &[1, 2, 3]);
    (dir, cluster, log)
}

/// The one fencing operation the quorate side ran against `target` (name `nN`):
/// checks that every survivor saw exactly one result for it, done, requested by
/// `coordinator`, and that exactly one request of the decision completed.
fn check_one_operation(log: &Recorder, target: u32, survivors: &[u32], coordinator: u32) -> u64 {
    let name = format!("n{target}");
    let results: Vec<_> = log
        .fence()
        .into_iter()
        .filter(|(_, k, f, _)| *k == "fence_result" && f.get("target") == Some(&name))
        .collect();
    for &s in survivors {
        let mine: Vec<_> = results.iter().filter(|(n, ..)| *n == s).collect();
        assert_eq!(
            mine.len(),
            1,
            "node {s} saw {} results for {name}:\n{}",
            mine.len(),
            log.fence_lines()
        );
        let f = mine[0].2;
        assert_eq!(f["state"], "done", "{}", log.fence_lines());
        assert_eq!(
            f["origin"],
            coordinator.to_string(),
            "{}",
            log.fence_lines()
        );
        assert_eq!(f["client"], "phalanx-decision", "{}", log.fence_lines());
    }
    let requests: Vec<_> = log
        .fence()
        .into_iter()
        .filter(|(_, k, f, _)| *k == "fence_done" && f["client"] == "phalanx-decision")
        .collect();
    assert_eq!(requests.len(), 1, "{}", log.fence_lines());
    assert_eq!(requests[0].0, coordinator, "{}", log.fence_lines());
    assert_eq!(requests[0].2["ok"], "1", "{}", log.fence_lines());
    requests[0].3
}

#[test]
fn a_killed_node_is_fenced_once_by_the_quorate_side() {
    let (_dir, mut cluster, mut log) = start_loopback("fence-kill", false);
    let killed_at = cluster.kill9(3);
    cluster.until(
        &mut log,
        "both survivors to report node 3 fenced",
        Duration::from_secs(10),
        |l| {
            let by = l.fenced_by(3);
            by.contains(&1) && by.contains(&2)
        },
    );
    // Let any duplicate show itself before counting.
    cluster.observe_for(&mut log, Duration::from_secs(1));
    let done_at = check_one_operation(&log, 3, &[1, 2], 1);
    let elapsed = ms(done_at - killed_at);
    // The timeline on the coordinator: new configuration, quorum, unclean, done.
    let first = |pred: &dyn Fn(&Event) -> bool| {
        log.events
            .iter()
            .find(|o| o.node == 1 && o.at > killed_at && pred(&o.event))
            .map_or(f64::NAN, |o| ms(o.at - killed_at))
    };
    let config = first(&|e| matches!(e, Event::Config(c) if c.regular && c.members == [1, 2]));
    let quorum = first(&|e| matches!(e, Event::Quorum(q) if q.members == [1, 2]));
    let unclean = first(&|e| matches!(e, Event::Service { kind, .. } if kind == "fence_unclean"));
    eprintln!(
        "kill -9 of node 3 at 0 ms → node 1: configuration {config:.0} ms, quorum {quorum:.0} ms, \
         unclean {unclean:.0} ms, fenced (agent done, result agreed) {elapsed:.0} ms"
    );
    assert!(elapsed < 2000.0, "fencing took {elapsed:.0} ms");
    assert_eq!(
        log.fence()
            .iter()
            .filter(|(_, k, ..)| *k == "fence_unclean")
            .count(),
        2,
        "each survivor reports node 3 unclean once:\n{}",
        log.fence_lines()
    );
    cluster.leave(&mut log, &[1, 2]);
}

#[test]
fn a_failing_level_falls_through_to_the_next() {
    let (_dir, mut cluster, mut log) = start_loopback("fence-levels", true);
    cluster.kill9(2);
    cluster.until(
        &mut log,
        "both survivors to report node 2 fenced",
        Duration::from_secs(20),
        |l| {
            let by = l.fenced_by(2);
            by.contains(&1) && by.contains(&3)
        },
    );
    cluster.observe_for(&mut log, Duration::from_millis(500));
    check_one_operation(&log, 2, &[1, 3], 1);
    cluster.leave(&mut log, &[1, 3]);
}

#[test]
fn an_inquorate_node_fences_no_one_and_is_fenced_by_the_majority() {
    let tag = "fence-split";
    let dir = TestDir::new(tag);
    let (net, addrs) = star("fsplit", 3, 82);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        tag,
        "",
        &one_link(&addrs),
        &sections(&dir, 3, false),
    ));
    let (mut cluster, mut log) = start_quorate(&conf, 3, Some(&net));
    write_pid_files(&dir.path, &cluster, &[1, 2, 3]);
    let inc1 = cluster.incarnation(1);
    let cut_at = mono_ns();
    net.set_hub_link("h1", false);
    cluster.until(
        &mut log,
        "nodes 2 and 3 to report node 1 fenced",
        Duration::from_secs(10),
        |l| {
            let by = l.fenced_by(1);
            by.contains(&2) && by.contains(&3)
        },
    );
    // The agent killed node 1's process: its output ends.
    cluster.until_ended(&mut log, 1, inc1);
    cluster.observe_for(&mut log, Duration::from_millis(500));
    let done_at = check_one_operation(&log, 1, &[2, 3], 2);
    eprintln!(
        "cut of node 1 → fenced by node 2 in {:.0} ms",
        ms(done_at - cut_at)
    );
    let by_node1: Vec<_> = log
        .fence()
        .into_iter()
        .filter(|(n, k, f, _)| {
            *n == 1 && (*k == "fence_done" || (*k == "fence_result" && f["origin"] == "1"))
        })
        .collect();
    assert!(
        by_node1.is_empty(),
        "inquorate node 1 requested fencing:\n{}",
        log.fence_lines()
    );
    cluster.leave(&mut log, &[2, 3]);
}

fn fence_tool(dir: &TestDir, node: u32, args: &[&str]) -> (i32, String) {
    admin_tool(
        env!("CARGO_BIN_EXE_phalanx-fence"),
        &dir.admin_socket(node),
        args,
    )
}

#[test]
fn the_tool_fences_through_the_cluster_and_shows_the_history() {
    let (dir, mut cluster, mut log) = start_loopback("fence-tool", false);
    let (code, text) = fence_tool(&dir, 1, &["--list-registered"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("kill (fence_phalanx_kill)"), "{text}");
    assert!(text.contains("node 3 n3: member"), "{text}");

    // An administrator's request is not the decision's: it runs at once.
    let inc3 = cluster.incarnation(3);
    let (code, text) = fence_tool(&dir, 2, &["--fence", "n3"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("n3: off done by 2"), "{text}");
    // The agent really killed node 3's process.
    cluster.until_ended(&mut log, 3, inc3);
    // Every node recorded the result; the loss that follows needs no more fencing.
    cluster.until(
        &mut log,
        "both survivors to report node 3 fenced",
        Duration::from_secs(10),
        |l| {
            let by = l.fenced_by(3);
            by.contains(&1) && by.contains(&2)
        },
    );
    cluster.observe_for(&mut log, Duration::from_millis(500));
    assert!(
        !log.fence()
            .iter()
            .any(|(_, k, f, _)| *k == "fence_done" && f["client"] == "phalanx-decision"),
        "the decision fenced node 3 again:\n{}",
        log.fence_lines()
    );
    let (code, text) = fence_tool(&dir, 1, &["--history"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("off of n3 done by 2, requested by phalanx-fence-handle on node 2"),
        "{text}"
    );
    let (code, text) = fence_tool(&dir, 1, &["--history", "--cleanup"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = fence_tool(&dir, 1, &["--history", "--json"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.trim().starts_with('['), "{text}");
    let (code, text) = fence_tool(&dir, 1, &["--fence", "nosuchnode"]);
    assert_eq!(code, 1, "{text}");
    cluster.leave(&mut log, &[1, 2]);
}
