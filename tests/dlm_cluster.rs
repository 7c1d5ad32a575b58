//! The DLM for real: three `phalanxd` processes on loopback with votequorum and
//! the real `fence_phalanx_kill` agent; each runs `dlm-hammer` (two threads
//! taking, converting and releasing locks at random on 100 resources of one
//! lockspace). Node 3 takes EX on five of them (`dlm-hold`) and is killed with
//! `kill -9` while it holds them and its workers' locks; the quorate
//! side fences it through the agent and recovers the lockspace.
//!
//! Checked from every process's lines (one host, one monotonic clock): a lock is
//! relied on from its `dlm_grant` to its `dlm_release`, node 3's locks held at
//! its death until node 3's fencing is recorded (the earliest survivor's
//! `dlm_fenced at=`: when its fence decision reported node 3 fenced since its
//! loss, after the agent's `fence_result state=done`) — and no two incompatible such
//! intervals overlap on any resource. So no two incompatible grants at once, and
//! nothing node 3 held was granted to a waiter before its fencing was recorded.
//! Also: node 3 did hold locks, waiters on them were granted after the fencing,
//! and the survivors made progress after recovery. The kill runs twice: lock
//! traffic point-to-point (`dlm { lock_traffic: direct }`, the default) and on
//! the ring (`ring`); the survivors' counters show which path it took.
//!
//! Needs `sh` for the agent; fails, never skips.

mod common;

use common::cluster::{Cluster, Observed, Observer, mono_ns, ms};
use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::events::Event;
use common::recorder::write_pid_files;
use phalanx::dlm::Mode;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents")
}

fn sections(dir: &TestDir) -> String {
    format!(
        "quorum {{\n    provider: corosync_votequorum\n}}\n\
         fencing {{\n    agent_dir: {agents}\n    device {{\n        id: kill\n        \
         agent: fence_phalanx_kill\n        pidfile_dir: {pids}\n        \
         pcmk_host_list: n1 n2 n3\n    }}\n}}\n",
        agents = agent_dir().display(),
        pids = dir.path.display(),
    )
}

/// One interval in which a process relied on a lock.
#[derive(Clone, Debug)]
struct Held {
    node: u32,
    lock: u64,
    mode: Mode,
    from: u64,
    to: Option<u64>,
}

/// Keeps the DLM lines, quorum and fencing results.
#[derive(Default)]
struct Model {
    /// Per resource, every interval.
    held: BTreeMap<String, Vec<Held>>,
    /// Open intervals: (node, lock) → (resource, index).
    open: BTreeMap<(u32, u64), (String, usize)>,
    grants: BTreeMap<u32, u64>,
    quorate: BTreeMap<u32, Vec<u32>>,
    /// Earliest `fence_result state=done target=nN` per target node.
    fenced_at: BTreeMap<u32, u64>,
    fenced_seen: BTreeMap<u32, Vec<u32>>,
    /// Earliest time a survivor's node thread learned the target fenced
    /// (`dlm_fenced at=`: the fence decision's notice, stamped on the node's
    /// thread before any completion that follows from it).
    dlm_fenced_at: BTreeMap<u32, u64>,
    errors: Vec<String>,
    grants_after_fence: BTreeMap<u32, u64>,
}

fn mode(name: &str) -> Mode {
    let v = ["NL", "CR", "CW", "PR", "PW", "EX"]
        .iter()
        .position(|m| *m == name)
        .unwrap_or_else(|| panic!("mode {name}"));
    Mode::try_from(v as i32).unwrap()
}

impl Observer for Model {
    fn observe(&mut self, o: &Observed) {
        match &o.event {
            Event::Quorum(q) if q.quorate => {
                self.quorate.insert(o.node, q.members.clone());
            }
            Event::Service { kind, fields } => match kind.as_str() {
                "dlm_grant" => {
                    let res = fields["res"].clone();
                    let lock: u64 = fields["lock"].parse().unwrap();
                    let list = self.held.entry(res.clone()).or_default();
                    list.push(Held {
                        node: o.node,
                        lock,
                        mode: mode(&fields["mode"]),
                        from: o.at,
                        to: None,
                    });
                    self.open.insert((o.node, lock), (res, list.len() - 1));
                    *self.grants.entry(o.node).or_default() += 1;
                    if !self.dlm_fenced_at.is_empty() {
                        *self.grants_after_fence.entry(o.node).or_default() += 1;
                    }
                }
                "dlm_release" => {
                    let lock: u64 = fields["lock"].parse().unwrap();
                    if let Some((res, i)) = self.open.remove(&(o.node, lock)) {
                        self.held.get_mut(&res).unwrap()[i].to = Some(o.at);
                    }
                }
                "dlm_error" => self.errors.push(format!(
                    "n{}: {} {}",
                    o.node, fields["op"], fields["reason"]
                )),
                "fence_result" if fields["state"] == "done" => {
                    let target: u32 = fields["target"][1..].parse().unwrap();
                    self.fenced_at.entry(target).or_insert(o.at);
                }
                "dlm_fenced" => {
                    let node: u32 = fields["node"].parse().unwrap();
                    let at: u64 = fields["at"].parse().unwrap();
                    let e = self.dlm_fenced_at.entry(node).or_insert(at);
                    *e = (*e).min(at);
                }
                "fence_fenced" => {
                    let node: u32 = fields["node"].parse().unwrap();
                    self.fenced_seen.entry(node).or_default().push(o.node);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn describe(&self) -> String {
        format!(
            "grants {:?}, after fence {:?}, fenced {:?}, errors {:?}",
            self.grants, self.grants_after_fence, self.fenced_at, self.errors
        )
    }
}

/// Lock traffic point-to-point over the links (the default).
#[test]
fn locks_stay_exclusive_through_a_kill_and_are_released_only_after_fencing() {
    kill_test("dlm-kill", "direct");
}

/// The same with every lock message an agreed CPG message.
#[test]
fn over_the_ring_locks_stay_exclusive_through_a_kill_and_are_released_only_after_fencing() {
    kill_test("dlm-kill-ring", "ring");
}

fn kill_test(tag: &str, lock_traffic: &str) {
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(3);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        tag,
        "",
        &one_link(&addrs),
        &format!(
            "{}dlm {{\n    lock_traffic: {lock_traffic}\n}}\n",
            sections(&dir)
        ),
    ));
    let mut m = Model::default();
    let mut cluster = Cluster::start(&conf, 1..=3, None);
    cluster.until(&mut m, "all 3 quorate", Duration::from_secs(20), |m| {
        (1..=3).all(|n| m.quorate.get(&n).is_some_and(|q| q == &[1, 2, 3]))
    });
    write_pid_files(&dir.path, &cluster, &[1, 2, 3]);
    let seed = mono_ns();
    eprintln!("seed {seed}");
    for n in 1..=3u32 {
        let cmd = format!("dlm-hammer ls 100 {} 2", seed.wrapping_add(u64::from(n)));
        let r = cluster.request(&mut m, n, &cmd);
        assert!(r.ok, "node {n}: {r:?}");
    }
    cluster.until(
        &mut m,
        "200 grants on every node",
        Duration::from_secs(30),
        |m| (1..=3).all(|n| m.grants.get(&n).copied().unwrap_or(0) >= 200),
    );
    // Node 3 takes EX on five resources the others' workers will want; whoever
    // asks for them waits until node 3 is fenced.
    for r in 0..5 {
        let reply = cluster.request(&mut m, 3, &format!("dlm-hold ls r{r} EX"));
        assert!(reply.ok, "{reply:?}");
    }
    let killed_at = cluster.kill9(3);
    // Lines node 3 printed before dying still come; they end with its Eof.
    cluster.until_ended(&mut m, 3, 0);
    let held_by_3: Vec<(String, Held)> = m
        .held
        .iter()
        .flat_map(|(r, l)| l.iter().map(move |h| (r.clone(), h.clone())))
        .filter(|(_, h)| h.node == 3 && h.to.is_none())
        .collect();
    assert!(
        !held_by_3.is_empty(),
        "node 3 held no lock when killed: the test would prove nothing"
    );
    cluster.until(
        &mut m,
        "node 3 fenced and 200 grants on each survivor since",
        Duration::from_secs(30),
        |m| {
            m.fenced_seen
                .get(&3)
                .is_some_and(|s| s.contains(&1) && s.contains(&2))
                && (1..=2).all(|n| m.grants_after_fence.get(&n).copied().unwrap_or(0) >= 200)
        },
    );
    let answers = cluster.request_all(&mut m, &[1, 2], "dlm-hammer-stop");
    for (n, r) in &answers {
        assert!(r.ok, "node {n}: {r:?}");
    }
    // The lock traffic took the configured path (the survivors' counters).
    for (n, st) in cluster.request_all(&mut m, &[1, 2], "status") {
        let count = |k: &str| st.get(k).parse::<u64>().expect(k);
        let (ring, direct) = (count("dlm_ring_sent"), count("dlm_direct_sent"));
        eprintln!(
            "node {n}: {ring} DLM messages on the ring, {direct} records sent and {} \
             received point-to-point, {} held for a view",
            count("dlm_direct_received"),
            count("dlm_held_for_view")
        );
        match lock_traffic {
            "direct" => assert!(direct > 0 && count("dlm_direct_received") > 0, "node {n}"),
            _ => assert_eq!(direct, 0, "node {n}"),
        }
        // Recovery (and with `ring`, everything) goes on the ring.
        assert!(ring > 0, "node {n}");
    }
    cluster.leave(&mut m, &[1, 2]);
    assert!(m.errors.is_empty(), "unexpected DLM errors: {:?}", m.errors);

    // The fencing is recorded when a survivor's fence decision reports node 3
    // fenced since its loss (after the agent ran and the result was agreed); the
    // stamp is taken on the node's thread before any grant that follows from it.
    let fenced_at = m.dlm_fenced_at[&3];
    assert!(fenced_at > killed_at, "fenced before the kill?");
    eprintln!(
        "kill at 0 ms, fencing recorded at {:.1} ms (fence_result line at {:.1} ms); \
         node 3 held {} locks",
        ms(fenced_at - killed_at),
        ms(m.fenced_at[&3] - killed_at),
        held_by_3.len()
    );
    // Node 3's intervals end when its fencing is recorded.
    for list in m.held.values_mut() {
        for h in list.iter_mut().filter(|h| h.node == 3 && h.to.is_none()) {
            h.to = Some(fenced_at);
        }
    }
    // Signed milliseconds since the kill.
    let rel = |t: u64| (t as i64 - killed_at as i64) as f64 / 1e6;
    // No two incompatible intervals overlap.
    let mut pairs = 0u64;
    for (res, list) in &m.held {
        for (i, a) in list.iter().enumerate() {
            let a_to = a.to.expect("every survivor lock released at stop");
            for b in &list[i + 1..] {
                let b_to = b.to.unwrap();
                if a.mode.is_compatible(b.mode) || (a.node == b.node && a.lock == b.lock) {
                    continue;
                }
                pairs += 1;
                let overlap = a.from < b_to && b.from < a_to;
                assert!(
                    !overlap,
                    "{res}: node {} lock {} {:?} [{:.3}..{:.3}] ms and node {} lock {} {:?} \
                     [{:.3}..{:.3}] ms overlap (kill at 0, fencing recorded at {:.3})",
                    a.node,
                    a.lock,
                    a.mode,
                    rel(a.from),
                    rel(a_to),
                    b.node,
                    b.lock,
                    b.mode,
                    rel(b.from),
                    rel(b_to),
                    ms(fenced_at - killed_at)
                );
            }
        }
    }
    // Node 3's locks were wanted, incompatibly, after its death: they were
    // granted to others, all after the fencing (the overlap check above).
    let handed_over = held_by_3
        .iter()
        .filter(|(res, h3)| {
            m.held[res]
                .iter()
                .any(|h| h.node != 3 && h.from > killed_at && !h.mode.is_compatible(h3.mode))
        })
        .count();
    eprintln!(
        "{pairs} incompatible pairs checked; {handed_over} of node 3's locks handed over \
         after fencing; grants {:?}",
        m.grants
    );
    assert!(
        handed_over > 0,
        "no survivor took a resource node 3 held: the fencing gate went untested"
    );
}

/// What the restart test watches: which processes were granted anything.
#[derive(Default)]
struct Grants {
    /// (node, incarnation) → grants.
    by_process: BTreeMap<(u32, u32), u64>,
    quorate: BTreeMap<u32, Vec<u32>>,
}

impl Observer for Grants {
    fn observe(&mut self, o: &Observed) {
        match &o.event {
            Event::Quorum(q) if q.quorate => {
                self.quorate.insert(o.node, q.members.clone());
            }
            Event::Service { kind, .. } if kind == "dlm_grant" => {
                *self.by_process.entry((o.node, o.incarnation)).or_default() += 1;
            }
            _ => {}
        }
    }

    fn describe(&self) -> String {
        format!("grants {:?}, quorate {:?}", self.by_process, self.quorate)
    }
}

/// Every process dies holding locks, so no process that saw a lock held is
/// left to remember it (docs/dlm.md, "A process that restarts unclean"). Each
/// node is a simulated host (`--boot-id-file`); each restarted process finds
/// its predecessor's marker of the same boot, and is fenced — by the real
/// agent, which gives its host a new boot id — before any lockspace forms: a
/// lock asked of one of them is never granted. The processes started after
/// their fencing start clean and lock what the first ones held.
#[test]
fn processes_restarted_after_a_crash_are_fenced_before_any_lockspace_forms() {
    use std::os::unix::process::ExitStatusExt;
    let tag = "dlm-marker";
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(3);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        tag,
        "",
        &one_link(&addrs),
        &sections(&dir),
    ));
    let mut m = Grants::default();
    let mut cluster = Cluster::start_hosts(&conf, 1..=3, None, Some(&dir.path));
    cluster.until(&mut m, "all 3 quorate", Duration::from_secs(20), |m| {
        (1..=3).all(|n| m.quorate.get(&n).is_some_and(|q| q == &[1, 2, 3]))
    });
    write_pid_files(&dir.path, &cluster, &[1, 2, 3]);
    for n in 1..=3u32 {
        let r = cluster.request(&mut m, n, &format!("dlm-hold ls r{n} EX"));
        assert!(r.ok, "node {n}: {r:?}");
        assert!(dir.path.join(format!("dlm-active-{n}")).exists());
    }
    for n in 1..=3u32 {
        cluster.kill9(n);
        cluster.until_ended(&mut m, n, 0);
    }
    m.quorate.clear();
    for n in 1..=3u32 {
        cluster.spawn(n);
    }
    write_pid_files(&dir.path, &cluster, &[1, 2, 3]);
    // Node 1's second process asks for what node 3's first process held.
    let asked = cluster.ask(1, "dlm-hold ls r3 EX");
    // Each second process is fenced; whichever node's is gone is started
    // again (a power-cycled host: a new boot id, so it starts clean) and
    // helps fence the rest.
    let mut fenced = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while fenced.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "second processes fenced: {fenced:?}; {}",
            m.describe()
        );
        cluster.observe_for(&mut m, Duration::from_millis(100));
        for n in 1..=3u32 {
            if fenced.contains(&n) || !cluster.ended(n, 1) {
                continue;
            }
            let status = cluster.wait_exit(n);
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "node {n}'s second process ended otherwise: {status:?}"
            );
            assert!(
                dir.path.join(format!("n{n}.boot_id")).exists(),
                "the agent gave node {n}'s host a new boot id"
            );
            fenced.insert(n);
            cluster.spawn(n);
            write_pid_files(&dir.path, &cluster, &[n]);
        }
    }
    assert!(
        cluster.answer(asked).is_none(),
        "node 1's second process was answered: {:?}",
        cluster.answer(asked)
    );
    for n in 1..=3u32 {
        assert_eq!(
            m.by_process.get(&(n, 1)),
            None,
            "node {n}'s second process was granted a lock before its fencing"
        );
    }
    // The third processes started clean: they form the lockspace and take
    // what the first ones held.
    for n in 1..=3u32 {
        let r = cluster.request(&mut m, n, &format!("dlm-hold ls r{} EX", n % 3 + 1));
        assert!(r.ok, "node {n}: {r:?}");
    }
    for n in 1..=3u32 {
        assert_eq!(m.by_process.get(&(n, 2)), Some(&1), "{}", m.describe());
    }
}
