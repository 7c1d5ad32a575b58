//! Call-level errors.
//!
//! Every error here is returned *instead of* doing anything: when a call fails, the
//! lockspace is exactly as it was before it (no lock created, changed or queued, no
//! output pushed). Outcomes that happen to a request after it was accepted — refused
//! by NOQUEUE, cancelled, a conversion deadlock — are not errors of the call; they
//! arrive as the [`Status`](crate::Status) of a completion AST, as in libdlm.

use crate::lock::LockId;
use crate::mode::Mode;

/// `EINVAL`
pub const EINVAL: i32 = 22;
/// `EAGAIN`
pub const EAGAIN: i32 = 11;
/// `EBUSY`
pub const EBUSY: i32 = 16;
/// `ENOENT`
pub const ENOENT: i32 = 2;
/// `ENOMEM`
pub const ENOMEM: i32 = 12;
/// `EDEADLK`
pub const EDEADLK: i32 = 35;
/// `EPERM`
pub const EPERM: i32 = 1;

/// A mode value outside `0..=5` (`EINVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("lock mode {0} is not one of NL(0) CR(1) CW(2) PR(3) PW(4) EX(5)")]
pub struct ModeError(pub i32);

/// An invalid flag combination (`EINVAL`); nothing changed, retrying the same call
/// fails the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// Bits no flag of this engine uses (TIMEOUT and WAIT included).
    #[error("unknown or unsupported flag bits {0:#x}")]
    UnknownBits(u32),
    /// CANCEL is an unlock flag.
    #[error("CANCEL is only valid on unlock")]
    CancelOnLock,
    /// QUECVT without CONVERT.
    #[error("QUECVT requires CONVERT")]
    QuecvtWithoutConvert,
    /// QUECVT on a conversion that is not an up-conversion.
    #[error("QUECVT is not valid for the conversion {from} -> {to}")]
    QuecvtNotUp {
        /// The granted mode.
        from: Mode,
        /// The requested mode.
        to: Mode,
    },
    /// CONVDEADLK without CONVERT.
    #[error("CONVDEADLK requires CONVERT")]
    ConvdeadlkWithoutConvert,
    /// CONVDEADLK with NOQUEUE.
    #[error("CONVDEADLK cannot be combined with NOQUEUE")]
    ConvdeadlkWithNoqueue,
    /// EXPEDITE with CONVERT.
    #[error("EXPEDITE cannot be combined with CONVERT")]
    ExpediteWithConvert,
    /// EXPEDITE with QUECVT.
    #[error("EXPEDITE cannot be combined with QUECVT")]
    ExpediteWithQuecvt,
    /// EXPEDITE with NOQUEUE.
    #[error("EXPEDITE cannot be combined with NOQUEUE")]
    ExpediteWithNoqueue,
    /// EXPEDITE with a mode other than NL.
    #[error("EXPEDITE is only valid for NL requests, not {0}")]
    ExpediteNotNl(Mode),
    /// VALBLK without a value-block buffer.
    #[error("VALBLK requires a value block")]
    ValblkWithoutLvb,
    /// CONVERT without the id of the lock to convert.
    #[error("CONVERT requires the lock id")]
    ConvertWithoutLockId,
    /// CANCEL and FORCEUNLOCK together.
    #[error("CANCEL and FORCEUNLOCK cannot be combined")]
    CancelWithForceUnlock,
}

/// Why a lockspace call was refused. Nothing changed in every case; the doc of each
/// variant says whether retrying can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DlmError {
    /// Invalid flags for this call (`EINVAL`); do not retry as is.
    #[error("invalid flags: {0}")]
    InvalidFlags(#[from] FlagError),
    /// Resource name longer than [`MAX_RESOURCE_NAME`](crate::MAX_RESOURCE_NAME)
    /// (`EINVAL`); do not retry.
    #[error("resource name is {0} bytes, the limit is 64")]
    NameTooLong(usize),
    /// The value block given is not the lockspace's LVB length (`EINVAL`).
    #[error("value block is {got} bytes, the lockspace uses {expected}")]
    LvbLength {
        /// The lockspace's LVB length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// No lock with this id (`ENOENT`).
    #[error("no lock {0}")]
    NoSuchLock(LockId),
    /// The lock belongs to another owner (`EPERM`).
    #[error("lock {0} belongs to another owner")]
    NotOwner(LockId),
    /// The lock is in a state the call cannot act on (`EBUSY`): converting a lock that
    /// is not granted or already converting, unlocking a waiting/converting lock
    /// without FORCEUNLOCK, cancelling a lock with nothing to cancel. Retry once the
    /// pending request completes.
    #[error("lock {0} is busy")]
    Busy(LockId),
    /// ORPHAN was set but no orphan lock of that name and mode exists (`ENOENT`).
    #[error("no orphan lock to adopt")]
    NoOrphan,
    /// A bound on locks or resources is reached (`ENOMEM` in libdlm terms); retry after
    /// locks are released.
    #[error("lock table full: {0}")]
    TooManyLocks(&'static str),
    /// The output queue has no room for the worst case of this call; drain
    /// [`poll_output`](crate::Lockspace::poll_output) and retry (backpressure,
    /// `EAGAIN`).
    #[error("output queue full: drain poll_output and retry")]
    TryAgain,
    /// This node is not a member of the lockspace (`ENOENT`).
    #[error("not a member of lockspace {0}")]
    NoSuchLockspace(u32),
}

impl DlmError {
    /// The errno libdlm would return for this refusal.
    pub fn errno(&self) -> i32 {
        match self {
            DlmError::InvalidFlags(_) | DlmError::NameTooLong(_) | DlmError::LvbLength { .. } => {
                EINVAL
            }
            DlmError::NoSuchLock(_) | DlmError::NoOrphan | DlmError::NoSuchLockspace(_) => ENOENT,
            DlmError::NotOwner(_) => EPERM,
            DlmError::Busy(_) => EBUSY,
            DlmError::TooManyLocks(_) => ENOMEM,
            DlmError::TryAgain => EAGAIN,
        }
    }

    /// Whether the same call may succeed later without being changed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DlmError::Busy(_) | DlmError::TooManyLocks(_) | DlmError::TryAgain
        )
    }
}

/// A lockspace configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// LVB length not a multiple of 8 in `8..=MAX_LVB_LEN`.
    #[error("LVB length {0} must be a multiple of 8 between 8 and 256")]
    LvbLength(usize),
    /// A limit is zero.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// A limit is too large for 32-bit lock ids.
    #[error("{0} is too large")]
    LimitTooLarge(&'static str),
    /// The output bound is below the worst case of one call on a full resource, so a
    /// full resource could never be unlocked.
    #[error("max_outputs {got} is below the worst case of one call ({needed})")]
    OutputsTooSmall {
        /// The configured bound.
        got: usize,
        /// The smallest bound that works with `max_locks_per_resource`.
        needed: usize,
    },
}
