//! Arbitrary datagrams fed to a node of a formed 3-node ring: never a panic,
//! whatever they contain (the input is split into datagrams at 0xFF 0xFF).
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx_totem::testing::MemNet;
use phalanx_totem::Config;

fuzz_target!(|data: &[u8]| {
    let mut net = MemNet::new(3, Config::new);
    if !net.run_until_formed(100_000) {
        return;
    }
    for (i, dg) in data.split(|b| *b == 0xFF).enumerate() {
        net.nodes[i % 3].handle_datagram(net.now, dg);
        for _ in 0..20 {
            net.step();
        }
    }
});
