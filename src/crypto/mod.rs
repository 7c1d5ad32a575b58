//! Authenticated encryption of totem datagrams, with replay protection.
//!
//! This is a **transport layer for the drivers**, not part of the sans-IO core: the
//! core hands out opaque, checksummed datagrams; a driver with a cluster key
//! [`seal`](DatagramCrypto::seal)s each one before sending and
//! [`open`](DatagramCrypto::open)s each received one before
//! [`Totem::handle_datagram`](phalanx_totem::Totem::handle_datagram). Without a key the driver
//! does not wrap at all. The driver supplies what the core may not use: OS randomness
//! for the boot id ([`random_boot_id`]) and the key file ([`read_key_file`]).
//!
//! ## Wire format of a sealed datagram (all integers little-endian)
//!
//! ```text
//! offset size field
//!      0    2 magic        "PC" (0x50 0x43)
//!      2    1 version      1
//!      3    1 cipher       1 = AES-256-GCM, 2 = ChaCha20-Poly1305
//!      4    4 sender       node id (u32)
//!      8    8 boot id      random per sender process start (u64)
//!     16    8 counter      per (sender, boot id), strictly increasing (u64)
//!     24    n ciphertext   the core's datagram, encrypted
//!   24+n   16 tag          AEAD tag; the 24 header bytes are the associated data
//! ```
//!
//! [`OVERHEAD`] = 40 bytes per datagram.
//!
//! ## Keys and nonces
//!
//! `PRK = HKDF-Extract(salt = "phalanx-totem-crypto-v1", IKM = key file bytes)`, and
//! for each (sender, boot id) a session key
//! `K = HKDF-Expand(PRK, info = "phalanx totem datagram key" ‖ cipher ‖ len(cluster) ‖
//! cluster name ‖ sender ‖ boot id, 32)` (HKDF-SHA256). The nonce is
//! `counter (u64 LE) ‖ 0u32`. A (key, nonce) pair repeats only if one sender uses the
//! same counter twice in one boot — impossible, the counter only goes up and sealing
//! stops before it wraps — or if two boots of the same node draw the same random
//! 64-bit boot id (probability 2⁻⁶⁴ per pair of boots). Different cluster names,
//! ciphers, senders or key files give unrelated keys, so two clusters sharing a key
//! file cannot read or inject each other's datagrams. See `docs/crypto.md`.
//!
//! ## Replay protection
//!
//! Each (sender, boot id) session has a [`WINDOW`]-counter sliding bitmap; a counter
//! already accepted is [`OpenError::Replayed`], one below the window is
//! [`OpenError::TooOld`]. The window moves only after a datagram authenticates. Per
//! configured node at most two sessions are kept (current and previous: datagrams
//! can be reordered around a restart) plus the last [`RETIRED_BOOTS`] retired boot
//! ids, whose datagrams are refused as `TooOld`. A new boot id replaces a session
//! only when its datagram authenticates, so a forged boot id cannot reset a window.
//! Memory is bounded: state exists per configured node only.
//!
//! ## Example
//!
//! ```
//! use phalanx::crypto::{Cipher, DatagramCrypto, OpenError};
//!
//! let key = [7u8; 256]; // in production: read_key_file("/etc/phalanx/authkey")
//! let nodes = [1, 2];
//! let mut a = DatagramCrypto::new(&key, "prod", 1, &nodes, Cipher::default(), 0x1111).unwrap();
//! let mut b = DatagramCrypto::new(&key, "prod", 2, &nodes, Cipher::default(), 0x2222).unwrap();
//!
//! let mut wire = Vec::new();
//! a.seal(b"core datagram", &mut wire).unwrap();
//! let mut scratch = Vec::new();
//! let (from, plain) = b.open(&wire, &mut scratch).unwrap();
//! assert_eq!((from, plain), (1, &b"core datagram"[..]));
//! // The same datagram again is a replay.
//! assert!(matches!(b.open(&wire, &mut scratch), Err(OpenError::Replayed { .. })));
//! assert_eq!(b.stats().replayed, 1);
//! ```

mod keyfile;
mod replay;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hkdf::Hkdf;
use ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use phalanx_totem::NodeId;
use replay::{Reject, ReplayWindow};

pub use keyfile::{
    DEFAULT_KEY_PATH, KEY_FILE_LEN, KeyError, KeyFile, generate_key_file, read_key_file,
};
pub use replay::WINDOW;

/// The two magic bytes that start every sealed datagram: `"PC"`.
pub const MAGIC: [u8; 2] = *b"PC";
/// The wire format version written and accepted.
pub const VERSION: u8 = 1;
/// Bytes of header (the AEAD associated data) in front of the ciphertext.
pub const HEADER_LEN: usize = 24;
/// Bytes of AEAD tag after the ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed datagram has on top of its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Shortest key accepted (bytes).
pub const MIN_KEY_LEN: usize = 32;
/// Longest key accepted (bytes).
pub const MAX_KEY_LEN: usize = 4096;
/// Longest cluster name accepted (bytes).
pub const MAX_CLUSTER_NAME_LEN: usize = 255;
/// How many retired boot ids are remembered per node (their datagrams are `TooOld`).
pub const RETIRED_BOOTS: usize = 8;
/// Largest plaintext [`DatagramCrypto::seal`] accepts (16 MiB; datagrams are ≤ 64 KiB).
pub const MAX_PLAINTEXT: usize = 1 << 24;

const HKDF_SALT: &[u8] = b"phalanx-totem-crypto-v1";
const HKDF_LABEL: &[u8] = b"phalanx totem datagram key";

/// The AEAD algorithm. Every node of a cluster must use the same one; a datagram
/// sealed with another cipher is refused ([`OpenError::CipherMismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cipher {
    /// AES-256 in Galois/Counter Mode (uses AES-NI and CLMUL when the CPU has them,
    /// detected at run time). The default: fastest on x86_64 with AES-NI
    /// (see `docs/performance.md`).
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439); constant-time in software, the better choice on
    /// CPUs without AES instructions.
    ChaCha20Poly1305,
}

impl Cipher {
    /// Both ciphers.
    pub const ALL: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    /// The cipher byte in the wire header.
    pub fn wire_id(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::ChaCha20Poly1305 => 2,
        }
    }

    /// The cipher with the given wire byte.
    pub fn from_wire_id(id: u8) -> Option<Cipher> {
        match id {
            1 => Some(Cipher::Aes256Gcm),
            2 => Some(Cipher::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Configuration name: `"aes256-gcm"` or `"chacha20-poly1305"`.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Cipher {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "aes256-gcm" | "aes-256-gcm" | "aes256gcm" | "aes256" => Ok(Cipher::Aes256Gcm),
            "chacha20-poly1305" | "chacha20poly1305" | "chacha20" => Ok(Cipher::ChaCha20Poly1305),
            _ => Err(CryptoError::UnknownCipher(s.to_string())),
        }
    }
}

/// Why a [`DatagramCrypto`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key is shorter than [`MIN_KEY_LEN`].
    #[error("key of {len} bytes is too short (at least {MIN_KEY_LEN})")]
    KeyTooShort {
        /// Its length.
        len: usize,
    },
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes is too long (at most {MAX_KEY_LEN})")]
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// The cluster name is longer than [`MAX_CLUSTER_NAME_LEN`] bytes.
    #[error("cluster name of {len} bytes is too long (at most {MAX_CLUSTER_NAME_LEN})")]
    ClusterNameTooLong {
        /// Its length.
        len: usize,
    },
    /// A cipher name that is not `aes256-gcm` or `chacha20-poly1305`.
    #[error("unknown cipher {0:?} (expected aes256-gcm or chacha20-poly1305)")]
    UnknownCipher(String),
}

/// Why [`DatagramCrypto::seal`] refused. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SealError {
    /// The plaintext is larger than [`MAX_PLAINTEXT`].
    #[error("plaintext of {len} bytes exceeds {MAX_PLAINTEXT}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// 2⁶⁴−1 datagrams were sealed in this boot; restart with a new boot id.
    #[error("datagram counter exhausted; a new boot id is needed")]
    CounterExhausted,
}

/// Why [`DatagramCrypto::open`] dropped a datagram. Each variant is counted in one
/// [`CryptoStats`] field (named in its doc).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than a header and a tag (`malformed`).
    #[error("datagram of {len} bytes is shorter than the {OVERHEAD}-byte overhead")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Does not start with [`MAGIC`] (`malformed`).
    #[error("bad magic")]
    BadMagic,
    /// A wire version other than [`VERSION`] (`malformed`).
    #[error("unsupported crypto wire version {0}")]
    UnsupportedVersion(u8),
    /// The cipher byte is not this cluster's cipher (`malformed`).
    #[error("cipher byte {got} does not match the configured cipher")]
    CipherMismatch {
        /// The cipher byte found.
        got: u8,
    },
    /// The sender is not in the node list (`unknown_node`).
    #[error("sender node {0} is not in the node list")]
    UnknownNode(NodeId),
    /// The tag did not verify: wrong key or cluster name, tampered, or forged
    /// (`auth_failed`).
    #[error("datagram from node {node} failed authentication")]
    AuthFailed {
        /// The claimed sender (unauthenticated).
        node: NodeId,
    },
    /// The counter was already accepted in this session (`replayed`).
    #[error("replayed datagram from node {node} (counter {counter})")]
    Replayed {
        /// The sender.
        node: NodeId,
        /// The replayed counter.
        counter: u64,
    },
    /// The counter is below the replay window, or the boot id belongs to a retired
    /// session of the sender (`too_old`).
    #[error("datagram from node {node} is too old (boot {boot_id:#x}, counter {counter})")]
    TooOld {
        /// The sender.
        node: NodeId,
        /// Its boot id.
        boot_id: u64,
        /// Its counter.
        counter: u64,
    },
}

/// Counters of [`DatagramCrypto`]; every sealed or opened datagram is counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CryptoStats {
    /// Datagrams sealed.
    pub sealed: u64,
    /// Datagrams opened successfully.
    pub ok: u64,
    /// Dropped: authentication failed.
    pub auth_failed: u64,
    /// Dropped: counter already seen.
    pub replayed: u64,
    /// Dropped: sender not in the node list.
    pub unknown_node: u64,
    /// Dropped: not a sealed datagram of this version and cipher.
    pub malformed: u64,
    /// Dropped: below the replay window or from a retired boot.
    pub too_old: u64,
}

/// The AEAD of one session. ring's AES-GCM and ChaCha20-Poly1305 (BoringSSL's
/// stitched assembly) are 2–4× faster than the portable crates at datagram sizes,
/// which is what keeps crypto-on throughput near crypto-off.
struct Aead(LessSafeKey);

impl Aead {
    fn new(cipher: Cipher, key: &[u8; 32]) -> Aead {
        let alg = match cipher {
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        // Both algorithms take exactly 32-byte keys, so this cannot fail.
        let unbound = UnboundKey::new(alg, key).unwrap_or_else(|_| unreachable!("32-byte key"));
        Aead(LessSafeKey::new(unbound))
    }

    fn nonce(counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&counter.to_le_bytes());
        Nonce::assume_unique_for_key(n)
    }

    fn seal(&self, counter: u64, aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Self::nonce(counter), Aad::from(aad), buf)
            .ok()?;
        tag.as_ref().try_into().ok()
    }

    fn open(&self, counter: u64, aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        self.0
            .open_in_place_separate_tag(
                Self::nonce(counter),
                Aad::from(aad),
                Tag::from(*tag),
                buf,
                0..,
            )
            .is_ok()
    }
}

struct Session {
    boot_id: u64,
    aead: Aead,
    window: ReplayWindow,
}

struct Peer {
    id: NodeId,
    /// `[current, previous]`.
    sessions: [Option<Session>; 2],
    /// Ring of retired boot ids (`None` = empty slot).
    retired: [Option<u64>; RETIRED_BOOTS],
    retired_next: usize,
}

impl Peer {
    fn new(id: NodeId) -> Peer {
        Peer {
            id,
            sessions: [None, None],
            retired: [None; RETIRED_BOOTS],
            retired_next: 0,
        }
    }

    fn install(&mut self, s: Session) {
        if let Some(old) = self.sessions[1].take() {
            self.retired[self.retired_next] = Some(old.boot_id);
            self.retired_next = (self.retired_next + 1) % RETIRED_BOOTS;
        }
        self.sessions[1] = self.sessions[0].take();
        self.sessions[0] = Some(s);
    }
}

/// Seals outgoing and opens incoming datagrams of one node (see the module docs for
/// the format, the keys and the replay rules).
pub struct DatagramCrypto {
    /// HKDF pseudo-random key extracted from the key file.
    prk: Zeroizing<[u8; 32]>,
    /// HKDF info up to and including the cluster name.
    info_prefix: Vec<u8>,
    cipher: Cipher,
    local_node: NodeId,
    boot_id: u64,
    /// This node's sending half (shared with [`DatagramCrypto::sealer`]'s holders).
    tx: Arc<Sealer>,
    /// Sorted by id.
    peers: Vec<Peer>,
    stats: CryptoStats,
}

impl fmt::Debug for DatagramCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramCrypto")
            .field("cipher", &self.cipher)
            .field("local_node", &self.local_node)
            .field("boot_id", &format_args!("{:#018x}", self.boot_id))
            .field("next_counter", &self.next_counter())
            .field(
                "nodes",
                &self.peers.iter().map(|p| p.id).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The sending half of a [`DatagramCrypto`]: seals with this node's key, each
/// datagram with the next counter, from any thread.
pub struct Sealer {
    cipher: Cipher,
    local_node: NodeId,
    boot_id: u64,
    aead: Aead,
    next_counter: AtomicU64,
    sealed: AtomicU64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("local_node", &self.local_node)
            .field("next_counter", &self.next_counter.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Encrypts and authenticates `plaintext`, appending the sealed datagram
    /// (`plaintext.len() + OVERHEAD` bytes) to `out`. On error nothing is appended
    /// (and no counter is used).
    pub fn seal(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SealError::TooLarge {
                len: plaintext.len(),
            });
        }
        // Each counter is taken once, by one caller; the last value is never
        // handed out, so the counter cannot wrap.
        let counter = self
            .next_counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c < u64::MAX).then(|| c + 1)
            })
            .map_err(|_| SealError::CounterExhausted)?;
        let start = out.len();
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.cipher.wire_id());
        out.extend_from_slice(&self.local_node.to_le_bytes());
        out.extend_from_slice(&self.boot_id.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
        out.extend_from_slice(plaintext);
        let (head, body) = out[start..].split_at_mut(HEADER_LEN);
        match self.aead.seal(counter, head, body) {
            Some(tag) => out.extend_from_slice(&tag),
            None => {
                out.truncate(start);
                return Err(SealError::TooLarge {
                    len: plaintext.len(),
                });
            }
        }
        self.sealed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A fresh random boot id from the operating system, for [`DatagramCrypto::new`].
/// Call once per process start (drivers only: the core never uses OS randomness).
pub fn random_boot_id() -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(std::io::Error::other)?;
    Ok(u64::from_le_bytes(b))
}

impl DatagramCrypto {
    /// Crypto state for `local_node` in cluster `cluster_name`, accepting datagrams
    /// from `nodes` (the local node is always accepted too, for loopback).
    ///
    /// `key` is the key file's content ([`read_key_file`]); `boot_id` must be fresh
    /// random for every process start ([`random_boot_id`]) — reusing one with the
    /// same key reuses nonces.
    pub fn new(
        key: &[u8],
        cluster_name: &str,
        local_node: NodeId,
        nodes: &[NodeId],
        cipher: Cipher,
        boot_id: u64,
    ) -> Result<Self, CryptoError> {
        if key.len() < MIN_KEY_LEN {
            return Err(CryptoError::KeyTooShort { len: key.len() });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(CryptoError::KeyTooLong { len: key.len() });
        }
        if cluster_name.len() > MAX_CLUSTER_NAME_LEN {
            return Err(CryptoError::ClusterNameTooLong {
                len: cluster_name.len(),
            });
        }
        let (prk, _) = Hkdf::<Sha256>::extract(Some(HKDF_SALT), key);
        let prk = Zeroizing::new(<[u8; 32]>::from(prk));
        let mut info_prefix = Vec::with_capacity(HKDF_LABEL.len() + 2 + cluster_name.len());
        info_prefix.extend_from_slice(HKDF_LABEL);
        info_prefix.push(cipher.wire_id());
        info_prefix.push(cluster_name.len() as u8);
        info_prefix.extend_from_slice(cluster_name.as_bytes());
        let tx_key = derive(&prk, &info_prefix, local_node, boot_id);
        let mut me = DatagramCrypto {
            tx: Arc::new(Sealer {
                cipher,
                local_node,
                boot_id,
                aead: Aead::new(cipher, &tx_key),
                next_counter: AtomicU64::new(0),
                sealed: AtomicU64::new(0),
            }),
            prk,
            info_prefix,
            cipher,
            local_node,
            boot_id,
            peers: Vec::new(),
            stats: CryptoStats::default(),
        };
        me.set_nodes(nodes);
        Ok(me)
    }

    /// Replaces the node list. Nodes that stay keep their sessions and windows; nodes
    /// that leave lose them; new nodes start empty.
    pub fn set_nodes(&mut self, nodes: &[NodeId]) {
        let mut ids: Vec<NodeId> = nodes.to_vec();
        ids.push(self.local_node);
        ids.sort_unstable();
        ids.dedup();
        let mut old = std::mem::take(&mut self.peers).into_iter().peekable();
        let mut peers = Vec::with_capacity(ids.len());
        for id in ids {
            while old.next_if(|p| p.id < id).is_some() {}
            match old.next_if(|p| p.id == id) {
                Some(p) => peers.push(p),
                None => peers.push(Peer::new(id)),
            }
        }
        self.peers = peers;
    }

    /// Bytes added to each datagram: [`OVERHEAD`] (40).
    pub fn overhead() -> usize {
        OVERHEAD
    }

    /// The configured cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// This node's id.
    pub fn local_node(&self) -> NodeId {
        self.local_node
    }

    /// This process's boot id.
    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }

    /// The counter the next sealed datagram will carry.
    pub fn next_counter(&self) -> u64 {
        self.tx.next_counter.load(Ordering::Relaxed)
    }

    /// The counters so far (`sealed` counts every holder of the sealer).
    pub fn stats(&self) -> CryptoStats {
        CryptoStats {
            sealed: self.tx.sealed.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    /// This node's sending half, for a thread other than the owner's: it seals
    /// with the same key and draws from the same counter, so no nonce is used
    /// twice whoever seals (receivers accept counters out of order within
    /// [`WINDOW`]).
    pub fn sealer(&self) -> Arc<Sealer> {
        self.tx.clone()
    }

    /// Encrypts and authenticates `plaintext`, appending the sealed datagram
    /// (`plaintext.len() + OVERHEAD` bytes) to `out`. On error nothing is appended.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        self.tx.seal(plaintext, out)
    }

    /// Verifies, decrypts and replay-checks a received datagram. On success returns
    /// the authenticated sender and the plaintext (in `scratch`, whose previous
    /// content is discarded). On error the datagram must be dropped; `scratch` is
    /// left empty (no unauthenticated plaintext escapes) and the matching
    /// [`CryptoStats`] counter is incremented. Total: any input gives `Ok` or an
    /// error, never a panic.
    pub fn open<'a>(
        &mut self,
        datagram: &[u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<(NodeId, &'a [u8]), OpenError> {
        scratch.clear();
        let r = self.open_inner(datagram, scratch);
        let s = &mut self.stats;
        match &r {
            Ok(_) => s.ok += 1,
            Err(e) => {
                scratch.clear();
                match e {
                    OpenError::TooShort { .. }
                    | OpenError::BadMagic
                    | OpenError::UnsupportedVersion(_)
                    | OpenError::CipherMismatch { .. } => s.malformed += 1,
                    OpenError::UnknownNode(_) => s.unknown_node += 1,
                    OpenError::AuthFailed { .. } => s.auth_failed += 1,
                    OpenError::Replayed { .. } => s.replayed += 1,
                    OpenError::TooOld { .. } => s.too_old += 1,
                }
            }
        }
        r.map(|node| (node, &scratch[..]))
    }

    fn open_inner(&mut self, d: &[u8], scratch: &mut Vec<u8>) -> Result<NodeId, OpenError> {
        if d.len() < OVERHEAD {
            return Err(OpenError::TooShort { len: d.len() });
        }
        let (head, rest) = d.split_at(HEADER_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        if head[0..2] != MAGIC {
            return Err(OpenError::BadMagic);
        }
        if head[2] != VERSION {
            return Err(OpenError::UnsupportedVersion(head[2]));
        }
        if head[3] != self.cipher.wire_id() {
            return Err(OpenError::CipherMismatch { got: head[3] });
        }
        let node = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let boot_id = u64::from_le_bytes(le8(&head[8..16]));
        let counter = u64::from_le_bytes(le8(&head[16..24]));
        let tag: [u8; TAG_LEN] = le16(tag);
        let idx = self
            .peers
            .binary_search_by_key(&node, |p| p.id)
            .map_err(|_| OpenError::UnknownNode(node))?;
        let peer = &mut self.peers[idx];

        let slot = peer
            .sessions
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.boot_id == boot_id));
        if let Some(slot) = slot {
            let Some(sess) = peer.sessions[slot].as_mut() else {
                return Err(OpenError::AuthFailed { node });
            };
            sess.window.check(counter).map_err(|r| match r {
                Reject::Seen => OpenError::Replayed { node, counter },
                Reject::TooOld => OpenError::TooOld {
                    node,
                    boot_id,
                    counter,
                },
            })?;
            scratch.extend_from_slice(ct);
            if !sess.aead.open(counter, head, scratch, &tag) {
                return Err(OpenError::AuthFailed { node });
            }
            sess.window.accept(counter);
            return Ok(node);
        }
        if peer.retired.contains(&Some(boot_id)) {
            return Err(OpenError::TooOld {
                node,
                boot_id,
                counter,
            });
        }
        // A boot id we have no session for: authenticate with its derived key first;
        // only an authentic datagram may install a session (and evict the oldest).
        let key = derive(&self.prk, &self.info_prefix, node, boot_id);
        let aead = Aead::new(self.cipher, &key);
        scratch.extend_from_slice(ct);
        if !aead.open(counter, head, scratch, &tag) {
            return Err(OpenError::AuthFailed { node });
        }
        let mut window = ReplayWindow::new();
        window.accept(counter);
        peer.install(Session {
            boot_id,
            aead,
            window,
        });
        Ok(node)
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn le16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

/// The session key of (sender, boot id): HKDF-Expand(PRK, info, 32).
fn derive(prk: &[u8; 32], info_prefix: &[u8], node: NodeId, boot_id: u64) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    // A 32-byte PRK is always valid for SHA-256, and 32 bytes of output are far below
    // the 255 × 32 limit, so neither call can fail; stay total anyway.
    if let Ok(h) = Hkdf::<Sha256>::from_prk(prk) {
        let node = node.to_le_bytes();
        let boot = boot_id.to_le_bytes();
        let _ = h.expand_multi_info(&[info_prefix, &node, &boot], &mut okm[..]);
    }
    okm
}
