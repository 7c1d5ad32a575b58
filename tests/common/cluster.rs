//! The multi-process harness: N `phalanxd --control` processes (optionally each in
//! its own network namespace) driven over the controller protocol
//! (docs/phalanxd.md). Commands go to a node's stdin; its event lines are read
//! on a thread per process into one channel, and the test thread parses them and
//! hands each to the test's model (an [`Observer`]) while waiting, with a
//! deadline, for a condition on that model. Nodes can be killed (`kill -9`),
//! stopped (`SIGSTOP`), restarted (a new incarnation) or asked to leave.

use super::events::{self, Event, Reply};
use super::netns::Namespaces;
use super::wait::{Deadline, wait_until};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest wait for the answer to a request.
const REPLY_LIMIT: Duration = Duration::from_secs(20);

/// CLOCK_MONOTONIC in nanoseconds, the clock of the nodes' timestamps.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds as milliseconds, for printing.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// One event of one node process.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The node.
    pub node: u32,
    /// Its incarnation (0 for the first process of the node, +1 per restart).
    pub incarnation: u32,
    /// When the node observed it (CLOCK_MONOTONIC ns; for `Eof`, when the
    /// harness read the end of the output).
    pub at: u64,
    /// What.
    pub event: Event,
}

/// A test's model of the cluster, fed every event in the order each node
/// reported them (nodes interleaved as their lines arrive).
pub trait Observer {
    /// Takes one event.
    fn observe(&mut self, o: &Observed);
    /// The model's state, for the message of a failed wait.
    fn describe(&self) -> String {
        String::new()
    }
}

/// Ignores everything.
impl Observer for () {
    fn observe(&mut self, _: &Observed) {}
}

enum Raw {
    Line(u32, u32, String),
    Eof(u32, u32),
}

/// What the answer to a command is for.
enum Awaiting {
    /// Fail the test unless it is `ok`.
    Ok(String),
    /// Keep it for the caller, under this ticket.
    Return(u64),
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    incarnation: u32,
}

/// The running node processes of one test.
pub struct Cluster {
    conf: PathBuf,
    /// Node i runs in `netns[i - 1]`; empty: in this namespace.
    netns: Vec<String>,
    procs: BTreeMap<u32, Proc>,
    spawns: BTreeMap<u32, u32>,
    tx: mpsc::Sender<Raw>,
    rx: mpsc::Receiver<Raw>,
    /// Per process: the commands not answered yet, in order.
    pending: BTreeMap<(u32, u32), VecDeque<(String, Awaiting)>>,
    returned: BTreeMap<u64, Reply>,
    tickets: u64,
    ended: BTreeSet<(u32, u32)>,
    /// Each node a simulated host whose boot id is `<dir>/n<id>.boot_id`
    /// (`phalanxd --boot-id-file`), which `fence_phalanx_kill` rewrites.
    boot_id_dir: Option<PathBuf>,
}

impl Cluster {
    /// Starts nodes `ids` from the configuration file `conf`, each in its network
    /// namespace of `net` (node i in `net.nodes[i - 1]`) if given.
    pub fn start(
        conf: &Path,
        ids: impl IntoIterator<Item = u32>,
        net: Option<&Namespaces>,
    ) -> Cluster {
        Cluster::start_hosts(conf, ids, net, None)
    }

    /// As [`Cluster::start`], each node a simulated host whose boot id is read
    /// from `<boot_id_dir>/n<id>.boot_id` (when given).
    pub fn start_hosts(
        conf: &Path,
        ids: impl IntoIterator<Item = u32>,
        net: Option<&Namespaces>,
        boot_id_dir: Option<&Path>,
    ) -> Cluster {
        let (tx, rx) = mpsc::channel();
        let mut c = Cluster {
            conf: conf.to_path_buf(),
            netns: net.map(|n| n.nodes.clone()).unwrap_or_default(),
            procs: BTreeMap::new(),
            spawns: BTreeMap::new(),
            tx,
            rx,
            pending: BTreeMap::new(),
            returned: BTreeMap::new(),
            tickets: 0,
            ended: BTreeSet::new(),
            boot_id_dir: boot_id_dir.map(Path::to_path_buf),
        };
        for id in ids {
            c.spawn(id);
        }
        c
    }

    /// Starts a process for node `id` (not running): incarnation 0 the first
    /// time, one more on every restart. Returns the incarnation.
    pub fn spawn(&mut self, id: u32) -> u32 {
        assert!(
            !self.procs.contains_key(&id),
            "node {id} is already running"
        );
        let spawns = self.spawns.entry(id).or_default();
        let inc = *spawns;
        *spawns += 1;
        assert!(
            self.netns.is_empty() || self.netns.len() >= id as usize,
            "no network namespace for node {id}"
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phalanxd"));
        // In its namespace: the child enters it between fork and exec (not `ip
        // netns exec`, whose private mount namespace makes every start and exit
        // wait for RCU grace periods, seconds on a busy machine).
        let netns = self.netns.get(id as usize - 1).map(|ns| {
            let path = format!("/var/run/netns/{ns}");
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        });
        if let Some(f) = &netns {
            let fd = f.as_raw_fd();
            // SAFETY: only setns(2), async-signal-safe, runs in the forked child;
            // `fd` stays open until the spawn returns.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        if let Some(d) = &self.boot_id_dir {
            cmd.arg("--boot-id-file")
                .arg(d.join(format!("n{id}.boot_id")));
        }
        let mut child = cmd
            .arg("--config")
            .arg(&self.conf)
            .args(["--node-id", &id.to_string(), "--control", "--no-realtime"])
            .args(["--incarnation", &inc.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start phalanxd for node {id}: {e}"));
        drop(netns);
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(Raw::Line(id, inc, l)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Raw::Eof(id, inc));
        });
        // The node's diagnostics, through the test's output capture (shown when
        // the test fails, or with --nocapture).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(l) = line else { break };
                eprintln!("[n{id}#{inc}] {l}");
            }
        });
        let stdin = child.stdin.take().unwrap();
        self.procs.insert(
            id,
            Proc {
                child,
                stdin,
                incarnation: inc,
            },
        );
        inc
    }

    /// The running nodes.
    pub fn running(&self) -> Vec<u32> {
        self.procs.keys().copied().collect()
    }

    /// The incarnation of running node `id`.
    pub fn incarnation(&self, id: u32) -> u32 {
        self.proc(id).incarnation
    }

    fn proc(&self, id: u32) -> &Proc {
        self.procs
            .get(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    fn write(&mut self, id: u32, cmd: &str, awaiting: Awaiting) {
        let p = self
            .procs
            .get_mut(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        writeln!(p.stdin, "{cmd}")
            .and_then(|()| p.stdin.flush())
            .unwrap_or_else(|e| panic!("node {id}: cannot send `{cmd}`: {e}"));
        let verb = cmd.split_whitespace().next().unwrap_or("-").to_string();
        let awaiting = match awaiting {
            Awaiting::Ok(_) => Awaiting::Ok(cmd.to_string()),
            other => other,
        };
        self.pending
            .entry((id, p.incarnation))
            .or_default()
            .push_back((verb, awaiting));
    }

    /// Sends a command whose answer must be `ok`: an `error` answer fails the
    /// test when it arrives.
    pub fn send(&mut self, id: u32, cmd: &str) {
        self.write(id, cmd, Awaiting::Ok(String::new()));
    }

    /// Commands sent to node `id` (its current process) not answered yet.
    pub fn unanswered(&self, id: u32) -> usize {
        let key = (id, self.incarnation(id));
        self.pending.get(&key).map_or(0, VecDeque::len)
    }

    /// Sends `cmd` to every node of `ids` and returns their answers (`ok` or
    /// `error`), feeding `model` every event meanwhile.
    pub fn request_all<M: Observer>(
        &mut self,
        model: &mut M,
        ids: &[u32],
        cmd: &str,
    ) -> BTreeMap<u32, Reply> {
        let mut tickets = BTreeMap::new();
        for &id in ids {
            self.tickets += 1;
            tickets.insert(id, self.tickets);
            self.write(id, cmd, Awaiting::Return(self.tickets));
        }
        let deadline = Deadline::after(
            format!("the answers to `{cmd}` from nodes {ids:?}"),
            REPLY_LIMIT,
        );
        while !tickets.values().all(|t| self.returned.contains_key(t)) {
            deadline.check(|| model.describe());
            self.next(model, deadline.remaining());
        }
        tickets
            .into_iter()
            .map(|(id, t)| (id, self.returned.remove(&t).unwrap()))
            .collect()
    }

    /// Sends `cmd` to node `id` without waiting: its answer, if one comes,
    /// is [`Cluster::answer`]`(ticket)`.
    pub fn ask(&mut self, id: u32, cmd: &str) -> u64 {
        self.tickets += 1;
        let t = self.tickets;
        self.write(id, cmd, Awaiting::Return(t));
        t
    }

    /// The answer to [`Cluster::ask`]'s `ticket`, if it came.
    pub fn answer(&self, ticket: u64) -> Option<&Reply> {
        self.returned.get(&ticket)
    }

    /// Sends `cmd` to node `id` and returns its answer (`ok` or `error`).
    pub fn request<M: Observer>(&mut self, model: &mut M, id: u32, cmd: &str) -> Reply {
        self.request_all(model, &[id], cmd).remove(&id).unwrap()
    }

    /// Feeds `model` events until `done(model)` holds (checked before the first
    /// event and after each); fails the test after `limit`, naming `what` and the
    /// model's state. Returns how long it took.
    #[track_caller]
    pub fn until<M: Observer>(
        &mut self,
        model: &mut M,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&M) -> bool,
    ) -> Duration {
        let deadline = Deadline::after(what, limit);
        while !done(model) {
            deadline.check(|| model.describe());
            self.next(model, deadline.remaining().min(Duration::from_millis(20)));
        }
        deadline.elapsed()
    }

    /// Feeds `model` every event for `d` (observation: nothing waits on it).
    pub fn observe_for<M: Observer>(&mut self, model: &mut M, d: Duration) {
        let end = mono_ns() + d.as_nanos() as u64;
        while let Some(left) = end.checked_sub(mono_ns()) {
            self.next(
                model,
                Duration::from_nanos(left).min(Duration::from_millis(20)),
            );
        }
    }

    /// Feeds `model` the events already read, without waiting.
    pub fn drain<M: Observer>(&mut self, model: &mut M) {
        while self.next(model, Duration::ZERO) {}
    }

    /// Takes the next event (waiting at most `wait`) to `model`; whether there
    /// was one.
    fn next<M: Observer>(&mut self, model: &mut M, wait: Duration) -> bool {
        let raw = match self.rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(_) => return false,
        };
        let o = match raw {
            Raw::Eof(node, incarnation) => {
                self.ended.insert((node, incarnation));
                Observed {
                    node,
                    incarnation,
                    at: mono_ns(),
                    event: Event::Eof,
                }
            }
            Raw::Line(node, incarnation, line) => {
                let (at, event) = events::parse(&line).unwrap_or_else(|e| {
                    panic!("node {node}#{incarnation} printed a line that does not parse ({e}): {line:?}")
                });
                Observed {
                    node,
                    incarnation,
                    at,
                    event,
                }
            }
        };
        if let Event::Reply(r) = &o.event {
            self.answered(o.node, o.incarnation, r);
        }
        model.observe(&o);
        true
    }

    fn answered(&mut self, node: u32, inc: u32, r: &Reply) {
        let asked = self
            .pending
            .get_mut(&(node, inc))
            .and_then(VecDeque::pop_front);
        let Some((verb, awaiting)) = asked else {
            panic!("node {node}#{inc} answered a command it was not sent: {r:?}");
        };
        assert_eq!(
            verb, r.verb,
            "node {node}#{inc} answered `{}` where `{verb}` was due",
            r.verb
        );
        match awaiting {
            Awaiting::Ok(cmd) => assert!(
                r.ok,
                "node {node}#{inc}: `{cmd}` failed: {}",
                r.fields.get("reason").map_or("", String::as_str)
            ),
            Awaiting::Return(t) => {
                self.returned.insert(t, r.clone());
            }
        }
    }

    /// `kill -9` node `id` and reap it; returns when (CLOCK_MONOTONIC ns) it was
    /// gone. Lines it printed before dying still come, then its `Eof`.
    pub fn kill9(&mut self, id: u32) -> u64 {
        let mut p = self
            .procs
            .remove(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        mono_ns()
    }

    /// Waits (up to 10 s) for node `id`'s process to exit by itself (killed by
    /// its watchdog, say), reaps it and returns how it ended.
    pub fn wait_exit(&mut self, id: u32) -> std::process::ExitStatus {
        let mut p = self
            .procs
            .remove(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let mut status = None;
        wait_until(
            &format!("node {id} to exit"),
            Duration::from_secs(10),
            || {
                status = p.child.try_wait().unwrap();
                status.is_some()
            },
        );
        status.unwrap()
    }

    /// The process id of running node `id`.
    pub fn pid(&self, id: u32) -> u32 {
        self.proc(id).child.id()
    }

    /// Sends signal `sig` to node `id` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`).
    pub fn signal(&self, id: u32, sig: i32) {
        let pid = self.proc(id).child.id() as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// Whether the output of node `id`'s incarnation `inc` has ended.
    pub fn ended(&self, id: u32, inc: u32) -> bool {
        self.ended.contains(&(id, inc))
    }

    /// Feeds `model` events until node `id`'s incarnation `inc` has printed its
    /// last line (after [`Cluster::kill9`], say).
    pub fn until_ended<M: Observer>(&mut self, model: &mut M, id: u32, inc: u32) {
        let what = format!("the output of node {id}#{inc} to end");
        let deadline = Deadline::after(what, Duration::from_secs(10));
        while !self.ended(id, inc) {
            deadline.check(|| model.describe());
            self.next(model, deadline.remaining().min(Duration::from_millis(20)));
        }
    }

    /// Asks nodes `ids` to leave the cluster (all at once) and waits until each
    /// has printed its last line and exited with success.
    pub fn leave<M: Observer>(&mut self, model: &mut M, ids: &[u32]) {
        let incs: Vec<(u32, u32)> = ids.iter().map(|&id| (id, self.incarnation(id))).collect();
        for &id in ids {
            self.send(id, "leave");
        }
        for &(id, inc) in &incs {
            self.until_ended(model, id, inc);
            let mut p = self.procs.remove(&id).unwrap();
            let mut status = None;
            wait_until(
                &format!("node {id} to exit"),
                Duration::from_secs(10),
                || {
                    status = p.child.try_wait().unwrap();
                    status.is_some()
                },
            );
            let status = status.unwrap();
            assert!(status.success(), "node {id} exited with {status}");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
