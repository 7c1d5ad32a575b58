//! The simulator's only source of randomness: xoshiro256** seeded through SplitMix64.
//!
//! Written here rather than taken from a crate so that the stream for a given seed can
//! never change under us with a dependency upgrade: a seed printed today must replay the
//! same run next year.

use std::ops::{Bound, RangeBounds};

/// A small, fast, deterministic pseudo-random generator (xoshiro256**).
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// One SplitMix64 step; used to expand a 64-bit seed into xoshiro's 256-bit state, which
/// must not be all zero.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several words into one seed (used to derive per-node seeds from the run seed).
pub fn mix(words: &[u64]) -> u64 {
    let mut state = 0x6A09_E667_F3BC_C908;
    let mut out = 0;
    for w in words {
        state ^= *w;
        out = splitmix64(&mut state);
    }
    out
}

impl Rng {
    /// A generator whose whole stream is a function of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A value in `range`. An empty range yields its start instead of panicking.
    #[inline]
    pub fn gen_range<R: RangeBounds<u64>>(&mut self, range: R) -> u64 {
        let lo = match range.start_bound() {
            Bound::Included(v) => *v,
            Bound::Excluded(v) => v.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(v) => *v,
            Bound::Excluded(v) => match v.checked_sub(1) {
                Some(h) => h,
                None => return lo,
            },
            Bound::Unbounded => u64::MAX,
        };
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        // Multiply-shift: the bias is at most span/2^64, far below anything a test sees.
        lo + ((u128::from(self.next_u64()) * u128::from(span + 1)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    #[inline]
    pub fn gen_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`; NaN counts as 0).
    #[inline]
    pub fn gen_bool(&mut self, p: f64) -> bool {
        // Always consume one draw so that a stream's shape does not depend on `p`.
        let u = self.gen_f64();
        u < p
    }

    /// An exponentially distributed value with the given mean, in the same unit.
    pub fn gen_exp(&mut self, mean: u64) -> u64 {
        let u = self.gen_f64();
        let v = -(mean as f64) * (1.0 - u).ln();
        if v.is_finite() && v < 1.0e18 {
            v as u64
        } else {
            1_000_000_000_000_000_000
        }
    }

    /// A value in `range` drawn log-uniformly, so that small and large magnitudes are
    /// equally likely (useful for rates and durations spanning decades).
    pub fn gen_log_range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let (l, h) = ((lo.max(1)) as f64, hi as f64);
        let v = (l.ln() + self.gen_f64() * (h.ln() - l.ln())).exp();
        (v as u64).clamp(lo, hi)
    }

    /// An independent generator derived from this one's stream.
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn ranges_stay_in_bounds_and_never_panic() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let v = r.gen_range(10..=12);
            assert!((10..=12).contains(&v));
            assert!(r.gen_range(3..4) == 3);
            let f = r.gen_f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert_eq!(r.gen_range(5..5), 5);
        let (hi, lo) = (2, 9);
        assert_eq!(r.gen_range(lo..=hi), 9);
        let _ = r.gen_range(..);
        assert!(!r.gen_bool(0.0));
        assert!(r.gen_bool(1.0));
        assert!(!r.gen_bool(f64::NAN));
        let v = r.gen_log_range(1_000, 1_000_000);
        assert!((1_000..=1_000_000).contains(&v));
    }

    #[test]
    fn forks_differ() {
        let mut r = Rng::new(3);
        let mut a = r.fork();
        let mut b = r.fork();
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
