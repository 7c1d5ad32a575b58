//! The `fencing` section (Phalanx's own; Corosync has none): options, `device`
//! subsections (every key but `id` and `agent` is a device parameter, kept in file
//! order) and `level` subsections.

use super::walk::{Entry, Mapped, Unmapped};
use super::{Mapper, syntax::Section};
use crate::config::error::ConfigError;
use crate::config::fencing::*;
use Mapped::{Unknown, Used};

impl Mapper<'_> {
    pub(super) fn fencing(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.record_at("fencing", "fencing", s.line);
        self.cfg.fencing.enabled = true;
        self.walk(s, "fencing", Unmapped::NONE, |m, entry| {
            let key = match entry {
                Entry::Section(d) if d.name == "device" => {
                    return m.fence_device(d).map(|()| Used);
                }
                Entry::Section(l) if l.name == "level" => return m.fence_level(l).map(|()| Used),
                Entry::Section(_) => return Ok(Unknown),
                Entry::Key(key) => key,
            };
            let f = &mut m.cfg.fencing;
            match key.name() {
                "enabled" => f.enabled = key.boolean()?,
                "action" => {
                    f.action = key.one_of(&[
                        ("reboot", FencingAction::Reboot),
                        ("off", FencingAction::Off),
                    ])?
                }
                "timeout" => f.timeout = key.ms()?,
                "max_attempts" => f.max_attempts = key.num()?,
                "priority_fencing_delay" => f.priority_delay = key.ms()?,
                "watchdog_timeout" => f.watchdog_timeout = key.ms()?,
                "fencing_watchdog_timeout" => f.fencing_watchdog_timeout = key.ms()?,
                "startup_fencing" => f.startup_fencing = key.boolean()?,
                "dc_deadtime" => f.dc_deadtime = key.ms()?,
                "node_pending_timeout" => f.node_pending_timeout = key.ms()?,
                "watchdog" => {
                    f.watchdog = WatchdogConfig::parse(key.text()).ok_or_else(|| {
                        key.error(format!(
                            "expected off, process or a device path (/dev/watchdog), got {:?}",
                            key.text()
                        ))
                    })?
                }
                "agent_dir" => f.agent_dir = key.file_path(),
                "no_quorum_policy" => {
                    f.no_quorum_policy = key.one_of(&[
                        ("stop", NoQuorumPolicy::Stop),
                        ("ignore", NoQuorumPolicy::Ignore),
                        ("freeze", NoQuorumPolicy::Freeze),
                        ("suicide", NoQuorumPolicy::Suicide),
                        ("fence", NoQuorumPolicy::Suicide),
                    ])?
                }
                _ => return Ok(Unknown),
            }
            m.record(key.full(), &key);
            Ok(Used)
        })
    }

    fn fence_device(&mut self, s: &Section) -> Result<(), ConfigError> {
        let i = self.cfg.fencing.devices.len();
        let path = format!("fencing.device.{i}");
        self.record_at(&path, "fencing.device", s.line);
        let mut dev = FenceDeviceConfig {
            id: String::new(),
            agent: String::new(),
            params: Vec::new(),
        };
        self.walk(s, "fencing.device", Unmapped::NONE, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            match key.name() {
                "id" => dev.id = key.string(),
                "agent" => dev.agent = key.string(),
                name => {
                    // The last of a repeated parameter wins (the walk warned).
                    dev.params.retain(|(k, _)| k != name);
                    dev.params.push((name.to_string(), key.string()));
                }
            }
            m.record_at(&format!("{path}.{}", key.name()), key.full(), key.line());
            Ok(Used)
        })?;
        self.cfg.fencing.devices.push(dev);
        Ok(())
    }

    fn fence_level(&mut self, s: &Section) -> Result<(), ConfigError> {
        let i = self.cfg.fencing.levels.len();
        let path = format!("fencing.level.{i}");
        self.record_at(&path, "fencing.level", s.line);
        let mut index = None;
        let mut devices = Vec::new();
        let (mut node, mut pattern, mut attr, mut value) = (None, None, None, None);
        self.walk(s, "fencing.level", Unmapped::NONE, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            match key.name() {
                "index" => index = Some(key.num::<u8>()?),
                "devices" => devices = device_list(key.text()),
                "target" => node = Some(key.string()),
                "target_pattern" => pattern = Some(key.string()),
                "target_attribute" => attr = Some(key.string()),
                "target_value" => value = Some(key.string()),
                _ => return Ok(Unknown),
            }
            m.record_at(&format!("{path}.{}", key.name()), key.full(), key.line());
            Ok(Used)
        })?;
        let err = |key: &str, msg: &str| self.cfg.source.error(&format!("{path}.{key}"), msg);
        let target = match (node, pattern, attr, value) {
            (Some(n), None, None, None) => LevelTarget::Node(n),
            (None, Some(p), None, None) => LevelTarget::Pattern(p),
            (None, None, Some(name), Some(value)) => LevelTarget::Attribute { name, value },
            (None, None, Some(_), None) => {
                return Err(err(
                    "target_attribute",
                    "target_attribute needs target_value",
                ));
            }
            _ => {
                return Err(err(
                    "target",
                    "a level needs exactly one of target, target_pattern, or target_attribute with target_value",
                ));
            }
        };
        let Some(index) = index else {
            return Err(err("index", "a level needs an index (1..=9)"));
        };
        self.cfg.fencing.levels.push(FenceLevelConfig {
            index,
            target,
            devices,
        });
        Ok(())
    }
}
