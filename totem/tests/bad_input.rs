//! Random and mutated datagrams fed to a node in a running ring: never a panic,
//! counted as dropped, and the ring keeps ordering afterwards.

use phalanx_totem::testing::MemNet;
use phalanx_totem::wire::{self, Message};
use phalanx_totem::{Config, Guarantee, Time};

/// xorshift64*: enough randomness for a test, and reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn formed_ring() -> MemNet {
    let mut net = MemNet::new(3, Config::new);
    net.capture = true;
    assert!(net.run_until_formed(200_000), "ring did not form");
    // Some traffic so that every message type has been captured.
    for i in 0..50u32 {
        let g = if i % 3 == 0 {
            Guarantee::Safe
        } else {
            Guarantee::Agreed
        };
        net.nodes[(i % 3) as usize]
            .mcast(net.now, g, &i.to_le_bytes().repeat(i as usize % 700))
            .unwrap();
    }
    assert!(net.run_until(200_000, |n| n.delivered.iter().all(|d| *d == 50)));
    net
}

#[test]
fn garbage_is_counted_and_dropped_without_changing_state() {
    let mut net = formed_ring();
    let ring = net.nodes[0].ring_id();
    let captured = std::mem::take(&mut net.captured);
    assert!(!captured.is_empty());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let before = net.nodes[0].stats().rx_malformed;
    let mut fed = 0u64;
    for _ in 0..20_000 {
        let mut d = match rng.below(3) {
            0 => (0..rng.below(300))
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>(),
            1 => {
                let mut d = captured[rng.below(captured.len() as u64) as usize].clone();
                let cut = rng.below(d.len() as u64) as usize;
                d.truncate(cut);
                d
            }
            _ => {
                let mut d = captured[rng.below(captured.len() as u64) as usize].clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(d.len() as u64) as usize;
                    d[i] ^= 1 << rng.below(8);
                }
                d
            }
        };
        // A flip that happens to leave a valid datagram is not garbage: skip it.
        if wire::decode(&d).is_ok() {
            d.clear();
        }
        net.nodes[0].handle_datagram(net.now, &d);
        fed += 1;
    }
    assert_eq!(net.nodes[0].stats().rx_malformed - before, fed);
    assert_eq!(
        net.nodes[0].ring_id(),
        ring,
        "garbage changed the membership"
    );
    assert!(net.nodes[0].is_operational());
    // The ring still orders.
    net.nodes[0]
        .mcast(net.now, Guarantee::Safe, b"after")
        .unwrap();
    assert!(net.run_until(100_000, |n| n.delivered.iter().all(|d| *d == 51)));
    assert_eq!(net.nodes[0].ring_id(), ring);
}

#[test]
fn well_formed_but_mutated_messages_never_panic_and_the_ring_recovers() {
    let mut net = formed_ring();
    let captured = std::mem::take(&mut net.captured);
    let mut rng = Rng(7);
    let mut mutated = 0;
    for _ in 0..5_000 {
        let d = &captured[rng.below(captured.len() as u64) as usize];
        let Ok(mut dg) = wire::decode(d) else {
            continue;
        };
        // Mutate one field of the decoded message, then re-encode with a valid
        // checksum: the core must cope with any well-formed lie.
        let v = rng.next();
        match &mut dg.message {
            Message::Token(t) => match v % 6 {
                0 => t.seq = v,
                1 => t.aru = v >> (v % 64),
                2 => t.token_seq = v,
                3 => t.rtr = (0..(v % 64)).map(|i| i.wrapping_mul(v) % 1000).collect(),
                4 => t.ring.seq ^= 1,
                _ => t.fcc = v as u32,
            },
            Message::Mcast(m) => match v % 4 {
                0 => m.seq = v % 100_000,
                1 => m.payload.iter_mut().for_each(|b| *b = v as u8),
                2 => m.payload.truncate((v % 40) as usize),
                _ => m.ring.seq = v,
            },
            Message::Join(j) => match v % 3 {
                0 => j.ring_seq = v,
                1 => j.failed = vec![1 + (v % 3) as u32],
                _ => j.procs = vec![1, 2, 3, 4],
            },
            Message::Commit(c) => c.ring.seq = v,
            Message::MergeDetect { ring }
            | Message::HoldCancel { ring }
            | Message::Leave { ring } => ring.seq = v % 50,
        }
        dg.sender = 1 + (v % 4) as u32;
        let mut out = Vec::new();
        wire::encode(dg.sender, &dg.message, &mut out);
        let target = (v % 3) as usize;
        net.nodes[target].handle_datagram(net.now, &out);
        mutated += 1;
        // Let the ring react (possibly re-forming) between lies.
        for _ in 0..rng.below(50) {
            net.step();
        }
    }
    assert!(mutated > 1000);
    // Whatever happened, the cluster converges again and delivers in order.
    let formed = net.run_until_formed(2_000_000);
    if !formed {
        for n in &net.nodes {
            eprintln!("{:?} {}", n, n.debug_token_state());
        }
    }
    assert!(formed, "ring did not re-form after mutated input");
    let base: Vec<u64> = net.delivered.clone();
    net.nodes[1]
        .mcast(net.now, Guarantee::Agreed, b"still ordering")
        .unwrap();
    let ok = net.run_until(200_000, |n| {
        n.delivered.iter().zip(&base).all(|(d, b)| *d == b + 1)
    });
    if !ok {
        for n in &net.nodes {
            eprintln!("{:?} {}", n, n.debug_token_state());
        }
    }
    assert!(ok);
}

/// Found by the `totem_node` fuzz target: a token of the current ring whose
/// rotation counter (`token_seq`) is `u64::MAX` passed every check and overflowed
/// when the node counted the rotation on forwarding. It is now refused as invalid.
#[test]
fn a_token_with_an_exhausted_rotation_counter_is_invalid() {
    let mut net = formed_ring();
    let ring = net.nodes[0].ring_id();
    let (sender, mut token) = net
        .captured
        .iter()
        .rev()
        .find_map(|d| match wire::decode(d) {
            Ok(wire::Datagram {
                sender,
                message: Message::Token(t),
            }) => Some((sender, t)),
            _ => None,
        })
        .expect("a token was captured");
    token.token_seq = u64::MAX;
    let mut forged = Vec::new();
    wire::encode(sender, &Message::Token(token), &mut forged);
    // Every node but the sender (which drops its own datagrams as such).
    for i in (0..3).filter(|i| *i as u32 + 1 != sender) {
        let before = net.nodes[i].stats().tokens_invalid;
        net.nodes[i].handle_datagram(net.now, &forged);
        assert_eq!(
            net.nodes[i].stats().tokens_invalid,
            before + 1,
            "node index {i}"
        );
    }
    // The ring still orders, on the same membership.
    net.nodes[1]
        .mcast(net.now, Guarantee::Agreed, b"after")
        .unwrap();
    assert!(net.run_until(100_000, |n| n.delivered.iter().all(|d| *d == 51)));
    assert_eq!(net.nodes[0].ring_id(), ring);
}

/// Found by the `stack_input` fuzz target (`data/forged-commit-hang.bin`, its input):
/// joins and a commit token forged from two peers made node 1 install a ring whose
/// commit entries claimed an old-ring high sequence near 2^40, and installing it
/// walked every number up to there, one by one (a hang of hours from one datagram).
/// The walk now ends at the highest stored frame. The datagrams are fed to a node
/// as the Stack feeds them: records `ctl | len u16 | bytes`, from the node
/// `(ctl >> 1) & 3` on link `ctl & 1`, CRC fixed up when `ctl & 8`; the Stack drops
/// those from an unknown address (node 0), on a link it lacks (1) or that are link
/// pings (`"PL"`), so they are skipped here.
#[test]
fn a_forged_commit_token_cannot_make_recovery_walk_to_its_high_sequence() {
    let (node, fed) = replay_stack_input(include_bytes!("data/forged-commit-hang.bin"));
    assert!(fed >= 10, "the recorded datagrams reached the node ({fed})");
    // It got as far as installing the forged ring (where it used to hang).
    assert!(node.stats().recoveries >= 1);
}

/// The 2026-12-07 campaign's `stack_input` crash: a forged token of the new ring
/// reached node 1, the new ring's representative, in RECOVERY before node 1 had
/// started that ring's token; node 1 took it (its sequence, 198, then stood above
/// the token it started, a `debug_assert` in the test build; sequence numbers
/// reassigned without one). The representative now refuses a token of its new
/// ring it has not started.
#[test]
fn a_token_of_the_new_ring_before_its_representative_started_it_is_invalid() {
    let (node, fed) = replay_stack_input(include_bytes!("data/forged-early-token.bin"));
    assert!(fed >= 5, "the recorded datagrams reached the node ({fed})");
    assert!(node.stats().recoveries >= 1, "it entered recovery");
    assert!(
        node.stats().tokens_invalid >= 1,
        "the early token was refused"
    );
}

/// The campaign's second `stack_input` crash: in a ring of node 1 alone, a
/// forged token whose rotation counter was one short of exhausted passed the
/// checks; the token a one-node ring hands itself back (a held token released)
/// does not go through them, and the next forward overflowed the counter. Such
/// a token is now dropped by the visit itself.
#[test]
fn a_one_node_ring_drops_a_token_whose_rotation_counter_is_exhausted() {
    let (node, fed) = replay_stack_input(include_bytes!("data/forged-token-seq-one-node.bin"));
    assert!(fed >= 1, "the recorded datagrams reached the node ({fed})");
    assert!(
        node.stats().tokens_invalid >= 1,
        "the exhausted token was refused"
    );
}

/// Feeds node 1 (of 1, 2, 3) the totem datagrams of a `stack_input` fuzz input
/// (`fuzz/fuzz_targets/stack_input.rs`: records of a control byte, a length and
/// the bytes; checksum fixed up with bit 3; from a known node's address and link
/// 0 with bits 1-2 and 0), 7 ms apart, timers run: the node and how many
/// datagrams it was given.
fn replay_stack_input(input: &[u8]) -> (phalanx_totem::Totem, usize) {
    let mut node = phalanx_totem::Totem::new(
        Config::new(1, vec![1, 2, 3]),
        None,
        Time::ZERO,
        Default::default(),
    )
    .unwrap();
    let mut now = Time::ZERO;
    let mut rest = &input[1..];
    let mut fed = 0;
    while let [ctl, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
        let mut d = tail[..len].to_vec();
        rest = &tail[len..];
        if ctl & 8 != 0 && d.len() >= 4 {
            let n = d.len() - 4;
            let crc = crc32c::crc32c(&d[..n]);
            d[n..].copy_from_slice(&crc.to_le_bytes());
        }
        if (ctl >> 1) & 3 != 0 && ctl & 1 == 0 && !d.starts_with(b"PL") {
            node.handle_datagram(now, &d);
            fed += 1;
        }
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        now = now + std::time::Duration::from_millis(7);
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
    }
    (node, fed)
}
