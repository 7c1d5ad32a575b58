//! The corosync.conf syntax mapped onto [`ClusterConfig`]: the file is parsed
//! ([`syntax`]), each section walked ([`walk`]) by the mapping of its keys
//! ([`totem`], [`nodelist`], [`quorum`], [`logging`]), and what needs several
//! sections settled at the end ([`finish`]).

mod fencing;
mod finish;
mod logging;
mod nodelist;
mod quorum;
mod syntax;
mod totem;
mod walk;

use super::error::{ConfigError, Warning};
use super::model::*;
use std::collections::BTreeMap;
use syntax::Section;
use walk::Key;

/// Parses corosync.conf text and maps it onto the model.
pub(crate) fn load(text: &str, file: &str) -> Result<(ClusterConfig, Vec<Warning>), ConfigError> {
    let sections = syntax::parse(text, file)?;
    let mut m = Mapper {
        file,
        cfg: ClusterConfig {
            source: SourceInfo::new(file),
            ..ClusterConfig::default()
        },
        warnings: Vec::new(),
        interfaces: BTreeMap::new(),
        crypto: CryptoKeys::default(),
    };
    // Totem first: the links' ports are the default ports of node addresses.
    let order = |n: &str| match n {
        "totem" => 0,
        "nodelist" => 1,
        _ => 2,
    };
    let mut sorted: Vec<&Section> = sections.iter().collect();
    sorted.sort_by_key(|s| order(&s.name));
    let mut saw_nodelist = false;
    for s in sorted {
        match s.name.as_str() {
            "totem" => m.totem(s)?,
            "nodelist" => {
                saw_nodelist = true;
                m.nodelist(s)?
            }
            "quorum" => m.quorum(s)?,
            "fencing" => m.fencing(s)?,
            "cib" => m.cib(s)?,
            "dlm" => m.dlm(s)?,
            "compat" => m.compat(s)?,
            "uidgid" => m.uidgid(s)?,
            "logging" => m.logging(s)?,
            "system" => m.system(s)?,
            "resources" | "qb" | "service" | "amf" | "aisexec" | "nodes" => {
                if !s.items.is_empty() {
                    m.warn(s.line, &s.name, "section has no effect in Phalanx, ignored");
                }
            }
            _ => m.warn(s.line, &s.name, "unknown section, ignored"),
        }
    }
    if !saw_nodelist {
        m.cfg.source.set("nodes", "nodelist", None);
    }
    m.finish_links();
    m.finish_crypto()?;
    m.cfg.validate()?;
    let lint = m.cfg.lint();
    m.warnings.extend(lint);
    Ok((m.cfg, m.warnings))
}

/// The totem crypto keys as given; they decide together (`finish_crypto`).
#[derive(Default)]
struct CryptoKeys {
    cipher: Option<(String, u32)>,
    hash: Option<(String, u32)>,
    secauth: Option<bool>,
}

/// A `totem.interface` section: the link's settings and the multicast ones that
/// `transport: udp` takes from link 0.
struct Iface {
    link: LinkConfig,
    line: u32,
    mcast_addr: Option<std::net::IpAddr>,
    ttl: Option<u8>,
}

/// The configuration being built from the sections of one file, and the
/// warnings so far.
struct Mapper<'a> {
    file: &'a str,
    cfg: ClusterConfig,
    warnings: Vec<Warning>,
    interfaces: BTreeMap<u8, Iface>,
    crypto: CryptoKeys,
}

impl Mapper<'_> {
    /// The `cib` section: `enabled` (default yes once the section is there),
    /// `schemas` (the directory of Pacemaker's RelaxNG schemas to validate with)
    /// and `require_quorum` (writes only with quorum; default: when quorum runs).
    fn cib(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.record_at("cib", "cib", s.line);
        self.cfg.cib = true;
        self.walk(s, "cib", walk::Unmapped::NONE, |m, entry| {
            let walk::Entry::Key(key) = entry else {
                return Ok(walk::Mapped::Unknown);
            };
            match key.name() {
                "enabled" => m.cfg.cib = key.boolean()?,
                "schemas" => m.cfg.cib_schemas = Some(key.file_path()),
                "require_quorum" => m.cfg.cib_require_quorum = Some(key.boolean()?),
                _ => return Ok(walk::Mapped::Unknown),
            }
            m.record(key.full(), &key);
            Ok(walk::Mapped::Used)
        })
    }

    /// `dlm { lock_traffic: direct | ring }` (Phalanx's own; Corosync has none).
    fn dlm(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.walk(s, "dlm", walk::Unmapped::NONE, |m, entry| {
            let walk::Entry::Key(key) = entry else {
                return Ok(walk::Mapped::Unknown);
            };
            match key.name() {
                "lock_traffic" => {
                    m.cfg.dlm_lock_traffic = Some(
                        crate::config::DlmLockTraffic::parse(&key.string())
                            .ok_or_else(|| key.error("expected direct or ring"))?,
                    )
                }
                _ => return Ok(walk::Mapped::Unknown),
            }
            m.record(key.full(), &key);
            Ok(walk::Mapped::Used)
        })
    }

    fn compat(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.walk(s, "compat", walk::Unmapped::NONE, |m, entry| {
            let walk::Entry::Key(key) = entry else {
                return Ok(walk::Mapped::Unknown);
            };
            match key.name() {
                "ipc" => m.cfg.compat_ipc = key.boolean()?,
                "ipc_transport" => {
                    m.cfg.ipc_transport = match key.string().as_str() {
                        "shm" => crate::compat::qb::IpcTransport::Shm,
                        "socket" => crate::compat::qb::IpcTransport::Socket,
                        _ => return Err(key.error("expected shm or socket")),
                    }
                }
                _ => return Ok(walk::Mapped::Unknown),
            }
            m.record(key.full(), &key);
            Ok(walk::Mapped::Used)
        })
    }

    /// `uidgid { uid: NAME gid: NAME }`: who may use the client protocol.
    fn uidgid(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.walk(s, "uidgid", walk::Unmapped::NONE, |m, entry| {
            let walk::Entry::Key(key) = entry else {
                return Ok(walk::Mapped::Unknown);
            };
            let value = key.string();
            if value.is_empty() {
                return Err(key.error("expected a user or group name or id"));
            }
            match key.name() {
                "uid" => m.cfg.ipc_users.push(value),
                "gid" => m.cfg.ipc_groups.push(value),
                _ => return Ok(walk::Mapped::Unknown),
            }
            Ok(walk::Mapped::Used)
        })
    }

    fn err(&self, line: u32, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, Some(line), Some(key.to_string()), msg)
    }

    fn warn(&mut self, line: u32, key: &str, msg: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.to_string(),
            line: Some(line),
            key: key.to_string(),
            message: msg.into(),
        });
    }

    /// Records that model key `canonical` was given by `key`.
    fn record(&mut self, canonical: &str, key: &Key<'_>) {
        self.record_at(canonical, key.full(), key.line());
    }

    /// Records that model key `canonical` is spelt `display` in the file, on `line`.
    fn record_at(&mut self, canonical: &str, display: &str, line: u32) {
        self.cfg.source.set(canonical, display, Some(line));
    }

    /// The port of `link`: its interface's `mcastport`, or the link's default.
    fn link_port(&self, link: u8) -> u16 {
        self.interfaces
            .get(&link)
            .map(|i| i.link.port)
            .unwrap_or_else(|| LinkConfig::new(link).port)
    }
}
