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
