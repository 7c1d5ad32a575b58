//! Arbitrary datagrams into a Stack through its one input type, on any link slot and
//! from a known or unknown address, with crypto on or off (first byte): every one
//! is accepted or refused with a typed error, never a panic, and the Stack keeps
//! answering.
//!
//! The rest of the input is a list of records (`phalanx_fuzz::records`). The
//! control byte says where a datagram comes from (link slot `ctl & 1`, the address
//! of node `(ctl >> 1) & 3`, 0 being an unknown address), whether its checksum is
//! fixed up (bit 3: totem CRC32C trailer or link ping/pong CRC) and whether, with
//! crypto on, it is sealed by that node with the cluster key (bit 4) — so that
//! mutated traffic gets past the checksum and the authentication tag into the link
//! monitor, totem and the services above it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx::crypto::{Cipher, DatagramCrypto};
use phalanx::link::{LinkCrypto, link_cluster_name};
use phalanx::logsys::Logger;
use phalanx::stack::{Input, Output, Stack, StackConfig};
use phalanx::totem::{Config, Time};
use phalanx_fuzz::{fix_checksum, records};
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [7; 32];
const CLUSTER: &str = "fuzz";
const CIPHER: Cipher = Cipher::Aes256Gcm;

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5400 + n as u16))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let crypto = mode & 1 == 1;
    let mut cfg = StackConfig::new(
        Config::new(1, vec![1, 2, 3]),
        (1..=3).map(|n| (n, addr(n))).collect(),
    );
    if crypto {
        cfg.crypto = Some(LinkCrypto {
            key: KEY.to_vec(),
            cluster_name: CLUSTER.into(),
            cipher: CIPHER,
            boot_id: 1,
        });
    }
    let mut stack = Stack::new(cfg, None, Time::ZERO, Logger::discard()).unwrap();
    // The peers' sealing state on link 0, made when first needed.
    let mut peers: [Option<DatagramCrypto>; 3] = [None, None, None];
    let mut now = Time::ZERO;
    let mut pending = Vec::new();
    let mut dg = Vec::new();
    for r in records(rest, 64) {
        let link = r.ctl & 1;
        let node = u32::from((r.ctl >> 1) & 3);
        dg.clear();
        dg.extend_from_slice(r.bytes);
        if r.ctl & 8 != 0 {
            fix_checksum(&mut dg);
        }
        if crypto && r.ctl & 16 != 0 && link == 0 && node != 0 {
            let c = peers[node as usize - 1].get_or_insert_with(|| {
                let name = link_cluster_name(CLUSTER, 0);
                DatagramCrypto::new(&KEY, &name, node, &[1, 2, 3], CIPHER, 100 + u64::from(node))
                    .unwrap()
            });
            let mut sealed = Vec::with_capacity(dg.len() + 40);
            c.seal(&dg, &mut sealed).unwrap();
            dg = sealed;
        }
        let _ = stack.handle_input(
            now,
            Input::Datagram {
                link,
                from: addr(node),
                data: &dg,
            },
        );
        loop {
            match stack.poll_output() {
                Output::Persist(p) => pending.push(p.id),
                Output::Timeout(_) => break,
                _ => {}
            }
        }
        for id in pending.drain(..) {
            let _ = stack.handle_input(now, Input::Persisted { id, result: Ok(()) });
        }
        now = now + Duration::from_millis(7);
        let _ = stack.handle_input(now, Input::Timeout);
    }
});
