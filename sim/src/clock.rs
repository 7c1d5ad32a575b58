//! Per-node local clocks with a fixed offset and linear drift.
//!
//! Nodes only ever see their local clock; the engine keeps virtual time. Timeouts come
//! back in local time and are converted to the earliest virtual time at which the local
//! clock has reached them (rounding up, so a node is never woken early).

use crate::node::VTime;

/// Limit on drift so the local clock is strictly increasing and conversion stays exact.
const MAX_PPB: i64 = 100_000_000;

/// `local = offset + vt * (1 + ppb * 1e-9)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Local time at virtual time zero.
    pub offset_ns: u64,
    /// Drift in parts per billion (1 ppm = 1000 ppb); clamped to ±10 %.
    pub drift_ppb: i64,
}

impl Clock {
    /// A clock with the given offset and drift.
    pub fn new(offset_ns: u64, drift_ppb: i64) -> Self {
        Self {
            offset_ns,
            drift_ppb: drift_ppb.clamp(-MAX_PPB, MAX_PPB),
        }
    }

    /// The node's local time at virtual time `vt`.
    #[inline]
    pub fn local(&self, vt: VTime) -> u64 {
        if self.drift_ppb == 0 {
            return self.offset_ns.saturating_add(vt);
        }
        // i64 arithmetic covers any realistic run; i128 (slow division) only beyond.
        if let Some(p) = i64::try_from(vt)
            .ok()
            .and_then(|v| v.checked_mul(self.drift_ppb))
        {
            let drift = p.div_euclid(1_000_000_000);
            return (i128::from(self.offset_ns) + i128::from(vt) + i128::from(drift))
                .clamp(0, i128::from(u64::MAX)) as u64;
        }
        let vt = i128::from(vt);
        let drift = (vt * i128::from(self.drift_ppb)).div_euclid(1_000_000_000);
        (i128::from(self.offset_ns) + vt + drift).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The earliest virtual time at which the local clock reads at least `local`.
    pub fn to_vtime(&self, local: u64) -> VTime {
        if local <= self.local(0) {
            return 0;
        }
        let rel = i128::from(local) - i128::from(self.offset_ns);
        let est = rel * 1_000_000_000 / (1_000_000_000 + i128::from(self.drift_ppb));
        let mut vt = est.clamp(0, i128::from(u64::MAX)) as u64;
        // The estimate is within a couple of nanoseconds; walk to the exact answer.
        for _ in 0..64 {
            if self.local(vt) < local {
                if vt == u64::MAX {
                    return vt;
                }
                vt += 1;
            } else if vt > 0 && self.local(vt - 1) >= local {
                vt -= 1;
            } else {
                break;
            }
        }
        vt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_rounds_up() {
        for &(off, ppb) in &[(0, 0), (5_000, 200_000), (123_456_789, -200_000), (7, 3)] {
            let c = Clock::new(off, ppb);
            for vt in [0u64, 1, 999, 1_000_000, 3_999_999_999, 10_000_000_007] {
                let l = c.local(vt);
                let back = c.to_vtime(l);
                assert!(back <= vt);
                assert!(c.local(back) >= l);
                if back > 0 {
                    assert!(c.local(back - 1) < l);
                }
            }
        }
        let c = Clock::new(u64::MAX - 5, 200_000);
        let _ = c.to_vtime(u64::MAX);
        let _ = c.local(u64::MAX);
    }
}
