//! Which service a totem message belongs to: its first byte.

/// The service id carried in the first byte of every totem message the [`Stack`]
/// sends. New services take the next number; a node drops (and counts) messages of
/// services it does not run.
///
/// [`Stack`]: super::Stack
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ServiceId {
    /// Raw application messages (`Stack::mcast`).
    Raw = 0,
    /// Closed process groups (`phalanx-cpg`).
    Cpg = 1,
    /// Reserved for quorum (`phalanx-quorum`).
    Quorum = 2,
    /// The fencers' peer messages (`phalanx-fence`).
    Fence = 3,
    /// The CIB replication service (`phalanx-cib`).
    Cib = 4,
}

impl ServiceId {
    /// From the first byte of a message.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Raw,
            1 => Self::Cpg,
            2 => Self::Quorum,
            3 => Self::Fence,
            4 => Self::Cib,
            _ => return None,
        })
    }
}
