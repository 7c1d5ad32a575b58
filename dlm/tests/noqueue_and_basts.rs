//! NOQUEUE refusal with and without NOQUEUEBAST, and the blocking-AST rules (§3.5):
//! who is told, with which mode, and not twice for the same mode.

mod common;

use common::*;
use phalanx_dlm::*;

use Mode::{Cr, Cw, Ex, Nl, Pr, Pw};

#[test]
fn noqueue_new_request_is_refused_with_eagain_and_no_bast() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    h.drain();
    let id = h.lock_with(2, "r", Ex, LockFlags::NOQUEUE);
    let outs = h.drain();
    let done = completion_of(&outs, id);
    assert_eq!((done.status, done.granted), (Status::WouldBlock, None));
    assert_eq!(done.status.code(), EAGAIN);
    assert!(basts(&outs).is_empty(), "no BAST without NOQUEUEBAST");
    assert!(h.ls.lock_info(id).is_none(), "the refused lock is gone");
    assert!(h.is_granted(holder, Pr));
}

#[test]
fn noqueue_with_noqueuebast_still_tells_the_blockers() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    let other = h.lock(2, "r", Cr);
    h.drain();
    let id = h.lock_with(3, "r", Pw, LockFlags::NOQUEUE | LockFlags::NOQUEUEBAST);
    let outs = h.drain();
    assert_eq!(completion_of(&outs, id).status, Status::WouldBlock);
    // PR blocks PW, CR does not.
    assert_eq!(basts(&outs), vec![(holder, Pw)]);
    assert!(h.is_granted(other, Cr));
}

#[test]
fn noqueue_grantable_request_is_simply_granted() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let id = h.lock_with(2, "r", Cr, LockFlags::NOQUEUE);
    assert!(h.is_granted(id, Cr));
}

#[test]
fn noqueue_refuses_a_compatible_request_when_waiters_are_queued() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    h.lock(2, "r", Ex);
    h.drain();
    let id = h.lock_with(3, "r", Cr, LockFlags::NOQUEUE);
    assert_eq!(completion_of(&h.drain(), id).status, Status::WouldBlock);
}

#[test]
fn noqueue_conversion_is_refused_and_keeps_its_granted_mode() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Cr);
    h.drain();
    h.convert_with(2, b, Ex, LockFlags::NOQUEUE);
    let done = completion_of(&h.drain(), b);
    assert_eq!((done.status, done.granted), (Status::WouldBlock, Some(Cr)));
    assert!(h.is_granted(b, Cr));
}

#[test]
fn a_queued_request_sends_one_bast_to_each_incompatible_holder() {
    let mut h = Harness::new();
    let pr = h.lock(1, "r", Pr);
    let cr = h.lock(2, "r", Cr);
    let nl = h.lock(3, "r", Nl);
    h.drain();
    let w = h.lock(4, "r", Pw);
    let outs = h.drain();
    assert_eq!(basts(&outs), vec![(pr, Pw)]);
    assert!(h.is_waiting(w));
    let _ = (cr, nl);
}

#[test]
fn a_bast_is_not_repeated_for_the_same_or_a_lower_mode() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    h.lock(2, "r", Ex);
    assert_eq!(basts(&h.drain()), vec![(holder, Ex)]);
    h.lock(3, "r", Pw);
    h.lock(4, "r", Ex);
    assert!(basts(&h.drain()).is_empty(), "highbast is EX already");
}

#[test]
fn a_higher_blocked_mode_sends_a_new_bast() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    h.lock(2, "r", Pw);
    assert_eq!(basts(&h.drain()), vec![(holder, Pw)]);
    h.lock(3, "r", Ex);
    assert_eq!(basts(&h.drain()), vec![(holder, Ex)]);
}

#[test]
fn a_pr_holder_is_told_about_a_blocked_cw_even_when_a_higher_pr_is_also_blocked() {
    // Blocked modes {CW, PR}: the highest (PR) is compatible with the PR holder, but
    // CW is not — the holder must hear CW (the reference's PR/CW special case).
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Pr);
    h.drain();
    h.lock(2, "r", Cw);
    h.lock(3, "r", Pr); // behind the CW waiter
    let outs = h.drain();
    assert_eq!(basts(&outs), vec![(holder, Cw)]);
}

#[test]
fn locks_without_a_bast_routine_are_never_sent_one() {
    let mut h = Harness::new();
    let quiet =
        h.ls.lock(LockRequest::new(owner(1), "r", Ex).without_bast())
            .unwrap();
    h.lock(2, "r", Pr);
    let outs = h.drain();
    assert!(basts(&outs).is_empty());
    assert!(h.is_granted(quiet, Ex));
}

#[test]
fn highbast_resets_when_the_lock_is_granted_a_new_mode() {
    let mut h = Harness::new();
    let holder = h.lock(1, "r", Ex);
    let w = h.lock(2, "r", Ex);
    assert_eq!(basts(&h.drain()), vec![(holder, Ex)]);
    h.convert(1, holder, Pr); // down-conversion: a new grant, highbast cleared
    let outs = h.drain();
    assert_eq!(
        basts(&outs),
        vec![(holder, Ex)],
        "told again after the new grant"
    );
    assert!(h.is_waiting(w));
}

#[test]
fn no_bast_goes_out_when_nothing_is_blocked() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    h.lock(2, "r", Cr);
    h.lock(3, "r", Nl);
    assert!(basts(&h.drain()).is_empty());
}

#[test]
fn each_convert_call_says_again_whether_there_is_a_bast_routine() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    h.ls.lock(LockRequest::convert(owner(1), a, Cr).without_bast())
        .unwrap();
    h.drain();
    h.lock(2, "r", Ex);
    assert!(
        basts(&h.drain()).is_empty(),
        "the conversion dropped the routine"
    );
    h.convert(1, a, Cr); // with a routine again
    assert_eq!(basts(&h.drain()), vec![(a, Ex)]);
}
