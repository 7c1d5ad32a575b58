//! A bug planted on purpose, to prove that the judge of real histories can fail
//! (`phalanx-nemesis --plant-bug`, `tests/nemesis.rs`): with the hidden flag
//! `--plant-bug swap-deliveries`, a controlled node reports two consecutive
//! deliveries (its 50th and 51st) in swapped order. The node itself delivers
//! correctly; only its report lies — what a reordering bug on the delivery path
//! would look like from outside. Never set otherwise.

/// The bugs that can be planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlantedBug {
    /// Report one pair of consecutive deliveries in the opposite order.
    SwapDeliveries,
}

/// Which delivery is held back (and reported after the next one).
const SWAP_AT: u64 = 50;

/// The swap of [`PlantedBug::SwapDeliveries`]: holds one `deliver` line back
/// and lets it out after the next.
#[derive(Debug, Default)]
pub struct Swap {
    /// Armed: the number of the delivery to hold back.
    at: Option<u64>,
    seen: u64,
    held: Option<String>,
}

impl Swap {
    /// Armed when `bug` asks for it; else every line passes unchanged.
    pub fn new(bug: Option<PlantedBug>) -> Swap {
        Swap {
            at: (bug == Some(PlantedBug::SwapDeliveries)).then_some(SWAP_AT),
            ..Swap::default()
        }
    }

    /// The `deliver` field lines to report now for one more delivery, in order.
    pub fn pass(&mut self, fields: String) -> Vec<String> {
        self.seen += 1;
        if let Some(held) = self.held.take() {
            return vec![fields, held];
        }
        if self.at == Some(self.seen) {
            self.held = Some(fields);
            return Vec::new();
        }
        vec![fields]
    }

    /// A configuration change comes: a held line goes out before it (the swap
    /// stays inside one configuration).
    pub fn flush(&mut self) -> Option<String> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unarmed_passes_everything_in_order() {
        let mut s = Swap::new(None);
        for i in 0..100 {
            assert_eq!(s.pass(i.to_string()), vec![i.to_string()]);
        }
        assert_eq!(s.flush(), None);
    }

    #[test]
    fn armed_swaps_exactly_one_pair() {
        let mut s = Swap::new(Some(PlantedBug::SwapDeliveries));
        let mut out = Vec::new();
        for i in 1..=60u64 {
            out.extend(s.pass(i.to_string()));
        }
        let expect: Vec<String> = (1..=49u64)
            .chain([51, 50])
            .chain(52..=60)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(out, expect);
    }

    #[test]
    fn a_held_line_goes_out_before_a_configuration() {
        let mut s = Swap::new(Some(PlantedBug::SwapDeliveries));
        for i in 1..50u64 {
            s.pass(i.to_string());
        }
        assert!(s.pass("50".into()).is_empty());
        assert_eq!(s.flush(), Some("50".into()));
        assert_eq!(s.pass("51".into()), vec!["51".to_string()]);
    }
}
