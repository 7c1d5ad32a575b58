//! The quorum and votequorum services' messages as libquorum / libvotequorum
//! (Corosync 3) lay them out. Pure.

use super::cs;
use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, put_u64, response};

/// `CS_TRACK_CURRENT`: send the current state at once.
pub const TRACK_CURRENT: u32 = 0x01;
/// `CS_TRACK_CHANGES`: send every change from now on.
pub const TRACK_CHANGES: u32 = 0x02;
/// `CS_TRACK_CHANGES_ONLY`: changes, without the current state.
pub const TRACK_CHANGES_ONLY: u32 = 0x04;
/// `QUORUM_SET`: a quorum provider is configured.
pub const QUORUM_SET: u32 = 1;
/// `QUORUM_FREE`: no quorum provider.
pub const QUORUM_FREE: u32 = 0;

/// Most node entries a notification carries (`PROCESSOR_COUNT_MAX`).
pub const MAX_NODES: usize = 384;

/// libquorum request ids (`enum req_quorum_types`).
pub mod req {
    /// `quorum_getquorate`.
    pub const GETQUORATE: i32 = 0;
    /// `quorum_trackstart`.
    pub const TRACKSTART: i32 = 1;
    /// `quorum_trackstop`.
    pub const TRACKSTOP: i32 = 2;
    /// `quorum_initialize` (model V0).
    pub const GETTYPE: i32 = 3;
    /// `quorum_model_initialize` (model V1).
    pub const MODEL_GETTYPE: i32 = 4;
}

/// libquorum response ids (`enum res_quorum_types`).
pub mod res {
    /// Reply to getquorate.
    pub const GETQUORATE: i32 = 0;
    /// Reply to trackstart.
    pub const TRACKSTART: i32 = 1;
    /// Reply to trackstop.
    pub const TRACKSTOP: i32 = 2;
    /// Model V0 notification.
    pub const NOTIFICATION: i32 = 3;
    /// Reply to gettype.
    pub const GETTYPE: i32 = 4;
    /// Reply to model_gettype.
    pub const MODEL_GETTYPE: i32 = 5;
    /// Model V1 quorum notification.
    pub const V1_QUORUM_NOTIFICATION: i32 = 6;
    /// Model V1 node list notification.
    pub const V1_NODELIST_NOTIFICATION: i32 = 7;
}

/// A decoded libquorum request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumCall {
    /// Is the partition quorate?
    GetQuorate,
    /// Start notifications.
    TrackStart {
        /// `CS_TRACK_*` flags.
        flags: u32,
    },
    /// Stop notifications.
    TrackStop,
    /// Initialize, model V0.
    GetType,
    /// Initialize, model V0 or V1.
    ModelGetType {
        /// `QUORUM_MODEL_V0` (0) or `QUORUM_MODEL_V1` (1).
        model: u32,
    },
}

impl QuorumCall {
    /// Decodes a request of the quorum service.
    pub fn decode(r: &Request<'_>) -> Result<QuorumCall, IpcError> {
        Ok(match r.id {
            req::GETQUORATE => QuorumCall::GetQuorate,
            req::TRACKSTART => QuorumCall::TrackStart {
                flags: r.u32_at(16)?,
            },
            req::TRACKSTOP => QuorumCall::TrackStop,
            req::GETTYPE => QuorumCall::GetType,
            req::MODEL_GETTYPE => QuorumCall::ModelGetType {
                model: r.u32_at(16)?,
            },
            id => return Err(IpcError::UnknownRequest(id)),
        })
    }
}

/// Reply to getquorate.
pub fn getquorate(quorate: bool) -> Vec<u8> {
    let mut out = response(res::GETQUORATE, cs::OK, 32);
    put_u32(&mut out, 24, quorate as u32);
    out
}

/// Reply to gettype (`model_gettype` too, with its own id).
pub fn gettype(id: i32, quorum_type: u32) -> Vec<u8> {
    let mut out = response(id, cs::OK, 32);
    put_u32(&mut out, 24, quorum_type);
    out
}

/// A reply that is only a header.
pub fn header_only(id: i32, error: i32) -> Vec<u8> {
    response(id, error, RESPONSE_HEADER_LEN)
}

/// Model V0 notification: quorate, ring sequence, member node ids.
pub fn notification_v0(quorate: bool, seq: u64, members: &[u32]) -> Vec<u8> {
    let m = &members[..members.len().min(MAX_NODES)];
    let mut out = response(res::NOTIFICATION, cs::OK, 48 + 4 * m.len());
    put_u32(&mut out, 24, quorate as u32);
    put_u64(&mut out, 32, seq);
    put_u32(&mut out, 40, m.len() as u32);
    for (i, n) in m.iter().enumerate() {
        put_u32(&mut out, 44 + 4 * i, *n);
    }
    out
}

/// Model V1 quorum notification: quorate, ring id, member node ids.
pub fn notification_v1(quorate: bool, rep: u32, seq: u64, members: &[u32]) -> Vec<u8> {
    let m = &members[..members.len().min(MAX_NODES)];
    let mut out = response(res::V1_QUORUM_NOTIFICATION, cs::OK, 56 + 4 * m.len());
    put_u32(&mut out, 24, quorate as u32);
    put_u32(&mut out, 32, rep);
    put_u64(&mut out, 40, seq);
    put_u32(&mut out, 48, m.len() as u32);
    for (i, n) in m.iter().enumerate() {
        put_u32(&mut out, 52 + 4 * i, *n);
    }
    out
}

/// Model V1 node list notification: ring id, then members, joined and left
/// node ids in one array at +60 (after the three counts).
pub fn nodelist_v1(rep: u32, seq: u64, members: &[u32], joined: &[u32], left: &[u32]) -> Vec<u8> {
    let cut = |l: &[u32]| l[..l.len().min(MAX_NODES)].to_vec();
    let (m, j, l) = (cut(members), cut(joined), cut(left));
    let n = m.len() + j.len() + l.len();
    let mut out = response(res::V1_NODELIST_NOTIFICATION, cs::OK, 64 + 4 * n);
    put_u32(&mut out, 24, rep);
    put_u64(&mut out, 32, seq);
    put_u32(&mut out, 40, m.len() as u32);
    put_u32(&mut out, 48, j.len() as u32);
    put_u32(&mut out, 56, l.len() as u32);
    for (i, id) in m.iter().chain(&j).chain(&l).enumerate() {
        put_u32(&mut out, 60 + 4 * i, *id);
    }
    out
}

/// libvotequorum request ids (`enum req_votequorum_types`).
pub mod vq_req {
    /// `votequorum_getinfo`.
    pub const GETINFO: i32 = 0;
    /// `votequorum_setexpected`.
    pub const SETEXPECTED: i32 = 1;
    /// `votequorum_setvotes`.
    pub const SETVOTES: i32 = 2;
    /// `votequorum_trackstart`.
    pub const TRACKSTART: i32 = 3;
    /// `votequorum_trackstop`.
    pub const TRACKSTOP: i32 = 4;
    /// `votequorum_qdevice_register`.
    pub const QDEVICE_REGISTER: i32 = 5;
    /// `votequorum_qdevice_unregister`.
    pub const QDEVICE_UNREGISTER: i32 = 6;
    /// `votequorum_qdevice_update`.
    pub const QDEVICE_UPDATE: i32 = 7;
    /// `votequorum_qdevice_poll`.
    pub const QDEVICE_POLL: i32 = 8;
    /// `votequorum_qdevice_master_wins`.
    pub const QDEVICE_MASTER_WINS: i32 = 9;
}

/// Room for a quorum device's name in requests and getinfo
/// (`VOTEQUORUM_QDEVICE_MAX_NAME_LEN`, the terminating NUL included).
pub const QDEVICE_NAME_FIELD: usize = 255;

/// libvotequorum response ids (`enum res_votequorum_types`).
pub mod vq_res {
    /// A plain status reply.
    pub const STATUS: i32 = 0;
    /// Reply to getinfo.
    pub const GETINFO: i32 = 1;
    /// Reply to trackstart.
    pub const TRACKSTART: i32 = 2;
    /// Quorum notification.
    pub const QUORUM_NOTIFICATION: i32 = 3;
    /// Node list notification.
    pub const NODELIST_NOTIFICATION: i32 = 5;
}

/// `votequorum_info` flags.
pub mod vq_flags {
    /// `two_node`.
    pub const TWONODE: u32 = 1;
    /// Quorate.
    pub const QUORATE: u32 = 2;
    /// `wait_for_all`.
    pub const WAIT_FOR_ALL: u32 = 4;
    /// `last_man_standing`.
    pub const LAST_MAN_STANDING: u32 = 8;
    /// `auto_tie_breaker`.
    pub const AUTO_TIE_BREAKER: u32 = 16;
    /// `allow_downscale`.
    pub const ALLOW_DOWNSCALE: u32 = 32;
    /// A quorum device is registered on the node.
    pub const QDEVICE_REGISTERED: u32 = 64;
    /// The device polled within its timeout.
    pub const QDEVICE_ALIVE: u32 = 128;
    /// The device casts its vote.
    pub const QDEVICE_CAST_VOTE: u32 = 256;
    /// The device asked for master-wins.
    pub const QDEVICE_MASTER_WINS: u32 = 512;
}

/// A decoded quorum-device request (libvotequorum's `votequorum_qdevice_*`).
/// Names are the bytes before the NUL of their 255-byte field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QdeviceCall {
    /// Register the node's device under `name`.
    Register {
        /// The device's name.
        name: Vec<u8>,
    },
    /// Unregister the device `name`.
    Unregister {
        /// The device's name.
        name: Vec<u8>,
    },
    /// Rename the device.
    Update {
        /// Its current name.
        old: Vec<u8>,
        /// Its new name.
        new: Vec<u8>,
    },
    /// The device is alive and casts (or not) its vote for the ring `rep.seq`.
    Poll {
        /// The device's name.
        name: Vec<u8>,
        /// Whether it casts its vote.
        cast: bool,
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence.
        seq: u64,
    },
    /// Allow (or stop) master-wins.
    MasterWins {
        /// The device's name.
        name: Vec<u8>,
        /// Allow.
        allow: bool,
    },
}

/// The device name in the 255-byte field at `offset`: up to its NUL, which
/// must be there (libvotequorum sends at most 254 characters); an empty name
/// is refused too.
fn qdevice_name(r: &Request<'_>, offset: usize) -> Result<Vec<u8>, IpcError> {
    let field = r.slice(offset, QDEVICE_NAME_FIELD)?;
    match field.iter().position(|&b| b == 0) {
        Some(0) => Err(IpcError::BadField("empty quorum device name")),
        Some(n) => Ok(field[..n].to_vec()),
        None => Err(IpcError::BadField("quorum device name without its NUL")),
    }
}

impl QdeviceCall {
    /// Decodes request `id` (one of [`vq_req`]'s QDEVICE ids), laid out as
    /// `ipc_votequorum.h` does: the name at +16; the new name of an update at
    /// +271; a poll's `cast_vote` at +272 and ring id (node id, then the
    /// sequence at +288) at +280; master-wins' `allow` at +272.
    fn decode(r: &Request<'_>) -> Result<QdeviceCall, IpcError> {
        let name = || qdevice_name(r, 16);
        Ok(match r.id {
            vq_req::QDEVICE_REGISTER => QdeviceCall::Register { name: name()? },
            vq_req::QDEVICE_UNREGISTER => QdeviceCall::Unregister { name: name()? },
            vq_req::QDEVICE_UPDATE => QdeviceCall::Update {
                old: name()?,
                new: qdevice_name(r, 16 + QDEVICE_NAME_FIELD)?,
            },
            vq_req::QDEVICE_POLL => QdeviceCall::Poll {
                name: name()?,
                cast: r.u32_at(272)? != 0,
                rep: r.u32_at(280)?,
                seq: r.u64_at(288)?,
            },
            vq_req::QDEVICE_MASTER_WINS => QdeviceCall::MasterWins {
                name: name()?,
                allow: r.u32_at(272)? != 0,
            },
            id => return Err(IpcError::UnknownRequest(id)),
        })
    }
}

/// A decoded libvotequorum request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VotequorumCall {
    /// Information about `nodeid` (0: this node).
    GetInfo {
        /// The node.
        nodeid: u32,
    },
    /// Set expected votes.
    SetExpected {
        /// The new value.
        votes: u32,
    },
    /// Set a node's votes.
    SetVotes {
        /// The node (0: this node).
        nodeid: u32,
        /// Its votes.
        votes: u32,
    },
    /// Start notifications.
    TrackStart {
        /// Echoed in every notification.
        context: u64,
        /// `CS_TRACK_*`.
        flags: u32,
    },
    /// Stop notifications.
    TrackStop,
    /// A quorum-device call.
    Qdevice(QdeviceCall),
}

impl VotequorumCall {
    /// Decodes a request of the votequorum service.
    pub fn decode(r: &Request<'_>) -> Result<VotequorumCall, IpcError> {
        Ok(match r.id {
            vq_req::GETINFO => VotequorumCall::GetInfo {
                nodeid: r.u32_at(16)?,
            },
            vq_req::SETEXPECTED => VotequorumCall::SetExpected {
                votes: r.u32_at(16)?,
            },
            vq_req::SETVOTES => VotequorumCall::SetVotes {
                votes: r.u32_at(16)?,
                nodeid: r.u32_at(20)?,
            },
            vq_req::TRACKSTART => VotequorumCall::TrackStart {
                context: r.u64_at(16)?,
                flags: r.u32_at(24)?,
            },
            vq_req::TRACKSTOP => VotequorumCall::TrackStop,
            vq_req::QDEVICE_REGISTER..=vq_req::QDEVICE_MASTER_WINS => {
                VotequorumCall::Qdevice(QdeviceCall::decode(r)?)
            }
            id => return Err(IpcError::UnknownRequest(id)),
        })
    }
}

/// What getinfo reports about one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VqInfo {
    /// The node.
    pub nodeid: u32,
    /// `VOTEQUORUM_NODESTATE_*`: member 1, dead 2, leaving 3.
    pub state: u32,
    /// Its votes.
    pub votes: u32,
    /// Its expected votes.
    pub expected_votes: u32,
    /// Highest expected votes in the partition.
    pub highest_expected: u32,
    /// Votes present.
    pub total_votes: u32,
    /// Votes needed.
    pub quorum: u32,
    /// [`vq_flags`].
    pub flags: u32,
    /// Votes the quorum device carries (0 without one).
    pub qdevice_votes: u32,
    /// The registered device's name (empty when none).
    pub qdevice_name: Vec<u8>,
}

/// Reply to getinfo (320 bytes): the fields, then the device's votes and its
/// name (NUL-terminated, at +60).
pub fn vq_getinfo(error: i32, i: &VqInfo) -> Vec<u8> {
    let mut out = response(vq_res::GETINFO, error, 320);
    let fields = [
        i.nodeid,
        i.state,
        i.votes,
        i.expected_votes,
        i.highest_expected,
        i.total_votes,
        i.quorum,
        i.flags,
        i.qdevice_votes,
    ];
    for (k, v) in fields.iter().enumerate() {
        put_u32(&mut out, 24 + 4 * k, *v);
    }
    let name = &i.qdevice_name[..i.qdevice_name.len().min(QDEVICE_NAME_FIELD - 1)];
    out[60..60 + name.len()].copy_from_slice(name);
    out
}

/// Votequorum quorum notification: quorate, context, (nodeid, state) pairs.
pub fn vq_quorum_notification(quorate: bool, context: u64, nodes: &[(u32, u32)]) -> Vec<u8> {
    let n = &nodes[..nodes.len().min(MAX_NODES)];
    let mut out = response(vq_res::QUORUM_NOTIFICATION, cs::OK, 48 + 8 * n.len());
    put_u32(&mut out, 24, quorate as u32);
    put_u64(&mut out, 32, context);
    put_u32(&mut out, 40, n.len() as u32);
    for (i, (id, state)) in n.iter().enumerate() {
        put_u32(&mut out, 48 + 8 * i, *id);
        put_u32(&mut out, 52 + 8 * i, *state);
    }
    out
}

/// Votequorum node list notification: context, ring id, member node ids.
pub fn vq_nodelist_notification(context: u64, rep: u32, seq: u64, members: &[u32]) -> Vec<u8> {
    let m = &members[..members.len().min(MAX_NODES)];
    let mut out = response(vq_res::NODELIST_NOTIFICATION, cs::OK, 56 + 4 * m.len());
    put_u64(&mut out, 24, context);
    put_u32(&mut out, 32, rep);
    put_u64(&mut out, 40, seq);
    put_u32(&mut out, 48, m.len() as u32);
    for (i, id) in m.iter().enumerate() {
        put_u32(&mut out, 56 + 4 * i, *id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode_request;
    use super::*;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn trackstart_needs_its_flags() {
        let mut b = vec![0u8; 24];
        put_u32(&mut b, 0, req::TRACKSTART as u32);
        put_u32(&mut b, 8, 24);
        put_u32(&mut b, 16, TRACK_CHANGES);
        let r = decode_request(&b).unwrap();
        assert_eq!(
            QuorumCall::decode(&r),
            Ok(QuorumCall::TrackStart {
                flags: TRACK_CHANGES
            })
        );
        let short = &mut b[..16].to_vec();
        put_u32(short, 8, 16);
        let r = decode_request(short).unwrap();
        assert!(QuorumCall::decode(&r).is_err());
    }

    #[test]
    fn votequorum_trackstart_context_and_flags() {
        let mut b = vec![0u8; 32];
        put_u32(&mut b, 0, vq_req::TRACKSTART as u32);
        put_u32(&mut b, 8, 32);
        put_u64(&mut b, 16, 0xdead_beef_0000_0001);
        put_u32(&mut b, 24, TRACK_CURRENT);
        let r = decode_request(&b).unwrap();
        assert_eq!(
            VotequorumCall::decode(&r),
            Ok(VotequorumCall::TrackStart {
                context: 0xdead_beef_0000_0001,
                flags: TRACK_CURRENT
            })
        );
    }

    #[test]
    fn qdevice_requests_as_libvotequorum_lays_them_out() {
        // votequorum_qdevice_poll: 296 bytes, name at +16, cast_vote at +272,
        // ring id at +280 (node id) and +288 (sequence).
        let mut b = vec![0u8; 296];
        put_u32(&mut b, 0, vq_req::QDEVICE_POLL as u32);
        put_u32(&mut b, 8, 296);
        b[16..19].copy_from_slice(b"dev");
        put_u32(&mut b, 272, 1);
        put_u32(&mut b, 280, 3);
        put_u64(&mut b, 288, 44);
        let r = decode_request(&b).unwrap();
        assert_eq!(
            VotequorumCall::decode(&r),
            Ok(VotequorumCall::Qdevice(QdeviceCall::Poll {
                name: b"dev".to_vec(),
                cast: true,
                rep: 3,
                seq: 44
            }))
        );
        // votequorum_qdevice_update: the new name at +271.
        let mut b = vec![0u8; 528];
        put_u32(&mut b, 0, vq_req::QDEVICE_UPDATE as u32);
        put_u32(&mut b, 8, 528);
        b[16..17].copy_from_slice(b"a");
        b[271..273].copy_from_slice(b"bc");
        let r = decode_request(&b).unwrap();
        assert_eq!(
            VotequorumCall::decode(&r),
            Ok(VotequorumCall::Qdevice(QdeviceCall::Update {
                old: b"a".to_vec(),
                new: b"bc".to_vec()
            }))
        );
        // A name filling its field without a NUL, an empty name, a short
        // request: refused.
        let mut b = vec![0u8; 272];
        put_u32(&mut b, 0, vq_req::QDEVICE_REGISTER as u32);
        put_u32(&mut b, 8, 272);
        let r = decode_request(&b).unwrap();
        assert!(VotequorumCall::decode(&r).is_err());
        b[16..271].fill(b'x');
        let r = decode_request(&b).unwrap();
        assert!(VotequorumCall::decode(&r).is_err());
        let mut b = vec![0u8; 200];
        put_u32(&mut b, 0, vq_req::QDEVICE_MASTER_WINS as u32);
        put_u32(&mut b, 8, 200);
        b[16] = b'd';
        let r = decode_request(&b).unwrap();
        assert!(VotequorumCall::decode(&r).is_err());
    }

    #[test]
    fn v1_nodelist_layout() {
        let b = nodelist_v1(1, 9, &[1, 2, 3], &[3], &[4]);
        assert_eq!(b.len(), 64 + 20);
        assert_eq!((u32_at(&b, 40), u32_at(&b, 48), u32_at(&b, 56)), (3, 1, 1));
        assert_eq!((u32_at(&b, 60), u32_at(&b, 72), u32_at(&b, 76)), (1, 3, 4));
    }

    #[test]
    fn notification_layouts() {
        let b = notification_v0(true, 9, &[1, 2]);
        assert_eq!(b.len(), 56);
        assert_eq!((u32_at(&b, 24), u32_at(&b, 40), u32_at(&b, 48)), (1, 2, 2));
        let b = vq_nodelist_notification(5, 1, 7, &[1, 2, 3]);
        assert_eq!((u32_at(&b, 32), u32_at(&b, 48), u32_at(&b, 64)), (1, 3, 3));
        let b = vq_getinfo(
            cs::OK,
            &VqInfo {
                nodeid: 2,
                quorum: 2,
                flags: vq_flags::QUORATE,
                ..VqInfo::default()
            },
        );
        assert_eq!(b.len(), 320);
        assert_eq!((u32_at(&b, 24), u32_at(&b, 48), u32_at(&b, 52)), (2, 2, 2));
    }
}
