//! The `Dlm` handles of running nodes, in one process (nodes on loopback): the
//! `*_wait` calls that run on the caller's thread (`DlmFastPath`) next to the
//! driver's path — a contended lock's BAST before the waiter's grant, the
//! hand-over on unlock, NOQUEUE refusals, and a remote master.
//!
//! The tests take turns (a lock): each starts its own nodes.

mod common;

use common::conf::loopback_node_addrs;
use common::wait::wait_until;
use phalanx::dlm::{LockFlags, Mode, Status};
use phalanx::node::{DlmCallError, DlmNotice, Node, NodeOptions};
use phalanx::totem::Config;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` nodes with the DLM on free loopback ports, in one ring.
fn cluster(n: u32) -> Vec<Node> {
    cluster_on(&loopback_node_addrs(n), false)
}

/// Nodes at `addrs`, with the lock traffic point-to-point
/// (`DlmSetup::direct`) when `direct`.
fn cluster_on(addrs: &BTreeMap<u32, SocketAddr>, direct: bool) -> Vec<Node> {
    let n = addrs.len() as u32;
    let ids: Vec<u32> = (1..=n).collect();
    let nodes: Vec<Node> = ids
        .iter()
        .map(|id| {
            let mut o = NodeOptions::new(Config::new(*id, ids.clone()), addrs.clone());
            o.dlm = Some(phalanx::stack::DlmSetup {
                direct,
                ..Default::default()
            });
            Node::start(o).expect("node starts")
        })
        .collect();
    wait_until("one ring of every node", Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|nd| nd.handle().is_operational() && nd.handle().membership().members == ids)
    });
    nodes
}

/// The next notice on `rx` that `want` accepts; fails after 10 s.
fn next_notice(
    rx: &crossbeam_channel::Receiver<DlmNotice>,
    want: impl Fn(&DlmNotice) -> bool,
) -> DlmNotice {
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(n) if want(&n) => return n,
            Ok(_) => {}
            Err(e) => panic!("no such notice: {e}"),
        }
    }
}

#[test]
fn local_waits_grant_refuse_notify_and_hand_over_in_order() {
    let _g = serial();
    let nodes = cluster(1);
    let ls = nodes[0].dlm().lockspace("handles").unwrap();
    // Many uncontended pairs (the caller's-thread path once nothing is in flight).
    for _ in 0..1000 {
        let g = ls
            .lock_wait(b"free", Mode::Ex, LockFlags::EMPTY, None)
            .unwrap();
        assert_eq!(g.completion.granted, Some(Mode::Ex));
        let c = ls.unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
        assert_eq!(c.status, Status::Unlocked);
    }
    // A holds EX; NOQUEUE from another handle is refused at once.
    let other = nodes[0].dlm().lockspace("handles").unwrap();
    let a = ls
        .lock_wait(b"r", Mode::Ex, LockFlags::EMPTY, None)
        .unwrap();
    assert_eq!(
        other
            .lock_wait(b"r", Mode::Pr, LockFlags::NOQUEUE, None)
            .unwrap_err(),
        DlmCallError::WouldBlock
    );
    // A PR waiter on another thread: A gets a BAST for PR, the waiter the grant
    // only after A's unlock.
    let waiter = std::thread::spawn(move || {
        let g = other
            .lock_wait(b"r", Mode::Pr, LockFlags::EMPTY, None)
            .unwrap();
        other.unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
        g.completion
    });
    let bast = next_notice(ls.notices(), |n| matches!(n, DlmNotice::Blocking { .. }));
    assert_eq!(
        bast,
        DlmNotice::Blocking {
            lock: a.id,
            mode: Mode::Pr
        }
    );
    assert!(!waiter.is_finished(), "granted while A holds EX");
    let c = ls.unlock_wait(a.id, LockFlags::EMPTY, None).unwrap();
    assert_eq!((c.lock, c.status), (a.id, Status::Unlocked));
    let granted = waiter.join().unwrap();
    assert_eq!(
        (granted.status, granted.granted),
        (Status::Granted, Some(Mode::Pr))
    );
    // The resource is free again, and the lockspace empty (leave is refused
    // while this node holds locks).
    let g = ls
        .lock_wait(b"r", Mode::Ex, LockFlags::NOQUEUE, None)
        .unwrap();
    ls.unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
    ls.leave().unwrap();
    for n in nodes {
        n.leave().unwrap();
    }
}

#[test]
fn a_remote_master_answers_waits_run_on_the_callers_thread() {
    remote_master(&loopback_node_addrs(2), false);
}

/// With the direct path the caller's thread also sends the request's
/// datagram itself (real sockets, the driver's sealing and counters).
#[test]
fn with_the_direct_path_the_callers_thread_sends_the_request() {
    let addrs = loopback_node_addrs(2);
    let nodes = remote_master(&addrs, true);
    let stats = nodes[0].dlm().stats().unwrap();
    assert!(
        stats.app_thread_datagrams > 0,
        "requests went from the caller's thread: {stats:?}"
    );
    // A handle outliving its node does not keep the node's port bound.
    let handle = nodes[0].dlm();
    let port = addrs[&1];
    for n in nodes {
        n.leave().unwrap();
    }
    std::net::UdpSocket::bind(port).expect("the port is free again");
    drop(handle);
}

/// Every node joins lockspace `name`; returns once each sees all of them as
/// members and none is recovering.
fn join_everywhere(nodes: &[Node], name: &str) -> Vec<phalanx::node::Lockspace> {
    let spaces: Vec<_> = nodes
        .iter()
        .map(|n| n.dlm().lockspace(name).unwrap())
        .collect();
    wait_until("every node a member", Duration::from_secs(20), || {
        nodes.iter().all(|n| {
            n.dlm()
                .dump()
                .unwrap()
                .lockspaces
                .iter()
                .any(|(ls, m, recovering)| ls == name && m.len() == nodes.len() && !recovering)
        })
    });
    spaces
}

/// Locks on a resource mastered on node 2 from node 1, 50 times; returns the
/// nodes when `direct` (for the caller to look at), else stops them.
fn remote_master(addrs: &BTreeMap<u32, SocketAddr>, direct: bool) -> Vec<Node> {
    let _g = serial();
    let nodes = cluster_on(addrs, direct);
    let spaces = join_everywhere(&nodes, "remote");
    // Node 2 asks first and masters the resource; its NL lock keeps it so.
    let keep = spaces[1]
        .lock_wait(b"m", Mode::Nl, LockFlags::EMPTY, None)
        .unwrap();
    for _ in 0..50 {
        let g = spaces[0]
            .lock_wait(b"m", Mode::Ex, LockFlags::EMPTY, None)
            .unwrap();
        assert_eq!(g.completion.granted, Some(Mode::Ex));
        // Node 2's NOQUEUE PR is refused while node 1 holds EX.
        assert_eq!(
            spaces[1]
                .lock_wait(b"m", Mode::Pr, LockFlags::NOQUEUE, None)
                .unwrap_err(),
            DlmCallError::WouldBlock
        );
        spaces[0].unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
    }
    let dump = nodes[1].dlm().dump().unwrap();
    assert!(
        dump.mastered
            .iter()
            .any(|l| l.resource == "m" && l.node == 2),
        "node 2 masters m: {dump:?}"
    );
    spaces[1]
        .unlock_wait(keep.id, LockFlags::EMPTY, None)
        .unwrap();
    for s in spaces {
        s.leave().unwrap();
    }
    if direct {
        return nodes;
    }
    for n in nodes {
        n.leave().unwrap();
    }
    Vec::new()
}

/// One node's part of an AST-driven bounce: every notice runs on the node's
/// thread, where the callback unlocks a granted lock and asks again once
/// the unlock completed — no application thread.
struct AstBouncer {
    ls: phalanx::node::Lockspace,
    /// This bouncer's callback (holds a weak reference back).
    notify: std::sync::OnceLock<phalanx::node::Notify>,
    /// Set while any bouncer holds EX: two at once fails the test.
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    grants: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
    /// The lock's last call ended (unlocked after `stop`).
    done: std::sync::atomic::AtomicBool,
    /// What a callback could not do (checked by the test).
    errors: Mutex<Vec<String>>,
}

impl AstBouncer {
    fn new(
        ls: phalanx::node::Lockspace,
        held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::sync::Arc<AstBouncer> {
        let b = std::sync::Arc::new(AstBouncer {
            ls,
            notify: std::sync::OnceLock::new(),
            held,
            grants: Default::default(),
            stop: Default::default(),
            done: Default::default(),
            errors: Mutex::new(Vec::new()),
        });
        let weak = std::sync::Arc::downgrade(&b);
        let cb = move |n: DlmNotice| {
            if let Some(b) = weak.upgrade() {
                b.on_notice(n);
            }
        };
        let _ = b
            .notify
            .set(phalanx::node::Notify::Callback(std::sync::Arc::new(cb)));
        b
    }

    fn lock(&self) -> Result<(), DlmCallError> {
        let mut call = phalanx::node::LockCall::new(&b"hot"[..], Mode::Ex);
        call.notify = self.notify.get().cloned();
        call.bast = false;
        self.ls.lock_with(call).map(|_| ())
    }

    fn on_notice(&self, n: DlmNotice) {
        use std::sync::atomic::Ordering::SeqCst;
        let DlmNotice::Completion(c) = n else { return };
        let r = match c.status {
            Status::Granted => {
                if self.held.swap(true, SeqCst) {
                    let e = format!("two EX holders: {c:?}");
                    self.errors.lock().unwrap().push(e);
                }
                self.grants.fetch_add(1, SeqCst);
                // A blocking call from here is refused, not deadlocked.
                if self.ls.unlock_wait(c.lock, LockFlags::EMPTY, None)
                    != Err(DlmCallError::WouldDeadlock)
                {
                    self.errors.lock().unwrap().push("unlock_wait ran".into());
                }
                self.held.store(false, SeqCst);
                self.ls.unlock(c.lock, LockFlags::EMPTY, None)
            }
            Status::Unlocked if self.stop.load(SeqCst) => {
                self.done.store(true, SeqCst);
                Ok(())
            }
            Status::Unlocked => self.lock(),
            other => {
                self.errors.lock().unwrap().push(format!("{other:?}"));
                Ok(())
            }
        };
        if let Err(e) = r {
            self.errors.lock().unwrap().push(e.to_string());
        }
    }
}

/// Calls made by a notice callback on the node's own thread run (the Linux
/// DLM lets an AST routine lock and unlock): three nodes bounce EX between
/// them from callbacks alone, exclusion holds, every node is granted, and a
/// refused call from a callback is an error at once.
#[test]
fn callbacks_on_the_node_thread_lock_and_unlock() {
    for direct in [false, true] {
        let _g = serial();
        let nodes = cluster_on(&loopback_node_addrs(3), direct);
        let spaces = join_everywhere(&nodes, "ast");
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bouncers: Vec<_> = spaces
            .iter()
            .map(|ls| AstBouncer::new(ls.clone(), held.clone()))
            .collect();
        for b in &bouncers {
            b.lock().unwrap();
        }
        use std::sync::atomic::Ordering::SeqCst;
        wait_until("200 grants on every node", Duration::from_secs(30), || {
            bouncers.iter().all(|b| b.grants.load(SeqCst) >= 200)
        });
        for b in &bouncers {
            b.stop.store(true, SeqCst);
        }
        wait_until("every lock released", Duration::from_secs(10), || {
            bouncers.iter().all(|b| b.done.load(SeqCst))
        });
        for b in &bouncers {
            assert_eq!(*b.errors.lock().unwrap(), Vec::<String>::new());
        }
        // Nothing left behind in any lock table.
        for n in &nodes {
            assert!(n.dlm().dump().unwrap().own.is_empty());
        }
        // A refused call from a callback: an unknown lock, refused at once.
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ls = spaces[0].clone();
        let probe = phalanx::node::Notify::Callback(std::sync::Arc::new(move |n| {
            if let DlmNotice::Completion(c) = n
                && c.status == Status::Granted
            {
                let unknown = phalanx::dlm::LockId::from_raw(c.lock.get() + 1000);
                let _ = tx.send((
                    ls.unlock(unknown, LockFlags::EMPTY, None),
                    ls.unlock(c.lock, LockFlags::EMPTY, None),
                ));
            }
        }));
        let mut call = phalanx::node::LockCall::new(&b"probe"[..], Mode::Pr);
        call.notify = Some(probe);
        spaces[0].lock_with(call).unwrap();
        let (unknown, own) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(unknown, Err(DlmCallError::Lock(_))), "{unknown:?}");
        assert_eq!(own, Ok(()));
        drop(bouncers);
        for s in spaces {
            s.leave().unwrap();
        }
        for n in nodes {
            n.leave().unwrap();
        }
    }
}
