//! Names, limits and backpressure: every bound is a typed refusal that changes
//! nothing, and the output queue never grows past its configured size.

mod common;

use common::*;
use phalanx_dlm::*;

use Mode::{Ex, Nl, Pr};

#[test]
fn resource_names_up_to_64_bytes_of_any_kind_are_accepted() {
    let mut h = Harness::new();
    let binary: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    h.ls.lock(LockRequest::new(owner(1), binary.clone(), Pr))
        .expect("64 binary bytes");
    assert!(h.ls.resource(&binary).is_some());
    let err =
        h.ls.lock(LockRequest::new(owner(1), vec![b'x'; 65], Pr))
            .unwrap_err();
    assert_eq!(err, DlmError::NameTooLong(65));
    assert_eq!(err.errno(), EINVAL);
    assert_eq!(h.ls.lock_count(), 1);
}

#[test]
fn locks_per_resource_are_bounded() {
    let config = LockspaceConfig {
        max_locks_per_resource: 3,
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    for who in 0..3 {
        h.lock(who, "r", Nl);
    }
    let err = h.ls.lock(LockRequest::new(owner(9), "r", Nl)).unwrap_err();
    assert_eq!(err, DlmError::TooManyLocks("max_locks_per_resource"));
    assert!(err.is_retryable());
    assert_eq!(err.errno(), ENOMEM);
    h.lock(9, "other", Nl);
}

#[test]
fn locks_and_resources_per_lockspace_are_bounded() {
    let config = LockspaceConfig {
        max_locks: 2,
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    h.lock(1, "a", Nl);
    h.lock(1, "b", Nl);
    assert_eq!(
        h.ls.lock(LockRequest::new(owner(1), "c", Nl)),
        Err(DlmError::TooManyLocks("max_locks"))
    );
    let config = LockspaceConfig {
        max_resources: 1,
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    h.lock(1, "a", Nl);
    h.lock(2, "a", Nl);
    assert_eq!(
        h.ls.lock(LockRequest::new(owner(1), "b", Nl)),
        Err(DlmError::TooManyLocks("max_resources"))
    );
}

#[test]
fn a_full_output_queue_refuses_calls_until_drained() {
    let config = LockspaceConfig {
        max_locks_per_resource: 4,
        max_outputs: LockspaceConfig::outputs_needed(4),
        ..LockspaceConfig::default()
    };
    let mut h = Harness::with_config(config);
    h.lock(1, "r", Ex);
    let mut accepted = 1;
    let refusal = loop {
        let before = (h.ls.lock_count(), h.ls.pending_outputs());
        match h.ls.lock(LockRequest::new(owner(2), "r", Pr)) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(
                    (h.ls.lock_count(), h.ls.pending_outputs()),
                    before,
                    "no change"
                );
                break e;
            }
        }
        assert!(h.ls.pending_outputs() <= h.ls.config().max_outputs);
        assert!(accepted < 10, "never refused");
    };
    assert_eq!(refusal, DlmError::TryAgain);
    assert_eq!(refusal.errno(), EAGAIN);
    assert!(refusal.is_retryable());
    assert!(accepted < 4, "refused before the per-resource bound");
    // The same call is accepted once the driver drained the queue.
    h.drain();
    h.ls.lock(LockRequest::new(owner(2), "r", Pr))
        .expect("accepted after a drain");
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    let cases = [
        (
            LockspaceConfig {
                max_locks: 0,
                ..LockspaceConfig::default()
            },
            ConfigError::ZeroLimit("max_locks"),
        ),
        (
            LockspaceConfig {
                max_locks: MAX_LOCKS + 1,
                ..LockspaceConfig::default()
            },
            ConfigError::LimitTooLarge("max_locks"),
        ),
        (
            LockspaceConfig {
                max_locks_per_resource: 100,
                max_outputs: 10,
                ..LockspaceConfig::default()
            },
            ConfigError::OutputsTooSmall {
                got: 10,
                needed: LockspaceConfig::outputs_needed(100),
            },
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(Lockspace::new(config).unwrap_err(), expected);
    }
}

#[test]
fn handle_request_dispatches_every_input() {
    let mut h = Harness::new();
    let Ok(Response::Lock(id)) =
        h.ls.handle_request(Request::Lock(LockRequest::new(owner(1), "r", Pr)))
    else {
        panic!("lock response");
    };
    assert_eq!(
        h.ls.handle_request(Request::Unlock(UnlockRequest::new(owner(1), id))),
        Ok(Response::Unlocked)
    );
    assert_eq!(
        h.ls.handle_request(Request::PurgeOwner(owner(1))),
        Ok(Response::Purged(PurgeReport {
            released: 0,
            orphaned: 0,
            complete: true
        }))
    );
    let outs = h.drain();
    assert_eq!(completions(&outs).len(), 2);
}

#[test]
fn lock_ids_are_unique_and_never_zero() {
    let mut h = Harness::new();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..200 {
        let id = h.lock(i, "r", Nl);
        assert_ne!(id.get(), 0);
        assert!(ids.insert(id));
        if i % 3 == 0 {
            h.unlock(i, id);
        }
    }
}
