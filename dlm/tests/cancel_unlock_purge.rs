//! Cancel, unlock (plain and FORCEUNLOCK), ownership checks, and the death of a
//! process: non-persistent locks released, PERSISTENT ones orphaned, adopted with
//! ORPHAN, released with `purge_orphans`.

mod common;

use common::*;
use phalanx_dlm::*;

use Mode::{Cr, Ex, Nl, Pr, Pw};

#[test]
fn cancel_of_a_waiting_request_removes_it_with_ecancel() {
    let mut h = Harness::new();
    h.lock(1, "r", Ex);
    let w = h.lock(2, "r", Pr);
    h.drain();
    h.cancel(2, w);
    let done = completion_of(&h.drain(), w);
    assert_eq!((done.status, done.granted), (Status::Cancelled, None));
    assert_eq!(done.status.code(), -0x10001);
    assert!(h.ls.lock_info(w).is_none());
}

#[test]
fn cancel_of_a_conversion_returns_the_lock_to_its_granted_mode() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let b = h.lock(2, "r", Cr);
    h.convert(2, b, Ex);
    assert!(h.is_converting(b));
    h.drain();
    h.cancel(2, b);
    let done = completion_of(&h.drain(), b);
    assert_eq!((done.status, done.granted), (Status::Cancelled, Some(Cr)));
    assert!(h.is_granted(b, Cr));
}

#[test]
fn cancel_of_a_granted_lock_with_nothing_pending_is_ebusy() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    let err = h.ls.unlock(UnlockRequest::cancel(owner(1), a)).unwrap_err();
    assert_eq!(err, DlmError::Busy(a));
    assert_eq!(err.errno(), EBUSY);
    assert!(h.is_granted(a, Pr));
}

#[test]
fn cancelling_the_blocked_head_waiter_lets_the_next_one_in() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let head = h.lock(2, "r", Ex);
    let next = h.lock(3, "r", Pr);
    assert!(h.is_waiting(next));
    h.cancel(2, head);
    assert!(h.is_granted(next, Pr));
}

#[test]
fn unlock_reports_eunlock_and_grants_the_waiters() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Ex);
    let w = h.lock(2, "r", Ex);
    h.drain();
    h.unlock(1, a);
    let outs = h.drain();
    let done = completion_of(&outs, a);
    assert_eq!((done.status, done.granted), (Status::Unlocked, None));
    assert_eq!(done.status.code(), -0x10002);
    assert!(h.is_granted(w, Ex));
}

#[test]
fn unlock_of_a_waiting_or_converting_lock_needs_forceunlock() {
    let mut h = Harness::new();
    let c = h.lock(3, "r", Nl);
    h.lock(1, "r", Ex);
    let w = h.lock(2, "r", Pr);
    h.convert(3, c, Pw);
    for (who, id) in [(2, w), (3, c)] {
        assert_eq!(
            h.ls.unlock(UnlockRequest::new(owner(who), id)),
            Err(DlmError::Busy(id))
        );
    }
    h.drain();
    for (who, id) in [(2, w), (3, c)] {
        h.ls.unlock(UnlockRequest::new(owner(who), id).with_flags(LockFlags::FORCEUNLOCK))
            .unwrap();
        assert!(h.ls.lock_info(id).is_none());
    }
    let outs = h.drain();
    assert_eq!(completion_of(&outs, w).status, Status::Unlocked);
    assert_eq!(completion_of(&outs, c).status, Status::Unlocked);
}

#[test]
fn converting_a_lock_that_is_not_granted_or_already_converting_is_ebusy() {
    let mut h = Harness::new();
    let c = h.lock(3, "r", Nl);
    h.lock(1, "r", Ex);
    let w = h.lock(2, "r", Pr);
    h.convert(3, c, Pw);
    assert_eq!(
        h.ls.lock(LockRequest::convert(owner(2), w, Cr)),
        Err(DlmError::Busy(w))
    );
    assert_eq!(
        h.ls.lock(LockRequest::convert(owner(3), c, Cr)),
        Err(DlmError::Busy(c))
    );
    assert_eq!(h.state(c), (LockState::Converting, Some(Nl), Some(Pw)));
}

#[test]
fn another_owner_cannot_touch_a_lock_and_unknown_ids_are_enoent() {
    let mut h = Harness::new();
    let a = h.lock(1, "r", Pr);
    assert_eq!(
        h.ls.unlock(UnlockRequest::new(owner(2), a)),
        Err(DlmError::NotOwner(a))
    );
    assert_eq!(
        h.ls.lock(LockRequest::convert(owner(2), a, Ex)),
        Err(DlmError::NotOwner(a))
    );
    h.unlock(1, a);
    let err = h.ls.unlock(UnlockRequest::new(owner(1), a)).unwrap_err();
    assert_eq!(err, DlmError::NoSuchLock(a));
    assert_eq!(err.errno(), ENOENT);
}

#[test]
fn purge_of_a_dead_owner_releases_its_locks_and_wakes_waiters() {
    let mut h = Harness::new();
    h.lock(1, "a", Ex);
    h.lock(1, "b", Pr);
    let queued = h.lock(1, "c", Nl);
    let other = h.lock(2, "a", Ex);
    let other_b = h.lock(2, "b", Ex);
    h.drain();
    let report = h.ls.purge_owner(owner(1));
    assert_eq!(
        report,
        PurgeReport {
            released: 3,
            orphaned: 0,
            complete: true
        }
    );
    let outs = h.drain();
    // The dead owner hears nothing; the others are granted.
    assert!(outs.iter().all(|o| match o {
        Output::Completion(c) => c.owner != owner(1),
        Output::Blocking { owner: o, .. } => *o != owner(1),
        _ => true,
    }));
    assert!(h.is_granted(other, Ex) && h.is_granted(other_b, Ex));
    assert!(h.ls.lock_info(queued).is_none());
    assert!(h.ls.is_idle(b"c"));
}

#[test]
fn persistent_locks_survive_their_owner_as_orphans() {
    let mut h = Harness::new();
    let kept = h.lock_with(1, "r", Pr, LockFlags::PERSISTENT);
    let gone = h.lock(1, "s", Pr);
    let blocker = h.lock(2, "t", Pr);
    let waiting = h.lock_with(1, "t", Ex, LockFlags::PERSISTENT);
    assert!(h.is_waiting(waiting), "blocked by {blocker}");
    let w = h.lock(2, "r", Ex);
    h.drain();
    let report = h.ls.purge_owner(owner(1));
    assert_eq!((report.released, report.orphaned), (2, 1));
    assert!(
        h.ls.lock_info(waiting).is_none(),
        "a waiting request is not kept"
    );
    let info = h.ls.lock_info(kept).expect("orphan kept");
    assert!(info.orphan);
    assert_eq!(info.granted, Some(Pr));
    assert!(h.ls.lock_info(gone).is_none());
    assert!(h.is_waiting(w), "the orphan still holds PR");
    // The orphan is nobody's: its dead owner cannot release it.
    assert_eq!(
        h.ls.unlock(UnlockRequest::new(owner(1), kept)),
        Err(DlmError::NotOwner(kept))
    );
}

#[test]
fn a_persistent_conversion_is_dropped_and_the_lock_orphaned_at_its_granted_mode() {
    let mut h = Harness::new();
    let kept = h.lock_with(1, "r", Cr, LockFlags::PERSISTENT);
    h.lock(2, "r", Pr);
    h.convert(1, kept, Ex);
    assert!(h.is_converting(kept));
    h.ls.purge_owner(owner(1));
    let info = h.ls.lock_info(kept).unwrap();
    assert_eq!(
        (info.state, info.granted, info.orphan),
        (LockState::Granted, Some(Cr), true)
    );
}

#[test]
fn an_orphan_is_adopted_by_a_new_owner_with_orphan() {
    let mut h = Harness::new();
    let kept = h.lock_with(1, "r", Pr, LockFlags::PERSISTENT);
    h.ls.purge_owner(owner(1));
    h.drain();
    // Wrong mode: nothing to adopt.
    assert_eq!(
        h.ls.lock(LockRequest::new(owner(9), "r", Ex).with_flags(LockFlags::ORPHAN)),
        Err(DlmError::NoOrphan)
    );
    let adopted =
        h.ls.lock(LockRequest::new(owner(9), "r", Pr).with_flags(LockFlags::ORPHAN))
            .unwrap();
    assert_eq!(adopted, kept);
    let done = completion_of(&h.drain(), kept);
    assert_eq!(
        (done.owner, done.status, done.granted),
        (owner(9), Status::Granted, Some(Pr))
    );
    assert!(!h.ls.lock_info(kept).unwrap().orphan);
    h.unlock(9, kept);
    assert!(h.ls.lock_info(kept).is_none());
}

#[test]
fn purge_orphans_releases_by_node_and_pid() {
    let mut h = Harness::new();
    let a = h.lock_with(1, "r", Cr, LockFlags::PERSISTENT);
    let b = h.lock_with(2, "r", Cr, LockFlags::PERSISTENT);
    let elsewhere =
        h.ls.lock(LockRequest::new(Owner::new(2, 1), "r", Cr).with_flags(LockFlags::PERSISTENT))
            .unwrap();
    let w = h.lock(5, "r", Ex);
    for who in [owner(1), owner(2), Owner::new(2, 1)] {
        h.ls.purge_owner(who);
    }
    assert_eq!(h.ls.purge_orphans(1, Some(1)).released, 1);
    assert!(h.ls.lock_info(a).is_none());
    assert!(h.ls.lock_info(b).is_some() && h.ls.lock_info(elsewhere).is_some());
    assert!(h.is_waiting(w));
    assert_eq!(h.ls.purge_orphans(1, None).released, 1);
    assert!(h.ls.lock_info(b).is_none());
    assert!(h.is_waiting(w), "node 2's orphan still holds CR");
    assert_eq!(
        h.ls.handle_request(Request::PurgeOrphans { node: 2, pid: None }),
        Ok(Response::Purged(PurgeReport {
            released: 1,
            orphaned: 0,
            complete: true
        }))
    );
    assert!(h.is_granted(w, Ex));
}

#[test]
fn orphans_are_not_sent_basts() {
    let mut h = Harness::new();
    h.lock_with(1, "r", Ex, LockFlags::PERSISTENT);
    h.ls.purge_owner(owner(1));
    h.drain();
    h.lock(2, "r", Pr);
    assert!(basts(&h.drain()).is_empty());
}

#[test]
fn purge_stops_when_outputs_are_full_and_resumes_after_a_drain() {
    let config = LockspaceConfig {
        max_locks_per_resource: 4,
        max_outputs: LockspaceConfig::outputs_needed(4),
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    for res in ["a", "b", "c"] {
        for who in 1..=4 {
            h.lock(who, res, Ex);
            h.drain();
        }
    }
    h.drain();
    let first = h.ls.purge_owner(owner(1));
    assert!(
        !first.complete,
        "three resources do not fit one output window"
    );
    assert!(first.released >= 1);
    let mut released = first.released;
    loop {
        h.drain();
        let next = h.ls.purge_owner(owner(1));
        released += next.released;
        if next.complete {
            break;
        }
    }
    assert_eq!(released, 3);
    assert!(h.ls.pending_outputs() <= h.ls.config().max_outputs);
}
