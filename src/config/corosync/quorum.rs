//! The `quorum` section, its `device` and the device's `net` and `heuristics`.

use super::walk::{Entry, Key, Mapped, Unmapped};
use super::{Mapper, syntax::Section};
use crate::config::error::ConfigError;
use crate::config::model::*;
use Mapped::{Unknown, Used};

const DEVICE: Unmapped = Unmapped::no_effect(&["master_wins"]);

const HEURISTICS: Unmapped = Unmapped::no_effect(&["sync_timeout", "interval"]);

const DEVICE_NET: Unmapped = Unmapped::no_effect(&[
    "connect_timeout",
    "force_ip_version",
    "keep_active_partition_tie_breaker",
]);

impl Mapper<'_> {
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
