//! Partition and heal, many times, for real: three `phalanxd` processes, each in
//! its own network namespace on one bridge. Each cycle pulls node 3's cable
//! (split {1,2} | {3}), waits for both sides' new configurations, plugs it back
//! and waits for the merged configuration of all three. It counts, per heal and
//! node, the regular configurations the node installed from the heal up to and
//! including the merged one (1 = a clean heal; more = the ring re-formed on the
//! way), and prints their histogram and the cycle times.
//!
//! `PHALANX_HEAL_CYCLES` sets the number of cycles (default 5, so the default
//! test run stays short); `PHALANX_HEAL_SETTLE_MS` lets the split sides run that
//! long before each heal (default 0: heal as soon as both sides have their
//! configurations), so configurations the split causes late are not counted as
//! the heal's; `PHALANX_HEAL_VERBOSE` prints every node's configurations per heal. It asserts only what must hold however many
//! configurations a heal takes: every heal ends with the three nodes in one ring
//! of all three, every node delivers one message from each node, and nodes that
//! deliver a message in the same ring deliver it at the same position (the
//! nodes' order hashes).
//!
//! Needs root (network namespaces) and iproute2's `ip`; fails, never skips,
//! without them.

mod common;

use common::cluster::{Cluster, Observed, Observer, mono_ns, ms};
use common::conf::{TestDir, corosync_conf, one_link};
use common::events::{Config, Event, Ring};
use common::netns::Namespaces;
use std::collections::BTreeMap;
use std::time::Duration;

const NODES: u32 = 3;
const ALL: [u32; 3] = [1, 2, 3];

/// What the test has seen of every node.
#[derive(Default)]
struct View {
    /// Regular configurations per node, in order, with when they were installed.
    regular: BTreeMap<u32, Vec<(u64, Config)>>,
    /// Per node: the ring it is in (its latest configuration, regular or not).
    ring: BTreeMap<u32, Ring>,
    /// (ring, text) → per node, (count, order hash) at its delivery.
    delivered: BTreeMap<(Ring, String), BTreeMap<u32, (u64, u64)>>,
}

impl Observer for View {
    fn observe(&mut self, o: &Observed) {
        match &o.event {
            Event::Config(c) => {
                self.ring.insert(o.node, c.ring);
                if c.regular {
                    self.regular
                        .entry(o.node)
                        .or_default()
                        .push((o.at, c.clone()));
                }
            }
            Event::Deliver(d) => {
                assert!(d.intact, "node {} delivered a damaged message", o.node);
                if let (Some(text), Some(ring)) = (&d.text, self.ring.get(&o.node)) {
                    let seen = self.delivered.entry((*ring, text.clone())).or_default();
                    let before = seen.insert(o.node, (d.count, d.order));
                    assert!(before.is_none(), "node {} delivered {text} twice", o.node);
                }
            }
            _ => {}
        }
    }

    fn describe(&self) -> String {
        let latest: BTreeMap<u32, Option<(Ring, &Vec<u32>)>> = self
            .regular
            .iter()
            .map(|(n, v)| (*n, v.last().map(|(_, c)| (c.ring, &c.members))))
            .collect();
        // Where each node is now (a transitional configuration counts) and what it
        // delivered in which ring: what a timeout needs to be understood.
        let delivered: BTreeMap<&String, Vec<(Ring, Vec<&u32>)>> =
            self.delivered
                .iter()
                .fold(BTreeMap::new(), |mut m, ((ring, text), by)| {
                    m.entry(text)
                        .or_default()
                        .push((*ring, by.keys().collect()));
                    m
                });
        let recent: Vec<_> = delivered.iter().rev().take(6).collect();
        format!(
            "latest regular configurations {latest:?}; current rings {:?}; latest texts delivered (ring, by) {recent:?}",
            self.ring
        )
    }
}

impl View {
    /// The latest regular configuration of node `n`.
    fn latest(&self, n: u32) -> Option<&Config> {
        self.regular.get(&n).and_then(|v| v.last()).map(|(_, c)| c)
    }

    /// Every node of each side has, as its latest regular configuration, exactly
    /// that side; and the nodes of a side share the ring.
    fn sides(&self, sides: &[&[u32]]) -> bool {
        sides.iter().all(|side| {
            let rings: Vec<Option<Ring>> = side
                .iter()
                .map(|&n| {
                    self.latest(n)
                        .filter(|c| c.members == *side)
                        .map(|c| c.ring)
                })
                .collect();
            rings[0].is_some() && rings.iter().all(|r| *r == rings[0])
        })
    }

    /// Regular configurations installed so far, per node.
    fn marks(&self) -> BTreeMap<u32, usize> {
        ALL.iter()
            .map(|&n| (n, self.regular.get(&n).map_or(0, Vec::len)))
            .collect()
    }
}

/// One bridge, one cable per node (`h<node>` on the hub side, `e0` with
/// 10.81.0.<node> on the node side).
fn heal_net() -> Namespaces {
    let net = Namespaces::create("heal", NODES);
    net.bridge("br0");
    for i in 1..=NODES {
        net.plug(i, &format!("h{i}"), "br0", "e0", &format!("10.81.0.{i}/24"));
    }
    if std::env::var_os("PHALANX_HEAL_STATIC_NEIGH").is_some() {
        static_neighbours(&net);
    }
    net
}

/// PHALANX_HEAL_STATIC_NEIGH: permanent ARP entries for every peer, so that a
/// re-plugged cable needs no neighbour resolution (the kernel flushes dynamic
/// entries on carrier loss and holds the first datagrams to a peer until it
/// answers ARP, in each direction independently): an experiment that separates
/// the protocol's heal from the kernel's.
fn static_neighbours(net: &Namespaces) {
    let mac = |i: u32| {
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &net.nodes[i as usize - 1],
                "-br",
                "link",
                "show",
                "e0",
            ])
            .output()
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC in {text:?}"))
            .to_string()
    };
    for i in 1..=NODES {
        for j in (1..=NODES).filter(|j| *j != i) {
            common::netns::ip(&[
                "-n",
                &net.nodes[i as usize - 1],
                "neigh",
                "replace",
                &format!("10.81.0.{j}"),
                "lladdr",
                &mac(j),
                "dev",
                "e0",
                "nud",
                "permanent",
            ]);
        }
    }
}

/// Environment variable `name` as a number, `default` when unset.
fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}")),
        Err(_) => default,
    }
}

/// `value: count` lines, ascending by value.
fn histogram(values: &[usize]) -> String {
    let mut h: BTreeMap<usize, usize> = BTreeMap::new();
    for v in values {
        *h.entry(*v).or_default() += 1;
    }
    h.iter()
        .map(|(v, n)| format!("    {v} configuration(s): {n}\n"))
        .collect()
}

/// Mean and maximum, in ms.
fn summary(ns: &[u64]) -> String {
    let max = ns.iter().copied().max().unwrap_or(0);
    let mean = ns.iter().sum::<u64>() / ns.len().max(1) as u64;
    format!("mean {:.0} ms, max {:.0} ms", ms(mean), ms(max))
}

#[test]
fn partition_and_heal_cycles_end_in_one_ring_with_one_order() {
    let k = env_number("PHALANX_HEAL_CYCLES", 5);
    let settle = Duration::from_millis(env_number("PHALANX_HEAL_SETTLE_MS", 0));
    let net = heal_net();
    let dir = TestDir::new("heal");
    let addrs: Vec<String> = (1..=NODES).map(|i| format!("10.81.0.{i}")).collect();
    let conf = dir.write_conf(&corosync_conf(&dir, "heal", "", &one_link(&addrs), ""));
    let mut c = Cluster::start(&conf, ALL, Some(&net));
    let mut v = View::default();
    let limit = Duration::from_secs(20);
    c.until(&mut v, "a ring of all three", limit, |v| v.sides(&[&ALL]));

    // Per (heal, node): regular configurations from the heal to the merged ring.
    let mut per_node: Vec<usize> = Vec::new();
    let mut worst: Vec<usize> = Vec::new();
    // Per (cycle, node): regular configurations installed while settling.
    let mut settle_extra: Vec<usize> = Vec::new();
    let (mut split_ns, mut heal_ns, mut cycle_ns) = (Vec::new(), Vec::new(), Vec::new());
    for cycle in 0..k {
        let t0 = mono_ns();
        net.set_hub_link("h3", false);
        c.until(&mut v, "both sides' configurations", limit, |v| {
            v.sides(&[&[1, 2], &[3]])
        });
        let t_sides = mono_ns();
        // Optionally let the split sides run a while before the heal, so that
        // configurations the split causes late are told from those of the heal.
        let settled = v.marks();
        c.observe_for(&mut v, settle);
        let marks = v.marks();
        settle_extra.extend(ALL.iter().map(|n| marks[n] - settled[n]));
        let t_plug = mono_ns();
        net.set_hub_link("h3", true);
        c.until(&mut v, "the merged configuration", limit, |v| {
            v.sides(&[&ALL])
        });
        let t_heal = mono_ns();
        let merged = v.latest(1).unwrap().ring;
        let counts: Vec<usize> = ALL.iter().map(|n| v.regular[n].len() - marks[n]).collect();
        per_node.extend(&counts);
        worst.push(counts.iter().copied().max().unwrap());

        // One message from each node, ordered alike everywhere in the merged ring.
        let texts: Vec<String> = ALL.iter().map(|n| format!("c{cycle}-n{n}")).collect();
        for (n, text) in ALL.iter().zip(&texts) {
            c.send(*n, &format!("mcast agreed {text}"));
        }
        // Delivered by every node, in whichever ring: a machine-wide pause longer
        // than the token (the nodes log "process pause detected") re-forms the
        // ring of all three after the delivery, and the current ring then has none.
        c.until(&mut v, "every message delivered everywhere", limit, |v| {
            texts.iter().all(|t| {
                ALL.iter().all(|&n| {
                    v.delivered
                        .iter()
                        .any(|((_, x), by)| x == t && by.contains_key(&n))
                })
            })
        });
        for t in &texts {
            // Per ring the message was delivered in: one (count, hash) for all.
            for ((ring, _), at) in v.delivered.iter().filter(|((_, x), _)| x == t) {
                let first = at.values().next().unwrap();
                assert!(
                    at.values().all(|x| x == first),
                    "cycle {cycle}: {t} delivered at different positions of ring {ring:?}: {at:?}"
                );
            }
        }
        let rings: Vec<Ring> = ALL.iter().map(|n| v.latest(*n).unwrap().ring).collect();
        assert!(
            rings.iter().all(|r| *r == rings[0]) && v.latest(1).unwrap().members == ALL,
            "cycle {cycle}: not one ring of all three at the end: {}",
            v.describe()
        );
        if rings[0] != merged {
            eprintln!(
                "cycle {cycle}: the ring changed again after the merge: {merged:?} → {:?}",
                rings[0]
            );
        }
        split_ns.push(t_sides - t0);
        heal_ns.push(t_heal - t_plug);
        cycle_ns.push(mono_ns() - t0);
        if std::env::var_os("PHALANX_HEAL_VERBOSE").is_some() {
            let installed: Vec<String> = ALL
                .iter()
                .map(|n| {
                    let cs: Vec<String> = v.regular[n][marks[n]..]
                        .iter()
                        .map(|(at, c)| {
                            let at = ms(at.saturating_sub(t_plug));
                            format!("{}.{} {:?} @{at:.0}ms", c.ring.0, c.ring.1, c.members)
                        })
                        .collect();
                    format!("n{n}: {}", cs.join(", "))
                })
                .collect();
            eprintln!(
                "cycle {cycle}: split {:.0} ms, heal {:.0} ms; after the heal {}",
                ms(t_sides - t0),
                ms(t_heal - t_plug),
                installed.join("; ")
            );
        }
    }
    eprintln!(
        "{k} partition/heal cycles: split detected {}; merged {}; whole cycle {}\n\
         regular configurations installed from a heal to the merged ring, per node and heal \
         ({} samples):\n{}per heal, the most any node installed ({k} heals):\n{}",
        summary(&split_ns),
        summary(&heal_ns),
        summary(&cycle_ns),
        per_node.len(),
        histogram(&per_node),
        histogram(&worst)
    );
    if !settle.is_zero() {
        eprintln!(
            "regular configurations installed in the {settle:?} between the split's \
             configurations and the heal, per node and cycle:\n{}",
            histogram(&settle_extra)
        );
    }
}
