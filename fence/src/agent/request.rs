//! What one agent call is asked to do, and the exact stdin Pacemaker writes for it.

use super::time_spec::{BadDuration, parse_duration};
use crate::Action;
use crate::core::{MapError, NodeMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The default timeout of an agent action (`pcmk_<action>_timeout` unset; the
/// cluster option `fencing-timeout` is 60 s too).
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times an action is tried before giving up when `pcmk_<action>_retries`
/// is unset (Pacemaker's `FAILURE_MAX_RETRIES`: one try and one retry).
pub const DEFAULT_ATTEMPTS: u32 = 2;

/// Upper bound on the attempts one call may make, whatever the configuration says.
pub const MAX_ATTEMPTS: u32 = 16;

/// Largest stdin we write to an agent. It stays below a Linux pipe's 64 KiB buffer,
/// so writing it never blocks even when the agent does not read.
pub const MAX_STDIN_BYTES: usize = 32 * 1024;

/// Longest agent (executable) name.
pub const MAX_AGENT_NAME: usize = 255;

/// A request that cannot be turned into an agent invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The agent name is empty, too long, or could escape the agent directory.
    #[error("invalid agent name {0:?}")]
    BadAgentName(String),
    /// A parameter name is empty or holds `=`, a newline or NUL.
    #[error("invalid parameter name {0:?}")]
    BadParamName(String),
    /// A value holds a newline or NUL (the protocol is one `name=value` per line).
    #[error("parameter {0:?} has a value with a newline or NUL")]
    BadParamValue(String),
    /// The target node name holds a newline or NUL.
    #[error("invalid target name {0:?}")]
    BadTarget(String),
    /// `pcmk_host_map` does not parse (the fencer's own reading of it, so an agent
    /// run by hand maps a target exactly as the cluster does).
    #[error("pcmk_host_map: {0}")]
    BadHostMap(MapError),
    /// `pcmk_<action>_timeout` is not a duration.
    #[error("{param}: {source}")]
    BadTimeout {
        /// The parameter that held it.
        param: String,
        /// What was wrong.
        source: BadDuration,
    },
    /// `pcmk_<action>_retries` is not a non-negative integer.
    #[error("{param}: invalid retry count {value:?}")]
    BadRetries {
        /// The parameter that held it.
        param: String,
        /// Its text.
        value: String,
    },
    /// The stdin would exceed [`MAX_STDIN_BYTES`].
    #[error("agent stdin would be {0} bytes (at most {MAX_STDIN_BYTES})")]
    StdinTooLarge(usize),
}

/// One call of a fence agent: which agent, which action against which node, with
/// which device parameters, and how long it may take.
///
/// `params` are the device's parameters as configured, `pcmk_*` ones included:
/// [`AgentRequest::stdin`] applies them the way Pacemaker does (host argument, port
/// map, action substitution) and passes the others on.
///
/// ```
/// use phalanx_fence::Action;
/// use phalanx_fence::agent::AgentRequest;
/// let req = AgentRequest::new("fence_ipmilan", Action::Reboot)
///     .target("node2")
///     .param("ip", "10.0.0.2")
///     .param("pcmk_host_map", "node1:1;node2:2")
///     .param("pcmk_reboot_action", "off")
///     .host_argument_default(Some("port"));
/// assert_eq!(req.stdin().unwrap(), "action=off\nnodename=node2\nport=2\nip=10.0.0.2\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// The agent's executable name, e.g. `fence_ipmilan`.
    pub agent: String,
    /// The action asked for (before any `pcmk_<action>_action` substitution).
    #[serde(with = "super::serde_action")]
    pub action: Action,
    /// The node to act on (none for `monitor`, `list`, `metadata`).
    pub target: Option<String>,
    /// The target's cluster node id, passed as `nodeid=` when known.
    pub target_nodeid: Option<u32>,
    /// The device's parameters as configured (including `pcmk_*`).
    pub params: BTreeMap<String, String>,
    /// The host argument to use when `pcmk_host_argument` is unset: from the
    /// agent's metadata ([`super::AgentMetadata::default_host_argument`]).
    pub host_argument_default: Option<String>,
    /// The time all attempts together may take.
    pub timeout: Duration,
    /// How many times the action may be tried (at least once).
    pub attempts: u32,
}

impl AgentRequest {
    /// A request with no target and no parameters, [`DEFAULT_ACTION_TIMEOUT`] and
    /// [`DEFAULT_ATTEMPTS`].
    pub fn new(agent: impl Into<String>, action: Action) -> AgentRequest {
        AgentRequest {
            agent: agent.into(),
            action,
            target: None,
            target_nodeid: None,
            params: BTreeMap::new(),
            host_argument_default: None,
            timeout: DEFAULT_ACTION_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// Sets the target node.
    pub fn target(mut self, node: impl Into<String>) -> Self {
        self.target = Some(node.into());
        self
    }

    /// Sets the target's node id.
    pub fn target_nodeid(mut self, id: u32) -> Self {
        self.target_nodeid = Some(id);
        self
    }

    /// Adds (or replaces) one device parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Adds (or replaces) device parameters.
    pub fn params<K: Into<String>, V: Into<String>>(
        mut self,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.params
            .extend(params.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the metadata-derived default host argument (`port`, `plug` or none).
    pub fn host_argument_default(mut self, arg: Option<&str>) -> Self {
        self.host_argument_default = arg.map(str::to_string);
        self
    }

    /// Sets the timeout shared by all attempts.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times the action may be tried (clamped to 1..=[`MAX_ATTEMPTS`]).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.clamp(1, MAX_ATTEMPTS);
        self
    }

    /// Applies the device's `pcmk_<action>_timeout` and `pcmk_<action>_retries`
    /// (when set) over the request's timeout and attempts.
    pub fn with_device_limits(mut self) -> Result<Self, RequestError> {
        let act = self.action.as_str();
        let param = format!("pcmk_{act}_timeout");
        if let Some(v) = self.params.get(&param) {
            self.timeout = parse_duration(v).map_err(|source| RequestError::BadTimeout {
                param: param.clone(),
                source,
            })?;
        }
        let param = format!("pcmk_{act}_retries");
        if let Some(v) = self.params.get(&param) {
            let n: u32 = v.trim().parse().map_err(|_| RequestError::BadRetries {
                param: param.clone(),
                value: v.clone(),
            })?;
            // Pacemaker stops once tries >= retries, and always makes the first
            // try: 0 and 1 both mean a single attempt.
            self.attempts = n.clamp(1, MAX_ATTEMPTS);
        }
        Ok(self)
    }

    /// The action name written after `action=`: `pcmk_<action>_action` when the
    /// device configures one, else the action's own name.
    pub fn agent_action(&self) -> &str {
        self.params
            .get(&format!("pcmk_{}_action", self.action.as_str()))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(self.action.as_str())
    }

    /// The parameter that carries the target's port, if any: `pcmk_host_argument`,
    /// else the metadata default; `none` (any case) means none.
    pub fn host_argument(&self) -> Option<&str> {
        let arg = self
            .params
            .get("pcmk_host_argument")
            .or(self.host_argument_default.as_ref())
            .map(|s| s.trim())?;
        (!arg.is_empty() && !arg.eq_ignore_ascii_case("none")).then_some(arg)
    }

    /// The `name=value` pairs of the agent's stdin, in the order written: `action`,
    /// then (with a target) `nodename`, `nodeid`, the host argument, then the
    /// device's other parameters by name. `pcmk_*`, `provides`, `stonith-timeout`,
    /// `crm_feature_set`, `CRM_meta*` and a configured `action` are not passed.
    pub fn stdin_args(&self) -> Result<Vec<(String, String)>, RequestError> {
        validate_agent_name(&self.agent)?;
        let mut args: Vec<(String, String)> =
            vec![("action".into(), self.agent_action().to_string())];
        let mut host_arg = None;
        if let Some(target) = &self.target {
            if target.contains(['\n', '\r', '\0']) || target.is_empty() {
                return Err(RequestError::BadTarget(target.clone()));
            }
            args.push(("nodename".into(), target.clone()));
            if let Some(id) = self.target_nodeid {
                args.push(("nodeid".into(), id.to_string()));
            }
            if let Some(arg) = self.host_argument() {
                let configured = self.params.get(arg).map(|v| v.trim());
                // A configured value wins, except the placeholder "dynamic".
                if configured.is_none_or(|v| v.eq_ignore_ascii_case("dynamic")) {
                    let text = self.params.get("pcmk_host_map").map_or("", String::as_str);
                    let map = NodeMap::parse_host_map(text).map_err(RequestError::BadHostMap)?;
                    let port = map.get(target).unwrap_or(target);
                    args.push((arg.to_string(), port.to_string()));
                    host_arg = Some(arg);
                }
            }
        }
        for (name, value) in &self.params {
            if !passed_to_agent(name) || Some(name.as_str()) == host_arg {
                continue;
            }
            if name.is_empty() || name.contains(['=', '\n', '\r', '\0']) {
                return Err(RequestError::BadParamName(name.clone()));
            }
            if value.contains(['\n', '\r', '\0']) {
                return Err(RequestError::BadParamValue(name.clone()));
            }
            // A device parameter of the same name replaces a standard one
            // (Pacemaker inserts device parameters last into the same table).
            if let Some(slot) = args.iter_mut().find(|(n, _)| n == name) {
                slot.1 = value.clone();
            } else {
                args.push((name.clone(), value.clone()));
            }
        }
        Ok(args)
    }

    /// The exact stdin text: one `name=value` line per [`Self::stdin_args`] pair.
    pub fn stdin(&self) -> Result<String, RequestError> {
        let mut text = String::new();
        for (name, value) in self.stdin_args()? {
            text.push_str(&name);
            text.push('=');
            text.push_str(&value);
            text.push('\n');
        }
        if text.len() > MAX_STDIN_BYTES {
            return Err(RequestError::StdinTooLarge(text.len()));
        }
        Ok(text)
    }
}

/// Whether a configured device parameter goes to the agent (Pacemaker keeps the
/// ones it interprets itself).
pub fn passed_to_agent(name: &str) -> bool {
    !(name.eq_ignore_ascii_case("action")
        || name.starts_with("pcmk_")
        || name == "provides"
        || name == "stonith-timeout"
        || name == "crm_feature_set"
        || name.contains("CRM_meta"))
}

/// Checks that `name` is a plain file name: non-empty, at most
/// [`MAX_AGENT_NAME`] bytes, no `/` or NUL, not starting with `.`.
pub fn validate_agent_name(name: &str) -> Result<(), RequestError> {
    if name.is_empty()
        || name.len() > MAX_AGENT_NAME
        || name.starts_with('.')
        || name.contains(['/', '\0', '\n'])
    {
        return Err(RequestError::BadAgentName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(req: &AgentRequest) -> Vec<String> {
        req.stdin().unwrap().lines().map(str::to_string).collect()
    }

    #[test]
    fn host_argument_defaults_to_metadata_and_none_disables_it() {
        let req = AgentRequest::new("fence_x", Action::Off)
            .target("n1")
            .host_argument_default(Some("port"));
        assert_eq!(lines(&req), ["action=off", "nodename=n1", "port=n1"]);
        let req = req.param("pcmk_host_argument", "NONE");
        assert_eq!(lines(&req), ["action=off", "nodename=n1"]);
        let req = AgentRequest::new("fence_x", Action::Off)
            .target("n1")
            .param("pcmk_host_argument", "uuid");
        assert_eq!(lines(&req), ["action=off", "nodename=n1", "uuid=n1"]);
    }

    #[test]
    fn configured_port_wins_unless_dynamic() {
        let base = AgentRequest::new("fence_x", Action::Off)
            .target("n1")
            .host_argument_default(Some("plug"))
            .param("pcmk_host_map", "N1:7");
        assert_eq!(lines(&base), ["action=off", "nodename=n1", "plug=7"]);
        let fixed = base.clone().param("plug", "3");
        assert_eq!(lines(&fixed), ["action=off", "nodename=n1", "plug=3"]);
        let dynamic = base.param("plug", "dynamic");
        assert_eq!(lines(&dynamic), ["action=off", "nodename=n1", "plug=7"]);
    }

    #[test]
    fn the_host_map_is_read_as_the_fencer_reads_it() {
        let req = AgentRequest::new("fence_x", Action::Off)
            .target("n2")
            .host_argument_default(Some("port"))
            .param("pcmk_host_map", r"n1:1;n2:a\;b");
        assert_eq!(lines(&req), ["action=off", "nodename=n2", r"port=a;b"]);
        let bad = req.param("pcmk_host_map", "n1:1;n2");
        assert!(matches!(bad.stdin(), Err(RequestError::BadHostMap(_))));
    }

    #[test]
    fn no_target_means_no_nodename_and_no_port() {
        let req = AgentRequest::new("fence_x", Action::Monitor)
            .host_argument_default(Some("port"))
            .param("ip", "h")
            .param("pcmk_monitor_action", "status");
        assert_eq!(lines(&req), ["action=status", "ip=h"]);
    }

    #[test]
    fn pacemaker_parameters_are_filtered_and_nodeid_passed() {
        let req = AgentRequest::new("fence_x", Action::Reboot)
            .target("n2")
            .target_nodeid(2)
            .params([
                ("pcmk_delay_max", "5"),
                ("provides", "unfencing"),
                ("action", "on"),
                ("crm_feature_set", "3.20"),
                ("CRM_meta_timeout", "1"),
                ("login", "root"),
            ]);
        assert_eq!(
            lines(&req),
            ["action=reboot", "nodename=n2", "nodeid=2", "login=root"]
        );
    }

    #[test]
    fn newline_in_a_value_is_an_error_not_an_injection() {
        let req = AgentRequest::new("fence_x", Action::Off).param("ip", "h\naction=on");
        assert_eq!(req.stdin(), Err(RequestError::BadParamValue("ip".into())));
        let req = AgentRequest::new("fence_x", Action::Off).target("a\nb");
        assert!(matches!(req.stdin(), Err(RequestError::BadTarget(_))));
        let req = AgentRequest::new("../bin/sh", Action::Off);
        assert!(matches!(req.stdin(), Err(RequestError::BadAgentName(_))));
        let req = AgentRequest::new("fence_x", Action::Off).param("x", "y".repeat(40_000));
        assert!(matches!(req.stdin(), Err(RequestError::StdinTooLarge(_))));
    }

    #[test]
    fn device_limits_read_per_action_parameters() {
        let req = AgentRequest::new("fence_x", Action::Off)
            .params([
                ("pcmk_off_timeout", "90s"),
                ("pcmk_off_retries", "5"),
                ("pcmk_on_timeout", "1"),
            ])
            .with_device_limits()
            .unwrap();
        assert_eq!((req.timeout, req.attempts), (Duration::from_secs(90), 5));
        let zero = AgentRequest::new("fence_x", Action::Off)
            .param("pcmk_off_retries", "0")
            .with_device_limits()
            .unwrap();
        assert_eq!(zero.attempts, 1);
        let bad = AgentRequest::new("fence_x", Action::Off)
            .param("pcmk_off_timeout", "later")
            .with_device_limits();
        assert!(matches!(bad, Err(RequestError::BadTimeout { .. })));
    }
}
