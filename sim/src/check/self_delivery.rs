//! **Self delivery** (EVS ICDCS 1994, "Self-delivery"): a process delivers every message
//! it sent unless it fails. Here: every message `Sent` by a process that neither crashed
//! nor left before the end of the run is delivered by that same process.

use super::{MAX_REPORTS, Timeline, Violation, proc_name, sample, timelines};
use crate::history::{History, MsgId};

const NAME: &str = "self_delivery";

/// Checks that surviving processes delivered all their own messages.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in tls {
        if t.failed || t.sent.is_empty() {
            continue;
        }
        let mut got: Vec<MsgId> = t.deliveries.iter().map(|d| d.msg).collect();
        got.sort_unstable();
        let missing: Vec<MsgId> = t
            .sent
            .iter()
            .filter(|m| got.binary_search(m).is_err())
            .copied()
            .collect();
        if !missing.is_empty() && out.len() < MAX_REPORTS {
            out.push(Violation::new(
                NAME,
                format!(
                    "{} never delivered {} of its own messages: {}",
                    proc_name(t.process),
                    missing.len(),
                    sample(&missing)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::{EventKind, Guarantee::Agreed};

    #[test]
    fn delivered_own_passes() {
        assert!(check(&healthy(&[1, 2], &[m(1, 1), m(2, 1)])).is_empty());
    }

    #[test]
    fn failed_process_is_excused() {
        let mut h = History::new(vec![1]);
        sent(&mut h, 1, 1, m(1, 1), Agreed);
        h.push(2, 1, 0, EventKind::Crash);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn missing_own_message_is_reported() {
        let mut h = healthy(&[1, 2], &[m(1, 1)]);
        sent(&mut h, 3, 2, m(2, 7), Agreed);
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].detail.contains("n2#0") && v[0].detail.contains("2:0:7"),
            "{}",
            v[0].detail
        );
    }
}
