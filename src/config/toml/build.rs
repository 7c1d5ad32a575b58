//! The model from a parsed TOML file, one section at a time: each step checks and
//! converts its section and records where its keys are (for errors found later, by
//! the model's validation).

use super::lines::{Lines, pretty};
use super::schema::{self, Root, TieBreaker};
use crate::config::error::{ConfigError, Warning};
use crate::config::fencing::*;
use crate::config::model::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
    ("totem.send_hold_us", "totem.send_hold_us"),
    ("totem.netmtu", "totem.netmtu"),
    ("totem.max_message_size", "totem.max_message_size"),
    ("totem.send_queue_bytes", "totem.send_queue_bytes"),
    ("crypto.cipher", "crypto.cipher"),
    ("crypto.key_file", "crypto.key_file"),
    ("crypto.key", "crypto.key"),
    ("quorum.two_node", "quorum.two_node"),
    ("nodes", "nodes"),
];

/// Builds a [`ClusterConfig`] and its [`SourceInfo`] from one file.
pub(super) struct Build<'a> {
    lines: &'a Lines,
    src: SourceInfo,
}

impl<'a> Build<'a> {
    /// A build for `file`, whose keys are at `lines`.
    pub(super) fn new(file: &str, lines: &'a Lines) -> Self {
        let mut src = SourceInfo::new(file);
        for (canon, path) in FIELDS {
            src.set(*canon, pretty(path), lines.line(path));
        }
        Build { lines, src }
    }

    /// The model from `root`, every section checked; warnings are appended.
    pub(super) fn config(
        mut self,
        root: Root,
        warnings: &mut Vec<Warning>,
    ) -> Result<ClusterConfig, ConfigError> {
        let transport = self.transport(root.transport.as_deref(), root.multicast.as_ref())?;
        let link_mode = self.link_mode(root.link_mode.as_deref())?;
        let links = self.links(&root.links)?;
        let nodes = self.nodes(&root.nodes, &links)?;
        let links = self.used_links(links, &nodes, warnings);
        let totem = totem_timings(&root.totem);
        let crypto = self.crypto(&root.crypto)?;
        let quorum = self.quorum(root.quorum)?;
        let logging = self.logging(root.logging)?;
        if root.compat.ipc.is_some() {
            self.record("compat.ipc", "compat.ipc", "compat.ipc");
        }
        let ipc_transport = match root.compat.ipc_transport.as_deref() {
            None | Some("shm") => crate::compat::qb::IpcTransport::Shm,
            Some("socket") => crate::compat::qb::IpcTransport::Socket,
            Some(other) => {
                return Err(self.src.error(
                    "compat.ipc_transport",
                    format!("expected \"shm\" or \"socket\", got {other:?}"),
                ));
            }
        };
        let dlm_lock_traffic = match root.dlm.lock_traffic.as_deref() {
            None => None,
            Some(t) => Some(DlmLockTraffic::parse(t).ok_or_else(|| {
                self.src.error(
                    "dlm.lock_traffic",
                    format!("expected \"direct\" or \"ring\", got {t:?}"),
                )
            })?),
        };
        if dlm_lock_traffic.is_some() {
            self.record("dlm.lock_traffic", "dlm.lock_traffic", "dlm.lock_traffic");
        }
        let fencing = match root.fencing {
            Some(f) => self.fencing(f)?,
            None => FencingConfig::default(),
        };
        let mut cfg = ClusterConfig {
            cluster_name: root.cluster_name.unwrap_or_default(),
            nodes,
            local_node_id: root.local_node_id,
            local_node_pos: root.local_node_pos,
            transport,
            links,
            link_mode,
            totem,
            crypto,
            quorum,
            logging,
            fencing,
            cib: root.cib.as_ref().is_some_and(|c| c.enabled.unwrap_or(true)),
            cib_schemas: root.cib.as_ref().and_then(|c| c.schemas.clone()),
            cib_require_quorum: root.cib.as_ref().and_then(|c| c.require_quorum),
            compat_ipc: root.compat.ipc.unwrap_or(false),
            ipc_transport,
            ipc_users: root.compat.uids.clone(),
            ipc_groups: root.compat.gids.clone(),
            dlm_lock_traffic,
            ..ClusterConfig::default()
        };
        if let Some(dir) = root.state_dir {
            cfg.state_dir = dir;
        }
        cfg.source = self.src;
        Ok(cfg)
    }

    /// Records model key `canonical`, spelt `display`, at the line of TOML path
    /// `path` (or its nearest ancestor).
    fn record(&mut self, canonical: impl Into<String>, display: impl Into<String>, path: &str) {
        let line = self.lines.line(path);
        self.src.set(canonical, display, line);
    }

    fn transport(
        &self,
        name: Option<&str>,
        multicast: Option<&schema::Multicast>,
    ) -> Result<Transport, ConfigError> {
        match name {
            None | Some("udpu") => Ok(Transport::Udpu),
            Some("knet") => Ok(Transport::Knet),
            Some("udp") => Ok(Transport::Udp {
                mcast_addr: multicast.and_then(|m| m.addr),
                ttl: multicast.and_then(|m| m.ttl).unwrap_or(1),
            }),
            Some(o) => Err(self.src.error(
                "transport",
                format!("expected udpu, udp or knet, got {o:?}"),
            )),
        }
    }

    fn link_mode(&self, name: Option<&str>) -> Result<LinkMode, ConfigError> {
        match name {
            None | Some("passive") => Ok(LinkMode::Passive),
            Some("active") => Ok(LinkMode::Active),
            Some("rr") => Ok(LinkMode::Rr),
            Some(o) => Err(self.src.error(
                "link_mode",
                format!("expected passive, active or rr, got {o:?}"),
            )),
        }
    }

    /// The `[[links]]` entries by link number (a missing number is the entry's
    /// position).
    fn links(&mut self, links: &[schema::Link]) -> Result<BTreeMap<u8, LinkConfig>, ConfigError> {
        let mut out = BTreeMap::new();
        for (i, l) in links.iter().enumerate() {
            let canon = format!("links.{i}");
            self.record(&canon, format!("links[{i}]"), &canon);
            self.record(
                format!("{canon}.link_number"),
                format!("links[{i}].number"),
                &format!("{canon}.number"),
            );
            let n = l.number.unwrap_or(i.min(255) as u8);
            if usize::from(n) >= MAX_LINKS {
                return Err(self.src.error(
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
            out.insert(n, lc);
        }
        Ok(out)
    }

    /// The `[[nodes]]` entries; an address without a port takes its link's.
    fn nodes(
        &mut self,
        nodes: &[schema::Node],
        links: &BTreeMap<u8, LinkConfig>,
    ) -> Result<Vec<NodeEntry>, ConfigError> {
        let port_of = |n: usize| {
            links
                .get(&(n as u8))
                .map(|l| l.port)
                .unwrap_or_else(|| LinkConfig::new(n as u8).port)
        };
        let mut out = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let canon = format!("nodes.{i}");
            self.record(&canon, format!("nodes[{i}]"), &canon);
            self.record(
                format!("{canon}.node_id"),
                format!("nodes[{i}].id"),
                &format!("{canon}.id"),
            );
            for l in 0..MAX_LINKS {
                let addr = format!("{canon}.addrs.{l}");
                self.record(&addr, format!("nodes[{i}].addrs[{l}]"), &addr);
            }
            if n.addrs.len() > MAX_LINKS {
                return Err(self
                    .src
                    .error(&format!("{canon}.addrs.8"), "link number above 7"));
            }
            let mut addrs = Vec::new();
            for (l, a) in n.addrs.iter().enumerate() {
                if a.is_empty() || a == "none" {
                    addrs.push(None);
                    continue;
                }
                let addr = NodeAddr::parse(a, port_of(l))
                    .map_err(|e| self.src.error(&format!("{canon}.addrs.{l}"), e))?;
                addrs.push(Some(addr));
            }
            out.push(NodeEntry {
                node_id: n.id,
                name: n.name.clone(),
                addrs,
                quorum_votes: n.quorum_votes.unwrap_or(1),
            });
        }
        Ok(out)
    }

    /// One link per address a node has, configured or default; configured links
    /// beyond those are warned about.
    fn used_links(
        &self,
        links: BTreeMap<u8, LinkConfig>,
        nodes: &[NodeEntry],
        warnings: &mut Vec<Warning>,
    ) -> Vec<LinkConfig> {
        let nlinks = nodes
            .iter()
            .map(|n| n.addrs.len())
            .max()
            .unwrap_or(1)
            .max(1);
        for (n, _) in links.range(nlinks as u8..) {
            warnings.push(self.src.warning(
                "links",
                format!("link {n} is configured but no node has it; ignored"),
            ));
        }
        (0..nlinks)
            .map(|n| {
                links
                    .get(&(n as u8))
                    .cloned()
                    .unwrap_or_else(|| LinkConfig::new(n as u8))
            })
            .collect()
    }

    fn crypto(&self, c: &schema::Crypto) -> Result<CryptoConfig, ConfigError> {
        let cipher = match c.cipher.as_deref() {
            None | Some("aes256-gcm") => Cipher::Aes256Gcm,
            Some("chacha20-poly1305") => Cipher::ChaCha20Poly1305,
            Some("none") => Cipher::None,
            Some(o) => {
                return Err(self.src.error(
                    "crypto.cipher",
                    format!("expected aes256-gcm, chacha20-poly1305 or none, got {o:?}"),
                ));
            }
        };
        let enabled = c.enabled.unwrap_or(cipher != Cipher::None);
        Ok(CryptoConfig {
            enabled,
            cipher: if enabled { cipher } else { Cipher::None },
            key_file: c
                .key_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE)),
            key: c.key.as_ref().map(|k| k.as_bytes().to_vec()),
        })
    }

    fn quorum(&mut self, q: schema::Quorum) -> Result<QuorumConfig, ConfigError> {
        let dq = QuorumConfig::default();
        Ok(QuorumConfig {
            provider: q.provider,
            expected_votes: q.expected_votes,
            two_node: q.two_node.unwrap_or(dq.two_node),
            wait_for_all: q.wait_for_all,
            last_man_standing: q.last_man_standing.unwrap_or(false),
            last_man_standing_window: ms(q.last_man_standing_window_ms)
                .unwrap_or(dq.last_man_standing_window),
            auto_tie_breaker: q.auto_tie_breaker.unwrap_or(false),
            auto_tie_breaker_node: self.tie_breaker_node(q.auto_tie_breaker_node)?,
            allow_downscale: q.allow_downscale.unwrap_or(false),
            expected_votes_tracking: q.expected_votes_tracking.unwrap_or(false),
            device: q.device.map(quorum_device),
        })
    }

    fn fencing(&mut self, f: schema::Fencing) -> Result<FencingConfig, ConfigError> {
        let d = FencingConfig::default();
        self.record("fencing", "fencing", "fencing");
        let action = match f.action.as_deref() {
            None | Some("reboot") => FencingAction::Reboot,
            Some("off") => FencingAction::Off,
            Some(o) => {
                return Err(self.src.error(
                    "fencing.action",
                    format!("expected reboot or off, got {o:?}"),
                ));
            }
        };
        let no_quorum_policy = match f.no_quorum_policy.as_deref() {
            None | Some("stop") => NoQuorumPolicy::Stop,
            Some("ignore") => NoQuorumPolicy::Ignore,
            Some("freeze") => NoQuorumPolicy::Freeze,
            Some("suicide" | "fence") => NoQuorumPolicy::Suicide,
            Some(o) => {
                return Err(self.src.error(
                    "fencing.no_quorum_policy",
                    format!("expected stop, ignore, freeze or suicide, got {o:?}"),
                ));
            }
        };
        let watchdog = match f.watchdog.as_deref() {
            None => WatchdogConfig::Off,
            Some(w) => WatchdogConfig::parse(w).ok_or_else(|| {
                self.src.error(
                    "fencing.watchdog",
                    format!("expected off, process or a device path (/dev/watchdog), got {w:?}"),
                )
            })?,
        };
        let mut devices = Vec::new();
        for (i, dev) in f.devices.into_iter().enumerate() {
            let canon = format!("fencing.device.{i}");
            self.record(
                &canon,
                format!("fencing.devices[{i}]"),
                &format!("fencing.devices.{i}"),
            );
            let mut params = Vec::new();
            for (k, v) in dev.params {
                let text = match v {
                    ::toml::Value::String(s) => s,
                    ::toml::Value::Integer(n) => n.to_string(),
                    ::toml::Value::Boolean(b) => b.to_string(),
                    ::toml::Value::Float(x) => x.to_string(),
                    _ => {
                        return Err(self.src.error(
                            &canon,
                            format!("parameter {k:?}: expected a string, number or boolean"),
                        ));
                    }
                };
                params.push((k, text));
            }
            devices.push(FenceDeviceConfig {
                id: dev.id,
                agent: dev.agent,
                params,
            });
        }
        let mut levels = Vec::new();
        for (i, l) in f.levels.into_iter().enumerate() {
            let canon = format!("fencing.level.{i}");
            self.record(
                &canon,
                format!("fencing.levels[{i}]"),
                &format!("fencing.levels.{i}"),
            );
            let target = match (
                l.target,
                l.target_pattern,
                l.target_attribute,
                l.target_value,
            ) {
                (Some(n), None, None, None) => LevelTarget::Node(n),
                (None, Some(p), None, None) => LevelTarget::Pattern(p),
                (None, None, Some(name), Some(value)) => LevelTarget::Attribute { name, value },
                _ => {
                    return Err(self.src.error(
                        &canon,
                        "a level needs exactly one of target, target_pattern, or target_attribute with target_value",
                    ));
                }
            };
            levels.push(FenceLevelConfig {
                index: l.index,
                target,
                devices: l.devices,
            });
        }
        Ok(FencingConfig {
            enabled: f.enabled.unwrap_or(true),
            action,
            timeout: ms(f.timeout_ms).unwrap_or(d.timeout),
            max_attempts: f.max_attempts.unwrap_or(d.max_attempts),
            priority_delay: ms(f.priority_fencing_delay_ms).unwrap_or(d.priority_delay),
            no_quorum_policy,
            watchdog,
            fencing_watchdog_timeout: ms(f.fencing_watchdog_timeout_ms)
                .unwrap_or(d.fencing_watchdog_timeout),
            watchdog_timeout: ms(f.watchdog_timeout_ms).unwrap_or(d.watchdog_timeout),
            startup_fencing: f.startup_fencing.unwrap_or(d.startup_fencing),
            dc_deadtime: ms(f.dc_deadtime_ms).unwrap_or(d.dc_deadtime),
            node_pending_timeout: ms(f.node_pending_timeout_ms).unwrap_or(d.node_pending_timeout),
            devices,
            levels,
            agent_dir: f.agent_dir.unwrap_or(d.agent_dir),
        })
    }

    fn tie_breaker_node(&mut self, t: Option<TieBreaker>) -> Result<TieBreakerNode, ConfigError> {
        let key = "quorum.auto_tie_breaker_node";
        match t {
            None => Ok(TieBreakerNode::Lowest),
            Some(TieBreaker::Nodes(v)) => Ok(TieBreakerNode::Nodes(v)),
            Some(TieBreaker::Word(w)) => match w.as_str() {
                "lowest" => Ok(TieBreakerNode::Lowest),
                "highest" => Ok(TieBreakerNode::Highest),
                _ => {
                    self.record(key, key, key);
                    Err(self.src.error(
                        key,
                        format!(
                            "expected \"lowest\", \"highest\" or a list of node ids, got {w:?}"
                        ),
                    ))
                }
            },
        }
    }

    fn logging(&mut self, lg: schema::Logging) -> Result<LoggingConfig, ConfigError> {
        let dl = LoggingConfig::default();
        self.record("logging.debug", "logging.debug", "logging.debug");
        let mut subsys = Vec::new();
        for (i, s) in lg.logger_subsys.into_iter().enumerate() {
            subsys.push(self.logger_subsys(i, s)?);
        }
        Ok(LoggingConfig {
            to_stderr: lg.to_stderr.unwrap_or(dl.to_stderr),
            to_logfile: lg.to_logfile.unwrap_or(dl.to_logfile),
            logfile: lg.logfile,
            to_syslog: lg.to_syslog.unwrap_or(dl.to_syslog),
            syslog_facility: lg.syslog_facility.unwrap_or(dl.syslog_facility),
            debug: self
                .debug_level("logging.debug", lg.debug)?
                .unwrap_or_default(),
            timestamp: lg.timestamp.unwrap_or(dl.timestamp),
            fileline: lg.fileline.unwrap_or(dl.fileline),
            function_name: lg.function_name.unwrap_or(dl.function_name),
            blackbox: lg.blackbox.unwrap_or(dl.blackbox),
            logger_subsys: subsys,
        })
    }

    /// `[[logging.logger_subsys]]` entry `i`.
    fn logger_subsys(&mut self, i: usize, s: schema::Subsys) -> Result<LoggerSubsys, ConfigError> {
        let debug = format!("logging.logger_subsys.{i}.debug");
        self.record(&debug, format!("logging.logger_subsys[{i}].debug"), &debug);
        if s.subsys.is_empty() {
            let key = format!("logging.logger_subsys.{i}.subsys");
            self.record(
                &key,
                format!("logging.logger_subsys[{i}].subsys"),
                &format!("logging.logger_subsys.{i}"),
            );
            return Err(self.src.error(&key, "logger_subsys without subsys"));
        }
        Ok(LoggerSubsys {
            debug: self.debug_level(&debug, s.debug)?,
            subsys: s.subsys,
            to_stderr: s.to_stderr,
            to_logfile: s.to_logfile,
            to_syslog: s.to_syslog,
            logfile: s.logfile,
        })
    }

    /// A debug level named `"off"`, `"on"` or `"trace"` (model key `canonical`).
    fn debug_level(
        &self,
        canonical: &str,
        name: Option<String>,
    ) -> Result<Option<DebugLevel>, ConfigError> {
        let Some(name) = name else {
            return Ok(None);
        };
        match name.as_str() {
            "off" => Ok(Some(DebugLevel::Off)),
            "on" => Ok(Some(DebugLevel::On)),
            "trace" => Ok(Some(DebugLevel::Trace)),
            _ => Err(self.src.error(
                canonical,
                format!("expected \"off\", \"on\" or \"trace\", got {name:?}"),
            )),
        }
    }
}

fn ms(v: Option<u64>) -> Option<Duration> {
    v.map(Duration::from_millis)
}

fn totem_timings(t: &schema::Totem) -> TotemTimings {
    TotemTimings {
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
        send_hold: t.send_hold_us.map(Duration::from_micros),
        netmtu: t.netmtu,
        max_message_size: t.max_message_size,
        send_queue_bytes: t.send_queue_bytes,
    }
}

/// `[quorum.device]`, the model's defaults where a key is missing.
fn quorum_device(d: schema::Device) -> QuorumDevice {
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
}
