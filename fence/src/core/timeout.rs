//! The fencer's timeout arithmetic (§2.4 of the fencing reference), in whole
//! seconds exactly as Pacemaker's fencer does it, so the cts-fencing log vectors
//! ("Total timeout set to 6s", 48 s, 12 s, 4807 s, 3 s, 727 s) come out the same:
//!
//! * a device's budget = its action timeout (`pcmk_<action>_timeout`, else the
//!   request's timeout) + its delay allowance (`pcmk_delay_max` when set, else
//!   `pcmk_delay_base`; none when the request disabled delays);
//! * the total = the sum of the budgets of every device that may run (all levels
//!   of the topology, or every capable device without topology; the request's
//!   timeout when that sum is 0) + the requested delay, then × 1.2, truncated;
//! * one attempt's guard = × 1.2 of the requested delay (first device only),
//!   truncated, + × 1.2 of the device's budget, truncated.

use super::device::Device;
use crate::Action;

/// Pacemaker's factor on configured timeouts.
pub const TIMEOUT_MULTIPLY_FACTOR: f64 = 1.2;

/// `secs` × 1.2, truncated (the C `int = double * int` conversion).
pub fn scaled(secs: u64) -> u64 {
    (TIMEOUT_MULTIPLY_FACTOR * secs as f64) as u64
}

/// One device's part of an operation's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceBudget {
    /// The action timeout, seconds.
    pub timeout_s: u64,
    /// `pcmk_delay_base` for this target and action, seconds.
    pub delay_base_s: u64,
    /// `pcmk_delay_max` for this action, seconds.
    pub delay_max_s: u64,
}

impl DeviceBudget {
    /// The budget of `device` running `action` against `target` for a request whose
    /// timeout is `request_timeout_s`.
    pub fn of(device: &Device, action: Action, target: &str, request_timeout_s: u64) -> Self {
        DeviceBudget {
            timeout_s: device.action_timeout_secs(action, request_timeout_s),
            delay_base_s: device.delay_base_secs(action, target),
            delay_max_s: device.delay_max_secs(action),
        }
    }

    /// Timeout plus the delay allowance (`delay_max` when set, else `delay_base`);
    /// without the allowance when `delays_disabled`.
    pub fn with_delay(&self, delays_disabled: bool) -> u64 {
        let allowance = if delays_disabled {
            0
        } else if self.delay_max_s > 0 {
            self.delay_max_s
        } else {
            self.delay_base_s
        };
        self.timeout_s.saturating_add(allowance)
    }
}

/// The requested delay: `None` = none asked; `Some(d)` with d ≥ 0 = add d seconds
/// before the first device; `Some(-1)` (any negative) = disable every static and
/// random device delay (Pacemaker's `--delay -1`).
pub type RequestedDelay = Option<i64>;

fn delays_disabled(requested: RequestedDelay) -> bool {
    requested.is_some_and(|d| d < 0)
}

fn positive(requested: RequestedDelay) -> u64 {
    requested.filter(|d| *d > 0).map_or(0, |d| d as u64)
}

/// The total timeout of an operation in seconds (see the module docs).
///
/// ```
/// use phalanx_fence::core::{DeviceBudget, total_timeout_secs};
/// let dev = |t| DeviceBudget { timeout_s: t, delay_base_s: 0, delay_max_s: 0 };
/// // cts-fencing custom_timeout_2: 5 + 1 + 4000 = 4006 → 4807 s.
/// assert_eq!(total_timeout_secs(&[dev(5), dev(1), dev(4000)], 5, None), 4807);
/// ```
pub fn total_timeout_secs(
    devices: &[DeviceBudget],
    request_timeout_s: u64,
    requested: RequestedDelay,
) -> u64 {
    let off = delays_disabled(requested);
    let mut total = devices
        .iter()
        .fold(0u64, |acc, d| acc.saturating_add(d.with_delay(off)));
    if total == 0 {
        total = request_timeout_s;
    }
    scaled(total.saturating_add(positive(requested)))
}

/// The guard for one attempt on one device: what Pacemaker's originator waits for
/// a peer's answer ("Requesting that … perform 'off' … (146s)"). The requested
/// delay counts only for the first device of the first level.
pub fn attempt_budget_secs(device: &DeviceBudget, requested: RequestedDelay, first: bool) -> u64 {
    let delay = if first {
        scaled(positive(requested))
    } else {
        0
    };
    let dev = TIMEOUT_MULTIPLY_FACTOR * device.with_delay(delays_disabled(requested)) as f64;
    (delay as f64 + dev) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_truncates() {
        for (s, want) in [
            (0, 0),
            (1, 1),
            (3, 3),
            (5, 6),
            (6, 7),
            (10, 12),
            (18, 21),
            (40, 48),
            (4006, 4807),
        ] {
            assert_eq!(scaled(s), want, "{s}");
        }
    }

    #[test]
    fn zero_budget_falls_back_to_request_timeout() {
        assert_eq!(total_timeout_secs(&[], 5, None), 6);
        assert_eq!(total_timeout_secs(&[], 5, Some(2)), 8);
        let d = DeviceBudget {
            timeout_s: 10,
            delay_base_s: 3,
            delay_max_s: 0,
        };
        assert_eq!(
            total_timeout_secs(&[d], 60, Some(-1)),
            12,
            "delays disabled"
        );
        assert_eq!(total_timeout_secs(&[d], 60, None), 15);
    }
}
