//! The §3.5 grant rules, one named test each, plus HEADQUE, ALTPR/ALTCW, down and
//! middle conversions. Each test builds the queue state the rule talks about, makes
//! the call, and checks both where the lock ended and what was announced.

mod common;

use common::*;
use phalanx_dlm::*;

use Mode::{Cr, Cw, Ex, Nl, Pr, Pw};

#[test]
fn rule1_expedite_nl_is_granted_even_with_queued_waiters() {
    let mut h = Harness::new();
    h.lock(1, "r", Ex);
    let waiter = h.lock(2, "r", Ex);
    let plain_nl = h.lock(3, "r", Nl);
    let expedited = h.lock_with(4, "r", Nl, LockFlags::EXPEDITE);
    assert!(h.is_waiting(waiter));
    // Without EXPEDITE even NL queues behind a waiter (rule 9).
    assert!(h.is_waiting(plain_nl));
    assert!(h.is_granted(expedited, Nl));
    let outs = h.drain();
    assert_eq!(completion_of(&outs, expedited).status, Status::Granted);
}

#[test]
fn rule2_a_request_conflicting_with_a_granted_lock_waits() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let writer = h.lock(2, "r", Ex);
    assert!(h.is_granted(holder, Pr));
    assert!(h.is_waiting(writer));
    // The blocked writer has no completion yet (it is in progress).
    let outs = h.drain();
    assert_eq!(
        completions(&outs),
        vec![(holder, Status::Granted, Some(Pr))]
    );
}

#[test]
fn rule3_a_conversion_conflicting_with_a_queued_conversion_waits_behind_it() {
    let mut h = Harness::new();
    let reader = h.lock(1, "r", Cr);
    let b = h.lock(2, "r", Nl);
    let c = h.lock(3, "r", Nl);
    h.convert(2, b, Ex); // blocked by the CR holder
    assert!(h.is_converting(b));
    // NL -> PR is compatible with every *granted* mode (CR, NL, NL) but not with the
    // queued EX request: it queues instead of overtaking (it blocks nobody, so this
    // is not a deadlock).
    h.convert(3, c, Pr);
    assert!(h.is_converting(c));
    h.drain();
    h.unlock(1, reader);
    // The head conversion goes first; the PR behind it must now wait for the EX.
    assert!(h.is_granted(b, Ex));
    assert!(h.is_converting(c));
    let outs = h.drain();
    assert_eq!(completion_of(&outs, b).granted, Some(Ex));
}

#[test]
fn rule3_a_later_conversion_does_not_block_the_head_of_the_convert_queue() {
    // Our reading of rule 3 ("ahead of it"): the head's requested mode EX conflicts
    // with the PR requested behind it, yet the head is granted once holders allow.
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let head = h.lock(2, "r", Nl);
    let behind = h.lock(3, "r", Nl);
    h.convert(2, head, Ex);
    h.convert_with(3, behind, Pr, LockFlags::QUECVT);
    assert!(h.is_converting(head) && h.is_converting(behind));
    h.unlock(1, holder);
    assert!(h.is_granted(head, Ex));
    assert!(h.is_converting(behind));
    h.unlock(2, head);
    assert!(h.is_granted(behind, Pr));
}

#[test]
fn rule5_a_conversion_made_now_bypasses_queued_waiters() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let waiter = h.lock(2, "r", Ex);
    assert!(h.is_waiting(waiter));
    h.drain();
    h.convert(1, a, Pw);
    assert!(h.is_granted(a, Pw));
    assert!(h.is_waiting(waiter));
    let outs = h.drain();
    assert_eq!(completion_of(&outs, a).granted, Some(Pw));
}

#[test]
fn rule5_without_quecvt_a_compatible_conversion_overtakes_queued_conversions() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Nl);
    let c = h.lock(3, "r", Nl);
    h.convert(2, b, Pw); // queued: PW conflicts with the PR holder
    h.convert(3, c, Cr); // CR fits every granted mode and the queued PW
    assert!(h.is_converting(b));
    assert!(h.is_granted(c, Cr));
}

#[test]
fn rule6_with_quecvt_a_conversion_queues_behind_earlier_conversions() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Nl);
    let c = h.lock(3, "r", Nl);
    h.convert(2, b, Pw);
    h.convert_with(3, c, Cr, LockFlags::QUECVT);
    assert!(h.is_converting(b));
    assert!(
        h.is_converting(c),
        "QUECVT keeps FIFO order among conversions"
    );
    let view = h.ls.resource(b"r").unwrap();
    let order: Vec<LockId> = view.converting.iter().map(|l| l.id).collect();
    assert_eq!(order, vec![b, c]);
    h.drain();
    h.unlock(1, holder);
    let outs = h.drain();
    let granted: Vec<LockId> = completions(&outs)
        .into_iter()
        .filter(|(_, status, _)| *status == Status::Granted)
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(granted, vec![b, c], "granted in queue order");
}

#[test]
fn rule6_with_quecvt_and_an_empty_convert_queue_the_conversion_is_granted() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let c = h.lock(2, "r", Nl);
    let waiter = h.lock(3, "r", Ex);
    h.convert_with(2, c, Cr, LockFlags::QUECVT);
    assert!(h.is_granted(c, Cr));
    assert!(h.is_waiting(waiter));
}

#[test]
fn rule7_noorder_grants_a_compatible_new_request_past_waiters() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let waiter = h.lock(2, "r", Ex);
    let ordered = h.lock(3, "r", Cr);
    let unordered = h.lock_with(4, "r", Cr, LockFlags::NOORDER);
    assert!(h.is_waiting(waiter));
    assert!(
        h.is_waiting(ordered),
        "rule 9: waiters queue behind waiters"
    );
    assert!(h.is_granted(unordered, Cr));
}

#[test]
fn rule7_noorder_grants_a_queued_waiter_that_is_not_at_the_head() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Ex);
    let head = h.lock(2, "r", Ex);
    let unordered = h.lock_with(3, "r", Cr, LockFlags::NOORDER);
    assert!(h.is_waiting(head) && h.is_waiting(unordered));
    // The EX holder goes down to CR: the head (EX) still cannot go, the NOORDER CR can.
    h.convert(1, holder, Cr);
    assert!(h.is_waiting(head));
    assert!(h.is_granted(unordered, Cr));
}

#[test]
fn rule8_the_head_of_the_convert_queue_is_granted_when_holders_leave() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Pr);
    h.convert(2, b, Ex);
    assert!(h.is_converting(b));
    assert_eq!(
        h.state(b).1,
        Some(Pr),
        "a converting lock keeps its granted mode"
    );
    h.drain();
    h.unlock(1, a);
    assert!(h.is_granted(b, Ex));
    let outs = h.drain();
    assert_eq!(completion_of(&outs, b).status, Status::Granted);
}

#[test]
fn rule8_a_conversion_not_at_the_head_waits_its_turn() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Nl);
    let c = h.lock(3, "r", Nl);
    h.convert(2, b, Pw);
    h.convert_with(3, c, Cr, LockFlags::QUECVT);
    // Trigger re-scans: an unrelated request comes and goes.
    let d = h.lock(4, "r", Nl);
    assert!(h.is_waiting(d), "NL queues: conversions are pending");
    h.cancel(4, d);
    assert!(
        h.is_converting(c),
        "CR fits every mode but is not at the head"
    );
}

#[test]
fn rule9_a_new_request_needs_both_queues_empty() {
    let mut h = Harness::new();
    h.lock(1, "r", Cr);
    let writer = h.lock(2, "r", Ex);
    let reader = h.lock(3, "r", Cr);
    assert!(h.is_waiting(writer));
    assert!(
        h.is_waiting(reader),
        "compatible with the holder, but a waiter is ahead"
    );
}

#[test]
fn rule9_a_new_request_waits_while_a_conversion_is_queued() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Nl);
    h.convert(2, b, Pw);
    let c = h.lock(3, "r", Cr); // fits PR, NL and the queued PW
    assert!(h.is_waiting(c));
    h.unlock(1, holder);
    assert!(h.is_granted(b, Pw));
    assert!(h.is_granted(c, Cr));
}

#[test]
fn rule10_waiters_are_granted_in_order_from_the_head() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Ex);
    let w1 = h.lock(2, "r", Pr);
    let w2 = h.lock(3, "r", Pr);
    let w3 = h.lock(4, "r", Ex);
    h.drain();
    h.unlock(1, holder);
    let outs = h.drain();
    let c = completions(&outs);
    assert_eq!(c[0], (holder, Status::Unlocked, None));
    assert_eq!(c[1], (w1, Status::Granted, Some(Pr)));
    assert_eq!(c[2], (w2, Status::Granted, Some(Pr)));
    assert_eq!(c.len(), 3);
    assert!(h.is_waiting(w3));
}

#[test]
fn rule11_a_blocked_head_waiter_stops_compatible_waiters_behind_it() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let head = h.lock(2, "r", Ex);
    let behind = h.lock(3, "r", Pr);
    h.drain();
    // A re-scan happens (the holder converts in place) but order holds.
    h.convert(1, holder, Cr);
    assert!(h.is_waiting(head));
    assert!(h.is_waiting(behind));
}

#[test]
fn headque_puts_a_new_request_at_the_head_of_the_wait_queue() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Ex);
    let first = h.lock(2, "r", Ex);
    let jumper = h.lock_with(3, "r", Pr, LockFlags::HEADQUE);
    let view = h.ls.resource(b"r").unwrap();
    let order: Vec<LockId> = view.waiting.iter().map(|l| l.id).collect();
    assert_eq!(order, vec![jumper, first]);
    h.unlock(1, holder);
    assert!(h.is_granted(jumper, Pr));
    assert!(h.is_waiting(first));
}

#[test]
fn headque_puts_a_conversion_at_the_head_of_the_convert_queue() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Nl);
    let c = h.lock(3, "r", Nl);
    h.convert(2, b, Ex);
    h.convert_with(3, c, Pw, LockFlags::HEADQUE);
    let view = h.ls.resource(b"r").unwrap();
    let order: Vec<LockId> = view.converting.iter().map(|l| l.id).collect();
    assert_eq!(order, vec![c, b]);
    h.unlock(1, holder);
    assert!(h.is_granted(c, Pw));
    assert!(h.is_converting(b));
}

#[test]
fn a_down_conversion_is_granted_at_once_whatever_is_queued() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Ex);
    let b = h.lock(2, "r", Nl);
    h.convert(2, b, Ex); // blocked by A's EX
    let w = h.lock(3, "r", Pr);
    h.drain();
    h.convert(1, a, Pw);
    assert!(h.is_granted(a, Pw));
    let outs = h.drain();
    let done = completion_of(&outs, a);
    assert_eq!((done.status, done.granted), (Status::Granted, Some(Pw)));
    assert!(!done.flags.demoted);
    assert!(h.is_converting(b) && h.is_waiting(w));
}

#[test]
fn a_same_mode_conversion_is_granted_in_place() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Nl);
    h.convert(2, b, Ex);
    h.convert(1, a, Pr);
    assert!(h.is_granted(a, Pr));
    assert!(h.is_converting(b));
}

#[test]
fn a_middle_conversion_pr_to_cw_waits_for_other_pr_holders() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Pr);
    h.convert(1, a, Cw);
    assert!(h.is_converting(a));
    h.unlock(2, b);
    assert!(h.is_granted(a, Cw));
}

#[test]
fn a_middle_conversion_can_unblock_a_waiter() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let w = h.lock(2, "r", Cw);
    assert!(h.is_waiting(w));
    h.convert(1, a, Cw); // in place: nothing else is held
    assert!(h.is_granted(a, Cw));
    assert!(
        h.is_granted(w, Cw),
        "the re-scan after a conversion grants the CW waiter"
    );
}

#[test]
fn altpr_grants_pr_with_altmode_when_the_mode_asked_is_blocked() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    h.drain();
    let a = h.lock_with(2, "r", Ex, LockFlags::ALTPR);
    assert!(h.is_granted(a, Pr));
    let outs = h.drain();
    let done = completion_of(&outs, a);
    assert_eq!(done.granted, Some(Pr));
    assert!(done.flags.altmode);
    assert_eq!(done.flags.bits(), 0x4);
}

#[test]
fn altcw_grants_cw_with_altmode() {
    let mut h = Harness::new();
    h.lock(1, "r", Cw);
    h.drain();
    let a = h.lock_with(2, "r", Pr, LockFlags::ALTCW);
    assert!(h.is_granted(a, Cw));
    assert!(completion_of(&h.drain(), a).flags.altmode);
}

#[test]
fn alternate_mode_that_is_also_blocked_queues_the_original_mode() {
    let mut h = Harness::new();
    h.lock(1, "r", Ex);
    let a = h.lock_with(2, "r", Pw, LockFlags::ALTPR);
    assert_eq!(h.state(a), (LockState::Waiting, None, Some(Pw)));
}

#[test]
fn alternate_mode_applies_on_the_rescan_too() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Ex);
    let a = h.lock_with(2, "r", Pw, LockFlags::ALTPR);
    h.drain();
    h.convert(1, holder, Pr); // PW still blocked, PR fits
    assert!(h.is_granted(a, Pr));
    assert!(completion_of(&h.drain(), a).flags.altmode);
}

#[test]
fn the_requested_mode_wins_over_the_alternate_when_grantable() {
    let mut h = Harness::new();
    let a = h.lock_with(1, "r", Ex, LockFlags::ALTPR | LockFlags::ALTCW);
    assert!(h.is_granted(a, Ex));
    assert!(!completion_of(&h.drain(), a).flags.altmode);
}

#[test]
fn altpr_and_altcw_together_try_pr_first() {
    let mut h = Harness::new();
    h.lock(1, "r", Cr);
    h.lock(2, "r", Cw); // CW and CR held: PR blocked by CW, CW fits
    let a = h.lock_with(3, "r", Ex, LockFlags::ALTPR | LockFlags::ALTCW);
    // PR is tried first but conflicts with CW, so it is not granted as CW either:
    // the reference lets only one alternate be tried (PR wins the pair, as in Linux).
    assert!(h.is_waiting(a));
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let b = h.lock_with(2, "r", Ex, LockFlags::ALTPR | LockFlags::ALTCW);
    assert!(h.is_granted(b, Pr));
}
