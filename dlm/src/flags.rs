//! `LKF_*` request flags and their validity rules (§3.3 of the reference).
//!
//! Validation happens before anything changes: an invalid combination is a call-level
//! `EINVAL` ([`FlagError`]) and the lockspace is left as it was.

use crate::error::FlagError;
use crate::mode::Mode;

/// A set of `LKF_*` flags, with the libdlm bit values.
///
/// ```
/// use phalanx_dlm::LockFlags;
/// let f = LockFlags::CONVERT | LockFlags::QUECVT;
/// assert!(f.contains(LockFlags::QUECVT));
/// assert_eq!(f.bits(), 0x14);
/// assert!(LockFlags::from_bits(0x4_0000).is_err()); // TIMEOUT is not supported
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LockFlags(u32);

impl LockFlags {
    /// No flags.
    pub const EMPTY: LockFlags = LockFlags(0);
    /// Fail with `EAGAIN` instead of queueing.
    pub const NOQUEUE: LockFlags = LockFlags(0x1);
    /// Unlock-only: cancel a waiting request or conversion.
    pub const CANCEL: LockFlags = LockFlags(0x2);
    /// Convert an existing lock.
    pub const CONVERT: LockFlags = LockFlags(0x4);
    /// The lock carries a value block.
    pub const VALBLK: LockFlags = LockFlags(0x8);
    /// Queue the conversion behind earlier ones (FIFO); up-conversions only.
    pub const QUECVT: LockFlags = LockFlags(0x10);
    /// Invalidate the resource value block on release from PW/EX.
    pub const IVVALBLK: LockFlags = LockFlags(0x20);
    /// On conversion deadlock demote this lock to NL instead of failing.
    pub const CONVDEADLK: LockFlags = LockFlags(0x40);
    /// The lock survives its owner's exit as an orphan.
    pub const PERSISTENT: LockFlags = LockFlags(0x80);
    /// Exclude from deadlock handling: the lock gets a BAST to itself instead.
    pub const NODLCKWT: LockFlags = LockFlags(0x100);
    /// Accepted and ignored ("not implemented" in the reference, as in Linux).
    pub const NODLCKBLK: LockFlags = LockFlags(0x200);
    /// A new NL request granted at once regardless of the queues.
    pub const EXPEDITE: LockFlags = LockFlags(0x400);
    /// With NOQUEUE, still send BASTs to the locks that blocked the request.
    pub const NOQUEUEBAST: LockFlags = LockFlags(0x800);
    /// Queue at the head of the convert or wait queue.
    pub const HEADQUE: LockFlags = LockFlags(0x1000);
    /// Ignore the VMS grant-order rules: grant whenever compatible.
    pub const NOORDER: LockFlags = LockFlags(0x2000);
    /// Adopt an orphan lock of the same name and mode.
    pub const ORPHAN: LockFlags = LockFlags(0x4000);
    /// If not grantable, try PR and report `ALTMODE`.
    pub const ALTPR: LockFlags = LockFlags(0x8000);
    /// If not grantable, try CW and report `ALTMODE`.
    pub const ALTCW: LockFlags = LockFlags(0x1_0000);
    /// Unlock even while the lock is waiting or converting.
    pub const FORCEUNLOCK: LockFlags = LockFlags(0x2_0000);

    /// Every flag this engine knows. `TIMEOUT` (0x40000) was removed from the kernel in
    /// v6.2 and the reference says not to implement it; `WAIT` (0x80000000) is a marker
    /// of libdlm's synchronous wrappers that never reaches a lock manager. Both are
    /// therefore unknown bits here.
    pub const ALL: LockFlags = LockFlags(0x3_ffff);

    /// The flags that mean something on an unlock call.
    pub const UNLOCK_FLAGS: LockFlags =
        LockFlags(Self::CANCEL.0 | Self::VALBLK.0 | Self::IVVALBLK.0 | Self::FORCEUNLOCK.0);

    /// Builds a set from libdlm bits; unknown bits are `EINVAL`.
    pub fn from_bits(bits: u32) -> Result<LockFlags, FlagError> {
        let unknown = bits & !Self::ALL.0;
        if unknown != 0 {
            return Err(FlagError::UnknownBits(unknown));
        }
        Ok(LockFlags(bits))
    }

    /// The libdlm bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: LockFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The alternate mode ALTPR/ALTCW ask for when `requested` is not grantable.
    /// Linux tries PR first when both are set; the reference is silent on the pair, so
    /// we follow Linux (both accepted, PR wins) rather than reject it.
    pub fn alternate_mode(self, requested: Mode) -> Option<Mode> {
        if self.contains(Self::ALTPR) && requested != Mode::Pr {
            Some(Mode::Pr)
        } else if self.contains(Self::ALTCW) && requested != Mode::Cw {
            Some(Mode::Cw)
        } else {
            None
        }
    }
}

impl std::ops::BitOr for LockFlags {
    type Output = LockFlags;
    fn bitor(self, rhs: LockFlags) -> LockFlags {
        LockFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for LockFlags {
    fn bitor_assign(&mut self, rhs: LockFlags) {
        self.0 |= rhs.0;
    }
}

/// The combination rules of a lock (or convert) call that depend only on the flags and
/// the requested mode — the reference's `EINVAL` cases of §3.3, in the order Linux's
/// `set_lock_args` checks them (the first broken rule is reported).
///
/// ```
/// use phalanx_dlm::{FlagError, LockFlags, Mode, validate_lock_flags};
/// assert_eq!(
///     validate_lock_flags(LockFlags::QUECVT, Mode::Ex),
///     Err(FlagError::QuecvtWithoutConvert)
/// );
/// assert!(validate_lock_flags(LockFlags::EXPEDITE, Mode::Nl).is_ok());
/// ```
pub fn validate_lock_flags(flags: LockFlags, mode: Mode) -> Result<(), FlagError> {
    use LockFlags as F;
    let has = |f| flags.contains(f);
    if has(F::CANCEL) {
        return Err(FlagError::CancelOnLock);
    }
    if has(F::QUECVT) && !has(F::CONVERT) {
        return Err(FlagError::QuecvtWithoutConvert);
    }
    if has(F::CONVDEADLK) && !has(F::CONVERT) {
        return Err(FlagError::ConvdeadlkWithoutConvert);
    }
    if has(F::CONVDEADLK) && has(F::NOQUEUE) {
        return Err(FlagError::ConvdeadlkWithNoqueue);
    }
    if has(F::EXPEDITE) && has(F::CONVERT) {
        return Err(FlagError::ExpediteWithConvert);
    }
    if has(F::EXPEDITE) && has(F::QUECVT) {
        return Err(FlagError::ExpediteWithQuecvt);
    }
    if has(F::EXPEDITE) && has(F::NOQUEUE) {
        return Err(FlagError::ExpediteWithNoqueue);
    }
    if has(F::EXPEDITE) && mode != Mode::Nl {
        return Err(FlagError::ExpediteNotNl(mode));
    }
    Ok(())
}

/// The rule of a conversion that needs the lock's granted mode: QUECVT only for the
/// up (and middle) conversions of the §3.2 table.
pub fn validate_conversion(
    flags: LockFlags,
    granted: Mode,
    requested: Mode,
) -> Result<(), FlagError> {
    if flags.contains(LockFlags::QUECVT) && !granted.quecvt_allowed(requested) {
        return Err(FlagError::QuecvtNotUp {
            from: granted,
            to: requested,
        });
    }
    Ok(())
}

/// The rules of an unlock call. Lock-only flags are ignored, as Linux ignores them;
/// CANCEL together with FORCEUNLOCK asks for two different things, and the reference
/// does not say which wins, so we refuse the pair rather than guess.
pub fn validate_unlock_flags(flags: LockFlags) -> Result<(), FlagError> {
    if flags.contains(LockFlags::CANCEL) && flags.contains(LockFlags::FORCEUNLOCK) {
        return Err(FlagError::CancelWithForceUnlock);
    }
    Ok(())
}
