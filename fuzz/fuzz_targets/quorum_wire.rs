//! Quorum decoders: votequorum messages and qdevice/qnetd frame bodies never panic,
//! and whatever decodes re-encodes byte for byte. The same bytes are also fed to an
//! arbitrator core and a votequorum core.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx::quorum::fuzzing;
use phalanx::quorum::qdevice::server::{Qnetd, ServerConfig};
use phalanx::quorum::{QuorumConfig, Votequorum};
use phalanx::totem::{ConfigChange, ConfigKind, RingId, Time};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = fuzzing::decode(data) {
        assert_eq!(fuzzing::encode(&m), data);
    }
    if let Ok(m) = fuzzing::decode_frame_body(data) {
        assert_eq!(fuzzing::encode_frame_body(&m), data);
    }
    // A server fed the bytes as a stream (framed and unframed).
    let mut s = Qnetd::new(ServerConfig::new([(b"c".to_vec(), vec![7; 32])].into()), Time::ZERO);
    s.accept(Time::ZERO, 1, [0; 32]);
    s.handle_bytes(Time::ZERO, 1, data);
    let mut framed = (data.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(data);
    s.accept(Time::ZERO, 2, [0; 32]);
    s.handle_bytes(Time::ZERO, 2, &framed);
    while s.poll_transmit().is_some() {}
    // A votequorum member receiving the bytes from a peer.
    let mut q = Votequorum::new(QuorumConfig::new(1, &[1, 2, 3])).unwrap();
    q.handle_config(
        Time::ZERO,
        &ConfigChange {
            kind: ConfigKind::Regular,
            ring: RingId { seq: 4, rep: 1 },
            previous: None,
            members: vec![1, 2, 3],
            left: vec![],
            joined: vec![1, 2, 3],
        },
    );
    let _ = q.handle_message(Time::ZERO, 2, data);
    let _ = q.info();
});
