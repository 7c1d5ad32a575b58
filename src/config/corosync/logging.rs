//! The `logging` section with its `logger_subsys` subsections, and `system`.

use super::walk::{Entry, Mapped, Unmapped};
use super::{Mapper, syntax::Section};
use crate::config::error::ConfigError;
use crate::config::model::*;
use Mapped::{Unknown, Used};

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
    "priority",
    "move_to_root_cgroup",
    "allow_knet_handle_fallback",
]);

impl Mapper<'_> {
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
            // phalanxd asks for SCHED_RR unless this says no (docs/phalanxd.md).
            Entry::Key(key) if key.name() == "sched_rr" => {
                m.cfg.sched_rr = Some(key.boolean()?);
                m.record("sched_rr", &key);
                Ok(Used)
            }
            // Corosync's own switch of the libqb transport (`native` is shm
            // on Linux); the same setting as `compat.ipc_transport`.
            Entry::Key(key) if key.name() == "qb_ipc_type" => {
                m.cfg.ipc_transport = match key.text().to_ascii_lowercase().as_str() {
                    "native" | "shm" => crate::compat::qb::IpcTransport::Shm,
                    "socket" => crate::compat::qb::IpcTransport::Socket,
                    other => {
                        return Err(
                            key.error(format!("expected native, shm or socket, got {other:?}"))
                        );
                    }
                };
                m.record("qb_ipc_type", &key);
                Ok(Used)
            }
            _ => Ok(Unknown),
        })
    }
}
