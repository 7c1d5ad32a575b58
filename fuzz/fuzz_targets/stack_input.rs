//! Arbitrary datagrams into a Stack through its one input type, on any link slot and
//! from a known or unknown address, with crypto on or off (first byte): every one
//! is accepted or refused with a typed error, never a panic, and the Stack keeps
//! answering. The input is split into datagrams at 0xFF 0xFF.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx::crypto::Cipher;
use phalanx::link::LinkCrypto;
use phalanx::logsys::Logger;
use phalanx::stack::{Input, Output, Stack, StackConfig};
use phalanx::totem::{Config, Time};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5400 + n as u16))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut cfg = StackConfig::new(
        Config::new(1, vec![1, 2, 3]),
        (1..=3).map(|n| (n, addr(n))).collect(),
    );
    if mode & 1 == 1 {
        cfg.crypto = Some(LinkCrypto {
            key: vec![7; 32],
            cluster_name: "fuzz".into(),
            cipher: Cipher::Aes256Gcm,
            boot_id: 1,
        });
    }
    let mut stack = Stack::new(cfg, None, Time::ZERO, Logger::discard()).unwrap();
    let mut now = Time::ZERO;
    let mut pending = Vec::new();
    for dg in rest.split(|b| *b == 0xFF) {
        let (link, from) = match dg.first() {
            Some(b) => (b & 1, addr(u32::from(b >> 1 & 3))),
            None => (0, addr(2)),
        };
        let _ = stack.handle_input(now, Input::Datagram { link, from, data: dg });
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
