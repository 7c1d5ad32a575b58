//! The arbitrator as a real process on loopback TCP, with four node-side clients
//! (the real TCP driver, one thread and one connection each) for a 4-node cluster
//! split 2/2: exactly one side gets the vote, and that stays true while the
//! arbitrator is killed with SIGKILL and restarted, and through a hand-over.
//!
//! Every vote change of every client is checked, under one lock, the moment it
//! happens (the driver reports a dropped vote before it tells the arbitrator), so
//! "never two rings hold the vote" is checked at every change, not sampled.

mod common;

use common::wait::{Deadline, wait_until};
use phalanx::quorum::qdevice::client::{ClientConfig, ClientEvent};
use phalanx::quorum::{Algorithm, NodeId, TieBreaker};
use phalanx::quorum_client::{DriverConfig, QdeviceDriver};
use phalanx::totem::RingId;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LEASE_MS: &str = "1000";

#[derive(Default)]
struct Observed {
    votes: BTreeMap<NodeId, RingId>,
    violations: Vec<String>,
    changes: u64,
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phalanx-qnetd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_key(dir: &Path) -> (PathBuf, Vec<u8>) {
    use std::os::unix::fs::PermissionsExt;
    let key: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let p = dir.join("authkey");
    std::fs::write(&p, &key).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    (p, key)
}

/// Starts the arbitrator on `listen`; returns it and the address it bound, or None
/// if it exited (e.g. the port is not free yet).
fn start_qnetd(listen: &str, key: &Path) -> Option<(Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phalanx-qnetd"))
        .args(["-l", listen, "--lease-ms", LEASE_MS, "-c"])
        .arg(format!("alpha={}", key.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn phalanx-qnetd");
    let mut line = String::new();
    // The first line names the address; EOF means it exited.
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    match line.trim().strip_prefix("phalanx-qnetd listening on ") {
        Some(a) if read.is_ok() => Some((child, a.to_string())),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// Restarts on the same address, retrying while the old socket lingers (bounded).
fn restart_qnetd(addr: &str, key: &Path) -> Child {
    let deadline = Deadline::after(format!("a rebind of {addr}"), Duration::from_secs(20));
    loop {
        if let Some((c, a)) = start_qnetd(addr, key) {
            assert_eq!(a, addr);
            return c;
        }
        deadline.check(String::new);
    }
}

fn holders(obs: &Mutex<Observed>) -> BTreeMap<NodeId, RingId> {
    obs.lock().unwrap().votes.clone()
}

#[test]
fn split_2_2_one_side_votes_across_arbitrator_restarts() {
    let dir = tempdir("split");
    let (keyfile, key) = write_key(&dir);
    let (mut qnetd, addr) = start_qnetd("127.0.0.1:0", &keyfile).expect("qnetd starts");
    let obs = Arc::new(Mutex::new(Observed::default()));
    let mut drivers = BTreeMap::new();
    for node in 1..=4u32 {
        let client = ClientConfig {
            cluster: b"alpha".to_vec(),
            node,
            key: key.clone(),
            algorithm: Algorithm::Ffsplit,
            tie_breaker: TieBreaker::Lowest,
            config_nodes: vec![1, 2, 3, 4],
            confirm_release: false,
        };
        let o = obs.clone();
        let d = QdeviceDriver::start(DriverConfig::new(&addr, client), move |ev| {
            if let ClientEvent::Vote { ring, cast } = ev {
                let mut o = o.lock().unwrap();
                o.changes += 1;
                if *cast {
                    o.votes.insert(node, *ring);
                } else {
                    o.votes.remove(&node);
                }
                let rings: BTreeSet<RingId> = o.votes.values().copied().collect();
                if rings.len() > 1 {
                    let v = format!("votes for several rings: {:?}", o.votes);
                    o.violations.push(v);
                }
            }
        })
        .unwrap();
        drivers.insert(node, d);
    }
    let ring_a = RingId { seq: 8, rep: 1 };
    let ring_b = RingId { seq: 8, rep: 3 };
    for n in [1, 2] {
        drivers[&n].set_membership(ring_a, vec![1, 2]);
    }
    for n in [3, 4] {
        drivers[&n].set_membership(ring_b, vec![3, 4]);
    }
    let side_a: BTreeMap<NodeId, RingId> = [(1, ring_a), (2, ring_a)].into();
    wait_until("side {1,2} holds the vote", Duration::from_secs(20), || {
        holders(&obs) == side_a
    });

    for round in 0..3 {
        qnetd.kill().unwrap(); // SIGKILL
        qnetd.wait().unwrap();
        wait_until(
            "clients notice the arbitrator is gone",
            Duration::from_secs(20),
            || drivers.values().all(|d| !d.is_connected()),
        );
        // Whatever happens during the outage, only side A may hold (checked at every
        // change by the observer).
        qnetd = restart_qnetd(&addr, &keyfile);
        wait_until("clients reconnect", Duration::from_secs(20), || {
            drivers.values().all(|d| d.is_connected())
        });
        wait_until(
            &format!("round {round}: side {{1,2}} holds the vote again"),
            Duration::from_secs(20),
            || holders(&obs) == side_a,
        );
    }

    // A long outage: the leases run out (every vote lapses), then the restarted
    // arbitrator gives the vote to the same side again.
    qnetd.kill().unwrap();
    qnetd.wait().unwrap();
    wait_until("every lease lapses", Duration::from_secs(20), || {
        holders(&obs).is_empty()
    });
    qnetd = restart_qnetd(&addr, &keyfile);
    wait_until(
        "side {1,2} holds the vote after the lapse",
        Duration::from_secs(20),
        || holders(&obs) == side_a,
    );

    // Hand-over: side A falls apart into quarters; side B (a half) must get the vote,
    // after A's votes are taken back.
    drivers[&1].set_membership(RingId { seq: 12, rep: 1 }, vec![1]);
    drivers[&2].set_membership(RingId { seq: 12, rep: 2 }, vec![2]);
    let side_b: BTreeMap<NodeId, RingId> = [(3, ring_b), (4, ring_b)].into();
    wait_until("side {3,4} holds the vote", Duration::from_secs(20), || {
        holders(&obs) == side_b
    });

    // And across one more arbitrator restart.
    qnetd.kill().unwrap();
    qnetd.wait().unwrap();
    qnetd = restart_qnetd(&addr, &keyfile);
    wait_until("clients reconnect", Duration::from_secs(20), || {
        drivers.values().all(|d| d.is_connected())
    });
    wait_until("side {3,4} still holds", Duration::from_secs(20), || {
        holders(&obs) == side_b
    });

    let o = obs.lock().unwrap();
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    assert!(
        o.changes >= 4,
        "too few vote changes observed: {}",
        o.changes
    );
    drop(o);
    drop(drivers);
    let _ = qnetd.kill();
    let _ = qnetd.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_key_gets_no_vote() {
    let dir = tempdir("badkey");
    let (keyfile, _key) = write_key(&dir);
    let (mut qnetd, addr) = start_qnetd("127.0.0.1:0", &keyfile).expect("qnetd starts");
    let refused = Arc::new(Mutex::new(Vec::new()));
    let r = refused.clone();
    let client = ClientConfig {
        cluster: b"alpha".to_vec(),
        node: 1,
        key: vec![0xAB; 64],
        algorithm: Algorithm::Lms,
        tie_breaker: TieBreaker::Lowest,
        config_nodes: vec![1],
        confirm_release: false,
    };
    let d = QdeviceDriver::start(DriverConfig::new(&addr, client), move |ev| {
        r.lock().unwrap().push(ev.clone());
    })
    .unwrap();
    d.set_membership(RingId { seq: 4, rep: 1 }, vec![1]);
    wait_until(
        "the client rejects the arbitrator's proof",
        Duration::from_secs(20),
        || {
            refused
                .lock()
                .unwrap()
                .contains(&ClientEvent::ProtocolError)
        },
    );
    assert_eq!(d.vote(), None);
    assert!(!d.is_connected());
    drop(d);
    let _ = qnetd.kill();
    let _ = qnetd.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn command_line_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_phalanx-qnetd"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&["--help"]).0, Some(0));
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("at least one -c"), "{err}");
    let (code, err) = run(&["-c", "alpha"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("NAME=KEYFILE"), "{err}");
    let (code, err) = run(&["-c", "alpha=/nonexistent/key"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/key"), "{err}");
    let dir = tempdir("cli");
    let (keyfile, _) = write_key(&dir);
    let k = format!("alpha={}", keyfile.display());
    let (code, err) = run(&["-c", &k, "--lease-ms", "5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--lease-ms"), "{err}");
    let (code, err) = run(&["-c", &k, "-l", "not-an-address"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not-an-address"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn heuristics_outweigh_the_tie_breaker() {
    let dir = tempdir("heur");
    let (keyfile, key) = write_key(&dir);
    let (mut qnetd, addr) = start_qnetd("127.0.0.1:0", &keyfile).expect("qnetd starts");
    let votes = Arc::new(Mutex::new(BTreeMap::<NodeId, RingId>::new()));
    let mut drivers = BTreeMap::new();
    for node in 1..=4u32 {
        let client = ClientConfig {
            cluster: b"alpha".to_vec(),
            node,
            key: key.clone(),
            algorithm: Algorithm::Ffsplit,
            tie_breaker: TieBreaker::Lowest,
            config_nodes: vec![1, 2, 3, 4],
            confirm_release: false,
        };
        let mut cfg = DriverConfig::new(&addr, client);
        // Node 1's check fails: its side loses the tie despite holding the lowest id.
        cfg.heuristics = vec![if node == 1 {
            "exit 1".into()
        } else {
            "true".into()
        }];
        let v = votes.clone();
        let d = QdeviceDriver::start(cfg, move |ev| {
            if let ClientEvent::Vote { ring, cast } = ev {
                let mut v = v.lock().unwrap();
                if *cast {
                    v.insert(node, *ring);
                } else {
                    v.remove(&node);
                }
            }
        })
        .unwrap();
        drivers.insert(node, d);
    }
    let (a, b) = (RingId { seq: 8, rep: 1 }, RingId { seq: 8, rep: 3 });
    drivers[&1].set_membership(a, vec![1, 2]);
    drivers[&2].set_membership(a, vec![1, 2]);
    drivers[&3].set_membership(b, vec![3, 4]);
    drivers[&4].set_membership(b, vec![3, 4]);
    let want: BTreeMap<NodeId, RingId> = [(3, b), (4, b)].into();
    wait_until("side {3,4} holds the vote", Duration::from_secs(20), || {
        *votes.lock().unwrap() == want
    });
    drop(drivers);
    let _ = qnetd.kill();
    let _ = qnetd.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
