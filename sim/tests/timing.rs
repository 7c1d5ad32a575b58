//! The engine's timing contract with nodes, checked by a probe node: local clocks never
//! go backwards, timeouts never fire before the requested local deadline, and a paused
//! node's socket buffer is bounded.

use phalanx_sim::{
    Destination, Disk, NodeFactory, NodeId, NodeStatus, Observation, Rng, Sim, SimNode, SimOptions,
    Transmit,
};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Default)]
struct Findings {
    early_timeouts: u64,
    clock_regressions: u64,
    timeouts: u64,
    datagrams: u64,
    runs_begun: Vec<u64>,
    max_boots_seen: u64,
}

struct Probe {
    deadline: u64,
    last_now: u64,
    out: Vec<Transmit>,
    f: Rc<RefCell<Findings>>,
}

impl Probe {
    fn saw(&mut self, now: u64) {
        if now < self.last_now {
            self.f.borrow_mut().clock_regressions += 1;
        }
        self.last_now = now;
    }
}

impl SimNode for Probe {
    fn handle_datagram(&mut self, now: u64, _from: NodeId, _link: u8, _data: &[u8]) -> bool {
        self.saw(now);
        self.f.borrow_mut().datagrams += 1;
        true
    }
    fn handle_timeout(&mut self, now: u64) {
        self.saw(now);
        let mut f = self.f.borrow_mut();
        f.timeouts += 1;
        if now < self.deadline {
            f.early_timeouts += 1;
        }
        // Odd periods so deadlines land between nanosecond ticks of drifted clocks.
        self.deadline = now + 7_777_777;
        // Chatter so paused peers' socket buffers fill.
        for _ in 0..4 {
            self.out.push(Transmit {
                dest: Destination::AllNodes,
                link: 0,
                data: vec![0; 64],
            });
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop()
    }
    fn poll_timeout(&self) -> Option<u64> {
        Some(self.deadline)
    }
    fn app_tick(&mut self, now: u64, _rng: &mut Rng) {
        self.saw(now);
    }
    fn leave(&mut self, _now: u64) {}
    fn poll_observation(&mut self) -> Option<Observation> {
        None
    }
    fn status(&self) -> NodeStatus {
        NodeStatus {
            quiescent: true,
            ..NodeStatus::default()
        }
    }
    fn persist(&mut self, disk: &mut Disk) {
        disk.insert("persisted".into(), vec![1]);
    }
}

struct ProbeFactory(Rc<RefCell<Findings>>);

impl NodeFactory for ProbeFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.0.borrow_mut().runs_begun.push(run_seed);
    }
    fn create(
        &mut self,
        _id: NodeId,
        _all: &[NodeId],
        incarnation: u32,
        _seed: u64,
        now: u64,
        disk: &mut Disk,
        _logger: phalanx_logsys::Logger,
    ) -> Box<dyn SimNode> {
        // The disk survives crashes: a restarted node sees what its predecessor persisted.
        let boots = disk.get("boots").map_or(0, |b| b[0]) + 1;
        if incarnation > 0 {
            assert_eq!(disk.get("persisted"), Some(&vec![1]));
        }
        disk.insert("boots".into(), vec![boots]);
        let mut f = self.0.borrow_mut();
        f.max_boots_seen = f.max_boots_seen.max(u64::from(boots));
        drop(f);
        Box::new(Probe {
            deadline: now + 1_234_567,
            last_now: now,
            out: Vec::new(),
            f: self.0.clone(),
        })
    }
}

#[test]
fn timeouts_are_never_early_and_clocks_never_regress() {
    let f = Rc::new(RefCell::new(Findings::default()));
    let mut overflow = 0;
    for seed in 0..30 {
        let mut opts = SimOptions::new(4, seed);
        opts.liveness_ns = 500_000_000;
        let report = Sim::new(opts, &mut ProbeFactory(f.clone())).run();
        overflow += report.stats.dropped_overflow;
        // The probe never reports a ring, so only liveness can (and must) complain.
        assert!(report.violations.iter().all(|v| v.property == "liveness"));
    }
    let f = f.borrow();
    assert_eq!(f.early_timeouts, 0);
    assert_eq!(f.clock_regressions, 0);
    assert!(f.timeouts > 1000 && f.datagrams > 1000);
    assert!(overflow > 0, "no paused node's buffer ever overflowed");
    assert_eq!(f.runs_begun, (0..30).collect::<Vec<u64>>());
    assert!(f.max_boots_seen > 1);
}
