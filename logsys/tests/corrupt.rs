//! Truncated, corrupted, foreign and random inputs give an error or a partial read,
//! never a panic, and a partial read never invents records.

use phalanx_logsys::{Error, Logger, Record, fuzzing, read_bytes, record};
use std::collections::HashSet;

/// A wrapped memory ring's image and its records.
fn image() -> (Vec<u8>, Vec<Record>) {
    let log = Logger::memory(16 * 1024);
    for n in 0..2_000u64 {
        record!(
            log,
            n,
            1,
            Info,
            "totem",
            "tick {} of {} ok={}",
            n,
            "ring",
            n % 2 == 0
        );
    }
    let img = log.snapshot_bytes().unwrap();
    let recs = read_bytes(&img).unwrap().records;
    assert!(recs.len() > 100);
    (img, recs)
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn assert_subset(got: &[Record], all: &HashSet<String>) {
    for r in got {
        assert!(all.contains(&r.message), "invented record {r:?}");
    }
}

#[test]
fn truncated_images_read_partially_or_fail_cleanly() {
    let (img, recs) = image();
    let all: HashSet<String> = recs.iter().map(|r| r.message.clone()).collect();
    for len in (0..img.len())
        .step_by(97)
        .chain([0, 7, 8, 55, 56, 4095, 4096, 4104])
    {
        match read_bytes(&img[..len]) {
            Ok(s) => {
                assert!(s.truncated);
                assert_subset(&s.records, &all);
            }
            Err(e) => assert!(
                matches!(e, Error::Truncated { .. }),
                "len {len}: unexpected {e}"
            ),
        }
    }
    // Half the data region: roughly the records stored there survive.
    let half = read_bytes(&img[..4096 + 8 * 1024]).unwrap();
    assert!(
        half.records.len() > recs.len() / 3,
        "{}",
        half.records.len()
    );
}

#[test]
fn flipped_bytes_lose_only_the_damaged_records() {
    let (img, recs) = image();
    let all: HashSet<String> = recs.iter().map(|r| r.message.clone()).collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300 {
        let mut bad = img.clone();
        let at = 4096 + (rng.next() as usize % (bad.len() - 4096));
        bad[at] ^= 1 << (rng.next() % 8);
        let s = read_bytes(&bad).unwrap();
        assert_subset(&s.records, &all);
        // One flipped byte damages at most one record (plus the resync skips).
        assert!(
            s.records.len() + 1 >= recs.len(),
            "lost {}",
            recs.len() - s.records.len()
        );
    }
}

#[test]
fn damaged_headers_are_typed_errors() {
    let (img, _) = image();
    let mut magic = img.clone();
    magic[0] = b'X';
    assert!(matches!(read_bytes(&magic), Err(Error::NotARecorder)));
    let mut version = img.clone();
    version[8] = 9;
    assert!(matches!(
        read_bytes(&version),
        Err(Error::UnsupportedVersion(9))
    ));
    let mut cap = img.clone();
    cap[17] ^= 0x10;
    assert!(matches!(read_bytes(&cap), Err(Error::CorruptHeader(_))));
    // A consistent header with an absurd capacity: rejected, or read partially.
    let mut odd = img.clone();
    odd[16..24].copy_from_slice(&12_345u64.to_le_bytes());
    fuzzing::fix_header_crc(&mut odd);
    assert!(matches!(read_bytes(&odd), Err(Error::CorruptHeader(_))));
    let mut huge = img.clone();
    huge[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    fuzzing::fix_header_crc(&mut huge);
    let s = read_bytes(&huge).unwrap();
    assert!(s.truncated);
    // Arbitrary cursors (the cursor is not checksummed: writers move it).
    for cursor in [0, 1, 7, 4095, u64::MAX, u64::MAX - 7, 1 << 63] {
        let mut c = img.clone();
        c[24..32].copy_from_slice(&cursor.to_le_bytes());
        let _ = read_bytes(&c).unwrap();
    }
}

#[test]
fn foreign_and_random_files_never_panic() {
    assert!(matches!(
        read_bytes(include_bytes!("corrupt.rs")),
        Err(Error::NotARecorder)
    ));
    assert!(matches!(
        phalanx_logsys::read_file("/nonexistent/phalanx/blackbox"),
        Err(Error::Io { .. })
    ));
    let mut rng = XorShift(42);
    for _ in 0..200 {
        let len = (rng.next() % 40_000) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = read_bytes(&data);
        // Behind a valid header the frame decoder itself sees the noise.
        let img = fuzzing::image_with_valid_header(&data);
        let s = read_bytes(&img).unwrap();
        assert!(s.records.is_empty(), "noise decoded as a record");
    }
    // Random frames that pass position and length checks but fail their checksum.
    let (img, recs) = image();
    let mut noisy = img.clone();
    for b in noisy[4096..].iter_mut().skip(3).step_by(1024) {
        *b = rng.next() as u8;
    }
    let s = read_bytes(&noisy).unwrap();
    assert!(s.records.len() < recs.len());
    assert!(s.damaged > 0);
}
