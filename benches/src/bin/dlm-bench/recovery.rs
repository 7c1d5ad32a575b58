//! Recovery time after a kill, with many locks held: three `phalanxd --control`
//! processes on loopback with votequorum and the real `fence_phalanx_kill` test
//! agent (as `tests/dlm_cluster.rs`), one lockspace.
//!
//! Set-up, `locks` locks in all (`r = locks / 9`):
//! * node k takes PR on `m{k}-0..r` first, so node k masters them; then every
//!   node takes PR on the other nodes' `m{j}-*` too: 9r locks, a third of them
//!   held by the node that will die, a third of the resources mastered there;
//! * `b{j}` (j = 1..3) is mastered on node j (it takes NL first); node 3 takes EX
//!   on each; a survivor then asks PR on each and waits (queued behind node 3's
//!   EX — node 3's BAST shows the request reached the master).
//!
//! Then node 3 is killed (SIGKILL); at once node 1 asks PR on `m3-0` (mastered on
//! node 3: the request goes to the dead master and is sent again by recovery).
//! Measured from the kill, on the machine's monotonic clock (every line is
//! stamped by the node that wrote it): the survivors' new ring, the fence decision
//! noticing the loss, the agent's result, the DLM's fence gate, each waiter's
//! grant, the end of recovery on each survivor, the probe's grant. Checked: no
//! waiter was granted before node 3's fencing was recorded.

use crate::procs::{Line, Procs, RunDir, mono_ns};
use std::path::PathBuf;
use std::time::Duration;

/// Generous: the machine may be loaded.
const STEP: Duration = Duration::from_secs(120);

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fence/test-agents")
}

fn phalanxd() -> PathBuf {
    if let Some(p) = std::env::var_os("PHALANXD") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the bench's path");
    let p = exe.with_file_name("phalanxd");
    assert!(
        p.exists(),
        "{} not found: build it (cargo build --release -p phalanx --bin phalanxd) or set PHALANXD",
        p.display()
    );
    p
}

fn conf(dir: &RunDir, addrs: &[String]) -> String {
    let mut nodes = String::new();
    for (i, a) in addrs.iter().enumerate() {
        let id = i + 1;
        nodes += &format!(
            "    node {{\n        nodeid: {id}\n        name: n{id}\n        ring0_addr: {a}\n    }}\n"
        );
    }
    format!(
        "totem {{\n    cluster_name: dlmbench\n    crypto_cipher: aes256\n    \
         crypto_hash: sha256\n    keyfile: {key}\n}}\n\
         system {{\n    state_dir: {state}\n}}\nnodelist {{\n{nodes}}}\n\
         quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {agents}\n    device {{\n        id: kill\n        \
         agent: fence_phalanx_kill\n        pidfile_dir: {pids}\n        \
         pcmk_host_list: n1 n2 n3\n    }}\n}}\n",
        key = dir.path.join("authkey").display(),
        state = dir.path.display(),
        agents = agent_dir().display(),
        pids = dir.path.display(),
    )
}

fn loopback_addrs(n: usize) -> Vec<String> {
    let socks: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().unwrap().to_string())
        .collect()
}

/// The first line after `from` (ns) that `pick` accepts.
fn first(log: &[Line], from: u64, pick: impl Fn(&Line) -> bool) -> Option<&Line> {
    log.iter()
        .filter(|l| l.at >= from && pick(l))
        .min_by_key(|l| l.at)
}

fn granted(log: &[Line], tag: &str) -> bool {
    log.iter()
        .any(|l| l.is_notice("granted") && l.get("tag") == tag)
}

/// Every node's lockspace view has all three members and has recovered.
fn formed(log: &[Line]) -> bool {
    (1..=3).all(|n| {
        let last_members = log.iter().rfind(|l| l.node == n && l.is_notice("members"));
        last_members.is_some_and(|m| {
            m.get("members") == "1,2,3"
                && log.iter().any(|l| {
                    l.node == n && l.is_notice("recovered") && l.get("epoch") == m.get("epoch")
                })
        })
    })
}

/// Runs the scenario; prints the phases.
pub fn run(locks: usize) {
    let mut dir = RunDir::new("dlm-bench");
    let addrs = loopback_addrs(3);
    let conf_path = dir.path.join("corosync.conf");
    std::fs::write(&conf_path, conf(&dir, &addrs)).unwrap();
    let mut p = Procs::start(&phalanxd(), &conf_path, &dir.path, &[1, 2, 3]);
    println!(
        "recovery: run directory {} (kept if the run fails)",
        dir.path.display()
    );
    p.until("all 3 quorate", STEP, |log| {
        (1..=3).all(|n| {
            log.iter()
                .rfind(|l| l.node == n && l.event == "quorum")
                .is_some_and(|l| l.get("quorate") == "1" && l.get("members") == "1,2,3")
        })
    });
    for n in 1..=3 {
        p.request(n, "dlm-watch bench", STEP);
    }
    p.until("lockspace formed on 3 nodes", STEP, formed);

    // The bulk: node k masters m{k}-*, then everyone locks everyone's.
    let r = (locks / 9).max(1);
    let t0 = mono_ns();
    for k in 1..=3u32 {
        p.request(k, &format!("dlm-bulk m{k}- 0 {r} PR"), STEP);
    }
    for round in 1..=2u32 {
        for k in 1..=3u32 {
            let j = (k + round - 1) % 3 + 1;
            p.send(k, &format!("dlm-bulk m{j}- 0 {r} PR"));
        }
        for k in 1..=3u32 {
            p.answer(k, STEP);
        }
    }
    let load_ms = (mono_ns() - t0) as f64 / 1e6;
    let total = 9 * r;
    println!(
        "recovery: {total} PR locks taken in {load_ms:.0} ms ({:.0} locks/s); \
         {} per node, {r} resources mastered per node",
        total as f64 / (load_ms / 1e3),
        3 * r
    );

    // Node 3's EX on b1 (mastered on 1), b2 (on 2), b3 (on 3), each with a waiter.
    for j in 1..=3u32 {
        p.request(j, &format!("dlm-ask hold-b{j} b{j} NL"), STEP);
        let tag = format!("hold-b{j}");
        p.until(&tag, STEP, |log| granted(log, &tag));
        p.request(3, &format!("dlm-ask dead-b{j} b{j} EX"), STEP);
        let tag = format!("dead-b{j}");
        p.until(&tag, STEP, |log| granted(log, &tag));
        let waiter = if j == 1 { 2 } else { 1 };
        p.request(waiter, &format!("dlm-ask wait-b{j} b{j} PR"), STEP);
        // Node 3's BAST: the waiter is queued at the master.
        p.until(&format!("wait-b{j} queued"), STEP, |log| {
            log.iter()
                .any(|l| l.node == 3 && l.is_notice("bast") && l.get("tag") == tag)
        });
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("recovery: load average before the kill: {}", load.trim());

    let kill = p.kill(3);
    p.request(1, "dlm-ask probe-m3 m3-0 PR", STEP);
    let waiters = ["wait-b1", "wait-b2", "wait-b3", "probe-m3"];
    p.until(
        "waiters and probe granted, both survivors recovered",
        STEP,
        |log| {
            waiters.iter().all(|t| granted(log, t))
                && (1..=2).all(|n| {
                    log.iter()
                        .any(|l| l.node == n && l.at > kill && l.is_notice("recovered"))
                })
        },
    );
    let log = &p.log;
    let ms = |t: u64| (t as i64 - kill as i64) as f64 / 1e6;
    let at_field = |l: &Line| l.get("at").parse::<u64>().unwrap_or(l.at);
    let mut rows: Vec<(String, f64)> = Vec::new();
    let row = |rows: &mut Vec<(String, f64)>, what: &str, l: Option<&Line>| {
        if let Some(l) = l {
            rows.push((format!("{what} (n{})", l.node), ms(l.at)));
        }
    };
    row(
        &mut rows,
        "survivors' new ring",
        first(log, kill, |l| {
            l.event == "config" && l.get("kind") == "regular" && l.get("members") == "1,2"
        }),
    );
    row(
        &mut rows,
        "lockspace view without node 3",
        first(log, kill, |l| {
            l.is_notice("members") && l.get("members") == "1,2"
        }),
    );
    row(
        &mut rows,
        "fence decision: node 3 unclean",
        first(log, kill, |l| {
            l.event == "fence_unclean" && l.get("node") == "3"
        }),
    );
    row(
        &mut rows,
        "agent done (fence_result)",
        first(log, kill, |l| {
            l.event == "fence_result" && l.get("state") == "done" && l.get("target") == "n3"
        }),
    );
    let recorded = log
        .iter()
        .filter(|l| l.is_notice("fence_recorded") && l.get("node") == "3")
        .map(at_field)
        .min()
        .expect("node 3's fencing recorded");
    rows.push(("fencing recorded (earliest survivor)".into(), ms(recorded)));
    let gate = log
        .iter()
        .filter(|l| l.is_notice("fenced") && l.get("node") == "3")
        .map(at_field)
        .min()
        .expect("the DLM's gate opened for node 3");
    rows.push(("DLM fence gate opened (earliest)".into(), ms(gate)));
    let mut last_grant = 0;
    for t in waiters {
        let l = first(log, kill, |l| l.is_notice("granted") && l.get("tag") == t).expect("granted");
        assert!(
            l.at >= recorded,
            "{t} granted at {:.3} ms, before node 3's fencing was recorded at {:.3} ms",
            ms(l.at),
            ms(recorded)
        );
        last_grant = last_grant.max(l.at);
        rows.push((format!("{t} granted (n{})", l.node), ms(l.at)));
    }
    for n in 1..=2 {
        row(
            &mut rows,
            "lockspace recovered",
            first(log, kill, |l| l.node == n && l.is_notice("recovered")),
        );
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!(
        "recovery: {} locks granted and 3 waiting, node 3 (holding {}) killed at 0 ms:",
        total + 6,
        3 * r + 4
    );
    for (what, t) in &rows {
        println!("  {t:>10.1} ms  {what}");
    }
    let recovered_last = log
        .iter()
        .filter(|l| l.at > kill && l.is_notice("recovered"))
        .map(|l| l.at)
        .max()
        .unwrap_or(kill);
    println!(
        "recovery: kill → fenced {:.1} ms; fenced → locks usable (last waiter/probe granted) \
         {:.1} ms; fenced → both survivors recovered {:.1} ms",
        ms(recorded),
        (last_grant as f64 - recorded as f64) / 1e6,
        (recovered_last as f64 - recorded as f64) / 1e6
    );
    p.kill_all();
    dir.keep = false;
}
