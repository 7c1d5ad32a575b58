//! One fence device: its agent, parameters, and the fencer's reading of the
//! `pcmk_*` parameters (§2.4 of the fencing reference; Pacemaker Explained,
//! "Special Instance Attributes for Fencing Resources").

use super::duration::{delay_ms_to_secs, parse_duration_ms, timeout_ms_to_secs};
use super::hostmap::{MapError, NodeMap, parse_targets};
use crate::Action;
use std::collections::BTreeMap;
use thiserror::Error;

/// Retries per action when `pcmk_<action>_retries` is not set (attempts in all,
/// within one action timeout).
pub const DEFAULT_RETRIES: u32 = 2;
/// Longest device id, agent name, parameter name or value we accept.
pub const MAX_PARAM_LEN: usize = 4096;
/// Most parameters on one device.
pub const MAX_PARAMS: usize = 256;

/// How the fencer decides whether a device can fence a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostCheck {
    /// The target is in `pcmk_host_list` or a node of `pcmk_host_map`.
    StaticList,
    /// The target (or its mapped port) is in the output of the agent's `list`.
    DynamicList,
    /// The agent's `status` for the target answers on (0) or off (2).
    Status,
    /// The device can fence any node.
    None,
}

impl HostCheck {
    fn parse(s: &str) -> Option<HostCheck> {
        match s.trim().to_ascii_lowercase().as_str() {
            "static-list" => Some(HostCheck::StaticList),
            "dynamic-list" => Some(HostCheck::DynamicList),
            "status" => Some(HostCheck::Status),
            "none" => Some(HostCheck::None),
            _ => None,
        }
    }
}

/// What the agent's metadata advertises (the agent runner reads it; the core only
/// needs these facts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCapabilities {
    /// Has a `list` action.
    pub list: bool,
    /// Has a `status` action.
    pub status: bool,
    /// Has a `reboot` action (fabric agents do not: reboot becomes off).
    pub reboot: bool,
    /// Has an `on` action.
    pub on: bool,
    /// `on` is `automatic="1"` (unfencing: the cluster runs it when a node joins,
    /// so a remapped reboot does not turn the node back on through this device).
    pub on_automatic: bool,
    /// `on` is `on_target="1"` (fence_scsi, fence_mpath): it must run on the
    /// target node itself, so the fencer hands it to the target's fencer.
    pub on_target: bool,
    /// The default host argument: `port` if the agent has it, else `plug`, else none.
    pub host_argument: Option<String>,
}

impl AgentCapabilities {
    /// A power-switch agent with every action and a `port` parameter.
    pub fn power_switch() -> Self {
        AgentCapabilities {
            list: true,
            status: true,
            reboot: true,
            on: true,
            on_automatic: false,
            on_target: false,
            host_argument: Some("port".into()),
        }
    }
}

/// A device definition that was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Empty or over-long id, agent or parameter, or too many parameters.
    #[error("bad device field: {0}")]
    BadField(String),
    /// `pcmk_host_map` or a per-node `pcmk_delay_base` did not parse.
    #[error("{param}: {error}")]
    Map {
        /// The parameter.
        param: String,
        /// Why.
        error: MapError,
    },
    /// A parameter that must be a duration, integer or keyword is not.
    #[error("{param}={value:?} is not valid")]
    BadValue {
        /// The parameter.
        param: String,
        /// Its value.
        value: String,
    },
}

/// A registered fence device.
#[derive(Debug, Clone)]
pub struct Device {
    id: String,
    agent: String,
    params: BTreeMap<String, String>,
    caps: AgentCapabilities,
    priority: i64,
    host_list: Vec<String>,
    host_map: NodeMap,
    host_check: Option<HostCheck>,
    action_limit: Option<u32>,
    delay_max_s: u64,
    delay_base: DelayBase,
}

#[derive(Debug, Clone)]
enum DelayBase {
    All(u64),
    PerNode(NodeMap),
}

/// The parameter name for a per-action override, e.g. `pcmk_off_timeout`.
fn action_param(action: Action, kind: &str) -> String {
    format!("pcmk_{}_{kind}", action.as_str().replace('-', "_"))
}

fn bounded(what: &str, s: &str) -> Result<(), DeviceError> {
    if s.is_empty() || s.len() > MAX_PARAM_LEN {
        return Err(DeviceError::BadField(format!(
            "{what} must be 1..={MAX_PARAM_LEN} bytes"
        )));
    }
    Ok(())
}

impl Device {
    /// Builds a device from its id, agent, parameters (agent parameters and the
    /// fencer's `pcmk_*` ones together, as in the CIB) and the agent's capabilities.
    /// `priority` orders devices that can fence the same target when no topology is
    /// configured (higher first, then by id).
    pub fn new(
        id: &str,
        agent: &str,
        params: BTreeMap<String, String>,
        caps: AgentCapabilities,
        priority: i64,
    ) -> Result<Device, DeviceError> {
        bounded("device id", id)?;
        bounded("agent", agent)?;
        if params.len() > MAX_PARAMS {
            return Err(DeviceError::BadField(format!(
                "more than {MAX_PARAMS} parameters"
            )));
        }
        for (k, v) in &params {
            bounded("parameter name", k)?;
            if v.len() > MAX_PARAM_LEN {
                return Err(DeviceError::BadField(format!("{k} is too long")));
            }
        }
        let bad = |param: &str, value: &str| DeviceError::BadValue {
            param: param.to_string(),
            value: value.to_string(),
        };
        let host_list = params
            .get("pcmk_host_list")
            .map(|v| parse_targets(v))
            .unwrap_or_default();
        let host_map = match params.get("pcmk_host_map") {
            Some(v) => NodeMap::parse_host_map(v).map_err(|error| DeviceError::Map {
                param: "pcmk_host_map".into(),
                error,
            })?,
            None => NodeMap::default(),
        };
        let host_check = match params.get("pcmk_host_check") {
            Some(v) => Some(HostCheck::parse(v).ok_or_else(|| bad("pcmk_host_check", v))?),
            None => None,
        };
        // Pacemaker: unset, unparsable or 0 means 1; negative means unlimited.
        let action_limit = match params.get("pcmk_action_limit") {
            None => Some(1),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n < 0 => None,
                Ok(0) => Some(1),
                Ok(n) => Some(u32::try_from(n).map_err(|_| bad("pcmk_action_limit", v))?),
                Err(_) => return Err(bad("pcmk_action_limit", v)),
            },
        };
        let delay_max_s = match params.get("pcmk_delay_max") {
            Some(v) => {
                delay_ms_to_secs(parse_duration_ms(v).map_err(|_| bad("pcmk_delay_max", v))?)
            }
            None => 0,
        };
        let delay_base = match params.get("pcmk_delay_base") {
            None => DelayBase::All(0),
            Some(v) if v.contains(':') => {
                let map = NodeMap::parse_node_values(v).map_err(|error| DeviceError::Map {
                    param: "pcmk_delay_base".into(),
                    error,
                })?;
                for (_, d) in map.entries() {
                    parse_duration_ms(d).map_err(|_| bad("pcmk_delay_base", v))?;
                }
                DelayBase::PerNode(map)
            }
            Some(v) => DelayBase::All(delay_ms_to_secs(
                parse_duration_ms(v).map_err(|_| bad("pcmk_delay_base", v))?,
            )),
        };
        for action in Action::ALL {
            let p = action_param(action, "timeout");
            if let Some(v) = params.get(&p) {
                parse_duration_ms(v).map_err(|_| bad(&p, v))?;
            }
            let p = action_param(action, "retries");
            if let Some(v) = params.get(&p) {
                v.trim().parse::<u32>().map_err(|_| bad(&p, v))?;
            }
        }
        Ok(Device {
            id: id.to_string(),
            agent: agent.to_string(),
            params,
            caps,
            priority,
            host_list,
            host_map,
            host_check,
            action_limit,
            delay_max_s,
            delay_base,
        })
    }

    /// The device id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The agent (e.g. `fence_ipmilan`).
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Ordering among devices without topology (higher first).
    pub fn priority(&self) -> i64 {
        self.priority
    }

    /// What the agent advertises.
    pub fn capabilities(&self) -> &AgentCapabilities {
        &self.caps
    }

    /// Every parameter as configured.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// The parameters handed to the agent: all but the fencer's own `pcmk_*`.
    pub fn agent_params(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .filter(|(k, _)| !k.starts_with("pcmk_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The check in force: `pcmk_host_check` when set; else `static-list` when a host
    /// list or map is set; else `dynamic-list` when the agent has `list` and `list`
    /// has not failed (`list_failed`); else `status` when it has `status`; else none.
    pub fn host_check(&self, list_failed: bool) -> HostCheck {
        if let Some(c) = self.host_check {
            return c;
        }
        if self.params.contains_key("pcmk_host_list") || self.params.contains_key("pcmk_host_map") {
            HostCheck::StaticList
        } else if self.caps.list && !list_failed {
            HostCheck::DynamicList
        } else if self.caps.status {
            HostCheck::Status
        } else {
            HostCheck::None
        }
    }

    /// For `static-list`: is `target` in the host list or a node of the host map?
    pub fn statically_lists(&self, target: &str) -> bool {
        self.host_list
            .iter()
            .any(|h| h.eq_ignore_ascii_case(target))
            || self.host_map.get(target).is_some()
    }

    /// The port the agent is given for `target`: its `pcmk_host_map` entry, else the
    /// name itself.
    pub fn port_for<'a>(&'a self, target: &'a str) -> &'a str {
        self.host_map.get(target).unwrap_or(target)
    }

    /// Whether `target` was mapped by `pcmk_host_map`.
    pub fn is_mapped(&self, target: &str) -> bool {
        self.host_map.get(target).is_some()
    }

    /// The parameter that carries the port: `pcmk_host_argument` (`none` = no such
    /// parameter), else the agent's default.
    pub fn host_argument(&self) -> Option<&str> {
        match self.params.get("pcmk_host_argument") {
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(v.as_str()),
            None => self.caps.host_argument.as_deref(),
        }
    }

    /// Whether the agent can run `action` at all.
    pub fn supports(&self, action: Action) -> bool {
        match action {
            Action::Off | Action::Metadata | Action::Monitor | Action::ValidateAll => true,
            Action::On => self.caps.on,
            Action::Reboot => self.caps.reboot,
            Action::Status => self.caps.status,
            Action::List | Action::ListStatus => self.caps.list,
        }
    }

    /// What a fencing `reboot` runs on this device: `reboot`, or `off` when the agent
    /// has no reboot.
    pub fn reboot_or_off(&self) -> Action {
        if self.caps.reboot {
            Action::Reboot
        } else {
            Action::Off
        }
    }

    /// The `action=` text sent to the agent (`pcmk_<action>_action` or the name).
    pub fn agent_action(&self, action: Action) -> String {
        self.params
            .get(&action_param(action, "action"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| action.as_str().to_string())
    }

    /// `pcmk_reboot_action=off`: a remapped reboot leaves the target off.
    pub fn reboot_stays_off(&self) -> bool {
        self.agent_action(Action::Reboot)
            .eq_ignore_ascii_case("off")
    }

    /// The timeout for one `action` in whole seconds: `pcmk_<action>_timeout` (a
    /// reboot the agent lacks uses the off timeout), else `default_secs` (the
    /// request's timeout, `fencing-timeout` unless the caller gave one).
    pub fn action_timeout_secs(&self, action: Action, default_secs: u64) -> u64 {
        let action = if action == Action::Reboot && !self.caps.reboot {
            Action::Off
        } else {
            action
        };
        self.params
            .get(&action_param(action, "timeout"))
            .and_then(|v| parse_duration_ms(v).ok())
            .map(timeout_ms_to_secs)
            .unwrap_or(default_secs)
    }

    /// Attempts for `action` within its timeout (`pcmk_<action>_retries`, default 2).
    pub fn retries(&self, action: Action) -> u32 {
        self.params
            .get(&action_param(action, "retries"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_RETRIES)
    }

    /// `pcmk_action_limit`: how many actions may run on the device at once (`None`
    /// = unlimited).
    pub fn action_limit(&self) -> Option<u32> {
        self.action_limit
    }

    /// `pcmk_delay_max` in seconds, for the fencing actions (off, reboot) only.
    pub fn delay_max_secs(&self, action: Action) -> u64 {
        if is_fencing_action(action) {
            self.delay_max_s
        } else {
            0
        }
    }

    /// `pcmk_delay_base` in seconds for `target` (its per-node entry, else the plain
    /// value, else 0), for the fencing actions (off, reboot) only.
    pub fn delay_base_secs(&self, action: Action, target: &str) -> u64 {
        if !is_fencing_action(action) {
            return 0;
        }
        match &self.delay_base {
            DelayBase::All(s) => *s,
            DelayBase::PerNode(map) => map
                .get(target)
                .and_then(|v| parse_duration_ms(v).ok())
                .map(delay_ms_to_secs)
                .unwrap_or(0),
        }
    }
}

/// Off and reboot: the actions delays apply to.
pub fn is_fencing_action(action: Action) -> bool {
    matches!(action, Action::Off | Action::Reboot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(params: &[(&str, &str)], caps: AgentCapabilities) -> Result<Device, DeviceError> {
        let p = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Device::new("d1", "fence_dummy", p, caps, 0)
    }

    fn caps(list: bool, status: bool) -> AgentCapabilities {
        AgentCapabilities {
            list,
            status,
            ..AgentCapabilities::power_switch()
        }
    }

    /// (params, agent has list, agent has status, list failed before, expected check)
    type CheckRow<'a> = (&'a [(&'a str, &'a str)], bool, bool, bool, HostCheck);

    #[test]
    fn host_check_default_rule() {
        let table: &[CheckRow] = &[
            (
                &[("pcmk_host_list", "n1")],
                true,
                true,
                false,
                HostCheck::StaticList,
            ),
            (
                &[("pcmk_host_map", "n1:1")],
                true,
                true,
                false,
                HostCheck::StaticList,
            ),
            (&[], true, true, false, HostCheck::DynamicList),
            (&[], true, true, true, HostCheck::Status),
            (&[], false, true, false, HostCheck::Status),
            (&[], false, false, false, HostCheck::None),
            (&[], true, false, true, HostCheck::None),
            (
                &[("pcmk_host_check", "none"), ("pcmk_host_list", "n1")],
                true,
                true,
                false,
                HostCheck::None,
            ),
            (
                &[("pcmk_host_check", "Dynamic-List")],
                false,
                false,
                true,
                HostCheck::DynamicList,
            ),
        ];
        for (params, list, status, list_failed, want) in table {
            let d = dev(params, caps(*list, *status)).unwrap();
            assert_eq!(
                d.host_check(*list_failed),
                *want,
                "{params:?} {list} {status} {list_failed}"
            );
        }
        assert!(dev(&[("pcmk_host_check", "sometimes")], caps(true, true)).is_err());
    }

    #[test]
    fn static_list_and_ports() {
        let d = dev(
            &[
                ("pcmk_host_list", "node1 node2,node3"),
                ("pcmk_host_map", "node4:4;node5:5,6"),
            ],
            AgentCapabilities::power_switch(),
        )
        .unwrap();
        for n in ["node1", "NODE2", "node3", "node4", "node5"] {
            assert!(d.statically_lists(n), "{n}");
        }
        assert!(!d.statically_lists("node6"));
        assert_eq!(d.port_for("node5"), "5,6");
        assert_eq!(d.port_for("node1"), "node1");
        assert_eq!(d.host_argument(), Some("port"));
        let d = dev(
            &[("pcmk_host_argument", "none")],
            AgentCapabilities::power_switch(),
        )
        .unwrap();
        assert_eq!(d.host_argument(), None);
        let d = dev(
            &[("pcmk_host_argument", "plug")],
            AgentCapabilities::power_switch(),
        )
        .unwrap();
        assert_eq!(d.host_argument(), Some("plug"));
    }

    #[test]
    fn per_action_overrides_and_defaults() {
        let d = dev(
            &[
                ("pcmk_off_timeout", "1000ms"),
                ("pcmk_reboot_timeout", "4000s"),
                ("pcmk_off_retries", "5"),
                ("pcmk_reboot_action", "off"),
                ("pcmk_list_action", "hostlist"),
                ("ipaddr", "10.0.0.1"),
            ],
            AgentCapabilities::power_switch(),
        )
        .unwrap();
        assert_eq!(d.action_timeout_secs(Action::Off, 60), 1);
        assert_eq!(d.action_timeout_secs(Action::Reboot, 60), 4000);
        assert_eq!(d.action_timeout_secs(Action::On, 60), 60);
        assert_eq!(d.retries(Action::Off), 5);
        assert_eq!(d.retries(Action::Reboot), DEFAULT_RETRIES);
        assert_eq!(d.agent_action(Action::List), "hostlist");
        assert_eq!(d.agent_action(Action::Off), "off");
        assert!(d.reboot_stays_off());
        assert_eq!(d.action_limit(), Some(1));
        assert_eq!(
            d.agent_params().into_iter().collect::<Vec<_>>(),
            [("ipaddr".to_string(), "10.0.0.1".to_string())]
        );
        // A fabric agent without reboot uses the off timeout for reboot.
        let fabric = AgentCapabilities {
            reboot: false,
            ..AgentCapabilities::power_switch()
        };
        let d = dev(
            &[("pcmk_off_timeout", "7"), ("pcmk_reboot_timeout", "99")],
            fabric,
        )
        .unwrap();
        assert_eq!(d.action_timeout_secs(Action::Reboot, 60), 7);
        assert_eq!(d.reboot_or_off(), Action::Off);
        for bad in [
            ("pcmk_off_timeout", "soon"),
            ("pcmk_off_retries", "-1"),
            ("pcmk_action_limit", "x"),
        ] {
            assert!(
                dev(&[bad], AgentCapabilities::power_switch()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn action_limit_table() {
        for (v, want) in [
            ("1", Some(1)),
            ("0", Some(1)),
            ("3", Some(3)),
            ("-1", None),
            ("-5", None),
        ] {
            let d = dev(
                &[("pcmk_action_limit", v)],
                AgentCapabilities::power_switch(),
            )
            .unwrap();
            assert_eq!(d.action_limit(), want, "{v}");
        }
    }

    #[test]
    fn delays_per_node_and_only_for_fencing_actions() {
        let d = dev(
            &[
                ("pcmk_delay_base", "node1:0s;node2:5s"),
                ("pcmk_delay_max", "10"),
            ],
            AgentCapabilities::power_switch(),
        )
        .unwrap();
        assert_eq!(d.delay_base_secs(Action::Off, "node1"), 0);
        assert_eq!(d.delay_base_secs(Action::Reboot, "NODE2"), 5);
        assert_eq!(d.delay_base_secs(Action::Off, "node3"), 0);
        assert_eq!(d.delay_base_secs(Action::On, "node2"), 0);
        assert_eq!(d.delay_max_secs(Action::Off), 10);
        assert_eq!(d.delay_max_secs(Action::On), 0);
        let d = dev(
            &[("pcmk_delay_base", "1500ms")],
            AgentCapabilities::power_switch(),
        )
        .unwrap();
        assert_eq!(d.delay_base_secs(Action::Off, "x"), 1, "delays truncate");
        assert!(
            dev(
                &[("pcmk_delay_base", "node1:soon")],
                AgentCapabilities::power_switch()
            )
            .is_err()
        );
    }
}
