//! Pacemaker on Phalanx: three `phalanxd -f -c corosync.conf` nodes (Corosync's
//! command line, each in its own network and mount namespace, as the Corosync
//! benchmark rig starts its daemons) with Debian's **unmodified** Pacemaker 2.1
//! on top — each `pacemakerd` in the node's network namespace and a mount
//! namespace of its own (its own `/var/lib/pacemaker`, `/var/log/pacemaker` and
//! `/run`), as `../shared/bench/pacemaker-up.sh` runs them. Pacemaker reaches
//! the node only through Corosync's client libraries (libcpg, libcmap,
//! libquorum, libcfg over libqb's shared-memory IPC).
//!
//! Asserted: `crm_mon -1` shows the three nodes online and a DC; an
//! `ocf:pacemaker:Dummy` resource starts; after `kill -9` of the daemon and the
//! Pacemaker processes of the node running it, the resource is started on one
//! of the two other nodes (`crm_resource --locate` there), and the time from
//! the kill to that is printed.
//!
//! Needs root (namespaces, mounts), iproute2, corosync (its tools check
//! readiness) and pacemaker (`.ci/run` installs them); a missing piece fails the
//! test with a message, never skips. Processes, namespaces and the shared-memory
//! files of killed processes are cleaned up by guards, also when it fails.

mod common;

use common::conf::TestDir;
use common::netns::star;
use common::wait::wait_until;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Node `i`'s corosync.conf as the rig's setup.sh writes it.
fn rig_conf(addrs: &[String], dir: &Path) -> String {
    let mut nodes = String::new();
    for (j, a) in addrs.iter().enumerate() {
        let id = j + 1;
        nodes.push_str(&format!(
            "    node {{\n        ring0_addr: {a}\n        name: n{id}\n        nodeid: {id}\n    }}\n"
        ));
    }
    let d = dir.display();
    format!(
        "totem {{
    version: 2
    cluster_name: pcmk
    transport: knet
    ip_version: ipv4
    crypto_cipher: none
    crypto_hash: none
}}
nodelist {{
{nodes}}}
quorum {{
    provider: corosync_votequorum
}}
logging {{
    to_logfile: yes
    logfile: {d}/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}}
system {{
    state_dir: {d}/state
    sched_rr: no
    move_to_root_cgroup: no
}}
"
    )
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `program` entered into network namespace `ns` and, when `binds` is not
/// empty, a mount namespace of its own with each `(source, target)` bind
/// mounted. In a process group of its own, so that it and its children can be
/// killed together.
fn in_ns(ns: &str, program: &str, binds: &[(PathBuf, &str)]) -> Command {
    let path = format!("/var/run/netns/{ns}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let binds: Vec<(CString, CString)> = binds
        .iter()
        .map(|(s, t)| (c_path(s), c_path(Path::new(t))))
        .collect();
    let root = c_path(Path::new("/"));
    let mut cmd = Command::new(program);
    cmd.process_group(0);
    // SAFETY: only setns(2), unshare(2) and mount(2), async-signal-safe, run in
    // the forked child; every string and the namespace file were made before the
    // fork and are moved into the closure, alive until exec.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return fail();
            }
            if binds.is_empty() {
                return Ok(());
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            // Our mounts must not propagate back to the host's namespace.
            let private = libc::MS_REC | libc::MS_PRIVATE;
            let null = std::ptr::null();
            if libc::mount(null, root.as_ptr(), null, private, std::ptr::null()) != 0 {
                return fail();
            }
            for (source, target) in &binds {
                let bind = libc::MS_BIND;
                if libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    null,
                    bind,
                    std::ptr::null(),
                ) != 0
                {
                    return fail();
                }
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `program args` in `ns` to completion (killed after 20 s); exit code
/// and stdout + stderr.
fn run_in(ns: &str, program: &str, args: &[&str]) -> (i32, String) {
    let limit = Duration::from_secs(20);
    let mut child = in_ns(ns, program, &[])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (install corosync and pacemaker, see .ci/run)")
        });
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let o = read_all(Box::new(child.stdout.take().unwrap()));
    let e = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    let (o, e) = (o.join().unwrap(), e.join().unwrap());
    (status.code().unwrap_or(-1), o + &e)
}

/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
    .collect()
}

/// Removes the libqb connection directories `/dev/shm/qb-<pid>-*` of a server
/// process that was killed with SIGKILL (it had no chance to), and phalanxd's
/// marker `/dev/shm/phalanx-qb-<pid>` (the next phalanxd would remove both).
fn remove_shm_of(pids: &[u32]) {
    for name in shm_dirs_of(pids) {
        let _ = std::fs::remove_dir_all(Path::new("/dev/shm").join(name));
    }
    for pid in pids {
        let _ = std::fs::remove_file(format!("/dev/shm/phalanx-qb-{pid}"));
    }
}

/// A process (and, for pacemakerd, its children) killed with SIGKILL when
/// dropped, unless already gone; the shared-memory files its servers leave
/// behind are removed.
struct Proc {
    child: Child,
    /// Every pid seen under it (pacemakerd's daemons), for the cleanup.
    seen: Vec<u32>,
}

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc {
            child,
            seen: Vec::new(),
        }
    }

    /// SIGTERM (a node leaves the cluster), then waits for the exit.
    fn terminate(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// SIGKILL to the process, its process group and its children.
    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = self.child.id();
        let kids = children_of(pid);
        self.seen.push(pid);
        self.seen.extend(&kids);
        // SAFETY: kill(2) on our own child (not reaped yet), its process group
        // (it leads it: process_group(0)) and its children by pid.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
            libc::kill(pid as i32, libc::SIGKILL);
            for k in &kids {
                libc::kill(*k as i32, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        remove_shm_of(&self.seen);
    }
}

/// Where `crm_resource --locate` on `ns` says `d1` runs.
fn d1_location(ns: &str) -> Option<String> {
    let (code, out) = run_in(ns, "crm_resource", &["--locate", "-r", "d1"]);
    if code != 0 {
        return None;
    }
    out.lines()
        .find_map(|l| l.trim().strip_prefix("resource d1 is running on:"))
        .map(|n| n.trim().to_string())
}

#[test]
fn pacemaker_runs_on_three_phalanxd_nodes_and_fails_a_resource_over() {
    let tag = "pcmk";
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 3, 97);
    let hacluster = phalanx::compat::qb::resolve_user("hacluster")
        .expect("user hacluster (Debian package pacemaker; see .ci/run)");
    let haclient = phalanx::compat::qb::resolve_group("haclient").expect("group haclient");

    // The Corosync stand-ins, each with a private /run.
    let mut daemons: Vec<Proc> = (1..=3)
        .map(|i| {
            let d = dir.path.join(format!("n{i}"));
            std::fs::create_dir_all(d.join("run")).unwrap();
            let conf = d.join("corosync.conf");
            std::fs::write(&conf, rig_conf(&addrs, &d)).unwrap();
            let mut cmd = in_ns(
                &net.nodes[i - 1],
                env!("CARGO_BIN_EXE_phalanxd"),
                &[(d.join("run"), "/run")],
            );
            cmd.arg("-f").arg("-c").arg(&conf);
            Proc::spawn(cmd, &d.join("phalanxd.out"))
        })
        .collect();
    for (i, ns) in net.nodes.iter().enumerate() {
        wait_until(
            &format!("corosync-quorumtool -s on n{}: quorate, 3 votes", i + 1),
            Duration::from_secs(20),
            || {
                let (code, out) = run_in(ns, "corosync-quorumtool", &["-s"]);
                code == 0
                    && out.contains("Quorate:          Yes")
                    && out.contains("Total votes:      3")
            },
        );
    }

    // Pacemaker on each node, with its state, logs and /run under the test dir.
    let mut pacemakers: Vec<Proc> = (1..=3)
        .map(|i| {
            let p = dir.path.join(format!("n{i}/pcmk"));
            for sub in [
                "lib/cib",
                "lib/pengine",
                "lib/blackbox",
                "lib/cores",
                "log",
                "run",
            ] {
                std::fs::create_dir_all(p.join(sub)).unwrap();
            }
            for owned in [
                "lib",
                "lib/cib",
                "lib/pengine",
                "lib/blackbox",
                "lib/cores",
                "log",
            ] {
                std::os::unix::fs::chown(p.join(owned), Some(hacluster), Some(haclient)).unwrap();
            }
            let cmd = in_ns(
                &net.nodes[i - 1],
                "/usr/sbin/pacemakerd",
                &[
                    (p.join("lib"), "/var/lib/pacemaker"),
                    (p.join("log"), "/var/log/pacemaker"),
                    (p.join("run"), "/run"),
                ],
            );
            Proc::spawn(cmd, &p.join("pacemakerd.out"))
        })
        .collect();
    let logs = format!("{}/n*/pcmk/log/pacemaker.log", dir.path.display());

    // Three nodes online and a DC elected (Pacemaker waits dc-deadtime, 20 s,
    // for an existing DC before it holds an election).
    let n1 = &net.nodes[0];
    let mut mon = String::new();
    wait_until(
        &format!("crm_mon -1 on n1: n1 n2 n3 online and a DC (logs: {logs})"),
        Duration::from_secs(50),
        || {
            mon = run_in(n1, "crm_mon", &["-1"]).1;
            mon.contains("Online: [ n1 n2 n3 ]") && mon.contains("Current DC: n")
        },
    );
    assert!(mon.contains("partition with quorum"), "{mon}");
    assert!(mon.contains("Stack: corosync"), "{mon}");

    // No fencing device here; then one Dummy resource.
    let (code, out) = run_in(
        n1,
        "crm_attribute",
        &["-t", "crm_config", "-n", "stonith-enabled", "-v", "false"],
    );
    assert_eq!(code, 0, "{out}");
    let d1 = r#"<primitive id="d1" class="ocf" provider="pacemaker" type="Dummy"><operations><op id="d1-mon" name="monitor" interval="5s"/></operations></primitive>"#;
    let (code, out) = run_in(n1, "cibadmin", &["-C", "-o", "resources", "-X", d1]);
    assert_eq!(code, 0, "{out}");
    let mut host = None;
    wait_until(
        &format!("d1 started (logs: {logs})"),
        Duration::from_secs(20),
        || {
            host = d1_location(n1);
            host.is_some()
        },
    );
    let host = host.unwrap();
    let i: usize = host
        .strip_prefix('n')
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=3).contains(n))
        .unwrap_or_else(|| panic!("d1 on an unknown node {host:?}"));

    // kill -9 the node running it: its daemon and all of its Pacemaker.
    let other = &net.nodes[i % 3];
    let t0 = Instant::now();
    daemons[i - 1].kill();
    pacemakers[i - 1].kill();
    let mut now = None;
    wait_until(
        &format!("d1 started on a node other than {host} (logs: {logs})"),
        Duration::from_secs(40),
        || {
            now = d1_location(other).filter(|n| *n != host);
            now.is_some()
        },
    );
    let took = t0.elapsed();
    let now = now.unwrap();
    assert!(
        ["n1", "n2", "n3"].contains(&now.as_str()),
        "d1 on an unknown node {now:?}"
    );
    eprintln!("d1 on {host}; kill -9 -> started on {now} after {took:.2?}");
    let mon = run_in(other, "crm_mon", &["-1"]).1;
    assert!(mon.contains(&format!("OFFLINE: [ {host} ]")), "{mon}");

    // pacemakerd tracks cfg shutdowns and refuses them while it runs, as on
    // Corosync: `corosync-cfgtool -H` on a surviving node is vetoed
    // (CS_ERR_BUSY), `-H --force` stops the node anyway.
    let j = (1..=3).find(|n| *n != i).unwrap();
    let nsj = &net.nodes[j - 1];
    let (_, out) = run_in(nsj, "corosync-cfgtool", &["-H"]);
    assert!(out.contains("Could not shutdown (error = 10)"), "{out}");
    let pcmk_log = dir.path.join(format!("n{j}/pcmk/log/pacemaker.log"));
    wait_until(
        &format!("pacemakerd on n{j} to log the shutdown request"),
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&pcmk_log)
                .is_ok_and(|l| l.contains("Corosync wants to shut down: optional"))
        },
    );
    assert!(
        daemons[j - 1].child.try_wait().unwrap().is_none(),
        "phalanxd on n{j} stopped despite the veto"
    );
    let (_, out) = run_in(nsj, "corosync-cfgtool", &["-H", "--force"]);
    assert!(!out.contains("Could not"), "{out}");
    wait_until(
        &format!("phalanxd on n{j} to stop after -H --force"),
        Duration::from_secs(20),
        || daemons[j - 1].child.try_wait().unwrap().is_some(),
    );

    // Pacemaker goes first: every connection it had to the surviving nodes
    // closes, and with it the connection's shared-memory directory.
    drop(pacemakers);
    let survivors: Vec<u32> = (1..=3)
        .filter(|n| *n != i)
        .map(|n| daemons[n - 1].child.id())
        .collect();
    wait_until(
        "the surviving nodes to remove their clients' /dev/shm/qb-<pid>-* directories",
        Duration::from_secs(10),
        || shm_dirs_of(&survivors).is_empty(),
    );
    for n in (1..=3).filter(|n| *n != i) {
        daemons[n - 1].terminate();
    }
}

/// The `/dev/shm/qb-<pid>-*` entries of `pids`.
fn shm_dirs_of(pids: &[u32]) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| pids.iter().any(|p| name.starts_with(&format!("qb-{p}-"))))
        .collect()
}
