//! Device faults a simulator draws per seed and lays over recorded replies.

use crate::Action;
use crate::core::SeededRng;

/// One way a device (or its agent) misbehaves on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFault {
    /// No answer ever reaches the fencer (a lost worker, a wedged runner): only
    /// the fencer's own deadlines end the operation.
    Hang,
    /// The agent hangs and the runner kills it at the call's timeout.
    Timeout,
    /// The device reports the wrong power state: `status`/`monitor` say the
    /// opposite; after `off`/`on`/`reboot` the agent's own verification reads the
    /// old state and fails (the device may still have acted).
    WrongStatus,
    /// The agent dies of a signal part way through.
    Crash,
    /// `off`/`reboot` take this many times the recorded duration (a machine slow
    /// to power off); past the call's timeout the runner kills the agent.
    SlowPowerOff(u32),
}

/// Per-call chances (percent) of each fault, drawn once per seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceFaults {
    /// Chance of [`DeviceFault::Hang`].
    pub hang_pct: u8,
    /// Chance of [`DeviceFault::Timeout`].
    pub timeout_pct: u8,
    /// Chance of [`DeviceFault::WrongStatus`].
    pub wrong_status_pct: u8,
    /// Chance of [`DeviceFault::Crash`].
    pub crash_pct: u8,
    /// Chance of [`DeviceFault::SlowPowerOff`] (on `off`/`reboot` only).
    pub slow_power_off_pct: u8,
}

/// Most a seed's drawn chance of one fault, percent: together at most half of
/// the calls fail, so operations still succeed often enough to test recovery.
pub const MAX_FAULT_PCT: u8 = 10;

/// Slowest [`DeviceFault::SlowPowerOff`] factor drawn.
pub const MAX_SLOW_FACTOR: u32 = 40;

impl DeviceFaults {
    /// Devices that never misbehave beyond their recording.
    pub fn none() -> DeviceFaults {
        DeviceFaults::default()
    }

    /// A seed's fault mix: each chance in `0..=MAX_FAULT_PCT`, some of them zero.
    ///
    /// ```
    /// use phalanx_fence::core::SeededRng;
    /// use phalanx_fence::replay::{DeviceFaults, MAX_FAULT_PCT};
    ///
    /// let f = DeviceFaults::draw(&mut SeededRng::new(3));
    /// assert_eq!(f, DeviceFaults::draw(&mut SeededRng::new(3)));
    /// assert!(f.hang_pct <= MAX_FAULT_PCT && f.crash_pct <= MAX_FAULT_PCT);
    /// ```
    pub fn draw(rng: &mut SeededRng) -> DeviceFaults {
        let mut pct = || {
            // One fault kind in three is absent from a seed altogether.
            if rng.up_to(2) == 0 {
                0
            } else {
                rng.up_to(u64::from(MAX_FAULT_PCT)) as u8
            }
        };
        DeviceFaults {
            hang_pct: pct(),
            timeout_pct: pct(),
            wrong_status_pct: pct(),
            crash_pct: pct(),
            slow_power_off_pct: pct(),
        }
    }

    /// The fault (if any) of one call of `action`.
    pub fn pick(&self, action: Action, rng: &mut SeededRng) -> Option<DeviceFault> {
        let powers_off = matches!(action, Action::Off | Action::Reboot);
        let mut roll = rng.up_to(99) as u8;
        let kinds = [
            (self.hang_pct, DeviceFault::Hang),
            (self.timeout_pct, DeviceFault::Timeout),
            (self.wrong_status_pct, DeviceFault::WrongStatus),
            (self.crash_pct, DeviceFault::Crash),
        ];
        for (pct, fault) in kinds {
            if roll < pct {
                return Some(fault);
            }
            roll -= pct;
        }
        if powers_off && roll < self.slow_power_off_pct {
            let factor = 2 + rng.up_to(u64::from(MAX_SLOW_FACTOR - 2)) as u32;
            return Some(DeviceFault::SlowPowerOff(factor));
        }
        None
    }
}
