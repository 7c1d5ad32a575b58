//! The totem datagram decoder: any bytes decode or fail cleanly, and whatever
//! decodes re-encodes to exactly the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx_totem::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(dg) = wire::decode(data) {
        let mut out = Vec::new();
        wire::encode(dg.sender, &dg.message, &mut out);
        assert_eq!(out, data);
    }
});
