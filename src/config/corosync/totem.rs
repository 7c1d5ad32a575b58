//! The `totem` section and its `interface` subsections: cluster name, transport,
//! link mode, timings and limits, crypto keys, and each link's settings.

use super::walk::{Entry, Key, Mapped, Unmapped};
use super::{Iface, Mapper, syntax::Section};
use crate::config::error::ConfigError;
use crate::config::model::*;
use Mapped::{Unknown, Used};

/// Totem keys Corosync has and Phalanx accepts: without effect, or silently because
/// they describe something Phalanx does anyway.
const TOTEM: Unmapped = Unmapped {
    no_effect: &[
        "downcheck",
        "send_join",
        "heartbeat_failures_allowed",
        "max_network_delay",
        "miss_count_const",
        "token_warning",
        "block_unlisted_ips",
        "knet_compression_model",
        "knet_compression_threshold",
        "knet_compression_level",
        "knet_mtu",
        "knet_pmtud_interval",
        "rrp_mode",
        "rrp_problem_count_timeout",
        "rrp_problem_count_threshold",
        "rrp_problem_count_mcast_threshold",
        "rrp_token_expired_timeout",
        "rrp_autorecovery_check_timeout",
        "clear_node_high_bit",
        "cancel_token_hold_on_retransmit",
        "ip_dscp",
        "threads",
        "vsftype",
    ],
    silent: &["version", "crypto_model", "ip_version"],
};

/// `linknumber`/`ringnumber` are read before the walk (they choose the link).
const INTERFACE: Unmapped = Unmapped {
    no_effect: &[
        "bindnetaddr",
        "broadcast",
        "knet_transport",
        "knet_ping_precision",
    ],
    silent: &["linknumber", "ringnumber"],
};

impl Mapper<'_> {
    pub(super) fn totem(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.walk(s, "totem", TOTEM, |m, entry| match entry {
            Entry::Section(sub) if sub.name == "interface" => m.interface(sub).map(|()| Used),
            Entry::Section(_) => Ok(Unknown),
            Entry::Key(key) => m.totem_key(&key),
        })
    }

    fn totem_key(&mut self, key: &Key<'_>) -> Result<Mapped, ConfigError> {
        if set_timing(&mut self.cfg.totem, key)? {
            self.record(key.full(), key);
            return Ok(Used);
        }
        let canonical = match key.name() {
            "cluster_name" => {
                self.cfg.cluster_name = key.string();
                "cluster_name"
            }
            "transport" => {
                self.cfg.transport = key.one_of(&[
                    ("udpu", Transport::Udpu),
                    (
                        "udp",
                        Transport::Udp {
                            mcast_addr: None,
                            ttl: 1,
                        },
                    ),
                    ("knet", Transport::Knet),
                ])?;
                "transport"
            }
            "link_mode" => {
                self.cfg.link_mode = key.one_of(&[
                    ("passive", LinkMode::Passive),
                    ("active", LinkMode::Active),
                    ("rr", LinkMode::Rr),
                ])?;
                "link_mode"
            }
            "nodeid" => {
                self.cfg.local_node_id = Some(key.num()?);
                "local_node_id"
            }
            // Cipher, hash and secauth decide together (`finish_crypto`).
            "crypto_cipher" => {
                self.crypto.cipher = Some((key.text().to_ascii_lowercase(), key.line()));
                "crypto.cipher"
            }
            "crypto_hash" => {
                self.crypto.hash = Some((key.text().to_ascii_lowercase(), key.line()));
                "crypto.hash"
            }
            "secauth" => {
                self.crypto.secauth = Some(key.boolean()?);
                "crypto.secauth"
            }
            "keyfile" => {
                self.cfg.crypto.key_file = key.file_path();
                "crypto.key_file"
            }
            "key" => {
                self.cfg.crypto.key = Some(key.text().as_bytes().to_vec());
                "crypto.key"
            }
            _ => return Ok(Unknown),
        };
        self.record(canonical, key);
        Ok(Used)
    }

    fn interface(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "totem.interface";
        let number = self.link_number(s, path)?;
        let mut iface = self.interfaces.remove(&number).unwrap_or(Iface {
            link: LinkConfig::new(number),
            line: s.line,
            mcast_addr: None,
            ttl: None,
        });
        let canon = format!("links.{number}");
        self.record_at(&canon, &format!("{path}.{number}"), s.line);
        self.walk(s, path, INTERFACE, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            let link = &mut iface.link;
            match key.name() {
                "mcastport" => {
                    link.port = key.num()?;
                    m.record(&format!("{canon}.port"), &key);
                }
                "knet_link_priority" => link.priority = key.num()?,
                "knet_ping_interval" => link.ping_interval = Some(key.ms()?),
                "knet_ping_timeout" => link.ping_timeout = Some(key.ms()?),
                "knet_pong_count" => link.pong_count = key.num()?,
                "mcastaddr" => iface.mcast_addr = Some(key.ip()?),
                "ttl" => iface.ttl = Some(key.num()?),
                _ => return Ok(Unknown),
            }
            Ok(Used)
        })?;
        self.interfaces.insert(number, iface);
        Ok(())
    }

    /// The interface's `linknumber` (or `ringnumber`), 0 if neither is given.
    fn link_number(&self, s: &Section, path: &str) -> Result<u8, ConfigError> {
        let mut number = 0;
        for item in &s.items {
            if let super::syntax::Item::Kv(kv) = item
                && (kv.key == "linknumber" || kv.key == "ringnumber")
            {
                let key = Key::new(self.file, path, kv);
                let n: u8 = key.num()?;
                if usize::from(n) >= MAX_LINKS {
                    return Err(key.error(format!("link number {n} above 7")));
                }
                number = n;
            }
        }
        Ok(number)
    }
}

/// Sets the totem timing or limit that `key` names (`token`, `window_size`, ...);
/// false if it names none.
fn set_timing(t: &mut TotemTimings, key: &Key<'_>) -> Result<bool, ConfigError> {
    match key.name() {
        "token" => t.token = Some(key.ms()?),
        "token_coefficient" => t.token_coefficient = Some(key.ms()?),
        "token_retransmit" => t.token_retransmit = Some(key.ms()?),
        "token_retransmits_before_loss_const" => {
            t.token_retransmits_before_loss_const = Some(key.num()?)
        }
        "hold" => t.hold = Some(key.ms()?),
        "join" => t.join = Some(key.ms()?),
        "consensus" => t.consensus = Some(key.ms()?),
        "merge" => t.merge = Some(key.ms()?),
        "fail_recv_const" => t.fail_recv_const = Some(key.num()?),
        "seqno_unchanged_const" => t.seqno_unchanged_const = Some(key.num()?),
        "window_size" => t.window_size = Some(key.num()?),
        "max_messages" => t.max_messages = Some(key.num()?),
        "send_hold_us" => t.send_hold = Some(std::time::Duration::from_micros(key.num()?)),
        "netmtu" => t.netmtu = Some(key.num()?),
        "max_message_size" => t.max_message_size = Some(key.num()?),
        "send_queue_bytes" => t.send_queue_bytes = Some(key.num()?),
        _ => return Ok(false),
    }
    Ok(true)
}
