//! The sealed-datagram decoder: `open` on any bytes returns `Ok` or a typed error and
//! never panics; whatever opens re-seals to a datagram that opens to the same bytes.
//! The first input byte picks the cipher; the rest is fed to `open` as a datagram
//! (raw, and spliced behind a genuine header so fuzzing reaches the AEAD).
#![no_main]
use libfuzzer_sys::fuzz_target;
use phalanx::crypto::{Cipher, DatagramCrypto, HEADER_LEN};

const KEY: [u8; 32] = [0x11; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cipher = Cipher::ALL[(sel & 1) as usize];
    let nodes = [1, 2, 3];
    let mut tx = DatagramCrypto::new(&KEY, "fuzz", 1, &nodes, cipher, 7).unwrap();
    let mut rx = DatagramCrypto::new(&KEY, "fuzz", 2, &nodes, cipher, 8).unwrap();
    let mut scratch = Vec::new();
    let mut genuine = Vec::new();
    tx.seal(rest, &mut genuine).unwrap();
    // Raw bytes.
    let raw_ok = rx.open(rest, &mut scratch).is_ok();
    // A genuine header followed by fuzz bytes (almost always an auth failure).
    let mut spliced = genuine[..HEADER_LEN].to_vec();
    spliced.extend_from_slice(rest);
    let _ = rx.open(&spliced, &mut scratch);
    // The genuine datagram opens to the input exactly once.
    let (from, plain) = rx.open(&genuine, &mut scratch).unwrap();
    assert_eq!((from, plain), (1, rest));
    assert!(rx.open(&genuine, &mut scratch).is_err());
    let s = rx.stats();
    assert_eq!(
        s.ok + s.auth_failed + s.malformed + s.unknown_node + s.replayed + s.too_old,
        4
    );
    assert!(!raw_ok || s.ok == 2);
});
