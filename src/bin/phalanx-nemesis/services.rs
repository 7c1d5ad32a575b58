//! The judge of the services above CPG — the DLM, fencing and the CIB — on the
//! real histories: the lock workers' `dlm_grant`/`dlm_release`/`dlm_fenced`
//! lines and the fencing lines in each process's own file, the CIB clients'
//! records (`cib-n<i>.events`), the final CIB of every node, and the
//! controller's record. Everything is on the one monotonic clock of the host (a
//! process started with a clock offset has it taken off again).
//!
//! The simulator's checkers for locks do not exist, and its CIB checkers need
//! observations only a Stack inside the simulator makes (each member's state
//! after every change); so these are ports of the rules to what a real run
//! can record, named after them:
//!
//! - `dlm_exclusion`: a lock is relied on from its `dlm_grant` line to its
//!   `dlm_release` line (the workers write a release before they ask for the
//!   unlock or down-conversion, a grant after the completion arrived); no two
//!   intervals of incompatible modes on one resource overlap (the test of
//!   `tests/dlm_cluster.rs`, on every process of the run).
//! - `dlm_fence_gate`: what a process still held when it ended (killed,
//!   fenced, or gone in any way) counts as held until its node was fenced
//!   after its last line, and no incompatible lock of another process may
//!   overlap that. Fenced means the first of: a `dlm_fenced` of its node (a
//!   survivor's fence decision reported it fenced since its loss); the fence
//!   agent's kill of it or of a later process of its node (the nemesis's
//!   `fenced` record, dated by the agent's confirmation of the death when it
//!   wrote one, else by the exit: the simulated host's power cycle, whose result may
//!   arrive later, or be lost with the process that ran the agent, or name an
//!   older incarnation, so that no decision reports it); the start of a
//!   later process of its node that found the DLM marker of an earlier boot
//!   (`ready ... dlm_predecessor=power-cycled`: the host was power-cycled
//!   after every earlier process of the node started, which ended them). So
//!   nothing a dead or partitioned-away node held is granted to others
//!   before its host was power-cycled.
//! - `dlm_answered`: after the final heal every process that ran lock workers
//!   answers `dlm-hammer-stop` (every lock request answered, every lock
//!   released) within 60 s.
//! - `fence_explained`: a process killed by someone else than the nemesis (the
//!   fence agent kills with SIGKILL) is matched by a `fence_result ... state=done`
//!   naming its node, reported by some process after it started — or by one
//!   reported failed because its originator left the membership (the agent, a
//!   process of its own, can run on to the kill after its originator died).
//! - `cib_versions` (the swarm's rule): within one process, the versions of its
//!   acknowledgements and query answers never go back.
//! - `cib_quorate_kept` (the swarm's rule with quorum required, minus the
//!   crash-gap excuse, so stricter): a marker whose creation was acknowledged
//!   is in every running node's final CIB, unless every process known to have
//!   held it (its acknowledger, and every process whose query showed it) ended.
//!   With `require_quorum` (the default with votequorum) every acknowledgement
//!   is given in a quorate ring, so this is "no acknowledged update lost within
//!   a partition that kept quorum".
//! - `cib_convergence`: after the final heal and drain every running node's
//!   whole CIB is the same (compared as text).

use crate::control_events::{self as ev, Event};
use crate::procs::events_path;
use crate::record::{self, Record};
use phalanx::dlm::Mode;
use phalanx_sim::check::Violation;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The checkers of this module, for the verdict.
pub const CHECKERS: &[&str] = &[
    "dlm_exclusion",
    "dlm_fence_gate",
    "dlm_answered",
    "fence_explained",
    "cib_versions",
    "cib_quorate_kept",
    "cib_convergence",
];

/// Most violations reported per checker.
const MAX_REPORTS: usize = 20;

/// What the services did in a run, for the verdict line.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Lock grants (conversions included).
    pub grants: usize,
    /// Processes that ran lock workers.
    pub lock_processes: usize,
    /// Fencing operations reported done (by any process; each is reported by
    /// every member that saw it).
    pub fence_results: usize,
    /// Processes killed by the fence agent.
    pub fenced: usize,
    /// CIB changes acknowledged.
    pub cib_acks: usize,
    /// CIB requests refused or unanswered.
    pub cib_fails: usize,
    /// CIB divergence reports.
    pub cib_divergences: usize,
    /// `dlm_error` lines (calls that failed unexpectedly).
    pub dlm_errors: usize,
}

/// The verdict of the services' checkers.
pub struct Judged {
    /// The violations, at most 20 of each checker.
    pub violations: Vec<Violation>,
    /// How many violations each checker found in all.
    pub totals: BTreeMap<&'static str, usize>,
    /// What was judged.
    pub counts: Counts,
    /// Remarks (the first `dlm_error` lines).
    pub notes: Vec<String>,
}

/// One interval in which a process relied on a lock.
#[derive(Clone, Debug)]
struct Held {
    node: u32,
    inc: u32,
    lock: u64,
    mode: Mode,
    from: u64,
    to: u64,
    /// `to` is the node's fencing, not a release.
    gated: bool,
}

fn violation(property: &'static str, detail: String) -> Violation {
    Violation { property, detail }
}

/// The violations found: the first [`MAX_REPORTS`] of each checker in full,
/// and how many each checker found in all.
#[derive(Default)]
struct Found {
    shown: Vec<Violation>,
    totals: BTreeMap<&'static str, usize>,
}

impl Found {
    fn push(&mut self, v: Violation) {
        let n = self.totals.entry(v.property).or_default();
        *n += 1;
        if *n <= MAX_REPORTS {
            self.shown.push(v);
        }
    }
}

/// `A.E.U` as a comparable triple.
fn version(s: &str) -> Option<(i64, i64, i64)> {
    let mut w = s.split('.');
    let v = (
        w.next()?.parse().ok()?,
        w.next()?.parse().ok()?,
        w.next()?.parse().ok()?,
    );
    w.next().is_none().then_some(v)
}

/// One process's service lines: (mono_ns on the host clock, kind, fields).
type Lines = Vec<(u64, String, BTreeMap<String, String>)>;

/// The process's service lines and the time of its last line of any kind.
/// Not cut at the final status (unlike the history of totem and CPG): the lock
/// workers are stopped after it, and their last releases come then.
/// The kind given to a `ready` line with `dlm_predecessor=power-cycled`.
const POWER_CYCLED: &str = "ready:power-cycled";

fn process_lines(dir: &Path, node: u32, inc: u32, offset_ns: u64) -> Result<(Lines, u64), String> {
    let path = events_path(dir, node, inc);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop();
    let mut out = Vec::new();
    let mut last = 0;
    for line in lines {
        // A line that does not parse is the history loader's business (a
        // killed process's partial last line).
        let Ok((t, event)) = ev::parse(line) else {
            continue;
        };
        let t = t.saturating_sub(offset_ns);
        last = last.max(t);
        match event {
            Event::Service { kind, fields } => out.push((t, kind, fields)),
            Event::Ready {
                power_cycled: true, ..
            } => out.push((t, POWER_CYCLED.to_string(), BTreeMap::new())),
            _ => {}
        }
    }
    Ok((out, last))
}

fn field<'a>(f: &'a BTreeMap<String, String>, k: &str) -> Result<&'a str, String> {
    f.get(k)
        .map(String::as_str)
        .ok_or_else(|| format!("a service line without {k}: {f:?}"))
}

fn num<T: std::str::FromStr>(f: &BTreeMap<String, String>, k: &str) -> Result<T, String> {
    let v = field(f, k)?;
    v.parse().map_err(|_| format!("{k}={v:?} is not a number"))
}

/// The reason of a fencing reported failed because its originator left the
/// membership (percent-encoded on the event line).
const ORIGINATOR_LEFT: &str = "originator left the membership";

/// Judges the services of the run in `dir`.
pub fn judge(dir: &Path) -> Result<Judged, String> {
    let records = record::read(dir)?;
    let mut counts = Counts::default();
    let mut out = Found::default();
    let mut notes = Vec::new();
    // Processes: (node, inc) → clock offset, start time.
    let mut procs: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    let mut ended: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut fenced: Vec<(u32, u32)> = Vec::new();
    // Per node: when the fence agent's kill of process `inc` was seen.
    let mut agent_kills: BTreeMap<u32, Vec<(u64, u32)>> = BTreeMap::new();
    let mut with_status: BTreeSet<(u32, u32)> = BTreeSet::new();
    for r in &records {
        let p = || -> Result<(u32, u32), String> { Ok((r.num("node")?, r.num("inc")?)) };
        match r.what.as_str() {
            "spawn" => {
                procs.insert(p()?, (r.num::<u64>("clock")? * 1_000_000_000, r.at));
            }
            "crash" | "exit" => {
                ended.insert(p()?);
            }
            "fenced" => {
                ended.insert(p()?);
                fenced.push(p()?);
                let (node, inc) = p()?;
                // The agent's own date of the death (`confirmed`, when it left
                // one) is earlier than the nemesis noticing the exit.
                let at = match r.fields.get("confirmed") {
                    Some(c) => c
                        .parse::<u64>()
                        .map_err(|_| format!("fenced: confirmed={c:?} is not a number"))?
                        .min(r.at),
                    None => r.at,
                };
                agent_kills.entry(node).or_default().push((at, inc));
            }
            "status" => {
                with_status.insert(p()?);
            }
            "dlm-stop" => {
                let (node, inc) = p()?;
                if r.get("ran")? == "1" && r.get("ok")? != "1" {
                    let how = if r.get("answered")? == "1" {
                        "answered with an error"
                    } else {
                        "not answered within 60 s"
                    };
                    out.push(violation(
                        "dlm_answered",
                        format!("n{node}#{inc}: dlm-hammer-stop after the final heal {how}"),
                    ));
                }
            }
            _ => {}
        }
    }
    counts.fenced = fenced.len();

    // The DLM and fencing, from each process's own lines.
    let mut held: BTreeMap<String, Vec<Held>> = BTreeMap::new();
    let mut open: BTreeMap<(u32, u32), BTreeMap<u64, (String, usize)>> = BTreeMap::new();
    let mut last_line: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut dlm_fenced: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut fence_done: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut fence_orphaned: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    // Starts of processes that found their predecessor's DLM marker of an
    // earlier boot: every earlier process of the node ran before a fencing.
    let mut power_cycled: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut lock_procs = BTreeSet::new();
    for (&(node, inc), &(offset, _)) in &procs {
        let (lines, last) = process_lines(dir, node, inc, offset)?;
        last_line.insert((node, inc), last);
        for (t, kind, f) in lines {
            match kind.as_str() {
                "dlm_grant" => {
                    counts.grants += 1;
                    lock_procs.insert((node, inc));
                    let res = field(&f, "res")?.to_string();
                    let lock: u64 = num(&f, "lock")?;
                    let mode = phalanx::node::parse_mode(field(&f, "mode")?)
                        .ok_or_else(|| format!("n{node}#{inc}: bad mode in {f:?}"))?;
                    let list = held.entry(res.clone()).or_default();
                    list.push(Held {
                        node,
                        inc,
                        lock,
                        mode,
                        from: t,
                        to: u64::MAX,
                        gated: false,
                    });
                    open.entry((node, inc))
                        .or_default()
                        .insert(lock, (res, list.len() - 1));
                }
                "dlm_release" => {
                    let lock: u64 = num(&f, "lock")?;
                    if let Some((res, i)) = open.entry((node, inc)).or_default().remove(&lock)
                        && let Some(h) = held.get_mut(&res).and_then(|l| l.get_mut(i))
                    {
                        h.to = t;
                    }
                }
                POWER_CYCLED => {
                    power_cycled.entry(node).or_default().push(t);
                }
                "dlm_fenced" => {
                    // Stamped on the node's thread, in the process's clock.
                    let at: u64 = num(&f, "at")?;
                    dlm_fenced
                        .entry(num(&f, "node")?)
                        .or_default()
                        .push(at.saturating_sub(offset));
                }
                "dlm_error" => {
                    counts.dlm_errors += 1;
                    if notes.len() < 5 {
                        notes.push(format!(
                            "n{node}#{inc}: dlm_error op={} reason={}",
                            f.get("op").map_or("-", String::as_str),
                            f.get("reason").map_or("-", String::as_str)
                        ));
                    }
                }
                "fence_result" => {
                    let list = if f.get("state").map(String::as_str) == Some("done") {
                        counts.fence_results += 1;
                        &mut fence_done
                    } else if f.get("reason").map(String::as_str) == Some(ORIGINATOR_LEFT) {
                        // An operation whose originator died: its agent (a
                        // process of its own) may still have run to the end,
                        // its result lost.
                        &mut fence_orphaned
                    } else {
                        continue;
                    };
                    if let Some(n) = field(&f, "target")?
                        .strip_prefix('n')
                        .and_then(|n| n.parse().ok())
                    {
                        list.entry(n).or_default().push(t);
                    }
                }
                "cib_divergence" => counts.cib_divergences += 1,
                _ => {}
            }
        }
    }
    counts.lock_processes = lock_procs.len();
    for list in dlm_fenced.values_mut() {
        list.sort_unstable();
    }
    // What an ended process still held: held until its node's fencing.
    for (p, locks) in &open {
        if !ended.contains(p) {
            continue;
        }
        let after = last_line.get(p).copied().unwrap_or(0);
        let first_after = |m: &BTreeMap<u32, Vec<u64>>| {
            m.get(&p.0)
                .and_then(|l| l.iter().filter(|t| **t > after).min())
                .copied()
                .unwrap_or(u64::MAX)
        };
        // The agent's kill of this process or a later one of its node: the
        // host was power-cycled after this process's last line (dated when
        // the agent confirmed the death, else when the nemesis saw the exit:
        // either is no earlier than the kill).
        let killed = agent_kills
            .get(&p.0)
            .and_then(|l| {
                l.iter()
                    .filter(|(at, inc)| *inc >= p.1 && *at > after)
                    .map(|(at, _)| *at)
                    .min()
            })
            .unwrap_or(u64::MAX);
        let gate = first_after(&dlm_fenced)
            .min(first_after(&power_cycled))
            .min(killed);
        for (res, i) in locks.values() {
            if let Some(h) = held.get_mut(res).and_then(|l| l.get_mut(*i)) {
                h.to = gate;
                h.gated = true;
            }
        }
    }
    for (res, list) in &mut held {
        overlaps(res, list, &mut out);
    }
    for &(node, inc) in &fenced {
        let started = procs.get(&(node, inc)).map_or(0, |p| p.1);
        let after_start = |m: &BTreeMap<u32, Vec<u64>>| {
            m.get(&node)
                .is_some_and(|l| l.iter().any(|t| *t >= started))
        };
        let explained = after_start(&fence_done) || after_start(&fence_orphaned);
        if !explained {
            out.push(violation(
                "fence_explained",
                format!(
                    "n{node}#{inc} was killed (SIGKILL) by someone else than the nemesis, \
                         and no process reported a fencing of n{node} done (or orphaned)"
                ),
            ));
        }
    }

    cib(dir, &records, &ended, &with_status, &mut counts, &mut out)?;
    Ok(Judged {
        violations: out.shown,
        totals: out.totals,
        counts,
        notes,
    })
}

/// Every overlap of incompatible intervals on one resource (a sweep by start).
fn overlaps(res: &str, list: &mut [Held], out: &mut Found) {
    list.sort_by_key(|h| (h.from, h.to));
    let mut active: Vec<usize> = Vec::new();
    for i in 0..list.len() {
        let b = &list[i];
        active.retain(|&j| list[j].to > b.from);
        for &j in &active {
            let a = &list[j];
            if (a.node, a.inc, a.lock) == (b.node, b.inc, b.lock) || a.mode.is_compatible(b.mode) {
                continue;
            }
            let property = if a.gated || b.gated {
                "dlm_fence_gate"
            } else {
                "dlm_exclusion"
            };
            let end = |h: &Held| {
                if h.to == u64::MAX {
                    "never released, its node's fencing never recorded".to_string()
                } else if h.gated {
                    format!("{} (its node's fencing recorded)", h.to)
                } else {
                    h.to.to_string()
                }
            };
            out.push(violation(
                property,
                format!(
                    "{res}: n{}#{} lock {} {} [{} .. {}] and n{}#{} lock {} {} [{} .. {}] overlap",
                    a.node,
                    a.inc,
                    a.lock,
                    a.mode.name(),
                    a.from,
                    end(a),
                    b.node,
                    b.inc,
                    b.lock,
                    b.mode.name(),
                    b.from,
                    end(b)
                ),
            ));
        }
        active.push(i);
    }
}

/// The CIB checkers.
fn cib(
    dir: &Path,
    records: &[Record],
    ended: &BTreeSet<(u32, u32)>,
    with_status: &BTreeSet<(u32, u32)>,
    counts: &mut Counts,
    out: &mut Found,
) -> Result<(), String> {
    let nodes: u32 = records
        .iter()
        .find(|r| r.what == "start")
        .ok_or("the record has no start")?
        .num("nodes")?;
    let mut any = false;
    // marker → (acknowledger, op); marker → every process known to hold it.
    let mut acked: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut holders: BTreeMap<String, BTreeSet<(u32, u32)>> = BTreeMap::new();
    for node in 1..=nodes {
        let path = dir.join(crate::cib_client::record_name(node));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        any = true;
        let mut last: BTreeMap<u32, (i64, i64, i64)> = BTreeMap::new();
        for line in text.lines() {
            let mut w = line.split(' ');
            let (Some(_t), Some(what)) = (w.next(), w.next()) else {
                continue;
            };
            let f: BTreeMap<&str, &str> = w.filter_map(|x| x.split_once('=')).collect();
            let get = |k: &str| {
                f.get(k)
                    .copied()
                    .ok_or_else(|| format!("{}: {what} without {k}", path.display()))
            };
            let inc: u32 = match what {
                "cib-ack" | "cib-state" | "cib-fail" | "cib-req" => get("inc")?
                    .parse()
                    .map_err(|_| format!("{}: bad inc in {line:?}", path.display()))?,
                _ => continue,
            };
            let v = match what {
                "cib-ack" => {
                    counts.cib_acks += 1;
                    let m = get("marker")?.to_string();
                    holders.entry(m.clone()).or_default().insert((node, inc));
                    acked.insert(m, (node, inc));
                    get("version")?
                }
                "cib-state" => {
                    let added = get("added")?;
                    for m in added.split(',').filter(|m| *m != "-") {
                        holders
                            .entry(m.to_string())
                            .or_default()
                            .insert((node, inc));
                    }
                    get("version")?
                }
                "cib-fail" => {
                    counts.cib_fails += 1;
                    continue;
                }
                _ => continue,
            };
            let Some(v) = version(v) else {
                out.push(violation(
                    "cib_versions",
                    format!("n{node}#{inc}: {what} without a version: {line:?}"),
                ));
                continue;
            };
            if let Some(prev) = last.insert(inc, v)
                && v < prev
            {
                out.push(violation(
                    "cib_versions",
                    format!("n{node}#{inc}: version went back from {prev:?} to {v:?} ({what})"),
                ));
            }
        }
    }
    if !any {
        // The CIB took no part in this run.
        return Ok(());
    }
    // The final copies of the nodes whose final status was taken.
    let running: BTreeSet<u32> = with_status.iter().map(|p| p.0).collect();
    let mut finals: BTreeMap<u32, String> = BTreeMap::new();
    for r in records.iter().filter(|r| r.what == "cib-final") {
        let node: u32 = r.num("node")?;
        let path = dir.join(format!("cib-final-n{node}.xml"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        finals.insert(node, text);
    }
    let mut first: Option<(u32, &String)> = None;
    for &node in &running {
        match (finals.get(&node), first) {
            (None, _) => out.push(violation(
                "cib_convergence",
                format!("n{node} gave no final CIB"),
            )),
            (Some(t), None) => first = Some((node, t)),
            (Some(t), Some((n0, t0))) if t != t0 => out.push(violation(
                "cib_convergence",
                format!(
                    "n{node}'s final CIB differs from n{n0}'s ({} and {} bytes)",
                    t.len(),
                    t0.len()
                ),
            )),
            _ => {}
        }
    }
    let final_markers: BTreeMap<u32, BTreeSet<String>> = finals
        .iter()
        .map(|(n, t)| (*n, crate::cib_client::markers_in(t)))
        .collect();
    for (m, by) in &acked {
        let missing: Vec<u32> = final_markers
            .iter()
            .filter(|(n, ms)| running.contains(n) && !ms.contains(m))
            .map(|(n, _)| *n)
            .collect();
        if missing.is_empty() {
            continue;
        }
        let held = holders.get(m).cloned().unwrap_or_default();
        if held.iter().all(|p| ended.contains(p)) {
            continue;
        }
        out.push(violation(
            "cib_quorate_kept",
            format!(
                "marker {m} acknowledged by n{}#{} is missing from the final CIB of {missing:?}; \
                     held by {held:?}",
                by.0, by.1
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory written by hand: node 1's first process holds EX on r1
    /// and is killed; node 2 learns node 1 fenced at 5000 and takes r1 after
    /// that; node 1's second process and node 2 share r2 in PR; the CIB's one
    /// acknowledged marker is in both final copies. `edit` changes one file
    /// (name, text → text) before it is written: the planted bugs.
    fn run_dir(tag: &str, edit: impl Fn(&str, String) -> String) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("nemesis-services-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            (
                record::FILE,
                "1000 start nodes=2 seed=7 wall_ns=5
                 1001 spawn node=1 inc=0 clock=0
                 1002 spawn node=2 inc=0 clock=0
                 3000 crash node=1 inc=0
                 6000 spawn node=1 inc=1 clock=0
                 9000 dlm-stop node=1 inc=1 ran=1 answered=1 ok=1
                 9001 dlm-stop node=2 inc=0 ran=1 answered=1 ok=1
                 9100 cib-final node=1 inc=1 version=0.6.0 digest=0
                 9101 cib-final node=2 inc=0 version=0.6.0 digest=0
                 9200 status node=1 inc=1 operational=1 ring=1.8 members=1,2 quiescent=1
                 9201 status node=2 inc=0 operational=1 ring=1.8 members=1,2 quiescent=1
                 9300 end",
            ),
            (
                "n1.0.events",
                "1100 dlm_grant res=r1 lock=1 mode=EX
                 2900 sent seq=0 guarantee=agreed len=21",
            ),
            (
                "n2.0.events",
                "1100 dlm_grant res=r3 lock=7 mode=EX
                 1200 dlm_release res=r3 lock=7
                 4000 fence_result target=n1 action=reboot state=done origin=2 delegate=2 client=x reason=-
                 5100 dlm_fenced node=1 at=5000
                 5200 dlm_grant res=r1 lock=8 mode=EX
                 5300 dlm_release res=r1 lock=8
                 7000 dlm_grant res=r2 lock=9 mode=PR
                 8000 dlm_release res=r2 lock=9
                 9001 ok dlm-hammer-stop
                 9201 ok status operational=1 ring=1.8 members=1,2 quiescent=1 count=0 order=0",
            ),
            (
                "n1.1.events",
                "6500 dlm_grant res=r2 lock=1 mode=PR
                 7500 dlm_release res=r2 lock=1
                 9000 ok dlm-hammer-stop
                 9200 ok status operational=1 ring=1.8 members=1,2 quiescent=1 count=0 order=0",
            ),
            (
                "cib-n1.events",
                "1500 cib-req node=1 inc=0 op=1 marker=m-1-0-1
                 1600 cib-ack node=1 inc=0 op=1 marker=m-1-0-1 version=0.5.1
                 2000 cib-state node=1 inc=0 version=0.5.1 digest=1 added=m-1-0-1
                 7000 cib-state node=1 inc=1 version=0.6.0 digest=2 added=m-1-0-1",
            ),
            (
                "cib-n2.events",
                "1700 cib-state node=2 inc=0 version=0.5.1 digest=1 added=m-1-0-1",
            ),
            (
                "cib-final-n1.xml",
                r#"<cib><crm_config><cluster_property_set id="m-1-0-1"/></crm_config></cib>"#,
            ),
            (
                "cib-final-n2.xml",
                r#"<cib><crm_config><cluster_property_set id="m-1-0-1"/></crm_config></cib>"#,
            ),
        ];
        for (name, text) in files {
            let text: String = text
                .lines()
                .map(|l| format!("{}\n", l.trim_start()))
                .collect();
            std::fs::write(dir.join(name), edit(name, text)).unwrap();
        }
        dir
    }

    /// The properties violated in the run `edit` makes.
    fn violated(tag: &str, edit: impl Fn(&str, String) -> String) -> Vec<&'static str> {
        let dir = run_dir(tag, edit);
        let j = judge(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let mut v: Vec<&'static str> = j.violations.iter().map(|v| v.property).collect();
        v.dedup();
        v
    }

    #[test]
    fn a_correct_history_passes_and_is_counted() {
        let dir = run_dir("ok", |_, t| t);
        let j = judge(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(j.violations.is_empty(), "{:?}", j.violations);
        assert_eq!(j.counts.grants, 5);
        assert_eq!(j.counts.lock_processes, 3);
        assert_eq!(j.counts.fence_results, 1);
        assert_eq!(j.counts.cib_acks, 1);
    }

    #[test]
    fn incompatible_locks_at_once_are_caught() {
        // n2 takes r2 in EX while n1#1 holds it in PR.
        let v = violated("exclusion", |name, t| {
            if name == "n2.0.events" {
                t.replace("res=r2 lock=9 mode=PR", "res=r2 lock=9 mode=EX")
            } else {
                t
            }
        });
        assert_eq!(v, vec!["dlm_exclusion"]);
    }

    #[test]
    fn a_dead_nodes_lock_granted_before_its_fencing_is_caught() {
        // n2 is granted r1 (n1#0 held it when killed) before the fencing at 5000.
        let v = violated("gate", |name, t| {
            if name == "n2.0.events" {
                t.replace(
                    "5100 dlm_fenced node=1 at=5000",
                    "5100 dlm_fenced node=1 at=5250",
                )
            } else {
                t
            }
        });
        assert_eq!(v, vec!["dlm_fence_gate"]);
        // ... and without any fencing recorded at all.
        let v = violated("gate-none", |name, t| {
            if name == "n2.0.events" {
                t.replace("5100 dlm_fenced node=1 at=5000\n", "")
            } else {
                t
            }
        });
        assert_eq!(v, vec!["dlm_fence_gate"]);
    }

    #[test]
    fn a_later_process_on_a_new_boot_ends_what_the_dead_one_held() {
        // No survivor recorded node 1's fencing; node 2 takes r1 at 6600,
        // after node 1's next process started on a new boot (6000).
        let edit = |predecessor: &'static str| {
            move |name: &str, t: String| match name {
                "n2.0.events" => t
                    .replace("5100 dlm_fenced node=1 at=5000\n", "")
                    .replace("5200 dlm_grant res=r1", "6600 dlm_grant res=r1")
                    .replace("5300 dlm_release res=r1", "6700 dlm_release res=r1"),
                "n1.1.events" => format!(
                    "6000 ready node=1 incarnation=1 pid=9 dlm_predecessor={predecessor}\n{t}"
                ),
                _ => t,
            }
        };
        let v = violated("power-cycled", edit("power-cycled"));
        assert!(v.is_empty(), "{v:?}");
        // The same start on the same boot proves nothing.
        assert_eq!(violated("unclean", edit("unclean")), vec!["dlm_fence_gate"]);
        // Nor does a power cycle after the grant.
        let v = violated("power-cycled-late", |name, t| {
            let t = edit("power-cycled")(name, t);
            if name == "n2.0.events" {
                t.replace("6600 dlm_grant res=r1", "5900 dlm_grant res=r1")
            } else {
                t
            }
        });
        assert_eq!(v, vec!["dlm_fence_gate"]);
    }

    #[test]
    fn the_agents_kill_ends_what_the_dead_one_held_even_unreported() {
        // No decision reported node 1 fenced; the agent's kill (5100, seen by
        // the nemesis) came before node 2 took r1 (5200), or after it (5300).
        let edit = |record: &'static str| {
            move |name: &str, t: String| match name {
                "n2.0.events" => t.replace("5100 dlm_fenced node=1 at=5000\n", ""),
                record::FILE => t.replace("6000 spawn", &format!("{record}\n6000 spawn")),
                _ => t,
            }
        };
        let v = violated("agent-kill", edit("5100 fenced node=1 inc=0"));
        assert!(!v.contains(&"dlm_fence_gate"), "{v:?}");
        let v = violated("agent-kill-late", edit("5300 fenced node=1 inc=0"));
        assert!(v.contains(&"dlm_fence_gate"), "{v:?}");
        // Seen late (5300) but confirmed dead by the agent before node 2 took
        // r1 (5150): the confirmation dates it; confirmed after (5250): not.
        let v = violated(
            "agent-kill-confirmed",
            edit("5300 fenced node=1 inc=0 confirmed=5150"),
        );
        assert!(!v.contains(&"dlm_fence_gate"), "{v:?}");
        let v = violated(
            "agent-kill-confirmed-late",
            edit("5300 fenced node=1 inc=0 confirmed=5250"),
        );
        assert!(v.contains(&"dlm_fence_gate"), "{v:?}");
    }

    #[test]
    fn an_unanswered_stop_is_caught() {
        let v = violated("answered", |name, t| {
            if name == record::FILE {
                t.replace(
                    "node=2 inc=0 ran=1 answered=1 ok=1",
                    "node=2 inc=0 ran=1 answered=0 ok=0",
                )
            } else {
                t
            }
        });
        assert_eq!(v, vec!["dlm_answered"]);
    }

    #[test]
    fn a_kill_nobody_fenced_is_caught() {
        let v = violated("fenced", |name, t| match name {
            record::FILE => t.replace("3000 crash node=1 inc=0", "3000 fenced node=1 inc=0"),
            "n2.0.events" => t.replace("state=done", "state=failed"),
            _ => t,
        });
        assert_eq!(v, vec!["fence_explained"]);
    }

    #[test]
    fn a_kill_by_the_agent_of_a_dead_originator_is_explained() {
        // The operation is reported failed because its originator died; its
        // agent ran on and killed node 1 (two unclean restarts fencing each
        // other, each delegate killed by the other's agent).
        let orphaned = |reason: &'static str| {
            move |name: &str, t: String| match name {
                record::FILE => t.replace("3000 crash node=1 inc=0", "3000 fenced node=1 inc=0"),
                "n2.0.events" => t.replace(
                    "state=done origin=2 delegate=2 client=x reason=-",
                    &format!("state=failed origin=3 delegate=- client=x reason={reason}"),
                ),
                _ => t,
            }
        };
        let v = violated("orphaned", orphaned("originator%20left%20the%20membership"));
        assert!(!v.contains(&"fence_explained"), "{v:?}");
        let v = violated("orphaned-other", orphaned("agent%20failed"));
        assert!(v.contains(&"fence_explained"), "{v:?}");
    }

    #[test]
    fn a_version_going_back_is_caught() {
        let v = violated("versions", |name, t| {
            if name == "cib-n1.events" {
                t.replace(
                    "2000 cib-state node=1 inc=0 version=0.5.1",
                    "2000 cib-state node=1 inc=0 version=0.4.9",
                )
            } else {
                t
            }
        });
        assert_eq!(v, vec!["cib_versions"]);
    }

    #[test]
    fn a_lost_acknowledged_marker_and_differing_copies_are_caught() {
        let v = violated("lost", |name, t| {
            if name == "cib-final-n2.xml" {
                t.replace("m-1-0-1", "other")
            } else {
                t
            }
        });
        assert_eq!(v, vec!["cib_convergence", "cib_quorate_kept"]);
        // Lost from every copy: the copies agree, the marker is still lost
        // (n1#1 and n2#0, which held it, are running).
        let v = violated("lost-all", |name, t| {
            if name.starts_with("cib-final") {
                t.replace("m-1-0-1", "other")
            } else {
                t
            }
        });
        assert_eq!(v, vec!["cib_quorate_kept"]);
    }
}
