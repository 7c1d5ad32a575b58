//! Lock value blocks (§3.6): the per-resource value, its validity, and which way it
//! moves when a lock with VALBLK is granted or released.

use crate::mode::Mode;

/// The value-block length of libdlm userspace lockspaces.
pub const DEFAULT_LVB_LEN: usize = 32;
/// The largest per-lockspace value-block length we accept. The kernel only asks for a
/// multiple of 8; a bound keeps every lock's buffer small (our choice).
pub const MAX_LVB_LEN: usize = 256;

/// Which way the value block moves when a lock with VALBLK is granted a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvbTransfer {
    /// Resource → caller (the grant carries the resource's value).
    Read,
    /// Caller → resource (`lvbseq` advances, the value becomes valid again).
    Write,
    /// Nothing moves.
    None,
}

/// The §3.6 table: row = mode held before the grant (`None` = a new lock), column =
/// mode granted.
///
/// ```
/// use phalanx_dlm::{LvbTransfer, Mode, lvb_transfer};
/// assert_eq!(lvb_transfer(None, Mode::Ex), LvbTransfer::Read);
/// assert_eq!(lvb_transfer(Some(Mode::Ex), Mode::Nl), LvbTransfer::Write);
/// assert_eq!(lvb_transfer(Some(Mode::Pw), Mode::Ex), LvbTransfer::Read);
/// assert_eq!(lvb_transfer(Some(Mode::Pr), Mode::Cr), LvbTransfer::None);
/// ```
pub fn lvb_transfer(held: Option<Mode>, granted: Mode) -> LvbTransfer {
    match held {
        None | Some(Mode::Nl) => LvbTransfer::Read,
        // From PW everything writes except the up-conversion to EX, which reads.
        Some(Mode::Pw) if granted == Mode::Ex => LvbTransfer::Read,
        Some(Mode::Pw) | Some(Mode::Ex) => LvbTransfer::Write,
        // CR, CW, PR: read when going to the same or a higher value, else nothing
        // (PR -> CW is "nothing", CW -> PR is "read", as the table says).
        Some(held) if granted >= held => LvbTransfer::Read,
        Some(_) => LvbTransfer::None,
    }
}

/// A resource's value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLvb {
    value: Box<[u8]>,
    valid: bool,
    seq: u64,
}

impl ResourceLvb {
    /// A new resource's block: zeros, valid, sequence 0.
    pub fn new(len: usize) -> ResourceLvb {
        ResourceLvb {
            value: vec![0; len].into_boxed_slice(),
            valid: true,
            seq: 0,
        }
    }

    /// The current value (meaningful only while [`is_valid`](Self::is_valid)).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Whether the value is trustworthy; grants with VALBLK report `VALNOTVALID` when
    /// it is not.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// How many writes the value has seen (`lvbseq`); recovery picks the highest.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// A W transfer: take the caller's value, advance the sequence, clear VALNOTVALID.
    /// The caller checked the length against the lockspace's.
    pub(crate) fn write(&mut self, value: &[u8]) {
        let n = self.value.len().min(value.len());
        self.value[..n].copy_from_slice(&value[..n]);
        self.seq += 1;
        self.valid = true;
    }

    /// Recovery: the value rebuilt from a surviving copy (`None`: nothing survived,
    /// the value is unknown and marked not valid).
    pub(crate) fn restore(&mut self, value: Option<&[u8]>, valid: bool) {
        match value {
            Some(value) => {
                let n = self.value.len().min(value.len());
                self.value[..n].copy_from_slice(&value[..n]);
                self.valid = valid;
            }
            None => self.valid = false,
        }
    }

    /// Marks the value invalid (IVVALBLK, or recovery after a PW/EX holder was lost).
    /// Only a later W transfer makes it valid again.
    pub fn invalidate(&mut self) {
        self.valid = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_advances_sequence_and_revalidates() {
        let mut lvb = ResourceLvb::new(8);
        lvb.invalidate();
        assert!(!lvb.is_valid());
        lvb.write(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(lvb.is_valid());
        assert_eq!(lvb.seq(), 1);
        assert_eq!(lvb.value(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
