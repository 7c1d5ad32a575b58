//! The frame (packed application messages) decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = phalanx_totem::fuzzing::decode_frame(data);
});
