//! **No invention, corruption or duplication in groups**: every message a member
//! delivers was multicast by some member, arrives intact from the member the core
//! names as its sender, and is delivered at most once to each member.

use super::cpg::{CpgHistory, Step, who};
use super::{MAX_REPORTS, Violation};
use crate::history::History;
use std::collections::BTreeSet;

const NAME: &str = "cpg_integrity";

/// Checks integrity over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(&CpgHistory::new(h))
}

pub(crate) fn check_cpg(c: &CpgHistory) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in &c.timelines {
        let mut seen = BTreeSet::new();
        for s in &t.steps {
            let Step::Deliver { msg, intact, .. } = s else {
                continue;
            };
            let problem = if !intact {
                "a corrupt or misattributed message"
            } else if !c.sent.contains(msg) {
                "a message nobody sent"
            } else if !seen.insert(*msg) {
                "a message twice"
            } else {
                continue;
            };
            if out.len() < MAX_REPORTS {
                out.push(Violation::new(
                    NAME,
                    format!("{} delivered {problem}: {msg}", who(t)),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::cpg::testutil::*;

    #[test]
    fn sent_once_passes_invented_or_duplicated_fails() {
        let mut h = two_members();
        sent(&mut h, 1, 1, msg(1, 1));
        deliver(&mut h, 2, 1, (1, 1), msg(1, 1));
        assert!(check(&h).is_empty());
        deliver(&mut h, 2, 1, (1, 1), msg(1, 1));
        assert_eq!(check(&h).len(), 1);
        deliver(&mut h, 2, 1, (1, 1), msg(1, 9));
        assert_eq!(check(&h).len(), 2);
    }
}
