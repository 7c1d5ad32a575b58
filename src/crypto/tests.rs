use super::*;
use std::sync::atomic::Ordering;

const KEY: [u8; 64] = [0x5a; 64];
const NODES: [NodeId; 3] = [1, 2, 3];

fn pair(cipher: Cipher) -> (DatagramCrypto, DatagramCrypto) {
    let a = DatagramCrypto::new(&KEY, "alpha", 1, &NODES, cipher, 0xa1).unwrap();
    let b = DatagramCrypto::new(&KEY, "alpha", 2, &NODES, cipher, 0xb2).unwrap();
    (a, b)
}

fn seal(c: &mut DatagramCrypto, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    c.seal(msg, &mut out).unwrap();
    out
}

fn open(c: &mut DatagramCrypto, d: &[u8]) -> Result<(NodeId, Vec<u8>), OpenError> {
    let mut scratch = Vec::new();
    c.open(d, &mut scratch).map(|(n, p)| (n, p.to_vec()))
}

#[test]
fn round_trip_both_ciphers_and_sizes() {
    for cipher in Cipher::ALL {
        let (mut a, mut b) = pair(cipher);
        for len in [0usize, 1, 15, 16, 17, 64, 1024, 16 * 1024, 65_000] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut out = b"prefix".to_vec();
            a.seal(&msg, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix", "seal appends");
            let d = &out[6..];
            assert_eq!(d.len(), len + DatagramCrypto::overhead());
            assert_eq!(&d[..2], b"PC");
            assert_eq!(d[2], VERSION);
            assert_eq!(d[3], cipher.wire_id());
            assert_eq!(&d[4..8], &1u32.to_le_bytes());
            assert_eq!(&d[8..16], &0xa1u64.to_le_bytes());
            if len >= 16 {
                assert!(!d.windows(16).any(|w| w == &msg[..16]), "not encrypted");
            }
            assert_eq!(open(&mut b, d), Ok((1, msg)));
        }
        assert_eq!(b.stats().ok, 9);
        assert_eq!(a.stats().sealed, 9);
        assert_eq!(a.next_counter(), 9);
    }
}

#[test]
fn loopback_of_own_datagrams_opens() {
    let (mut a, _) = pair(Cipher::default());
    let d = seal(&mut a, b"self");
    assert_eq!(open(&mut a, &d), Ok((1, b"self".to_vec())));
}

#[test]
fn tampering_any_byte_fails() {
    for cipher in Cipher::ALL {
        let (mut a, mut b) = pair(cipher);
        let d = seal(&mut a, b"some totem datagram");
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x01;
            let e = open(&mut b, &t).unwrap_err();
            match i {
                0..=1 => assert_eq!(e, OpenError::BadMagic),
                2 => assert_eq!(e, OpenError::UnsupportedVersion(VERSION ^ 1)),
                3 => assert!(matches!(e, OpenError::CipherMismatch { .. })),
                // Node id 1 ^ 1 = 0: not listed.
                4 => assert_eq!(e, OpenError::UnknownNode(0)),
                5..=7 => assert!(matches!(e, OpenError::UnknownNode(_))),
                _ => assert!(matches!(e, OpenError::AuthFailed { .. }), "byte {i}: {e:?}"),
            }
        }
        // Sender 1 → 3 (listed): still fails authentication.
        let mut t = d.clone();
        t[4] = 3;
        assert_eq!(open(&mut b, &t), Err(OpenError::AuthFailed { node: 3 }));
        // Truncation and extension fail too.
        assert!(open(&mut b, &d[..d.len() - 1]).is_err());
        let mut longer = d.clone();
        longer.push(0);
        assert!(open(&mut b, &longer).is_err());
        // None of these moved the window: the original still opens.
        assert_eq!(open(&mut b, &d).unwrap().0, 1);
        let s = b.stats();
        assert_eq!(s.ok, 1);
        assert_eq!(s.malformed, 4);
        assert_eq!(s.unknown_node, 4);
        assert_eq!(s.auth_failed as usize, d.len() - 8 + 3);
    }
}

#[test]
fn wrong_cluster_name_or_key_or_cipher_fails() {
    let mut a = DatagramCrypto::new(&KEY, "alpha", 1, &NODES, Cipher::Aes256Gcm, 7).unwrap();
    let d = seal(&mut a, b"hello");
    let mut other_cluster =
        DatagramCrypto::new(&KEY, "beta", 2, &NODES, Cipher::Aes256Gcm, 8).unwrap();
    assert_eq!(
        open(&mut other_cluster, &d),
        Err(OpenError::AuthFailed { node: 1 })
    );
    let mut key2 = KEY;
    key2[63] ^= 0x80;
    let mut other_key =
        DatagramCrypto::new(&key2, "alpha", 2, &NODES, Cipher::Aes256Gcm, 8).unwrap();
    assert_eq!(
        open(&mut other_key, &d),
        Err(OpenError::AuthFailed { node: 1 })
    );
    let mut chacha =
        DatagramCrypto::new(&KEY, "alpha", 2, &NODES, Cipher::ChaCha20Poly1305, 8).unwrap();
    assert_eq!(
        open(&mut chacha, &d),
        Err(OpenError::CipherMismatch { got: 1 })
    );
    // Rewriting the cipher byte does not help either: keys differ per cipher.
    let mut t = d.clone();
    t[3] = Cipher::ChaCha20Poly1305.wire_id();
    assert_eq!(
        open(&mut chacha, &t),
        Err(OpenError::AuthFailed { node: 1 })
    );
    assert_eq!(other_key.stats().auth_failed, 1);
}

#[test]
fn bad_keys_and_names_refused() {
    let n = &NODES[..];
    let c = Cipher::default();
    assert_eq!(
        DatagramCrypto::new(&[0; 31], "x", 1, n, c, 1).unwrap_err(),
        CryptoError::KeyTooShort { len: 31 }
    );
    assert_eq!(
        DatagramCrypto::new(&[0; 4097], "x", 1, n, c, 1).unwrap_err(),
        CryptoError::KeyTooLong { len: 4097 }
    );
    assert!(DatagramCrypto::new(&[0; 32], "x", 1, n, c, 1).is_ok());
    assert!(DatagramCrypto::new(&[0; 4096], "x", 1, n, c, 1).is_ok());
    let long = "n".repeat(256);
    assert_eq!(
        DatagramCrypto::new(&[0; 32], &long, 1, n, c, 1).unwrap_err(),
        CryptoError::ClusterNameTooLong { len: 256 }
    );
    assert_eq!(
        "ChaCha20-Poly1305".parse::<Cipher>(),
        Ok(Cipher::ChaCha20Poly1305)
    );
    assert_eq!("aes256-gcm".parse::<Cipher>(), Ok(Cipher::Aes256Gcm));
    assert!("rot13".parse::<Cipher>().is_err());
    for c in Cipher::ALL {
        assert_eq!(c.to_string().parse::<Cipher>(), Ok(c));
        assert_eq!(Cipher::from_wire_id(c.wire_id()), Some(c));
    }
}

#[test]
fn replay_is_rejected() {
    let (mut a, mut b) = pair(Cipher::default());
    let d = seal(&mut a, b"once");
    assert!(open(&mut b, &d).is_ok());
    assert_eq!(
        open(&mut b, &d),
        Err(OpenError::Replayed {
            node: 1,
            counter: 0
        })
    );
    assert_eq!(
        open(&mut b, &d),
        Err(OpenError::Replayed {
            node: 1,
            counter: 0
        })
    );
    assert_eq!(b.stats().replayed, 2);
    assert_eq!(b.stats().ok, 1);
}

#[test]
fn reordering_within_window_accepted_far_old_rejected() {
    let (mut a, mut b) = pair(Cipher::default());
    let ds: Vec<Vec<u8>> = (0..WINDOW as usize + 200)
        .map(|i| seal(&mut a, &(i as u32).to_le_bytes()))
        .collect();
    // Deliver 0..=99 in reverse (every one new), then the newest.
    for i in (0..100).rev() {
        assert_eq!(open(&mut b, &ds[i]).unwrap().1, (i as u32).to_le_bytes());
    }
    let last = ds.len() - 1;
    assert!(open(&mut b, &ds[last]).is_ok());
    // Within the window (last - WINDOW < c): new ones accepted, seen ones replayed.
    let edge = last - WINDOW as usize + 1;
    assert!(open(&mut b, &ds[edge]).is_ok());
    assert!(open(&mut b, &ds[500]).is_ok());
    assert!(matches!(
        open(&mut b, &ds[500]),
        Err(OpenError::Replayed { .. })
    ));
    // At or below last - WINDOW: too old, whether seen before or not.
    assert!(matches!(
        open(&mut b, &ds[edge - 1]),
        Err(OpenError::TooOld { .. })
    ));
    assert!(matches!(
        open(&mut b, &ds[5]),
        Err(OpenError::TooOld { .. })
    ));
    assert!(matches!(
        open(&mut b, &ds[99]),
        Err(OpenError::TooOld { .. })
    ));
    assert_eq!(b.stats().too_old, 3);
}

#[test]
fn unknown_sender_rejected_and_node_list_updates() {
    let mut stranger =
        DatagramCrypto::new(&KEY, "alpha", 9, &[9, 2], Cipher::default(), 3).unwrap();
    let (_, mut b) = pair(Cipher::default());
    let d = seal(&mut stranger, b"let me in");
    assert_eq!(open(&mut b, &d), Err(OpenError::UnknownNode(9)));
    assert_eq!(b.stats().unknown_node, 1);
    // Adding node 9 admits it; existing sessions survive; removing 1 forgets it.
    let (mut a, _) = pair(Cipher::default());
    let d1 = seal(&mut a, b"x");
    assert!(open(&mut b, &d1).is_ok());
    b.set_nodes(&[1, 2, 3, 9]);
    assert_eq!(open(&mut b, &d).unwrap().0, 9);
    assert!(matches!(open(&mut b, &d1), Err(OpenError::Replayed { .. })));
    b.set_nodes(&[2, 3, 9]);
    assert_eq!(open(&mut b, &d1), Err(OpenError::UnknownNode(1)));
}

#[test]
fn node_without_key_cannot_forge() {
    // An attacker without the key copies a genuine header, picks fresh counters and
    // boot ids, and guesses tags: nothing opens, and the genuine session is intact.
    let (mut a, mut b) = pair(Cipher::default());
    let genuine = seal(&mut a, b"genuine");
    for boot in [0xa1u64, 0xdead] {
        for counter in [0u64, 1, 1 << 40] {
            let mut f = genuine.clone();
            f[8..16].copy_from_slice(&boot.to_le_bytes());
            f[16..24].copy_from_slice(&counter.to_le_bytes());
            let n = f.len();
            f[n - 16..].copy_from_slice(&[0x42; 16]);
            assert_eq!(open(&mut b, &f), Err(OpenError::AuthFailed { node: 1 }));
        }
    }
    assert!(open(&mut b, &genuine).is_ok());
    assert!(open(&mut b, &seal(&mut a, b"next")).is_ok());
}

#[test]
fn restarted_sender_accepted_old_boot_bounded() {
    let mut b = DatagramCrypto::new(&KEY, "alpha", 2, &NODES, Cipher::default(), 0xb2).unwrap();
    let boot =
        |id: u64| DatagramCrypto::new(&KEY, "alpha", 1, &NODES, Cipher::default(), id).unwrap();
    let mut a1 = boot(100);
    let a1_early = seal(&mut a1, b"a1-0");
    let a1_late = seal(&mut a1, b"a1-1");
    assert!(open(&mut b, &a1_early).is_ok());
    // Node 1 restarts: new boot id, counter from 0 again.
    let mut a2 = boot(200);
    let a2_0 = seal(&mut a2, b"a2-0");
    assert_eq!(open(&mut b, &a2_0).unwrap().1, b"a2-0");
    // A datagram of the previous boot, reordered around the restart, still opens once.
    assert_eq!(open(&mut b, &a1_late).unwrap().1, b"a1-1");
    assert!(matches!(
        open(&mut b, &a1_late),
        Err(OpenError::Replayed { .. })
    ));
    assert!(matches!(
        open(&mut b, &a1_early),
        Err(OpenError::Replayed { .. })
    ));
    // A second restart retires boot 100: its datagrams are now too old.
    let mut a3 = boot(300);
    assert!(open(&mut b, &seal(&mut a3, b"a3-0")).is_ok());
    let a1_unseen = seal(&mut a1, b"a1-2");
    assert!(matches!(
        open(&mut b, &a1_unseen),
        Err(OpenError::TooOld { boot_id: 100, .. })
    ));
    // Boot 200 is the previous session and still works; boot 300 is current.
    assert!(open(&mut b, &seal(&mut a2, b"a2-1")).is_ok());
    assert!(open(&mut b, &seal(&mut a3, b"a3-1")).is_ok());
    assert!(matches!(
        open(&mut b, &a2_0),
        Err(OpenError::Replayed { .. })
    ));
    // Many more restarts: memory stays bounded (2 sessions + RETIRED_BOOTS ids) and
    // each retired boot is refused.
    for id in 400..400 + RETIRED_BOOTS as u64 {
        assert!(open(&mut b, &seal(&mut boot(id), b"x")).is_ok());
    }
    let p = &b.peers[0];
    assert_eq!(p.id, 1);
    assert!(p.sessions.iter().all(Option::is_some));
    assert!(
        !p.retired.contains(&Some(100)),
        "oldest retired id forgotten"
    );
    assert!(p.retired.contains(&Some(200)) && p.retired.contains(&Some(300)));
    assert!(matches!(
        open(&mut b, &seal(&mut a3, b"a3-2")),
        Err(OpenError::TooOld { boot_id: 300, .. })
    ));
}

#[test]
fn forged_boot_id_cannot_reset_window() {
    let (mut a, mut b) = pair(Cipher::default());
    let d = seal(&mut a, b"x");
    assert!(open(&mut b, &d).is_ok());
    // Claim a new boot id without the key: fails, and the real session stays current.
    let mut f = d.clone();
    f[8] ^= 0xff;
    assert!(matches!(
        open(&mut b, &f),
        Err(OpenError::AuthFailed { .. })
    ));
    assert!(matches!(open(&mut b, &d), Err(OpenError::Replayed { .. })));
    assert_eq!(b.peers[0].sessions[0].as_ref().unwrap().boot_id, 0xa1);
    assert!(b.peers[0].sessions[1].is_none());
}

#[test]
fn seal_limits() {
    let (mut a, _) = pair(Cipher::default());
    let mut out = vec![1, 2, 3];
    assert_eq!(
        a.seal(&vec![0; MAX_PLAINTEXT + 1], &mut out),
        Err(SealError::TooLarge {
            len: MAX_PLAINTEXT + 1
        })
    );
    a.tx.next_counter.store(u64::MAX, Ordering::Relaxed);
    assert_eq!(a.seal(b"x", &mut out), Err(SealError::CounterExhausted));
    assert_eq!(out, [1, 2, 3], "nothing appended on error");
    a.tx.next_counter.store(u64::MAX - 1, Ordering::Relaxed);
    assert!(a.seal(b"x", &mut out).is_ok());
    // The last counter is never used: the next call is refused.
    assert_eq!(a.seal(b"x", &mut out), Err(SealError::CounterExhausted));
}

#[test]
fn a_shared_sealer_and_its_owner_never_repeat_a_counter() {
    let (mut a, mut b) = pair(Cipher::default());
    let sealer = a.sealer();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let s = sealer.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        let mut out = Vec::new();
                        s.seal(&[i as u8], &mut out).unwrap();
                        out
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut datagrams: Vec<Vec<u8>> = (0..100).map(|i| seal(&mut a, &[i as u8])).collect();
    for t in threads {
        datagrams.extend(t.join().unwrap());
    }
    assert_eq!(a.next_counter(), 300);
    assert_eq!(a.stats().sealed, 300);
    // Every datagram opens once, whatever order they arrive in (within the window).
    for d in &datagrams {
        assert!(open(&mut b, d).is_ok());
    }
    for d in &datagrams {
        assert!(matches!(open(&mut b, d), Err(OpenError::Replayed { .. })));
    }
}

#[test]
fn random_bytes_never_panic() {
    let (mut a, mut b) = pair(Cipher::default());
    let genuine = seal(&mut a, b"abcdefgh");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut scratch = vec![9; 10];
    for i in 0..20_000 {
        let len = (next() % 120) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && len >= OVERHEAD {
            // Plausible headers get past the cheap checks to the AEAD.
            d[..8].copy_from_slice(&genuine[..8]);
            if i % 4 == 0 {
                d[8..16].copy_from_slice(&genuine[8..16]);
            }
        }
        assert!(b.open(&d, &mut scratch).is_err());
        assert!(scratch.is_empty());
    }
    let s = b.stats();
    assert_eq!(s.ok, 0);
    assert_eq!(
        s.auth_failed + s.malformed + s.unknown_node + s.replayed + s.too_old,
        20_000
    );
    assert!(s.auth_failed > 1000);
}

#[test]
fn boot_ids_are_random() {
    let a = random_boot_id().unwrap();
    let b = random_boot_id().unwrap();
    assert_ne!(a, b);
}

#[test]
fn key_file_generate_and_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("phalanx-keytest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("authkey");
    generate_key_file(&p, false).unwrap();
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(meta.len(), KEY_FILE_LEN as u64);
    assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    let k1 = read_key_file(&p).unwrap();
    assert_eq!(k1.bytes().len(), KEY_FILE_LEN);
    assert!(!k1.permissions_too_open());
    assert!(k1.bytes().iter().any(|&b| b != 0));
    assert!(format!("{k1:?}").starts_with("KeyFile { len: 256, mode: 400"));
    // No overwrite without force; with it, a new key replaces the old one.
    let e = generate_key_file(&p, false).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    generate_key_file(&p, true).unwrap();
    let k2 = read_key_file(&p).unwrap();
    assert_ne!(k1.bytes(), k2.bytes());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temp file left"
    );
    // Too short, too long, too open, missing, a directory.
    let short = dir.join("short");
    std::fs::write(&short, [1u8; 31]).unwrap();
    assert!(matches!(
        read_key_file(&short),
        Err(KeyError::TooShort { len: 31, .. })
    ));
    let long = dir.join("long");
    std::fs::write(&long, vec![1u8; MAX_KEY_LEN + 1]).unwrap();
    assert!(matches!(
        read_key_file(&long),
        Err(KeyError::TooLong { .. })
    ));
    let open = dir.join("open");
    std::fs::write(&open, [1u8; 32]).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let k = read_key_file(&open).unwrap();
    assert!(k.permissions_too_open());
    assert_eq!(k.mode(), 0o644);
    assert!(matches!(
        read_key_file(dir.join("missing")),
        Err(KeyError::Io { .. })
    ));
    assert!(matches!(
        read_key_file(&dir),
        Err(KeyError::NotAFile { .. })
    ));
    // The generated key works.
    let mut c = DatagramCrypto::new(k2.bytes(), "c", 1, &[1], Cipher::default(), 5).unwrap();
    let mut out = Vec::new();
    c.seal(b"k", &mut out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
