//! What needs several sections, settled once every section is read: the links
//! (interfaces and node addresses) and crypto (cipher, hash and secauth together).

use super::Mapper;
use crate::config::error::ConfigError;
use crate::config::model::*;

impl Mapper<'_> {
    /// One link per ring address a node has, with its interface's settings (or
    /// the defaults); interfaces for links no node has are warned about.
    pub(super) fn finish_links(&mut self) {
        let n = self
            .cfg
            .nodes
            .iter()
            .map(|n| n.addrs.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut links = Vec::new();
        for l in 0..n {
            let l8 = l as u8;
            let link = match self.interfaces.get(&l8) {
                Some(i) => i.link.clone(),
                None => LinkConfig::new(l8),
            };
            links.push(link);
        }
        let extra: Vec<(u8, u32)> = self
            .interfaces
            .iter()
            .filter(|(k, _)| usize::from(**k) >= n)
            .map(|(k, i)| (*k, i.line))
            .collect();
        for (k, line) in extra {
            self.warn(
                line,
                "totem.interface",
                format!("interface for link {k}, which no node has; ignored"),
            );
        }
        if let Transport::Udp { mcast_addr, ttl } = &mut self.cfg.transport
            && let Some(i) = self.interfaces.get(&0)
        {
            *mcast_addr = i.mcast_addr;
            *ttl = i.ttl.unwrap_or(1);
        }
        self.cfg.links = links;
    }

    /// Crypto on or off and the cipher, from `crypto_cipher`, `crypto_hash` and
    /// `secauth` together, as Corosync decides.
    pub(super) fn finish_crypto(&mut self) -> Result<(), ConfigError> {
        let c = std::mem::take(&mut self.crypto);
        let cipher = match &c.cipher {
            None => None,
            Some((v, line)) => {
                Some(match v.as_str() {
                    "aes256" => Cipher::Aes256Gcm,
                    "aes192" | "aes128" => {
                        self.warn(
                            *line,
                            "totem.crypto_cipher",
                            format!("{v} is mapped to AES-256-GCM"),
                        );
                        Cipher::Aes256Gcm
                    }
                    "chacha20-poly1305" | "chacha20poly1305" => Cipher::ChaCha20Poly1305,
                    "none" => Cipher::None,
                    _ => {
                        return Err(self.err(
                        *line,
                        "totem.crypto_cipher",
                        format!("expected aes256, aes192, aes128, chacha20-poly1305 or none, got {v:?}"),
                    ));
                    }
                })
            }
        };
        let hash_on = match &c.hash {
            None => None,
            Some((v, line)) => match v.as_str() {
                "none" => Some(false),
                "md5" | "sha1" | "sha256" | "sha384" | "sha512" => Some(true),
                _ => {
                    return Err(self.err(
                        *line,
                        "totem.crypto_hash",
                        format!("expected none, md5, sha1, sha256, sha384 or sha512, got {v:?}"),
                    ));
                }
            },
        };
        let base = self.cfg.crypto.clone();
        let on = |cipher| CryptoConfig {
            enabled: true,
            cipher,
            ..base.clone()
        };
        let off = CryptoConfig {
            enabled: false,
            cipher: Cipher::None,
            ..base.clone()
        };
        let result = match (cipher, hash_on, c.secauth) {
            (Some(Cipher::None), Some(true), _) => {
                let line = c.hash.as_ref().map(|h| h.1).unwrap_or(0);
                self.warn(
                    line,
                    "totem.crypto_hash",
                    "authentication without encryption is not offered; AES-256-GCM (which authenticates) is used",
                );
                on(Cipher::Aes256Gcm)
            }
            (Some(Cipher::None), _, _) => off,
            (Some(ci), _, _) => on(ci),
            (None, Some(false), _) => off,
            (None, Some(true), _) => on(Cipher::Aes256Gcm),
            (None, None, Some(false)) => off,
            (None, None, _) => on(Cipher::Aes256Gcm),
        };
        self.cfg.crypto = result;
        Ok(())
    }
}
