//! The CPG message decoder: any bytes decode or fail cleanly, whatever decodes
//! re-encodes to exactly the same bytes, and a CPG core fed the bytes as deliveries
//! (from two senders, inside and outside a state exchange) never panics.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use phalanx_cpg::{Cpg, CpgConfig, Guarantee, RingId, wire};
use phalanx_totem::{ConfigChange, ConfigKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = wire::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(wire::encode(None, &msg), data);
    }
    let mut cpg = Cpg::new(1, CpgConfig::default());
    let _ = cpg.join(5, b"g");
    cpg.handle_config(&ConfigChange {
        kind: ConfigKind::Regular,
        ring: RingId { seq: 1, rep: 1 },
        previous: None,
        members: vec![1, 2],
        left: Vec::new(),
        joined: Vec::new(),
    });
    // Both nodes' announcements, then the input, split on 0xff bytes, from each.
    while let Some((_, m)) = cpg.poll_send() {
        cpg.handle_deliver(1, Guarantee::Agreed, Bytes::from(m));
    }
    for (i, part) in data.split(|b| *b == 0xff).enumerate() {
        let sender = if i % 2 == 0 { 1 } else { 2 };
        cpg.handle_deliver(sender, Guarantee::Agreed, Bytes::copy_from_slice(part));
        while cpg.poll_event().is_some() {}
        while cpg.poll_send().is_some() {}
    }
});
