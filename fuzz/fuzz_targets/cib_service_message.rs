//! CIB replication-service frames from untrusted bytes: a node must never
//! panic whatever a peer sends (typed errors only), a decodable message must
//! survive an encode/decode round trip, and the copy must stay a `<cib>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_cib::ops::empty_cib;
use phalanx_cib::service::{CibService, CibServiceConfig, ServiceMessage};
use phalanx_totem::RingId;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ServiceMessage::decode(data) {
        assert_eq!(
            ServiceMessage::decode(&m.encode()).ok(),
            Some(m),
            "round trip changed the message"
        );
    }
    let mut cfg = CibServiceConfig::new(1);
    cfg.frame_size = 64;
    let mut s = CibService::new(cfg, empty_cib(1));
    s.handle_config(&[1, 2], &[2], &[], RingId { seq: 4, rep: 1 });
    // The input as a sequence of frames from node 2, split at 0xC1 bytes,
    // after our own offer.
    while let Some(f) = s.poll_send() {
        let _ = s.handle_message(1, &f);
    }
    let _ = s.handle_message(2, data);
    let starts: Vec<usize> = (0..data.len()).filter(|&i| data[i] == 0xC1).collect();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(data.len());
        let _ = s.handle_message(2, &data[start..end]);
        if k == 8 {
            s.handle_config(&[1, 2], &[], &[], RingId { seq: 8, rep: 1 });
        }
    }
    while s.poll_event().is_some() {}
    assert_eq!(s.cib().name(), "cib");
});
