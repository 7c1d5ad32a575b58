//! Node processes for the recovery scenario: `phalanxd --control` children, their
//! event lines (`<mono_ns> <event> key=value ...`, docs/phalanxd.md) read on a
//! thread per process into one channel, commands written to their stdin.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// CLOCK_MONOTONIC in nanoseconds: the clock of the nodes' line stamps.
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

/// One event line of one node.
#[derive(Clone, Debug)]
pub struct Line {
    /// The node.
    pub node: u32,
    /// Its stamp (CLOCK_MONOTONIC ns).
    pub at: u64,
    /// `ok`, `error`, `quorum`, `dlm_notice`, ...
    pub event: String,
    /// The command verb of an `ok` / `error` answer.
    pub verb: Option<String>,
    /// `key=value` words.
    pub fields: BTreeMap<String, String>,
}

impl Line {
    fn parse(node: u32, text: &str) -> Option<Line> {
        let mut words = text.split(' ');
        let at = words.next()?.parse().ok()?;
        let event = words.next()?.to_string();
        let verb = matches!(event.as_str(), "ok" | "error")
            .then(|| words.next().map(str::to_string))
            .flatten();
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Line {
            node,
            at,
            event,
            verb,
            fields,
        })
    }

    /// Field `key`, or "".
    pub fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }

    /// A `dlm_notice` of this kind?
    pub fn is_notice(&self, kind: &str) -> bool {
        self.event == "dlm_notice" && self.get("kind") == kind
    }
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
}

/// The running node processes.
pub struct Procs {
    procs: BTreeMap<u32, Proc>,
    rx: mpsc::Receiver<Line>,
    /// Every non-answer line read so far, in arrival order.
    pub log: Vec<Line>,
    /// Answers not collected yet, per node.
    answers: BTreeMap<u32, VecDeque<Line>>,
}

impl Procs {
    /// Starts `phalanxd --control` for each id, stderr to `dir/nN.stderr`, pid
    /// files `dir/nN.pid` (for the fence agent).
    pub fn start(phalanxd: &Path, conf: &Path, dir: &Path, ids: &[u32]) -> Procs {
        let (tx, rx) = mpsc::channel();
        let mut procs = BTreeMap::new();
        for &id in ids {
            let err = std::fs::File::create(dir.join(format!("n{id}.stderr"))).unwrap();
            let mut child = Command::new(phalanxd)
                .arg("--config")
                .arg(conf)
                .args(["--node-id", &id.to_string(), "--control", "--no-realtime"])
                .args(["--incarnation", "0"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(err))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", phalanxd.display()));
            std::fs::write(dir.join(format!("n{id}.pid")), format!("{}\n", child.id())).unwrap();
            let stdout = child.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(l) = line else { break };
                    if let Some(l) = Line::parse(id, &l)
                        && tx.send(l).is_err()
                    {
                        return;
                    }
                }
            });
            let stdin = child.stdin.take().unwrap();
            procs.insert(id, Proc { child, stdin });
        }
        Procs {
            procs,
            rx,
            log: Vec::new(),
            answers: BTreeMap::new(),
        }
    }

    /// Reads one line (answers aside); false at the deadline.
    fn read(&mut self, deadline: Instant) -> bool {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        match self.rx.recv_timeout(left) {
            Ok(l) if l.verb.is_some() => {
                self.answers.entry(l.node).or_default().push_back(l);
                true
            }
            Ok(l) => {
                self.log.push(l);
                true
            }
            Err(_) => false,
        }
    }

    /// Writes a command to node `id` (its answer: [`Procs::answer`]).
    pub fn send(&mut self, id: u32, cmd: &str) {
        let p = self.procs.get_mut(&id).expect("a running node");
        writeln!(p.stdin, "{cmd}")
            .and_then(|()| p.stdin.flush())
            .unwrap();
    }

    /// Waits for node `id`'s next answer; panics on `error` or after `limit`.
    pub fn answer(&mut self, id: u32, limit: Duration) -> Line {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(a) = self.answers.get_mut(&id).and_then(VecDeque::pop_front) {
                assert_eq!(a.event, "ok", "node {id} answered {a:?}");
                return a;
            }
            assert!(self.read(deadline), "node {id}: no answer in {limit:?}");
        }
    }

    /// A command and its answer.
    pub fn request(&mut self, id: u32, cmd: &str, limit: Duration) -> Line {
        self.send(id, cmd);
        self.answer(id, limit)
    }

    /// Reads lines until `done(log)` holds; panics after `limit`.
    pub fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&[Line]) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.log) {
            assert!(self.read(deadline), "{what}: not within {limit:?}");
        }
    }

    /// Kills node `id` (SIGKILL) and reaps it; the time of the kill.
    pub fn kill(&mut self, id: u32) -> u64 {
        let mut p = self.procs.remove(&id).expect("a running node");
        let at = mono_ns();
        p.child.kill().unwrap();
        let _ = p.child.wait();
        at
    }

    /// Kills and reaps every node left.
    pub fn kill_all(&mut self) {
        for (_, mut p) in std::mem::take(&mut self.procs) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A run directory on tmpfs when there is one (the nodes fsync their ring
/// sequence on every configuration change), removed on drop unless `keep`.
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
    /// Keep it (a failed run's stderr files).
    pub keep: bool,
}

impl RunDir {
    /// Creates it with a cluster key.
    pub fn new(tag: &str) -> RunDir {
        use std::os::unix::fs::PermissionsExt;
        let shm = Path::new("/dev/shm");
        let base = if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("phalanx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let key: Vec<u8> = (0..256u32).map(|i| (i * 97 + 13) as u8).collect();
        let key_path = path.join("authkey");
        std::fs::write(&key_path, key).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        RunDir { path, keep: true }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
