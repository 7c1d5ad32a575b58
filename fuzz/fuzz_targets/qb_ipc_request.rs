//! The libqb IPC decoders: any bytes, as a connection request or as a request
//! datagram of every service, decode or fail with a typed error, never panic;
//! a request that decodes has a header whose size is the datagram's length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx::compat::qb::{Service, decode_request, decode_service_request, wire};

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode_connection_request(data);
    if let Ok(r) = decode_request(data) {
        assert_eq!(r.bytes.len(), data.len());
        assert!(r.id >= 0);
        let size = i32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        assert_eq!(size as usize, data.len());
    }
    for s in Service::ALL {
        let _ = decode_service_request(s, data);
    }
});
