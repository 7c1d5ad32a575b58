//! §3.6 lock value blocks: the transfer table cell by cell, writes on release from
//! PW/EX, IVVALBLK and VALNOTVALID, the recovery hook, idle resources keeping their
//! block, and the `alternate-lvb` token-ring counter from the old dlm usertests.

mod common;

use common::*;
use phalanx_dlm::*;

use LvbTransfer::{None as N, Read as R, Write as W};
use Mode::{Cr, Cw, Ex, Nl, Pr, Pw};

fn block(byte: u8) -> [u8; 32] {
    [byte; 32]
}

#[test]
fn transfer_table_matches_every_cell() {
    let table: [(Option<Mode>, [LvbTransfer; 6]); 7] = [
        (None, [R, R, R, R, R, R]),
        (Some(Nl), [R, R, R, R, R, R]),
        (Some(Cr), [N, R, R, R, R, R]),
        (Some(Cw), [N, N, R, R, R, R]),
        (Some(Pr), [N, N, N, R, R, R]),
        (Some(Pw), [W, W, W, W, W, R]),
        (Some(Ex), [W, W, W, W, W, W]),
    ];
    for (held, row) in table {
        for (granted, expected) in Mode::ALL.into_iter().zip(row) {
            assert_eq!(
                lvb_transfer(held, granted),
                expected,
                "{held:?} -> {granted}"
            );
        }
    }
}

/// Grants `who` a lock on `res` in `mode` with VALBLK and returns its completion.
fn grant_with_lvb(h: &mut Harness, who: u32, res: &str, mode: Mode) -> (LockId, Completion) {
    let id =
        h.ls.lock(LockRequest::new(owner(who), res, mode).with_lvb(&block(0)))
            .unwrap();
    let done = completion_of(&h.drain(), id);
    assert_eq!(done.status, Status::Granted);
    (id, done)
}

#[test]
fn a_new_resource_reads_zeros_and_valid() {
    let mut h = Harness::new();
    let (_, done) = grant_with_lvb(&mut h, 1, "r", Pr);
    assert_eq!(done.lvb.as_deref(), Some(&block(0)[..]));
    assert!(!done.flags.valnotvalid);
}

#[test]
fn unlock_from_ex_with_valblk_writes_and_the_next_grant_reads_it() {
    let mut h = Harness::new();
    let keep = h.lock(9, "r", Nl); // keeps the resource active
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Ex);
    h.ls.unlock(UnlockRequest::new(owner(1), a).with_lvb(&block(7)))
        .unwrap();
    let (_, done) = grant_with_lvb(&mut h, 2, "r", Cr);
    assert_eq!(done.lvb.as_deref(), Some(&block(7)[..]));
    assert_eq!(h.ls.resource(b"r").unwrap().lvb.seq(), 1);
    let _ = keep;
}

#[test]
fn down_conversion_from_pw_writes_the_callers_value() {
    let mut h = Harness::new();
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Pw);
    h.ls.lock(LockRequest::convert(owner(1), a, Nl).with_lvb(&block(3)))
        .unwrap();
    let done = completion_of(&h.drain(), a);
    assert_eq!(done.lvb, None, "a W transfer returns nothing");
    let (_, read) = grant_with_lvb(&mut h, 2, "r", Pr);
    assert_eq!(read.lvb.as_deref(), Some(&block(3)[..]));
}

#[test]
fn pw_to_ex_reads_instead_of_writing() {
    let mut h = Harness::new();
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Pw);
    h.ls.lock(LockRequest::convert(owner(1), a, Ex).with_lvb(&block(5)))
        .unwrap();
    let done = completion_of(&h.drain(), a);
    assert_eq!(done.lvb.as_deref(), Some(&block(0)[..]));
    assert_eq!(h.ls.resource(b"r").unwrap().lvb.value(), &block(0)[..]);
}

#[test]
fn release_from_below_pw_never_touches_the_value() {
    let mut h = Harness::new();
    h.lock(9, "r", Nl);
    for mode in [Nl, Cr, Cw, Pr] {
        let (id, _) = grant_with_lvb(&mut h, 1, "r", mode);
        h.ls.unlock(UnlockRequest::new(owner(1), id).with_lvb(&block(1)))
            .unwrap();
        h.ls.unlock(UnlockRequest::new(owner(1), id)).unwrap_err();
        let view = h.ls.resource(b"r").unwrap();
        assert_eq!(
            (view.lvb.value(), view.lvb.seq()),
            (&block(0)[..], 0),
            "{mode}"
        );
    }
}

#[test]
fn unlock_from_pw_without_valblk_does_not_write() {
    let mut h = Harness::new();
    h.lock(9, "r", Nl);
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Pw);
    h.unlock(1, a);
    assert_eq!(h.ls.resource(b"r").unwrap().lvb.seq(), 0);
}

#[test]
fn ivvalblk_on_unlock_invalidates_and_later_grants_say_valnotvalid() {
    let mut h = Harness::new();
    h.lock(9, "r", Nl);
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Ex);
    h.ls.unlock(UnlockRequest::new(owner(1), a).with_flags(LockFlags::IVVALBLK))
        .unwrap();
    let (b, done) = grant_with_lvb(&mut h, 2, "r", Pr);
    assert!(done.flags.valnotvalid);
    assert_eq!(done.flags.bits(), 0x2);
    // Only a W transfer makes it valid again.
    h.unlock(2, b);
    let (c, _) = grant_with_lvb(&mut h, 3, "r", Ex);
    h.ls.lock(LockRequest::convert(owner(3), c, Nl).with_lvb(&block(4)))
        .unwrap();
    let (_, done) = grant_with_lvb(&mut h, 4, "r", Cr);
    assert!(!done.flags.valnotvalid);
    assert_eq!(done.lvb.as_deref(), Some(&block(4)[..]));
}

#[test]
fn ivvalblk_on_a_down_conversion_invalidates_instead_of_writing() {
    let mut h = Harness::new();
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Ex);
    h.ls.lock(
        LockRequest::convert(owner(1), a, Pr)
            .with_lvb(&block(8))
            .with_flags(LockFlags::IVVALBLK),
    )
    .unwrap();
    let done = completion_of(&h.drain(), a);
    assert!(done.flags.valnotvalid);
    let view = h.ls.resource(b"r").unwrap();
    assert!(!view.lvb.is_valid());
    assert_eq!(view.lvb.value(), &block(0)[..], "not written");
}

#[test]
fn ivvalblk_on_unlock_below_pw_does_nothing() {
    let mut h = Harness::new();
    h.lock(9, "r", Nl);
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Pr);
    h.ls.unlock(UnlockRequest::new(owner(1), a).with_flags(LockFlags::IVVALBLK))
        .unwrap();
    assert!(h.ls.resource(b"r").unwrap().lvb.is_valid());
}

#[test]
fn the_recovery_hook_invalidates_and_grants_report_it() {
    let mut h = Harness::new();
    h.lock(9, "r", Nl);
    assert!(h.ls.invalidate_lvb(b"r"));
    assert!(!h.ls.invalidate_lvb(b"no such resource"));
    let (_, done) = grant_with_lvb(&mut h, 1, "r", Pr);
    assert!(done.flags.valnotvalid);
}

#[test]
fn grants_without_valblk_carry_no_value_and_no_flag() {
    let mut h = Harness::new();
    h.ls.invalidate_lvb(b"r");
    let id = h.lock(1, "r", Pr);
    let done = completion_of(&h.drain(), id);
    assert_eq!(done.lvb, None);
    assert!(!done.flags.valnotvalid);
}

#[test]
fn an_idle_resource_keeps_its_value_until_dropped() {
    let mut h = Harness::new();
    let (a, _) = grant_with_lvb(&mut h, 1, "r", Ex);
    h.ls.unlock(UnlockRequest::new(owner(1), a).with_lvb(&block(6)))
        .unwrap();
    let outs = h.drain();
    assert!(outs.contains(&Output::ResourceIdle(ResourceName::new(b"r").unwrap())));
    assert!(h.ls.is_idle(b"r"));
    let (b, done) = grant_with_lvb(&mut h, 2, "r", Pr);
    assert_eq!(
        done.lvb.as_deref(),
        Some(&block(6)[..]),
        "revived with its block"
    );
    h.unlock(2, b);
    assert!(h.ls.drop_idle(b"r"));
    let (_, done) = grant_with_lvb(&mut h, 3, "r", Pr);
    assert_eq!(done.lvb.as_deref(), Some(&block(0)[..]), "a fresh resource");
}

#[test]
fn the_toss_cache_is_bounded_and_drops_the_oldest() {
    let config = LockspaceConfig {
        max_tossed: 2,
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    for res in ["a", "b", "c"] {
        let id = h.lock(1, res, Nl);
        h.unlock(1, id);
    }
    let outs = h.drain();
    assert!(outs.contains(&Output::ResourceDropped(ResourceName::new(b"a").unwrap())));
    assert_eq!(h.ls.idle_count(), 2);
    assert!(!h.ls.is_idle(b"a") && h.ls.is_idle(b"b") && h.ls.is_idle(b"c"));
}

#[test]
fn value_blocks_of_the_wrong_length_are_einval() {
    let mut h = Harness::new();
    let err =
        h.ls.lock(LockRequest::new(owner(1), "r", Pr).with_lvb(&[0; 16]))
            .unwrap_err();
    assert_eq!(
        err,
        DlmError::LvbLength {
            expected: 32,
            got: 16
        }
    );
    assert_eq!(err.errno(), EINVAL);
    assert_eq!(h.ls.lock_count(), 0);
}

#[test]
fn the_lvb_length_is_per_lockspace() {
    let config = LockspaceConfig {
        lvb_len: 64,
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    let id =
        h.ls.lock(LockRequest::new(owner(1), "r", Ex).with_lvb(&[1; 64]))
            .unwrap();
    h.ls.unlock(UnlockRequest::new(owner(1), id).with_lvb(&[2; 64]))
        .unwrap();
    assert_eq!(h.ls.resource(b"r").unwrap().lvb.value(), &[2u8; 64][..]);
    for bad in [0, 4, 12, 264] {
        let config = LockspaceConfig {
            lvb_len: bad,
            ..LockspaceConfig::default()
        };
        assert_eq!(
            Lockspace::new(config).unwrap_err(),
            ConfigError::LvbLength(bad)
        );
    }
}

/// The old dlm usertest `alternate-lvb`: clients take turns NL -> PR (read the
/// counter) -> EX (read, increment) -> NL (write). Each client's steps are issued
/// interleaved with the others', so most conversions queue; the counter seen must
/// be strictly sequential. Several PR holders converting to EX deadlock by nature;
/// CONVDEADLK resolves it by demoting all but one to NL (NL -> EX still reads).
#[test]
fn alternate_lvb_counter_is_strictly_sequential() {
    const CLIENTS: u32 = 5;
    const ROUNDS: u64 = 200;
    let mut h = Harness::new();
    let ids: Vec<LockId> = (0..CLIENTS)
        .map(|c| {
            h.ls.lock(LockRequest::new(owner(c), "counter", Nl).with_lvb(&block(0)))
                .unwrap()
        })
        .collect();
    h.drain();
    let read = |lvb: &[u8]| u64::from_le_bytes(lvb[..8].try_into().unwrap());
    let mut seen = Vec::new();
    // Each client's phase: 0 = at NL, wants PR; 1 = PR pending/held; 2 = EX pending/held.
    let mut phase = vec![0u8; CLIENTS as usize];
    let mut pending = vec![false; CLIENTS as usize];
    let mut value = vec![0u64; CLIENTS as usize];
    let mut turn = 0usize;
    let mut demotions = 0usize;
    while (seen.len() as u64) < ROUNDS * u64::from(CLIENTS) {
        let c = turn % CLIENTS as usize;
        turn += 1;
        if !pending[c] {
            let (mode, lvb, flags) = match phase[c] {
                0 => (Pr, block(0), LockFlags::EMPTY),
                1 => (Ex, block(0), LockFlags::CONVDEADLK),
                _ => {
                    let mut v = block(0);
                    v[..8].copy_from_slice(&(value[c] + 1).to_le_bytes());
                    (Nl, v, LockFlags::EMPTY)
                }
            };
            let req = LockRequest::convert(owner(c as u32), ids[c], mode)
                .with_lvb(&lvb)
                .with_flags(flags);
            h.ls.lock(req).unwrap();
            pending[c] = true;
        }
        for out in h.drain() {
            let Output::Completion(done) = out else {
                continue;
            };
            assert_eq!(done.status, Status::Granted);
            assert!(!done.flags.valnotvalid);
            demotions += usize::from(done.flags.demoted);
            let k = done.owner.pid as usize;
            pending[k] = false;
            match phase[k] {
                0 => phase[k] = 1,
                1 => {
                    let v = read(done.lvb.as_deref().expect("EX grant reads"));
                    value[k] = v;
                    seen.push(v);
                    phase[k] = 2;
                }
                _ => phase[k] = 0,
            }
        }
    }
    let expected: Vec<u64> = (0..seen.len() as u64).collect();
    assert_eq!(seen, expected);
    assert!(
        demotions > 0,
        "the interleaving must have hit conversion deadlocks"
    );
}
