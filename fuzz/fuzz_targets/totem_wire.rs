//! The totem datagram decoder: any bytes decode or fail cleanly, and whatever
//! decodes re-encodes to exactly the same bytes. The bytes are tried raw and with
//! their CRC32C trailer fixed up, so that mutations reach the body decoder rather
//! than stopping at the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx_fuzz::fix_totem_crc;
use phalanx_totem::wire;

fn check(data: &[u8]) {
    if let Ok(dg) = wire::decode(data) {
        let mut out = Vec::new();
        wire::encode(dg.sender, &dg.message, &mut out);
        assert_eq!(out, data);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    fix_totem_crc(&mut fixed);
    check(&fixed);
});
