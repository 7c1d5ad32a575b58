//! The node processes: `phalanxd --control`, each in its node's network
//! namespace (optionally in a time namespace of its own), its event stream
//! copied verbatim into `n<node>.<incarnation>.events` (the process's history)
//! and handed to the controller line by line, its diagnostics into
//! `n<node>.<incarnation>.log`.

use crate::net::ns_path;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

/// What a process printed, or that its output ended.
pub enum Line {
    /// One event line of (node, incarnation).
    Event(u32, u32, String),
    /// The output of (node, incarnation) ended.
    Eof(u32, u32),
}

/// How to start node processes.
pub struct Launcher {
    /// The `phalanxd` binary.
    pub phalanxd: PathBuf,
    /// The configuration file.
    pub conf: PathBuf,
    /// The run directory (event and log files).
    pub dir: PathBuf,
    /// Pass `--no-realtime`.
    pub no_realtime: bool,
    /// Plant the bug in this node's first process.
    pub plant_bug_in: Option<u32>,
    /// Where each node's current pid is written as `n<node>.pid` (the fence
    /// agent `fence_phalanx_kill` kills the process a pid file names).
    pub pid_dir: PathBuf,
    /// Every process's pid → (node, incarnation), for the CIB clients.
    pub pids: crate::cib_client::Pids,
}

/// One running process.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    incarnation: u32,
}

/// The running processes and the channel their lines come on.
pub struct Procs {
    launcher: Launcher,
    /// Node `i`'s network namespace is `netns[i - 1]`.
    netns: Vec<String>,
    running: BTreeMap<u32, Proc>,
    spawns: BTreeMap<u32, u32>,
    tx: mpsc::Sender<Line>,
    /// Lines of every process, in arrival order per process.
    pub rx: mpsc::Receiver<Line>,
}

/// Path of the history file of (node, incarnation).
pub fn events_path(dir: &Path, node: u32, inc: u32) -> PathBuf {
    dir.join(format!("n{node}.{inc}.events"))
}

impl Procs {
    /// No process yet.
    pub fn new(launcher: Launcher, netns: Vec<String>) -> Procs {
        let (tx, rx) = mpsc::channel();
        Procs {
            launcher,
            netns,
            running: BTreeMap::new(),
            spawns: BTreeMap::new(),
            tx,
            rx,
        }
    }

    /// The incarnation the next process of node `id` will have.
    pub fn next_incarnation(&self, id: u32) -> u32 {
        self.spawns.get(&id).copied().unwrap_or(0)
    }

    /// Starts a process for node `id` (not running); `clock_offset_s` > 0 runs it
    /// in a new time namespace that far ahead. Returns its incarnation.
    pub fn spawn(&mut self, id: u32, clock_offset_s: u32) -> std::io::Result<u32> {
        if self.running.contains_key(&id) {
            return Err(std::io::Error::other(format!("node {id} is running")));
        }
        let inc = self.next_incarnation(id);
        let l = &self.launcher;
        let ns = self
            .netns
            .get(id as usize - 1)
            .ok_or_else(|| std::io::Error::other(format!("no namespace for node {id}")))?;
        let netns = std::fs::File::open(ns_path(ns))?;
        let fd = netns.as_raw_fd();
        // Prepared before the fork: the child may only make system calls.
        let offsets: Vec<Vec<u8>> = ["monotonic", "boottime"]
            .iter()
            .map(|c| format!("{c} {clock_offset_s} 0\n").into_bytes())
            .collect();
        let offsets_file = c"/proc/self/timens_offsets";
        let mut cmd = Command::new(&l.phalanxd);
        cmd.arg("--config")
            .arg(&l.conf)
            .args(["--node-id", &id.to_string(), "--control"])
            .args(["--incarnation", &inc.to_string()]);
        if l.no_realtime {
            cmd.arg("--no-realtime");
        }
        if l.plant_bug_in == Some(id) && inc == 0 {
            cmd.args(["--plant-bug", "swap-deliveries"]);
        }
        // Each node is a simulated host: its boot id lives beside its pid file,
        // and the fence agent rewrites it when it power-cycles the node.
        cmd.arg("--boot-id-file")
            .arg(l.pid_dir.join(format!("n{id}.boot_id")));
        let stdout_file = std::fs::File::create(events_path(&l.dir, id, inc))?;
        let log = std::fs::File::create(l.dir.join(format!("n{id}.{inc}.log")))?;
        // SAFETY: between fork and exec the child makes only async-signal-safe
        // system calls (prctl, setns, unshare, open, write, close) on memory
        // prepared before the fork; `netns` stays open until the spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                // The node dies with the nemesis, whatever kills it; and a
                // Ctrl-C at the terminal reaches only the nemesis, which then
                // cleans up in order.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                    || libc::setpgid(0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if clock_offset_s > 0 {
                    // The new time namespace is the children's; exec moves this
                    // process into it. Offsets must be set before that.
                    if libc::unshare(libc::CLONE_NEWTIME) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let f = libc::open(offsets_file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if f < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    for o in &offsets {
                        if libc::write(f, o.as_ptr().cast(), o.len()) != o.len() as isize {
                            let e = std::io::Error::last_os_error();
                            libc::close(f);
                            return Err(e);
                        }
                    }
                    libc::close(f);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        drop(netns);
        self.spawns.insert(id, inc + 1);
        if let Ok(mut pids) = self.launcher.pids.lock() {
            pids.insert(child.id(), (id, inc));
        }
        // Written at once: from now on a fence of node `id` kills this process.
        let pid_file = self.launcher.pid_dir.join(format!("n{id}.pid"));
        if let Err(e) = std::fs::write(&pid_file, format!("{}\n", child.id())) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no pipes to the node"));
        };
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name(format!("nemesis-n{id}.{inc}"))
            .spawn(move || copy_lines(stdout, stdout_file, id, inc, tx))?;
        self.running.insert(
            id,
            Proc {
                child,
                stdin,
                incarnation: inc,
            },
        );
        Ok(inc)
    }

    /// The incarnation of running node `id`.
    pub fn incarnation(&self, id: u32) -> Option<u32> {
        self.running.get(&id).map(|p| p.incarnation)
    }

    /// The running nodes.
    pub fn running(&self) -> Vec<u32> {
        self.running.keys().copied().collect()
    }

    /// Writes one command line to node `id`.
    pub fn send(&mut self, id: u32, command: &str) -> std::io::Result<()> {
        let p = self
            .running
            .get_mut(&id)
            .ok_or_else(|| std::io::Error::other(format!("node {id} is not running")))?;
        writeln!(p.stdin, "{command}")?;
        p.stdin.flush()
    }

    /// `kill -9` node `id` and reap it. Returns its incarnation.
    pub fn kill9(&mut self, id: u32) -> std::io::Result<u32> {
        let mut p = self
            .running
            .remove(&id)
            .ok_or_else(|| std::io::Error::other(format!("node {id} is not running")))?;
        p.child.kill()?;
        p.child.wait()?;
        Ok(p.incarnation)
    }

    /// Sends `sig` to node `id`.
    pub fn signal(&self, id: u32, sig: i32) -> std::io::Result<()> {
        let p = self
            .running
            .get(&id)
            .ok_or_else(|| std::io::Error::other(format!("node {id} is not running")))?;
        // SAFETY: kill(2) on our own, not yet reaped, child.
        if unsafe { libc::kill(p.child.id() as i32, sig) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Whether node `id`'s process has exited (reaping it if so).
    pub fn exited(&mut self, id: u32) -> bool {
        match self.running.get_mut(&id) {
            Some(p) => matches!(p.child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// The signal that ended node `id`'s exited process, if a signal did.
    pub fn exit_signal(&mut self, id: u32) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let p = self.running.get_mut(&id)?;
        p.child.try_wait().ok().flatten()?.signal()
    }

    /// Waits up to `limit` for node `id`'s process to exit; whether it did.
    pub fn wait_exit(&mut self, id: u32, limit: std::time::Duration) -> bool {
        let end = std::time::Instant::now() + limit;
        loop {
            if self.exited(id) {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// When the fence agent confirmed node `id`'s current process dead, on the
    /// nemesis's clock (CLOCK_MONOTONIC ns): the agent appends `REALTIME_NS
    /// PID` to `n<id>.kills` beside the pid file once the process is gone
    /// (`fence/test-agents/fence_phalanx_kill`). `None` when it wrote nothing
    /// for this process. Read just after the exit, so the two clocks' offset
    /// is taken then.
    pub fn agent_kill_confirmed(&self, id: u32) -> Option<u64> {
        let pid = self.running.get(&id)?.child.id();
        let path = self.launcher.pid_dir.join(format!("n{id}.kills"));
        let text = std::fs::read_to_string(path).ok()?;
        let stamp: u64 = text.lines().rev().find_map(|l| {
            let (t, p) = l.split_once(' ')?;
            (p.trim().parse::<u32>().ok()? == pid).then(|| t.parse().ok())?
        })?;
        let real_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos() as u64;
        let mono_now = crate::record::mono_ns();
        // A stamp from the future (a clock step): not a usable date.
        (stamp <= real_now).then(|| mono_now.saturating_sub(real_now - stamp))
    }

    /// Forgets an exited process (its `leave` ended it).
    pub fn forget(&mut self, id: u32) {
        if let Some(mut p) = self.running.remove(&id) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in self.running.values_mut() {
            // SIGKILL ends a stopped (paused) process too.
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Copies the process's lines into its history file and to the controller.
fn copy_lines(
    stdout: std::process::ChildStdout,
    mut file: std::fs::File,
    id: u32,
    inc: u32,
    tx: mpsc::Sender<Line>,
) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // The file gets exactly what the process wrote (a last partial line of a
        // killed process included).
        if file.write_all(&buf).is_err() {
            break;
        }
        if buf.last() == Some(&b'\n') {
            let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
            if tx.send(Line::Event(id, inc, line)).is_err() {
                break;
            }
        }
    }
    let _ = tx.send(Line::Eof(id, inc));
}
