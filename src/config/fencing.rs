//! The `fencing` section: cluster fencing options, devices and topology levels,
//! given in the node's configuration file until the CIB carries them
//! (`primitive class="stonith"`, `fencing-topology`).
//!
//! ```text
//! fencing {
//!     action: reboot                 # fencing-action: reboot | off
//!     timeout: 60000                 # fencing-timeout, ms
//!     no_quorum_policy: stop         # stop | ignore | freeze | suicide
//!     watchdog: off                  # off | process | /dev/watchdog (a device path)
//!     watchdog_timeout: 5000         # ms without a feed before the watchdog fires
//!     fencing_watchdog_timeout: 0    # ms; > 0: peers assume a lost node self-fenced
//!     startup_fencing: yes           # fence configured nodes never seen, after dc_deadtime
//!     dc_deadtime: 20000             # ms to wait for nodes at start before startup fencing
//!     node_pending_timeout: 0        # ms; > 0: fence a member whose fencer never speaks
//!     device {
//!         id: ipmi-a
//!         agent: fence_ipmilan       # a file name in agent_dir (/usr/sbin)
//!         ip: 10.0.0.1               # every other key is a device parameter,
//!         pcmk_host_list: node1      # passed to the fencer (pcmk_*) or the agent
//!     }
//!     level {
//!         index: 1
//!         target: node1              # or target_pattern / target_attribute + target_value
//!         devices: ipmi-a,pdu-a
//!     }
//! }
//! ```

use super::error::ConfigError;
use super::model::SourceInfo;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Where fence agents are looked up by default.
pub const DEFAULT_AGENT_DIR: &str = "/usr/sbin";
/// Pacemaker's default `fencing-timeout`.
pub const DEFAULT_FENCING_TIMEOUT: Duration = Duration::from_secs(60);
/// Pacemaker's default `fencing-max-attempts`.
pub const DEFAULT_FENCING_MAX_ATTEMPTS: u32 = 10;
/// `dc-deadtime`'s default (Pacemaker: 20 s).
pub const DEFAULT_DC_DEADTIME: Duration = Duration::from_secs(20);
/// Highest fencing level index (Pacemaker accepts 1..=9).
pub const MAX_LEVEL_INDEX: u8 = 9;
/// Most devices one configuration may name (a bound, not a Pacemaker rule).
pub const MAX_DEVICES: usize = 64;
/// Most parameters one device may carry.
pub const MAX_DEVICE_PARAMS: usize = 128;

/// What fencing a node means (`fencing-action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FencingAction {
    /// Power-cycle the node (Pacemaker's default).
    #[default]
    Reboot,
    /// Power it off and leave it off.
    Off,
}

/// What a partition without quorum does (`no-quorum-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoQuorumPolicy {
    /// Stop its resources (Pacemaker's default).
    #[default]
    Stop,
    /// Carry on as if quorate: this partition may fence others.
    Ignore,
    /// Keep what runs, start nothing new.
    Freeze,
    /// Fence itself (the watchdog stops being fed); Pacemaker's `fence`, with
    /// `suicide` its old alias.
    Suicide,
}

/// Default watchdog timeout when a watchdog is set without one (SBD's default
/// `SBD_WATCHDOG_TIMEOUT`).
pub const DEFAULT_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(5);

/// The node's own watchdog, for self-fencing (`no_quorum_policy: suicide`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WatchdogConfig {
    /// None (the default).
    #[default]
    Off,
    /// A `phalanx-watchdog` supervisor process that SIGKILLs the node when not
    /// fed.
    Process,
    /// A kernel watchdog device (`/dev/watchdog`) that resets the machine.
    Device(PathBuf),
}

impl WatchdogConfig {
    /// Parses `off`, `process` or an absolute device path.
    pub fn parse(text: &str) -> Option<WatchdogConfig> {
        match text {
            "off" | "no" | "none" => Some(WatchdogConfig::Off),
            "process" => Some(WatchdogConfig::Process),
            p if p.starts_with('/') => Some(WatchdogConfig::Device(PathBuf::from(p))),
            _ => None,
        }
    }
}

/// Which nodes a fencing level applies to: the fencer's own type (one node by name,
/// a name pattern, or an attribute value).
pub use phalanx_fence::core::LevelTarget;

/// One fence device: an agent and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceDeviceConfig {
    /// The device's id (referred to by levels).
    pub id: String,
    /// The agent's file name in [`FencingConfig::agent_dir`] (`fence_ipmilan`).
    pub agent: String,
    /// Every other key, in file order: `pcmk_*` parameters for the fencer, the rest
    /// for the agent.
    pub params: Vec<(String, String)>,
}

/// One fencing level (`fencing-level`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceLevelConfig {
    /// Tried in ascending order, 1..=9.
    pub index: u8,
    /// The nodes it fences.
    pub target: LevelTarget,
    /// Device ids; all must succeed for the level to succeed.
    pub devices: Vec<String>,
}

/// The `fencing` section. Without it fencing is off (`enabled == false`), so a
/// configuration written before fencing existed behaves as before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencingConfig {
    /// Cluster-initiated fencing (`fencing-enabled`); true once the section exists.
    pub enabled: bool,
    /// `fencing-action`.
    pub action: FencingAction,
    /// `fencing-timeout`: default timeout of on/off/reboot.
    pub timeout: Duration,
    /// `fencing-max-attempts`: failures per target before no immediate retry.
    pub max_attempts: u32,
    /// `priority-fencing-delay`.
    pub priority_delay: Duration,
    /// `no-quorum-policy`.
    pub no_quorum_policy: NoQuorumPolicy,
    /// The node's watchdog (off by default).
    pub watchdog: WatchdogConfig,
    /// How long the watchdog waits for a feed before it fires (SBD's
    /// `SBD_WATCHDOG_TIMEOUT`); zero: [`DEFAULT_WATCHDOG_TIMEOUT`]. (Pacemaker's
    /// `fencing-watchdog-timeout`, after which peers assume a lost node fenced
    /// itself, is not implemented: peers still fence through a device.)
    pub watchdog_timeout: Duration,
    /// `fencing-watchdog-timeout` (zero: off): a lost node that no device can
    /// fence is assumed to have fenced itself this long after a quorate partition
    /// lost it. Needs `watchdog` on, `no_quorum_policy: suicide` on every node,
    /// and must exceed `watchdog_timeout` (Pacemaker advises twice it).
    pub fencing_watchdog_timeout: Duration,
    /// `startup-fencing` (default true): once a partition may fence and
    /// [`dc_deadtime`](Self::dc_deadtime) has passed since the node started,
    /// configured nodes it has never seen are fenced.
    pub startup_fencing: bool,
    /// `dc-deadtime` (default 20 s): how long a starting node waits for the
    /// configured nodes to show up before startup fencing.
    pub dc_deadtime: Duration,
    /// `node-pending-timeout` (zero: off, the default): a member whose fencing
    /// service has not spoken this long after it joined is fenced.
    pub node_pending_timeout: Duration,
    /// Devices, in file order.
    pub devices: Vec<FenceDeviceConfig>,
    /// Levels, in file order.
    pub levels: Vec<FenceLevelConfig>,
    /// Where agents named without a path are found (default `/usr/sbin`, where
    /// Debian's fence-agents installs them).
    pub agent_dir: PathBuf,
}

impl Default for FencingConfig {
    fn default() -> Self {
        FencingConfig {
            enabled: false,
            action: FencingAction::default(),
            timeout: DEFAULT_FENCING_TIMEOUT,
            max_attempts: DEFAULT_FENCING_MAX_ATTEMPTS,
            priority_delay: Duration::ZERO,
            no_quorum_policy: NoQuorumPolicy::default(),
            watchdog: WatchdogConfig::Off,
            watchdog_timeout: Duration::ZERO,
            fencing_watchdog_timeout: Duration::ZERO,
            startup_fencing: true,
            dc_deadtime: DEFAULT_DC_DEADTIME,
            node_pending_timeout: Duration::ZERO,
            devices: Vec::new(),
            levels: Vec::new(),
            agent_dir: PathBuf::from(DEFAULT_AGENT_DIR),
        }
    }
}

impl FencingConfig {
    /// The device with this id.
    pub fn device(&self, id: &str) -> Option<&FenceDeviceConfig> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// The watchdog timeout in force (the default when none was given).
    pub fn effective_watchdog_timeout(&self) -> Duration {
        if self.watchdog_timeout.is_zero() {
            DEFAULT_WATCHDOG_TIMEOUT
        } else {
            self.watchdog_timeout
        }
    }

    /// Cross-field rules: unique, non-empty device ids with an agent; bounded
    /// parameter counts; levels with an index in 1..=9, a non-empty target and
    /// devices that exist; one level per (target, index).
    pub(super) fn validate(&self, src: &SourceInfo) -> Result<(), ConfigError> {
        if !self.fencing_watchdog_timeout.is_zero() {
            let key = "fencing.fencing_watchdog_timeout";
            if self.watchdog == WatchdogConfig::Off {
                return Err(src.error(
                    key,
                    "peers may assume self-fencing only when nodes run a watchdog: set watchdog",
                ));
            }
            if self.no_quorum_policy != NoQuorumPolicy::Suicide {
                return Err(src.error(
                    key,
                    "peers may assume self-fencing only under no_quorum_policy: suicide",
                ));
            }
            if self.fencing_watchdog_timeout <= self.effective_watchdog_timeout() {
                return Err(src.error(
                    key,
                    format!(
                        "must exceed watchdog_timeout ({} ms)",
                        self.effective_watchdog_timeout().as_millis()
                    ),
                ));
            }
        }
        if self.devices.len() > MAX_DEVICES {
            return Err(src.error("fencing.device", format!("more than {MAX_DEVICES} devices")));
        }
        let mut ids = BTreeSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |f: &str| format!("fencing.device.{i}.{f}");
            if d.id.is_empty() {
                return Err(src.error(&key("id"), "a device needs an id"));
            }
            if !ids.insert(d.id.as_str()) {
                return Err(src.error(&key("id"), format!("duplicate device id {:?}", d.id)));
            }
            if d.agent.is_empty() {
                return Err(src.error(&key("agent"), format!("device {:?} has no agent", d.id)));
            }
            if d.agent.contains('/') || d.agent.starts_with('.') {
                return Err(src.error(
                    &key("agent"),
                    format!(
                        "agent {:?} must be a file name in agent_dir, not a path",
                        d.agent
                    ),
                ));
            }
            if d.params.len() > MAX_DEVICE_PARAMS {
                return Err(src.error(
                    &key("id"),
                    format!(
                        "device {:?} has more than {MAX_DEVICE_PARAMS} parameters",
                        d.id
                    ),
                ));
            }
            if let Some((k, _)) = d
                .params
                .iter()
                .find(|(k, v)| v.contains('\n') || k.contains('='))
            {
                return Err(src.error(
                    &key(k),
                    "parameter names may not contain '=' nor values a newline (agents read name=value lines)",
                ));
            }
        }
        let mut levels = BTreeSet::new();
        for (i, l) in self.levels.iter().enumerate() {
            let key = |f: &str| format!("fencing.level.{i}.{f}");
            if !(1..=MAX_LEVEL_INDEX).contains(&l.index) {
                return Err(src.error(
                    &key("index"),
                    format!("level index {} is not in 1..={MAX_LEVEL_INDEX}", l.index),
                ));
            }
            let target_empty = match &l.target {
                LevelTarget::Node(n) | LevelTarget::Pattern(n) => n.is_empty(),
                LevelTarget::Attribute { name, .. } => name.is_empty(),
            };
            if target_empty {
                return Err(src.error(&key("target"), "a level needs a target"));
            }
            if l.devices.is_empty() {
                return Err(src.error(&key("devices"), "a level needs at least one device"));
            }
            if let Some(missing) = l.devices.iter().find(|d| !ids.contains(d.as_str())) {
                return Err(src.error(
                    &key("devices"),
                    format!("level names device {missing:?}, which is not configured"),
                ));
            }
            if !levels.insert((format!("{:?}", l.target), l.index)) {
                return Err(src.error(
                    &key("index"),
                    format!("two levels with index {} for the same target", l.index),
                ));
            }
        }
        Ok(())
    }
}

/// Splits a level's device list (`a,b,c`; spaces around names allowed).
pub(super) fn device_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
