//! Lock modes, the VMS compatibility matrix and the classification of conversions.
//!
//! The six modes order from weakest to strongest by their libdlm value (NL 0 … EX 5),
//! but "stronger" is not a total order for compatibility: PR and CW are mutually
//! incompatible although CW < PR numerically, so a conversion between them is neither
//! up nor down (a *middle* conversion). Everything that reasons about "up" or "down"
//! goes through [`Conversion`] rather than comparing values.

use crate::error::ModeError;

/// A lock mode (libdlm `LKM_NLMODE` … `LKM_EXMODE`).
///
/// The "invalid" mode IV (-1) of the reference is not a variant: a lock that holds
/// nothing yet has `Option<Mode>::None` as its granted mode.
///
/// ```
/// use phalanx_dlm::Mode;
/// assert!(Mode::Cr.is_compatible(Mode::Pw));
/// assert!(!Mode::Pr.is_compatible(Mode::Cw));
/// assert_eq!(Mode::try_from(5), Ok(Mode::Ex));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Null: holds nothing, keeps the resource (and its value block) cached.
    Nl = 0,
    /// Concurrent read.
    Cr = 1,
    /// Concurrent write.
    Cw = 2,
    /// Protected read.
    Pr = 3,
    /// Protected write.
    Pw = 4,
    /// Exclusive.
    Ex = 5,
}

/// Row = mode held, column = mode asked for; `true` = the two can be granted together.
/// Indexed by [`Mode::value`]. The table is symmetric (§3.2 of the reference).
const COMPATIBLE: [[bool; 6]; 6] = [
    //  NL    CR     CW     PR     PW     EX
    [true, true, true, true, true, true],      // NL
    [true, true, true, true, true, false],     // CR
    [true, true, true, false, false, false],   // CW
    [true, true, false, true, false, false],   // PR
    [true, true, false, false, false, false],  // PW
    [true, false, false, false, false, false], // EX
];

/// Row = granted mode, column = requested mode; `true` = QUECVT may be used for this
/// conversion (the "up" conversions of §3.2, the middle conversions PR↔CW included).
const QUECVT_VALID: [[bool; 6]; 6] = [
    //  NL     CR     CW     PR     PW     EX
    [false, true, true, true, true, true],      // NL
    [false, false, true, true, true, true],     // CR
    [false, false, false, true, true, true],    // CW
    [false, false, true, false, true, true],    // PR
    [false, false, false, false, false, true],  // PW
    [false, false, false, false, false, false], // EX
];

impl Mode {
    /// Every mode, weakest first.
    pub const ALL: [Mode; 6] = [Mode::Nl, Mode::Cr, Mode::Cw, Mode::Pr, Mode::Pw, Mode::Ex];

    /// The libdlm numeric value (`LKM_NLMODE` = 0 … `LKM_EXMODE` = 5).
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The short upper-case name used by the reference and by `dlm_tool`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nl => "NL",
            Mode::Cr => "CR",
            Mode::Cw => "CW",
            Mode::Pr => "PR",
            Mode::Pw => "PW",
            Mode::Ex => "EX",
        }
    }

    /// Whether a lock granted in `self` and a lock granted in `other` can coexist.
    pub fn is_compatible(self, other: Mode) -> bool {
        COMPATIBLE[self as usize][other as usize]
    }

    /// Whether `QUECVT` is allowed when converting from `self` (granted) to `to`.
    pub fn quecvt_allowed(self, to: Mode) -> bool {
        QUECVT_VALID[self as usize][to as usize]
    }

    /// How a conversion from `self` (granted) to `to` (requested) is classified.
    pub fn conversion_to(self, to: Mode) -> Conversion {
        let middle = matches!((self, to), (Mode::Pr, Mode::Cw) | (Mode::Cw, Mode::Pr));
        if middle {
            Conversion::Middle
        } else if to == self {
            Conversion::Same
        } else if to < self {
            Conversion::Down
        } else {
            Conversion::Up
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<i32> for Mode {
    type Error = ModeError;

    /// Maps a libdlm mode value; anything outside 0..=5 (IV = -1 included) is `EINVAL`.
    fn try_from(value: i32) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Mode::Nl),
            1 => Ok(Mode::Cr),
            2 => Ok(Mode::Cw),
            3 => Ok(Mode::Pr),
            4 => Ok(Mode::Pw),
            5 => Ok(Mode::Ex),
            other => Err(ModeError(other)),
        }
    }
}

/// The kind of a conversion from a granted mode to a requested one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// To a stronger mode: goes through the grant rules, may queue.
    Up,
    /// To a weaker mode: only releases, so it is granted in place at once.
    Down,
    /// To the mode already held (used to write a value block from PW/EX): granted in
    /// place at once, like a down-conversion.
    Same,
    /// PR ↔ CW: neither stronger nor weaker; treated like an up-conversion.
    Middle,
}

impl Conversion {
    /// Whether the conversion only gives rights away and is granted without looking at
    /// the queues.
    pub fn is_release(self) -> bool {
        matches!(self, Conversion::Down | Conversion::Same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_symmetric() {
        for a in Mode::ALL {
            for b in Mode::ALL {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} {b}");
            }
        }
    }

    #[test]
    fn quecvt_is_valid_exactly_for_up_and_middle_conversions() {
        for from in Mode::ALL {
            for to in Mode::ALL {
                let kind = from.conversion_to(to);
                let up = matches!(kind, Conversion::Up | Conversion::Middle);
                assert_eq!(from.quecvt_allowed(to), up, "{from}->{to}");
            }
        }
    }

    #[test]
    fn values_round_trip_and_out_of_range_is_rejected() {
        for m in Mode::ALL {
            assert_eq!(Mode::try_from(i32::from(m.value())), Ok(m));
        }
        assert_eq!(Mode::try_from(-1), Err(ModeError(-1)));
        assert_eq!(Mode::try_from(6), Err(ModeError(6)));
    }
}
