//! The per-session anti-replay window over datagram counters.

/// Width of the window in counters (bits of the bitmap).
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Why [`ReplayWindow::check`] refused a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Already accepted once.
    Seen,
    /// At least [`WINDOW`] below the highest accepted counter: cannot tell.
    TooOld,
}

/// A sliding window of the last [`WINDOW`] counters below and including the
/// highest counter accepted so far (RFC 6479 style, without the block trick).
///
/// `check` never changes state, so a datagram is checked before authentication and
/// only [`accept`](Self::accept)ed after: a forged datagram cannot move the window.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// Highest accepted counter; meaningful only when `any`.
    top: u64,
    any: bool,
    /// Bit `c % WINDOW` is set when counter `c` (within the window) was accepted.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// An empty window: every counter is new.
    pub(crate) fn new() -> Self {
        ReplayWindow {
            top: 0,
            any: false,
            bits: [0; WORDS],
        }
    }

    fn bit(c: u64) -> (usize, u64) {
        let i = c % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Whether `c` would be accepted. Does not change the window.
    pub(crate) fn check(&self, c: u64) -> Result<(), Reject> {
        if !self.any || c > self.top {
            return Ok(());
        }
        if self.top - c >= WINDOW {
            return Err(Reject::TooOld);
        }
        let (w, m) = Self::bit(c);
        if self.bits[w] & m != 0 {
            Err(Reject::Seen)
        } else {
            Ok(())
        }
    }

    /// Records `c` as accepted. Call only after `check(c)` was `Ok` and the datagram
    /// authenticated.
    pub(crate) fn accept(&mut self, c: u64) {
        if !self.any {
            self.any = true;
            self.top = c;
            self.bits = [0; WORDS];
        } else if c > self.top {
            let shift = c - self.top;
            if shift >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                // Clear the slots of counters top+1 ..= c-1 (they were not seen) that
                // now alias counters that fell out of the window.
                for k in self.top + 1..c {
                    let (w, m) = Self::bit(k);
                    self.bits[w] &= !m;
                }
            }
            self.top = c;
            let (w, m) = Self::bit(c);
            // Slot c held counter c - WINDOW (now out of the window): reset it.
            self.bits[w] &= !m;
        }
        let (w, m) = Self::bit(c);
        self.bits[w] |= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_semantics() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(5), Ok(()));
        w.accept(5);
        assert_eq!(w.check(5), Err(Reject::Seen));
        assert_eq!(w.check(4), Ok(()));
        assert_eq!(w.check(0), Ok(()));
        w.accept(3);
        assert_eq!(w.check(3), Err(Reject::Seen));
        // Jump ahead by less than the window: old entries remain remembered.
        w.accept(5 + WINDOW - 1);
        assert_eq!(w.check(5), Err(Reject::Seen));
        assert_eq!(w.check(4), Err(Reject::TooOld));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.check(5 + WINDOW - 1), Err(Reject::Seen));
        // Jump far ahead: everything before falls out.
        w.accept(10 * WINDOW);
        assert_eq!(w.check(10 * WINDOW - WINDOW), Err(Reject::TooOld));
        assert_eq!(w.check(10 * WINDOW - WINDOW + 1), Ok(()));
        assert_eq!(w.check(10 * WINDOW), Err(Reject::Seen));
        assert_eq!(w.check(u64::MAX), Ok(()));
    }

    #[test]
    fn window_matches_a_set_model() {
        // Deterministic pseudo-random walk against an exact model.
        let mut w = ReplayWindow::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut top: Option<u64> = None;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let base = top.unwrap_or(0);
            let c = (base + 40).saturating_sub(x % 1200);
            let expect = match top {
                Some(t) if c <= t && t - c >= WINDOW => Err(Reject::TooOld),
                _ if seen.contains(&c) => Err(Reject::Seen),
                _ => Ok(()),
            };
            assert_eq!(w.check(c), expect, "counter {c} top {top:?}");
            if expect.is_ok() {
                w.accept(c);
                seen.insert(c);
                top = Some(top.map_or(c, |t| t.max(c)));
            }
        }
    }
}
