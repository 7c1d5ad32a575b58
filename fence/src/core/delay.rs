//! Delays against fence races (§2.7 of the fencing reference).
//!
//! * A device's own delay: `pcmk_delay_max` unset (0) means max = base; a base above
//!   max is capped to max; the delay is base plus a uniform random 0..=(max − base)
//!   seconds — so base=1,max=0 → 1 s; base=1,max=2 → 1 or 2 s; base=2,max=1 → 1 s;
//!   neither → none.
//! * A requested delay (the client's `--delay`, or the priority fencing delay) is
//!   added only before the first device of the first level; a negative request
//!   disables every device delay.
//! * `priority-fencing-delay`: see [`priority_fencing_delay_secs`].

use super::rng::SeededRng;
use super::timeout::RequestedDelay;

/// A device's own delay in seconds, drawn from `rng` when random.
pub fn device_delay_secs(base_s: u64, max_s: u64, rng: &mut SeededRng) -> u64 {
    let max = if max_s == 0 { base_s } else { max_s };
    let base = base_s.min(max);
    if max == 0 {
        return 0;
    }
    if max > base {
        base + rng.up_to(max - base)
    } else {
        base
    }
}

/// The delay before running a device: the requested delay (first device of the
/// first level only) plus the device's own delay (unless the request disabled
/// delays).
pub fn start_delay_secs(
    requested: RequestedDelay,
    first: bool,
    base_s: u64,
    max_s: u64,
    rng: &mut SeededRng,
) -> u64 {
    match requested {
        Some(d) if d < 0 => 0,
        _ => {
            let asked = if first {
                requested.filter(|d| *d > 0).map_or(0, |d| d as u64)
            } else {
                0
            };
            asked.saturating_add(device_delay_secs(base_s, max_s, rng))
        }
    }
}

/// One cluster node as the priority-fencing-delay rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePriority {
    /// A normal cluster node (remote and guest nodes do not count).
    pub cluster_node: bool,
    /// Online in our partition.
    pub online: bool,
    /// Its total resource priority (the scheduler's sum; a promoted instance counts
    /// its priority + 1 when that priority is not 0).
    pub priority: i64,
}

/// `priority-fencing-delay` for fencing `target` (Pacemaker's scheduler rule): the
/// option (whole seconds, timeouts rounding) when all of these hold, else 0 —
/// the option is > 0; the target is a cluster node; it is not online in our
/// partition; our partition has no more than half of the cluster nodes online;
/// the nodes' priorities are not all equal; and the target's priority is the
/// highest.
pub fn priority_fencing_delay_secs(
    option_ms: u64,
    target: &NodePriority,
    all: &[NodePriority],
) -> u64 {
    if option_ms == 0 || !target.cluster_node || target.online {
        return 0;
    }
    let cluster: Vec<&NodePriority> = all.iter().filter(|n| n.cluster_node).collect();
    let members = cluster.len();
    let online = cluster.iter().filter(|n| n.online).count();
    if online > members / 2 {
        return 0;
    }
    let top = cluster.iter().map(|n| n.priority).max().unwrap_or(0);
    let low = cluster.iter().map(|n| n.priority).min().unwrap_or(0);
    if top == low || target.priority < top {
        return 0;
    }
    super::duration::timeout_ms_to_secs(option_ms)
}
