//! A read-only cmap: the keys the Corosync tools read (`quorum.provider`,
//! `totem.cluster_name`, `totem.transport`, `nodelist.node.<n>.{nodeid,name,ring0_addr}`,
//! `runtime.votequorum.this_node_id`, and the runtime keys of
//! [`cmap_runtime`](super::cmap_runtime)), answering `cmap_get`, the
//! `cmap_iter_*` calls and key tracking ([`cmap_track`](super::cmap_track)). The one writable part is `uidgid.*`: Pacemaker's
//! `pacemakerd` sets `uidgid.gid.<haclient gid> = 1` (u8) so that its daemons,
//! which drop root's group, may connect, and Corosync's IPC admits a client whose
//! `uidgid.uid.<uid>` or `uidgid.gid.<gid>` is 1 ([`CmapSession::admits`]). Other writes are
//! refused with `CS_ERR_ACCESS`; the stats map is not offered.
//! Decoding and encoding are pure.
//!
//! Layouts: a key (`mar_name_t`) is a `u16` length at +0 and 256 bytes at +8
//! (264 bytes). `req_lib_cmap_get`: key @16, value_len u64 @280 (288 bytes);
//! `res_lib_cmap_get`: value_len u64 @24, type u8 @32, value @40, sized
//! 40 + the *requested* value_len (the client's buffer is exactly that).

use super::cmap_track::{CmapChange, Tracks};
use super::cs;
use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, put_u64, response};
use crate::config::{ClusterConfig, NodeAddr};
use std::collections::{BTreeMap, VecDeque};

const KEY_MAX: usize = 256;
/// The only keys clients may write (and delete).
const WRITABLE_PREFIX: &str = "uidgid.";
/// Keys written by clients, at most (the map stays bounded).
const MAX_WRITTEN: usize = 1024;
/// A written value's largest size.
const MAX_VALUE: usize = 4096;
/// `req_lib_cmap_set`: value length @280, type @288, value @296.
const SET_VALUE_AT: usize = 296;
/// Open listings per connection.
const MAX_ITERATIONS: usize = 64;

mod req {
    pub const SET: i32 = 0;
    pub const DELETE: i32 = 1;
    pub const GET: i32 = 2;
    pub const ADJUST_INT: i32 = 3;
    pub const ITER_INIT: i32 = 4;
    pub const ITER_NEXT: i32 = 5;
    pub const ITER_FINALIZE: i32 = 6;
    pub const TRACK_ADD: i32 = 7;
    pub const TRACK_DELETE: i32 = 8;
    pub const SET_CURRENT_MAP: i32 = 9;
}

/// A cmap value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmapValue {
    /// `CMAP_VALUETYPE_UINT32`.
    U32(u32),
    /// `CMAP_VALUETYPE_STRING` (sent with its terminating NUL, as icmap stores it).
    Str(String),
    /// Any other type a client wrote: its `cmap_value_types_t` code and bytes.
    Raw {
        /// The type code (`CMAP_VALUETYPE_UINT8` = 2, ...).
        code: u8,
        /// The value as sent.
        bytes: Vec<u8>,
    },
}

impl CmapValue {
    /// A `CMAP_VALUETYPE_UINT8` value.
    pub fn u8(v: u8) -> CmapValue {
        CmapValue::Raw {
            code: 2,
            bytes: vec![v],
        }
    }

    /// A `CMAP_VALUETYPE_UINT64` value.
    pub fn u64(v: u64) -> CmapValue {
        CmapValue::Raw {
            code: 8,
            bytes: v.to_ne_bytes().to_vec(),
        }
    }

    pub(super) fn type_code(&self) -> u8 {
        match self {
            CmapValue::U32(_) => 6,
            CmapValue::Str(_) => 11,
            CmapValue::Raw { code, .. } => *code,
        }
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        match self {
            CmapValue::U32(v) => v.to_ne_bytes().to_vec(),
            CmapValue::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                b
            }
            CmapValue::Raw { bytes, .. } => bytes.clone(),
        }
    }
}

/// The keys a node's configuration gives (static for the node's life).
pub fn keys_from_config(cfg: &ClusterConfig) -> Vec<(String, CmapValue)> {
    let transport = match cfg.transport {
        crate::config::Transport::Udpu => "udpu",
        crate::config::Transport::Knet => "knet",
        crate::config::Transport::Udp { .. } => "udp",
    };
    let mut keys = vec![
        (
            "totem.cluster_name".to_string(),
            CmapValue::Str(cfg.cluster_name.clone()),
        ),
        // `corosync-cfgtool -s` prints it (and the link's transport by it).
        (
            "totem.transport".to_string(),
            CmapValue::Str(transport.into()),
        ),
    ];
    if let Some(p) = &cfg.quorum.provider {
        keys.push(("quorum.provider".into(), CmapValue::Str(p.clone())));
    }
    for (pos, n) in cfg.nodes.iter().enumerate() {
        let k = |field: &str| format!("nodelist.node.{pos}.{field}");
        keys.push((k("nodeid"), CmapValue::U32(n.node_id)));
        if let Some(name) = &n.name {
            keys.push((k("name"), CmapValue::Str(name.clone())));
        }
        for (link, a) in n.addrs.iter().enumerate() {
            // The address as written in corosync.conf: no port.
            let text = match a {
                Some(NodeAddr::Ip(sa)) => sa.ip().to_string(),
                Some(NodeAddr::Host { name, .. }) => name.clone(),
                None => continue,
            };
            keys.push((k(&format!("ring{link}_addr")), CmapValue::Str(text)));
        }
    }
    keys
}

/// Each node's configured IP addresses, link order (host names are skipped:
/// the cfg service reports raw addresses).
pub fn node_addrs_from_config(cfg: &ClusterConfig) -> BTreeMap<u32, Vec<std::net::IpAddr>> {
    cfg.nodes
        .iter()
        .map(|n| {
            let ips = n
                .addrs
                .iter()
                .filter_map(|a| match a {
                    Some(NodeAddr::Ip(sa)) => Some(sa.ip()),
                    _ => None,
                })
                .collect();
            (n.node_id, ips)
        })
        .collect()
}

/// A decoded libcmap request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmapCall {
    /// Read `key`; the client's buffer holds `room` bytes of value.
    Get {
        /// The key.
        key: String,
        /// Value bytes the client has room for (0: only type and length).
        room: u64,
    },
    /// Start a listing of keys starting with `prefix`.
    IterInit {
        /// The prefix ("" for every key).
        prefix: String,
    },
    /// Next key of a listing.
    IterNext {
        /// The listing.
        handle: u64,
    },
    /// End a listing.
    IterFinalize {
        /// The listing.
        handle: u64,
    },
    /// Choose the map (only the default one is offered).
    SetCurrentMap {
        /// `CMAP_SETMAP_DEFAULT` (0) or `CMAP_SETMAP_STATS` (1).
        map: u32,
    },
    /// `cmap_set`: store `value` (type `code`) under `key`.
    Set {
        /// The key.
        key: String,
        /// `cmap_value_types_t`.
        code: u8,
        /// The value's bytes.
        value: Vec<u8>,
    },
    /// `cmap_delete`.
    Delete {
        /// The key.
        key: String,
    },
    /// Any other write (`cmap_inc` / `cmap_dec`): refused.
    Write(i32),
    /// `cmap_track_add`.
    TrackAdd {
        /// The key, or the prefix with `CMAP_TRACK_PREFIX`.
        key: String,
        /// `CMAP_TRACK_*` bits.
        flags: i32,
        /// The client's handle for the tracking, echoed in notifications.
        inst: u64,
    },
    /// `cmap_track_delete`.
    TrackDelete {
        /// The handle `cmap_track_add` answered.
        handle: u64,
    },
}

fn key_at(r: &Request<'_>, offset: usize) -> Result<String, IpcError> {
    let len = u16::from_ne_bytes(
        r.slice(offset, 2)?
            .try_into()
            .map_err(|_| IpcError::BadField("key"))?,
    ) as usize;
    if len > KEY_MAX {
        return Err(IpcError::BadField("key longer than 256 bytes"));
    }
    let raw = r.slice(offset + 8, len)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8(raw[..end].to_vec()).map_err(|_| IpcError::BadField("key not UTF-8"))
}

impl CmapCall {
    /// Decodes a request of the cmap service.
    pub fn decode(r: &Request<'_>) -> Result<CmapCall, IpcError> {
        Ok(match r.id {
            req::GET => {
                r.require(288)?;
                CmapCall::Get {
                    key: key_at(r, 16)?,
                    room: r.u64_at(280)?,
                }
            }
            req::ITER_INIT => {
                r.require(280)?;
                CmapCall::IterInit {
                    prefix: key_at(r, 16)?,
                }
            }
            req::ITER_NEXT => CmapCall::IterNext {
                handle: r.u64_at(16)?,
            },
            req::ITER_FINALIZE => CmapCall::IterFinalize {
                handle: r.u64_at(16)?,
            },
            req::SET_CURRENT_MAP => CmapCall::SetCurrentMap { map: r.u32_at(16)? },
            req::SET => {
                r.require(SET_VALUE_AT)?;
                let len = r.u64_at(280)?;
                if len > MAX_VALUE as u64 {
                    return Err(IpcError::BadField("cmap value above 4096 bytes"));
                }
                CmapCall::Set {
                    key: key_at(r, 16)?,
                    code: r.slice(288, 1)?[0],
                    value: r.slice(SET_VALUE_AT, len as usize)?.to_vec(),
                }
            }
            req::DELETE => {
                r.require(280)?;
                CmapCall::Delete {
                    key: key_at(r, 16)?,
                }
            }
            id @ req::ADJUST_INT => CmapCall::Write(id),
            req::TRACK_ADD => {
                r.require(296)?;
                CmapCall::TrackAdd {
                    key: key_at(r, 16)?,
                    flags: r.u32_at(280)? as i32,
                    inst: r.u64_at(288)?,
                }
            }
            req::TRACK_DELETE => CmapCall::TrackDelete {
                handle: r.u64_at(16)?,
            },
            id => return Err(IpcError::UnknownRequest(id)),
        })
    }
}

/// Whether `key` is a name icmap accepts: 3 to 255 bytes of letters, digits
/// and `._-/:`.
fn valid_key(key: &str) -> bool {
    (3..KEY_MAX).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
}

/// The reply to a write of `key`: stores (or with `value` `None`, deletes) it
/// when it may be written; what changed goes to `changes`.
fn write(
    map: &mut BTreeMap<String, CmapValue>,
    id: i32,
    key: String,
    value: Option<CmapValue>,
    changes: &mut Vec<CmapChange>,
) -> Vec<u8> {
    let error = if !valid_key(&key) {
        cs::ERR_INVALID_PARAM
    } else if !key.starts_with(WRITABLE_PREFIX) {
        cs::ERR_ACCESS
    } else {
        let written = || {
            map.keys()
                .filter(|k| k.starts_with(WRITABLE_PREFIX))
                .count()
        };
        match value {
            None if !map.contains_key(&key) => cs::ERR_NOT_EXIST,
            Some(_) if !map.contains_key(&key) && written() >= MAX_WRITTEN => cs::ERR_NO_RESOURCES,
            value => {
                changes.extend(CmapChange::apply(map, &key, value));
                cs::OK
            }
        }
    };
    response(id, error, RESPONSE_HEADER_LEN)
}

/// One cmap connection: its listings and trackings.
#[derive(Debug, Default)]
pub struct CmapSession {
    iterations: BTreeMap<u64, VecDeque<String>>,
    next_iteration: u64,
    tracks: Tracks,
}

impl CmapSession {
    /// Whether `map` admits a client with `uid` and `gid` to the IPC, as Corosync's
    /// `uidgid.uid.<uid>` / `uidgid.gid.<gid>` keys do (u8 value 1).
    pub fn admits(map: &BTreeMap<String, CmapValue>, uid: u32, gid: u32) -> bool {
        let one = |k: String| matches!(map.get(&k), Some(CmapValue::Raw { code: 2, bytes }) if bytes.as_slice() == [1]);
        one(format!("uidgid.uid.{uid}")) || one(format!("uidgid.gid.{gid}"))
    }

    /// The notification callbacks `change` owes this connection.
    pub fn notifications(&self, change: &CmapChange) -> Vec<Vec<u8>> {
        self.tracks.notifications(change)
    }

    /// Answers `call` from `map` (which `cmap_set` / `cmap_delete` change; the
    /// changes, which every connection's trackings should hear of, go to
    /// `changes`).
    pub fn handle_call(
        &mut self,
        map: &mut BTreeMap<String, CmapValue>,
        call: CmapCall,
        changes: &mut Vec<CmapChange>,
    ) -> Vec<u8> {
        match call {
            CmapCall::Set { key, code, value } => write(
                map,
                req::SET,
                key,
                Some(CmapValue::Raw { code, bytes: value }),
                changes,
            ),
            CmapCall::Delete { key } => write(map, req::DELETE, key, None, changes),
            CmapCall::Get { key, room } => get_reply(map.get(&key), room),
            CmapCall::IterInit { prefix } => {
                let mut out = response(req::ITER_INIT, cs::OK, 32);
                if self.iterations.len() >= MAX_ITERATIONS {
                    put_u32(&mut out, 16, cs::ERR_NO_RESOURCES as u32);
                    return out;
                }
                self.next_iteration += 1;
                let keys = map
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                self.iterations.insert(self.next_iteration, keys);
                put_u64(&mut out, 24, self.next_iteration);
                out
            }
            CmapCall::IterNext { handle } => {
                let mut out = response(req::ITER_NEXT, cs::OK, 304);
                let next = self.iterations.get_mut(&handle).map(|l| l.pop_front());
                match next {
                    None => put_u32(&mut out, 16, cs::ERR_BAD_HANDLE as u32),
                    Some(None) => put_u32(&mut out, 16, cs::ERR_NO_SECTIONS as u32),
                    Some(Some(key)) => {
                        let b = key.as_bytes();
                        let n = b.len().min(KEY_MAX - 1);
                        out[24..26].copy_from_slice(&(n as u16).to_ne_bytes());
                        out[32..32 + n].copy_from_slice(&b[..n]);
                        if let Some(v) = map.get(&key) {
                            put_u64(&mut out, 288, v.bytes().len() as u64);
                            out[296] = v.type_code();
                        }
                    }
                }
                out
            }
            CmapCall::IterFinalize { handle } => {
                let e = if self.iterations.remove(&handle).is_some() {
                    cs::OK
                } else {
                    cs::ERR_BAD_HANDLE
                };
                response(req::ITER_FINALIZE, e, RESPONSE_HEADER_LEN)
            }
            CmapCall::SetCurrentMap { map } => {
                let e = if map == 0 {
                    cs::OK
                } else {
                    cs::ERR_NOT_SUPPORTED
                };
                response(10, e, RESPONSE_HEADER_LEN)
            }
            CmapCall::Write(id) => response(id, cs::ERR_ACCESS, RESPONSE_HEADER_LEN),
            CmapCall::TrackAdd { key, flags, inst } => {
                let mut out = response(req::TRACK_ADD, cs::OK, 32);
                match self.tracks.add(key, flags, inst) {
                    Ok(handle) => put_u64(&mut out, 24, handle),
                    Err(e) => put_u32(&mut out, 16, e as u32),
                }
                out
            }
            CmapCall::TrackDelete { handle } => {
                let mut out = response(req::TRACK_DELETE, cs::OK, 32);
                match self.tracks.delete(handle) {
                    Some(inst) => put_u64(&mut out, 24, inst),
                    None => put_u32(&mut out, 16, cs::ERR_BAD_HANDLE as u32),
                }
                out
            }
        }
    }
}

/// The reply to a get: 40 + `room` bytes (what the client allocated), the
/// value only when it fits.
fn get_reply(value: Option<&CmapValue>, room: u64) -> Vec<u8> {
    let Some(v) = value else {
        return response(req::GET, cs::ERR_NOT_EXIST, 40);
    };
    let bytes = v.bytes();
    if room == 0 {
        let mut out = response(req::GET, cs::OK, 40);
        put_u64(&mut out, 24, bytes.len() as u64);
        out[32] = v.type_code();
        return out;
    }
    if (room as usize) < bytes.len() || room > 1 << 16 {
        return response(req::GET, cs::ERR_INVALID_PARAM, 40);
    }
    let mut out = response(req::GET, cs::OK, 40 + room as usize);
    put_u64(&mut out, 24, bytes.len() as u64);
    out[32] = v.type_code();
    out[40..40 + bytes.len()].copy_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode_request;
    use super::*;

    impl CmapSession {
        /// `handle_call`, the changes dropped.
        fn handle(&mut self, map: &mut BTreeMap<String, CmapValue>, call: CmapCall) -> Vec<u8> {
            self.handle_call(map, call, &mut Vec::new())
        }
    }

    fn get_request(key: &str, room: u64) -> Vec<u8> {
        let mut b = vec![0u8; 288];
        put_u32(&mut b, 0, req::GET as u32);
        put_u32(&mut b, 8, 288);
        b[16..18].copy_from_slice(&(key.len() as u16).to_ne_bytes());
        b[24..24 + key.len()].copy_from_slice(key.as_bytes());
        put_u64(&mut b, 280, room);
        b
    }

    fn map() -> BTreeMap<String, CmapValue> {
        [
            ("a.x".to_string(), CmapValue::U32(7)),
            ("a.y".to_string(), CmapValue::Str("hi".into())),
            ("b".to_string(), CmapValue::U32(1)),
        ]
        .into()
    }

    #[test]
    fn get_sizes_the_reply_to_the_clients_buffer() {
        let mut s = CmapSession::default();
        let b = get_request("a.y", 0);
        let call = CmapCall::decode(&decode_request(&b).unwrap()).unwrap();
        let out = s.handle(&mut map(), call);
        assert_eq!(out.len(), 40);
        assert_eq!(u64::from_ne_bytes(out[24..32].try_into().unwrap()), 3);
        assert_eq!(out[32], 11);
        let b = get_request("a.y", 16);
        let call = CmapCall::decode(&decode_request(&b).unwrap()).unwrap();
        let out = s.handle(&mut map(), call);
        assert_eq!(out.len(), 56);
        assert_eq!(&out[40..43], b"hi\0");
        let b = get_request("a.y", 2);
        let call = CmapCall::decode(&decode_request(&b).unwrap()).unwrap();
        let out = s.handle(&mut map(), call);
        assert_eq!(
            out.len(),
            40,
            "too small a buffer is an error, not an overrun"
        );
        let b = get_request("nope", 4);
        let call = CmapCall::decode(&decode_request(&b).unwrap()).unwrap();
        let out = s.handle(&mut map(), call);
        assert_eq!(
            i32::from_ne_bytes(out[16..20].try_into().unwrap()),
            cs::ERR_NOT_EXIST
        );
    }

    #[test]
    fn iteration_lists_the_prefix_then_ends() {
        let mut s = CmapSession::default();
        let mut m = map();
        let out = s.handle(
            &mut m,
            CmapCall::IterInit {
                prefix: "a.".into(),
            },
        );
        let handle = u64::from_ne_bytes(out[24..32].try_into().unwrap());
        let mut keys = Vec::new();
        loop {
            let out = s.handle(&mut m, CmapCall::IterNext { handle });
            if i32::from_ne_bytes(out[16..20].try_into().unwrap()) != cs::OK {
                break;
            }
            let n = u16::from_ne_bytes(out[24..26].try_into().unwrap()) as usize;
            keys.push(String::from_utf8(out[32..32 + n].to_vec()).unwrap());
        }
        assert_eq!(keys, ["a.x", "a.y"]);
    }

    #[test]
    fn overlong_keys_are_refused() {
        let mut b = get_request("k", 0);
        b[16..18].copy_from_slice(&300u16.to_ne_bytes());
        assert!(CmapCall::decode(&decode_request(&b).unwrap()).is_err());
    }

    fn set_request(key: &str, code: u8, value: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; SET_VALUE_AT + value.len().next_multiple_of(8)];
        put_u32(&mut b, 0, req::SET as u32);
        let len = b.len() as u32;
        put_u32(&mut b, 8, len);
        b[16..18].copy_from_slice(&(key.len() as u16).to_ne_bytes());
        b[24..24 + key.len()].copy_from_slice(key.as_bytes());
        put_u64(&mut b, 280, value.len() as u64);
        b[288] = code;
        b[SET_VALUE_AT..SET_VALUE_AT + value.len()].copy_from_slice(value);
        b
    }

    fn error_of(out: &[u8]) -> i32 {
        i32::from_ne_bytes(out[16..20].try_into().unwrap())
    }

    #[test]
    fn uidgid_keys_are_writable_and_admit_clients() {
        let mut s = CmapSession::default();
        let mut m = map();
        assert!(!CmapSession::admits(&m, 102, 105));
        // What pacemakerd does: cmap_set_uint8("uidgid.gid.105", 1).
        let b = set_request("uidgid.gid.105", 2, &[1]);
        let call = CmapCall::decode(&decode_request(&b).unwrap()).unwrap();
        let out = s.handle(&mut m, call);
        assert_eq!((out.len(), error_of(&out)), (24, cs::OK));
        assert!(CmapSession::admits(&m, 102, 105));
        assert!(!CmapSession::admits(&m, 102, 106), "another group");
        // It reads back with its type.
        let b = get_request("uidgid.gid.105", 8);
        let out = s.handle(
            &mut m,
            CmapCall::decode(&decode_request(&b).unwrap()).unwrap(),
        );
        assert_eq!((out[32], out[40]), (2, 1));
        // Value 0 does not admit; deleting removes it.
        let b = set_request("uidgid.gid.105", 2, &[0]);
        s.handle(
            &mut m,
            CmapCall::decode(&decode_request(&b).unwrap()).unwrap(),
        );
        assert!(!CmapSession::admits(&m, 102, 105));
        let del = CmapCall::Delete {
            key: "uidgid.gid.105".into(),
        };
        assert_eq!(error_of(&s.handle(&mut m, del.clone())), cs::OK);
        assert_eq!(error_of(&s.handle(&mut m, del)), cs::ERR_NOT_EXIST);
    }

    #[test]
    fn other_writes_are_refused() {
        let mut s = CmapSession::default();
        let mut m = map();
        let b = set_request("totem.token", 6, &5000u32.to_ne_bytes());
        let out = s.handle(
            &mut m,
            CmapCall::decode(&decode_request(&b).unwrap()).unwrap(),
        );
        assert_eq!(error_of(&out), cs::ERR_ACCESS);
        assert!(!m.contains_key("totem.token"));
        let bad = CmapCall::Set {
            key: "uidgid.uid.1 space".into(),
            code: 2,
            value: vec![1],
        };
        assert_eq!(error_of(&s.handle(&mut m, bad)), cs::ERR_INVALID_PARAM);
        // A value longer than it says, or too long, does not decode.
        let mut b = set_request("uidgid.uid.1", 2, &[1]);
        put_u64(&mut b, 280, 1 << 20);
        assert!(CmapCall::decode(&decode_request(&b).unwrap()).is_err());
        // The written part stays bounded.
        for i in 0..MAX_WRITTEN {
            let call = CmapCall::Set {
                key: format!("uidgid.uid.{i}"),
                code: 2,
                value: vec![1],
            };
            assert_eq!(error_of(&s.handle(&mut m, call)), cs::OK);
        }
        let one_more = CmapCall::Set {
            key: "uidgid.uid.999999".into(),
            code: 2,
            value: vec![1],
        };
        assert_eq!(error_of(&s.handle(&mut m, one_more)), cs::ERR_NO_RESOURCES);
    }
}
