//! Authentication with the cluster key: an HMAC-SHA256 challenge/response in both
//! directions, then every frame carries an HMAC-SHA256 tag under a per-connection
//! session key (HKDF of the cluster key and both nonces) and a per-direction counter.
//!
//! Why not TLS: every node already holds the cluster key, the arbitrator needs
//! integrity and authenticity (who may influence the vote) but nothing it carries is
//! secret (node ids, ring ids, results), and a pre-shared key avoids running a PKI for
//! a third site. Replay across connections fails (fresh nonces), replay or reordering
//! within one fails (counters), and a peer without the key learns nothing usable.
//! Nonces are inputs, drawn by the driver from the OS.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Length of nonces, proofs and tags.
pub const LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(&(p.len() as u32).to_le_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Which side proves: the two proofs differ so one cannot be reflected as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The node-side client.
    Client,
    /// The arbitrator.
    Server,
}

/// The proof that `role` knows the key, bound to the cluster, node and both nonces.
pub fn proof(
    key: &[u8],
    role: Role,
    cluster: &[u8],
    node: u32,
    client_nonce: &[u8; LEN],
    server_nonce: &[u8; LEN],
) -> [u8; LEN] {
    let label: &[u8] = match role {
        Role::Client => b"phalanx-qnetd client proof",
        Role::Server => b"phalanx-qnetd server proof",
    };
    mac(
        key,
        &[
            label,
            cluster,
            &node.to_le_bytes(),
            client_nonce,
            server_nonce,
        ],
    )
}

/// Constant-time comparison of a received proof or tag.
pub fn verify(expected: &[u8; LEN], got: &[u8; LEN]) -> bool {
    expected.ct_eq(got).into()
}

/// Per-connection frame authentication.
#[derive(Clone)]
pub struct Session {
    key: [u8; LEN],
    send_ctr: u64,
    recv_ctr: u64,
    role: Role,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Derives the session key for one side of a connection.
    pub fn new(
        key: &[u8],
        role: Role,
        cluster: &[u8],
        node: u32,
        client_nonce: &[u8; LEN],
        server_nonce: &[u8; LEN],
    ) -> Self {
        let mut salt = [0u8; 2 * LEN];
        salt[..LEN].copy_from_slice(client_nonce);
        salt[LEN..].copy_from_slice(server_nonce);
        let hk = Hkdf::<Sha256>::new(Some(&salt), key);
        let mut info = b"phalanx-qnetd session".to_vec();
        info.extend_from_slice(cluster);
        info.extend_from_slice(&node.to_le_bytes());
        let mut out = [0u8; LEN];
        // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
        hk.expand(&info, &mut out)
            .unwrap_or_else(|_| unreachable!());
        Session {
            key: out,
            send_ctr: 0,
            recv_ctr: 0,
            role,
        }
    }

    fn tag(&self, from: Role, ctr: u64, body: &[u8]) -> [u8; LEN] {
        let dir: &[u8] = match from {
            Role::Client => b"c",
            Role::Server => b"s",
        };
        mac(&self.key, &[dir, &ctr.to_le_bytes(), body])
    }

    /// The tag for the next frame this side sends.
    pub fn seal(&mut self, body: &[u8]) -> [u8; LEN] {
        let t = self.tag(self.role, self.send_ctr, body);
        self.send_ctr += 1;
        t
    }

    /// Checks the tag of the next frame received from the other side.
    pub fn open(&mut self, body: &[u8], tag: &[u8; LEN]) -> bool {
        let from = match self.role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let ok = verify(&self.tag(from, self.recv_ctr, body), tag);
        if ok {
            self.recv_ctr += 1;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_and_sessions() {
        let (cn, sn) = ([1u8; LEN], [2u8; LEN]);
        let p = proof(b"key", Role::Client, b"c", 1, &cn, &sn);
        assert!(verify(&p, &proof(b"key", Role::Client, b"c", 1, &cn, &sn)));
        assert!(!verify(&p, &proof(b"key", Role::Server, b"c", 1, &cn, &sn)));
        assert!(!verify(
            &p,
            &proof(b"other", Role::Client, b"c", 1, &cn, &sn)
        ));
        assert!(!verify(&p, &proof(b"key", Role::Client, b"c", 2, &cn, &sn)));
        let mut c = Session::new(b"key", Role::Client, b"c", 1, &cn, &sn);
        let mut s = Session::new(b"key", Role::Server, b"c", 1, &cn, &sn);
        let t0 = c.seal(b"a");
        let t1 = c.seal(b"b");
        assert!(!s.open(b"b", &t1), "out of order");
        assert!(s.open(b"a", &t0));
        assert!(!s.open(b"a", &t0), "replay");
        assert!(s.open(b"b", &t1));
        let t = s.seal(b"x");
        assert!(!c.open(b"y", &t));
        assert!(c.open(b"x", &t));
    }
}
