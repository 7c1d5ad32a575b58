//! One run: start the nodes, wait for the first ring, drive the schedule while
//! every node multicasts (its own `load`) and uses the CPG group and quorum,
//! then repair everything, let the cluster settle and drain, take every
//! node's final status and stop. Everything the processes print and everything
//! the controller does is written into the run directory as it happens.

use crate::history::{GROUP, cpg_text};
use crate::live::{Answered, Live, Pending};
use crate::net::Net;
use crate::procs::{Line, Procs};
use crate::record::Recorder;
use crate::schedule::{Fault, Step};
use crate::signals;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// The network could not be changed.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// A process or file operation failed.
    #[error("{0}")]
    Io(String),
    /// The cluster never formed.
    #[error("the first ring of all nodes did not form within {0:?}")]
    NoFirstRing(Duration),
    /// The cluster did not settle after a measured fault.
    #[error("the cluster did not settle within {1:?} after `{0}`")]
    NotSettled(String, Duration),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(format!("{what}: {e}"))
}

/// What paces a run.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Each node's load: a message every this many ms.
    pub load_ms: u64,
    /// Each node's member multicasts to the group every this many ms.
    pub cpg_ms: u64,
    /// Longest wait for the cluster to settle after the faults.
    pub settle: Duration,
}

/// The services every node runs besides totem, CPG and quorum.
#[derive(Clone, Debug)]
pub struct Services {
    /// Lock workers per process (`dlm-hammer`); 0: the DLM takes no part.
    pub dlm_threads: u32,
    /// Resources `r0..` of the lockspace the workers lock.
    pub dlm_resources: u32,
    /// Each node's CIB client asks every this often; `None`: the CIB takes no part.
    pub cib_every: Option<Duration>,
    /// The nodes' state directory (their admin sockets).
    pub state_dir: std::path::PathBuf,
    /// Every process's pid → (node, incarnation).
    pub pids: crate::cib_client::Pids,
    /// How long a fenced node stays down before it is started again (a reboot).
    pub reboot_after: Duration,
    /// The run directory (the CIB clients' records).
    pub dir: std::path::PathBuf,
}

/// The lockspace the lock workers use.
pub const LOCKSPACE: &str = "nemesis";

/// How the run went (the judging comes after).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Fault events applied.
    pub applied: usize,
    /// Per kind of fault, how many.
    pub kinds: BTreeMap<&'static str, usize>,
    /// The cluster settled (one ring, quorate, one group view) after the faults.
    pub settled: bool,
    /// ... and drained (everything sent delivered).
    pub drained: bool,
    /// Seconds from the first ring to the end of the faults.
    pub fault_phase_s: f64,
    /// Notes for the verdict (what took long, what failed).
    pub notes: Vec<String>,
}

/// One round of the failover measurement.
pub struct Failover {
    /// The node killed and restarted.
    pub victim: u32,
    /// From the kill to the survivors settled without it.
    pub failover: Duration,
    /// From the restart to all settled with it.
    pub rejoin: Duration,
}

/// The CPG member of incarnation `inc` (unique across a node's processes).
pub fn local_of(inc: u32) -> u32 {
    inc + 1
}

/// A run in progress.
pub struct Run {
    procs: Procs,
    net: Net,
    rec: Recorder,
    live: Live,
    pace: Pace,
    nodes: u32,
    paused: BTreeSet<u32>,
    killed: BTreeSet<u32>,
    groups: Option<Vec<Vec<u32>>>,
    cuts: BTreeSet<(u32, u32)>,
    /// Per node: the next CPG message number.
    cpg_seq: BTreeMap<u32, u64>,
    /// CPG load on.
    cpg_on: bool,
    outcome: Outcome,
    services: Services,
    seed: u64,
    /// Fenced nodes (killed by the fence agent, not by the nemesis) and when
    /// they are started again.
    reboots: BTreeMap<u32, Instant>,
    /// Fenced nodes are started again (not after the final statuses).
    reboots_on: bool,
    cib: Option<crate::cib_client::Clients>,
}

impl Run {
    /// Starts nodes 1..=`nodes` (the record's `start` line written first).
    pub fn start(
        procs: Procs,
        net: Net,
        mut rec: Recorder,
        pace: Pace,
        nodes: u32,
        seed: u64,
        services: Services,
    ) -> Result<Run, RunError> {
        let wall = phalanx::logsys::wall_ns();
        rec.write(
            "start",
            &[
                ("nodes", nodes.to_string()),
                ("seed", seed.to_string()),
                ("wall_ns", wall.to_string()),
            ],
        )
        .map_err(io("record"))?;
        let mut run = Run {
            procs,
            net,
            rec,
            live: Live::default(),
            pace,
            nodes,
            paused: BTreeSet::new(),
            killed: BTreeSet::new(),
            groups: None,
            cuts: BTreeSet::new(),
            cpg_seq: BTreeMap::new(),
            cpg_on: true,
            outcome: Outcome::default(),
            services,
            seed,
            reboots: BTreeMap::new(),
            reboots_on: true,
            cib: None,
        };
        run.record_net()?;
        for id in 1..=nodes {
            run.spawn(id, 0)?;
        }
        if let Some(every) = run.services.cib_every {
            run.cib = Some(
                crate::cib_client::Clients::start(
                    &run.services.dir,
                    &run.services.state_dir,
                    nodes,
                    run.services.pids.clone(),
                    every,
                )
                .map_err(io("CIB clients"))?,
            );
        }
        Ok(run)
    }

    /// Which incarnation runs on each running node.
    fn current(&self) -> BTreeMap<u32, u32> {
        self.procs
            .running()
            .into_iter()
            .filter_map(|id| Some((id, self.procs.incarnation(id)?)))
            .collect()
    }

    fn spawn(&mut self, id: u32, clock_offset_s: u32) -> Result<u32, RunError> {
        // Recorded first: nothing the new process prints can come before it.
        let inc = self.procs.next_incarnation(id);
        self.rec
            .write(
                "spawn",
                &[
                    ("node", id.to_string()),
                    ("inc", inc.to_string()),
                    ("clock", clock_offset_s.to_string()),
                ],
            )
            .map_err(io("record"))?;
        self.procs
            .spawn(id, clock_offset_s)
            .map_err(io("start phalanxd"))?;
        let local = local_of(inc);
        self.command(
            id,
            inc,
            &format!("cpg-member {local}"),
            Pending::Other("cpg-member".into()),
        )?;
        self.join(id, inc)?;
        let load = format!("load {} 1000 4", self.pace.load_ms);
        self.command(id, inc, &load, Pending::Other("load".into()))?;
        Ok(inc)
    }

    fn join(&mut self, id: u32, inc: u32) -> Result<(), RunError> {
        let local = local_of(inc);
        self.rec
            .write(
                "cpg-join",
                &[
                    ("node", id.to_string()),
                    ("inc", inc.to_string()),
                    ("member", local.to_string()),
                ],
            )
            .map_err(io("record"))?;
        self.command(
            id,
            inc,
            &format!("cpg-join {local} {GROUP}"),
            Pending::CpgJoin,
        )
    }

    /// Sends a command to (id, inc), noting what its answer will be for. A
    /// process that is gone (its pipe closed) is not an error of the run.
    fn command(&mut self, id: u32, inc: u32, cmd: &str, pending: Pending) -> Result<(), RunError> {
        if self.procs.send(id, cmd).is_ok() {
            self.live.proc(id, inc).pending.push_back(pending);
        }
        Ok(())
    }

    /// The record of the network's state: every blocked (from, to) pair.
    fn record_net(&mut self) -> Result<(), RunError> {
        let mut blocked: BTreeSet<(u32, u32)> = self.cuts.clone();
        if let Some(groups) = &self.groups {
            let group_of = |n: u32| groups.iter().position(|g| g.contains(&n));
            for a in 1..=self.nodes {
                for b in 1..=self.nodes {
                    if group_of(a) != group_of(b) {
                        blocked.insert((a, b));
                    }
                }
            }
        }
        let list: Vec<String> = blocked.iter().map(|(a, b)| format!("{a}>{b}")).collect();
        let list = if list.is_empty() {
            "-".into()
        } else {
            list.join(",")
        };
        self.rec
            .write("net", &[("blocked", list)])
            .map_err(io("record"))?;
        Ok(())
    }

    /// Takes lines until `deadline`, multicasting to the group on the way.
    fn pump_until(&mut self, deadline: Instant) -> Result<(), RunError> {
        self.pump(deadline, |_| false).map(|_| ())
    }

    /// Takes lines until `done` holds (checked after every line and at least
    /// every 20 ms) or `deadline`; whether `done` held.
    fn pump(&mut self, deadline: Instant, done: impl Fn(&Run) -> bool) -> Result<bool, RunError> {
        let tick = Duration::from_millis(self.pace.cpg_ms.max(1));
        let mut next_tick = Instant::now();
        loop {
            if signals::interrupted() {
                return Err(RunError::Interrupted);
            }
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            if now >= next_tick {
                self.reboot_fenced(now)?;
                self.cpg_tick()?;
                next_tick = now + tick;
            }
            let wait = deadline
                .min(next_tick)
                .saturating_duration_since(now)
                .min(Duration::from_millis(20));
            match self.procs.rx.recv_timeout(wait) {
                Ok(Line::Event(node, inc, line)) => self.line(node, inc, &line)?,
                Ok(Line::Eof(node, inc)) => self.eof(node, inc)?,
                Err(_) => {}
            }
        }
    }

    fn line(&mut self, node: u32, inc: u32, line: &str) -> Result<(), RunError> {
        match self.live.line(node, inc, line) {
            Answered::CpgRefused(text) => {
                self.rec
                    .write(
                        "cpg-unsent",
                        &[
                            ("node", node.to_string()),
                            ("inc", inc.to_string()),
                            ("text", text),
                        ],
                    )
                    .map_err(io("record"))?;
            }
            Answered::Failed(verb, reason) => {
                self.rec
                    .write(
                        "refused",
                        &[
                            ("node", node.to_string()),
                            ("inc", inc.to_string()),
                            ("verb", verb),
                            // One word: record fields hold no spaces.
                            ("reason", reason.replace(' ', "_")),
                        ],
                    )
                    .map_err(io("record"))?;
            }
            Answered::Nothing => {}
        }
        Ok(())
    }

    /// A process's output ended: expected after a kill or a leave; otherwise the
    /// process died by itself, which the verdict reports.
    fn eof(&mut self, node: u32, inc: u32) -> Result<(), RunError> {
        // Its output ends just before it exits (a process whose stdout fails
        // stops at once).
        if self.procs.incarnation(node) == Some(inc)
            && self.procs.wait_exit(node, Duration::from_secs(5))
        {
            // SIGKILL from someone else than the nemesis: the fence agent
            // (the judge checks that a fencing of the node was reported).
            if self.services.reboot_after > Duration::ZERO
                && self.procs.exit_signal(node) == Some(libc::SIGKILL)
            {
                // The agent's own date of the death, when it left one: this
                // record is written only once the process's output ended.
                let confirmed = self.procs.agent_kill_confirmed(node);
                self.procs.forget(node);
                self.killed.insert(node);
                self.paused.remove(&node);
                self.reboots
                    .insert(node, Instant::now() + self.services.reboot_after);
                let mut fields = vec![("node", node.to_string()), ("inc", inc.to_string())];
                if let Some(t) = confirmed {
                    fields.push(("confirmed", t.to_string()));
                }
                self.rec.write("fenced", &fields).map_err(io("record"))?;
                *self
                    .outcome
                    .kinds
                    .entry("fenced (by the agent)")
                    .or_default() += 1;
                return Ok(());
            }
            self.procs.forget(node);
            self.killed.insert(node);
            self.paused.remove(&node);
            self.rec
                .write(
                    "exit",
                    &[("node", node.to_string()), ("inc", inc.to_string())],
                )
                .map_err(io("record"))?;
            self.outcome.notes.push(format!(
                "n{node}#{inc} exited by itself (see n{node}.{inc}.log)"
            ));
        }
        Ok(())
    }

    /// One CPG multicast from every node that can take one, and a new join
    /// attempt where the last one was refused.
    fn cpg_tick(&mut self) -> Result<(), RunError> {
        if !self.cpg_on {
            return Ok(());
        }
        for (id, inc) in self.current() {
            if self.paused.contains(&id) {
                continue;
            }
            let dlm_threads = self.services.dlm_threads;
            let p = self.live.proc(id, inc);
            if dlm_threads > 0
                && self.cpg_on
                && !p.dlm_running
                && p.dlm_stopped.is_none()
                && !p.hammer_pending()
                && p.quorate()
            {
                let seed = self.seed ^ (u64::from(id) << 40) ^ (u64::from(inc) << 20);
                let cmd = format!(
                    "dlm-hammer {LOCKSPACE} {} {seed} {dlm_threads}",
                    self.services.dlm_resources
                );
                self.command(id, inc, &cmd, Pending::DlmHammer)?;
            }
            let p = self.live.proc(id, inc);
            if !p.joined {
                if !p.join_pending() && p.config.is_some() {
                    self.join(id, inc)?;
                }
                continue;
            }
            if p.mcasts_in_flight() >= 2 {
                continue;
            }
            let seq = self.cpg_seq.entry(id).or_default();
            *seq += 1;
            let local = local_of(inc);
            let text = cpg_text(id, local, inc, *seq);
            let g = if *seq % 3 == 0 { "safe" } else { "agreed" };
            // Recorded before it goes out: a process killed before answering
            // may still have sent it.
            self.rec
                .write(
                    "cpg-send",
                    &[
                        ("node", id.to_string()),
                        ("inc", inc.to_string()),
                        ("member", local.to_string()),
                        ("text", text.clone()),
                    ],
                )
                .map_err(io("record"))?;
            if self
                .procs
                .send(id, &format!("cpg-mcast {local} {GROUP} {g} {text}"))
                .is_ok()
            {
                let p = self.live.proc(id, inc);
                p.pending.push_back(Pending::CpgMcast(text.clone()));
                // Only a message sent while the member is in its own view must
                // come back to it (`cpg_self_delivery`); one sent before it saw
                // itself join may be dropped, and the drain must not wait for it.
                if p.view.as_ref().is_some_and(|v| v.contains(&(id, local))) {
                    p.cpg_unsettled.insert(text);
                }
            } else {
                self.rec
                    .write(
                        "cpg-unsent",
                        &[
                            ("node", id.to_string()),
                            ("inc", inc.to_string()),
                            ("text", text),
                        ],
                    )
                    .map_err(io("record"))?;
            }
        }
        Ok(())
    }

    /// Every node runs (no fenced node waiting for its reboot).
    fn all_running(&self) -> bool {
        self.reboots.is_empty() && self.current().len() == self.nodes as usize
    }

    /// Every node runs and all have settled (one ring, quorate, one group view).
    fn all_settled(&self) -> bool {
        self.all_running() && self.live.settled(&self.current(), local_of)
    }

    /// Starts again every fenced node whose reboot time has come.
    fn reboot_fenced(&mut self, now: Instant) -> Result<(), RunError> {
        if !self.reboots_on {
            return Ok(());
        }
        let due: Vec<u32> = self
            .reboots
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            self.reboots.remove(&n);
            if self.killed.remove(&n) {
                self.spawn(n, 0)?;
            }
        }
        Ok(())
    }

    /// Waits up to `limit` for the first ring of all nodes.
    pub fn first_ring(&mut self, limit: Duration) -> Result<(), RunError> {
        let deadline = Instant::now() + limit;
        if self.pump(deadline, |r| r.live.settled(&r.current(), local_of))? {
            Ok(())
        } else {
            Err(RunError::NoFirstRing(limit))
        }
    }

    /// The failover measurement (`--failovers K`): K rounds, each a `kill -9` of
    /// one node (nodes in turn, starting with node 1, the ring's representative)
    /// timed until the survivors have settled without it (one ring, quorate, one
    /// group view), then its restart timed until all have settled with it again.
    /// The kills and restarts are fault events like the schedule's, so the run is
    /// judged as any other.
    pub fn failovers(&mut self, rounds: usize, limit: Duration) -> Result<Vec<Failover>, RunError> {
        let start = Instant::now();
        let mut out = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let victim = (round as u32 % self.nodes) + 1;
            let mut timed = [Duration::ZERO; 2];
            for (i, fault) in [
                Fault::Kill(victim),
                Fault::Restart {
                    node: victim,
                    clock_offset_s: 0,
                },
            ]
            .iter()
            .enumerate()
            {
                self.rec
                    .write(
                        "fault",
                        &[
                            ("step", (2 * round + i).to_string()),
                            ("what", fault.to_string().replace(' ', "_")),
                        ],
                    )
                    .map_err(io("record"))?;
                let t = Instant::now();
                self.apply(fault)?;
                self.outcome.applied += 1;
                if !self.pump(t + limit, |r| r.live.settled(&r.current(), local_of))? {
                    return Err(RunError::NotSettled(fault.to_string(), limit));
                }
                timed[i] = t.elapsed();
            }
            out.push(Failover {
                victim,
                failover: timed[0],
                rejoin: timed[1],
            });
        }
        self.outcome.fault_phase_s = start.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Drives the schedule.
    pub fn faults(&mut self, schedule: &[Step]) -> Result<(), RunError> {
        let start = Instant::now();
        for (i, step) in schedule.iter().enumerate() {
            self.pump_until(start + Duration::from_millis(step.at_ms))?;
            self.rec
                .write(
                    "fault",
                    &[
                        ("step", i.to_string()),
                        ("what", step.fault.to_string().replace(' ', "_")),
                    ],
                )
                .map_err(io("record"))?;
            self.apply(&step.fault)?;
            self.outcome.applied += 1;
        }
        self.outcome.fault_phase_s = start.elapsed().as_secs_f64();
        Ok(())
    }

    fn count(&mut self, kind: &'static str) {
        *self.outcome.kinds.entry(kind).or_default() += 1;
    }

    fn apply(&mut self, fault: &Fault) -> Result<(), RunError> {
        match fault {
            Fault::Kill(n) => {
                if let Ok(inc) = self.procs.kill9(*n) {
                    self.rec
                        .write(
                            "crash",
                            &[("node", n.to_string()), ("inc", inc.to_string())],
                        )
                        .map_err(io("record"))?;
                }
                self.killed.insert(*n);
                self.count("kill");
            }
            Fault::Restart {
                node,
                clock_offset_s,
            } => {
                if self.killed.remove(node) {
                    self.reboots.remove(node);
                    self.spawn(*node, *clock_offset_s)?;
                }
                self.count(if *clock_offset_s > 0 {
                    "restart+clock"
                } else {
                    "restart"
                });
            }
            Fault::Pause(n) => {
                self.signal(*n, libc::SIGSTOP, "pause")?;
                self.paused.insert(*n);
                self.count("pause");
            }
            Fault::Resume(n) => {
                self.signal(*n, libc::SIGCONT, "resume")?;
                self.paused.remove(n);
                self.count("resume");
            }
            Fault::Partition(groups) => {
                self.net.partition(groups)?;
                self.groups = Some(groups.clone());
                self.record_net()?;
                self.count("partition");
            }
            Fault::Heal => {
                self.net.heal()?;
                self.groups = None;
                self.record_net()?;
                self.count("heal");
            }
            Fault::Cut(a, b) => {
                self.net.cut(*a, *b)?;
                self.cuts.insert((*a, *b));
                self.record_net()?;
                self.count("cut");
            }
            Fault::Uncut(a, b) => {
                self.net.uncut(*a, *b)?;
                self.cuts.remove(&(*a, *b));
                self.record_net()?;
                self.count("uncut");
            }
        }
        Ok(())
    }

    fn signal(&mut self, n: u32, sig: i32, what: &str) -> Result<(), RunError> {
        if let Some(inc) = self.procs.incarnation(n)
            && self.procs.signal(n, sig).is_ok()
        {
            self.rec
                .write(what, &[("node", n.to_string()), ("inc", inc.to_string())])
                .map_err(io("record"))?;
        }
        Ok(())
    }

    /// Whether every process of `current` has ended (a later process of its
    /// node runs, or none) or satisfies `ok`.
    fn each_gone_or(
        &self,
        current: &BTreeMap<u32, u32>,
        ok: impl Fn(&crate::live::Proc) -> bool,
    ) -> bool {
        current.iter().all(|(n, i)| {
            self.procs.incarnation(*n) != Some(*i)
                || self.live.procs.get(&(*n, *i)).is_some_and(&ok)
        })
    }

    /// After the cluster settled: asks every process's `status` until all
    /// report no fencing operation pending (`fence_pending=0`) and no lockspace
    /// recovering (`dlm_recovering=0`: the fencing the DLM owes is done), none
    /// of them has exited, and the cluster is settled with the same processes —
    /// nodes fenced meanwhile are rebooted by the pump. Whether that happened
    /// before `deadline`.
    fn fencing_settled(&mut self, deadline: Instant) -> Result<bool, RunError> {
        loop {
            if !self.pump(deadline, |r| r.all_settled())? {
                return Ok(false);
            }
            let current = self.current();
            for (&id, &inc) in &current {
                self.live.proc(id, inc).status = None;
                self.command(id, inc, "status", Pending::Status)?;
            }
            let answered = |r: &Run| r.each_gone_or(&current, |p| p.status.is_some());
            if !self.pump(deadline, answered)? {
                return Ok(false);
            }
            let quiet = current.iter().all(|(n, i)| {
                self.procs.incarnation(*n) == Some(*i)
                    && self
                        .live
                        .procs
                        .get(&(*n, *i))
                        .and_then(|p| p.status.as_ref())
                        .is_some_and(|s| {
                            ["dlm_recovering", "fence_pending"]
                                .iter()
                                .all(|k| s.fields.get(*k).is_some_and(|v| v == "0"))
                        })
            });
            // A fencing reported done has killed its node's process of the
            // moment (the agent reports after the kill); the pump reboots it
            // once its end is seen, and until then it must not count as running.
            let alive = current.keys().all(|id| !self.procs.exited(*id));
            if quiet && alive && self.all_settled() && self.current() == current {
                return Ok(true);
            }
            // Not yet: ask again after what the next 100 ms bring (a fencing,
            // a reboot, a recovery's end).
            let next = (Instant::now() + Duration::from_millis(100)).min(deadline);
            self.pump_until(next)?;
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// Stops the lock workers (every process's `dlm-hammer-stop` must be
    /// answered: every lock request answered and every lock released),
    /// recording how each stop went.
    fn stop_locks(&mut self) -> Result<(), RunError> {
        // The judged run ended with the statuses: no new processes.
        self.reboots_on = false;
        if self.services.dlm_threads > 0 {
            let current = self.current();
            let mut ran = BTreeMap::new();
            for (&id, &inc) in &current {
                let p = self.live.proc(id, inc);
                ran.insert(id, p.dlm_running || p.hammer_pending());
                self.command(id, inc, "dlm-hammer-stop", Pending::DlmStop)?;
            }
            let t = Instant::now();
            // A process fenced meanwhile answers nothing: its locks are the
            // fence gate's business.
            self.pump(t + Duration::from_secs(60), |r| {
                r.each_gone_or(&current, |p| p.dlm_stopped.is_some())
            })?;
            for (&id, &inc) in &current {
                if self.procs.incarnation(id) != Some(inc) {
                    continue;
                }
                let stopped = self.live.proc(id, inc).dlm_stopped;
                self.rec
                    .write(
                        "dlm-stop",
                        &[
                            ("node", id.to_string()),
                            ("inc", inc.to_string()),
                            ("ran", u8::from(ran[&id]).to_string()),
                            ("answered", u8::from(stopped.is_some()).to_string()),
                            ("ok", u8::from(stopped == Some(true)).to_string()),
                        ],
                    )
                    .map_err(io("record"))?;
            }
        }
        Ok(())
    }

    /// After the drain: every running node's whole CIB (`cib-final-n<i>.xml`),
    /// asked again for up to 20 s until all are equal (a node may answer from
    /// its copy a moment before the last sync reaches it).
    fn final_cibs(&mut self) -> Result<(), RunError> {
        if self.services.cib_every.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answers: BTreeMap<u32, (u32, String, String)> = BTreeMap::new();
        loop {
            for id in self.current().into_keys() {
                if let Some(a) = crate::cib_client::final_query(
                    &self.services.state_dir,
                    id,
                    &self.services.pids,
                ) {
                    answers.insert(id, a);
                }
            }
            let all = self.current().keys().all(|id| answers.contains_key(id));
            let mut texts = answers.values().map(|a| &a.2);
            let first = texts.next();
            let same = texts.all(|t| Some(t) == first);
            if (all && same) || Instant::now() >= deadline {
                break;
            }
            self.pump_until(Instant::now() + Duration::from_millis(200))?;
        }
        for (id, (inc, version, text)) in &answers {
            std::fs::write(self.services.dir.join(format!("cib-final-n{id}.xml")), text)
                .map_err(io("final CIB"))?;
            self.rec
                .write(
                    "cib-final",
                    &[
                        ("node", id.to_string()),
                        ("inc", inc.to_string()),
                        ("version", version.clone()),
                        (
                            "digest",
                            format!("{:016x}", crate::cib_client::digest(text)),
                        ),
                    ],
                )
                .map_err(io("record"))?;
        }
        Ok(())
    }

    /// Repairs every fault, waits for the cluster to settle and drain, takes
    /// every node's status and stops the nodes.
    pub fn finish(mut self) -> Result<Outcome, RunError> {
        self.rec.write("repair", &[]).map_err(io("record"))?;
        // The repairs are not fault events of the schedule.
        let kinds = self.outcome.kinds.clone();
        if self.groups.is_some() {
            self.apply(&Fault::Heal)?;
        }
        for (a, b) in self.cuts.clone() {
            self.apply(&Fault::Uncut(a, b))?;
        }
        for n in self.paused.clone() {
            self.apply(&Fault::Resume(n))?;
        }
        for n in self.killed.clone() {
            self.apply(&Fault::Restart {
                node: n,
                clock_offset_s: 0,
            })?;
        }
        self.outcome.kinds = kinds;
        self.reboots.clear();
        let t = Instant::now();
        self.outcome.settled = self.pump(t + self.pace.settle, |r| r.all_settled())?;
        if !self.outcome.settled {
            self.outcome.notes.push(format!(
                "the cluster did not settle (one ring, quorate, one group view) within {:?}",
                self.pace.settle
            ));
        } else if self.services.reboot_after > Duration::ZERO {
            // Fencing may still be under way for the faults (a fencing asked
            // before the repair, or the DLM's of a process restarted before
            // anyone fenced it, after the merge): the run is judged once it is
            // done and the fenced nodes are back.
            self.outcome.settled = self.fencing_settled(t + self.pace.settle)?;
            if !self.outcome.settled {
                self.outcome.notes.push(format!(
                    "fencing did not settle (operations pending, lockspaces recovering, \
                     fenced nodes not back) within {:?}",
                    self.pace.settle
                ));
            }
        }
        // Stop the traffic and let it drain.
        self.cpg_on = false;
        for (id, inc) in self.current() {
            self.command(id, inc, "load-stop", Pending::Other("load-stop".into()))?;
        }
        if let Some(c) = self.cib.take() {
            c.stop();
        }
        let t = Instant::now();
        self.outcome.drained = self.pump(t + Duration::from_secs(30), |r| {
            r.all_running() && r.live.drained(&r.current(), local_of)
        })?;
        if !self.outcome.drained {
            self.outcome
                .notes
                .push("the traffic did not drain within 30 s".into());
        }
        self.final_cibs()?;
        let current = self.current();
        for (&id, &inc) in &current {
            self.live.proc(id, inc).status = None;
            self.command(id, inc, "status", Pending::Status)?;
        }
        let t = Instant::now();
        self.pump(t + Duration::from_secs(20), |r| {
            current.iter().all(|(n, i)| {
                r.live
                    .procs
                    .get(&(*n, *i))
                    .is_some_and(|p| p.status.is_some())
            })
        })?;
        for (&id, &inc) in &current {
            let Some(s) = self.live.proc(id, inc).status.clone() else {
                continue;
            };
            let f = |k: &str| s.fields.get(k).cloned().unwrap_or_else(|| "-".into());
            self.rec
                .write(
                    "status",
                    &[
                        ("node", id.to_string()),
                        ("inc", inc.to_string()),
                        ("operational", f("operational")),
                        ("ring", f("ring")),
                        ("members", f("members")),
                        ("quiescent", f("quiescent")),
                    ],
                )
                .map_err(io("record"))?;
        }
        self.rec.write("end", &[]).map_err(io("record"))?;
        // After the statuses: a node whose lock workers hang cannot answer
        // anything after its `dlm-hammer-stop` (commands are answered in
        // order), and that must not cost the other checkers their statuses.
        self.stop_locks()?;
        self.rec.flush().map_err(io("record"))?;
        // Leave (not part of the judged run), then make sure they are gone.
        for (&id, &inc) in &current {
            self.command(id, inc, "leave", Pending::Other("leave".into()))?;
        }
        let t = Instant::now() + Duration::from_secs(10);
        while Instant::now() < t && current.keys().any(|id| !self.procs.exited(*id)) {
            let _ = self.procs.rx.recv_timeout(Duration::from_millis(20));
        }
        for id in current.keys() {
            self.procs.forget(*id);
        }
        Ok(self.outcome)
    }
}
