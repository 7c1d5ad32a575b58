//! §3.3 flag validity: every EINVAL combination as a table, checked through the real
//! lockspace call, and the promise that a refused call changes nothing.

mod common;

use common::*;
use phalanx_dlm::*;

use LockFlags as F;
use Mode::{Cr, Cw, Ex, Nl, Pr, Pw};

/// (flags, mode, expected error) for a new-lock call. Rows with CONVERT go through a
/// conversion of a granted NL lock.
fn einval_table() -> Vec<(LockFlags, Mode, FlagError)> {
    vec![
        (F::CANCEL, Pr, FlagError::CancelOnLock),
        (F::CANCEL | F::CONVERT, Pr, FlagError::CancelOnLock),
        (F::QUECVT, Ex, FlagError::QuecvtWithoutConvert),
        (F::CONVDEADLK, Ex, FlagError::ConvdeadlkWithoutConvert),
        (
            F::CONVDEADLK | F::CONVERT | F::NOQUEUE,
            Ex,
            FlagError::ConvdeadlkWithNoqueue,
        ),
        (F::EXPEDITE | F::CONVERT, Nl, FlagError::ExpediteWithConvert),
        (F::EXPEDITE | F::QUECVT, Nl, FlagError::QuecvtWithoutConvert),
        (
            F::EXPEDITE | F::QUECVT | F::CONVERT,
            Nl,
            FlagError::ExpediteWithConvert,
        ),
        (F::EXPEDITE | F::NOQUEUE, Nl, FlagError::ExpediteWithNoqueue),
        (F::EXPEDITE, Cr, FlagError::ExpediteNotNl(Cr)),
        (F::EXPEDITE, Ex, FlagError::ExpediteNotNl(Ex)),
        (F::VALBLK, Pr, FlagError::ValblkWithoutLvb),
    ]
}

fn snapshot(ls: &Lockspace) -> (usize, usize, Vec<ResourceView>) {
    (
        ls.lock_count(),
        ls.pending_outputs(),
        ls.resources().collect(),
    )
}

#[test]
fn invalid_flag_combinations_are_einval_and_change_nothing() {
    for (flags, mode, expected) in einval_table() {
        let mut h = Harness::new();
        let nl = h.lock(1, "r", Nl);
        let before = snapshot(&h.ls);
        let req = if flags.contains(F::CONVERT) {
            LockRequest::convert(owner(1), nl, mode).with_flags(flags)
        } else {
            LockRequest::new(owner(1), "r", mode).with_flags(flags)
        };
        let err = h.ls.lock(req).expect_err("must be refused");
        assert_eq!(err, DlmError::InvalidFlags(expected), "{flags:?} {mode}");
        assert_eq!(err.errno(), EINVAL);
        assert!(!err.is_retryable());
        assert_eq!(snapshot(&h.ls), before, "{flags:?}: nothing changed");
    }
}

#[test]
fn the_valid_neighbours_of_each_einval_row_are_accepted() {
    let mut h = Harness::new();
    let nl = h.lock(1, "r", Nl);
    h.ls.lock(LockRequest::new(owner(2), "r", Nl).with_flags(F::EXPEDITE))
        .expect("EXPEDITE NL");
    h.ls.lock(LockRequest::convert(owner(1), nl, Cr).with_flags(F::QUECVT))
        .expect("QUECVT on an up-conversion");
    h.ls.lock(LockRequest::convert(owner(1), nl, Pr).with_flags(F::CONVDEADLK))
        .expect("CONVDEADLK with CONVERT");
    h.ls.lock(LockRequest::new(owner(3), "r", Pr).with_lvb(&[0; 32]))
        .expect("VALBLK with a value block");
}

#[test]
fn quecvt_is_einval_on_every_conversion_that_is_not_up() {
    let mut checked = 0;
    for from in Mode::ALL {
        for to in Mode::ALL {
            let mut h = Harness::new();
            let id = h.lock(1, "r", from);
            let result =
                h.ls.lock(LockRequest::convert(owner(1), id, to).with_flags(F::QUECVT));
            if from.quecvt_allowed(to) {
                assert!(result.is_ok(), "{from}->{to}");
            } else {
                assert_eq!(
                    result,
                    Err(DlmError::InvalidFlags(FlagError::QuecvtNotUp { from, to })),
                    "{from}->{to}"
                );
                assert!(h.is_granted(id, from), "{from}->{to}: lock untouched");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 36 - 16);
}

#[test]
fn timeout_and_wait_bits_are_not_supported() {
    assert_eq!(
        LockFlags::from_bits(0x4_0000),
        Err(FlagError::UnknownBits(0x4_0000))
    );
    assert_eq!(
        LockFlags::from_bits(0x8000_0000),
        Err(FlagError::UnknownBits(0x8000_0000))
    );
    let all = LockFlags::from_bits(0x3_ffff).expect("every defined flag");
    assert!(all.contains(F::FORCEUNLOCK) && all.contains(F::NOQUEUE));
}

#[test]
fn flag_bits_are_the_libdlm_values() {
    let table = [
        (F::NOQUEUE, 0x1),
        (F::CANCEL, 0x2),
        (F::CONVERT, 0x4),
        (F::VALBLK, 0x8),
        (F::QUECVT, 0x10),
        (F::IVVALBLK, 0x20),
        (F::CONVDEADLK, 0x40),
        (F::PERSISTENT, 0x80),
        (F::NODLCKWT, 0x100),
        (F::NODLCKBLK, 0x200),
        (F::EXPEDITE, 0x400),
        (F::NOQUEUEBAST, 0x800),
        (F::HEADQUE, 0x1000),
        (F::NOORDER, 0x2000),
        (F::ORPHAN, 0x4000),
        (F::ALTPR, 0x8000),
        (F::ALTCW, 0x1_0000),
        (F::FORCEUNLOCK, 0x2_0000),
    ];
    for (flag, bits) in table {
        assert_eq!(flag.bits(), bits);
    }
}

#[test]
fn convert_without_a_lock_id_is_einval() {
    let mut h = Harness::new();
    let mut req = LockRequest::new(owner(1), "r", Pr).with_flags(F::CONVERT);
    req.lock = None;
    assert_eq!(
        h.ls.lock(req),
        Err(DlmError::InvalidFlags(FlagError::ConvertWithoutLockId))
    );
}

#[test]
fn cancel_with_forceunlock_is_einval_on_unlock() {
    let mut h = Harness::new();
    let id = h.lock(1, "r", Pr);
    let err =
        h.ls.unlock(UnlockRequest::cancel(owner(1), id).with_flags(F::FORCEUNLOCK))
            .expect_err("refused");
    assert_eq!(
        err,
        DlmError::InvalidFlags(FlagError::CancelWithForceUnlock)
    );
    assert!(h.is_granted(id, Pr));
}

#[test]
fn nodlckblk_is_accepted_and_has_no_effect() {
    let mut h = Harness::new();
    h.lock(1, "r", Pr);
    let a = h.lock_with(2, "r", Pr, F::NODLCKBLK);
    let b = h.lock_with(3, "r", Ex, F::NODLCKBLK);
    assert!(h.is_granted(a, Pr));
    assert!(h.is_waiting(b));
}

#[test]
fn mode_values_outside_0_to_5_are_einval() {
    for bad in [-1, 6, 100, i32::MIN] {
        assert_eq!(Mode::try_from(bad), Err(ModeError(bad)));
    }
    for (value, mode) in [(0, Nl), (1, Cr), (2, Cw), (3, Pr), (4, Pw), (5, Ex)] {
        assert_eq!(Mode::try_from(value), Ok(mode));
    }
}
