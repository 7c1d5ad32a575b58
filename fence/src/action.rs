//! The actions a fence agent understands (`action=` on its stdin, §2.1 of the
//! fencing reference). Shared by the agent runner and the fencer core so both speak
//! of the same thing.

use std::fmt;
use std::str::FromStr;

/// One agent action.
///
/// ```
/// use phalanx_fence::Action;
/// assert_eq!("Reboot".parse::<Action>(), Ok(Action::Reboot));
/// assert_eq!(Action::ListStatus.as_str(), "list-status");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Power the target off (the one action every agent must have).
    Off,
    /// Power the target on; for fabric devices this is unfencing.
    On,
    /// Off then on; success is decided by the off part.
    Reboot,
    /// Is the target's port on (exit 0) or off (exit 2)?
    Status,
    /// Is the device itself reachable?
    Monitor,
    /// Which ports (targets) the device can fence.
    List,
    /// `list` with each port's power state.
    ListStatus,
    /// The agent's metadata XML.
    Metadata,
    /// Check the parameters without touching the device.
    ValidateAll,
}

impl Action {
    /// Every action, in a fixed order.
    pub const ALL: [Action; 9] = [
        Action::Off,
        Action::On,
        Action::Reboot,
        Action::Status,
        Action::Monitor,
        Action::List,
        Action::ListStatus,
        Action::Metadata,
        Action::ValidateAll,
    ];

    /// The name written after `action=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::On => "on",
            Action::Reboot => "reboot",
            Action::Status => "status",
            Action::Monitor => "monitor",
            Action::List => "list",
            Action::ListStatus => "list-status",
            Action::Metadata => "metadata",
            Action::ValidateAll => "validate-all",
        }
    }

    /// Whether the action changes the target's power state (these are the ones
    /// fencing is made of, and the only ones an agent-side `delay=` applies to when
    /// they are `off`/`reboot`).
    pub fn changes_power(self) -> bool {
        matches!(self, Action::Off | Action::On | Action::Reboot)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`Action::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fence action {0:?}")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    /// Case-insensitive, as agents read `action=` (`_` and `-` interchangeable).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == wanted)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}
