//! The corosync.conf syntax: a small line-oriented parser (sections `name {`,
//! `key: value` lines, `}` and `#` comments, as Corosync's `coroparse.c`) and the
//! mapping of Corosync's keys onto [`ClusterConfig`].

use super::error::{ConfigError, Warning};
use super::model::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Deepest accepted section nesting (Corosync's own files use 4).
const MAX_DEPTH: usize = 32;

/// A `name { ... }` section.
#[derive(Debug, Default)]
pub(crate) struct Section {
    pub name: String,
    pub line: u32,
    pub items: Vec<Item>,
}

/// A `key: value` line.
#[derive(Debug)]
pub(crate) struct Kv {
    pub key: String,
    pub value: String,
    pub line: u32,
}

/// One entry of a section.
#[derive(Debug)]
pub(crate) enum Item {
    Kv(Kv),
    Section(Section),
}

fn err(file: &str, line: u32, key: Option<&str>, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(file, Some(line), key.map(str::to_string), msg)
}

/// Parses the text into its top-level sections.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Section>, ConfigError> {
    let mut stack: Vec<Section> = vec![Section::default()];
    for (i, raw) in text.lines().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_suffix('{') {
            let name = name.trim();
            if name.is_empty()
                || name.contains([':', '{', '}'])
                || name.contains(char::is_whitespace)
            {
                return Err(err(file, line, None, format!("bad section name {name:?}")));
            }
            if stack.len() > MAX_DEPTH {
                return Err(err(file, line, None, "sections nested too deep"));
            }
            stack.push(Section {
                name: name.to_string(),
                line,
                items: Vec::new(),
            });
        } else if l == "}" {
            if stack.len() == 1 {
                return Err(err(file, line, None, "`}` without a matching `{`"));
            }
            let done = stack.pop().unwrap_or_default();
            if let Some(parent) = stack.last_mut() {
                parent.items.push(Item::Section(done));
            }
        } else if let Some((k, v)) = l.split_once(':') {
            let key = k.trim();
            if key.is_empty() || key.contains(char::is_whitespace) || key.contains(['{', '}']) {
                return Err(err(
                    file,
                    line,
                    None,
                    format!("bad key {key:?} (one `key: value` per line)"),
                ));
            }
            if stack.len() == 1 {
                return Err(err(
                    file,
                    line,
                    Some(key),
                    "`key: value` outside any section",
                ));
            }
            let mut value = v.trim();
            for q in ['"', '\''] {
                if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
                    value = &value[1..value.len() - 1];
                    break;
                }
            }
            if let Some(top) = stack.last_mut() {
                top.items.push(Item::Kv(Kv {
                    key: key.to_string(),
                    value: value.to_string(),
                    line,
                }));
            }
        } else {
            return Err(err(
                file,
                line,
                None,
                format!("expected `key: value`, `name {{` or `}}`, got {l:?}"),
            ));
        }
    }
    if stack.len() > 1 {
        let open = stack
            .last()
            .map(|s| (s.name.clone(), s.line))
            .unwrap_or_default();
        // Drop iteratively (bounded by MAX_DEPTH anyway).
        return Err(err(
            file,
            open.1,
            Some(&open.0),
            format!("section `{} {{` is never closed", open.0),
        ));
    }
    Ok(stack
        .pop()
        .map(|r| r.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i {
            Item::Section(s) => Some(s),
            Item::Kv(_) => None,
        })
        .collect())
}

/// Parses corosync.conf text and maps it onto the model.
pub(crate) fn load(text: &str, file: &str) -> Result<(ClusterConfig, Vec<Warning>), ConfigError> {
    let sections = parse(text, file)?;
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
            "logging" => m.logging(s)?,
            "system" => m.system(s)?,
            "resources" | "uidgid" | "qb" | "service" | "amf" | "aisexec" | "nodes" => {
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

#[derive(Default)]
struct CryptoKeys {
    cipher: Option<(String, u32)>,
    hash: Option<(String, u32)>,
    secauth: Option<bool>,
}

struct Iface {
    link: LinkConfig,
    line: u32,
    mcast_addr: Option<std::net::IpAddr>,
    ttl: Option<u8>,
}

struct Mapper<'a> {
    file: &'a str,
    cfg: ClusterConfig,
    warnings: Vec<Warning>,
    interfaces: BTreeMap<u8, Iface>,
    crypto: CryptoKeys,
}

/// Totem keys Corosync has and Phalanx accepts without using them.
const TOTEM_NO_EFFECT: &[&str] = &[
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
];

/// Keys accepted silently: they describe something Phalanx does anyway.
const TOTEM_SILENT: &[&str] = &["version", "crypto_model", "ip_version"];

impl Mapper<'_> {
    fn err(&self, line: u32, key: &str, msg: impl Into<String>) -> ConfigError {
        err(self.file, line, Some(key), msg)
    }

    fn warn(&mut self, line: u32, key: &str, msg: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.to_string(),
            line: Some(line),
            key: key.to_string(),
            message: msg.into(),
        });
    }

    fn unknown(&mut self, path: &str, item: &Item) {
        match item {
            Item::Kv(kv) => self.warn(
                kv.line,
                &format!("{path}.{}", kv.key),
                "unknown key, ignored",
            ),
            Item::Section(s) => self.warn(
                s.line,
                &format!("{path}.{}", s.name),
                "unknown section, ignored",
            ),
        }
    }

    fn no_effect(&mut self, path: &str, kv: &Kv) {
        self.warn(
            kv.line,
            &format!("{path}.{}", kv.key),
            "Corosync option with no effect in Phalanx, ignored",
        );
    }

    /// Warns about a key given twice in one section (the last value wins).
    fn dup(&mut self, seen: &mut BTreeSet<String>, path: &str, kv: &Kv) {
        if !seen.insert(kv.key.clone()) {
            self.warn(
                kv.line,
                &format!("{path}.{}", kv.key),
                "given again; the last value is used",
            );
        }
    }

    fn record(&mut self, canonical: &str, display: &str, line: u32) {
        self.cfg.source.set(canonical, display, Some(line));
    }

    fn ms(&self, kv: &Kv, key: &str) -> Result<Duration, ConfigError> {
        kv.value
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| {
                self.err(
                    kv.line,
                    key,
                    format!("expected milliseconds, got {:?}", kv.value),
                )
            })
    }

    fn num<T: FromStr>(&self, kv: &Kv, key: &str) -> Result<T, ConfigError> {
        kv.value.parse::<T>().map_err(|_| {
            self.err(
                kv.line,
                key,
                format!(
                    "expected a non-negative integer in range, got {:?}",
                    kv.value
                ),
            )
        })
    }

    fn boolean(&self, kv: &Kv, key: &str) -> Result<bool, ConfigError> {
        match kv.value.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" => Ok(true),
            "no" | "off" | "false" | "0" => Ok(false),
            _ => Err(self.err(
                kv.line,
                key,
                format!("expected yes/no, on/off or 1/0, got {:?}", kv.value),
            )),
        }
    }

    fn debug_level(&self, kv: &Kv, key: &str) -> Result<DebugLevel, ConfigError> {
        match kv.value.to_ascii_lowercase().as_str() {
            "off" | "no" | "0" => Ok(DebugLevel::Off),
            "on" | "yes" | "1" => Ok(DebugLevel::On),
            "trace" => Ok(DebugLevel::Trace),
            _ => Err(self.err(
                kv.line,
                key,
                format!("expected off, on or trace, got {:?}", kv.value),
            )),
        }
    }

    fn totem(&mut self, s: &Section) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let kv = match item {
                Item::Section(sub) if sub.name == "interface" => {
                    self.interface(sub)?;
                    continue;
                }
                Item::Section(_) => {
                    self.unknown("totem", item);
                    continue;
                }
                Item::Kv(kv) => kv,
            };
            self.dup(&mut seen, "totem", kv);
            let key = format!("totem.{}", kv.key);
            let k = key.as_str();
            macro_rules! set_ms {
                ($f:ident) => {{
                    let v = self.ms(kv, k)?;
                    self.cfg.totem.$f = Some(v);
                    self.record(k, k, kv.line);
                }};
            }
            macro_rules! set_num {
                ($f:ident) => {{
                    let v = self.num(kv, k)?;
                    self.cfg.totem.$f = Some(v);
                    self.record(k, k, kv.line);
                }};
            }
            match kv.key.as_str() {
                "cluster_name" => {
                    self.cfg.cluster_name = kv.value.clone();
                    self.record("cluster_name", k, kv.line);
                }
                "transport" => {
                    self.cfg.transport = match kv.value.as_str() {
                        "udpu" => Transport::Udpu,
                        "udp" => Transport::Udp {
                            mcast_addr: None,
                            ttl: 1,
                        },
                        "knet" => Transport::Knet,
                        other => {
                            return Err(self.err(
                                kv.line,
                                k,
                                format!("expected udpu, udp or knet, got {other:?}"),
                            ));
                        }
                    };
                    self.record("transport", k, kv.line);
                }
                "link_mode" => {
                    self.cfg.link_mode = match kv.value.as_str() {
                        "passive" => LinkMode::Passive,
                        "active" => LinkMode::Active,
                        "rr" => LinkMode::Rr,
                        other => {
                            return Err(self.err(
                                kv.line,
                                k,
                                format!("expected passive, active or rr, got {other:?}"),
                            ));
                        }
                    };
                    self.record("link_mode", k, kv.line);
                }
                "nodeid" => {
                    let v = self.num(kv, k)?;
                    self.cfg.local_node_id = Some(v);
                    self.record("local_node_id", k, kv.line);
                }
                "token" => set_ms!(token),
                "token_coefficient" => set_ms!(token_coefficient),
                "token_retransmit" => set_ms!(token_retransmit),
                "token_retransmits_before_loss_const" => {
                    set_num!(token_retransmits_before_loss_const)
                }
                "hold" => set_ms!(hold),
                "join" => set_ms!(join),
                "consensus" => set_ms!(consensus),
                "merge" => set_ms!(merge),
                "fail_recv_const" => set_num!(fail_recv_const),
                "seqno_unchanged_const" => set_num!(seqno_unchanged_const),
                "window_size" => set_num!(window_size),
                "max_messages" => set_num!(max_messages),
                "netmtu" => set_num!(netmtu),
                "max_message_size" => set_num!(max_message_size),
                "send_queue_bytes" => set_num!(send_queue_bytes),
                "crypto_cipher" => {
                    self.crypto.cipher = Some((kv.value.to_ascii_lowercase(), kv.line));
                    self.record("crypto.cipher", k, kv.line);
                }
                "crypto_hash" => {
                    self.crypto.hash = Some((kv.value.to_ascii_lowercase(), kv.line));
                    self.record("crypto.hash", k, kv.line);
                }
                "secauth" => {
                    self.crypto.secauth = Some(self.boolean(kv, k)?);
                    self.record("crypto.secauth", k, kv.line);
                }
                "keyfile" => {
                    self.cfg.crypto.key_file = PathBuf::from(&kv.value);
                    self.record("crypto.key_file", k, kv.line);
                }
                "key" => {
                    self.cfg.crypto.key = Some(kv.value.as_bytes().to_vec());
                    self.record("crypto.key", k, kv.line);
                }
                x if TOTEM_SILENT.contains(&x) => {}
                x if TOTEM_NO_EFFECT.contains(&x) => self.no_effect("totem", kv),
                _ => self.unknown("totem", item),
            }
        }
        Ok(())
    }

    fn interface(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "totem.interface";
        let mut number = 0u8;
        for item in &s.items {
            if let Item::Kv(kv) = item
                && (kv.key == "linknumber" || kv.key == "ringnumber")
            {
                let k = format!("{path}.{}", kv.key);
                let n: u8 = self.num(kv, &k)?;
                if usize::from(n) >= MAX_LINKS {
                    return Err(self.err(kv.line, &k, format!("link number {n} above 7")));
                }
                number = n;
            }
        }
        let mut iface = self.interfaces.remove(&number).unwrap_or(Iface {
            link: LinkConfig::new(number),
            line: s.line,
            mcast_addr: None,
            ttl: None,
        });
        let canon = format!("links.{number}");
        self.record(&canon, &format!("totem.interface.{number}"), s.line);
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let Item::Kv(kv) = item else {
                self.unknown(path, item);
                continue;
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            match kv.key.as_str() {
                "linknumber" | "ringnumber" => {}
                "mcastport" => {
                    iface.link.port = self.num(kv, &k)?;
                    self.record(&format!("{canon}.port"), &k, kv.line);
                }
                "knet_link_priority" => iface.link.priority = self.num(kv, &k)?,
                "knet_ping_interval" => iface.link.ping_interval = Some(self.ms(kv, &k)?),
                "knet_ping_timeout" => iface.link.ping_timeout = Some(self.ms(kv, &k)?),
                "knet_pong_count" => iface.link.pong_count = self.num(kv, &k)?,
                "mcastaddr" => {
                    iface.mcast_addr = Some(kv.value.parse().map_err(|_| {
                        self.err(
                            kv.line,
                            &k,
                            format!("expected an IP address, got {:?}", kv.value),
                        )
                    })?)
                }
                "ttl" => iface.ttl = Some(self.num(kv, &k)?),
                "bindnetaddr" | "broadcast" | "knet_transport" | "knet_ping_precision" => {
                    self.no_effect(path, kv)
                }
                _ => self.unknown(path, item),
            }
        }
        self.interfaces.insert(number, iface);
        Ok(())
    }

    fn link_port(&self, link: u8) -> u16 {
        self.interfaces
            .get(&link)
            .map(|i| i.link.port)
            .unwrap_or_else(|| LinkConfig::new(link).port)
    }

    fn nodelist(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.record("nodes", "nodelist", s.line);
        let mut seen = BTreeSet::new();
        for item in &s.items {
            match item {
                Item::Section(node) if node.name == "node" => self.node(node)?,
                Item::Kv(kv) if kv.key == "local_node_pos" => {
                    self.dup(&mut seen, "nodelist", kv);
                    let k = "nodelist.local_node_pos";
                    self.cfg.local_node_pos = Some(self.num(kv, k)?);
                    self.record("local_node_pos", k, kv.line);
                }
                _ => self.unknown("nodelist", item),
            }
        }
        Ok(())
    }

    fn node(&mut self, s: &Section) -> Result<(), ConfigError> {
        let i = self.cfg.nodes.len();
        let disp = format!("nodelist.node.{i}");
        let canon = format!("nodes.{i}");
        self.record(&canon, &disp, s.line);
        for l in 0..MAX_LINKS {
            self.cfg.source.set(
                format!("{canon}.addrs.{l}"),
                format!("{disp}.ring{l}_addr"),
                None,
            );
        }
        self.cfg
            .source
            .set(format!("{canon}.node_id"), format!("{disp}.nodeid"), None);
        let mut node = NodeEntry {
            node_id: 0,
            name: None,
            addrs: Vec::new(),
            quorum_votes: 1,
        };
        let mut have_id = false;
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let Item::Kv(kv) = item else {
                self.unknown(&disp, item);
                continue;
            };
            self.dup(&mut seen, &disp, kv);
            let k = format!("{disp}.{}", kv.key);
            if let Some(n) = kv
                .key
                .strip_prefix("ring")
                .and_then(|r| r.strip_suffix("_addr"))
            {
                let link: usize = match n.parse() {
                    Ok(l) if n.len() <= 2 => l,
                    _ => {
                        self.unknown(&disp, item);
                        continue;
                    }
                };
                if link >= MAX_LINKS {
                    return Err(self.err(kv.line, &k, format!("link number {link} above 7")));
                }
                let addr = NodeAddr::parse(&kv.value, self.link_port(link as u8))
                    .map_err(|e| self.err(kv.line, &k, e))?;
                if node.addrs.len() <= link {
                    node.addrs.resize(link + 1, None);
                }
                node.addrs[link] = Some(addr);
                self.record(&format!("{canon}.addrs.{link}"), &k, kv.line);
                continue;
            }
            match kv.key.as_str() {
                "nodeid" => {
                    node.node_id = self.num(kv, &k)?;
                    have_id = true;
                    self.record(&format!("{canon}.node_id"), &k, kv.line);
                }
                "name" => {
                    node.name = Some(kv.value.clone());
                    self.record(&format!("{canon}.name"), &k, kv.line);
                }
                "quorum_votes" => {
                    node.quorum_votes = self.num(kv, &k)?;
                    self.record(&format!("{canon}.quorum_votes"), &k, kv.line);
                }
                _ => self.unknown(&disp, item),
            }
        }
        if !have_id {
            // Corosync (udpu, IPv4) derives the id from ring0_addr.
            match node
                .addrs
                .first()
                .and_then(|a| a.as_ref())
                .and_then(NodeAddr::ip)
            {
                Some(std::net::IpAddr::V4(v4)) => {
                    node.node_id = u32::from(v4) & 0x7fff_ffff;
                    self.warn(
                        s.line,
                        &format!("{disp}.nodeid"),
                        format!(
                            "no nodeid; derived {} from ring0_addr as Corosync does",
                            node.node_id
                        ),
                    );
                }
                _ => {
                    return Err(self.err(
                        s.line,
                        &format!("{disp}.nodeid"),
                        "node has no nodeid (required unless ring0_addr is an IPv4 address)",
                    ));
                }
            }
        }
        self.cfg.nodes.push(node);
        Ok(())
    }

    fn finish_links(&mut self) {
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

    fn finish_crypto(&mut self) -> Result<(), ConfigError> {
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

    fn quorum(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "quorum";
        self.record("quorum", path, s.line);
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let kv = match item {
                Item::Section(d) if d.name == "device" => {
                    self.device(d)?;
                    continue;
                }
                Item::Section(_) => {
                    self.unknown(path, item);
                    continue;
                }
                Item::Kv(kv) => kv,
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            self.record(&k, &k, kv.line);
            let q = &mut self.cfg.quorum;
            match kv.key.as_str() {
                "provider" => {
                    q.provider = Some(kv.value.clone());
                    if kv.value != "corosync_votequorum" {
                        self.warn(kv.line, &k, "only votequorum semantics are implemented");
                    }
                }
                "expected_votes" => self.cfg.quorum.expected_votes = Some(self.num(kv, &k)?),
                "two_node" => self.cfg.quorum.two_node = self.boolean(kv, &k)?,
                "wait_for_all" => self.cfg.quorum.wait_for_all = Some(self.boolean(kv, &k)?),
                "last_man_standing" => self.cfg.quorum.last_man_standing = self.boolean(kv, &k)?,
                "last_man_standing_window" => {
                    self.cfg.quorum.last_man_standing_window = self.ms(kv, &k)?
                }
                "auto_tie_breaker" => self.cfg.quorum.auto_tie_breaker = self.boolean(kv, &k)?,
                "auto_tie_breaker_node" => {
                    self.cfg.quorum.auto_tie_breaker_node = match kv.value.as_str() {
                        "lowest" => TieBreakerNode::Lowest,
                        "highest" => TieBreakerNode::Highest,
                        list => TieBreakerNode::Nodes(
                            list.split_whitespace()
                                .map(|n| n.parse::<u32>())
                                .collect::<Result<_, _>>()
                                .map_err(|_| {
                                    self.err(
                                        kv.line,
                                        &k,
                                        format!(
                                            "expected lowest, highest or node ids, got {list:?}"
                                        ),
                                    )
                                })?,
                        ),
                    }
                }
                "allow_downscale" => self.cfg.quorum.allow_downscale = self.boolean(kv, &k)?,
                "expected_votes_tracking" => {
                    self.cfg.quorum.expected_votes_tracking = self.boolean(kv, &k)?
                }
                "votes" => self.warn(
                    kv.line,
                    &k,
                    "deprecated; use nodelist.node.quorum_votes (ignored)",
                ),
                _ => self.unknown(path, item),
            }
        }
        Ok(())
    }

    fn device(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "quorum.device";
        let mut dev = self.cfg.quorum.device.take().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let kv = match item {
                Item::Section(n) if n.name == "net" => {
                    dev.net = Some(self.device_net(n, dev.net.take().unwrap_or_default())?);
                    continue;
                }
                Item::Section(h) if h.name == "heuristics" => {
                    dev.heuristics = Some(self.device_heuristics(h)?);
                    continue;
                }
                Item::Section(_) => {
                    self.unknown(path, item);
                    continue;
                }
                Item::Kv(kv) => kv,
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            self.record(&k, &k, kv.line);
            match kv.key.as_str() {
                "model" => dev.model = kv.value.clone(),
                "votes" => dev.votes = Some(self.num(kv, &k)?),
                "timeout" => dev.timeout = self.ms(kv, &k)?,
                "sync_timeout" => dev.sync_timeout = self.ms(kv, &k)?,
                "master_wins" => self.no_effect(path, kv),
                _ => self.unknown(path, item),
            }
        }
        self.cfg.quorum.device = Some(dev);
        Ok(())
    }

    fn device_heuristics(&mut self, s: &Section) -> Result<QdeviceHeuristics, ConfigError> {
        let path = "quorum.device.heuristics";
        let mut h = QdeviceHeuristics::default();
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let Item::Kv(kv) = item else {
                self.unknown(path, item);
                continue;
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            self.record(&k, &k, kv.line);
            match kv.key.as_str() {
                "mode" => match kv.value.as_str() {
                    "off" | "sync" | "on" => h.mode = kv.value.clone(),
                    other => {
                        return Err(self.err(
                            kv.line,
                            &k,
                            format!("expected off, sync or on, got {other:?}"),
                        ));
                    }
                },
                "timeout" => h.timeout = self.ms(kv, &k)?,
                "sync_timeout" | "interval" => self.no_effect(path, kv),
                name if name.starts_with("exec_") && name.len() > 5 => {
                    h.exec.push((name[5..].to_string(), kv.value.clone()))
                }
                _ => self.unknown(path, item),
            }
        }
        Ok(h)
    }

    fn device_net(&mut self, s: &Section, mut net: QdeviceNet) -> Result<QdeviceNet, ConfigError> {
        let path = "quorum.device.net";
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let Item::Kv(kv) = item else {
                self.unknown(path, item);
                continue;
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            self.record(&k, &k, kv.line);
            match kv.key.as_str() {
                "host" => net.host = kv.value.clone(),
                "port" => net.port = self.num(kv, &k)?,
                "algorithm" => net.algorithm = kv.value.clone(),
                "tie_breaker" => net.tie_breaker = kv.value.clone(),
                "tls" => net.tls = kv.value.clone(),
                "connect_timeout" | "force_ip_version" | "keep_active_partition_tie_breaker" => {
                    self.no_effect(path, kv)
                }
                _ => self.unknown(path, item),
            }
        }
        Ok(net)
    }

    fn logging(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "logging";
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let kv = match item {
                Item::Section(sub) if sub.name == "logger_subsys" => {
                    self.logger_subsys(sub)?;
                    continue;
                }
                Item::Section(_) => {
                    self.unknown(path, item);
                    continue;
                }
                Item::Kv(kv) => kv,
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            self.record(&k, &k, kv.line);
            match kv.key.as_str() {
                "to_stderr" => self.cfg.logging.to_stderr = self.boolean(kv, &k)?,
                "to_logfile" => self.cfg.logging.to_logfile = self.boolean(kv, &k)?,
                "to_syslog" => self.cfg.logging.to_syslog = self.boolean(kv, &k)?,
                "logfile" => self.cfg.logging.logfile = Some(PathBuf::from(&kv.value)),
                "syslog_facility" => self.cfg.logging.syslog_facility = kv.value.clone(),
                "debug" => self.cfg.logging.debug = self.debug_level(kv, &k)?,
                "timestamp" => {
                    self.cfg.logging.timestamp = kv.value.eq_ignore_ascii_case("hires")
                        || self.boolean(kv, &k).map_err(|_| {
                            self.err(
                                kv.line,
                                &k,
                                format!("expected on, off or hires, got {:?}", kv.value),
                            )
                        })?
                }
                "fileline" => self.cfg.logging.fileline = self.boolean(kv, &k)?,
                "function_name" => self.cfg.logging.function_name = self.boolean(kv, &k)?,
                "blackbox" => self.cfg.logging.blackbox = self.boolean(kv, &k)?,
                "logfile_priority" | "syslog_priority" | "syslog_level" | "tags" => {
                    self.no_effect(path, kv)
                }
                _ => self.unknown(path, item),
            }
        }
        Ok(())
    }

    fn logger_subsys(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "logging.logger_subsys";
        let mut sub = LoggerSubsys::default();
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let Item::Kv(kv) = item else {
                self.unknown(path, item);
                continue;
            };
            self.dup(&mut seen, path, kv);
            let k = format!("{path}.{}", kv.key);
            match kv.key.as_str() {
                "subsys" => sub.subsys = kv.value.clone(),
                "debug" => sub.debug = Some(self.debug_level(kv, &k)?),
                "to_stderr" => sub.to_stderr = Some(self.boolean(kv, &k)?),
                "to_logfile" => sub.to_logfile = Some(self.boolean(kv, &k)?),
                "to_syslog" => sub.to_syslog = Some(self.boolean(kv, &k)?),
                "logfile" => sub.logfile = Some(PathBuf::from(&kv.value)),
                "logfile_priority" | "syslog_priority" | "syslog_facility" | "timestamp"
                | "fileline" | "function_name" | "tags" => self.no_effect(path, kv),
                _ => self.unknown(path, item),
            }
        }
        if sub.subsys.is_empty() {
            return Err(self.err(
                s.line,
                "logging.logger_subsys.subsys",
                "logger_subsys without subsys",
            ));
        }
        self.cfg.logging.logger_subsys.push(sub);
        Ok(())
    }

    fn system(&mut self, s: &Section) -> Result<(), ConfigError> {
        let path = "system";
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let Item::Kv(kv) = item else {
                self.unknown(path, item);
                continue;
            };
            self.dup(&mut seen, path, kv);
            match kv.key.as_str() {
                "state_dir" => {
                    self.cfg.state_dir = PathBuf::from(&kv.value);
                    self.record("state_dir", "system.state_dir", kv.line);
                }
                "sched_rr"
                | "priority"
                | "move_to_root_cgroup"
                | "allow_knet_handle_fallback"
                | "qb_ipc_type" => self.no_effect(path, kv),
                _ => self.unknown(path, item),
            }
        }
        Ok(())
    }
}
