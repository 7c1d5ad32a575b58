//! Fence races in a two-node cluster (`two_node: 1`), for real: two `phalanxd`
//! processes in network namespaces, each with the kill agent
//! (`fence/test-agents/fence_phalanx_kill`) able to fence the other. Cutting the
//! cable leaves each node quorate alone (two_node), so each asks to fence the other.
//!
//! - With a static `pcmk_delay_base` that delays fencing of node 1 (`n1:2s;n2:0s`),
//!   node 1 fences node 2 at once and node 2 dies before its delayed shot: exactly
//!   one survivor, node 1, every time.
//! - With `pcmk_delay_max` alone (random delays, whole seconds as Pacemaker rounds
//!   them), the outcome is measured: how often both nodes fenced each other.
//!
//! `PHALANX_FENCE_RACE_CYCLES=N` runs N cycles of each (default 10 and 5).

mod common;

use common::cluster::Observer;
use common::conf::{TestDir, corosync_conf, one_link};
use common::netns::{Namespaces, star};
use common::recorder::{start_quorate, write_pid_files};
use std::path::PathBuf;
use std::time::Duration;

fn cycles(default: usize) -> usize {
    std::env::var("PHALANX_FENCE_RACE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One cut: the nodes whose process survived, and the nodes whose request to
/// fence the other succeeded.
fn race_once(net: &Namespaces, dir: &TestDir, conf: &std::path::Path) -> (Vec<u32>, Vec<u32>) {
    let (mut cluster, mut log) = start_quorate(conf, 2, Some(net));
    write_pid_files(&dir.path, &cluster, &[1, 2]);
    let incs = [(1, cluster.incarnation(1)), (2, cluster.incarnation(2))];
    net.set_hub_link("h2", false);
    // Until one process is killed by the other's agent.
    let deadline = common::wait::Deadline::after("a node to be fenced", Duration::from_secs(20));
    while !incs.iter().any(|&(id, inc)| cluster.ended(id, inc)) {
        deadline.check(|| log.describe());
        cluster.observe_for(&mut log, Duration::from_millis(20));
    }
    // An agent the dead node had already started runs on (it has its own process
    // group) and kills within milliseconds: a second of grace shows a double fence.
    cluster.observe_for(&mut log, Duration::from_secs(1));
    let survivors: Vec<u32> = incs
        .iter()
        .filter(|&&(id, inc)| !cluster.ended(id, inc))
        .map(|&(id, _)| id)
        .collect();
    if std::env::var_os("PHALANX_FENCE_RACE_LOG").is_some() {
        eprintln!("--- cycle: survivors {survivors:?}\n{}", log.describe());
    }
    (survivors, log.fencers())
}

fn run_cycles(tag: &str, delays: &str, n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 2, 83);
    let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents");
    let rest = format!(
        "quorum {{\n    provider: corosync_votequorum\n    two_node: 1\n}}\n\
         fencing {{\n    agent_dir: {agents}\n    device {{\n        id: kill\n        \
         agent: fence_phalanx_kill\n        pidfile_dir: {pids}\n        \
         pcmk_host_list: n1 n2\n{delays}    }}\n}}\n",
        agents = agents.display(),
        pids = dir.path.display(),
    );
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &rest));
    (0..n)
        .map(|_| {
            let r = race_once(&net, &dir, &conf);
            net.set_hub_link("h2", true);
            r
        })
        .collect()
}

#[test]
fn a_static_delay_leaves_exactly_one_survivor() {
    let n = cycles(10);
    // Fencing n1 waits 2 s, fencing n2 none: node 1 shoots first.
    let results = run_cycles("frace-base", "        pcmk_delay_base: n1:2s;n2:0s\n", n);
    for (i, (survivors, fencers)) in results.iter().enumerate() {
        assert_eq!(
            survivors,
            &vec![1],
            "cycle {i}: survivors {survivors:?}, fencers {fencers:?}"
        );
    }
    eprintln!("pcmk_delay_base n1:2s: exactly one survivor (node 1) in {n} of {n} cuts");
}

#[test]
fn random_delays_alone_are_measured() {
    let n = cycles(5);
    let results = run_cycles("frace-max", "        pcmk_delay_max: 2s\n", n);
    let both_dead = results.iter().filter(|(s, _)| s.is_empty()).count();
    let one = results.iter().filter(|(s, _)| s.len() == 1).count();
    for (i, (survivors, _)) in results.iter().enumerate() {
        // A cut always kills at least one: nobody fencing would be the failure.
        assert!(survivors.len() < 2, "cycle {i}: nobody was fenced");
    }
    eprintln!(
        "pcmk_delay_max 2s alone: {one} of {n} cuts left one survivor, {both_dead} of {n} fenced both nodes"
    );
}
