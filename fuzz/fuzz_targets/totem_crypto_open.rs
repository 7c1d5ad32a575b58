//! The sealed-datagram decoder: `open` on any bytes returns `Ok` or a typed error and
//! never panics; whatever opens re-seals to a datagram that opens to the same bytes.
//!
//! The first input byte picks the cipher. The rest is
//! 1. fed to `open` as a datagram (raw, and spliced behind a genuine header), and
//!    sealed and opened once;
//! 2. read as a script (seal-then-mutate-then-open) that gets past the
//!    authentication tag: senders seal messages with the test key, skip counters,
//!    restart with a new boot id; the receiver opens them in any order, opens them
//!    again (replays), opens them with a bit flipped, cut or extended, and changes
//!    its node list. That drives the replay window, session installation and boot
//!    retirement, which random bytes never reach. Checked: only genuine, unmodified,
//!    never-accepted datagrams open, to exactly what was sealed by whom; every
//!    `open` is counted once in the stats.
#![no_main]
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use phalanx::crypto::{Cipher, DatagramCrypto, HEADER_LEN, RETIRED_BOOTS};
use std::collections::HashSet;

const KEY: [u8; 32] = [0x11; 32];
const CLUSTER: &str = "fuzz";
/// Most operations of one script, and most counters skipped in all (bounded work).
const MAX_OPS: usize = 96;
const MAX_SKIPPED: u32 = 8192;

struct Sealed {
    datagram: Vec<u8>,
    plain: Vec<u8>,
    node: u32,
}

struct Script {
    cipher: Cipher,
    /// Senders 1 and 3 are configured on the receiver; 9 is not.
    senders: Vec<(u32, DatagramCrypto)>,
    restarts: u64,
    rx: DatagramCrypto,
    sent: Vec<Sealed>,
    /// Datagrams accepted (by sender), which must not open again while the
    /// receiver remembers their session.
    accepted: HashSet<(u32, Vec<u8>)>,
    oks: u64,
    opens: u64,
    skipped: u32,
    scratch: Vec<u8>,
}

impl Script {
    fn sender(cipher: Cipher, node: u32, boot: u64) -> DatagramCrypto {
        DatagramCrypto::new(&KEY, CLUSTER, node, &[1, 2, 3], cipher, boot).unwrap()
    }

    /// Opens `d`; checks that only what was sealed, unmodified and not yet
    /// accepted opens, and to what was sealed.
    fn open(&mut self, d: &[u8], genuine: Option<(u32, &[u8])>) {
        self.opens += 1;
        let r = self.rx.open(d, &mut self.scratch);
        if let Ok((from, plain)) = r {
            let Some((node, sealed)) = genuine else {
                panic!("a modified datagram opened");
            };
            assert_eq!((from, plain), (node, sealed));
            assert!(
                self.accepted.insert((from, d.to_vec())),
                "a datagram opened twice"
            );
            self.oks += 1;
        }
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> ArbResult<()> {
        match u.int_in_range(0u8..=6)? {
            0 => {
                let s = usize::from(u.arbitrary::<u8>()?) % self.senders.len();
                let len = usize::from(u.arbitrary::<u8>()?);
                let plain = u.bytes(len.min(u.len()))?.to_vec();
                let (node, c) = &mut self.senders[s];
                let mut datagram = Vec::new();
                c.seal(&plain, &mut datagram).unwrap();
                if self.sent.len() < 64 {
                    let node = *node;
                    self.sent.push(Sealed {
                        datagram,
                        plain,
                        node,
                    });
                }
            }
            1 if !self.sent.is_empty() => {
                let i = usize::from(u.arbitrary::<u8>()?) % self.sent.len();
                let s = &self.sent[i];
                let (d, node, plain) = (s.datagram.clone(), s.node, s.plain.clone());
                self.open(&d, Some((node, &plain)));
            }
            2 if !self.sent.is_empty() => {
                let i = usize::from(u.arbitrary::<u8>()?) % self.sent.len();
                let mut d = self.sent[i].datagram.clone();
                let at = usize::from(u.arbitrary::<u16>()?) % d.len();
                d[at] ^= u.arbitrary::<u8>()?.max(1);
                self.open(&d, None);
            }
            3 if !self.sent.is_empty() => {
                let i = usize::from(u.arbitrary::<u8>()?) % self.sent.len();
                let mut d = self.sent[i].datagram.clone();
                let n = usize::from(u.arbitrary::<u8>()?);
                if u.arbitrary::<bool>()? {
                    d.truncate(d.len().saturating_sub(n.max(1)));
                } else {
                    d.extend(std::iter::repeat_n(0xA5, n.max(1)));
                }
                self.open(&d, None);
            }
            4 => {
                let s = usize::from(u.arbitrary::<u8>()?) % self.senders.len();
                let n =
                    (u32::from(u.arbitrary::<u16>()?) % 2048 + 1).min(MAX_SKIPPED - self.skipped);
                self.skipped += n;
                let mut sink = Vec::new();
                for _ in 0..n {
                    sink.clear();
                    self.senders[s].1.seal(&[], &mut sink).unwrap();
                }
            }
            // A restart: always a fresh boot id (a reused one would reuse nonces). At
            // most RETIRED_BOOTS - 2 in all, so that the receiver still remembers
            // every boot it saw (two sessions and the retired ones per node): past
            // that an old boot's datagrams authenticate again, by design.
            5 if self.restarts < RETIRED_BOOTS as u64 - 2 => {
                let s = usize::from(u.arbitrary::<u8>()?) % self.senders.len();
                self.restarts += 1;
                let node = self.senders[s].0;
                self.senders[s].1 = Self::sender(self.cipher, node, 1000 + self.restarts);
            }
            6 => {
                let lists: [&[u32]; 3] = [&[1, 2, 3], &[1, 2], &[2, 3, 9]];
                let list = lists[usize::from(u.arbitrary::<u8>()?) % lists.len()];
                self.rx.set_nodes(list);
                // A node that leaves the list loses its sessions (documented): its
                // datagrams may open again once it is back.
                self.accepted.retain(|(n, _)| *n == 2 || list.contains(n));
            }
            _ => {}
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cipher = Cipher::ALL[(sel & 1) as usize];
    let nodes = [1, 2, 3];
    let mut tx = DatagramCrypto::new(&KEY, CLUSTER, 1, &nodes, cipher, 7).unwrap();
    let mut rx = DatagramCrypto::new(&KEY, CLUSTER, 2, &nodes, cipher, 8).unwrap();
    let mut scratch = Vec::new();
    let mut genuine = Vec::new();
    tx.seal(rest, &mut genuine).unwrap();
    // Raw bytes.
    let raw_ok = rx.open(rest, &mut scratch).is_ok();
    // A genuine header followed by fuzz bytes (almost always an auth failure).
    let mut spliced = genuine[..HEADER_LEN].to_vec();
    spliced.extend_from_slice(rest);
    let _ = rx.open(&spliced, &mut scratch);
    // The genuine datagram opens to the input exactly once.
    let (from, plain) = rx.open(&genuine, &mut scratch).unwrap();
    assert_eq!((from, plain), (1, rest));
    assert!(rx.open(&genuine, &mut scratch).is_err());
    let s = rx.stats();
    assert_eq!(
        s.ok + s.auth_failed + s.malformed + s.unknown_node + s.replayed + s.too_old,
        4
    );
    assert!(!raw_ok || s.ok == 2);

    // The script, on a fresh receiver.
    let mut script = Script {
        cipher,
        senders: vec![
            (1, Script::sender(cipher, 1, 1)),
            (3, Script::sender(cipher, 3, 3)),
            (9, Script::sender(cipher, 9, 9)),
        ],
        restarts: 0,
        rx: DatagramCrypto::new(&KEY, CLUSTER, 2, &nodes, cipher, 2).unwrap(),
        sent: Vec::new(),
        accepted: HashSet::new(),
        oks: 0,
        opens: 0,
        skipped: 0,
        scratch: Vec::new(),
    };
    let mut u = Unstructured::new(rest);
    for _ in 0..MAX_OPS {
        if u.is_empty() || script.step(&mut u).is_err() {
            break;
        }
    }
    let s = script.rx.stats();
    assert_eq!(
        s.ok + s.auth_failed + s.malformed + s.unknown_node + s.replayed + s.too_old,
        script.opens
    );
    assert_eq!(s.ok, script.oks);
});
