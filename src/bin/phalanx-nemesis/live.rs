//! What the controller knows of each process while the run goes on, from the
//! lines it prints: its latest configuration and quorum state, its CPG view,
//! the commands it has not answered yet, and what it sent but has not
//! delivered to itself yet. Used to pace the CPG load and to tell when the
//! cluster has settled at the end; the judging is done from the files.

use crate::control_events::{self as ev, Event, Reply};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A command sent and not answered yet.
#[derive(Clone, Debug)]
pub enum Pending {
    /// `cpg-mcast` of this text.
    CpgMcast(String),
    /// `cpg-join`.
    CpgJoin,
    /// `status`.
    Status,
    /// `dlm-hammer`.
    DlmHammer,
    /// `dlm-hammer-stop`.
    DlmStop,
    /// Anything else (its verb).
    Other(String),
}

/// One process as the controller sees it.
#[derive(Debug, Default)]
pub struct Proc {
    /// Its latest configuration: (regular, ring, members sorted).
    pub config: Option<(bool, (u32, u64), Vec<u32>)>,
    /// Its latest quorum state: (quorate, members sorted).
    pub quorum: Option<(bool, Vec<u32>)>,
    /// Its member's latest view of the group (sorted).
    pub view: Option<Vec<(u32, u32)>>,
    /// Commands not answered yet, in order.
    pub pending: VecDeque<Pending>,
    /// Its member is in the group (its join was accepted).
    pub joined: bool,
    /// Totem messages it sent and has not delivered yet.
    pub unsettled: BTreeSet<u64>,
    /// CPG texts it sent and has not delivered yet.
    pub cpg_unsettled: BTreeSet<String>,
    /// Messages delivered since its latest regular configuration.
    pub since_regular: BTreeSet<(u32, u32, u64)>,
    /// CPG texts delivered since its member's latest view.
    pub cpg_since_view: BTreeSet<String>,
    /// Its answer to the latest `status`.
    pub status: Option<Reply>,
    /// Its lock workers run (`dlm-hammer` answered ok).
    pub dlm_running: bool,
    /// The answer to its `dlm-hammer-stop`: whether it was ok.
    pub dlm_stopped: Option<bool>,
}

impl Proc {
    /// `cpg-mcast` commands not answered yet.
    pub fn mcasts_in_flight(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| matches!(p, Pending::CpgMcast(_)))
            .count()
    }

    /// A join is on its way.
    pub fn join_pending(&self) -> bool {
        self.pending.iter().any(|p| matches!(p, Pending::CpgJoin))
    }

    /// A `dlm-hammer` is on its way.
    pub fn hammer_pending(&self) -> bool {
        self.pending.iter().any(|p| matches!(p, Pending::DlmHammer))
    }

    /// Its latest quorum state is quorate.
    pub fn quorate(&self) -> bool {
        self.quorum.as_ref().is_some_and(|(q, _)| *q)
    }
}

/// What an answer meant, for the controller to record.
pub enum Answered {
    /// A `cpg-mcast` of this text was refused: it was never sent.
    CpgRefused(String),
    /// A command failed (verb, reason).
    Failed(String, String),
    /// Nothing to record.
    Nothing,
}

/// Every process, by (node, incarnation).
#[derive(Default)]
pub struct Live {
    /// The processes.
    pub procs: BTreeMap<(u32, u32), Proc>,
}

impl Live {
    /// The process (node, inc), created on first mention.
    pub fn proc(&mut self, node: u32, inc: u32) -> &mut Proc {
        self.procs.entry((node, inc)).or_default()
    }

    /// Takes one line of (node, inc).
    pub fn line(&mut self, node: u32, inc: u32, line: &str) -> Answered {
        let p = self.proc(node, inc);
        // A line that does not parse is the judge's business (it reads the file).
        let Ok((_, event)) = ev::parse(line) else {
            return Answered::Nothing;
        };
        match event {
            Event::Config(c) => {
                if c.regular {
                    p.since_regular.clear();
                }
                let mut members = c.members;
                members.sort_unstable();
                p.config = Some((c.regular, c.ring, members));
            }
            Event::Sent { seq, .. } => {
                p.unsettled.insert(seq);
            }
            Event::Unsent { seq } => {
                p.unsettled.remove(&seq);
            }
            Event::Deliver(d) => {
                let (i, q) = d.msg.unwrap_or((u32::MAX, u64::MAX));
                if d.from == node && i == inc {
                    p.unsettled.remove(&q);
                }
                p.since_regular.insert((d.from, i, q));
            }
            Event::Quorum(q) => {
                let mut members = q.members;
                members.sort_unstable();
                p.quorum = Some((q.quorate, members));
            }
            Event::CpgView(v) => {
                let mut members = v.members;
                members.sort_unstable();
                p.view = Some(members);
                p.cpg_since_view.clear();
            }
            Event::CpgDeliver(d) => {
                if d.from.0 == node {
                    p.cpg_unsettled.remove(&d.text);
                }
                p.cpg_since_view.insert(d.text);
            }
            Event::Reply(r) => return answered(p, r),
            _ => {}
        }
        Answered::Nothing
    }

    /// Every process of `current` (node → incarnation) is in one regular
    /// configuration of all of them, quorate with all of them, and its member's
    /// view holds every process's member (`local(inc)`).
    pub fn settled(&self, current: &BTreeMap<u32, u32>, local: impl Fn(u32) -> u32) -> bool {
        let all: Vec<u32> = current.keys().copied().collect();
        let members: Vec<(u32, u32)> = current.iter().map(|(n, i)| (*n, local(*i))).collect();
        let mut ring = None;
        current.iter().all(|(n, i)| {
            let Some(p) = self.procs.get(&(*n, *i)) else {
                return false;
            };
            let in_ring = match &p.config {
                Some((true, r, m)) if *m == all => *ring.get_or_insert(*r) == *r,
                _ => false,
            };
            in_ring
                && p.quorum.as_ref() == Some(&(true, all.clone()))
                && p.view.as_ref() == Some(&members)
        })
    }

    /// Settled, every command answered, every process's own messages delivered
    /// to itself, and all delivered the same since the ring formed (and the same
    /// group messages since the group's latest view).
    pub fn drained(&self, current: &BTreeMap<u32, u32>, local: impl Fn(u32) -> u32) -> bool {
        if !self.settled(current, local) {
            return false;
        }
        let procs: Vec<&Proc> = current
            .iter()
            .filter_map(|(n, i)| self.procs.get(&(*n, *i)))
            .collect();
        procs.iter().all(|p| {
            p.pending.is_empty()
                && p.unsettled.is_empty()
                && p.cpg_unsettled.is_empty()
                && p.since_regular == procs[0].since_regular
                && p.cpg_since_view == procs[0].cpg_since_view
        })
    }
}

/// Matches an answer with the command it answers.
fn answered(p: &mut Proc, r: Reply) -> Answered {
    let Some(asked) = p.pending.pop_front() else {
        return Answered::Failed(r.verb, "an answer to no command".into());
    };
    let reason = r.fields.get("reason").cloned().unwrap_or_default();
    match asked {
        Pending::CpgMcast(text) if !r.ok => {
            p.cpg_unsettled.remove(&text);
            Answered::CpgRefused(text)
        }
        Pending::CpgMcast(_) => Answered::Nothing,
        Pending::CpgJoin => {
            p.joined = r.ok;
            if r.ok {
                Answered::Nothing
            } else {
                Answered::Failed(r.verb, reason)
            }
        }
        Pending::Status => {
            p.status = Some(r);
            Answered::Nothing
        }
        Pending::DlmHammer => {
            p.dlm_running = r.ok;
            if r.ok {
                Answered::Nothing
            } else {
                Answered::Failed(r.verb, reason)
            }
        }
        Pending::DlmStop => {
            p.dlm_stopped = Some(r.ok);
            p.dlm_running = false;
            if r.ok {
                Answered::Nothing
            } else {
                Answered::Failed(r.verb, reason)
            }
        }
        Pending::Other(_) if r.ok => Answered::Nothing,
        Pending::Other(verb) => Answered::Failed(verb, reason),
    }
}
