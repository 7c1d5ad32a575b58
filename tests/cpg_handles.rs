//! The CPG handles of a running node, in one process (nodes on loopback): request
//! errors (Busy while a join is in flight), self delivery, the fd + `dispatch`
//! loop, stale 64-bit handles, `mcast_wait` under a flood, callback members,
//! PROCDOWN of a dropped handle.
//!
//! The tests take turns (a lock): each starts its own nodes, and several clusters
//! at once on a small machine would only test the scheduler.

mod common;

use common::conf::loopback_node_addrs;

use common::wait::{Deadline, wait_until};
use phalanx::cpg::{CpgError, CpgEvent, Guarantee, MemberId, Reason};
use phalanx::node::{CallbackMember, CpgMember, DispatchMode, Node, NodeOptions};
use phalanx::totem::Config;
use phalanx::util::handle_table::HandleError;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` nodes on free loopback ports, `tweak`ed, in one ring.
fn cluster(n: u32, tweak: impl Fn(&mut NodeOptions)) -> Vec<Node> {
    let addrs = loopback_node_addrs(n);
    let ids: Vec<u32> = (1..=n).collect();
    let nodes: Vec<Node> = ids
        .iter()
        .map(|id| {
            let mut o = NodeOptions::new(Config::new(*id, ids.clone()), addrs.clone());
            tweak(&mut o);
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

/// Events from `rx` until `want` matches one (returned); fails after 10 s.
fn next_matching(
    rx: &crossbeam_channel::Receiver<CpgEvent>,
    what: &str,
    mut want: impl FnMut(&CpgEvent) -> bool,
) -> CpgEvent {
    let deadline = Deadline::after(what, Duration::from_secs(10));
    loop {
        match rx.recv_timeout(deadline.remaining()) {
            Ok(ev) if want(&ev) => return ev,
            Ok(_) => {}
            Err(e) => panic!("no {what}: {e}"),
        }
    }
}

/// Waits for the view of `group` that lists `who` in `joined`.
fn joined(m: &CpgMember, group: &[u8], who: MemberId) -> Vec<MemberId> {
    let ev = next_matching(m.events(), "join view", |ev| {
        matches!(ev, CpgEvent::Change(c) if c.group.as_bytes() == group
            && c.joined.iter().any(|j| j.member == who))
    });
    let CpgEvent::Change(c) = ev else {
        unreachable!()
    };
    c.members
}

fn poll_readable(fd: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
    r == 1 && p.revents & libc::POLLIN != 0
}

#[test]
fn join_leave_and_mcast_errors() {
    let _s = serial();
    let nodes = cluster(1, |o| o.cpg.max_message_size = 4096);
    let cpg = nodes[0].cpg();
    let m = cpg.member().unwrap();

    assert_eq!(m.join(&[b'x'; 129]), Err(CpgError::NameTooLong(129)));
    assert_eq!(m.join(b""), Err(CpgError::NameTooLong(0)));
    assert_eq!(m.leave(&[b'x'; 129]), Err(CpgError::NameTooLong(129)));
    m.join(&[b'x'; 128]).expect("a 128-byte name is allowed");
    assert_eq!(joined(&m, &[b'x'; 128], m.id()), vec![m.id()]);

    assert_eq!(
        m.mcast(b"g", Guarantee::Agreed, b"hi"),
        Err(CpgError::NotExist),
        "mcast to a group not joined"
    );
    assert_eq!(
        m.leave(b"g"),
        Err(CpgError::NotExist),
        "leave a group not joined"
    );
    m.join(b"g").unwrap();
    assert_eq!(m.join(b"g"), Err(CpgError::Exist), "join while joining");
    assert_eq!(joined(&m, b"g", m.id()), vec![m.id()]);
    assert_eq!(m.join(b"g"), Err(CpgError::Exist), "join when joined");
    assert!(matches!(
        m.mcast(b"g", Guarantee::Agreed, &[0; 4097]),
        Err(CpgError::TooLarge {
            size: 4097,
            max: 4096
        })
    ));
    m.mcast(b"g", Guarantee::Agreed, &[7; 4096])
        .expect("a maximal message is accepted");

    m.leave(b"g").unwrap();
    let ev = next_matching(
        m.events(),
        "leave view",
        |ev| matches!(ev, CpgEvent::Change(c) if c.group.as_bytes() == b"g" && !c.left.is_empty()),
    );
    let CpgEvent::Change(c) = ev else {
        unreachable!()
    };
    assert_eq!(c.left.len(), 1);
    assert_eq!(
        (c.left[0].member, c.left[0].reason),
        (m.id(), Reason::Leave)
    );
    assert!(c.members.is_empty());
    assert_eq!(m.leave(b"g"), Err(CpgError::NotExist), "leave twice");
    assert_eq!(
        m.mcast(b"g", Guarantee::Agreed, b"hi"),
        Err(CpgError::NotExist),
        "mcast after leaving"
    );
    assert!(cpg.membership(b"g").is_empty());
    assert_eq!(cpg.membership(&[b'x'; 128]), vec![m.id()]);
}

#[test]
fn self_delivery_and_a_callback_member_on_another_node() {
    let _s = serial();
    let nodes = cluster(2, |_| {});
    let a = nodes[0].cpg().member().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let b = nodes[1]
        .cpg()
        .member_with_callback(move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();
    // The callback thread consumes the member's events: the receiver is empty.
    a.join(b"g").unwrap();
    joined(&a, b"g", a.id());
    b.join(b"g").unwrap();
    let ev = next_matching(
        &rx,
        "b's join view (callback)",
        |ev| matches!(ev, CpgEvent::Change(c) if c.joined.iter().any(|j| j.member == b.id())),
    );
    let CpgEvent::Change(c) = ev else {
        unreachable!()
    };
    let both = {
        let mut v = vec![a.id(), b.id()];
        v.sort();
        v
    };
    assert_eq!(c.members, both, "the initial membership, delivered on join");
    assert_eq!(joined(&a, b"g", b.id()), both);
    assert_eq!(nodes[1].cpg().membership(b"g"), both);
    assert!(
        nodes[0]
            .cpg()
            .groups()
            .iter()
            .any(|g| g.name.as_bytes() == b"g" && g.members == both)
    );

    for i in 0..20u32 {
        let g = if i % 2 == 0 {
            Guarantee::Agreed
        } else {
            Guarantee::Safe
        };
        a.mcast(b"g", g, &i.to_le_bytes()).unwrap();
    }
    for (who, events) in [("a (self delivery)", a.events()), ("b (callback)", &rx)] {
        for i in 0..20u32 {
            let ev = next_matching(events, who, |ev| matches!(ev, CpgEvent::Deliver(_)));
            let CpgEvent::Deliver(d) = ev else {
                unreachable!()
            };
            assert_eq!(d.sender, a.id(), "{who}");
            assert_eq!(&d.data[..], &i.to_le_bytes(), "{who}: order");
            let want = if i % 2 == 0 {
                Guarantee::Agreed
            } else {
                Guarantee::Safe
            };
            assert_eq!(d.guarantee, want, "{who}");
        }
    }
    assert!(b.events().is_empty(), "the callback thread took b's events");
}

#[test]
fn a_stopped_callback_gets_nothing_more_and_the_member_keeps_its_events() {
    let _s = serial();
    let nodes = cluster(1, |_| {});
    let (tx, rx) = crossbeam_channel::unbounded();
    let with_callback = nodes[0]
        .cpg()
        .member_with_callback(move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();
    with_callback.join(b"g").unwrap();
    next_matching(&rx, "the join view (callback)", |ev| {
        matches!(ev, CpgEvent::Change(_))
    });
    with_callback
        .mcast(b"g", Guarantee::Agreed, b"before")
        .unwrap();
    next_matching(
        &rx,
        "the message before the stop",
        |ev| matches!(ev, CpgEvent::Deliver(d) if &d.data[..] == b"before"),
    );

    let member = with_callback.stop();
    // The thread has ended: the sender its callback captured is dropped.
    while rx.try_recv().is_ok() {}
    assert_eq!(
        rx.try_recv(),
        Err(crossbeam_channel::TryRecvError::Disconnected)
    );
    // Still a member of g: the next message waits in its own stream.
    member.mcast(b"g", Guarantee::Agreed, b"after").unwrap();
    let ev = next_matching(member.events(), "the message after the stop", |ev| {
        matches!(ev, CpgEvent::Deliver(_))
    });
    let CpgEvent::Deliver(d) = ev else {
        unreachable!()
    };
    assert_eq!(&d.data[..], b"after");
}

#[test]
fn a_callback_member_dropped_inside_its_callback_ends_and_goes_down() {
    let _s = serial();
    let nodes = cluster(1, |_| {});
    let cpg = nodes[0].cpg();
    let observer = cpg.member().unwrap();
    observer.join(b"g").unwrap();
    joined(&observer, b"g", observer.id());

    let slot: Arc<Mutex<Option<CallbackMember>>> = Arc::new(Mutex::new(None));
    let own = slot.clone();
    let (calls_tx, calls) = crossbeam_channel::unbounded();
    // Held while the member is stored, so the callback finds it there.
    let mut stored = slot.lock().unwrap();
    let with_callback = cpg
        .member_with_callback(move |ev| {
            let deliver = matches!(ev, CpgEvent::Deliver(_));
            calls_tx.send(ev).unwrap();
            if deliver {
                // The guard's drop cannot wait for its own thread: it must
                // return, and the thread end after this call.
                drop(own.lock().unwrap().take());
            }
        })
        .unwrap();
    let id = with_callback.id();
    with_callback.join(b"g").unwrap();
    *stored = Some(with_callback);
    drop(stored);
    joined(&observer, b"g", id);
    for i in 0..10u8 {
        observer.mcast(b"g", Guarantee::Agreed, &[i]).unwrap();
    }

    let ev = next_matching(
        observer.events(),
        "the PROCDOWN of the dropped callback member",
        |ev| matches!(ev, CpgEvent::Change(c) if !c.left.is_empty()),
    );
    let CpgEvent::Change(c) = ev else {
        unreachable!()
    };
    assert_eq!((c.left[0].member, c.left[0].reason), (id, Reason::ProcDown));
    assert!(slot.lock().unwrap().is_none());
    // One message reached the callback, then its thread ended (the callback
    // and its sender dropped) although nine more were delivered to the group.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        match calls.recv_deadline(deadline) {
            Ok(ev) => seen.push(ev),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the callback thread did not end: {e}"),
        }
    }
    let delivered = seen
        .iter()
        .filter(|ev| matches!(ev, CpgEvent::Deliver(_)))
        .count();
    assert_eq!(delivered, 1, "{seen:?}");
}

#[test]
fn fd_becomes_readable_and_dispatch_drains() {
    let _s = serial();
    let nodes = cluster(1, |_| {});
    let m = nodes[0].cpg().member().unwrap();
    let fd = m.fd();
    assert!(
        !poll_readable(fd, Duration::ZERO),
        "readable before any event"
    );
    assert_eq!(m.dispatch(DispatchMode::All, |_| {}), 0);

    m.join(b"g").unwrap();
    assert!(
        poll_readable(fd, Duration::from_secs(10)),
        "readable after the join"
    );
    let mut first = Vec::new();
    assert_eq!(m.dispatch(DispatchMode::One, |ev| first.push(ev)), 1);
    assert!(
        matches!(&first[0], CpgEvent::Change(c) if c.joined.iter().any(|j| j.member == m.id())),
        "the join view: {first:?}"
    );
    assert!(!poll_readable(fd, Duration::ZERO), "drained, yet readable");

    for i in 0..5u8 {
        m.mcast(b"g", Guarantee::Agreed, &[i]).unwrap();
    }
    wait_until("five deliveries queued", Duration::from_secs(10), || {
        m.events().len() >= 5
    });
    let queued = m.events().len();
    assert!(poll_readable(fd, Duration::ZERO));
    let mut got = Vec::new();
    assert_eq!(m.dispatch(DispatchMode::One, |ev| got.push(ev)), 1);
    assert!(
        poll_readable(fd, Duration::ZERO),
        "events remain after dispatch(One): the fd stays readable"
    );
    let rest = m.dispatch(DispatchMode::All, |ev| got.push(ev));
    assert!(
        rest >= queued - 1,
        "dispatch(All) handled {rest} of {queued}"
    );
    let data: Vec<u8> = got
        .iter()
        .filter_map(|ev| match ev {
            CpgEvent::Deliver(d) => Some(d.data[0]),
            _ => None,
        })
        .collect();
    assert_eq!(data, vec![0, 1, 2, 3, 4]);
    assert!(!poll_readable(fd, Duration::ZERO), "drained, yet readable");
    assert_eq!(m.dispatch(DispatchMode::All, |_| {}), 0);
    assert_eq!(m.dispatch(DispatchMode::One, |_| {}), 0);
}

#[test]
fn stale_handles_are_refused_and_a_dropped_member_is_procdown() {
    let _s = serial();
    let nodes = cluster(2, |_| {});
    let observer = nodes[1].cpg().member().unwrap();
    observer.join(b"g").unwrap();
    joined(&observer, b"g", observer.id());

    let cpg = nodes[0].cpg();
    let m = cpg.member().unwrap();
    let id = m.id();
    let h = m.handle();
    assert_ne!(h, 0);
    m.join(b"g").unwrap();
    joined(&observer, b"g", id);

    let again = cpg.member_by_handle(h).expect("a live handle");
    assert_eq!(again.id(), id);
    assert!(matches!(
        cpg.member_by_handle(h ^ (1 << 40)),
        Err(HandleError::Stale)
    ));
    drop(m);
    // Not the last clone: still a member, still reachable by its handle.
    assert_eq!(cpg.member_by_handle(h).unwrap().id(), id);
    drop(again);
    assert!(
        matches!(cpg.member_by_handle(h), Err(HandleError::Stale)),
        "a dropped member's handle is refused"
    );
    let other = cpg.member().unwrap();
    assert_ne!(other.handle(), h, "handles are not reused");
    assert!(matches!(cpg.member_by_handle(h), Err(HandleError::Stale)));

    let ev = next_matching(
        observer.events(),
        "the PROCDOWN",
        |ev| matches!(ev, CpgEvent::Change(c) if !c.left.is_empty()),
    );
    let CpgEvent::Change(c) = ev else {
        unreachable!()
    };
    assert_eq!(c.left.len(), 1);
    assert_eq!((c.left[0].member, c.left[0].reason), (id, Reason::ProcDown));
    assert_eq!(c.members, vec![observer.id()]);
    assert_eq!(nodes[1].cpg().membership(b"g"), vec![observer.id()]);
}

#[test]
fn mcast_wait_makes_progress_under_a_flood() {
    let _s = serial();
    const PER_THREAD: u32 = 2000;
    let nodes = cluster(2, |o| {
        o.cpg.send_queue_messages = 16;
        o.cpg.send_queue_bytes = 64 << 10;
    });
    let s = nodes[0].cpg().member().unwrap();
    let r = nodes[1].cpg().member().unwrap();
    s.join(b"flood").unwrap();
    joined(&s, b"flood", s.id());
    r.join(b"flood").unwrap();
    joined(&r, b"flood", r.id());
    joined(&s, b"flood", r.id());

    // The queue really fills: plain mcast answers TryAgain.
    let mut plain = 0u32;
    let deadline = Deadline::after("TryAgain from a filling queue", Duration::from_secs(10));
    loop {
        match s.mcast(b"flood", Guarantee::Agreed, &[0xff; 1024]) {
            Ok(()) => plain += 1,
            Err(CpgError::TryAgain) => break,
            Err(e) => panic!("mcast: {e}"),
        }
        deadline.check(|| format!("{plain} messages accepted"));
    }

    // Two threads, one member (handles are Clone + Send + Sync), mcast_wait only.
    let t0 = Instant::now();
    let threads: Vec<_> = (0..2u8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let mut data = vec![t; 1024];
                    data[1..5].copy_from_slice(&i.to_le_bytes());
                    let g = if i % 8 == 0 {
                        Guarantee::Safe
                    } else {
                        Guarantee::Agreed
                    };
                    s.mcast_wait(b"flood", g, &data, None)
                        .expect("mcast_wait never lets TryAgain through");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let sending = t0.elapsed();

    // Every message reaches the other node, in each thread's order.
    let (tx, rx) = mpsc::channel();
    let r_events = r.events().clone();
    std::thread::spawn(move || {
        let mut next = [0u32; 2];
        let mut plain_seen = 0u32;
        let deadline = Deadline::after("every flood message", Duration::from_secs(20));
        while next != [PER_THREAD; 2] {
            let Ok(ev) = r_events.recv_timeout(deadline.remaining()) else {
                let _ = tx.send(Err(format!("stalled at {next:?}")));
                return;
            };
            if let CpgEvent::Deliver(d) = ev {
                if d.data[0] == 0xff {
                    plain_seen += 1;
                    continue;
                }
                let t = usize::from(d.data[0]);
                let i = u32::from_le_bytes(d.data[1..5].try_into().unwrap());
                if i != next[t] {
                    let _ = tx.send(Err(format!("thread {t}: got {i}, expected {}", next[t])));
                    return;
                }
                next[t] += 1;
            }
        }
        let _ = tx.send(Ok(plain_seen));
    });
    let plain_seen = rx
        .recv_timeout(Duration::from_secs(25))
        .expect("receiver finished")
        .unwrap();
    assert_eq!(
        plain_seen, plain,
        "the plain mcasts accepted before TryAgain"
    );
    eprintln!(
        "flood: TryAgain after {plain} plain mcasts; {} mcast_wait calls in {sending:?}, all delivered in order",
        2 * PER_THREAD
    );
}

#[test]
fn requests_in_flight_are_busy() {
    let _s = serial();
    // Node 2 is configured but never started and the token timeout is long: node 1
    // forms no ring for seconds, so its requests stay in flight meanwhile.
    let addrs = loopback_node_addrs(2);
    let totem = Config::new(1, vec![1, 2]).with_token_timeout(Duration::from_secs(10));
    let node = Node::start(NodeOptions::new(totem, addrs)).unwrap();
    let m = node.cpg().member().unwrap();
    m.join(b"g").unwrap();
    assert_eq!(m.leave(b"g"), Err(CpgError::Busy), "leave while joining");
    assert_eq!(m.join(b"g"), Err(CpgError::Exist), "join while joining");
    m.mcast(b"g", Guarantee::Agreed, b"early")
        .expect("a joining member may multicast");
    assert!(
        !node.handle().is_operational(),
        "the node formed a ring already: the requests above were not in flight"
    );
}
