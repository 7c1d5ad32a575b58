//! Hash maps keyed by ids this node makes itself (lock ids, holder pairs).
//!
//! The lock path inserts and removes a handful of such entries per call; a
//! B-tree allocates and frees a leaf whenever a map goes between empty and one
//! entry, and searches by comparison. A hash map keeps its table, and the keys
//! are small integers made here (not by peers), so there is no flooding to
//! resist and no need for SipHash. The hasher has no random state: a map's
//! behaviour depends only on its inputs, as the simulator needs.
//!
//! ```
//! use phalanx_dlm::id_map::IdMap;
//!
//! let mut m: IdMap<u32, &str> = IdMap::default();
//! m.insert(7, "seven");
//! assert_eq!(m.get(&7), Some(&"seven"));
//! ```

// The crate bans `HashMap` because a std map's iteration order depends on a
// random seed. This one has none: its order depends only on the sequence of
// inserts and removes, so a simulated run replays exactly. Where order shows
// (views, recovery messages) the users sort.
#[allow(clippy::disallowed_types)]
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` with [`BuildIdHasher`] (no random state: see the module docs).
#[allow(clippy::disallowed_types)]
pub type IdMap<K, V> = HashMap<K, V, BuildIdHasher>;

/// Builds [`IdHasher`]s (no state: the same keys hash the same everywhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildIdHasher;

impl BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// Multiply-rotate mixing of the written integers (FxHash's scheme).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}
