//! A run directory turned into the simulator's [`History`]: every process's
//! own event file (`n<node>.<inc>.events`, what `phalanxd --control` printed)
//! and the controller's record (`nemesis.events`), merged on the one clock they
//! share (CLOCK_MONOTONIC; a process started with a clock offset has it taken
//! off again). Each process's events keep their file order, but for its quorum
//! notifications: a thread of their own prints them, and each is put where the
//! process's Stack reported it, by the driver step that its line and the
//! `config` lines carry ([`step_order`](crate::step_order)).
//!
//! What maps to what: `config` → [`Observation::Config`]; `sent`/`deliver` of
//! the node's load → `Sent`/`Deliver` (an `unsent` retracts its `sent`);
//! `quorum` → `Quorum`; `cpg-view`/`cpg-deliver` → `CpgView`/`CpgDeliver`; the
//! controller's `cpg-join`/`cpg-send` → `CpgRequest`/`CpgSent` (a refused send
//! retracted); kills → `Crash`, restarts → `Restart`, SIGSTOP/SIGCONT →
//! `Pause`/`Resume`, bridge moves and cuts → `PartitionChange`. A process whose
//! final status was taken is judged up to that answer (what it did while
//! leaving afterwards is not part of the run; a quorum notification printed
//! after the answer is kept when its step is no later than the last
//! configuration's before it).

use crate::control_events::{self as ev, Event};
use crate::procs::events_path;
use crate::record::{self, Record};
use crate::step_order::{self, Line, Notice};
use phalanx_sim::history::{
    ConfigKind, CpgReason, CpgRequest, CpgViewId, EventKind, Guarantee, History, MsgId, Observation,
};
use phalanx_sim::node::NodeStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The CPG group every process's member joins.
pub const GROUP: &str = "nemesis";

/// Counts of what a history holds, for the verdict.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Processes (node incarnations).
    pub processes: usize,
    /// Totem deliveries.
    pub deliveries: usize,
    /// CPG deliveries.
    pub cpg_deliveries: usize,
    /// CPG views.
    pub cpg_views: usize,
    /// Configurations installed.
    pub configs: usize,
    /// Quorum notifications.
    pub quorum: usize,
}

/// The history of a run and what it holds.
pub struct Loaded {
    /// For the checkers.
    pub history: History,
    /// What it holds.
    pub counts: Counts,
    /// Processes that exited without being killed (the controller saw it).
    pub unexpected_exits: Vec<String>,
}

/// The text of a CPG message: `<node>/<local>/<incarnation>/<seq>`.
pub fn cpg_text(node: u32, local: u32, inc: u32, seq: u64) -> String {
    format!("{node}/{local}/{inc}/{seq}")
}

/// (sender member, message id) named by a CPG text.
fn parse_cpg_text(t: &str) -> Option<((u32, u32), MsgId)> {
    let mut w = t.split('/');
    let node = w.next()?.parse().ok()?;
    let local = w.next()?.parse().ok()?;
    let incarnation = w.next()?.parse().ok()?;
    let seq = w.next()?.parse().ok()?;
    w.next().is_none().then_some((
        (node, local),
        MsgId {
            sender: node,
            incarnation,
            seq,
        },
    ))
}

fn guarantee(safe: bool) -> Guarantee {
    if safe {
        Guarantee::Safe
    } else {
        Guarantee::Agreed
    }
}

fn reason(r: &str) -> Result<CpgReason, String> {
    Ok(match r {
        "Join" => CpgReason::Join,
        "Leave" => CpgReason::Leave,
        "NodeDown" => CpgReason::NodeDown,
        "NodeUp" => CpgReason::NodeUp,
        "ProcDown" => CpgReason::ProcDown,
        other => return Err(format!("unknown CPG reason {other:?}")),
    })
}

fn ring(s: &str) -> Result<(u32, u64), String> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| format!("not a ring: {s:?}"))?;
    Ok((
        a.parse().map_err(|_| format!("not a ring: {s:?}"))?,
        b.parse().map_err(|_| format!("not a ring: {s:?}"))?,
    ))
}

/// `sync@R.S` or `msg@R.S:SENDER:SEQ`.
fn view_id(s: &str) -> Result<CpgViewId, String> {
    if let Some(r) = s.strip_prefix("sync@") {
        return Ok(CpgViewId {
            ring: ring(r)?,
            sender: 0,
            seq: 0,
        });
    }
    let bad = || format!("not a view id: {s:?}");
    let rest = s.strip_prefix("msg@").ok_or_else(bad)?;
    let mut w = rest.split(':');
    let r = ring(w.next().ok_or_else(bad)?)?;
    let sender = w.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let seq = w.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    Ok(CpgViewId {
        ring: r,
        sender,
        seq,
    })
}

/// Numbers of a comma list (`-` empty).
fn ids(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|x| x.parse().ok()).collect()
}

/// One entry before the merge: (time, stream, position, event).
type Entry = (u64, usize, usize, phalanx_sim::history::Event);

/// Reads the run in `dir`.
pub fn load(dir: &Path) -> Result<Loaded, String> {
    let records = record::read(dir)?;
    let start = records
        .iter()
        .find(|r| r.what == "start")
        .ok_or("the record has no start")?;
    let t0 = start.at;
    let n: u32 = start.num("nodes")?;
    let mut counts = Counts::default();
    let mut unexpected_exits = Vec::new();
    // Refused CPG sends (never multicast) and processes whose status was taken.
    let unsent: BTreeSet<(u32, u32, String)> = records
        .iter()
        .filter(|r| r.what == "cpg-unsent")
        .map(|r| Ok((r.num("node")?, r.num("inc")?, r.get("text")?.to_string())))
        .collect::<Result<_, String>>()?;
    let mut status: BTreeMap<u32, (u32, NodeStatus)> = BTreeMap::new();
    let mut end = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut crashed: BTreeSet<(u32, u32)> = BTreeSet::new();
    let at = |t: u64| t.saturating_sub(t0);
    for (i, r) in records.iter().enumerate() {
        let ctl = |node: u32, incarnation: u32, kind: EventKind| -> Entry {
            (
                at(r.at),
                0,
                i,
                phalanx_sim::history::Event {
                    time: at(r.at),
                    node,
                    incarnation,
                    kind,
                },
            )
        };
        let e = match r.what.as_str() {
            "spawn" => {
                counts.processes += 1;
                let inc = r.num("inc")?;
                if inc == 0 {
                    continue;
                }
                ctl(r.num("node")?, inc, EventKind::Restart)
            }
            // `fenced`: the fence agent killed it — a crash like the nemesis's.
            "crash" | "exit" | "fenced" => {
                let p = (r.num("node")?, r.num("inc")?);
                crashed.insert(p);
                if r.what == "exit" {
                    unexpected_exits.push(format!("n{}#{} exited by itself", p.0, p.1));
                }
                ctl(p.0, p.1, EventKind::Crash)
            }
            "pause" => ctl(r.num("node")?, r.num("inc")?, EventKind::Pause),
            "resume" => ctl(r.num("node")?, r.num("inc")?, EventKind::Resume),
            "net" => {
                let blocked = r
                    .get("blocked")?
                    .split(',')
                    .filter_map(|p| p.split_once('>'))
                    .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .collect();
                ctl(0, 0, EventKind::PartitionChange { blocked })
            }
            "cpg-join" => ctl(
                r.num("node")?,
                r.num("inc")?,
                EventKind::Observation(Observation::CpgRequest {
                    group: GROUP.as_bytes().to_vec(),
                    local: r.num("member")?,
                    request: CpgRequest::Join,
                }),
            ),
            "cpg-send" => {
                let (node, inc) = (r.num("node")?, r.num("inc")?);
                let text = r.get("text")?;
                if unsent.contains(&(node, inc, text.to_string())) {
                    continue;
                }
                let (_, msg) =
                    parse_cpg_text(text).ok_or_else(|| format!("bad CPG text {text:?}"))?;
                ctl(
                    node,
                    inc,
                    EventKind::Observation(Observation::CpgSent {
                        group: GROUP.as_bytes().to_vec(),
                        sender: r.num("member")?,
                        msg,
                    }),
                )
            }
            "status" => {
                let s = NodeStatus {
                    operational: r.get("operational")? == "1",
                    ring: Some(ring(r.get("ring")?)?),
                    members: ids(r.get("members")?),
                    quiescent: r.get("quiescent")? == "1",
                };
                status.insert(r.num("node")?, (r.num("inc")?, s));
                continue;
            }
            "end" => {
                end = Some(at(r.at));
                continue;
            }
            _ => continue,
        };
        entries.push(e);
    }
    let spawns: Vec<&Record> = records.iter().filter(|r| r.what == "spawn").collect();
    for (k, r) in spawns.iter().enumerate() {
        let (node, inc): (u32, u32) = (r.num("node")?, r.num("inc")?);
        let offset_ns = r.num::<u64>("clock")? * 1_000_000_000;
        let judged_until_status = status.get(&node).is_some_and(|(i, _)| *i == inc);
        let events = process_events(
            dir,
            node,
            inc,
            crashed.contains(&(node, inc)),
            judged_until_status,
            &mut counts,
        )?;
        for (pos, (t, kind)) in events.into_iter().enumerate() {
            let time = at(t.saturating_sub(offset_ns));
            entries.push((
                time,
                k + 1,
                pos,
                phalanx_sim::history::Event {
                    time,
                    node,
                    incarnation: inc,
                    kind,
                },
            ));
        }
    }
    entries.sort_by_key(|e| (e.0, e.1, e.2));
    let mut history = History::new((1..=n).collect());
    history.end = end.unwrap_or_else(|| entries.last().map_or(0, |e| e.0));
    history.events = entries.into_iter().map(|e| e.3).collect();
    history.final_status = (1..=n)
        .map(|id| (id, status.get(&id).map(|(_, s)| s.clone())))
        .collect();
    Ok(Loaded {
        history,
        counts,
        unexpected_exits,
    })
}

/// The events of one process file, in file order: (mono_ns, kind).
fn process_events(
    dir: &Path,
    node: u32,
    inc: u32,
    crashed: bool,
    until_status: bool,
    counts: &mut Counts,
) -> Result<Vec<(u64, EventKind)>, String> {
    let path = events_path(dir, node, inc);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let mut lines: Vec<&str> = text.split('\n').collect();
    // The piece after the last newline: empty, or a killed process's partial line.
    lines.pop();
    // Judged up to the final status answer: the lines after it are cut, but for
    // quorum notifications of steps no later than the last configuration before
    // it (the relay printed them late; the Stack decided them before).
    let cut = until_status
        .then(|| {
            lines.iter().rposition(|l| {
                l.split(' ').nth(1) == Some("ok") && l.split(' ').nth(2) == Some("status")
            })
        })
        .flatten()
        .map_or(lines.len(), |i| i + 1);
    let mut out: Vec<Line> = Vec::with_capacity(lines.len());
    let mut notices: Vec<Notice> = Vec::new();
    let mut late_notices: Vec<Notice> = Vec::new();
    let me = |i: u32, seq: u64| MsgId {
        sender: node,
        incarnation: i,
        seq,
    };
    for (i, line) in lines.iter().enumerate() {
        let (t, event) = match ev::parse(line) {
            Ok(x) => x,
            // A killed process may have been cut off in the middle of its last line.
            Err(_) if crashed && i + 1 == lines.len() => break,
            Err(e) => return Err(format!("{}:{}: {e}: {line:?}", path.display(), i + 1)),
        };
        if i >= cut && !matches!(event, Event::Quorum(_)) {
            continue;
        }
        let mut config_step = None;
        let o = match event {
            Event::Config(c) => {
                counts.configs += 1;
                config_step = Some(c.step);
                Observation::Config {
                    kind: if c.regular {
                        ConfigKind::Regular
                    } else {
                        ConfigKind::Transitional
                    },
                    ring: c.ring,
                    old_ring: if c.regular { None } else { c.prev },
                    members: c.members,
                }
            }
            Event::Sent { seq, safe } => Observation::Sent {
                msg: me(inc, seq),
                guarantee: guarantee(safe),
            },
            Event::Unsent { seq } => {
                let sent = out.iter().rposition(|l| {
                    matches!(&l.kind, EventKind::Observation(Observation::Sent { msg, .. }) if msg.seq == seq)
                });
                match sent {
                    Some(at) => {
                        out.remove(at);
                        continue;
                    }
                    None => {
                        return Err(format!("{}:{}: unsent without sent", path.display(), i + 1));
                    }
                }
            }
            Event::Deliver(d) => {
                counts.deliveries += 1;
                let (i, q) = d.msg.unwrap_or((u32::MAX, u64::MAX));
                Observation::Deliver {
                    msg: MsgId {
                        sender: d.from,
                        incarnation: i,
                        seq: q,
                    },
                    guarantee: guarantee(d.safe),
                    intact: d.intact,
                }
            }
            Event::Quorum(q) => {
                let n = Notice {
                    time: t,
                    step: q.step,
                    quorum: Observation::Quorum {
                        quorate: q.quorate,
                        ring: q.ring,
                        members: q.members,
                    },
                };
                if i >= cut {
                    late_notices.push(n);
                } else {
                    notices.push(n);
                }
                continue;
            }
            Event::CpgView(v) => {
                counts.cpg_views += 1;
                let changes = |l: Vec<((u32, u32), String)>| {
                    l.into_iter()
                        .map(|(m, r)| Ok((m, reason(&r)?)))
                        .collect::<Result<Vec<_>, String>>()
                };
                Observation::CpgView {
                    group: v.group.into_bytes(),
                    receiver: v.member,
                    view: view_id(&v.view)?,
                    members: v.members,
                    left: changes(v.left)?,
                    joined: changes(v.joined)?,
                }
            }
            Event::CpgDeliver(d) => {
                counts.cpg_deliveries += 1;
                let (msg, intact) = match parse_cpg_text(&d.text) {
                    Some((from, msg)) => (msg, from == d.from),
                    None => (
                        MsgId {
                            sender: d.from.0,
                            incarnation: u32::MAX,
                            seq: u64::MAX,
                        },
                        false,
                    ),
                };
                Observation::CpgDeliver {
                    group: d.group.into_bytes(),
                    receiver: d.member,
                    sender: d.from,
                    msg,
                    intact,
                }
            }
            _ => continue,
        };
        // Configurations and deliveries come from the event loop, in the
        // Stack's order; the rest from threads of their own.
        let event_loop = matches!(o, Observation::Config { .. } | Observation::Deliver { .. });
        out.push(Line {
            time: t,
            config_step,
            event_loop,
            kind: EventKind::Observation(o),
        });
    }
    let last_step = out.iter().rev().find_map(|l| l.config_step);
    notices.extend(
        late_notices
            .into_iter()
            .filter(|n| last_step.is_some_and(|s| n.step <= s)),
    );
    counts.quorum += notices.len();
    Ok(step_order::merge(out, notices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpg_texts_round_trip() {
        let t = cpg_text(3, 2, 1, 77);
        assert_eq!(
            parse_cpg_text(&t),
            Some((
                (3, 2),
                MsgId {
                    sender: 3,
                    incarnation: 1,
                    seq: 77
                }
            ))
        );
        assert_eq!(parse_cpg_text("3/2/1"), None);
        assert_eq!(parse_cpg_text("3/2/1/7/9"), None);
    }

    /// A run directory written by hand: node 1 (restarted once, its second
    /// process 100 s ahead), node 2.
    fn run_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("nemesis-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // One line per source line, indentation dropped; no newline after a
        // last line written without one (a killed process's partial line).
        let w = |name: &str, text: &str| {
            let mut t: String = text
                .lines()
                .map(|l| format!("{}\n", l.trim_start()))
                .collect();
            if !text.ends_with('\n') {
                t.pop();
            }
            std::fs::write(dir.join(name), t).unwrap()
        };
        w(
            record::FILE,
            "1000 start nodes=2 seed=7 wall_ns=5
             1001 spawn node=1 inc=0 clock=0
             1002 spawn node=2 inc=0 clock=0
             1003 cpg-join node=1 inc=0 member=1
             1500 cpg-send node=1 inc=0 member=1 text=1/1/0/1
             1501 cpg-send node=1 inc=0 member=1 text=1/1/0/2
             1502 cpg-unsent node=1 inc=0 text=1/1/0/2
             2000 crash node=1 inc=0
             2100 spawn node=1 inc=1 clock=100
             3000 status node=1 inc=1 operational=1 ring=1.8 members=1,2 quiescent=1
             3001 status node=2 inc=0 operational=1 ring=1.8 members=1,2 quiescent=1
             3002 end
",
        );
        w(
            "n1.0.events",
            "1100 config kind=regular ring=1.4 prev=- members=1,2 joined=1,2 left=- step=1
             1200 sent seq=0 guarantee=agreed len=21
             1201 sent seq=1 guarantee=agreed len=21
             1202 unsent seq=1
             1300 deliver from=1 guarantee=agreed len=21 inc=0 seq=0 intact=1 count=1 order=1
             1400 quorum quorate=1 ring=1.4 members=1,2 step=2
             1600 cpg-deliver member=1 group=nemesis from=1/1 guarantee=agreed len=7 text=1/1/0/1
             1700 deliv",
        );
        w(
            "n1.1.events",
            "100000002200 config kind=regular ring=1.8 prev=- members=1,2 joined=1,2 left=- step=3
             100000002900 ok status operational=1 ring=1.8 members=1,2 quiescent=1 count=0 order=0
             100000003500 left
             100000003600 config kind=regular ring=2.12 prev=- members=2 joined=- left=1 step=4
",
        );
        w(
            "n2.0.events",
            "1100 config kind=regular ring=1.4 prev=- members=1,2 joined=1,2 left=- step=5
             1301 deliver from=1 guarantee=agreed len=21 inc=0 seq=0 intact=1 count=1 order=1
             2201 config kind=regular ring=1.8 prev=- members=1,2 joined=1 left=- step=6
             2901 ok status operational=1 ring=1.8 members=1,2 quiescent=1 count=0 order=0
",
        );
        dir
    }

    #[test]
    fn a_run_directory_becomes_one_history() {
        let dir = run_dir();
        let l = load(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let h = &l.history;
        assert_eq!(h.nodes, vec![1, 2]);
        assert_eq!(l.counts.processes, 3);
        assert_eq!(l.counts.deliveries, 2);
        assert_eq!(l.counts.cpg_deliveries, 1);
        // n1#0 one, n1#1 one (the one after its final status is cut off), n2#0 two.
        assert_eq!(l.counts.configs, 4);
        let sent: Vec<&EventKind> = h
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Observation(Observation::Sent { .. })))
            .map(|e| &e.kind)
            .collect();
        assert_eq!(sent.len(), 1, "the unsent message is retracted");
        let cpg_sent = h
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Observation(Observation::CpgSent { .. })))
            .count();
        assert_eq!(cpg_sent, 1, "the refused CPG send is retracted");
        // The restarted process's clock offset is taken off again: its config
        // lands between the restart (1100 after start) and the statuses.
        let t = h
            .events
            .iter()
            .find(|e| {
                e.node == 1
                    && e.incarnation == 1
                    && matches!(e.kind, EventKind::Observation(Observation::Config { .. }))
            })
            .map(|e| e.time);
        assert_eq!(t, Some(1200));
        // In time order, and the crash of n1#0 after everything it printed.
        assert!(h.events.windows(2).all(|w| w[0].time <= w[1].time));
        let crash = h
            .events
            .iter()
            .position(|e| matches!(e.kind, EventKind::Crash))
            .unwrap();
        assert!(
            h.events[crash + 1..]
                .iter()
                .all(|e| (e.node, e.incarnation) != (1, 0))
        );
        assert_eq!(h.end, 2002);
        assert_eq!(h.final_status.len(), 2);
        assert!(h.final_status.iter().all(|(_, s)| s.is_some()));
    }

    #[test]
    fn view_ids_parse() {
        assert_eq!(
            view_id("sync@1.8").unwrap(),
            CpgViewId {
                ring: (1, 8),
                sender: 0,
                seq: 0
            }
        );
        assert_eq!(
            view_id("msg@2.12:3:40").unwrap(),
            CpgViewId {
                ring: (2, 12),
                sender: 3,
                seq: 40
            }
        );
        assert!(view_id("msg@2.12:3").is_err());
        assert!(view_id("other").is_err());
    }
}
