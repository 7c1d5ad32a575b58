//! Startup fencing for real (`startup_fencing`, `dc_deadtime`): three nodes are
//! configured, two `phalanxd` processes start. The third machine runs — a
//! process stands in for it, its pid in `n3.pid` for `fence_phalanx_kill` —
//! but never joins, so nothing says it is not using what the cluster guards.
//! Once the two are quorate and the dead time (2 s here) is over, the
//! coordinator fences it: the agent kills the process, both nodes report
//! node 3 fenced, and no fencing comes before the dead time.
//!
//! Needs `sh` for the agent; fails, never skips.

mod common;

use common::cluster::{Cluster, mono_ns, ms};
use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::{Recorder, write_pid_files};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADTIME_MS: u64 = 2000;

#[test]
fn a_configured_node_never_seen_is_fenced_after_the_dead_time() {
    let tag = "fence-startup";
    let dir = TestDir::new(tag);
    let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents");
    let sections = format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {agents}\n    dc_deadtime: {DEADTIME_MS}\n    device {{\n        \
         id: kill\n        agent: fence_phalanx_kill\n        pidfile_dir: {pids}\n        \
         pcmk_host_list: n1 n2 n3\n    }}\n}}\n",
        agents = agents.display(),
        pids = dir.path.display(),
    );
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        tag,
        "",
        &one_link(&loopback_addrs(3)),
        &sections,
    ));
    // Machine 3: running, never a member.
    let mut machine3 = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the stand-in for machine 3");
    std::fs::write(dir.path.join("n3.pid"), format!("{}\n", machine3.id())).unwrap();
    let started = mono_ns();
    let mut cluster = Cluster::start(&conf, 1..=2, None);
    write_pid_files(&dir.path, &cluster, &[1, 2]);
    let mut log = Recorder::default();
    cluster.until(
        &mut log,
        "nodes 1 and 2 to report node 3 fenced",
        Duration::from_secs(30),
        |l| {
            let by = l.fenced_by(3);
            by.contains(&1) && by.contains(&2)
        },
    );
    cluster.observe_for(&mut log, Duration::from_millis(500));
    // The agent killed the machine's process.
    let status = machine3
        .try_wait()
        .expect("wait for machine 3")
        .expect("machine 3's process is dead");
    assert!(!status.success(), "killed, not exited: {status:?}");
    // One operation, the coordinator's, no earlier than the dead time after the
    // nodes started.
    let done: Vec<_> = log
        .fence()
        .into_iter()
        .filter(|(_, k, f, _)| *k == "fence_done" && f["client"] == "phalanx-decision")
        .collect();
    assert_eq!(done.len(), 1, "{}", log.fence_lines());
    let (by, _, fields, at) = done[0];
    assert_eq!(
        (by, fields["ok"].as_str()),
        (1, "1"),
        "{}",
        log.fence_lines()
    );
    let after = ms(at - started);
    eprintln!("node 3 (never seen) fenced {after:.0} ms after the nodes started");
    assert!(
        after >= DEADTIME_MS as f64,
        "fenced {after:.0} ms after start, before the {DEADTIME_MS} ms dead time"
    );
    // Nodes 1 and 2 were never touched.
    assert!(log.fenced_by(1).is_empty() && log.fenced_by(2).is_empty());
    cluster.leave(&mut log, &[1, 2]);
}
