//! **No duplication and no invention** (EVS ICDCS 1994, "Basic delivery": each message
//! is delivered at most once by a process, and only messages that were sent are
//! delivered). A delivered message must also arrive intact: its embedded checksum and
//! length verified at the receiving application.

use super::{MAX_REPORTS, Timeline, Violation, proc_name, timelines};
use crate::history::{History, MsgId};

const NAME: &str = "no_duplication";

/// Checks at-most-once delivery, that every delivered id was sent, and payload integrity.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let mut all_sent: Vec<MsgId> = tls.iter().flat_map(|t| t.sent.iter().copied()).collect();
    all_sent.sort_unstable();
    all_sent.dedup();
    let mut out = Vec::new();
    let mut report = |v: Violation| {
        if out.len() < MAX_REPORTS {
            out.push(v);
        }
    };
    for t in tls {
        let mut seen: Vec<MsgId> = t.deliveries.iter().map(|d| d.msg).collect();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            report(Violation::new(
                NAME,
                format!("{} delivered {} more than once", proc_name(t.process), w[0]),
            ));
        }
        for d in &t.deliveries {
            if all_sent.binary_search(&d.msg).is_err() {
                report(Violation::new(
                    NAME,
                    format!(
                        "{} delivered {}, which nobody sent",
                        proc_name(t.process),
                        d.msg
                    ),
                ));
                break;
            }
        }
        if let Some(d) = t.deliveries.iter().find(|d| !d.intact) {
            report(Violation::new(
                NAME,
                format!(
                    "{} delivered {} with a corrupt payload",
                    proc_name(t.process),
                    d.msg
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
    use crate::history::{Guarantee::Agreed, Observation};

    #[test]
    fn clean_history_passes() {
        assert!(check(&healthy(&[1, 2, 3], &[m(1, 1), m(3, 1)])).is_empty());
    }

    #[test]
    fn duplicate_is_reported() {
        let mut h = healthy(&[1, 2], &[m(1, 1)]);
        deliver(&mut h, 5, 2, m(1, 1), Agreed);
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("more than once"));
    }

    #[test]
    fn invented_and_corrupt_are_reported() {
        let mut h = healthy(&[1, 2], &[m(1, 1)]);
        deliver(&mut h, 5, 2, m(1, 9), Agreed);
        h.observe(
            6,
            1,
            0,
            Observation::Deliver {
                msg: m(1, 1),
                guarantee: Agreed,
                intact: false,
            },
        );
        let v = check(&h);
        assert!(v.iter().any(|v| v.detail.contains("nobody sent")));
        assert!(v.iter().any(|v| v.detail.contains("corrupt")));
    }
}
