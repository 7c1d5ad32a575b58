//! `phalanxd` as a drop-in for `corosync`: started with Corosync's command line
//! (`phalanxd -f -c corosync.conf`, no node id, no `compat` section) on the kind of
//! file the Corosync benchmark rig writes (`../shared/bench/setup.sh`: knet, a
//! node list with names, votequorum, a log file, `system { state_dir, sched_rr: no }`),
//! each node in its own network namespace **and** its own mount namespace with an
//! empty directory over `/run`, as the rig starts its daemons. The real
//! `corosync-quorumtool -s` and `corosync-cfgtool -s` / `-n` (Debian package
//! `corosync`) then talk to it through the Corosync client protocol, and
//! `corosync-cmapctl -s uidgid.gid.N u8 1` admits an unprivileged group as
//! Pacemaker's `pacemakerd` makes Corosync do (`setpriv`, util-linux, runs the
//! tool as nobody).
//!
//! Needs root (namespaces, mounts), iproute2 and corosync (`.ci/run` installs them);
//! a missing piece fails the test with a message, never skips.

mod common;

use common::cbuild::build;
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

/// Node `i`'s corosync.conf as setup.sh writes it, with `dir` for the log file
/// and the state directory.
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
        "# generated like setup.sh
totem {{
    version: 2
    cluster_name: cpgbench
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
    debug: off
}}
system {{
    state_dir: {d}/state
    sched_rr: no
    move_to_root_cgroup: no
}}
"
    )
}

/// A C string of a path, for the pre-exec mount.
fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `program` entered into network namespace `ns`; with `private_run`, also into
/// a mount namespace of its own with that directory bind-mounted over `/run`
/// (what setup.sh does with `unshare --mount` and `mount --bind`).
fn in_ns(ns: &str, program: &str, private_run: Option<&Path>) -> Command {
    let path = format!("/var/run/netns/{ns}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let run = private_run.map(c_path);
    let (root, target) = (c_path(Path::new("/")), c_path(Path::new("/run")));
    let mut cmd = Command::new(program);
    // SAFETY: only setns(2), unshare(2) and mount(2), async-signal-safe, run in
    // the forked child; every string and the namespace file were made before the
    // fork and are moved into the closure, alive until exec.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return fail();
            }
            let Some(run) = &run else { return Ok(()) };
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            // Our mounts must not propagate back to the host's namespace.
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            if libc::mount(
                run.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `program args` in `ns` to completion (killed after `limit`); exit
/// code and stdout + stderr.
fn run_in(ns: &str, program: &str, args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = in_ns(ns, program, None)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (install corosync, see .ci/run)"));
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

/// Held while a phalanxd of this test binary starts (until it removed the
/// stale `/dev/shm` directories of dead daemons) and while a test looks at
/// what a daemon it killed left there: another test's daemon starting at that
/// moment would remove it.
static SHM_WINDOW: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`SHM_WINDOW`], also after a test panicked while holding it.
fn shm_window() -> std::sync::MutexGuard<'static, ()> {
    SHM_WINDOW.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `phalanxd -f -c FILE`, stopped with SIGTERM (as teardown.sh does) when
/// dropped.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    /// Starts it and waits until its IPC server runs (its marker
    /// `/dev/shm/phalanx-qb-<pid>` exists: stale directories are removed by
    /// then). Starts are serialized with [`SHM_WINDOW`].
    fn start(ns: &str, dir: &Path, conf: &Path) -> Daemon {
        let _window = shm_window();
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let log = std::fs::File::create(dir.join("stdout.log")).unwrap();
        let child = in_ns(ns, env!("CARGO_BIN_EXE_phalanxd"), Some(&run))
            .arg("-f")
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start phalanxd");
        let mut d = Daemon {
            child,
            dir: dir.to_path_buf(),
        };
        let marker = Path::new("/dev/shm").join(format!("phalanx-qb-{}", d.child.id()));
        wait_until(
            "phalanxd to serve Corosync clients",
            Duration::from_secs(20),
            || {
                assert!(d.running(), "phalanxd exited:\n{}", d.output());
                marker.exists()
            },
        );
        d
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// SIGKILL and wait: the node dies with its connections open.
    fn kill(&mut self) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Whether the daemon still runs.
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM and wait: the node leaves the cluster.
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// `corosync-quorumtool -s` on `ns` says quorate with `votes` total votes.
fn quorate(ns: &str, votes: u32) -> bool {
    let (code, out) = run_in(ns, "corosync-quorumtool", &["-s"], Duration::from_secs(10));
    code == 0
        && out
            .lines()
            .any(|l| l.starts_with("Quorate:") && l.ends_with("Yes"))
        && out.lines().any(|l| {
            l.starts_with("Total votes:") && l.split_whitespace().last() == Some(&votes.to_string())
        })
}

/// The `nodeid: N:\t<state>` lines of `corosync-cfgtool -s`, as (N, state).
fn link_states(out: &str) -> Vec<(u32, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("nodeid:")?;
            let (id, state) = rest.split_once(':')?;
            Some((id.trim().parse().ok()?, state.trim().to_string()))
        })
        .collect()
}

#[test]
fn corosync_command_line_on_the_rigs_config_serves_cfgtool_and_quorumtool() {
    let tag = "rig";
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 3, 93);
    let mut daemons: Vec<Daemon> = (1..=3)
        .map(|i| {
            let d = dir.path.join(format!("n{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let conf = d.join("corosync.conf");
            std::fs::write(&conf, rig_conf(&addrs, &d)).unwrap();
            Daemon::start(&net.nodes[i - 1], &d, &conf)
        })
        .collect();

    // setup.sh's readiness check, on every node.
    for (i, ns) in net.nodes.iter().enumerate() {
        let d = &daemons[i];
        wait_until(
            &format!("corosync-quorumtool -s on n{}: quorate, 3 votes", i + 1),
            Duration::from_secs(20),
            || quorate(ns, 3),
        );
        // The node found itself by its address: no --node-id was given.
        assert!(
            d.output().contains(&format!("node {} of cluster", i + 1)),
            "{}",
            d.output()
        );
        // Its state went where the file says; /run (private, empty) got nothing.
        assert!(d.dir.join(format!("state/blackbox-{}", i + 1)).exists());
        assert_eq!(std::fs::read_dir(d.dir.join("run")).unwrap().count(), 0);
    }

    // corosync-quorumtool -l and corosync-cmapctl (listing, -g) on node 2.
    let n2 = &net.nodes[1];
    let (code, out) = run_in(n2, "corosync-quorumtool", &["-l"], Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    for line in [
        "1          1 n1",
        "2          1 n2 (local)",
        "3          1 n3",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    let (code, out) = run_in(n2, "corosync-cmapctl", &[], Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    for line in [
        "runtime.votequorum.this_node_id (u32) = 2".to_string(),
        format!("nodelist.node.2.ring0_addr (str) = {}", addrs[2]),
        "nodelist.node.0.name (str) = n1".to_string(),
        "totem.transport (str) = knet".to_string(),
    ] {
        assert!(out.contains(&line), "{line:?} missing:\n{out}");
    }
    let (code, out) = run_in(
        n2,
        "corosync-cmapctl",
        &["-g", "totem.cluster_name"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "totem.cluster_name (str) = cpgbench");
    // corosync-cfgtool -R: the file as the node runs it reloads (nothing to
    // do), so does one whose logging changed (nothing to apply); any other
    // change is refused (Phalanx applies it on a restart), an unparsable file
    // is CS_ERR_INVALID_PARAM as in Corosync.
    let conf2_path = dir.path.join("n2/corosync.conf");
    let conf2 = std::fs::read_to_string(&conf2_path).unwrap();
    let reload = || run_in(n2, "corosync-cfgtool", &["-R"], Duration::from_secs(10));
    let (code, out) = reload();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Reloading corosync.conf...\nDone"), "{out}");
    std::fs::write(&conf2_path, conf2.replace("cpgbench", "renamed")).unwrap();
    let (code, out) = reload();
    assert!(code != 0 && out.contains("CS_ERR_NOT_SUPPORTED"), "{out}");
    // A change confined to logging has nothing to apply: accepted.
    std::fs::write(&conf2_path, conf2.replace("debug: off", "debug: on")).unwrap();
    let (code, out) = reload();
    assert!(code == 0 && out.contains("Done"), "{out}");
    std::fs::write(&conf2_path, conf2.replace("totem {", "totem {{")).unwrap();
    let (code, out) = reload();
    assert!(code != 0 && out.contains("CS_ERR_INVALID_PARAM"), "{out}");
    std::fs::write(&conf2_path, &conf2).unwrap();
    let (code, out) = reload();
    assert_eq!(code, 0, "{out}");
    // Runtime keys as Corosync publishes them: every member, joined once, with
    // its address per link; the effective totem timings of the file.
    let (code, out) = run_in(
        n2,
        "corosync-cmapctl",
        &["runtime."],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}");
    for (i, a) in addrs.iter().enumerate() {
        let id = i + 1;
        for line in [
            format!("runtime.members.{id}.ip (str) = r(0) ip({a}) "),
            format!("runtime.members.{id}.join_count (u32) = 1"),
            format!("runtime.members.{id}.status (str) = joined"),
            format!("runtime.members.{id}.config_version (u64) = 0"),
        ] {
            assert!(out.contains(&line), "{line:?} missing:\n{out}");
        }
    }
    let cfg2 = phalanx::config::from_corosync_str(&conf2, "corosync.conf")
        .unwrap()
        .config;
    let token = cfg2.totem_config(2).unwrap().token_timeout.as_millis();
    let (code, out) = run_in(
        n2,
        "corosync-cmapctl",
        &["-g", "runtime.config.totem.token"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        format!("runtime.config.totem.token (u32) = {token}")
    );

    // corosync-cfgtool -s: local node, transport, link 0 with this node's
    // address, the others connected (link state comes from the link monitor's
    // pings, which can trail the membership by a ping interval).
    let all_connected = [
        (1, "localhost".to_string()),
        (2, "connected".to_string()),
        (3, "connected".to_string()),
    ];
    let mut out = String::new();
    wait_until(
        "corosync-cfgtool -s on n1 to show nodes 2 and 3 connected",
        Duration::from_secs(10),
        || {
            let (code, o) = run_in(
                &net.nodes[0],
                "corosync-cfgtool",
                &["-s"],
                Duration::from_secs(10),
            );
            assert_eq!(code, 0, "{o}");
            out = o;
            link_states(&out) == all_connected
        },
    );
    assert!(out.contains("Local node ID 1, transport knet"), "{out}");
    assert!(out.contains("LINK ID 0 udp"), "{out}");
    assert!(out.contains(&format!("addr\t= {}", addrs[0])), "{out}");

    // corosync-cfgtool -n on node 2: every other node reachable, with the link's
    // two ends, connected (again once its link monitor has seen them).
    let links: Vec<String> = [1, 3]
        .iter()
        .map(|&other| {
            format!(
                "nodeid: {other} reachable\n   LINK: 0 udp ({}->{}) enabled connected mtu: 1500",
                addrs[1],
                addrs[other - 1]
            )
        })
        .collect();
    let mut out = String::new();
    wait_until(
        "corosync-cfgtool -n on n2 to show nodes 1 and 3 reachable and connected",
        Duration::from_secs(10),
        || {
            let (code, o) = run_in(
                &net.nodes[1],
                "corosync-cfgtool",
                &["-n"],
                Duration::from_secs(10),
            );
            assert_eq!(code, 0, "{o}");
            out = o;
            links.iter().all(|l| out.contains(l.as_str()))
        },
    );
    assert!(out.contains("Local node ID 2, transport knet"), "{out}");
    assert!(
        !out.contains("nodeid: 2 "),
        "the local node is not listed:\n{out}"
    );

    // What Pacemaker's pacemakerd does for its unprivileged daemons: root sets
    // uidgid.gid.<gid> = 1 (u8) through cmap, and a client of that group is then
    // admitted; deleting the key shuts it out again. Read-only keys stay so.
    let as_nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let quorumtool_as_nobody = || {
        let mut args = as_nobody.to_vec();
        args.extend(["corosync-quorumtool", "-s"]);
        run_in(&net.nodes[0], "setpriv", &args, Duration::from_secs(10))
    };
    let cmapctl = |args: &[&str]| {
        run_in(
            &net.nodes[0],
            "corosync-cmapctl",
            args,
            Duration::from_secs(10),
        )
    };
    let (code, out) = quorumtool_as_nobody();
    assert!(code != 0 && out.contains("Cannot initialize"), "{out}");
    let (code, out) = cmapctl(&["-s", "uidgid.gid.65534", "u8", "1"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = quorumtool_as_nobody();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Quorate:          Yes"), "{out}");
    let (code, out) = cmapctl(&["-s", "totem.cluster_name", "str", "x"]);
    assert!(code != 0 && out.contains("CS_ERR_ACCESS"), "{out}");
    let (code, out) = cmapctl(&["-d", "uidgid.gid.65534"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = quorumtool_as_nobody();
    assert!(code != 0, "{out}");

    // Node 3 leaves: node 1's cfgtool shows its link down, quorumtool 2 votes.
    // A client connected to it at that moment (`corosync-quorumtool -m`
    // monitors until killed) loses its connection, and the connection's
    // shared-memory directory (`qb-<daemon pid>-<client pid>-…`) goes with the
    // daemon.
    let pid3 = daemons[2].child.id();
    let shm_of = |pid: u32| -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with(&format!("qb-{pid}-")))
            .collect()
    };
    // `corosync-cmapctl -T runtime.members.` (prefix) on node 2 watches node 3
    // leave and come back; `-t runtime.members.3.join_count` (one key) sees
    // only the rejoin.
    let tracker = Tracker::start(n2, &["-T", "runtime.members."]);
    let key_tracker = Tracker::start(n2, &["-t", "runtime.members.3.join_count"]);
    let mut monitor = in_ns(&net.nodes[2], "corosync-quorumtool", None)
        .arg("-m")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "corosync-quorumtool -m connected to node 3",
        Duration::from_secs(10),
        || !shm_of(pid3).is_empty(),
    );
    daemons[2].stop();
    let left = shm_of(pid3);
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    wait_until(
        "corosync-cfgtool -s on n1 to show node 3 disconnected",
        Duration::from_secs(20),
        || {
            let (_, out) = run_in(
                &net.nodes[0],
                "corosync-cfgtool",
                &["-s"],
                Duration::from_secs(10),
            );
            link_states(&out).contains(&(3, "disconnected".to_string()))
        },
    );
    wait_until("n1 quorate with 2 votes", Duration::from_secs(20), || {
        quorate(&net.nodes[0], 2)
    });
    let (code, out) = run_in(
        &net.nodes[0],
        "corosync-cfgtool",
        &["-n"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("nodeid: 3 reachable"),
        "node 3 left the ring:\n{out}"
    );
    tracker.wait_for("modify> runtime.members.3.status (str) = left");
    // Node 3 starts again: its second join.
    let d3 = dir.path.join("n3");
    daemons[2] = Daemon::start(&net.nodes[2], &d3, &d3.join("corosync.conf"));
    tracker.wait_for("modify> runtime.members.3.join_count (u32) = 2");
    tracker.wait_for("modify> runtime.members.3.status (str) = joined");
    let out = tracker.quit();
    assert!(
        !out.contains("runtime.members.1.") && !out.contains("runtime.members.2."),
        "nodes 1 and 2 stayed:\n{out}"
    );
    key_tracker.wait_for("modify> runtime.members.3.join_count (u32) = 2");
    let out = key_tracker.quit();
    assert!(!out.contains(".status"), "only the tracked key:\n{out}");

    wait_until(
        "n3 serving again, quorate with 3 votes",
        Duration::from_secs(20),
        || quorate(&net.nodes[2], 3),
    );
    // corosync-cfgtool -H on node 3: it answers, then the daemon stops and
    // leaves (node 2's tracking would see it; node 1 counts 2 votes).
    let (code, out) = run_in(
        &net.nodes[2],
        "corosync-cfgtool",
        &["-H"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}");
    wait_until(
        "phalanxd on n3 to exit after -H",
        Duration::from_secs(20),
        || daemons[2].child.try_wait().unwrap().is_some(),
    );
    wait_until(
        "n1 quorate with 2 votes after -H",
        Duration::from_secs(20),
        || quorate(&net.nodes[0], 2),
    );
    drop(daemons);
}

/// A client that keeps running in a namespace — `corosync-cmapctl -t <key>` /
/// `-T <prefix>` (line buffered with `stdbuf -oL`: printf into a pipe would
/// wait for exit) or `cfgtrack` — its output collected by a reader thread.
struct Tracker {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Tracker {
    /// Starts `corosync-cmapctl` tracking `what`; returns once the tool says
    /// its tracking is in place.
    fn start(ns: &str, what: &[&str]) -> Tracker {
        let mut args = vec!["-oL", "corosync-cmapctl"];
        args.extend(what);
        // Printed after cmap_track_add succeeded.
        Tracker::spawn(ns, "stdbuf", &args, "Type \"q\" to finish")
    }

    /// Starts `program args`; returns once it printed the line `ready`.
    fn spawn(ns: &str, program: &str, args: &[&str], ready: &str) -> Tracker {
        use std::io::BufRead;
        let mut child = in_ns(ns, program, None)
            .args(args)
            // Its stdin stays open: EOF on it ends the tracking.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let t = Tracker {
            child,
            out,
            reader: Some(reader),
        };
        t.wait_for(ready);
        t
    }

    /// Everything it printed so far.
    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// How many of its lines are `line`.
    fn count(&self, line: &str) -> usize {
        self.output().lines().filter(|l| *l == line).count()
    }

    fn wait_for(&self, line: &str) {
        let found = Instant::now() + Duration::from_secs(30);
        while Instant::now() < found {
            if self.count(line) > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("never printed {line:?}; it printed:\n{}", self.output());
    }

    /// Types `q`: the tool ends (exit 0); everything it printed.
    fn quit(mut self) -> String {
        use std::io::Write as _;
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"q\n").unwrap();
        drop(stdin);
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let out = self.output();
        assert!(status.success(), "tracker: {status}\n{out}");
        out
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `i` (1-based) of `addrs` in `ns` as the rig does, under `dir/n<i>`.
fn rig_daemon(dir: &TestDir, ns: &str, addrs: &[String], i: usize) -> Daemon {
    let d = dir.path.join(format!("n{i}"));
    std::fs::create_dir_all(&d).unwrap();
    let conf = d.join("corosync.conf");
    std::fs::write(&conf, rig_conf(addrs, &d)).unwrap();
    Daemon::start(ns, &d, &conf)
}

#[test]
fn cfgtool_shutdown_asks_the_cfg_trackers_as_corosync_does() {
    let tag = "cfgvote";
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 1, 88);
    let ns = &net.nodes[0];
    let mut daemon = rig_daemon(&dir, ns, &addrs, 1);
    wait_until("n1 quorate", Duration::from_secs(20), || quorate(ns, 1));
    let cfgtrack = build(&dir, "cfgtrack", "cfg");
    let cfgtrack = cfgtrack.to_str().unwrap();
    let cfgtool = |args: &[&str]| run_in(ns, "corosync-cfgtool", args, Duration::from_secs(30));
    let vetoed = "Could not shutdown (error = 10)";

    // A tracker that says no, as pacemakerd always does: `corosync-cfgtool -H`
    // asks it (flags 0, REQUEST) and gets CS_ERR_BUSY (10); the node runs on.
    let no = Tracker::spawn(ns, cfgtrack, &["no"], "tracking");
    let (code, out) = cfgtool(&["-H"]);
    assert_eq!(code, 0, "corosync-cfgtool exits 0 after a veto too: {out}");
    assert!(
        out.contains("Shutting down corosync") && out.contains(vetoed),
        "{out}"
    );
    no.wait_for("asked 0");
    no.wait_for("replied 1");
    assert!(daemon.running(), "{}", daemon.output());

    // A tracker that never answers: after cfg.shutdown_timeout (ms, written
    // through cmap as on Corosync) its silence counts as no, and every tracker
    // is told of the timeout with the callback again.
    let (code, out) = run_in(
        ns,
        "corosync-cmapctl",
        &["-s", "cfg.shutdown_timeout", "u32", "400"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}");
    let silent = Tracker::spawn(ns, cfgtrack, &["silent"], "tracking");
    let t0 = Instant::now();
    let (code, out) = cfgtool(&["-H"]);
    assert!(code == 0 && out.contains(vetoed), "{out}");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "answered before the timeout: {:?}",
        t0.elapsed()
    );
    wait_until(
        "the silent tracker to be told of the timeout",
        Duration::from_secs(10),
        || silent.count("asked 0") == 2,
    );
    assert!(daemon.running(), "{}", daemon.output());
    drop(silent);

    // `-H --force` (REGARDLESS): asked (flags 1), the no is heard, the node
    // stops anyway; the tracker's connection then ends.
    let (code, out) = cfgtool(&["-H", "--force"]);
    assert!(code == 0 && !out.contains("Could not"), "{out}");
    no.wait_for("asked 1");
    wait_until(
        "phalanxd to exit after -H --force",
        Duration::from_secs(20),
        || !daemon.running(),
    );
    wait_until(
        "the tracker to see its connection end",
        Duration::from_secs(10),
        || no.output().lines().any(|l| l.starts_with("gone ")),
    );
    drop(no);

    // Trackers that agree let a plain -H through.
    let mut daemon = rig_daemon(&dir, ns, &addrs, 1);
    wait_until("n1 quorate again", Duration::from_secs(20), || {
        quorate(ns, 1)
    });
    let yes = Tracker::spawn(ns, cfgtrack, &["yes"], "tracking");
    let (code, out) = cfgtool(&["-H"]);
    assert!(code == 0 && !out.contains("Could not"), "{out}");
    yes.wait_for("replied 1");
    wait_until("phalanxd to exit after -H", Duration::from_secs(20), || {
        !daemon.running()
    });
}

/// The `key (type) = value` line of `key` in a `corosync-cmapctl` listing.
fn cmap_line<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.split_once(' ').is_some_and(|(k, _)| k == key))
}

/// The value of a `u64` key in a `corosync-cmapctl` listing.
fn cmap_u64(out: &str, key: &str) -> u64 {
    cmap_line(out, key)
        .and_then(|l| l.rsplit_once(" = "))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no u64 {key} in:\n{out}"))
}

#[test]
fn cmap_writes_the_stats_map_and_what_a_killed_daemon_left_in_dev_shm() {
    let tag = "cmapw";
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 2, 89);
    let mut daemons: Vec<Daemon> = (1..=2)
        .map(|i| rig_daemon(&dir, &net.nodes[i - 1], &addrs, i))
        .collect();
    let n1 = &net.nodes[0];
    wait_until("n1 quorate, 2 votes", Duration::from_secs(20), || {
        quorate(n1, 2)
    });
    let cmapctl = |args: &[&str]| run_in(n1, "corosync-cmapctl", args, Duration::from_secs(10));

    // Writes where Corosync allows them, each heard by a prefix tracker.
    let tracker = Tracker::start(n1, &["-T", "test."]);
    for args in [
        ["-s", "test.a", "str", "hello"],
        ["-s", "test.a", "u32", "7"],
        ["-s", "test.b", "u8", "1"],
        // Configuration keys Corosync lets a client change (applied on a reload there).
        ["-s", "totem.token", "u32", "5000"],
    ] {
        let (code, out) = cmapctl(&args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    let (code, out) = cmapctl(&["-g", "test.a"]);
    assert_eq!((code, out.trim()), (0, "test.a (u32) = 7"));
    let (code, out) = cmapctl(&["-g", "totem.token"]);
    assert_eq!((code, out.trim()), (0, "totem.token (u32) = 5000"));
    // Read-only keys: CS_ERR_ACCESS, as Corosync answers.
    for key in [
        "totem.cluster_name",
        "nodelist.node.0.nodeid",
        "runtime.config.totem.token",
    ] {
        let (code, out) = cmapctl(&["-s", key, "u32", "1"]);
        assert!(code != 0 && out.contains("CS_ERR_ACCESS"), "{key}: {out}");
        let (code, out) = cmapctl(&["-d", key]);
        assert!(code != 0 && out.contains("CS_ERR_ACCESS"), "{key}: {out}");
    }
    let (code, out) = cmapctl(&["-g", "nodelist.node.0.nodeid"]);
    assert_eq!((code, out.trim()), (0, "nodelist.node.0.nodeid (u32) = 1"));
    // -D deletes a prefix key by key; the read-only ones are refused and stay.
    let (code, out) = cmapctl(&["-D", "nodelist.node.1."]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Can't delete key nodelist.node.1.nodeid"),
        "{out}"
    );
    let (code, out) = cmapctl(&["-d", "test.a"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cmapctl(&["-g", "test.a"]);
    assert!(code != 0 && out.contains("CS_ERR_NOT_EXIST"), "{out}");
    let (code, out) = cmapctl(&["-D", "test."]);
    assert_eq!(code, 0, "{out}");
    // An empty listing: nothing printed, exit status 1 (as on Corosync).
    let (code, out) = cmapctl(&["test."]);
    assert_eq!((code, out.trim()), (1, ""), "all of test. deleted");
    for line in [
        "create> test.a (str) = hello",
        "modify> test.a (u32) = 7",
        "create> test.b (u8) = 1",
        "delete> test.a (u32) = 7",
        "delete> test.b (u8) = 1",
    ] {
        tracker.wait_for(line);
    }
    let out = tracker.quit();
    assert!(!out.contains("totem.token"), "only the prefix:\n{out}");

    // The stats map: Corosync's names where ours mean the same, our own
    // elsewhere, per link and per IPC connection (this listing's own).
    let mut out = String::new();
    wait_until(
        "corosync-cmapctl -m stats on n1 to show the link to node 2 connected",
        Duration::from_secs(10),
        || {
            out = cmapctl(&["-m", "stats"]).1;
            cmap_line(&out, "stats.knet.node2.link0.connected")
                == Some("stats.knet.node2.link0.connected (u8) = 1")
        },
    );
    assert!(cmap_u64(&out, "stats.srp.orf_token_rx") > 0, "{out}");
    assert!(cmap_u64(&out, "stats.srp.operational_entered") > 0, "{out}");
    for key in [
        "stats.srp.mcast_retx",
        "stats.srp.memb_join_tx",
        "stats.srp.token_retransmits",
        "stats.rx_drop.replayed",
        "stats.rx_drop.auth_failed",
        "stats.knet.node2.link0.tx_ping_packets",
        "stats.ipcs.global.active",
    ] {
        cmap_u64(&out, key);
    }
    assert!(
        out.lines().any(|l| l.starts_with("stats.ipcs.service0.")
            && l.ends_with(".procname (str) = corosync-cmapct")),
        "{out}"
    );
    assert!(cmap_u64(&out, "stats.ipcs.global.closed") > 1, "{out}");
    // Read-only but for stats.clear.*: -C ipc zeroes the IPC counters, so the
    // next listing counts one closed connection (the clearing one).
    let (code, out) = cmapctl(&["-m", "stats", "-s", "stats.srp.orf_token_rx", "u64", "0"]);
    assert!(code != 0 && out.contains("CS_ERR_ACCESS"), "{out}");
    let (code, out) = cmapctl(&["-C", "ipc"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cmapctl(&["-m", "stats", "stats.ipcs.global."]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(cmap_u64(&out, "stats.ipcs.global.closed"), 1, "{out}");

    // SIGKILL of n1's daemon with a client connected: the connection's
    // directory stays in /dev/shm, with the daemon's marker. The client is
    // stopped first and killed after (libqb's client library removes a dead
    // server's directory when it disconnects cleanly; a client killed as well,
    // as in a node failure, does not).
    let shm_of = |pid: u32| -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with(&format!("qb-{pid}-")))
            .collect()
    };
    let marker = |pid: u32| Path::new("/dev/shm").join(format!("phalanx-qb-{pid}"));
    let (pid1, pid2) = (daemons[0].child.id(), daemons[1].child.id());
    let client = Tracker::start(n1, &["-T", "test."]);
    // SAFETY: kill(2) on our own child, not yet reaped (Tracker's drop kills it).
    unsafe { libc::kill(client.child.id() as i32, libc::SIGSTOP) };
    let window = shm_window();
    daemons[0].kill();
    let left = shm_of(pid1);
    assert!(!left.is_empty() && marker(pid1).exists(), "{left:?}");
    drop(window);
    drop(client);
    // The next phalanxd removes what the dead one left, and only that: the
    // live daemon of node 2 keeps its marker.
    daemons[0] = rig_daemon(&dir, n1, &addrs, 1);
    wait_until("n1 quorate again", Duration::from_secs(20), || {
        quorate(n1, 2)
    });
    let left = shm_of(pid1);
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    assert!(!marker(pid1).exists());
    assert!(marker(pid2).exists() && marker(daemons[0].child.id()).exists());
    drop(daemons);
}

#[test]
fn version_flag_as_corosync_has_it() {
    for flag in ["-v", "-V", "--version"] {
        let out = Command::new(env!("CARGO_BIN_EXE_phalanxd"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("phalanxd {}", env!("CARGO_PKG_VERSION"))),
            "{flag}: {text}"
        );
    }
}
