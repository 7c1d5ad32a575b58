//! The TOML syntax: the same model in natural snake_case (`[totem] token_ms = 300`,
//! `[[nodes]] id = 1 addrs = ["127.0.0.1:5405"]`). Unknown keys are warnings.

use super::error::{ConfigError, Warning};
use super::model::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Root {
    cluster_name: Option<String>,
    local_node_id: Option<u32>,
    local_node_pos: Option<usize>,
    transport: Option<String>,
    link_mode: Option<String>,
    state_dir: Option<PathBuf>,
    multicast: Option<Multicast>,
    nodes: Vec<Node>,
    links: Vec<Link>,
    totem: Totem,
    crypto: Crypto,
    quorum: Quorum,
    logging: Logging,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Multicast {
    addr: Option<IpAddr>,
    ttl: Option<u8>,
}

#[derive(Deserialize)]
struct Node {
    id: u32,
    name: Option<String>,
    #[serde(default)]
    addrs: Vec<String>,
    #[serde(default)]
    quorum_votes: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Link {
    number: Option<u8>,
    port: Option<u16>,
    priority: Option<u32>,
    ping_interval_ms: Option<u64>,
    ping_timeout_ms: Option<u64>,
    pong_count: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Totem {
    token_ms: Option<u64>,
    token_coefficient_ms: Option<u64>,
    token_retransmit_ms: Option<u64>,
    token_retransmits_before_loss_const: Option<u32>,
    hold_ms: Option<u64>,
    join_ms: Option<u64>,
    consensus_ms: Option<u64>,
    merge_ms: Option<u64>,
    fail_recv_const: Option<u32>,
    seqno_unchanged_const: Option<u32>,
    window_size: Option<u32>,
    max_messages: Option<u32>,
    netmtu: Option<u32>,
    max_message_size: Option<usize>,
    send_queue_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Crypto {
    enabled: Option<bool>,
    cipher: Option<String>,
    key_file: Option<PathBuf>,
    key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Quorum {
    provider: Option<String>,
    expected_votes: Option<u32>,
    two_node: Option<bool>,
    wait_for_all: Option<bool>,
    last_man_standing: Option<bool>,
    last_man_standing_window_ms: Option<u64>,
    auto_tie_breaker: Option<bool>,
    auto_tie_breaker_node: Option<TieBreaker>,
    allow_downscale: Option<bool>,
    expected_votes_tracking: Option<bool>,
    device: Option<Device>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TieBreaker {
    Word(String),
    Nodes(Vec<u32>),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Device {
    model: String,
    votes: Option<u32>,
    timeout_ms: Option<u64>,
    sync_timeout_ms: Option<u64>,
    net: Option<DeviceNet>,
    heuristics: Option<DeviceHeuristics>,
}

/// `[quorum.device.heuristics]`: `mode`, `timeout_ms`, and `exec` as a table of
/// name = command (run in name order).
#[derive(Deserialize, Default)]
#[serde(default)]
struct DeviceHeuristics {
    mode: Option<String>,
    timeout_ms: Option<u64>,
    exec: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeviceNet {
    host: String,
    port: Option<u16>,
    algorithm: Option<String>,
    tie_breaker: Option<String>,
    tls: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Logging {
    to_stderr: Option<bool>,
    to_logfile: Option<bool>,
    logfile: Option<PathBuf>,
    to_syslog: Option<bool>,
    syslog_facility: Option<String>,
    debug: Option<String>,
    timestamp: Option<bool>,
    fileline: Option<bool>,
    function_name: Option<bool>,
    blackbox: Option<bool>,
    logger_subsys: Vec<Subsys>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Subsys {
    subsys: String,
    debug: Option<String>,
    to_stderr: Option<bool>,
    to_logfile: Option<bool>,
    to_syslog: Option<bool>,
    logfile: Option<PathBuf>,
}

/// Line of every key and value span of every value, by dotted path
/// (`nodes.0.addrs.1`).
struct Lines {
    starts: Vec<usize>,
    keys: BTreeMap<String, (u32, std::ops::Range<usize>)>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines {
            starts,
            keys: BTreeMap::new(),
        }
    }

    fn line_at(&self, offset: usize) -> u32 {
        let idx = self.starts.partition_point(|&s| s <= offset);
        u32::try_from(idx.max(1)).unwrap_or(u32::MAX)
    }

    fn walk_table(&mut self, prefix: &str, t: &DeTable<'_>) {
        for (k, v) in t.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            let line = self.line_at(k.span().start);
            self.keys.insert(path.clone(), (line, v.span()));
            self.walk_value(&path, v);
        }
    }

    fn walk_value(&mut self, path: &str, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::Table(t) => self.walk_table(path, t),
            DeValue::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    let p = format!("{path}.{i}");
                    let line = self.line_at(e.span().start);
                    self.keys.insert(p.clone(), (line, e.span()));
                    self.walk_value(&p, e);
                }
            }
            _ => {}
        }
    }

    fn line(&self, path: &str) -> Option<u32> {
        let mut k = path;
        loop {
            if let Some((l, _)) = self.keys.get(k) {
                return Some(*l);
            }
            k = k.rsplit_once('.')?.0;
        }
    }

    /// The innermost path whose value holds `offset`.
    fn path_at(&self, offset: usize) -> Option<&str> {
        self.keys
            .iter()
            .filter(|(_, (_, span))| span.start <= offset && offset < span.end.max(span.start + 1))
            .min_by_key(|(k, (_, span))| (span.end - span.start, std::cmp::Reverse(k.len())))
            .map(|(k, _)| k.as_str())
    }
}

/// TOML spelling of a dotted path: `nodes.0.id` → `nodes[0].id`.
fn pretty(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(part);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Canonical model keys and their TOML paths, for scalar fields.
const FIELDS: &[(&str, &str)] = &[
    ("cluster_name", "cluster_name"),
    ("local_node_pos", "local_node_pos"),
    ("transport", "transport"),
    ("link_mode", "link_mode"),
    ("state_dir", "state_dir"),
    ("totem.token", "totem.token_ms"),
    ("totem.token_coefficient", "totem.token_coefficient_ms"),
    ("totem.token_retransmit", "totem.token_retransmit_ms"),
    (
        "totem.token_retransmits_before_loss_const",
        "totem.token_retransmits_before_loss_const",
    ),
    ("totem.hold", "totem.hold_ms"),
    ("totem.join", "totem.join_ms"),
    ("totem.consensus", "totem.consensus_ms"),
    ("totem.merge", "totem.merge_ms"),
    ("totem.fail_recv_const", "totem.fail_recv_const"),
    ("totem.seqno_unchanged_const", "totem.seqno_unchanged_const"),
    ("totem.window_size", "totem.window_size"),
    ("totem.max_messages", "totem.max_messages"),
    ("totem.netmtu", "totem.netmtu"),
    ("totem.max_message_size", "totem.max_message_size"),
    ("totem.send_queue_bytes", "totem.send_queue_bytes"),
    ("crypto.cipher", "crypto.cipher"),
    ("crypto.key_file", "crypto.key_file"),
    ("crypto.key", "crypto.key"),
    ("quorum.two_node", "quorum.two_node"),
    ("nodes", "nodes"),
];

fn ms(v: Option<u64>) -> Option<Duration> {
    v.map(Duration::from_millis)
}

fn debug_level(v: &str) -> Option<DebugLevel> {
    match v {
        "off" => Some(DebugLevel::Off),
        "on" => Some(DebugLevel::On),
        "trace" => Some(DebugLevel::Trace),
        _ => None,
    }
}

pub(crate) fn load(text: &str, file: &str) -> Result<(ClusterConfig, Vec<Warning>), ConfigError> {
    let mut lines = Lines::new(text);
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| lines.line_at(s.start));
        ConfigError::new(file, line, None, e.message().trim().to_string())
    })?;
    lines.walk_table("", table.get_ref());
    let mut unused = Vec::new();
    let de = toml::Deserializer::from(table);
    let root: Root = serde_ignored::deserialize(de, |p| unused.push(p.to_string())).map_err(
        |e: toml::de::Error| {
            let at = e.span().map(|s| s.start);
            let path = at.and_then(|o| lines.path_at(o)).map(str::to_string);
            let line = at.map(|o| lines.line_at(o));
            ConfigError::new(
                file,
                line,
                path.as_deref().map(pretty),
                e.message().trim().to_string(),
            )
        },
    )?;
    let mut warnings: Vec<Warning> = unused
        .iter()
        .map(|p| Warning {
            file: file.to_string(),
            line: lines.line(p),
            key: pretty(p),
            message: "unknown key, ignored".into(),
        })
        .collect();

    let mut src = SourceInfo::new(file);
    for (canon, path) in FIELDS {
        src.set(*canon, pretty(path), lines.line(path));
    }
    let err = |src: &SourceInfo, canon: &str, msg: String| src.error(canon, msg);

    let mut cfg = ClusterConfig {
        cluster_name: root.cluster_name.unwrap_or_default(),
        local_node_id: root.local_node_id,
        local_node_pos: root.local_node_pos,
        ..ClusterConfig::default()
    };
    if let Some(d) = root.state_dir {
        cfg.state_dir = d;
    }
    cfg.transport = match root.transport.as_deref() {
        None | Some("udpu") => Transport::Udpu,
        Some("knet") => Transport::Knet,
        Some("udp") => Transport::Udp {
            mcast_addr: root.multicast.as_ref().and_then(|m| m.addr),
            ttl: root.multicast.as_ref().and_then(|m| m.ttl).unwrap_or(1),
        },
        Some(o) => {
            return Err(err(
                &src,
                "transport",
                format!("expected udpu, udp or knet, got {o:?}"),
            ));
        }
    };
    cfg.link_mode = match root.link_mode.as_deref() {
        None | Some("passive") => LinkMode::Passive,
        Some("active") => LinkMode::Active,
        Some("rr") => LinkMode::Rr,
        Some(o) => {
            return Err(err(
                &src,
                "link_mode",
                format!("expected passive, active or rr, got {o:?}"),
            ));
        }
    };

    // Links: explicit [[links]] entries (number defaults to position).
    let mut links: BTreeMap<u8, LinkConfig> = BTreeMap::new();
    for (i, l) in root.links.iter().enumerate() {
        let canon = format!("links.{i}");
        src.set(
            &canon,
            format!("links[{i}]"),
            lines.line(&format!("links.{i}")),
        );
        src.set(
            format!("{canon}.link_number"),
            format!("links[{i}].number"),
            lines.line(&format!("links.{i}.number")),
        );
        let n = l.number.unwrap_or(i.min(255) as u8);
        if usize::from(n) >= MAX_LINKS {
            return Err(err(
                &src,
                &format!("{canon}.link_number"),
                format!("link number {n} above 7"),
            ));
        }
        let mut lc = LinkConfig::new(n);
        if let Some(p) = l.port {
            lc.port = p;
        }
        if let Some(p) = l.priority {
            lc.priority = p;
        }
        lc.ping_interval = ms(l.ping_interval_ms);
        lc.ping_timeout = ms(l.ping_timeout_ms);
        if let Some(p) = l.pong_count {
            lc.pong_count = p;
        }
        links.insert(n, lc);
    }
    let port_of = |n: usize| {
        links
            .get(&(n as u8))
            .map(|l| l.port)
            .unwrap_or_else(|| LinkConfig::new(n as u8).port)
    };

    for (i, n) in root.nodes.iter().enumerate() {
        let canon = format!("nodes.{i}");
        src.set(&canon, format!("nodes[{i}]"), lines.line(&canon));
        src.set(
            format!("{canon}.node_id"),
            format!("nodes[{i}].id"),
            lines.line(&format!("{canon}.id")),
        );
        for l in 0..MAX_LINKS {
            src.set(
                format!("{canon}.addrs.{l}"),
                format!("nodes[{i}].addrs[{l}]"),
                lines.line(&format!("{canon}.addrs.{l}")),
            );
        }
        if n.addrs.len() > MAX_LINKS {
            return Err(err(
                &src,
                &format!("{canon}.addrs.8"),
                "link number above 7".into(),
            ));
        }
        let mut addrs = Vec::new();
        for (l, a) in n.addrs.iter().enumerate() {
            if a.is_empty() || a == "none" {
                addrs.push(None);
                continue;
            }
            let addr = NodeAddr::parse(a, port_of(l))
                .map_err(|e| err(&src, &format!("{canon}.addrs.{l}"), e))?;
            addrs.push(Some(addr));
        }
        cfg.nodes.push(NodeEntry {
            node_id: n.id,
            name: n.name.clone(),
            addrs,
            quorum_votes: n.quorum_votes.unwrap_or(1),
        });
    }
    let nlinks = cfg
        .nodes
        .iter()
        .map(|n| n.addrs.len())
        .max()
        .unwrap_or(1)
        .max(1);
    for (n, _) in links.range(nlinks as u8..) {
        warnings.push(src.warning(
            "links",
            format!("link {n} is configured but no node has it; ignored"),
        ));
    }
    cfg.links = (0..nlinks)
        .map(|n| {
            links
                .get(&(n as u8))
                .cloned()
                .unwrap_or_else(|| LinkConfig::new(n as u8))
        })
        .collect();

    let t = &root.totem;
    cfg.totem = TotemTimings {
        token: ms(t.token_ms),
        token_coefficient: ms(t.token_coefficient_ms),
        token_retransmit: ms(t.token_retransmit_ms),
        token_retransmits_before_loss_const: t.token_retransmits_before_loss_const,
        hold: ms(t.hold_ms),
        join: ms(t.join_ms),
        consensus: ms(t.consensus_ms),
        merge: ms(t.merge_ms),
        fail_recv_const: t.fail_recv_const,
        seqno_unchanged_const: t.seqno_unchanged_const,
        window_size: t.window_size,
        max_messages: t.max_messages,
        netmtu: t.netmtu,
        max_message_size: t.max_message_size,
        send_queue_bytes: t.send_queue_bytes,
    };

    let c = &root.crypto;
    let cipher = match c.cipher.as_deref() {
        None | Some("aes256-gcm") => Cipher::Aes256Gcm,
        Some("chacha20-poly1305") => Cipher::ChaCha20Poly1305,
        Some("none") => Cipher::None,
        Some(o) => {
            return Err(err(
                &src,
                "crypto.cipher",
                format!("expected aes256-gcm, chacha20-poly1305 or none, got {o:?}"),
            ));
        }
    };
    let enabled = c.enabled.unwrap_or(cipher != Cipher::None);
    cfg.crypto = CryptoConfig {
        enabled,
        cipher: if enabled { cipher } else { Cipher::None },
        key_file: c
            .key_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE)),
        key: c.key.as_ref().map(|k| k.as_bytes().to_vec()),
    };

    let q = root.quorum;
    let dq = QuorumConfig::default();
    cfg.quorum = QuorumConfig {
        provider: q.provider,
        expected_votes: q.expected_votes,
        two_node: q.two_node.unwrap_or(dq.two_node),
        wait_for_all: q.wait_for_all,
        last_man_standing: q.last_man_standing.unwrap_or(false),
        last_man_standing_window: ms(q.last_man_standing_window_ms)
            .unwrap_or(dq.last_man_standing_window),
        auto_tie_breaker: q.auto_tie_breaker.unwrap_or(false),
        auto_tie_breaker_node: match q.auto_tie_breaker_node {
            None => TieBreakerNode::Lowest,
            Some(TieBreaker::Nodes(v)) => TieBreakerNode::Nodes(v),
            Some(TieBreaker::Word(w)) => match w.as_str() {
                "lowest" => TieBreakerNode::Lowest,
                "highest" => TieBreakerNode::Highest,
                _ => {
                    src.set(
                        "quorum.auto_tie_breaker_node",
                        "quorum.auto_tie_breaker_node",
                        lines.line("quorum.auto_tie_breaker_node"),
                    );
                    return Err(err(
                        &src,
                        "quorum.auto_tie_breaker_node",
                        format!(
                            "expected \"lowest\", \"highest\" or a list of node ids, got {w:?}"
                        ),
                    ));
                }
            },
        },
        allow_downscale: q.allow_downscale.unwrap_or(false),
        expected_votes_tracking: q.expected_votes_tracking.unwrap_or(false),
        device: q.device.map(|d| {
            let dd = QuorumDevice::default();
            QuorumDevice {
                model: d.model,
                votes: d.votes,
                timeout: ms(d.timeout_ms).unwrap_or(dd.timeout),
                sync_timeout: ms(d.sync_timeout_ms).unwrap_or(dd.sync_timeout),
                net: d.net.map(|n| {
                    let dn = QdeviceNet::default();
                    QdeviceNet {
                        host: n.host,
                        port: n.port.unwrap_or(dn.port),
                        algorithm: n.algorithm.unwrap_or(dn.algorithm),
                        tie_breaker: n.tie_breaker.unwrap_or(dn.tie_breaker),
                        tls: n.tls.unwrap_or(dn.tls),
                    }
                }),
                heuristics: d.heuristics.map(|h| {
                    let dh = QdeviceHeuristics::default();
                    QdeviceHeuristics {
                        mode: h.mode.unwrap_or(dh.mode),
                        timeout: ms(h.timeout_ms).unwrap_or(dh.timeout),
                        exec: h.exec.into_iter().collect(),
                    }
                }),
            }
        }),
    };

    let lg = root.logging;
    let dl = LoggingConfig::default();
    let level = |src: &SourceInfo,
                 canon: &str,
                 v: Option<String>|
     -> Result<Option<DebugLevel>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) => debug_level(&s).map(Some).ok_or_else(|| {
                err(
                    src,
                    canon,
                    format!("expected \"off\", \"on\" or \"trace\", got {s:?}"),
                )
            }),
        }
    };
    src.set(
        "logging.debug",
        "logging.debug",
        lines.line("logging.debug"),
    );
    let mut subsys = Vec::new();
    for (i, s) in lg.logger_subsys.into_iter().enumerate() {
        let canon = format!("logging.logger_subsys.{i}.debug");
        src.set(
            &canon,
            format!("logging.logger_subsys[{i}].debug"),
            lines.line(&canon),
        );
        if s.subsys.is_empty() {
            src.set(
                format!("logging.logger_subsys.{i}.subsys"),
                format!("logging.logger_subsys[{i}].subsys"),
                lines.line(&format!("logging.logger_subsys.{i}")),
            );
            return Err(err(
                &src,
                &format!("logging.logger_subsys.{i}.subsys"),
                "logger_subsys without subsys".into(),
            ));
        }
        subsys.push(LoggerSubsys {
            debug: level(&src, &canon, s.debug)?,
            subsys: s.subsys,
            to_stderr: s.to_stderr,
            to_logfile: s.to_logfile,
            to_syslog: s.to_syslog,
            logfile: s.logfile,
        });
    }
    cfg.logging = LoggingConfig {
        to_stderr: lg.to_stderr.unwrap_or(dl.to_stderr),
        to_logfile: lg.to_logfile.unwrap_or(dl.to_logfile),
        logfile: lg.logfile,
        to_syslog: lg.to_syslog.unwrap_or(dl.to_syslog),
        syslog_facility: lg.syslog_facility.unwrap_or(dl.syslog_facility),
        debug: level(&src, "logging.debug", lg.debug)?.unwrap_or_default(),
        timestamp: lg.timestamp.unwrap_or(dl.timestamp),
        fileline: lg.fileline.unwrap_or(dl.fileline),
        function_name: lg.function_name.unwrap_or(dl.function_name),
        blackbox: lg.blackbox.unwrap_or(dl.blackbox),
        logger_subsys: subsys,
    };

    cfg.source = src;
    cfg.validate()?;
    warnings.extend(cfg.lint());
    Ok((cfg, warnings))
}
