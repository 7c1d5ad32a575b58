//! The CPG service's messages as libcpg (Corosync 3) lays them out: requests
//! decoded from a [`Request`], responses and callbacks encoded to bytes. Pure.
//!
//! A group name (`mar_cpg_name_t`) is a `u32` length at +0 and 128 bytes at +8
//! (136 bytes); a member address (`mar_cpg_address_t`) is nodeid, pid and reason,
//! each a `u32` in an 8-byte slot (24 bytes).

use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, put_u64, response};

/// Longest group name (`CPG_MAX_NAME_LENGTH`).
pub const MAX_NAME: usize = 128;
/// Most members libcpg copies out of a callback or membership reply
/// (`CPG_MEMBERS_MAX`); its arrays have no more room, so lists are cut here.
pub const MAX_MEMBERS: usize = 128;
/// Entries in the membership reply's fixed array (`PROCESSOR_COUNT_MAX`).
const MEMBERSHIP_SLOTS: usize = 384;
const NAME_LEN: usize = 136;
const ADDRESS_LEN: usize = 24;

/// Request ids (`enum req_cpg_types`).
pub mod req {
    /// `cpg_join`.
    pub const JOIN: i32 = 0;
    /// `cpg_leave`.
    pub const LEAVE: i32 = 1;
    /// `cpg_mcast_joined` (no reply).
    pub const MCAST: i32 = 2;
    /// `cpg_membership_get`.
    pub const MEMBERSHIP: i32 = 3;
    /// `cpg_local_get`.
    pub const LOCAL_GET: i32 = 4;
    /// `cpg_iteration_initialize`.
    pub const ITERATION_INITIALIZE: i32 = 5;
    /// `cpg_iteration_next`.
    pub const ITERATION_NEXT: i32 = 6;
    /// `cpg_iteration_finalize`.
    pub const ITERATION_FINALIZE: i32 = 7;
    /// `cpg_finalize`.
    pub const FINALIZE: i32 = 8;
    /// `cpg_zcb_alloc`.
    pub const ZC_ALLOC: i32 = 9;
    /// `cpg_zcb_free`.
    pub const ZC_FREE: i32 = 10;
    /// `cpg_zcb_mcast_joined`.
    pub const ZC_EXECUTE: i32 = 11;
    /// A fragment of a message larger than one IPC message.
    pub const PARTIAL_MCAST: i32 = 12;
}

/// Response and callback ids (`enum res_cpg_types`).
pub mod res {
    /// Reply to a join.
    pub const JOIN: i32 = 0;
    /// Reply to a leave.
    pub const LEAVE: i32 = 1;
    /// Reply to a membership request.
    pub const MEMBERSHIP: i32 = 3;
    /// Group configuration change callback.
    pub const CONFCHG_CALLBACK: i32 = 4;
    /// Message delivery callback.
    pub const DELIVER_CALLBACK: i32 = 5;
    /// Reply to a local_get.
    pub const LOCAL_GET: i32 = 7;
    /// Reply to an iteration_initialize.
    pub const ITERATION_INITIALIZE: i32 = 9;
    /// Reply to an iteration_next.
    pub const ITERATION_NEXT: i32 = 10;
    /// Reply to an iteration_finalize.
    pub const ITERATION_FINALIZE: i32 = 11;
    /// Reply to a finalize.
    pub const FINALIZE: i32 = 12;
    /// Totem membership callback (model V1).
    pub const TOTEM_CONFCHG_CALLBACK: i32 = 13;
    /// One fragment of a large delivery.
    pub const PARTIAL_DELIVER_CALLBACK: i32 = 17;
    /// Reply to a partial mcast.
    pub const PARTIAL_SEND: i32 = 18;
}

/// `cpg_iteration_type_t`.
pub mod iteration {
    /// Group names only.
    pub const NAME_ONLY: u32 = 1;
    /// Members of one group.
    pub const ONE_GROUP: u32 = 2;
    /// Every member of every group.
    pub const ALL: u32 = 3;
}

/// `LIBCPG_PARTIAL_*` fragment kinds.
pub mod partial {
    /// First fragment.
    pub const FIRST: u32 = 1;
    /// A middle fragment.
    pub const CONTINUED: u32 = 2;
    /// Last fragment.
    pub const LAST: u32 = 3;
}

/// A decoded libcpg request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpgCall<'a> {
    /// Join `group` as process `pid`; `flags` are the model V1 flags.
    Join {
        /// The group.
        group: Vec<u8>,
        /// The client's pid.
        pid: u32,
        /// `CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF` and friends.
        flags: u32,
    },
    /// Leave `group`.
    Leave {
        /// The group.
        group: Vec<u8>,
    },
    /// Multicast `data` to the joined group.
    Mcast {
        /// `cpg_guarantee_t`.
        guarantee: u32,
        /// The payload.
        data: &'a [u8],
    },
    /// A fragment of a message larger than libcpg's IPC limit.
    PartialMcast {
        /// `cpg_guarantee_t`.
        guarantee: u32,
        /// The whole message's length.
        msglen: u32,
        /// [`partial`] `FIRST`, `CONTINUED` or `LAST`.
        kind: u32,
        /// This fragment.
        data: &'a [u8],
    },
    /// Members of `group`.
    Membership {
        /// The group.
        group: Vec<u8>,
    },
    /// This node's id.
    LocalGet,
    /// Start a cluster-wide listing.
    IterationInitialize {
        /// [`iteration`] kind.
        kind: u32,
        /// The group (for `ONE_GROUP`; empty otherwise, whatever the bytes).
        group: Vec<u8>,
    },
    /// Next entry of a listing.
    IterationNext {
        /// The listing's handle.
        handle: u64,
    },
    /// End a listing.
    IterationFinalize {
        /// The listing's handle.
        handle: u64,
    },
    /// The client is closing the connection.
    Finalize,
    /// Zero-copy buffers (not offered).
    ZeroCopy(i32),
}

fn name_at(r: &Request<'_>, offset: usize) -> Result<Vec<u8>, IpcError> {
    let len = r.u32_at(offset)? as usize;
    if len > MAX_NAME {
        return Err(IpcError::BadField("group name longer than 128 bytes"));
    }
    Ok(r.slice(offset + 8, len)?.to_vec())
}

impl<'a> CpgCall<'a> {
    /// Decodes a request of the cpg service.
    pub fn decode(r: &Request<'a>) -> Result<CpgCall<'a>, IpcError> {
        Ok(match r.id {
            req::JOIN => {
                r.require(168)?;
                CpgCall::Join {
                    group: name_at(r, 16)?,
                    pid: r.u32_at(152)?,
                    flags: r.u32_at(160)?,
                }
            }
            req::LEAVE => {
                r.require(160)?;
                CpgCall::Leave {
                    group: name_at(r, 16)?,
                }
            }
            req::MCAST => {
                r.require(40)?;
                let msglen = r.u32_at(32)? as usize;
                if msglen != r.bytes.len() - 40 {
                    return Err(IpcError::BadField("mcast msglen disagrees with size"));
                }
                CpgCall::Mcast {
                    guarantee: r.u32_at(24)?,
                    data: &r.bytes[40..],
                }
            }
            req::PARTIAL_MCAST => {
                // A response-sized header (24 bytes), then guarantee, msglen,
                // fraglen and type at 8-byte steps, the fragment at +56.
                r.require(56)?;
                let fraglen = r.u32_at(40)? as usize;
                if fraglen != r.bytes.len() - 56 {
                    return Err(IpcError::BadField(
                        "partial mcast fraglen disagrees with size",
                    ));
                }
                CpgCall::PartialMcast {
                    guarantee: r.u32_at(24)?,
                    msglen: r.u32_at(32)?,
                    kind: r.u32_at(48)?,
                    data: &r.bytes[56..],
                }
            }
            req::MEMBERSHIP => {
                r.require(152)?;
                CpgCall::Membership {
                    group: name_at(r, 16)?,
                }
            }
            req::LOCAL_GET => CpgCall::LocalGet,
            req::ITERATION_INITIALIZE => {
                r.require(160)?;
                let kind = r.u32_at(152)?;
                // libcpg leaves the name uninitialised unless one group is asked for.
                let group = if kind == iteration::ONE_GROUP {
                    name_at(r, 16)?
                } else {
                    Vec::new()
                };
                CpgCall::IterationInitialize { kind, group }
            }
            req::ITERATION_NEXT => CpgCall::IterationNext {
                handle: r.u64_at(16)?,
            },
            req::ITERATION_FINALIZE => CpgCall::IterationFinalize {
                handle: r.u64_at(16)?,
            },
            req::FINALIZE => CpgCall::Finalize,
            id @ (req::ZC_ALLOC | req::ZC_FREE | req::ZC_EXECUTE) => CpgCall::ZeroCopy(id),
            id => return Err(IpcError::UnknownRequest(id)),
        })
    }
}

/// A member address on the wire: node id, pid, reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// Node id.
    pub nodeid: u32,
    /// Process id (Phalanx: the member's local id).
    pub pid: u32,
    /// `cpg_reason_t` (0 in member lists).
    pub reason: u32,
}

fn put_name(out: &mut [u8], offset: usize, name: &[u8]) {
    let n = name.len().min(MAX_NAME);
    put_u32(out, offset, n as u32);
    out[offset + 8..offset + 8 + n].copy_from_slice(&name[..n]);
}

fn put_address(out: &mut [u8], offset: usize, a: &Address) {
    put_u32(out, offset, a.nodeid);
    put_u32(out, offset + 8, a.pid);
    put_u32(out, offset + 16, a.reason);
}

/// A reply that is only a header.
pub fn header_only(id: i32, error: i32) -> Vec<u8> {
    response(id, error, RESPONSE_HEADER_LEN)
}

/// Reply to `cpg_local_get`.
pub fn local_get(nodeid: u32) -> Vec<u8> {
    let mut out = response(res::LOCAL_GET, super::cs::OK, 32);
    put_u32(&mut out, 24, nodeid);
    out
}

/// Reply to `cpg_membership_get` (its fixed size; at most [`MAX_MEMBERS`]).
pub fn membership(error: i32, members: &[Address]) -> Vec<u8> {
    let mut out = response(res::MEMBERSHIP, error, 32 + MEMBERSHIP_SLOTS * ADDRESS_LEN);
    let n = members.len().min(MAX_MEMBERS);
    put_u32(&mut out, 24, n as u32);
    for (i, m) in members[..n].iter().enumerate() {
        put_address(&mut out, 32 + i * ADDRESS_LEN, m);
    }
    out
}

/// Reply to `cpg_iteration_initialize`.
pub fn iteration_initialize(error: i32, handle: u64) -> Vec<u8> {
    let mut out = response(res::ITERATION_INITIALIZE, error, 32);
    put_u64(&mut out, 24, handle);
    out
}

/// Reply to `cpg_iteration_next`: one (group, nodeid, pid), or an error
/// (`CS_ERR_NO_SECTIONS` at the end).
pub fn iteration_next(error: i32, entry: Option<(&[u8], u32, u32)>) -> Vec<u8> {
    let mut out = response(res::ITERATION_NEXT, error, 168);
    if let Some((group, nodeid, pid)) = entry {
        put_name(&mut out, 24, group);
        put_u32(&mut out, 24 + NAME_LEN, nodeid);
        put_u32(&mut out, 24 + NAME_LEN + 4, pid);
    }
    out
}

/// The configuration change callback (lists cut at [`MAX_MEMBERS`]).
pub fn confchg(group: &[u8], members: &[Address], left: &[Address], joined: &[Address]) -> Vec<u8> {
    let (m, l, j) = (
        &members[..members.len().min(MAX_MEMBERS)],
        &left[..left.len().min(MAX_MEMBERS)],
        &joined[..joined.len().min(MAX_MEMBERS)],
    );
    let total = 184 + ADDRESS_LEN * (m.len() + l.len() + j.len());
    let mut out = response(res::CONFCHG_CALLBACK, super::cs::OK, total);
    put_name(&mut out, 24, group);
    put_u32(&mut out, 160, m.len() as u32);
    put_u32(&mut out, 168, j.len() as u32);
    put_u32(&mut out, 176, l.len() as u32);
    // Array order is members, left, joined (not the order of the counts).
    for (i, a) in m.iter().chain(l).chain(j).enumerate() {
        put_address(&mut out, 184 + i * ADDRESS_LEN, a);
    }
    out
}

/// The delivery callback.
pub fn deliver(group: &[u8], nodeid: u32, pid: u32, data: &[u8]) -> Vec<u8> {
    let mut out = response(res::DELIVER_CALLBACK, super::cs::OK, 184 + data.len());
    put_name(&mut out, 24, group);
    put_u32(&mut out, 160, data.len() as u32);
    put_u32(&mut out, 168, nodeid);
    put_u32(&mut out, 176, pid);
    out[184..].copy_from_slice(data);
    out
}

/// A delivery as partial-delivery fragments of at most `fragment` payload
/// bytes each (libcpg reassembles them per sender).
pub fn partial_deliver(
    group: &[u8],
    nodeid: u32,
    pid: u32,
    data: &[u8],
    fragment: usize,
) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = data.chunks(fragment.max(1)).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut out = response(res::PARTIAL_DELIVER_CALLBACK, super::cs::OK, 200 + c.len());
            put_name(&mut out, 24, group);
            put_u32(&mut out, 160, data.len() as u32);
            put_u32(&mut out, 168, c.len() as u32);
            put_u32(&mut out, 176, nodeid);
            put_u32(&mut out, 184, pid);
            let kind = match i {
                0 => partial::FIRST,
                i if i == last => partial::LAST,
                _ => partial::CONTINUED,
            };
            put_u32(&mut out, 192, kind);
            out[200..].copy_from_slice(c);
            out
        })
        .collect()
}

/// The totem membership callback (model V1).
pub fn totem_confchg(rep: u32, seq: u64, members: &[u32]) -> Vec<u8> {
    let m = &members[..members.len().min(MAX_MEMBERS)];
    let mut out = response(res::TOTEM_CONFCHG_CALLBACK, super::cs::OK, 48 + 4 * m.len());
    put_u32(&mut out, 24, rep);
    put_u64(&mut out, 32, seq);
    put_u32(&mut out, 40, m.len() as u32);
    for (i, n) in m.iter().enumerate() {
        put_u32(&mut out, 44 + 4 * i, *n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode_request;
    use super::*;

    fn request(id: i32, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        put_u32(&mut b, 0, id as u32);
        put_u32(&mut b, 8, len as u32);
        b
    }

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn join_decodes_name_pid_flags() {
        let mut b = request(req::JOIN, 168);
        put_name(&mut b, 16, b"grp");
        put_u32(&mut b, 152, 4242);
        put_u32(&mut b, 160, 1);
        let r = decode_request(&b).unwrap();
        assert_eq!(
            CpgCall::decode(&r),
            Ok(CpgCall::Join {
                group: b"grp".to_vec(),
                pid: 4242,
                flags: 1
            })
        );
    }

    #[test]
    fn short_or_overlong_names_are_errors() {
        let b = request(req::JOIN, 100);
        let r = decode_request(&b).unwrap();
        assert!(matches!(
            CpgCall::decode(&r),
            Err(IpcError::Truncated { .. })
        ));
        let mut b = request(req::LEAVE, 160);
        put_u32(&mut b, 16, 129);
        let r = decode_request(&b).unwrap();
        assert!(matches!(CpgCall::decode(&r), Err(IpcError::BadField(_))));
    }

    #[test]
    fn mcast_length_must_match() {
        let mut b = request(req::MCAST, 45);
        put_u32(&mut b, 24, 2);
        put_u32(&mut b, 32, 5);
        b[40..].copy_from_slice(b"hello");
        let r = decode_request(&b).unwrap();
        assert_eq!(
            CpgCall::decode(&r),
            Ok(CpgCall::Mcast {
                guarantee: 2,
                data: b"hello"
            })
        );
        put_u32(&mut b, 32, 6);
        let r = decode_request(&b).unwrap();
        assert!(CpgCall::decode(&r).is_err());
    }

    #[test]
    fn iteration_ignores_the_name_unless_one_group() {
        let mut b = request(req::ITERATION_INITIALIZE, 160);
        put_u32(&mut b, 16, 0xdead_beef); // garbage, as libcpg sends it
        put_u32(&mut b, 152, iteration::NAME_ONLY);
        let r = decode_request(&b).unwrap();
        assert_eq!(
            CpgCall::decode(&r),
            Ok(CpgCall::IterationInitialize {
                kind: iteration::NAME_ONLY,
                group: Vec::new()
            })
        );
        put_u32(&mut b, 152, iteration::ONE_GROUP);
        let r = decode_request(&b).unwrap();
        assert!(CpgCall::decode(&r).is_err());
    }

    #[test]
    fn unknown_ids_are_refused() {
        let b = request(99, 16);
        let r = decode_request(&b).unwrap();
        assert_eq!(CpgCall::decode(&r), Err(IpcError::UnknownRequest(99)));
    }

    #[test]
    fn confchg_orders_members_left_joined() {
        let a = |n, p, r| Address {
            nodeid: n,
            pid: p,
            reason: r,
        };
        let b = confchg(b"g", &[a(1, 10, 0)], &[a(2, 20, 2)], &[a(3, 30, 1)]);
        assert_eq!(b.len(), 184 + 3 * 24);
        assert_eq!(u32_at(&b, 8) as usize, b.len());
        assert_eq!(
            (u32_at(&b, 160), u32_at(&b, 168), u32_at(&b, 176)),
            (1, 1, 1)
        );
        assert_eq!(u32_at(&b, 184 + 24), 2); // left first
        assert_eq!(u32_at(&b, 184 + 48 + 8), 30); // then joined
        assert_eq!(u32_at(&b, 184 + 48 + 16), 1);
    }

    #[test]
    fn lists_are_cut_at_libcpg_array_size() {
        let many: Vec<Address> = (0..200)
            .map(|i| Address {
                nodeid: i,
                pid: i,
                reason: 0,
            })
            .collect();
        let b = confchg(b"g", &many, &[], &[]);
        assert_eq!(u32_at(&b, 160), MAX_MEMBERS as u32);
        let m = membership(1, &many);
        assert_eq!(m.len(), 9248);
        assert_eq!(u32_at(&m, 24), MAX_MEMBERS as u32);
    }

    #[test]
    fn partial_delivery_fragments_cover_the_message() {
        let data: Vec<u8> = (0..250u8).collect();
        let f = partial_deliver(b"g", 1, 2, &data, 100);
        assert_eq!(f.len(), 3);
        let kinds: Vec<u32> = f.iter().map(|b| u32_at(b, 192)).collect();
        assert_eq!(kinds, [partial::FIRST, partial::CONTINUED, partial::LAST]);
        let joined: Vec<u8> = f.iter().flat_map(|b| b[200..].to_vec()).collect();
        assert_eq!(joined, data);
        assert!(f.iter().all(|b| u32_at(b, 160) == 250));
    }

    #[test]
    fn deliver_layout() {
        let b = deliver(b"grp", 3, 77, b"xyz");
        assert_eq!(b.len(), 187);
        assert_eq!(u32_at(&b, 0) as i32, res::DELIVER_CALLBACK);
        assert_eq!((u32_at(&b, 24), &b[32..35]), (3, &b"grp"[..]));
        assert_eq!(
            (u32_at(&b, 160), u32_at(&b, 168), u32_at(&b, 176)),
            (3, 3, 77)
        );
        assert_eq!(&b[184..], b"xyz");
    }
}
