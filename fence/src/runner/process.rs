//! [`ProcessAgent`]: a fence-agent executable run the way Pacemaker runs it.

use super::capture::{Captured, DEFAULT_OUTPUT_CAP, read_capped};
use super::process_group::kill_group;
use crate::agent::{AgentReply, AgentRequest, Attempt, Exit, FenceAgent, interpret};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Pause between a failed attempt and the next one (Pacemaker sleeps 1 s).
pub const DEFAULT_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How long, after killing a group, we still wait for its pipes to close before
/// giving up on the output (a process that left the group with setsid may hold
/// them open forever).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Runner limits that are not part of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerLimits {
    /// Bytes kept of each of stdout and stderr per attempt.
    pub output_cap: usize,
    /// Pause between attempts (counted inside the request's timeout).
    pub retry_pause: Duration,
}

impl Default for RunnerLimits {
    fn default() -> Self {
        RunnerLimits {
            output_cap: DEFAULT_OUTPUT_CAP,
            retry_pause: DEFAULT_RETRY_PAUSE,
        }
    }
}

/// Runs agent executables found in one directory.
///
/// Each attempt: the executable `dir/<agent>` is started with **no arguments**, its
/// options written to stdin (then closed), as the leader of a **new process group**;
/// stdout and stderr are captured up to [`RunnerLimits::output_cap`]. When the
/// request's deadline passes, the whole group gets SIGKILL and the agent is reaped
/// ([`Exit::TimedOut`]). A failed attempt is retried (up to
/// [`AgentRequest::attempts`]) while the deadline is not reached — as Pacemaker
/// does: not after a timeout, and only while less than 70% of the timeout is used.
/// Answers such as "status: off" are not failures and are not retried.
#[derive(Debug, Clone)]
pub struct ProcessAgent {
    dir: PathBuf,
    limits: RunnerLimits,
}

impl ProcessAgent {
    /// Agents from `dir` (e.g. `/usr/sbin`) with default limits.
    pub fn new(dir: impl Into<PathBuf>) -> ProcessAgent {
        ProcessAgent {
            dir: dir.into(),
            limits: RunnerLimits::default(),
        }
    }

    /// Agents from `/usr/sbin`, where fence-agents installs them.
    pub fn system() -> ProcessAgent {
        ProcessAgent::new("/usr/sbin")
    }

    /// The same runner with other limits.
    pub fn with_limits(mut self, limits: RunnerLimits) -> ProcessAgent {
        self.limits = limits;
        self
    }

    /// The directory agents are taken from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl FenceAgent for ProcessAgent {
    fn run(&self, request: &AgentRequest) -> AgentReply {
        let start = Instant::now();
        let stdin = match request.stdin() {
            Ok(s) => s,
            Err(e) => return AgentReply::bad_request(e),
        };
        let path = self.dir.join(&request.agent);
        let deadline = start + request.timeout;
        let mut attempts = Vec::new();
        loop {
            let attempt = run_once(&path, &stdin, deadline, self.limits.output_cap);
            let outcome = interpret(request, &attempt);
            let final_exit = matches!(attempt.exit, Exit::TimedOut | Exit::SpawnFailed(_));
            attempts.push(attempt);
            let used = start.elapsed();
            let retry = !outcome.is_success()
                && !final_exit
                && attempts.len() < request.attempts.max(1) as usize
                && used.as_secs_f64() < request.timeout.as_secs_f64() * 0.7;
            if !retry {
                return AgentReply {
                    stdin,
                    attempts,
                    duration: start.elapsed(),
                    outcome,
                };
            }
            std::thread::sleep(
                self.limits
                    .retry_pause
                    .min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
}

/// What the helper threads of one attempt report.
enum Event {
    Stdout(Captured),
    Stderr(Captured),
    Exited(std::io::Result<ExitStatus>),
}

/// One run of the executable, until it and its pipes are done or `deadline`.
fn run_once(path: &Path, stdin: &str, deadline: Instant, cap: usize) -> Attempt {
    let t0 = Instant::now();
    let spawned = Command::new(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return Attempt {
                exit: Exit::SpawnFailed(format!("{}: {e}", path.display())),
                stdout: String::new(),
                stderr: String::new(),
                stdout_dropped: 0,
                stderr_dropped: 0,
                duration: t0.elapsed(),
            };
        }
    };
    let pgid = child.id();
    if let Some(mut pipe) = child.stdin.take() {
        // At most MAX_STDIN_BYTES (< a pipe's buffer): never blocks. An agent that
        // exits without reading gives EPIPE, which changes nothing.
        let _ = pipe.write_all(stdin.as_bytes());
    }
    let (tx, rx) = crossbeam_channel::bounded(3);
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || tx.send(Event::Stdout(read_capped(out, cap))));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        std::thread::spawn(move || tx.send(Event::Stderr(read_capped(err, cap))));
    }
    std::thread::spawn(move || tx.send(Event::Exited(child.wait())));
    let collected = collect(&rx, deadline, pgid);
    let (stdout, stdout_dropped) = lossy(collected.stdout);
    let (stderr, stderr_dropped) = lossy(collected.stderr);
    let exit = match collected.status {
        _ if collected.killed_running => Exit::TimedOut,
        Some(Ok(st)) => match (st.code(), st.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::SpawnFailed("no exit status".into()),
        },
        Some(Err(e)) => Exit::SpawnFailed(format!("wait: {e}")),
        None => Exit::TimedOut,
    };
    Attempt {
        exit,
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
        duration: t0.elapsed(),
    }
}

struct Collected {
    stdout: Option<Captured>,
    stderr: Option<Captured>,
    status: Option<std::io::Result<ExitStatus>>,
    /// The deadline passed while the agent itself was still running.
    killed_running: bool,
}

/// Gathers the exit status and both outputs. At the deadline the group is killed
/// (whether the agent still runs, or only children it left holding the pipes);
/// after that the pipes get [`PIPE_GRACE`] to close.
fn collect(rx: &Receiver<Event>, deadline: Instant, pgid: u32) -> Collected {
    let mut c = Collected {
        stdout: None,
        stderr: None,
        status: None,
        killed_running: false,
    };
    let mut limit = deadline;
    let mut killed = false;
    let mut pending = 3;
    while pending > 0 {
        match rx.recv_deadline(limit) {
            Ok(Event::Stdout(o)) => c.stdout = Some(o),
            Ok(Event::Stderr(e)) => c.stderr = Some(e),
            Ok(Event::Exited(s)) => c.status = Some(s),
            Err(RecvTimeoutError::Timeout) if !killed => {
                killed = true;
                c.killed_running = c.status.is_none();
                kill_group(pgid);
                // The waiter reaps the agent promptly after SIGKILL; the pipes
                // close as soon as the last group member dies.
                limit = Instant::now() + PIPE_GRACE;
                continue;
            }
            Err(_) => break,
        }
        pending -= 1;
    }
    if c.status.is_none() && killed {
        // Pipes held by an escaped process and no status yet: the waiter still
        // reaps the agent in the background; report the timeout.
        c.killed_running = true;
    }
    c
}

fn lossy(c: Option<Captured>) -> (String, u64) {
    match c {
        Some(c) => (String::from_utf8_lossy(&c.kept).into_owned(), c.dropped),
        None => (String::new(), 0),
    }
}
