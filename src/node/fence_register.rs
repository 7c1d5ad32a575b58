//! Run-time registration of fencing devices and levels through the admin socket
//! (`phalanx-fence --register/--deregister/--register-level/--deregister-level`,
//! as `stonith_admin` offers them).
//!
//! Every node's fencer must agree on its devices, so a run-time registration is
//! not a change to this node's fencer alone: it becomes a CIB change (a
//! `primitive class="stonith"` marked `phalanx-origin=run-time`, or a
//! `fencing-level`), which the CIB replicates in agreed order and every node's
//! Stack then reconciles its fencer with — the path CIB-defined devices already
//! take. A node that joins later gets them with the CIB. The requests are checked
//! here first, so bad input is a typed answer, never a half-made change.

use super::admin::NodeAdmin;
use crate::admin::Response;
use crate::stack::fence_cib::{CibFencing, fencing_in_cib};
use phalanx_cib::ops::{CallOptions, CibOp, Scope};
use phalanx_cib::xml::Element;
use phalanx_fence::core::LevelTarget;
use std::collections::BTreeMap;
use std::fmt;

/// The meta attribute that marks a device registered at run time.
pub const ORIGIN_ATTR: &str = "phalanx-origin";
/// Its value.
pub const ORIGIN_RUN_TIME: &str = "run-time";

/// Why a run-time registration was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The node runs without fencing or without the CIB (which carries run-time
    /// registrations to every node).
    Unavailable(&'static str),
    /// A device id or parameter name that cannot be an XML id / option name.
    BadName(String),
    /// A parameter value with a newline (agents read one option per line).
    BadValue(String),
    /// No such executable in the agent directory.
    UnknownAgent(String),
    /// The device id is already registered (or defined in the CIB).
    Duplicate(String),
    /// No such device.
    UnknownDevice(String),
    /// The device comes from the configuration file: change it there.
    ConfigFileDevice(String),
    /// A level index outside 1..=9, or a level without devices.
    BadLevel(String),
    /// No configured node has that name.
    UnknownNode(String),
    /// The CIB refused or could not apply the change.
    Cib(String),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Unavailable(why) => write!(f, "not available: {why}"),
            RegisterError::BadName(n) => write!(
                f,
                "bad name {n:?}: letters, digits, '-', '_', '.', not starting with a digit"
            ),
            RegisterError::BadValue(n) => write!(f, "bad value of {n}: no newlines"),
            RegisterError::UnknownAgent(a) => write!(f, "unknown agent {a}"),
            RegisterError::Duplicate(d) => write!(f, "device {d} is already registered"),
            RegisterError::UnknownDevice(d) => write!(f, "unknown device {d}"),
            RegisterError::ConfigFileDevice(d) => write!(
                f,
                "device {d} is defined in the configuration file; change it there"
            ),
            RegisterError::BadLevel(why) => write!(f, "bad level: {why}"),
            RegisterError::UnknownNode(n) => write!(f, "unknown node {n}"),
            RegisterError::Cib(why) => write!(f, "the CIB refused the change: {why}"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// An XML id / option name: `[A-Za-z_][A-Za-z0-9_.-]*`.
fn check_name(name: &str) -> Result<(), RegisterError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(RegisterError::BadName(name.to_string()))
    }
}

/// A name made id-safe (for the ids of generated elements).
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn nvpair(id: String, name: &str, value: &str) -> Element {
    Element::new("nvpair")
        .with_attr("id", id)
        .with_attr("name", name)
        .with_attr("value", value)
}

/// The CIB primitive of a run-time device.
fn device_primitive(device: &str, agent: &str, params: &BTreeMap<String, String>) -> Element {
    let mut ia = Element::new("instance_attributes").with_attr("id", format!("{device}-ia"));
    for (n, v) in params {
        ia.push_child(nvpair(format!("{device}-ia-{n}"), n, v));
    }
    let meta = Element::new("meta_attributes")
        .with_attr("id", format!("{device}-meta"))
        .with_child(nvpair(
            format!("{device}-meta-origin"),
            ORIGIN_ATTR,
            ORIGIN_RUN_TIME,
        ));
    Element::new("primitive")
        .with_attr("id", device)
        .with_attr("class", "stonith")
        .with_attr("type", agent)
        .with_child(ia)
        .with_child(meta)
}

impl NodeAdmin {
    /// The fencing definitions of the CIB as this node has it, and the ids of the
    /// devices its fencer has registered.
    fn fencing_now(&self) -> Result<(CibFencing, Vec<String>, bool), RegisterError> {
        let status = self
            .fence
            .status()
            .ok_or(RegisterError::Unavailable("fencing is not configured"))?;
        let reply = self
            .cib
            .request(CibOp::Query {
                scope: Scope::Whole,
                options: CallOptions::default(),
            })
            .map_err(|e| match e {
                super::CibCallError::NotConfigured => RegisterError::Unavailable(
                    "run-time registration is stored in the CIB, which this node does not run",
                ),
                e => RegisterError::Cib(e.to_string()),
            })?;
        let cib = reply
            .output
            .ok_or_else(|| RegisterError::Cib("the query answered nothing".into()))?;
        let has_topology = cib
            .find_child("configuration")
            .and_then(|c| c.find_child("fencing-topology"))
            .is_some();
        let devices = status.devices.into_iter().map(|(id, _)| id).collect();
        Ok((fencing_in_cib(&cib), devices, has_topology))
    }

    fn cib_change(&self, op: CibOp) -> Result<(), RegisterError> {
        self.cib
            .request(op)
            .map(|_| ())
            .map_err(|e| RegisterError::Cib(e.to_string()))
    }

    fn register_device(
        &self,
        device: &str,
        agent: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<(), RegisterError> {
        check_name(device)?;
        for (n, v) in params {
            check_name(n)?;
            if v.contains(['\n', '\r']) {
                return Err(RegisterError::BadValue(n.clone()));
            }
        }
        let dir = self
            .agent_dir
            .as_ref()
            .ok_or(RegisterError::Unavailable("fencing is not configured"))?;
        if agent.contains('/') || agent.starts_with('.') || !dir.join(agent).is_file() {
            return Err(RegisterError::UnknownAgent(agent.to_string()));
        }
        let (cib, registered, _) = self.fencing_now()?;
        if cib.devices.contains_key(device) || registered.iter().any(|d| d == device) {
            return Err(RegisterError::Duplicate(device.to_string()));
        }
        self.cib_change(CibOp::Create {
            scope: Scope::section("resources"),
            input: device_primitive(device, agent, params),
            options: CallOptions::default(),
        })
    }

    fn deregister_device(&self, device: &str) -> Result<(), RegisterError> {
        let (cib, registered, _) = self.fencing_now()?;
        if !cib.devices.contains_key(device) {
            return Err(if registered.iter().any(|d| d == device) {
                RegisterError::ConfigFileDevice(device.to_string())
            } else {
                RegisterError::UnknownDevice(device.to_string())
            });
        }
        self.cib_change(CibOp::Delete {
            scope: Scope::xpath(format!("//primitive[@id='{device}']")),
            input: None,
            options: CallOptions::default(),
        })
    }

    fn check_target(&self, target: &str) -> Result<(), RegisterError> {
        if self.nodes.values().any(|n| n == target) {
            Ok(())
        } else {
            Err(RegisterError::UnknownNode(target.to_string()))
        }
    }

    fn register_level(
        &self,
        target: &str,
        index: u8,
        devices: &[String],
    ) -> Result<(), RegisterError> {
        if !(1..=9).contains(&index) {
            return Err(RegisterError::BadLevel(format!(
                "index {index} is not in 1..9"
            )));
        }
        if devices.is_empty() {
            return Err(RegisterError::BadLevel("no devices".into()));
        }
        self.check_target(target)?;
        let (cib, registered, has_topology) = self.fencing_now()?;
        for d in devices {
            if !cib.devices.contains_key(d) && !registered.iter().any(|r| r == d) {
                return Err(RegisterError::UnknownDevice(d.clone()));
            }
        }
        let node = LevelTarget::Node(target.to_string());
        if cib
            .levels
            .iter()
            .any(|l| l.target == node && l.index == index)
        {
            return Err(RegisterError::BadLevel(format!(
                "{target} already has a level {index}"
            )));
        }
        let level = Element::new("fencing-level")
            .with_attr("id", format!("fl-{}-{index}", id_part(target)))
            .with_attr("target", target)
            .with_attr("index", index.to_string())
            .with_attr("devices", devices.join(","));
        let op = if has_topology {
            CibOp::Create {
                scope: Scope::section("fencing-topology"),
                input: level,
                options: CallOptions::default(),
            }
        } else {
            CibOp::Create {
                scope: Scope::section("configuration"),
                input: Element::new("fencing-topology").with_child(level),
                options: CallOptions::default(),
            }
        };
        self.cib_change(op)
    }

    fn deregister_level(&self, target: &str, index: u8) -> Result<(), RegisterError> {
        let (cib, _, _) = self.fencing_now()?;
        let node = LevelTarget::Node(target.to_string());
        if !cib
            .levels
            .iter()
            .any(|l| l.target == node && l.index == index)
        {
            return Err(RegisterError::BadLevel(format!(
                "{target} has no level {index}"
            )));
        }
        self.cib_change(CibOp::Delete {
            scope: Scope::section("fencing-topology"),
            input: Some(
                Element::new("fencing-level")
                    .with_attr("target", target)
                    .with_attr("index", index.to_string()),
            ),
            options: CallOptions::default(),
        })
    }

    /// Answers a run-time registration request: `Done` once the change is in the
    /// CIB cluster-wide, or why it was refused.
    pub(super) fn fence_registration(&self, req: Registration<'_>) -> Response {
        let r = match req {
            Registration::Device {
                device,
                agent,
                params,
            } => self.register_device(device, agent, params),
            Registration::RemoveDevice { device } => self.deregister_device(device),
            Registration::Level {
                target,
                index,
                devices,
            } => self.register_level(target, index, devices),
            Registration::RemoveLevel { target, index } => self.deregister_level(target, index),
        };
        match r {
            Ok(()) => Response::Done,
            Err(e) => Response::error(e.to_string()),
        }
    }
}

/// A run-time registration request, borrowed from the admin request.
pub(super) enum Registration<'a> {
    Device {
        device: &'a str,
        agent: &'a str,
        params: &'a BTreeMap<String, String>,
    },
    RemoveDevice {
        device: &'a str,
    },
    Level {
        target: &'a str,
        index: u8,
        devices: &'a [String],
    },
    RemoveLevel {
        target: &'a str,
        index: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_xml_ids() {
        assert!(check_name("kill-1.a_b").is_ok());
        assert!(check_name("_x").is_ok());
        for bad in ["", "1kill", "a b", "a\"b", "a/b", "a<b"] {
            assert_eq!(
                check_name(bad),
                Err(RegisterError::BadName(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_run_time_primitive_reads_back_as_a_cib_device() {
        let params = BTreeMap::from([
            ("pcmk_host_list".to_string(), "n1 n2".to_string()),
            ("pidfile_dir".to_string(), "/run/x".to_string()),
        ]);
        let cib = Element::new("cib").with_child(Element::new("configuration").with_child(
            Element::new("resources").with_child(device_primitive(
                "kill",
                "fence_phalanx_kill",
                &params,
            )),
        ));
        let f = fencing_in_cib(&cib);
        let d = &f.devices["kill"];
        assert_eq!(d.agent, "fence_phalanx_kill");
        assert_eq!(d.params, params);
        assert!(d.enabled);
        assert_eq!(id_part("n 1/x"), "n_1_x");
    }
}
