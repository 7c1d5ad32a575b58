//! Property test over random operation sequences, driven by a seeded deterministic
//! generator (splitmix64, below). After every step it checks:
//!
//! * exclusion: no two incompatible modes are held on a resource at once;
//! * no lost wake-up: the head of the convert queue, or (with no conversion queued)
//!   the head of the wait queue, is never left waiting while compatible with every
//!   mode held;
//! * value blocks: every VALBLK grant that reads sees the value the last PW/EX
//!   release wrote, or says VALNOTVALID when the last release invalidated it;
//! * queue shapes, lock counts, the output bound, and that a refused call changed
//!   nothing.
//!
//! Default: 10 seeds x 10 000 steps. `DLM_RANDOM_SEEDS` and `DLM_RANDOM_STEPS` (steps
//! per seed) make longer runs, e.g. in release:
//! `DLM_RANDOM_STEPS=1000000 cargo test --release -p phalanx-dlm --test random_ops`.

mod common;

use std::collections::BTreeMap;

use phalanx_dlm::*;

use common::rng::Rng;

const NAMES: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];
const LVB_LEN: usize = 8;

fn owners() -> [Owner; 5] {
    [
        Owner::new(1, 1),
        Owner::new(1, 2),
        Owner::new(1, 3),
        Owner::new(2, 1),
        Owner::new(2, 2),
    ]
}

/// What the test expects of a resource's value block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Value(Vec<u8>),
    Invalid,
}

/// The test's own record of a lock, for the value-block rules.
#[derive(Debug, Clone)]
struct Tracked {
    granted: Option<Mode>,
    flags: LockFlags,
    lvb: Option<Vec<u8>>,
    resource: Vec<u8>,
    /// Registered a BAST routine.
    bast: bool,
    /// The highest BAST mode received since the last grant.
    highbast: Option<Mode>,
}

#[derive(Default, Debug)]
struct Coverage {
    granted: usize,
    would_block: usize,
    deadlock: usize,
    cancelled: usize,
    unlocked: usize,
    demoted: usize,
    altmode: usize,
    valnotvalid: usize,
    lvb_reads_checked: usize,
    basts: usize,
    refused: usize,
    orphans_adopted: usize,
    idle_dropped: usize,
}

struct Run {
    seed: u64,
    step: usize,
    rng: Rng,
    ls: Lockspace,
    locks: BTreeMap<LockId, Tracked>,
    lvbs: BTreeMap<Vec<u8>, Expected>,
    coverage: Coverage,
}

/// Even seeds: small resources and a small toss cache. Odd seeds: crowded resources
/// and no toss cache (every idle resource is forgotten at once).
fn config(seed: u64) -> LockspaceConfig {
    let per_resource = if seed % 2 == 0 { 6 } else { 12 };
    LockspaceConfig {
        lvb_len: LVB_LEN,
        max_locks_per_resource: per_resource,
        max_locks: 64,
        max_resources: 8,
        max_tossed: if seed % 2 == 0 { 2 } else { 0 },
        max_outputs: LockspaceConfig::outputs_needed(per_resource),
    }
}

type Snapshot = (usize, usize, Vec<ResourceView>);

/// An accepted unlock: the lock, the unlock's flags and the value it carried.
type Release = (LockId, LockFlags, Option<Vec<u8>>);

impl Run {
    fn new(seed: u64) -> Run {
        Run {
            seed,
            step: 0,
            rng: Rng(seed),
            ls: Lockspace::new(config(seed)).expect("config"),
            locks: BTreeMap::new(),
            lvbs: BTreeMap::new(),
            coverage: Coverage::default(),
        }
    }

    fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    fn snapshot(&self) -> Snapshot {
        (
            self.ls.lock_count(),
            self.ls.pending_outputs(),
            self.ls.resources().collect(),
        )
    }

    fn random_lvb(&mut self) -> Vec<u8> {
        self.rng.next().to_le_bytes()[..LVB_LEN].to_vec()
    }

    fn random_lock(&mut self) -> Option<(LockId, Owner)> {
        let all: Vec<LockInfo> = self
            .ls
            .resources()
            .flat_map(|r| {
                r.granted
                    .into_iter()
                    .chain(r.converting)
                    .chain(r.waiting)
                    .collect::<Vec<_>>()
            })
            .collect();
        if all.is_empty() {
            return None;
        }
        let info = &all[self.rng.below(all.len())];
        // Mostly the real owner; sometimes someone else (must be refused).
        let who = if self.rng.chance(90) {
            info.owner
        } else {
            owners()[self.rng.below(5)]
        };
        Some((info.id, who))
    }

    /// The granted mode of every tracked lock, as the lockspace says now (purges and
    /// CONVDEADLK demotions change it without a completion).
    fn resync(&mut self) {
        let ls = &self.ls;
        self.locks.retain(|id, _| ls.lock_info(*id).is_some());
        for (id, t) in self.locks.iter_mut() {
            t.granted = ls.lock_info(*id).and_then(|i| i.granted);
        }
    }

    fn step(&mut self) {
        self.resync();
        let before = self.snapshot();
        let roll = self.rng.below(100);
        let (result, release): (Result<(), DlmError>, Option<Release>) = match roll {
            0..=29 => (self.new_lock(), None),
            30..=59 => (self.convert(), None),
            60..=84 => match self.unlock() {
                Some((r, rel)) => (r, rel),
                None => (Ok(()), None),
            },
            85..=93 => (self.cancel(), None),
            94..=96 => {
                let who = owners()[self.rng.below(5)];
                self.ls.purge_owner(who);
                (Ok(()), None)
            }
            97 => {
                let node = 1 + self.rng.below(2) as u32;
                let pid = if self.rng.chance(50) {
                    None
                } else {
                    Some(1 + self.rng.below(3) as u32)
                };
                self.ls.purge_orphans(node, pid);
                (Ok(()), None)
            }
            _ => {
                let name = NAMES[self.rng.below(3)];
                if self.ls.invalidate_lvb(name) {
                    self.lvbs.insert(name.to_vec(), Expected::Invalid);
                }
                (Ok(()), None)
            }
        };
        if result.is_err() {
            self.coverage.refused += 1;
            assert_eq!(
                self.snapshot(),
                before,
                "{}: refused call changed state",
                self.ctx()
            );
        }
        assert!(
            self.ls.pending_outputs() <= self.ls.config().max_outputs,
            "{}: output bound",
            self.ctx()
        );
        self.check_outputs(release);
        self.check_resources();
    }

    fn new_lock(&mut self) -> Result<(), DlmError> {
        let who = owners()[self.rng.below(5)];
        let name = NAMES[self.rng.below(3)];
        let mode = self.rng.mode();
        let mut req = LockRequest::new(who, name, mode);
        for (percent, flag) in [
            (10, LockFlags::NOQUEUE),
            (5, LockFlags::NOQUEUEBAST),
            (10, LockFlags::HEADQUE),
            (5, LockFlags::NOORDER),
            (5, LockFlags::ALTPR),
            (5, LockFlags::ALTCW),
            (15, LockFlags::PERSISTENT),
            (4, LockFlags::EXPEDITE),
            (4, LockFlags::ORPHAN),
            (2, LockFlags::QUECVT),
        ] {
            if self.rng.chance(percent) {
                req = req.with_flags(flag);
            }
        }
        if self.rng.chance(50) {
            let v = self.random_lvb();
            req = req.with_lvb(&v);
        }
        if self.rng.chance(10) {
            req = req.without_bast();
        }
        let adopting = req.flags.contains(LockFlags::ORPHAN);
        let bast = req.bast;
        let (flags, lvb) = (req.flags, req.lvb.as_deref().map(<[u8]>::to_vec));
        let id = self.ls.lock(req)?;
        if adopting {
            self.coverage.orphans_adopted += 1;
            // An adoption is not an LVB transfer: track the lock without VALBLK.
            self.locks.insert(
                id,
                Tracked {
                    granted: Some(mode),
                    flags: LockFlags::EMPTY,
                    lvb: None,
                    resource: name.to_vec(),
                    bast,
                    highbast: None,
                },
            );
        } else {
            self.locks.insert(
                id,
                Tracked {
                    granted: None,
                    flags,
                    lvb,
                    resource: name.to_vec(),
                    bast,
                    highbast: None,
                },
            );
        }
        Ok(())
    }

    fn convert(&mut self) -> Result<(), DlmError> {
        let Some((id, who)) = self.random_lock() else {
            return Ok(());
        };
        let mode = self.rng.mode();
        let mut req = LockRequest::convert(who, id, mode);
        for (percent, flag) in [
            (15, LockFlags::QUECVT),
            (20, LockFlags::CONVDEADLK),
            (8, LockFlags::NODLCKWT),
            (10, LockFlags::NOQUEUE),
            (5, LockFlags::NOQUEUEBAST),
            (5, LockFlags::HEADQUE),
            (5, LockFlags::NOORDER),
            (5, LockFlags::ALTPR),
            (5, LockFlags::ALTCW),
            (10, LockFlags::IVVALBLK),
        ] {
            if self.rng.chance(percent) {
                req = req.with_flags(flag);
            }
        }
        if self.rng.chance(50) {
            let v = self.random_lvb();
            req = req.with_lvb(&v);
        }
        if self.rng.chance(10) {
            req = req.without_bast();
        }
        let (flags, lvb, bast) = (req.flags, req.lvb.as_deref().map(<[u8]>::to_vec), req.bast);
        self.ls.lock(req)?;
        if let Some(t) = self.locks.get_mut(&id) {
            t.flags = flags;
            t.bast = bast;
            if lvb.is_some() {
                t.lvb = lvb;
            }
        }
        Ok(())
    }

    fn unlock(&mut self) -> Option<(Result<(), DlmError>, Option<Release>)> {
        let (id, who) = self.random_lock()?;
        let mut req = UnlockRequest::new(who, id);
        for (percent, flag) in [(10, LockFlags::IVVALBLK), (25, LockFlags::FORCEUNLOCK)] {
            if self.rng.chance(percent) {
                req = req.with_flags(flag);
            }
        }
        if self.rng.chance(50) {
            let v = self.random_lvb();
            req = req.with_lvb(&v);
        }
        let release = (id, req.flags, req.lvb.as_deref().map(<[u8]>::to_vec));
        let result = self.ls.unlock(req);
        let release = result.is_ok().then_some(release);
        Some((result, release))
    }

    fn cancel(&mut self) -> Result<(), DlmError> {
        let Some((id, who)) = self.random_lock() else {
            return Ok(());
        };
        self.ls.unlock(UnlockRequest::cancel(who, id))
    }

    /// Reads what the step produced, in order, applying and checking the value-block
    /// rules with the test's own record of each lock.
    fn check_outputs(&mut self, release: Option<Release>) {
        let outputs: Vec<Output> = std::iter::from_fn(|| self.ls.poll_output()).collect();
        for (i, out) in outputs.iter().cloned().enumerate() {
            match out {
                Output::Completion(c) => self.on_completion(c, release.as_ref()),
                Output::Blocking { lock, mode, .. } => {
                    self.coverage.basts += 1;
                    let ctx = self.ctx();
                    let info = self.ls.lock_info(lock).expect("a BAST goes to a live lock");
                    let held = info.granted.expect("a BAST goes to a holder");
                    assert!(!info.orphan, "{ctx}: BAST to an orphan");
                    // Either the holder blocks `mode`, or it is a NODLCKWT conversion
                    // told about its own requested mode.
                    let self_bast = info.requested == Some(mode);
                    assert!(
                        !held.is_compatible(mode) || self_bast,
                        "{ctx}: {held} does not block {mode}"
                    );
                    let t = self.locks.get_mut(&lock).expect("tracked");
                    assert!(t.bast, "{ctx}: BAST to a lock without a BAST routine");
                    assert!(
                        t.highbast.is_none_or(|h| h < mode),
                        "{ctx}: BAST {mode} repeated"
                    );
                    t.highbast = Some(mode);
                }
                Output::ResourceIdle(name) => {
                    // Idle now, unless a purge over several resources overflowed the
                    // toss cache and dropped it again later in the same step.
                    let dropped_later =
                        outputs[i + 1..].contains(&Output::ResourceDropped(name.clone()));
                    assert!(
                        self.ls.is_idle(name.as_bytes()) || dropped_later,
                        "{}: {name:?} announced idle but is not",
                        self.ctx()
                    );
                }
                Output::ResourceDropped(_) => self.coverage.idle_dropped += 1,
            }
        }
        // A resource that no longer exists starts over with a zero, valid block.
        let ls = &self.ls;
        self.lvbs.retain(|name, _| ls.resource(name).is_some());
    }

    fn expected(&self, name: &[u8]) -> Expected {
        self.lvbs
            .get(name)
            .cloned()
            .unwrap_or(Expected::Value(vec![0; LVB_LEN]))
    }

    fn on_completion(&mut self, c: Completion, release: Option<&Release>) {
        let ctx = self.ctx();
        self.coverage.demoted += usize::from(c.flags.demoted);
        self.coverage.altmode += usize::from(c.flags.altmode);
        self.coverage.valnotvalid += usize::from(c.flags.valnotvalid);
        let Some(t) = self.locks.get(&c.lock).cloned() else {
            panic!("{ctx}: completion for an unknown lock {c:?}");
        };
        match c.status {
            Status::Granted => {
                self.coverage.granted += 1;
                let mode = c.granted.expect("a grant has a mode");
                let held = if c.flags.demoted {
                    Some(Mode::Nl)
                } else {
                    t.granted
                };
                if t.flags.contains(LockFlags::VALBLK) {
                    let name = t.resource.clone();
                    match lvb_transfer(held, mode) {
                        LvbTransfer::Read => {
                            let got = c.lvb.as_deref().expect("a read carries the block");
                            match self.expected(&name) {
                                Expected::Value(v) => {
                                    assert!(!c.flags.valnotvalid, "{ctx}: {c:?}");
                                    assert_eq!(got, &v[..], "{ctx}: LVB read");
                                    self.coverage.lvb_reads_checked += 1;
                                }
                                Expected::Invalid => {
                                    assert!(c.flags.valnotvalid, "{ctx}: VALNOTVALID")
                                }
                            }
                        }
                        LvbTransfer::Write => {
                            let e = if t.flags.contains(LockFlags::IVVALBLK) {
                                Expected::Invalid
                            } else {
                                Expected::Value(t.lvb.clone().expect("VALBLK has a block"))
                            };
                            assert_eq!(c.flags.valnotvalid, e == Expected::Invalid, "{ctx}");
                            self.lvbs.insert(name, e);
                        }
                        LvbTransfer::None => {
                            let invalid = self.expected(&name) == Expected::Invalid;
                            assert_eq!(c.flags.valnotvalid, invalid, "{ctx}");
                        }
                    }
                } else {
                    assert!(c.lvb.is_none() && !c.flags.valnotvalid, "{ctx}: {c:?}");
                }
                if let Some(t) = self.locks.get_mut(&c.lock) {
                    t.granted = Some(mode);
                    t.highbast = None;
                }
            }
            Status::Unlocked => {
                self.coverage.unlocked += 1;
                let (id, flags, lvb) = release.expect("only an unlock call unlocks");
                assert_eq!(*id, c.lock, "{ctx}");
                if t.granted.is_some_and(|m| m >= Mode::Pw) {
                    if flags.contains(LockFlags::IVVALBLK) {
                        self.lvbs.insert(t.resource.clone(), Expected::Invalid);
                    } else if flags.contains(LockFlags::VALBLK) {
                        let v = lvb.clone().expect("VALBLK has a block");
                        self.lvbs.insert(t.resource.clone(), Expected::Value(v));
                    }
                }
                self.locks.remove(&c.lock);
            }
            Status::WouldBlock | Status::Deadlock | Status::Cancelled => {
                match c.status {
                    Status::WouldBlock => self.coverage.would_block += 1,
                    Status::Deadlock => self.coverage.deadlock += 1,
                    _ => self.coverage.cancelled += 1,
                }
                if c.granted.is_none() {
                    self.locks.remove(&c.lock);
                } else if let Some(t) = self.locks.get_mut(&c.lock) {
                    t.granted = c.granted;
                }
            }
        }
    }

    fn check_resources(&self) {
        let ctx = self.ctx();
        let mut counted = 0;
        for r in self.ls.resources() {
            let all: Vec<&LockInfo> = r
                .granted
                .iter()
                .chain(&r.converting)
                .chain(&r.waiting)
                .collect();
            counted += all.len();
            for l in &r.granted {
                assert!(
                    l.state == LockState::Granted && l.granted.is_some() && l.requested.is_none(),
                    "{ctx}: {l:?}"
                );
            }
            for l in &r.converting {
                assert!(
                    l.state == LockState::Converting
                        && l.granted.is_some()
                        && l.requested.is_some(),
                    "{ctx}: {l:?}"
                );
            }
            for l in &r.waiting {
                assert!(
                    l.state == LockState::Waiting && l.granted.is_none() && l.requested.is_some(),
                    "{ctx}: {l:?}"
                );
            }
            // Exclusion.
            let held: Vec<(LockId, Mode)> = all
                .iter()
                .filter_map(|l| l.granted.map(|m| (l.id, m)))
                .collect();
            for (i, (a, ma)) in held.iter().enumerate() {
                for (b, mb) in &held[i + 1..] {
                    assert!(
                        ma.is_compatible(*mb),
                        "{ctx}: {a} holds {ma} and {b} holds {mb} on {:?}",
                        r.name
                    );
                }
            }
            // No lost wake-up.
            let fits = |id: LockId, mode: Mode| {
                held.iter()
                    .all(|(other, m)| *other == id || m.is_compatible(mode))
            };
            // Every holder that blocks a queued request has been told (highbast).
            let queued: Vec<(LockId, Mode)> = r
                .converting
                .iter()
                .chain(&r.waiting)
                .filter_map(|l| l.requested.map(|m| (l.id, m)))
                .collect();
            for l in &all {
                let (Some(g), false) = (l.granted, l.orphan) else {
                    continue;
                };
                let Some(t) = self.locks.get(&l.id) else {
                    continue;
                };
                if !t.bast {
                    continue;
                }
                let worst = queued
                    .iter()
                    .filter(|(id, m)| *id != l.id && !g.is_compatible(*m))
                    .map(|(_, m)| *m)
                    .max();
                if let Some(worst) = worst {
                    assert!(
                        t.highbast.is_some_and(|h| h >= worst),
                        "{ctx}: {} holds {g} and blocks {worst} but was told {:?}",
                        l.id,
                        t.highbast
                    );
                }
            }
            if let Some(head) = r.converting.first() {
                let mode = head.requested.expect("converting");
                assert!(
                    !fits(head.id, mode),
                    "{ctx}: head conversion {head:?} left waiting in {r:?}"
                );
            } else if let Some(head) = r.waiting.first() {
                let mode = head.requested.expect("waiting");
                assert!(
                    !fits(head.id, mode),
                    "{ctx}: head waiter {head:?} left waiting in {r:?}"
                );
            }
        }
        assert_eq!(counted, self.ls.lock_count(), "{ctx}: lock count");
        for name in NAMES {
            if self.ls.is_idle(name) {
                let view = self.ls.resource(name).expect("idle resource");
                assert!(
                    view.granted.is_empty()
                        && view.converting.is_empty()
                        && view.waiting.is_empty()
                );
            }
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_operation_sequences_keep_exclusion_wakeups_and_value_blocks() {
    let seeds = env_usize("DLM_RANDOM_SEEDS", 10);
    let steps = env_usize("DLM_RANDOM_STEPS", 10_000);
    let mut total = Coverage::default();
    for seed in 0..seeds as u64 {
        let mut run = Run::new(0x5eed_0000 + seed);
        for step in 0..steps {
            run.step = step;
            run.step();
        }
        let c = run.coverage;
        total.granted += c.granted;
        total.would_block += c.would_block;
        total.deadlock += c.deadlock;
        total.cancelled += c.cancelled;
        total.unlocked += c.unlocked;
        total.demoted += c.demoted;
        total.altmode += c.altmode;
        total.valnotvalid += c.valnotvalid;
        total.lvb_reads_checked += c.lvb_reads_checked;
        total.basts += c.basts;
        total.refused += c.refused;
        total.orphans_adopted += c.orphans_adopted;
        total.idle_dropped += c.idle_dropped;
    }
    eprintln!("{} seeds x {} steps: {total:?}", seeds, steps);
    // The generator must actually reach every path it claims to test.
    let reached = [
        ("granted", total.granted),
        ("would_block", total.would_block),
        ("deadlock", total.deadlock),
        ("cancelled", total.cancelled),
        ("unlocked", total.unlocked),
        ("demoted", total.demoted),
        ("altmode", total.altmode),
        ("valnotvalid", total.valnotvalid),
        ("lvb_reads_checked", total.lvb_reads_checked),
        ("basts", total.basts),
        ("refused", total.refused),
        ("orphans_adopted", total.orphans_adopted),
        ("idle_dropped", total.idle_dropped),
    ];
    for (what, count) in reached {
        assert!(count > 0, "the random run never reached {what}");
    }
}
