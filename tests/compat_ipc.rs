//! Corosync's client protocol: `phalanxd` nodes with `compat { ipc: yes }` in
//! network namespaces, used by **unmodified** Corosync clients — the real
//! `corosync-cpgtool` and `corosync-quorumtool` (Debian package `corosync`) and
//! a small C program linked with the real libcpg (`tests/compat_ipc/cpgcheck.c`,
//! built here with gcc; package `libcpg-dev`), run inside the nodes'
//! namespaces. Plus clients that misbehave on purpose: the node and the other
//! clients must carry on.
//!
//! Needs root (namespaces), iproute2, gcc, corosync and libcpg-dev (`.ci/run`
//! installs them); a missing piece fails the test with a message, never skips.

mod common;
#[path = "compat_ipc/shm_client.rs"]
mod shm_client;

use common::cbuild::build;
use common::conf::{TestDir, corosync_conf, one_link};
use common::netns::{Namespaces, star};
use common::recorder::start_quorate;
use common::wait::wait_until;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REST: &str = "quorum {\n    provider: corosync_votequorum\n}\ncompat {\n    ipc: yes\n}\n";

/// A command that runs in network namespace `ns` (entered between fork and
/// exec, as the cluster harness starts its nodes).
fn in_ns(ns: &str, program: &str) -> Command {
    let path = format!("/var/run/netns/{ns}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut cmd = Command::new(program);
    // SAFETY: only setns(2), async-signal-safe, runs in the forked child; the
    // namespace file is moved into the closure and stays open until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

/// Runs `program args` in `ns` to completion (killed after `limit`); exit
/// code, stdout, stderr.
fn run_in(ns: &str, program: &str, args: &[&str], limit: Duration) -> (i32, String, String) {
    let mut child = in_ns(ns, program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (install corosync / gcc, see .ci/run)")
        });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reaps it (or returns the status try_wait saw).
    let status = child.wait().unwrap();
    let (o, e) = (o.join().unwrap(), e.join().unwrap());
    assert!(
        !timed_out,
        "{program} {args:?} did not finish within {limit:?}\nstdout:\n{o}\nstderr:\n{e}"
    );
    (status.code().unwrap_or(-1), o, e)
}

/// Builds `tests/compat_ipc/cpgcheck.c` against the real libcpg.
fn build_cpgcheck(dir: &TestDir) -> PathBuf {
    build(dir, "cpgcheck", "cpg")
}

/// A cpgcheck run that stays joined to `group` until dropped.
struct Holder {
    child: Child,
}

impl Holder {
    fn start(ns: &str, bin: &Path, group: &str) -> Holder {
        let mut child = in_ns(ns, bin.to_str().unwrap())
            .args([group, "H", "0", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l == "joined" => break,
                Some(Ok(_)) => {}
                other => panic!("holder of {group} ended before joining: {other:?}"),
            }
        }
        Holder { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Closing its stdin makes it finalize and exit.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The deliveries (`D` lines) of a cpgcheck output.
fn deliveries(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("D ")).collect()
}

#[test]
fn real_libcpg_clients_on_two_nodes_see_one_agreed_order() {
    let tag = "qbcpg";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs) = star(tag, 2, 91);
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), REST));
    let (_cluster, _log) = start_quorate(&conf, 2, Some(&net));

    // Both join "agreed", wait for each other, multicast 50 messages each.
    let count = 50;
    let runs: Vec<_> = ["A", "B"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (ns, bin) = (net.nodes[i].clone(), bin.clone());
            let t = t.to_string();
            std::thread::spawn(move || {
                run_in(
                    &ns,
                    bin.to_str().unwrap(),
                    &["agreed", &t, &count.to_string(), "2"],
                    Duration::from_secs(60),
                )
            })
        })
        .collect();
    let outs: Vec<(i32, String, String)> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, (code, out, err)) in outs.iter().enumerate() {
        assert_eq!(*code, 0, "cpgcheck on node {} failed:\n{out}\n{err}", i + 1);
        assert!(out.ends_with("done\n"), "node {}: {out}", i + 1);
        // cpg_local_get and cpg_membership_get: its node, two members.
        let l = out.lines().find(|l| l.starts_with("L ")).unwrap();
        assert!(l.starts_with(&format!("L {} [", i + 1)), "{l}");
        assert!(l.contains("1/") && l.contains("2/"), "{l}");
        // The initial totem configuration (model V1 flag) lists both nodes.
        assert!(
            out.lines()
                .any(|l| l.starts_with("T ") && l.ends_with(" 2")),
            "{out}"
        );
    }
    let (d1, d2) = (deliveries(&outs[0].1), deliveries(&outs[1].1));
    assert_eq!(d1.len(), 2 * count, "node 1 deliveries:\n{}", outs[0].1);
    assert_eq!(
        d1, d2,
        "both members deliver the same messages in the same order"
    );
    for t in ["A", "B"] {
        let mine: Vec<String> = d1
            .iter()
            .filter_map(|l| l.split(' ').nth(2))
            .filter(|p| p.starts_with(&format!("{t}:")))
            .map(str::to_string)
            .collect();
        let expected: Vec<String> = (0..count).map(|i| format!("{t}:{i}")).collect();
        assert_eq!(mine, expected, "sender {t}: every message once, in order");
    }
    // Each sender appears with its own node id and pid (libcpg's getpid()).
    let senders: std::collections::BTreeSet<&str> =
        d1.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(senders.len(), 2, "{senders:?}");
    assert!(senders.iter().any(|s| s.starts_with("1/")));
    assert!(senders.iter().any(|s| s.starts_with("2/")));
}

#[test]
fn corosync_cpgtool_and_quorumtool_report_the_cluster() {
    let tag = "qbtools";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs) = star(tag, 2, 92);
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), REST));
    let (mut cluster, mut log) = start_quorate(&conf, 2, Some(&net));

    let holder = Holder::start(&net.nodes[1], &bin, "held-group");
    let pid = holder.pid();
    // Node 1 learns node 2's member through totem; the tool lists what node 1 knows.
    let mut listing = String::new();
    wait_until(
        "node 1 to list node 2's member",
        Duration::from_secs(10),
        || {
            let (code, out, err) = run_in(
                &net.nodes[0],
                "corosync-cpgtool",
                &[],
                Duration::from_secs(10),
            );
            assert_eq!(code, 0, "corosync-cpgtool: {out}{err}");
            listing = out;
            listing.contains("held-group")
        },
    );
    let member_line = listing
        .lines()
        .find(|l| l.contains(&pid.to_string()))
        .unwrap_or_else(|| panic!("no line with pid {pid}:\n{listing}"));
    let fields: Vec<&str> = member_line.split_whitespace().collect();
    // pid, node id, and the node's address (corosync_cfg_get_node_addrs).
    let address = format!("({})", addrs[1]);
    assert_eq!(
        &fields[..],
        [pid.to_string().as_str(), "2", address.as_str()],
        "{listing}"
    );
    let (code, names, _) = run_in(
        &net.nodes[0],
        "corosync-cpgtool",
        &["-n"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0);
    assert!(names.lines().any(|l| l == "held-group"), "{names}");

    for (i, ns) in net.nodes.iter().enumerate() {
        let (code, out, err) = run_in(ns, "corosync-quorumtool", &["-s"], Duration::from_secs(10));
        assert_eq!(
            code,
            0,
            "corosync-quorumtool -s on node {}: {out}{err}",
            i + 1
        );
        assert!(err.is_empty(), "node {}: {err}", i + 1);
        for expected in [
            "Quorum provider:  corosync_votequorum".to_string(),
            "Nodes:            2".to_string(),
            format!("Node ID:          {}", i + 1),
            "Quorate:          Yes".to_string(),
            "Expected votes:   2".to_string(),
            "Total votes:      2".to_string(),
            "Quorum:           2".to_string(),
        ] {
            assert!(
                out.contains(&expected),
                "node {}: no {expected:?} in\n{out}",
                i + 1
            );
        }
        assert!(out.contains(&format!("n{} (local)", i + 1)), "{out}");
        let other = 2 - i;
        assert!(
            out.lines()
                .any(|l| l.trim_end().ends_with(&format!("n{other}"))),
            "{out}"
        );
    }
    // The holder dies without leaving (SIGKILL): its connection closes, its
    // member goes down (PROCDOWN) and node 1 no longer lists the group.
    let mut holder = holder;
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    wait_until(
        "node 1 to drop the killed member",
        Duration::from_secs(10),
        || {
            let (code, out, err) = run_in(
                &net.nodes[0],
                "corosync-cpgtool",
                &[],
                Duration::from_secs(10),
            );
            assert_eq!(code, 0, "corosync-cpgtool: {out}{err}");
            !out.contains("held-group")
        },
    );
    drop(holder);

    // Quorum tracking: `corosync-quorumtool -m` prints each change; node 2
    // leaving must reach it. (stdbuf: the tool never flushes its stdout.)
    let mut monitor = in_ns(&net.nodes[0], "stdbuf")
        .args(["-oL", "corosync-quorumtool", "-m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = monitor.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(what) => return,
                Ok(_) => {}
                Err(_) => panic!("corosync-quorumtool -m never printed {what:?}"),
            }
        }
    };
    wait_for("Nodes:            2");
    // And a libquorum model V1 client: the node list now, then the change.
    let quorumcheck = build(&dir, "quorumcheck", "quorum");
    let mut v1 = in_ns(&net.nodes[0], quorumcheck.to_str().unwrap())
        .arg("2")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut v1_lines = BufReader::new(v1.stdout.take().unwrap()).lines();
    assert_eq!(v1_lines.next().unwrap().unwrap(), "tracking");
    cluster.leave(&mut log, &[2]);
    wait_for("Nodes:            1");
    let mut status = None;
    wait_until(
        "quorumcheck to see node 2 leave",
        Duration::from_secs(10),
        || {
            status = v1.try_wait().unwrap();
            status.is_some()
        },
    );
    assert!(v1.wait().unwrap().success());
    let lines: Vec<String> = v1_lines.map(Result::unwrap).collect();
    let nodelists: Vec<&String> = lines.iter().filter(|l| l.starts_with("N ")).collect();
    assert_eq!(nodelists.len(), 2, "{lines:?}");
    assert!(
        nodelists[0].ends_with("members=[1,2] joined=[] left=[]"),
        "{lines:?}"
    );
    assert!(
        nodelists[1].ends_with("members=[1] joined=[] left=[2]"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("Q ") && lines[1].ends_with("quorate=1 members=[1,2]"),
        "{lines:?}"
    );
    // Node 1 leaving stops its IPC server first: the monitor's connection
    // ends and the tool exits on its own, with an error.
    cluster.leave(&mut log, &[1]);
    let mut status = None;
    wait_until(
        "corosync-quorumtool -m to exit",
        Duration::from_secs(10),
        || {
            status = monitor.try_wait().unwrap();
            status.is_some()
        },
    );
    let status = monitor.wait().unwrap();
    assert!(!status.success(), "the monitor outlived its node: {status}");
    let mut err = String::new();
    monitor
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("Unable to dispatch"), "{err}");
}

/// The libqb connection handshake by hand, for clients that misbehave.
struct RawClient {
    setup: UnixStream,
    request: UnixDatagram,
    event: UnixDatagram,
}

fn abstract_addr(name: &str) -> SocketAddr {
    let mut padded = [0u8; 107];
    padded[..name.len()].copy_from_slice(name.as_bytes());
    SocketAddr::from_abstract_name(padded).unwrap()
}

/// Runs `f` on a thread inside network namespace `ns` (sockets it makes
/// belong there).
fn in_ns_thread<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace fd moves only this thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

fn request_header(id: i32, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    b[0..4].copy_from_slice(&id.to_ne_bytes());
    b[8..12].copy_from_slice(&(size as i32).to_ne_bytes());
    b
}

impl RawClient {
    fn connect(service: &str) -> RawClient {
        let setup = UnixStream::connect_addr(&abstract_addr(service)).unwrap();
        let mut hello = request_header(-1, 24);
        hello[16..20].copy_from_slice(&(1u32 << 20).to_ne_bytes());
        (&setup).write_all(&hello).unwrap();
        let mut answer = vec![0u8; 12328];
        (&setup).read_exact(&mut answer).unwrap();
        assert_eq!(
            i32::from_ne_bytes(answer[16..20].try_into().unwrap()),
            0,
            "refused"
        );
        assert_eq!(
            i32::from_ne_bytes(answer[24..28].try_into().unwrap()),
            0,
            "socket type"
        );
        let base_bytes = &answer[40 + 4096..40 + 8192];
        let end = base_bytes.iter().position(|&b| b == 0).unwrap();
        let base = std::str::from_utf8(&base_bytes[..end]).unwrap().to_string();
        let request = UnixDatagram::bind_addr(&abstract_addr(&format!("{base}-response"))).unwrap();
        request
            .connect_addr(&abstract_addr(&format!("{base}-request")))
            .unwrap();
        let event = UnixDatagram::bind_addr(&abstract_addr(&format!("{base}-event"))).unwrap();
        event
            .connect_addr(&abstract_addr(&format!("{base}-event-tx")))
            .unwrap();
        for s in [&request, &event] {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        setup
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        RawClient {
            setup,
            request,
            event,
        }
    }

    /// Sends `bytes`, returns the reply's error field.
    fn call(&self, bytes: &[u8]) -> i32 {
        self.request.send(bytes).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = self.request.recv(&mut buf).unwrap();
        assert!(n >= 24, "reply of {n} bytes");
        i32::from_ne_bytes(buf[16..20].try_into().unwrap())
    }

    /// Waits until the server closes the connection (EOF on the setup socket).
    fn closed_by_server(&self) -> bool {
        let mut b = [0u8; 16];
        matches!((&self.setup).read(&mut b), Ok(0))
    }
}

#[test]
fn misbehaving_clients_leave_the_node_and_other_clients_alone() {
    let tag = "qbbad";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs): (Namespaces, Vec<String>) = star(tag, 1, 93);
    // The raw clients below speak the socket transport.
    let rest = REST.replace("ipc: yes", "ipc: yes\n    ipc_transport: socket");
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &rest));
    let (_cluster, _log) = start_quorate(&conf, 1, Some(&net));
    let ns = net.nodes[0].clone();

    in_ns_thread(&ns, || {
        // Garbage instead of a connection request: closed.
        let s = UnixStream::connect_addr(&abstract_addr("cpg")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&s).write_all(&[0xAB; 24]).unwrap();
        let mut b = [0u8; 16];
        assert!(
            matches!((&s).read(&mut b), Ok(0)),
            "garbage handshake not closed"
        );

        // A truncated connection request that never completes: dropped after
        // the handshake timeout, not kept forever.
        let s = UnixStream::connect_addr(&abstract_addr("quorum")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        (&s).write_all(&request_header(-1, 24)[..10]).unwrap();
        let t = Instant::now();
        assert!(
            matches!((&s).read(&mut b), Ok(0)),
            "stalled handshake not dropped"
        );
        assert!(t.elapsed() < Duration::from_secs(14));

        // Malformed requests on an established connection: answered
        // CS_ERR_INVALID_PARAM (7), the connection stays usable.
        let c = RawClient::connect("cpg");
        assert_eq!(c.call(&[1, 2, 3]), 7, "truncated header");
        let mut lying = request_header(0, 16);
        lying[8..12].copy_from_slice(&100i32.to_ne_bytes());
        assert_eq!(c.call(&lying), 7, "size field larger than the datagram");
        assert_eq!(c.call(&request_header(99, 16)), 7, "unknown request id");
        assert_eq!(
            c.call(&request_header(4, 16)),
            1,
            "cpg_local_get still works"
        );

        // PARTIAL_MCAST misuse, joined: a fragment without its FIRST, and a
        // message above the node's limit, are refused; a whole one is taken.
        let mut join = request_header(0, 168);
        join[16..20].copy_from_slice(&7u32.to_ne_bytes());
        join[24..31].copy_from_slice(b"partial");
        join[152..156].copy_from_slice(&std::process::id().to_ne_bytes());
        assert_eq!(c.call(&join), 1, "raw join");
        let fragment = |kind: u32, msglen: u32, data: &[u8]| {
            let mut b = request_header(12, 56 + data.len());
            b[24..28].copy_from_slice(&2u32.to_ne_bytes());
            b[32..36].copy_from_slice(&msglen.to_ne_bytes());
            b[40..44].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            b[48..52].copy_from_slice(&kind.to_ne_bytes());
            b[56..].copy_from_slice(data);
            b
        };
        assert_eq!(c.call(&fragment(2, 8, b"abcd")), 7, "CONTINUED first");
        assert_eq!(c.call(&fragment(3, 8, b"abcd")), 7, "LAST first");
        assert_eq!(c.call(&fragment(1, 1 << 30, b"abcd")), 26, "too big");
        assert_eq!(c.call(&fragment(1, 8, b"abcd")), 1, "FIRST");
        assert_eq!(c.call(&fragment(3, 8, b"abcdef")), 7, "LAST overruns");
        assert_eq!(c.call(&fragment(3, 8, b"efgh")), 7, "dropped after misuse");
        assert_eq!(c.call(&fragment(1, 8, b"abcd")), 1, "FIRST again");
        assert_eq!(c.call(&fragment(3, 8, b"efgh")), 1, "LAST completes it");
        let mut lying = fragment(1, 8, b"abcd");
        lying[40..44].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(c.call(&lying), 7, "fraglen disagrees with the size");

        // A request larger than the negotiated maximum: disconnected.
        let big = request_header(2, (1 << 20) + 4096);
        let fd = c.request.as_raw_fd();
        let size: libc::c_int = 4 << 20;
        // SAFETY: setsockopt reads one c_int that outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        c.request.send(&big).unwrap();
        assert!(
            c.closed_by_server(),
            "oversized request did not end the connection"
        );
    });

    // A client that joins a group and never reads its callbacks, while a real
    // libcpg client floods the group: the slow one is disconnected, the other
    // finishes. 25000 messages of 2 KiB pass the 32 MiB callback queue bound
    // (the count bound, 262144 callbacks, is above what small messages reach here).
    let slow = in_ns_thread(&ns, || {
        let c = RawClient::connect("cpg");
        let mut join = request_header(0, 168);
        join[16..20].copy_from_slice(&5u32.to_ne_bytes());
        join[24..29].copy_from_slice(b"flood");
        join[152..156].copy_from_slice(&std::process::id().to_ne_bytes());
        assert_eq!(c.call(&join), 1, "raw join");
        c
    });
    let _ = &slow.event; // never read
    let (code, out, err) = run_in(
        &ns,
        bin.to_str().unwrap(),
        &["flood", "F", "25000", "2", "1", "2048"],
        Duration::from_secs(120),
    );
    assert_eq!(
        code,
        0,
        "the reading client must finish: {err}\n{}",
        out.len()
    );
    assert_eq!(deliveries(&out).len(), 25000);
    assert!(
        slow.closed_by_server(),
        "the client that never reads was not disconnected"
    );

    // The node still serves new clients.
    let (code, out, err) = run_in(&ns, "corosync-quorumtool", &["-s"], Duration::from_secs(10));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Quorate:          Yes"), "{out}");
}

/// The `/dev/shm` entries of connections of process `pid`
/// (`qb-<server>-<pid>-<n>-<random>`).
fn shm_dirs_of_client(pid: u32) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("qb-") && n.split('-').nth(2) == Some(&pid.to_string()))
        .collect()
}

#[test]
fn misbehaving_shared_memory_clients_are_disconnected_and_the_node_carries_on() {
    use shm_client::ShmClient;
    let tag = "qbshmbad";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs): (Namespaces, Vec<String>) = star(tag, 1, 98);
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), REST));
    let (_cluster, _log) = start_quorate(&conf, 1, Some(&net));
    let ns = net.nodes[0].clone();

    in_ns_thread(&ns, || {
        // Malformed requests in the ring: answered CS_ERR_INVALID_PARAM (7),
        // the connection stays usable.
        let c = ShmClient::connect("cpg");
        assert_eq!(c.call(&[1, 2, 3]), 7, "truncated header");
        assert_eq!(c.call(&request_header(99, 16)), 7, "unknown request id");
        assert_eq!(c.call(&request_header(4, 16)), 1, "cpg_local_get works");

        // A write pointer beyond the ring: disconnected.
        c.request.set_write_pt(u32::MAX);
        c.notify();
        assert!(
            c.closed_by_server(),
            "corrupt ring did not end the connection"
        );

        // A chunk claiming more than the negotiated maximum: disconnected.
        let c = ShmClient::connect("cpg");
        c.request.write_chunk(&request_header(4, 16), 2 << 20);
        c.notify();
        assert!(
            c.closed_by_server(),
            "oversized chunk did not end the connection"
        );

        // The reply ring's file cut to nothing under the server: the fault is
        // caught, the connection dropped, the daemon lives.
        let c = ShmClient::connect("quorum");
        c.response.data_file.set_len(0).unwrap();
        c.send(&request_header(0, 16));
        assert!(
            c.closed_by_server(),
            "truncated ring did not end the connection"
        );
    });

    // A client that joins a group and never reads its callbacks, while a real
    // libcpg client floods the group: the slow one is disconnected (its event
    // ring, then its bounded queue fill), the other finishes.
    let slow = in_ns_thread(&ns, || {
        let c = ShmClient::connect("cpg");
        let mut join = request_header(0, 168);
        join[16..20].copy_from_slice(&5u32.to_ne_bytes());
        join[24..29].copy_from_slice(b"flood");
        join[152..156].copy_from_slice(&std::process::id().to_ne_bytes());
        assert_eq!(c.call(&join), 1, "raw join");
        c
    });
    let _ = &slow.event; // never read
    let (code, out, err) = run_in(
        &ns,
        bin.to_str().unwrap(),
        &["flood", "F", "25000", "2", "1", "2048"],
        Duration::from_secs(120),
    );
    assert_eq!(
        code,
        0,
        "the reading client must finish: {err}\n{}",
        out.len()
    );
    assert_eq!(deliveries(&out).len(), 25000);
    assert!(
        slow.closed_by_server(),
        "the client that never reads was not disconnected"
    );
    drop(slow);

    // Every closed connection's directory and rings are gone.
    let me = std::process::id();
    wait_until(
        "the server to remove the closed connections' /dev/shm directories",
        Duration::from_secs(10),
        || shm_dirs_of_client(me).is_empty(),
    );
    // The node still serves new clients.
    let (code, out, err) = run_in(&ns, "corosync-quorumtool", &["-s"], Duration::from_secs(10));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Quorate:          Yes"), "{out}");
}

#[test]
fn only_root_the_daemon_user_and_uidgid_entries_may_connect() {
    let tag = "qbuid";
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 1, 94);
    let rest = format!("{REST}uidgid {{\n    uid: nobody\n}}\n");
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), &rest));
    let (_cluster, _log) = start_quorate(&conf, 1, Some(&net));
    let ns = &net.nodes[0];
    let as_user = |uid: &str| {
        run_in(
            ns,
            "setpriv",
            &[
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "corosync-cpgtool",
            ],
            Duration::from_secs(10),
        )
    };
    // nobody (65534) is listed in uidgid: served.
    let (code, out, err) = as_user("65534");
    assert_eq!(code, 0, "nobody refused: {out}{err}");
    assert!(out.contains("Group Name"), "{out}");
    // Another unprivileged user is refused at the handshake.
    let (code, out, err) = as_user("65533");
    assert_ne!(code, 0, "uid 65533 served: {out}{err}");
    assert!(
        err.contains("Could not initialize corosync cpg API"),
        "{err}"
    );
    // Root always is.
    let (code, out, err) = run_in(ns, "corosync-cpgtool", &[], Duration::from_secs(10));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn corosync_quorumtool_sets_expected_votes_and_votes() {
    let tag = "qbvote";
    let dir = TestDir::new(tag);
    let (net, addrs) = star(tag, 1, 95);
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), REST));
    let (_cluster, _log) = start_quorate(&conf, 1, Some(&net));
    let ns = &net.nodes[0];
    // votequorum_setexpected, then votequorum_setvotes.
    let quorumtool =
        |args: &[&str]| run_in(ns, "corosync-quorumtool", args, Duration::from_secs(10));
    let (code, out, err) = quorumtool(&["-e", "3"]);
    assert_eq!(code, 0, "-e 3: {out}{err}");
    let mut status = String::new();
    wait_until("expected votes 3 to apply", Duration::from_secs(10), || {
        status = quorumtool(&["-s"]).1;
        status.contains("Expected votes:   3")
    });
    assert!(status.contains("Quorate:          No"), "{status}");
    assert!(status.contains("Activity blocked"), "{status}");
    let (code, out, err) = quorumtool(&["-v", "3"]);
    assert_eq!(code, 0, "-v 3: {out}{err}");
    wait_until("3 votes to apply", Duration::from_secs(10), || {
        status = quorumtool(&["-s"]).1;
        status.contains("Total votes:      3")
    });
    assert!(status.contains("Quorate:          Yes"), "{status}");
    // No quorum.device configured: a device may not register.
    let bin = build(&dir, "qdevcheck", "votequorum");
    let mut dev = Qdevice::start(ns, &bin);
    assert_eq!(dev.ask("reg dev"), "reg 11", "CS_ERR_ACCESS");
    let (_, flags, l) = dev.info();
    assert_eq!(flags & QDEVICE_REGISTERED, 0, "{l}");
}

#[test]
fn large_messages_reach_libcpg_whole() {
    let tag = "qbbig";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs) = star(tag, 1, 96);
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), REST));
    let (_cluster, _log) = start_quorate(&conf, 1, Some(&net));
    // 300 000 bytes: one request datagram in, three partial deliveries out
    // (callbacks are cut at 128 KiB), reassembled by libcpg; cpgcheck checks
    // every delivery's size.
    let (code, out, err) = run_in(
        &net.nodes[0],
        bin.to_str().unwrap(),
        &["big", "L", "5", "1", "1", "300000"],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{out}{err}");
    let d = deliveries(&out);
    assert_eq!(d.len(), 5, "{out}");
    for (i, l) in d.iter().enumerate() {
        assert!(l.ends_with(&format!(" L:{i}")), "{l}");
    }
}

/// `tests/compat_ipc/qdevcheck.c` (a quorum device on the real
/// libvotequorum), driven one command line at a time.
struct Qdevice {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Qdevice {
    fn start(ns: &str, bin: &Path) -> Qdevice {
        let mut child = in_ns(ns, bin.to_str().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next();
        assert!(
            matches!(&first, Some(Ok(l)) if l == "ready"),
            "qdevcheck did not start: {first:?}"
        );
        Qdevice { child, lines }
    }

    /// Sends one command, returns its answer line.
    fn ask(&mut self, cmd: &str) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        match self.lines.next() {
            Some(Ok(l)) => l,
            other => panic!("qdevcheck ended at {cmd:?}: {other:?}"),
        }
    }

    /// getinfo of this node: `(total votes, flags, the whole line)`.
    fn info(&mut self) -> (u32, u32, String) {
        let l = self.ask("info 0");
        assert!(l.starts_with("info 1 "), "{l}");
        let field = |name: &str| -> u32 {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {l}"))
        };
        (field("total="), field("flags="), l)
    }

    /// The ring id the device last learned, `rep.seq`.
    fn ring(&mut self) -> (String, bool) {
        let l = self.ask("ring");
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[0], "ring", "{l}");
        (f[1].to_string(), f[2] == "quorate=1")
    }
}

impl Drop for Qdevice {
    fn drop(&mut self) {
        // End of input: it finalizes and exits.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// votequorum's getinfo flags (`VOTEQUORUM_INFO_*`).
const QUORATE: u32 = 2;
const QDEVICE_REGISTERED: u32 = 64;
const QDEVICE_ALIVE: u32 = 128;
const QDEVICE_CAST_VOTE: u32 = 256;

#[test]
fn a_libvotequorum_quorum_device_registers_polls_and_its_vote_counts() {
    let tag = "qbqdev";
    let dir = TestDir::new(tag);
    let bin = build(&dir, "qdevcheck", "votequorum");
    let (net, addrs) = star(tag, 2, 99);
    // A device model other than `net`: an external program registers over
    // libvotequorum; its votes default to N−1 = 1, so expected votes are 3
    // and quorum 2.
    let rest = "quorum {\n    provider: corosync_votequorum\n    device {\n        \
                model: testdev\n        timeout: 1500\n    }\n}\ncompat {\n    ipc: yes\n}\n";
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), rest));
    let (mut cluster, mut log) = start_quorate(&conf, 2, Some(&net));
    let mut dev = Qdevice::start(&net.nodes[0], &bin);

    let (total, flags, l) = dev.info();
    assert_eq!((total, flags), (2, QUORATE), "{l}");
    assert!(
        l.ends_with("quorum=2 expected=3 flags=2 qvotes=1 qname="),
        "{l}"
    );
    // Not registered yet.
    assert!(
        dev.ask("poll dev 1").starts_with("poll 12 "),
        "CS_ERR_NOT_EXIST"
    );
    assert_eq!(dev.ask("unreg dev"), "unreg 12");
    // One device per node.
    assert_eq!(dev.ask("reg dev"), "reg 1");
    assert_eq!(dev.ask("reg dev"), "reg 1", "the same name again is fine");
    assert_eq!(dev.ask("reg other"), "reg 14", "CS_ERR_EXIST");
    let (_, flags, l) = dev.info();
    assert_eq!(flags, QUORATE | QDEVICE_REGISTERED, "{l}");
    assert!(l.ends_with("qname=dev"), "{l}");
    // A poll for a ring that is not the current one, or under another name.
    let (ring, _) = dev.ring();
    let (rep, seq) = ring.split_once('.').unwrap();
    let stale_seq: u64 = seq.parse::<u64>().unwrap() - 1;
    assert_eq!(
        dev.ask(&format!("pollring dev 1 {rep} {stale_seq}")),
        "poll 22",
        "CS_ERR_MESSAGE_ERROR"
    );
    assert!(
        dev.ask("poll other 1").starts_with("poll 7 "),
        "CS_ERR_INVALID_PARAM"
    );
    // Master-wins has no rule in the votequorum core: refused, not faked.
    assert_eq!(dev.ask("mw dev 1"), "mw 19", "CS_ERR_NOT_SUPPORTED");
    assert_eq!(dev.ask("mw dev 0"), "mw 1");
    assert_eq!(dev.info().1 & QDEVICE_ALIVE, 0, "no poll yet");

    // The vote counts on both nodes.
    assert_eq!(dev.ask("poll dev 1"), format!("poll 1 {ring}"));
    let mut last = String::new();
    wait_until("the device vote to count", Duration::from_secs(10), || {
        let (total, _, l) = dev.info();
        last = l;
        total == 3
    });
    let (_, flags, l) = dev.info();
    assert_eq!(
        flags,
        QUORATE | QDEVICE_REGISTERED | QDEVICE_ALIVE | QDEVICE_CAST_VOTE,
        "{l}"
    );
    let (code, out, err) = run_in(
        &net.nodes[0],
        "corosync-quorumtool",
        &["-s"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Total votes:      3"), "{out}");
    assert!(out.contains("Flags:            Quorate Qdevice"), "{out}");
    // The node's line says alive, voting, no master-wins; the device's own
    // line (node id 0) its votes and name.
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["1", "1", "A,V,NMW", "n1", "(local)"]),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "1", "dev"]),
        "{out}"
    );
    wait_until(
        "node 2 to count the device vote",
        Duration::from_secs(10),
        || {
            let (_, out, _) = run_in(
                &net.nodes[1],
                "corosync-quorumtool",
                &["-s"],
                Duration::from_secs(10),
            );
            out.contains("Total votes:      3")
        },
    );

    // Node 2 goes: a new ring, without the device's vote until it polls for
    // that ring — node 1 alone (1 vote of quorum 2) is inquorate.
    cluster.leave(&mut log, &[2]);
    let mut now = (String::new(), true);
    wait_until(
        "node 1 to see the new ring",
        Duration::from_secs(10),
        || {
            now = dev.ring();
            now.0 != ring
        },
    );
    let (new_ring, quorate) = now;
    assert!(
        !quorate,
        "node 1 alone must not be quorate without the device"
    );
    let (total, flags, l) = dev.info();
    assert_eq!((total, flags & QUORATE), (1, 0), "{l}");
    // A poll for the old ring is refused, one for the new ring makes it quorate.
    assert_eq!(
        dev.ask(&format!("pollring dev 1 {rep} {seq}")),
        "poll 22",
        "the old ring"
    );
    assert_eq!(dev.ask("poll dev 1"), format!("poll 1 {new_ring}"));
    wait_until(
        "the device to make node 1 quorate",
        Duration::from_secs(10),
        || {
            let (total, flags, l) = dev.info();
            last = l;
            total == 2 && flags & QUORATE != 0
        },
    );
    // The notification is an event: it may reach the client after getinfo's
    // answer already shows the new state.
    wait_until(
        "the quorum notification to say quorate",
        Duration::from_secs(10),
        || dev.ring().1,
    );

    // The device stops polling: after quorum.device.timeout it is no longer
    // alive and its vote is withdrawn.
    wait_until(
        "the silent device to lose its vote",
        Duration::from_secs(10),
        || {
            let (total, flags, l) = dev.info();
            last = l;
            total == 1 && flags & (QUORATE | QDEVICE_ALIVE | QDEVICE_CAST_VOTE) == 0
        },
    );
    assert_eq!(dev.info().1, QDEVICE_REGISTERED, "{last}");

    // Polling again brings it back; unregistering takes the vote away.
    assert_eq!(dev.ask("poll dev 1"), format!("poll 1 {new_ring}"));
    wait_until("the vote back", Duration::from_secs(10), || {
        dev.info().0 == 2
    });
    assert_eq!(
        dev.ask("update nodev other"),
        "update 7",
        "CS_ERR_INVALID_PARAM"
    );
    assert_eq!(dev.ask("update dev dev2"), "update 1");
    assert!(dev.info().2.ends_with("qname=dev2"));
    assert_eq!(dev.ask("unreg dev"), "unreg 7", "the old name");
    assert_eq!(dev.ask("unreg dev2"), "unreg 1");
    wait_until(
        "the vote gone after unregister",
        Duration::from_secs(10),
        || {
            let (total, flags, l) = dev.info();
            last = l;
            total == 1 && flags & QUORATE == 0
        },
    );
    assert_eq!(dev.info().1 & QDEVICE_REGISTERED, 0, "{last}");
    assert!(
        dev.ask("poll dev2 1").starts_with("poll 12 "),
        "CS_ERR_NOT_EXIST"
    );
    // Another name may register now.
    assert_eq!(dev.ask("reg other"), "reg 1");
}

/// The node's `stats.srp.delivered` and `stats.srp.delivered_safe` (one
/// snapshot), through the real `corosync-cmapctl -m stats`.
fn delivered_counters(ns: &str) -> (u64, u64) {
    let (code, out, err) = run_in(
        ns,
        "corosync-cmapctl",
        &["-m", "stats", "stats.srp.delivered"],
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "corosync-cmapctl: {out}{err}");
    let value = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} (u64) = ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{out}"))
    };
    (
        value("stats.srp.delivered"),
        value("stats.srp.delivered_safe"),
    )
}

/// Runs cpgcheck on both nodes of `net` (group `group`, `count` messages
/// each, with `guarantee`, of `size` bytes if given), checks both delivered
/// the same messages.
fn two_senders(
    net: &Namespaces,
    bin: &Path,
    group: &str,
    count: usize,
    guarantee: &str,
    size: Option<usize>,
) {
    let runs: Vec<_> = ["A", "B"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (ns, bin, group) = (net.nodes[i].clone(), bin.to_path_buf(), group.to_string());
            let (t, g) = (t.to_string(), guarantee.to_string());
            std::thread::spawn(move || {
                let mut args = vec![group, t, count.to_string(), "2".into()];
                if let Some(size) = size {
                    args.extend(["2".into(), size.to_string()]);
                }
                let mut child = in_ns(&ns, bin.to_str().unwrap())
                    .args(&args)
                    .env("CPGCHECK_GUARANTEE", g)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut out = String::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                let status = child.wait().unwrap();
                (status.success(), out)
            })
        })
        .collect();
    let outs: Vec<(bool, String)> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, (ok, out)) in outs.iter().enumerate() {
        assert!(ok, "cpgcheck on node {} failed:\n{out}", i + 1);
    }
    let (d1, d2) = (deliveries(&outs[0].1), deliveries(&outs[1].1));
    assert_eq!(d1.len(), 2 * count, "{}", outs[0].1);
    assert_eq!(d1, d2, "one order on both members");
}

#[test]
fn cpg_type_safe_from_libcpg_is_delivered_as_safe_on_every_node() {
    let tag = "qbsafe";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs) = star(tag, 2, 100);
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), REST));
    let (_cluster, _log) = start_quorate(&conf, 2, Some(&net));
    let count = 20;
    let sent = 2 * count as u64;
    let counters = || {
        [
            delivered_counters(&net.nodes[0]),
            delivered_counters(&net.nodes[1]),
        ]
    };

    // CPG_TYPE_AGREED: totem's agreed path, nothing goes through the safe
    // gate. (The node publishes its counters every few ms: wait until the
    // snapshot includes the deliveries, then compare.)
    let before = counters();
    two_senders(&net, &bin, "agreed-group", count, "agreed", None);
    let mut now = before;
    wait_until(
        "the agreed deliveries counted",
        Duration::from_secs(10),
        || {
            now = counters();
            (0..2).all(|n| now[n].0 >= before[n].0 + sent)
        },
    );
    for n in 0..2 {
        assert_eq!(
            now[n].1,
            before[n].1,
            "node {}: agreed multicasts delivered as safe",
            n + 1
        );
    }

    // CPG_TYPE_SAFE: every message of both senders passes totem's safe gate
    // (held until every member has it) on each node.
    let before = now;
    two_senders(&net, &bin, "safe-group", count, "safe", None);
    wait_until(
        "the safe deliveries counted",
        Duration::from_secs(10),
        || {
            now = counters();
            (0..2).all(|n| now[n].0 >= before[n].0 + sent)
        },
    );
    for n in 0..2 {
        assert!(
            now[n].1 >= before[n].1 + sent,
            "node {}: {} safe deliveries for {sent} safe multicasts",
            n + 1,
            now[n].1 - before[n].1,
        );
    }
}

#[test]
fn messages_above_libcpg_ipc_limit_travel_as_partial_mcasts() {
    let tag = "qbpartial";
    let dir = TestDir::new(tag);
    let bin = build_cpgcheck(&dir);
    let (net, addrs) = star(tag, 2, 101);
    // 4 MiB messages allowed (Phalanx's totem.max_message_size, which CPG's
    // limit follows).
    let totem = "    max_message_size: 4194304\n";
    let conf = dir.write_conf(&corosync_conf(&dir, tag, totem, &one_link(&addrs), REST));
    let (_cluster, _log) = start_quorate(&conf, 2, Some(&net));
    // 3 000 000 bytes: libcpg's limit is 1 MiB − 1 KiB, so each message goes
    // to the daemon as FIRST, CONTINUED, LAST fragments; each member gets it
    // back as partial deliveries, reassembled by libcpg (cpgcheck checks every
    // delivery's size and the order on both nodes).
    two_senders(&net, &bin, "partial-group", 2, "agreed", Some(3_000_000));
}
