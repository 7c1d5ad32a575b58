//! The DLM's point-to-point messages and their binary encoding.
//!
//! Every message starts with a version byte ([`WIRE_VERSION`]), a tag byte and the
//! lockspace id; integers are big-endian; byte strings carry a length prefix and are
//! bounded (names by [`MAX_RESOURCE_NAME`], value blocks by [`MAX_LVB_LEN`]). The
//! decoder is total: any input gives a message or a [`WireError`], never a panic, and
//! it allocates no more than the input's length.

use crate::flags::LockFlags;
use crate::lvb::MAX_LVB_LEN;
use crate::mode::Mode;
use crate::output::Status;
use crate::resource::MAX_RESOURCE_NAME;

/// A cluster node id (the totem node id).
pub type NodeId = u32;
/// A lockspace id, agreed by the composition (e.g. from the lockspace's group name).
pub type LockspaceId = u32;

/// The version byte every message starts with.
pub const WIRE_VERSION: u8 = 1;

/// Which application call a [`Msg::Refused`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A new lock.
    Request,
    /// A conversion.
    Convert,
    /// An unlock (FORCEUNLOCK included).
    Unlock,
    /// A cancel.
    Cancel,
    /// A directory lookup (the dir node could not take it now).
    Lookup,
}

/// One lock a surviving holder reports to the new master of a resource whose master
/// left (§3.7 step 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredLock {
    /// The holder's process-copy id.
    pub local: u32,
    /// The owning process on the holder.
    pub pid: u32,
    /// The resource.
    pub name: Vec<u8>,
    /// The mode the holder may rely on.
    pub mode: Mode,
    /// PERSISTENT.
    pub persistent: bool,
    /// The holder has a blocking-AST routine.
    pub bast: bool,
    /// The value block the holder last read or wrote, if it used one.
    pub lvb: Option<Vec<u8>>,
    /// Whether that copy was valid.
    pub lvb_valid: bool,
}

/// A DLM message between two nodes of a lockspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Requester → directory node: who masters `name`? (the first asker becomes it).
    Lookup {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The sender's membership epoch; other epochs are ignored.
        epoch: u64,
        /// Resource.
        name: Vec<u8>,
    },
    /// Directory node → requester. `master == 0`: the directory is busy, retry later.
    LookupReply {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Epoch of the lookup.
        epoch: u64,
        /// Resource.
        name: Vec<u8>,
        /// The master.
        master: NodeId,
    },
    /// Master → directory node: the idle resource was forgotten ("toss").
    Remove {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Sender's epoch.
        epoch: u64,
        /// Resource.
        name: Vec<u8>,
    },
    /// Holder → master: a new lock.
    Request {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The holder's process-copy id.
        local: u32,
        /// Owning process.
        pid: u32,
        /// Resource.
        name: Vec<u8>,
        /// Mode.
        mode: Mode,
        /// `LKF_*`.
        flags: LockFlags,
        /// BAST routine present.
        bast: bool,
        /// Value-block buffer (VALBLK).
        lvb: Option<Vec<u8>>,
    },
    /// Holder → master: a conversion.
    Convert {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The holder's epoch when it sent this (a master finishing a later
        /// recovery drops such calls for locks their holder re-mastered: the holder
        /// sends them again).
        epoch: u64,
        /// Process-copy id.
        local: u32,
        /// Mode.
        mode: Mode,
        /// `LKF_*` (CONVERT included).
        flags: LockFlags,
        /// BAST routine present.
        bast: bool,
        /// Value-block buffer.
        lvb: Option<Vec<u8>>,
    },
    /// Holder → master: unlock or cancel (CANCEL).
    Unlock {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The holder's epoch when it sent this.
        epoch: u64,
        /// Process-copy id.
        local: u32,
        /// `LKF_*`.
        flags: LockFlags,
        /// Value to write.
        lvb: Option<Vec<u8>>,
    },
    /// Master → holder: a completion AST.
    Ast {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Process-copy id.
        local: u32,
        /// Outcome.
        status: Status,
        /// `sb_flags` bits.
        sb_flags: u8,
        /// Mode held now.
        granted: Option<Mode>,
        /// The value read, if any.
        lvb: Option<Vec<u8>>,
    },
    /// Master → holder: a blocking AST.
    Bast {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Process-copy id.
        local: u32,
        /// Blocked mode.
        mode: Mode,
    },
    /// Master → holder: the call was refused (the engine's errno).
    Refused {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Process-copy id (0 for a lookup).
        local: u32,
        /// Which call.
        op: OpKind,
        /// errno.
        errno: i32,
    },
    /// Node → requester: I do not master this resource (any more); look it up again.
    NotMaster {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Process-copy id.
        local: u32,
    },
    /// Recovery round 1: the resources the sender masters.
    RecoverNames {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Recovery epoch.
        epoch: u64,
        /// Mastered resources (active and idle).
        names: Vec<Vec<u8>>,
    },
    /// Recovery round 2: the sender's locks on resources the receiver now masters.
    RecoverLocks {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Recovery epoch.
        epoch: u64,
        /// Locks.
        locks: Vec<RecoveredLock>,
    },
}

/// Why bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended early.
    #[error("message truncated")]
    Truncated,
    /// Another version.
    #[error("unsupported wire version {0}")]
    Version(u8),
    /// Unknown tag.
    #[error("unknown message tag {0}")]
    Tag(u8),
    /// A field value out of range.
    #[error("invalid field {0}")]
    Field(&'static str),
    /// Bytes left after the message.
    #[error("trailing bytes")]
    Trailing,
}

impl Msg {
    /// The lockspace the message belongs to.
    pub fn lockspace(&self) -> LockspaceId {
        match self {
            Msg::Lookup { lockspace, .. }
            | Msg::LookupReply { lockspace, .. }
            | Msg::Remove { lockspace, .. }
            | Msg::Request { lockspace, .. }
            | Msg::Convert { lockspace, .. }
            | Msg::Unlock { lockspace, .. }
            | Msg::Ast { lockspace, .. }
            | Msg::Bast { lockspace, .. }
            | Msg::Refused { lockspace, .. }
            | Msg::NotMaster { lockspace, .. }
            | Msg::RecoverNames { lockspace, .. }
            | Msg::RecoverLocks { lockspace, .. } => *lockspace,
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn opt_bytes(&mut self, v: &Option<Vec<u8>>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.bytes(v);
            }
            None => self.u8(0),
        }
    }
    fn opt_mode(&mut self, m: Option<Mode>) {
        self.u8(m.map_or(0xff, Mode::value));
    }
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Granted => 0,
        Status::WouldBlock => 1,
        Status::Deadlock => 2,
        Status::Cancelled => 3,
        Status::Unlocked => 4,
    }
}

fn op_code(op: OpKind) -> u8 {
    match op {
        OpKind::Request => 0,
        OpKind::Convert => 1,
        OpKind::Unlock => 2,
        OpKind::Cancel => 3,
        OpKind::Lookup => 4,
    }
}

/// Encodes a message.
///
/// ```
/// use phalanx_dlm::cluster::{Msg, decode, encode};
/// let msg = Msg::Lookup { lockspace: 7, epoch: 3, name: b"inode:42".to_vec() };
/// assert_eq!(decode(&encode(&msg)), Ok(msg));
/// assert!(decode(&[1, 99]).is_err());
/// ```
pub fn encode(msg: &Msg) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(32));
    w.u8(WIRE_VERSION);
    let tag = match msg {
        Msg::Lookup { .. } => 1,
        Msg::LookupReply { .. } => 2,
        Msg::Remove { .. } => 3,
        Msg::Request { .. } => 4,
        Msg::Convert { .. } => 5,
        Msg::Unlock { .. } => 6,
        Msg::Ast { .. } => 7,
        Msg::Bast { .. } => 8,
        Msg::Refused { .. } => 9,
        Msg::NotMaster { .. } => 10,
        Msg::RecoverNames { .. } => 11,
        Msg::RecoverLocks { .. } => 12,
    };
    w.u8(tag);
    w.u32(msg.lockspace());
    match msg {
        Msg::Lookup { epoch, name, .. } | Msg::Remove { epoch, name, .. } => {
            w.u64(*epoch);
            w.bytes(name);
        }
        Msg::LookupReply {
            epoch,
            name,
            master,
            ..
        } => {
            w.u64(*epoch);
            w.bytes(name);
            w.u32(*master);
        }
        Msg::Request {
            local,
            pid,
            name,
            mode,
            flags,
            bast,
            lvb,
            ..
        } => {
            w.u32(*local);
            w.u32(*pid);
            w.bytes(name);
            w.u8(mode.value());
            w.u32(flags.bits());
            w.u8(u8::from(*bast));
            w.opt_bytes(lvb);
        }
        Msg::Convert {
            epoch,
            local,
            mode,
            flags,
            bast,
            lvb,
            ..
        } => {
            w.u64(*epoch);
            w.u32(*local);
            w.u8(mode.value());
            w.u32(flags.bits());
            w.u8(u8::from(*bast));
            w.opt_bytes(lvb);
        }
        Msg::Unlock {
            epoch,
            local,
            flags,
            lvb,
            ..
        } => {
            w.u64(*epoch);
            w.u32(*local);
            w.u32(flags.bits());
            w.opt_bytes(lvb);
        }
        Msg::Ast {
            local,
            status,
            sb_flags,
            granted,
            lvb,
            ..
        } => {
            w.u32(*local);
            w.u8(status_code(*status));
            w.u8(*sb_flags);
            w.opt_mode(*granted);
            w.opt_bytes(lvb);
        }
        Msg::Bast { local, mode, .. } => {
            w.u32(*local);
            w.u8(mode.value());
        }
        Msg::Refused {
            local, op, errno, ..
        } => {
            w.u32(*local);
            w.u8(op_code(*op));
            w.u32(*errno as u32);
        }
        Msg::NotMaster { local, .. } => w.u32(*local),
        Msg::RecoverNames { epoch, names, .. } => {
            w.u64(*epoch);
            w.u32(names.len() as u32);
            for name in names {
                w.bytes(name);
            }
        }
        Msg::RecoverLocks { epoch, locks, .. } => {
            w.u64(*epoch);
            w.u32(locks.len() as u32);
            for l in locks {
                w.u32(l.local);
                w.u32(l.pid);
                w.bytes(&l.name);
                w.u8(l.mode.value());
                w.u8(u8::from(l.persistent)
                    | (u8::from(l.bast) << 1)
                    | (u8::from(l.lvb_valid) << 2));
                w.opt_bytes(&l.lvb);
            }
        }
    }
    w.0
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self, max: usize, field: &'static str) -> Result<Vec<u8>, WireError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(WireError::Field(field));
        }
        Ok(self.take(len)?.to_vec())
    }
    fn name(&mut self) -> Result<Vec<u8>, WireError> {
        self.bytes(MAX_RESOURCE_NAME, "name")
    }
    fn opt_lvb(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes(MAX_LVB_LEN, "lvb")?)),
            _ => Err(WireError::Field("lvb present")),
        }
    }
    fn mode(&mut self) -> Result<Mode, WireError> {
        Mode::try_from(i32::from(self.u8()?)).map_err(|_| WireError::Field("mode"))
    }
    fn opt_mode(&mut self) -> Result<Option<Mode>, WireError> {
        match self.u8()? {
            0xff => Ok(None),
            v => Mode::try_from(i32::from(v))
                .map(Some)
                .map_err(|_| WireError::Field("granted mode")),
        }
    }
    fn flags(&mut self) -> Result<LockFlags, WireError> {
        LockFlags::from_bits(self.u32()?).map_err(|_| WireError::Field("flags"))
    }
    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Field("bool")),
        }
    }
}

/// Decodes a message; total (never panics), rejects trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<Msg, WireError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    let tag = r.u8()?;
    let lockspace = r.u32()?;
    let msg = match tag {
        1 => Msg::Lookup {
            lockspace,
            epoch: r.u64()?,
            name: r.name()?,
        },
        2 => Msg::LookupReply {
            lockspace,
            epoch: r.u64()?,
            name: r.name()?,
            master: r.u32()?,
        },
        3 => Msg::Remove {
            lockspace,
            epoch: r.u64()?,
            name: r.name()?,
        },
        4 => Msg::Request {
            lockspace,
            local: r.u32()?,
            pid: r.u32()?,
            name: r.name()?,
            mode: r.mode()?,
            flags: r.flags()?,
            bast: r.bool()?,
            lvb: r.opt_lvb()?,
        },
        5 => Msg::Convert {
            lockspace,
            epoch: r.u64()?,
            local: r.u32()?,
            mode: r.mode()?,
            flags: r.flags()?,
            bast: r.bool()?,
            lvb: r.opt_lvb()?,
        },
        6 => Msg::Unlock {
            lockspace,
            epoch: r.u64()?,
            local: r.u32()?,
            flags: r.flags()?,
            lvb: r.opt_lvb()?,
        },
        7 => Msg::Ast {
            lockspace,
            local: r.u32()?,
            status: match r.u8()? {
                0 => Status::Granted,
                1 => Status::WouldBlock,
                2 => Status::Deadlock,
                3 => Status::Cancelled,
                4 => Status::Unlocked,
                _ => return Err(WireError::Field("status")),
            },
            sb_flags: match r.u8()? {
                v if v <= 7 => v,
                _ => return Err(WireError::Field("sb_flags")),
            },
            granted: r.opt_mode()?,
            lvb: r.opt_lvb()?,
        },
        8 => Msg::Bast {
            lockspace,
            local: r.u32()?,
            mode: r.mode()?,
        },
        9 => Msg::Refused {
            lockspace,
            local: r.u32()?,
            op: match r.u8()? {
                0 => OpKind::Request,
                1 => OpKind::Convert,
                2 => OpKind::Unlock,
                3 => OpKind::Cancel,
                4 => OpKind::Lookup,
                _ => return Err(WireError::Field("op")),
            },
            errno: r.u32()? as i32,
        },
        10 => Msg::NotMaster {
            lockspace,
            local: r.u32()?,
        },
        11 => {
            let epoch = r.u64()?;
            let count = r.u32()? as usize;
            // Each name takes at least its 4-byte length: no allocation beyond input.
            let mut names = Vec::with_capacity(count.min(r.0.len() / 4));
            for _ in 0..count {
                names.push(r.name()?);
            }
            Msg::RecoverNames {
                lockspace,
                epoch,
                names,
            }
        }
        12 => {
            let epoch = r.u64()?;
            let count = r.u32()? as usize;
            let mut locks = Vec::with_capacity(count.min(r.0.len() / 16));
            for _ in 0..count {
                let local = r.u32()?;
                let pid = r.u32()?;
                let name = r.name()?;
                let mode = r.mode()?;
                let bits = r.u8()?;
                if bits > 7 {
                    return Err(WireError::Field("lock bits"));
                }
                let lvb = r.opt_lvb()?;
                locks.push(RecoveredLock {
                    local,
                    pid,
                    name,
                    mode,
                    persistent: bits & 1 != 0,
                    bast: bits & 2 != 0,
                    lvb_valid: bits & 4 != 0,
                    lvb,
                });
            }
            Msg::RecoverLocks {
                lockspace,
                epoch,
                locks,
            }
        }
        other => return Err(WireError::Tag(other)),
    };
    if !r.0.is_empty() {
        return Err(WireError::Trailing);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Msg> {
        vec![
            Msg::Lookup {
                lockspace: 1,
                epoch: 9,
                name: b"r".to_vec(),
            },
            Msg::LookupReply {
                lockspace: 1,
                epoch: 9,
                name: b"r".to_vec(),
                master: 3,
            },
            Msg::Remove {
                lockspace: 2,
                epoch: 1,
                name: vec![0; 64],
            },
            Msg::Request {
                lockspace: 1,
                local: 5,
                pid: 7,
                name: b"x".to_vec(),
                mode: Mode::Pw,
                flags: LockFlags::NOQUEUE | LockFlags::VALBLK,
                bast: true,
                lvb: Some(vec![1; 32]),
            },
            Msg::Convert {
                lockspace: 1,
                epoch: 3,
                local: 5,
                mode: Mode::Ex,
                flags: LockFlags::CONVERT,
                bast: false,
                lvb: None,
            },
            Msg::Unlock {
                lockspace: 1,
                epoch: 3,
                local: 5,
                flags: LockFlags::CANCEL,
                lvb: None,
            },
            Msg::Ast {
                lockspace: 1,
                local: 5,
                status: Status::Cancelled,
                sb_flags: 3,
                granted: None,
                lvb: Some(vec![2; 8]),
            },
            Msg::Bast {
                lockspace: 1,
                local: 5,
                mode: Mode::Cw,
            },
            Msg::Refused {
                lockspace: 1,
                local: 5,
                op: OpKind::Cancel,
                errno: -16,
            },
            Msg::NotMaster {
                lockspace: 1,
                local: 5,
            },
            Msg::RecoverNames {
                lockspace: 1,
                epoch: 4,
                names: vec![b"a".to_vec(), Vec::new()],
            },
            Msg::RecoverLocks {
                lockspace: 1,
                epoch: 4,
                locks: vec![RecoveredLock {
                    local: 1,
                    pid: 2,
                    name: b"a".to_vec(),
                    mode: Mode::Cr,
                    persistent: true,
                    bast: false,
                    lvb: None,
                    lvb_valid: true,
                }],
            },
        ]
    }

    #[test]
    fn every_message_round_trips_and_every_prefix_is_refused() {
        for msg in samples() {
            let bytes = encode(&msg);
            assert_eq!(decode(&bytes), Ok(msg.clone()));
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "{msg:?} cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(WireError::Trailing));
        }
    }

    #[test]
    fn every_single_byte_mutation_decodes_or_is_refused_and_reencodes() {
        for msg in samples() {
            let bytes = encode(&msg);
            for at in 0..bytes.len() {
                for value in [0u8, 1, 2, 7, 0x40, 0x7f, 0x80, 0xfe, 0xff] {
                    let mut mutated = bytes.clone();
                    mutated[at] = value;
                    if let Ok(decoded) = decode(&mutated) {
                        assert_eq!(decode(&encode(&decoded)), Ok(decoded));
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_fields_are_refused() {
        assert_eq!(decode(&[2, 1]), Err(WireError::Version(2)));
        assert_eq!(decode(&[1, 0, 0, 0, 0, 1]), Err(WireError::Tag(0)));
        let mut bast = encode(&Msg::Bast {
            lockspace: 1,
            local: 1,
            mode: Mode::Ex,
        });
        *bast.last_mut().unwrap() = 6;
        assert_eq!(decode(&bast), Err(WireError::Field("mode")));
        let mut lookup = encode(&Msg::Lookup {
            lockspace: 1,
            epoch: 1,
            name: Vec::new(),
        });
        // A name length beyond the 64-byte limit.
        let at = lookup.len() - 4;
        lookup[at..].copy_from_slice(&65u32.to_be_bytes());
        assert_eq!(decode(&lookup), Err(WireError::Field("name")));
    }
}
