//! The flight-recorder reader is total: any bytes give a snapshot or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a whole file (header parsing), the same with its header checksum fixed up
    // (so that mutations of a real image reach the header fields and the records),
    // then behind a valid header (frame decoding).
    let mut fixed = data.to_vec();
    phalanx_logsys::fuzzing::fix_header_crc(&mut fixed);
    for img in [
        data.to_vec(),
        fixed,
        phalanx_logsys::fuzzing::image_with_valid_header(data),
    ] {
        if let Ok(snap) = phalanx_logsys::read_bytes(&img) {
            // Records never overlap: they fit in the ring.
            assert!(snap.records.len() as u64 * 56 <= snap.capacity);
            for r in &snap.records {
                let _ = phalanx_logsys::format_line(r);
                let _ = phalanx_logsys::dump::json_line(r, None);
            }
        }
    }
});
