//! # phalanx-dlm — distributed lock manager
//!
//! **Status: the single-master lock engine and the distributed layer
//! ([`cluster`]: directory, remote masters, recovery after node failure gated on
//! fencing) are implemented as sans-IO cores; the Stack runs them as a service (`phalanx::stack`, `phalanx::node::Dlm`).**
//! See `docs/dlm.md`.
//!
//! The engine is a sans-IO core with VMS/Linux DLM semantics: lockspaces hold
//! resources by name (≤ 64 bytes); each resource has grant, convert and wait queues;
//! locks take the six modes NL CR CW PR PW EX of the VMS compatibility matrix; the
//! grant rules, conversions, QUECVT/HEADQUE/NOORDER/EXPEDITE/NOQUEUE/ALTPR/ALTCW,
//! conversion deadlock (CONVDEADLK, NODLCKWT), blocking ASTs, lock value blocks and
//! PERSISTENT/ORPHAN locks follow the reference's rules.
//!
//! ## Run loop
//!
//! ```text
//!   Lockspace::handle_request(Request::Lock | Unlock | PurgeOwner | PurgeOrphans)
//!        │  -> Ok(Response) at once, or a typed DlmError (nothing changed)
//!        ▼
//!   Lockspace::poll_output() until None
//!        Output::Completion (AST: status, DEMOTED/VALNOTVALID/ALTMODE, value block)
//!        Output::Blocking   (BAST: the mode someone is blocked on)
//!        Output::ResourceIdle (the resource holds no lock any more)
//! ```
//!
//! Nothing calls back: every effect is an output, queued in order, bounded by
//! [`LockspaceConfig::max_outputs`] (a call that could overflow it is refused with
//! [`DlmError::TryAgain`] before it changes anything). No clocks, threads or
//! randomness: a run is a pure function of its inputs.
//!
//! ```
//! use phalanx_dlm::*;
//!
//! let mut ls = Lockspace::new(LockspaceConfig::default()).unwrap();
//! let writer = Owner::new(1, 10);
//! let reader = Owner::new(2, 20);
//! // The writer takes EX with a value block, then releases it with a new value.
//! let w = ls.lock(LockRequest::new(writer, "counter", Mode::Ex).with_lvb(&[0; 32])).unwrap();
//! let mut value = [0u8; 32];
//! value[0] = 7;
//! ls.unlock(UnlockRequest::new(writer, w).with_lvb(&value)).unwrap();
//! // A reader's grant carries the value the writer left.
//! ls.lock(LockRequest::new(reader, "counter", Mode::Pr).with_lvb(&[0; 32])).unwrap();
//! let read = std::iter::from_fn(|| ls.poll_output())
//!     .filter_map(|o| match o {
//!         Output::Completion(c) if c.owner == reader => c.lvb,
//!         _ => None,
//!     })
//!     .next()
//!     .unwrap();
//! assert_eq!(read[0], 7);
//! ```
//!
//! ## What it does not do (yet)
//!
//! No sockets (the composition carries [`cluster::Output::Send`]), no cross-resource
//! deadlock detection (the kernel has none either), no
//! `LKF_TIMEOUT` (removed from Linux in v6.2).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod channel;
pub mod cluster;
mod error;
mod flags;
pub mod id_map;
mod lock;
mod lockspace;
mod lvb;
mod mode;
mod output;
mod resource;

pub use error::{
    ConfigError, DlmError, EAGAIN, EBUSY, EDEADLK, EINVAL, ENOENT, ENOMEM, EPERM, FlagError,
    ModeError,
};
pub use flags::{LockFlags, validate_conversion, validate_lock_flags, validate_unlock_flags};
pub use lock::{LockId, LockInfo, LockState, Owner};
pub use lockspace::{
    LockRequest, Lockspace, LockspaceConfig, MAX_LOCKS, PurgeReport, Request, Response,
    UnlockRequest,
};
pub use lvb::{DEFAULT_LVB_LEN, LvbTransfer, MAX_LVB_LEN, ResourceLvb, lvb_transfer};
pub use mode::{Conversion, Mode};
pub use output::{Completion, DLM_ECANCEL, DLM_EUNLOCK, Output, SbFlags, Status};
pub use resource::{MAX_RESOURCE_NAME, Mastery, ResourceName, ResourceView};
