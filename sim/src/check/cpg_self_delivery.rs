//! **Self delivery in groups**: a member delivers every message it multicast while
//! it was in its own view of the group, unless its process failed or its handle was
//! dropped (`member_down`). A message sent before the member saw itself join may
//! be dropped, as Corosync drops messages from non-members.

use super::cpg::{CpgHistory, Step, who};
use super::{MAX_REPORTS, Violation, sample};
use crate::history::{History, MsgId};
use std::collections::BTreeSet;

const NAME: &str = "cpg_self_delivery";

/// Checks self delivery over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(&CpgHistory::new(h))
}

pub(crate) fn check_cpg(c: &CpgHistory) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in &c.timelines {
        if t.failed || t.went_down {
            continue;
        }
        let mut in_view = false;
        let mut expected = Vec::new();
        let mut got = BTreeSet::new();
        for s in &t.steps {
            match s {
                Step::View(v) => in_view = v.members.contains(&t.id()),
                Step::Sent(m) if in_view => expected.push(*m),
                Step::Deliver { msg, .. } => {
                    got.insert(*msg);
                }
                _ => {}
            }
        }
        let missing: Vec<MsgId> = expected.into_iter().filter(|m| !got.contains(m)).collect();
        if !missing.is_empty() && out.len() < MAX_REPORTS {
            out.push(Violation::new(
                NAME,
                format!(
                    "{} never delivered {} of its own messages: {}",
                    who(t),
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
    use crate::check::cpg::testutil::*;
    use crate::history::{CpgRequest, EventKind};

    #[test]
    fn own_message_delivered_passes_and_missing_fails() {
        let mut h = two_members();
        sent(&mut h, 1, 1, msg(1, 5));
        deliver(&mut h, 1, 1, (1, 1), msg(1, 5));
        assert!(check(&h).is_empty());
        sent(&mut h, 1, 1, msg(1, 6));
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn dropped_handle_crash_and_send_before_join_are_excused() {
        let mut h = two_members();
        sent(&mut h, 1, 1, msg(1, 6));
        request(&mut h, 1, 1, CpgRequest::Down);
        assert!(check(&h).is_empty());
        let mut h = two_members();
        sent(&mut h, 2, 1, msg(2, 6));
        h.push(1, 2, 0, EventKind::Crash);
        assert!(check(&h).is_empty());
        let mut h = History::new(vec![1]);
        sent(&mut h, 1, 1, msg(1, 1));
        assert!(check(&h).is_empty());
    }
}
