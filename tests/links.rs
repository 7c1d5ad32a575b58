//! Link fail-over for real: three node processes, each in its own network
//! namespace, each with two links — link 0 (IPv4) and link 1 (IPv6) — made of veth
//! pairs plugged into one bridge per link in a "hub" namespace. The test pulls
//! cables (`ip link set DEV down`) while the nodes send continuously, and checks
//! that the membership never changes, that every node keeps delivering every
//! message in order, that the links are reported down and traffic moves to link 1,
//! and that traffic fails back to link 0 when the cable returns. It prints the
//! measured fail-over (detection) times and the longest delivery gaps (from the
//! nodes' own timestamps).
//!
//! Needs root (network namespaces) and iproute2's `ip`; `.ci/run` installs it. It
//! fails — never skips — when either is missing.
//!
//! The nodes are `phalanxd` processes under the multi-process harness
//! (`tests/common/cluster.rs`), run under `ip netns exec` from a corosync.conf
//! the test writes (so the config keys `ring1_addr`, `link_mode`,
//! `knet_link_priority` are exercised end to end).

mod common;

use common::cluster::{Cluster, Observed, Observer, mono_ns};
use common::conf::{TestDir, corosync_conf};
use common::events::{Config, Event};
use common::netns::Namespaces;
use std::collections::BTreeMap;
use std::time::Duration;

const NODES: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Up,
    Down,
}

// ---------------------------------------------------------------- network

/// One hub bridge per link (`br<link>`) and a cable per node and link
/// (`h<node>l<link>` on the hub side, `e<link>` on the node side: link 0 IPv4
/// 10.77.0.<node>, link 1 IPv6 fd77:1::<node>).
fn links_net(tag: &str, n: u32) -> Namespaces {
    let net = Namespaces::create(tag, n);
    for l in 0..2 {
        net.bridge(&format!("br{l}"));
    }
    for i in 1..=n {
        net.plug(
            i,
            &format!("h{i}l0"),
            "br0",
            "e0",
            &format!("10.77.0.{i}/24"),
        );
        net.plug(
            i,
            &format!("h{i}l1"),
            "br1",
            "e1",
            &format!("fd77:1::{i}/64"),
        );
    }
    net
}

// ---------------------------------------------------------------- the model

/// What the test has seen of every node.
#[derive(Default)]
struct View {
    /// Configuration changes per node.
    configs: BTreeMap<u32, Vec<Config>>,
    /// Per node and sender: the next sequence number expected (gap-free order).
    next: BTreeMap<(u32, u32), u64>,
    delivered: BTreeMap<u32, u64>,
    /// Per node: time of its latest delivery, and the longest gap since `mark`.
    last_delivery: BTreeMap<u32, u64>,
    max_gap: BTreeMap<u32, Duration>,
    /// Per (node, peer, link): state and when the node saw it (mono ns).
    links: BTreeMap<(u32, u32, u8), (LinkState, u64)>,
    /// Link-down reports seen so far (any node, peer, link).
    downs: u64,
}

impl Observer for View {
    fn observe(&mut self, o: &Observed) {
        let (id, at) = (o.node, o.at);
        match &o.event {
            Event::Deliver(d) => {
                let (sender, (_, seq)) = (d.from, d.msg.expect("a message with a header"));
                assert!(d.intact, "node {id} delivered a damaged message: {d:?}");
                let next = self.next.entry((id, sender)).or_insert(seq);
                assert_eq!(
                    seq, *next,
                    "node {id} delivered {sender}:{seq}, expected {sender}:{next} (loss or reorder)"
                );
                *next += 1;
                *self.delivered.entry(id).or_default() += 1;
                if let Some(prev) = self.last_delivery.insert(id, at) {
                    let gap = Duration::from_nanos(at.saturating_sub(prev));
                    let m = self.max_gap.entry(id).or_default();
                    *m = (*m).max(gap);
                }
            }
            Event::Config(c) => self.configs.entry(id).or_default().push(c.clone()),
            Event::Link { peer, link, up } => {
                let s = if *up { LinkState::Up } else { LinkState::Down };
                let key = (id, *peer, *link);
                if s == LinkState::Down
                    && self
                        .links
                        .get(&key)
                        .is_some_and(|(o, _)| *o == LinkState::Up)
                {
                    self.downs += 1;
                }
                self.links.insert(key, (s, at));
            }
            _ => {}
        }
    }

    fn describe(&self) -> String {
        format!("configs {:?}; links {:?}", self.configs, self.links)
    }
}

/// The cluster and the test's model of it.
struct Run {
    c: Cluster,
    view: View,
}

impl Run {
    fn start(net: &Namespaces, dir: &TestDir, mode: &str) -> Run {
        let addrs: Vec<Vec<String>> = (1..=NODES)
            .map(|i| vec![format!("10.77.0.{i}"), format!("fd77:1::{i}")])
            .collect();
        let totem = format!(
            "    transport: knet\n    link_mode: {mode}\n    \
             interface {{\n        linknumber: 0\n        knet_link_priority: 1\n    }}\n    \
             interface {{\n        linknumber: 1\n        knet_link_priority: 0\n    }}\n"
        );
        let conf = dir.write_conf(&corosync_conf(dir, "links", &totem, &addrs, ""));
        let mut c = Cluster::start(&conf, 1..=NODES, Some(net));
        for id in 1..=NODES {
            // Link changes are timed: look every millisecond.
            c.send(id, "poll 1");
            // A message every 2 ms while operational, all agreed.
            c.send(id, "load 2 100 0");
        }
        Run {
            c,
            view: View::default(),
        }
    }

    /// Consumes node output until `done` holds; fails after `limit`.
    fn until(&mut self, what: &str, limit: Duration, done: impl FnMut(&View) -> bool) {
        self.c.until(&mut self.view, what, limit, done);
    }

    /// Reads every node's per-link transmit counters: (link 0, link 1).
    fn tx(&mut self) -> BTreeMap<u32, (u64, u64)> {
        let ids: Vec<u32> = (1..=NODES).collect();
        self.c
            .request_all(&mut self.view, &ids, "stats")
            .into_iter()
            .map(|(id, r)| {
                let tx: Vec<u64> = r.get("tx").split(',').map(|n| n.parse().unwrap()).collect();
                (id, (tx[0], tx[1]))
            })
            .collect()
    }

    fn link(&self, node: u32, peer: u32, link: u8) -> Option<(LinkState, u64)> {
        self.view.links.get(&(node, peer, link)).copied()
    }

    fn delivered(&self) -> u64 {
        self.view.delivered.values().copied().min().unwrap_or(0)
    }
}

/// Time from `from` to `to` (mono ns), zero if `to` is earlier.
fn since(to: u64, from: u64) -> Duration {
    Duration::from_nanos(to.saturating_sub(from))
}

fn all_links(v: &View, link: u8, state: LinkState, pairs: &[(u32, u32)]) -> bool {
    pairs.iter().all(|(a, b)| {
        v.links
            .get(&(*a, *b, link))
            .is_some_and(|(s, _)| *s == state)
    })
}

fn every_pair() -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for a in 1..=NODES {
        for b in (1..=NODES).filter(|b| *b != a) {
            v.push((a, b));
        }
    }
    v
}

#[test]
fn passive_link_down_fails_over_without_a_membership_change_and_fails_back() {
    exercise("passive");
}

#[test]
fn active_link_down_keeps_the_membership_and_traffic_on_the_other_link() {
    exercise("active");
}

fn exercise(mode: &str) {
    let net = links_net(&mode[..3], NODES);
    let dir = TestDir::new(&format!("links-{mode}"));
    let mut c = Run::start(&net, &dir, mode);
    let pairs = every_pair();

    c.until(
        "ring {1,2,3} and both links up everywhere",
        Duration::from_secs(20),
        |v| {
            (1..=NODES).all(|n| {
                v.configs
                    .get(&n)
                    .and_then(|c| c.iter().rev().find(|c| c.regular))
                    .is_some_and(|c| c.members == [1, 2, 3])
            }) && all_links(v, 0, LinkState::Up, &pairs)
                && all_links(v, 1, LinkState::Up, &pairs)
        },
    );
    let configs_before: Vec<usize> = (1..=NODES).map(|n| c.view.configs[&n].len()).collect();
    let txa = c.tx();
    let downs = c.view.downs;
    let d0 = c.delivered();
    c.until("traffic", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d0 + 300
    });
    let tx0 = c.tx();
    for n in 1..=NODES {
        let (l0, l1) = (tx0[&n].0 - txa[&n].0, tx0[&n].1 - txa[&n].1);
        assert!(l0 > 100, "node {n} sends on link 0: {txa:?} → {tx0:?}");
        if mode == "passive" && c.view.downs == downs {
            // Link 0 has the higher priority: link 1 carries nothing but pings
            // (unless a link flapped meanwhile, e.g. on a starved machine).
            assert_eq!(l1, 0, "node {n} sends on link 1 in passive mode");
        } else {
            assert!(l1 > 100, "node {n} sends on link 1 in active mode");
        }
    }
    c.view.max_gap.clear();

    // ---- Pull node 3's link-0 cable: 1–3 and 2–3 fail over to link 1; 1–2 stays.
    let cut = mono_ns();
    net.set_hub_link("h3l0", false);
    let three: Vec<(u32, u32)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| *a == 3 || *b == 3)
        .collect();
    c.until("link 0 to/from node 3 down", Duration::from_secs(10), |v| {
        all_links(v, 0, LinkState::Down, &three)
    });
    let detect: Vec<Duration> = three
        .iter()
        .map(|(a, b)| since(c.link(*a, *b, 0).unwrap().1, cut))
        .collect();
    let d1 = c.delivered();
    c.until("traffic over link 1", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d1 + 500
    });
    assert!(
        matches!(c.link(1, 2, 0), Some((LinkState::Up, _))),
        "1–2 keeps link 0"
    );
    let tx1 = c.tx();
    assert!(
        tx1[&3].1 > tx0[&3].1 + 100,
        "node 3 sends on link 1 now: {tx0:?} → {tx1:?}"
    );
    let gap_cable = c.view.max_gap.values().copied().max().unwrap();
    eprintln!(
        "{mode}: cable pulled: link down detected after {:?} (max {:?}); longest delivery gap {gap_cable:?}",
        detect,
        detect.iter().max().unwrap()
    );

    // ---- Plug it back: fail-back to link 0.
    // From the moment the kernel has the cable running at both ends.
    net.set_hub_link("h3l0", true);
    let plug = mono_ns();
    c.until(
        "link 0 to/from node 3 up again",
        Duration::from_secs(10),
        |v| all_links(v, 0, LinkState::Up, &three),
    );
    let back = three
        .iter()
        .map(|(a, b)| since(c.link(*a, *b, 0).unwrap().1, plug))
        .max()
        .unwrap();
    let tx2 = c.tx();
    let d2 = c.delivered();
    c.until("traffic after fail-back", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d2 + 500
    });
    let tx3 = c.tx();
    assert!(
        tx3[&3].0 > tx2[&3].0 + 100,
        "node 3 sends on link 0 again: {tx2:?} → {tx3:?}"
    );
    eprintln!("{mode}: cable plugged: link up again after {back:?}");

    // ---- Switch link 0 off entirely: every pair fails over.
    c.view.max_gap.clear();
    let off = mono_ns();
    net.set_hub_link("br0", false);
    c.until("link 0 down everywhere", Duration::from_secs(10), |v| {
        all_links(v, 0, LinkState::Down, &pairs)
    });
    let detect_all = pairs
        .iter()
        .map(|(a, b)| since(c.link(*a, *b, 0).unwrap().1, off))
        .max()
        .unwrap();
    let d3 = c.delivered();
    c.until("traffic with link 0 off", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d3 + 500
    });
    let gap_switch = c.view.max_gap.values().copied().max().unwrap();
    eprintln!(
        "{mode}: link 0 switched off: all pairs down after {detect_all:?}; longest delivery gap {gap_switch:?}"
    );
    net.set_hub_link("br0", true);
    c.until("link 0 up everywhere again", Duration::from_secs(10), |v| {
        all_links(v, 0, LinkState::Up, &pairs)
    });
    let d4 = c.delivered();
    c.until("traffic at the end", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d4 + 200
    });

    // Not one configuration change through all of it.
    let configs_after: Vec<usize> = (1..=NODES).map(|n| c.view.configs[&n].len()).collect();
    assert_eq!(
        configs_before, configs_after,
        "membership changed: {:?}",
        c.view.configs
    );
    drop(c);
    drop(dir);
}
