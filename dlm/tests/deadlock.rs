//! §3.5/§3.8 conversion deadlock: two converters each blocking the other, resolved by
//! EDEADLK to the requester, by CONVDEADLK demotion to NL, or (NODLCKWT) left queued
//! with a BAST to the lock itself.

mod common;

use common::*;
use phalanx_dlm::*;

use Mode::{Cr, Cw, Ex, Nl, Pr};

/// Two PR holders; the first already waits to convert to EX.
fn two_pr_holders_first_converting() -> (Harness, LockId, LockId) {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Pr);
    h.convert(1, a, Ex);
    assert!(h.is_converting(a));
    h.drain();
    (h, a, b)
}

#[test]
fn second_pr_to_ex_conversion_fails_with_edeadlk_and_keeps_pr() {
    let (mut h, a, b) = two_pr_holders_first_converting();
    h.convert(2, b, Ex);
    let outs = h.drain();
    let done = completion_of(&outs, b);
    assert_eq!(done.status, Status::Deadlock);
    assert_eq!(done.status.code(), EDEADLK);
    assert_eq!(done.granted, Some(Pr));
    assert!(h.is_granted(b, Pr), "cancelled conversion: back to PR");
    assert!(h.is_converting(a), "the first conversion still waits");
    // A still waits on B's PR, and B holds PR: B is (still) asked to release.
    h.unlock(2, b);
    assert!(h.is_granted(a, Ex));
}

#[test]
fn with_convdeadlk_the_second_converter_is_demoted_to_nl() {
    let (mut h, a, b) = two_pr_holders_first_converting();
    h.convert_with(2, b, Ex, LockFlags::CONVDEADLK);
    // Demoted to NL, B no longer blocks A, which is granted EX; B now waits for EX.
    assert!(h.is_granted(a, Ex));
    assert_eq!(h.state(b), (LockState::Converting, Some(Nl), Some(Ex)));
    let outs = h.drain();
    assert_eq!(completions(&outs), vec![(a, Status::Granted, Some(Ex))]);
    h.unlock(1, a);
    let outs = h.drain();
    let done = completion_of(&outs, b);
    assert_eq!((done.status, done.granted), (Status::Granted, Some(Ex)));
    assert!(done.flags.demoted, "SBF_DEMOTED reported with the grant");
    assert_eq!(done.flags.bits() & 0x1, 0x1);
}

#[test]
fn cancelling_a_demoted_conversion_returns_nl_with_demoted() {
    let (mut h, _a, b) = two_pr_holders_first_converting();
    h.convert_with(2, b, Ex, LockFlags::CONVDEADLK);
    h.drain();
    h.cancel(2, b);
    let done = completion_of(&h.drain(), b);
    assert_eq!(done.status, Status::Cancelled);
    assert_eq!(done.granted, Some(Nl));
    assert!(done.flags.demoted);
    assert!(h.is_granted(b, Nl));
}

#[test]
fn with_nodlckwt_the_conversion_queues_and_is_told_by_a_bast_at_its_own_mode() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Pr);
    h.drain();
    h.convert(1, a, Ex);
    h.convert_with(2, b, Ex, LockFlags::NODLCKWT);
    assert_eq!(h.state(b), (LockState::Converting, Some(Pr), Some(Ex)));
    let outs = h.drain();
    assert!(
        !completions(&outs).iter().any(|(id, _, _)| *id == b),
        "neither cancelled nor demoted: {outs:?}"
    );
    // B holds the PR that blocks A's EX, and its own EX is what the deadlock is
    // about: it hears EX once (highbast keeps the self-BAST from repeating it).
    let to_b: Vec<Mode> = basts(&outs)
        .into_iter()
        .filter(|(id, _)| *id == b)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(to_b, vec![Ex]);
    // The owner resolves it by cancelling; A then goes once B's PR is released.
    h.cancel(2, b);
    assert!(h.is_granted(b, Pr));
    h.unlock(2, b);
    assert!(h.is_granted(a, Ex));
}

#[test]
fn nodlckwt_self_bast_announces_a_mode_higher_than_the_lock_was_told() {
    let mut h = Harness::new();
    let b = h.lock(2, "r", Cw);
    let a = h.lock(1, "r", Nl);
    h.convert(1, a, Pr); // blocked by B's CW: B hears PR
    assert!(h.is_converting(a));
    assert_eq!(basts(&h.drain()), vec![(b, Pr)]);
    // B's CW blocks A (ahead), and A's PR request blocks B's EX: a deadlock. With
    // NODLCKWT B queues and is sent its own requested mode, EX, above the PR it heard.
    h.convert_with(2, b, Ex, LockFlags::NODLCKWT);
    assert_eq!(h.state(b), (LockState::Converting, Some(Cw), Some(Ex)));
    let outs = h.drain();
    assert_eq!(basts(&outs), vec![(b, Ex)]);
    assert!(completions(&outs).is_empty());
}

#[test]
fn granted_mode_blocking_an_earlier_queued_conversion_is_a_deadlock() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Cr);
    let b = h.lock(2, "r", Nl);
    h.convert(2, b, Ex); // waits for A's CR
    h.drain();
    // A's CR blocks B's EX, and B (ahead) blocks A's PR request: deadlock.
    h.convert(1, a, Pr);
    let done = completion_of(&h.drain(), a);
    assert_eq!(done.status, Status::Deadlock);
    assert!(h.is_granted(a, Cr));
    assert!(h.is_converting(b));
}

#[test]
fn a_converter_that_blocks_nobody_is_not_in_deadlock() {
    let mut h = Harness::new();
    h.lock(1, "r", Cr);
    let b = h.lock(2, "r", Nl);
    let c = h.lock(3, "r", Nl);
    h.convert(2, b, Ex);
    h.convert(3, c, Pr); // NL blocks nothing: queues, no EDEADLK
    let outs = h.drain();
    assert!(
        !completions(&outs)
            .iter()
            .any(|(_, status, _)| *status == Status::Deadlock)
    );
    assert!(h.is_converting(c));
}

#[test]
fn noqueue_conversion_is_refused_before_any_deadlock_handling() {
    let (mut h, a, b) = two_pr_holders_first_converting();
    h.convert_with(2, b, Ex, LockFlags::NOQUEUE);
    let done = completion_of(&h.drain(), b);
    assert_eq!(done.status, Status::WouldBlock);
    assert!(h.is_granted(b, Pr));
    assert!(h.is_converting(a));
}

#[test]
fn a_queued_convdeadlk_conversion_is_demoted_on_a_rescan() {
    // B queues PR -> EX with CONVDEADLK (no deadlock yet). A then asks PR -> EX with
    // NODLCKWT: A queues in deadlock with B. The re-scan finds B at the head with A
    // behind it, each blocking the other: a conversion deadlock, so B (CONVDEADLK)
    // is demoted to NL, while A (NODLCKWT) is left for its owner to resolve.
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Pr);
    h.convert_with(2, b, Ex, LockFlags::CONVDEADLK);
    assert_eq!(h.state(b), (LockState::Converting, Some(Pr), Some(Ex)));
    h.convert_with(1, a, Ex, LockFlags::NODLCKWT);
    assert_eq!(h.state(b), (LockState::Converting, Some(Nl), Some(Ex)));
    assert_eq!(h.state(a), (LockState::Converting, Some(Pr), Some(Ex)));
    h.drain();
    // A's owner resolves its side (it was told): cancel, then release.
    h.cancel(1, a);
    h.unlock(1, a);
    let done = completion_of(&h.drain(), b);
    assert_eq!((done.status, done.granted), (Status::Granted, Some(Ex)));
    assert!(done.flags.demoted);
}
