//! **No delivery outside the group**: a member receives a group's messages only
//! while its own view contains it, and only from members of that view; it receives
//! a view change only if the view contains it or removes it; and it receives
//! nothing once its handle was dropped.

use super::cpg::{CpgHistory, Step, who};
use super::{MAX_REPORTS, Violation};
use crate::history::History;

const NAME: &str = "cpg_no_delivery_before_join";

/// Checks delivery scope over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(&CpgHistory::new(h))
}

pub(crate) fn check_cpg(c: &CpgHistory) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in &c.timelines {
        let me = t.id();
        let mut view: Option<&Vec<_>> = None;
        let mut down = false;
        for s in &t.steps {
            let in_view = view.is_some_and(|m| m.contains(&me));
            let problem = match s {
                Step::Down => {
                    down = true;
                    continue;
                }
                _ if down => format!("got {s:?} after its handle was dropped"),
                Step::View(v) => {
                    let removes_me = in_view && v.left.iter().any(|(m, _)| *m == me);
                    view = Some(&v.members);
                    if v.members.contains(&me) || removes_me {
                        continue;
                    }
                    format!("got view {} without being in it", v.view)
                }
                Step::Deliver { sender, msg, .. } => {
                    if !in_view {
                        format!("delivered {msg} while not in its view")
                    } else if !view.is_some_and(|m| m.contains(sender)) {
                        format!("delivered {msg} from {sender:?}, not in its view")
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            if out.len() < MAX_REPORTS {
                out.push(Violation::new(NAME, format!("{} {problem}", who(t))));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::cpg::testutil::*;
    use crate::history::CpgRequest;

    #[test]
    fn delivery_inside_the_view_passes() {
        let mut h = two_members();
        deliver(&mut h, 2, 1, (1, 1), msg(1, 1));
        assert!(check(&h).is_empty());
    }

    #[test]
    fn delivery_before_join_from_a_stranger_or_after_down_fails() {
        let mut h = History::new(vec![1]);
        deliver(&mut h, 1, 1, (1, 2), msg(1, 1));
        assert_eq!(check(&h).len(), 1);
        let mut h = two_members();
        deliver(&mut h, 2, 1, (3, 3), msg(3, 1));
        assert_eq!(check(&h).len(), 1);
        let mut h = two_members();
        request(&mut h, 2, 1, CpgRequest::Down);
        deliver(&mut h, 2, 1, (1, 1), msg(1, 1));
        assert_eq!(check(&h).len(), 1);
    }
}
