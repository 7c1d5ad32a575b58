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

/// A `phalanxd -f -c FILE`, stopped with SIGTERM (as teardown.sh does) when
/// dropped.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(ns: &str, dir: &Path, conf: &Path) -> Daemon {
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
        Daemon {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
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
    // do); a changed file is refused (Phalanx applies changes on a restart),
    // an unparsable one is CS_ERR_INVALID_PARAM as in Corosync.
    let conf2_path = dir.path.join("n2/corosync.conf");
    let conf2 = std::fs::read_to_string(&conf2_path).unwrap();
    let reload = || run_in(n2, "corosync-cfgtool", &["-R"], Duration::from_secs(10));
    let (code, out) = reload();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Reloading corosync.conf...\nDone"), "{out}");
    std::fs::write(&conf2_path, conf2.replace("cpgbench", "renamed")).unwrap();
    let (code, out) = reload();
    assert!(code != 0 && out.contains("CS_ERR_NOT_SUPPORTED"), "{out}");
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
    // admitted; deleting the key shuts it out again. Other keys stay read-only.
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
    let (code, out) = cmapctl(&["-s", "totem.token", "u32", "1"]);
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

/// `corosync-cmapctl -t <key>` / `-T <prefix>` running in a namespace, its output line
/// buffered (`stdbuf -oL`: printf into a pipe would wait for exit) and
/// collected by a reader thread.
struct Tracker {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Tracker {
    /// Starts tracking; returns once the tool says its tracking is in place.
    fn start(ns: &str, what: &[&str]) -> Tracker {
        use std::io::BufRead;
        let mut child = in_ns(ns, "stdbuf", None)
            .args(["-oL", "corosync-cmapctl"])
            .args(what)
            // Its stdin stays open: EOF on it ends the tracking.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run stdbuf corosync-cmapctl");
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
        // Printed after cmap_track_add succeeded.
        t.wait_for("Type \"q\" to finish");
        t
    }

    fn wait_for(&self, line: &str) {
        let mut seen = String::new();
        let found = Instant::now() + Duration::from_secs(30);
        while Instant::now() < found {
            seen = self.out.lock().unwrap().clone();
            if seen.lines().any(|l| l == line) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("corosync-cmapctl -t never printed {line:?}; it printed:\n{seen}");
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
        let out = self.out.lock().unwrap().clone();
        assert!(status.success(), "corosync-cmapctl -t: {status}\n{out}");
        out
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
