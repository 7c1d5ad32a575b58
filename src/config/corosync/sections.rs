//! What the keys of each corosync.conf section mean: one mapping per section, each
//! a [`Mapper::walk`] of the section with the section's keys.

use super::walk::{Entry, Key, Mapped, Unmapped};
use super::{Iface, Mapper, syntax::Section};
use crate::config::error::ConfigError;
use crate::config::model::*;

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

const DEVICE: Unmapped = Unmapped::no_effect(&["master_wins"]);

const HEURISTICS: Unmapped = Unmapped::no_effect(&["sync_timeout", "interval"]);

const DEVICE_NET: Unmapped = Unmapped::no_effect(&[
    "connect_timeout",
    "force_ip_version",
    "keep_active_partition_tie_breaker",
]);

const LOGGING: Unmapped = Unmapped::no_effect(&[
    "logfile_priority",
    "syslog_priority",
    "syslog_level",
    "tags",
]);

const LOGGER_SUBSYS: Unmapped = Unmapped::no_effect(&[
    "logfile_priority",
    "syslog_priority",
    "syslog_facility",
    "timestamp",
    "fileline",
    "function_name",
    "tags",
]);

const SYSTEM: Unmapped = Unmapped::no_effect(&[
    "sched_rr",
    "priority",
    "move_to_root_cgroup",
    "allow_knet_handle_fallback",
    "qb_ipc_type",
]);

use Mapped::{Unknown, Used};

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

    pub(super) fn nodelist(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.record_at("nodes", "nodelist", s.line);
        self.walk(s, "nodelist", Unmapped::NONE, |m, entry| {
            match entry {
                Entry::Section(node) if node.name == "node" => m.node(node)?,
                Entry::Key(key) if key.name() == "local_node_pos" => {
                    m.cfg.local_node_pos = Some(key.num()?);
                    m.record("local_node_pos", &key);
                }
                _ => return Ok(Unknown),
            }
            Ok(Used)
        })
    }

    fn node(&mut self, s: &Section) -> Result<(), ConfigError> {
        let i = self.cfg.nodes.len();
        let disp = format!("nodelist.node.{i}");
        let canon = format!("nodes.{i}");
        self.record_at(&canon, &disp, s.line);
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
        self.walk(s, &disp, Unmapped::NONE, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            let canonical = match key.name() {
                "nodeid" => {
                    node.node_id = key.num()?;
                    have_id = true;
                    format!("{canon}.node_id")
                }
                "name" => {
                    node.name = Some(key.string());
                    format!("{canon}.name")
                }
                "quorum_votes" => {
                    node.quorum_votes = key.num()?;
                    format!("{canon}.quorum_votes")
                }
                name => match ring_link(name) {
                    Some(link) => {
                        m.node_addr(&mut node, link, &key)?;
                        format!("{canon}.addrs.{link}")
                    }
                    None => return Ok(Unknown),
                },
            };
            m.record(&canonical, &key);
            Ok(Used)
        })?;
        if !have_id {
            node.node_id = self.derived_node_id(s, &disp, &node)?;
        }
        self.cfg.nodes.push(node);
        Ok(())
    }

    /// `ring<link>_addr`: the node's address on `link`, with the link's port unless
    /// the address names one.
    fn node_addr(
        &self,
        node: &mut NodeEntry,
        link: usize,
        key: &Key<'_>,
    ) -> Result<(), ConfigError> {
        if link >= MAX_LINKS {
            return Err(key.error(format!("link number {link} above 7")));
        }
        let addr =
            NodeAddr::parse(key.text(), self.link_port(link as u8)).map_err(|e| key.error(e))?;
        if node.addrs.len() <= link {
            node.addrs.resize(link + 1, None);
        }
        node.addrs[link] = Some(addr);
        Ok(())
    }

    /// The id of a node without `nodeid`: derived from an IPv4 ring0_addr as
    /// Corosync (udpu) does, with a warning; an error otherwise.
    fn derived_node_id(
        &mut self,
        s: &Section,
        disp: &str,
        node: &NodeEntry,
    ) -> Result<u32, ConfigError> {
        let key = format!("{disp}.nodeid");
        match node
            .addrs
            .first()
            .and_then(|a| a.as_ref())
            .and_then(NodeAddr::ip)
        {
            Some(std::net::IpAddr::V4(v4)) => {
                let id = u32::from(v4) & 0x7fff_ffff;
                self.warn(
                    s.line,
                    &key,
                    format!("no nodeid; derived {id} from ring0_addr as Corosync does"),
                );
                Ok(id)
            }
            _ => Err(self.err(
                s.line,
                &key,
                "node has no nodeid (required unless ring0_addr is an IPv4 address)",
            )),
        }
    }

    pub(super) fn quorum(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.record_at("quorum", "quorum", s.line);
        self.walk(s, "quorum", Unmapped::NONE, |m, entry| {
            let key = match entry {
                Entry::Section(d) if d.name == "device" => return m.device(d).map(|()| Used),
                Entry::Section(_) => return Ok(Unknown),
                Entry::Key(key) => key,
            };
            let q = &mut m.cfg.quorum;
            match key.name() {
                "provider" => {
                    q.provider = Some(key.string());
                    if key.text() != "corosync_votequorum" {
                        m.warn(
                            key.line(),
                            key.full(),
                            "only votequorum semantics are implemented",
                        );
                    }
                }
                "expected_votes" => q.expected_votes = Some(key.num()?),
                "two_node" => q.two_node = key.boolean()?,
                "wait_for_all" => q.wait_for_all = Some(key.boolean()?),
                "last_man_standing" => q.last_man_standing = key.boolean()?,
                "last_man_standing_window" => q.last_man_standing_window = key.ms()?,
                "auto_tie_breaker" => q.auto_tie_breaker = key.boolean()?,
                "auto_tie_breaker_node" => q.auto_tie_breaker_node = tie_breaker_node(&key)?,
                "allow_downscale" => q.allow_downscale = key.boolean()?,
                "expected_votes_tracking" => q.expected_votes_tracking = key.boolean()?,
                "votes" => m.warn(
                    key.line(),
                    key.full(),
                    "deprecated; use nodelist.node.quorum_votes (ignored)",
                ),
                _ => return Ok(Unknown),
            }
            m.record(key.full(), &key);
            Ok(Used)
        })
    }

    fn device(&mut self, s: &Section) -> Result<(), ConfigError> {
        let mut dev = self.cfg.quorum.device.take().unwrap_or_default();
        self.walk(s, "quorum.device", DEVICE, |m, entry| {
            let key = match entry {
                Entry::Section(n) if n.name == "net" => {
                    dev.net = Some(m.device_net(n, dev.net.take().unwrap_or_default())?);
                    return Ok(Used);
                }
                Entry::Section(h) if h.name == "heuristics" => {
                    dev.heuristics = Some(m.device_heuristics(h)?);
                    return Ok(Used);
                }
                Entry::Section(_) => return Ok(Unknown),
                Entry::Key(key) => key,
            };
            match key.name() {
                "model" => dev.model = key.string(),
                "votes" => dev.votes = Some(key.num()?),
                "timeout" => dev.timeout = key.ms()?,
                "sync_timeout" => dev.sync_timeout = key.ms()?,
                _ => return Ok(Unknown),
            }
            m.record(key.full(), &key);
            Ok(Used)
        })?;
        self.cfg.quorum.device = Some(dev);
        Ok(())
    }

    fn device_heuristics(&mut self, s: &Section) -> Result<QdeviceHeuristics, ConfigError> {
        let mut h = QdeviceHeuristics::default();
        self.walk(s, "quorum.device.heuristics", HEURISTICS, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            match key.name() {
                "mode" => {
                    h.mode = key
                        .one_of(&[("off", "off"), ("sync", "sync"), ("on", "on")])?
                        .to_string()
                }
                "timeout" => h.timeout = key.ms()?,
                name if name.starts_with("exec_") && name.len() > 5 => {
                    h.exec.push((name[5..].to_string(), key.string()))
                }
                _ => return Ok(Unknown),
            }
            m.record(key.full(), &key);
            Ok(Used)
        })?;
        Ok(h)
    }

    fn device_net(&mut self, s: &Section, mut net: QdeviceNet) -> Result<QdeviceNet, ConfigError> {
        self.walk(s, "quorum.device.net", DEVICE_NET, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            match key.name() {
                "host" => net.host = key.string(),
                "port" => net.port = key.num()?,
                "algorithm" => net.algorithm = key.string(),
                "tie_breaker" => net.tie_breaker = key.string(),
                "tls" => net.tls = key.string(),
                _ => return Ok(Unknown),
            }
            m.record(key.full(), &key);
            Ok(Used)
        })?;
        Ok(net)
    }

    pub(super) fn logging(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.walk(s, "logging", LOGGING, |m, entry| {
            let key = match entry {
                Entry::Section(sub) if sub.name == "logger_subsys" => {
                    return m.logger_subsys(sub).map(|()| Used);
                }
                Entry::Section(_) => return Ok(Unknown),
                Entry::Key(key) => key,
            };
            let lg = &mut m.cfg.logging;
            match key.name() {
                "to_stderr" => lg.to_stderr = key.boolean()?,
                "to_logfile" => lg.to_logfile = key.boolean()?,
                "to_syslog" => lg.to_syslog = key.boolean()?,
                "logfile" => lg.logfile = Some(key.file_path()),
                "syslog_facility" => lg.syslog_facility = key.string(),
                "debug" => lg.debug = key.debug_level()?,
                "timestamp" => {
                    lg.timestamp = key.text().eq_ignore_ascii_case("hires")
                        || key.boolean().map_err(|_| {
                            key.error(format!("expected on, off or hires, got {:?}", key.text()))
                        })?
                }
                "fileline" => lg.fileline = key.boolean()?,
                "function_name" => lg.function_name = key.boolean()?,
                "blackbox" => lg.blackbox = key.boolean()?,
                _ => return Ok(Unknown),
            }
            m.record(key.full(), &key);
            Ok(Used)
        })
    }

    fn logger_subsys(&mut self, s: &Section) -> Result<(), ConfigError> {
        let mut sub = LoggerSubsys::default();
        self.walk(s, "logging.logger_subsys", LOGGER_SUBSYS, |_, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            match key.name() {
                "subsys" => sub.subsys = key.string(),
                "debug" => sub.debug = Some(key.debug_level()?),
                "to_stderr" => sub.to_stderr = Some(key.boolean()?),
                "to_logfile" => sub.to_logfile = Some(key.boolean()?),
                "to_syslog" => sub.to_syslog = Some(key.boolean()?),
                "logfile" => sub.logfile = Some(key.file_path()),
                _ => return Ok(Unknown),
            }
            Ok(Used)
        })?;
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

    pub(super) fn system(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.walk(s, "system", SYSTEM, |m, entry| match entry {
            Entry::Key(key) if key.name() == "state_dir" => {
                m.cfg.state_dir = key.file_path();
                m.record("state_dir", &key);
                Ok(Used)
            }
            _ => Ok(Unknown),
        })
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
        "netmtu" => t.netmtu = Some(key.num()?),
        "max_message_size" => t.max_message_size = Some(key.num()?),
        "send_queue_bytes" => t.send_queue_bytes = Some(key.num()?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// The link of a `ring<N>_addr` key (one or two digits), `None` for other keys.
fn ring_link(name: &str) -> Option<usize> {
    let n = name.strip_prefix("ring")?.strip_suffix("_addr")?;
    match n.parse() {
        Ok(link) if n.len() <= 2 => Some(link),
        _ => None,
    }
}

/// `auto_tie_breaker_node`: `lowest`, `highest` or a list of node ids.
fn tie_breaker_node(key: &Key<'_>) -> Result<TieBreakerNode, ConfigError> {
    match key.text() {
        "lowest" => Ok(TieBreakerNode::Lowest),
        "highest" => Ok(TieBreakerNode::Highest),
        list => list
            .split_whitespace()
            .map(|n| n.parse::<u32>())
            .collect::<Result<_, _>>()
            .map(TieBreakerNode::Nodes)
            .map_err(|_| {
                key.error(format!(
                    "expected lowest, highest or node ids, got {list:?}"
                ))
            }),
    }
}
