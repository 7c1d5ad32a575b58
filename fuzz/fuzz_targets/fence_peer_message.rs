//! The fencers' peer messages (service 3 on the ring) from untrusted bytes:
//! decoding never panics, and a decoded message survives an encode/decode round
//! trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_fence::core::{decode_peer_message, encode_peer_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_peer_message(data) {
        let again = encode_peer_message(&msg);
        assert_eq!(decode_peer_message(&again).ok(), Some(msg));
    }
});
