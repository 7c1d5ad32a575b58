//! The fencer's only randomness (the random part of `pcmk_delay_max`): SplitMix64
//! from a seed in the configuration, so a run is a pure function of its inputs and
//! seed (ARCHITECTURE.md §2). The same generator the simulator uses to seed its own
//! (sim/src/rng.rs), written here because a core does not depend on the simulator.

/// A small deterministic generator.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose whole stream is a function of `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..=max` (multiply-shift; the bias is negligible for the small
    /// ranges of delays).
    pub fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            None => self.next_u64(),
            Some(n) => ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_range_respected() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        let mut seen = [false; 3];
        for _ in 0..200 {
            let x = a.up_to(2);
            assert_eq!(x, b.up_to(2));
            assert!(x <= 2);
            seen[x as usize] = true;
        }
        assert_eq!(seen, [true; 3], "every value of 0..=2 is drawn");
        assert_eq!(SeededRng::new(1).up_to(0), 0);
        assert_ne!(SeededRng::new(1).next_u64(), SeededRng::new(2).next_u64());
    }
}
