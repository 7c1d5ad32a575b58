//! Arbitrary datagrams fed to the nodes of a formed 3-node ring: never a panic,
//! whatever they contain.
//!
//! The ring is formed once per process and cloned for each input (forming it per
//! input cost most of the time). The input is a list of records
//! (`phalanx_fuzz::records`): the control byte picks the receiving node
//! (`ctl % 3`), whether the CRC32C trailer is fixed up first (bit 7: so that
//! mutations of captured datagrams reach the protocol, not only the checksum
//! check) and how many network steps run afterwards (`(ctl >> 2) & 31`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx_fuzz::{fix_totem_crc, records};
use phalanx_totem::Config;
use phalanx_totem::testing::MemNet;

thread_local! {
    static FORMED: Option<MemNet> = {
        let mut net = MemNet::new(3, Config::new);
        net.run_until_formed(100_000).then_some(net)
    };
}

fuzz_target!(|data: &[u8]| {
    let Some(mut net) = FORMED.with(|n| n.clone()) else {
        panic!("a lossless 3-node network must form");
    };
    let mut dg = Vec::new();
    for r in records(data, 64) {
        dg.clear();
        dg.extend_from_slice(r.bytes);
        if r.ctl & 0x80 != 0 {
            fix_totem_crc(&mut dg);
        }
        let i = usize::from(r.ctl % 3);
        net.nodes[i].handle_datagram(net.now, &dg);
        for _ in 0..1 + ((r.ctl >> 2) & 31) {
            if !net.step() {
                break;
            }
        }
    }
});
