//! The cmap service over the node's key map: the keys the Corosync tools read
//! (`quorum.provider`, `totem.cluster_name`, `totem.transport`,
//! `nodelist.node.<n>.{nodeid,name,ring0_addr}`, `runtime.votequorum.this_node_id`,
//! and the runtime keys of [`cmap_runtime`](super::cmap_runtime)), answering
//! `cmap_get`, the `cmap_iter_*` calls, key tracking
//! ([`cmap_track`](super::cmap_track)), and writes where Corosync allows them:
//! `cmap_set`, `cmap_delete` and `cmap_inc` / `cmap_dec` work on every key but
//! Corosync's read-only ones ([`read_only`]: `nodelist.*`, `runtime.config.*`,
//! `system.*`, `totem.cluster_name`, `totem.transport`, ... — refused with
//! `CS_ERR_ACCESS` as Corosync does), and every tracker hears of the change.
//! Written values are stored, read back and tracked; the node acts on
//! `uidgid.uid.<uid>` / `uidgid.gid.<gid>` (u8 1 admits that user or group to
//! the IPC, [`CmapSession::admits`] — what Pacemaker's `pacemakerd` sets for
//! its daemons) and `cfg.shutdown_timeout` (the shutdown vote's timeout); other
//! keys change nothing in the running node (Corosync too applies most of them
//! only on a reload). The stats map (`CMAP_MAP_STATS`) is
//! [`cmap_stats`](super::cmap_stats)'s. Decoding and encoding are pure.
//!
//! Layouts: a key (`mar_name_t`) is a `u16` length at +0 and 256 bytes at +8
//! (264 bytes). `req_lib_cmap_get`: key @16, value_len u64 @280 (288 bytes);
//! `res_lib_cmap_get`: value_len u64 @24, type u8 @32, value @40, sized
//! 40 + the *requested* value_len (the client's buffer is exactly that).
//! `req_lib_cmap_adjust_int`: key @16, step i32 @280.

use super::cmap_track::{CmapChange, Tracks};
use super::cs;
use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, put_u64, response};
use crate::config::{ClusterConfig, NodeAddr};
use std::collections::{BTreeMap, VecDeque};

const KEY_MAX: usize = 256;
/// Keys in the map at most: a client's new key beyond it gets
/// `CS_ERR_NO_RESOURCES` (the map stays bounded).
pub const MAX_KEYS: usize = 8192;
/// Corosync's read-only key prefixes (`main.c`'s `set_icmap_ro_keys_flag`).
const READ_ONLY_PREFIXES: &[&str] = &[
    "internal_configuration.",
    "runtime.services.",
    "runtime.config.",
    "runtime.totem.",
    "uidgid.config.",
    "system.",
    "nodelist.",
];
/// Corosync's read-only keys (configuration that cannot change at run time;
/// the `quorum.*` ones are votequorum's).
const READ_ONLY_KEYS: &[&str] = &[
    "totem.crypto_cipher",
    "totem.crypto_hash",
    "totem.crypto_model",
    "totem.keyfile",
    "totem.key",
    "totem.secauth",
    "totem.ip_version",
    "totem.rrp_mode",
    "totem.transport",
    "totem.cluster_name",
    "totem.netmtu",
    "totem.threads",
    "totem.version",
    "totem.nodeid",
    "totem.clear_node_high_bit",
    "config.reload_in_progress",
    "config.totemconfig_reload_in_progress",
    "quorum.allow_downscale",
    "quorum.wait_for_all",
    "quorum.last_man_standing",
    "quorum.last_man_standing_window",
    "quorum.expected_votes_tracking",
    "quorum.auto_tie_breaker",
    "quorum.auto_tie_breaker_node",
];
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

    /// A value as `cmap_set` sends it (`cmap_value_types_t` `code`, `bytes`),
    /// checked as icmap checks it: fixed-size types exactly their size, a
    /// string no longer than its text and NUL (and UTF-8 here); `None` when
    /// invalid (`CS_ERR_INVALID_PARAM`).
    pub fn from_wire(code: u8, bytes: &[u8]) -> Option<CmapValue> {
        let size = match code {
            1 | 2 => Some(1),
            3 | 4 => Some(2),
            5 | 6 | 9 => Some(4),
            7 | 8 | 10 => Some(8),
            11 | 12 => None,
            _ => return None,
        };
        if size.is_some_and(|n| n != bytes.len()) {
            return None;
        }
        match code {
            6 => Some(CmapValue::U32(u32::from_ne_bytes(bytes.try_into().ok()?))),
            11 => {
                let end = bytes.iter().position(|&b| b == 0);
                if end.is_some_and(|e| bytes.len() > e + 1) {
                    return None;
                }
                let text = &bytes[..end.unwrap_or(bytes.len())];
                Some(CmapValue::Str(String::from_utf8(text.to_vec()).ok()?))
            }
            _ => Some(CmapValue::Raw {
                code,
                bytes: bytes.to_vec(),
            }),
        }
    }

    /// The value plus `step` (wrapping, as icmap), for the integer types;
    /// `None` for the others.
    fn adjusted(&self, step: i32) -> Option<CmapValue> {
        match self {
            CmapValue::U32(v) => Some(CmapValue::U32(v.wrapping_add(step as u32))),
            CmapValue::Raw { code, bytes } if (1..=8).contains(code) => {
                let mut wide = [0u8; 8];
                let n = bytes.len().min(8);
                // Native order: the low bytes come first on little-endian
                // hosts, last on big-endian ones.
                let v = if cfg!(target_endian = "little") {
                    wide[..n].copy_from_slice(&bytes[..n]);
                    u64::from_le_bytes(wide)
                } else {
                    wide[8 - n..].copy_from_slice(&bytes[..n]);
                    u64::from_be_bytes(wide)
                };
                let sum = v.wrapping_add(step as i64 as u64);
                let out = if cfg!(target_endian = "little") {
                    sum.to_le_bytes()[..n].to_vec()
                } else {
                    sum.to_be_bytes()[8 - n..].to_vec()
                };
                Some(CmapValue::Raw {
                    code: *code,
                    bytes: out,
                })
            }
            _ => None,
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
    /// `cmap_inc` / `cmap_dec` / `cmap_adjust_int`.
    AdjustInt {
        /// The key.
        key: String,
        /// What to add.
        step: i32,
    },
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
            req::ADJUST_INT => {
                r.require(284)?;
                CmapCall::AdjustInt {
                    key: key_at(r, 16)?,
                    step: r.u32_at(280)? as i32,
                }
            }
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

/// Whether clients may not write or delete `key` (Corosync's read-only keys).
pub fn read_only(key: &str) -> bool {
    READ_ONLY_PREFIXES.iter().any(|p| key.starts_with(p)) || READ_ONLY_KEYS.contains(&key)
}

/// The reply to a write of `key`: stores (or with `value` `None`, deletes) it
/// when it may be written; what changed goes to `changes`. The checks in
/// icmap's order: read-only, then (a new key) its name, then our bound.
fn write(
    map: &mut BTreeMap<String, CmapValue>,
    id: i32,
    key: String,
    value: Option<CmapValue>,
    changes: &mut Vec<CmapChange>,
) -> Vec<u8> {
    let exists = map.contains_key(&key);
    let error = if read_only(&key) {
        cs::ERR_ACCESS
    } else {
        match value {
            None if !exists => cs::ERR_NOT_EXIST,
            Some(_) if !exists && !valid_key(&key) => cs::ERR_NAME_TOO_LONG,
            Some(_) if !exists && map.len() >= MAX_KEYS => cs::ERR_NO_RESOURCES,
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
    /// The client chose the stats map (`CMAP_MAP_STATS`).
    stats: bool,
}

impl CmapSession {
    /// Whether `map` admits a client with `uid` and `gid` to the IPC, as Corosync's
    /// `uidgid.uid.<uid>` / `uidgid.gid.<gid>` keys do (u8 value 1).
    pub fn admits(map: &BTreeMap<String, CmapValue>, uid: u32, gid: u32) -> bool {
        let one = |k: String| matches!(map.get(&k), Some(CmapValue::Raw { code: 2, bytes }) if bytes.as_slice() == [1]);
        one(format!("uidgid.uid.{uid}")) || one(format!("uidgid.gid.{gid}"))
    }

    /// The notification callbacks `change` owes this connection (none for
    /// a connection on the stats map).
    pub fn notifications(&self, change: &CmapChange) -> Vec<Vec<u8>> {
        if self.stats {
            return Vec::new();
        }
        self.tracks.notifications(change)
    }

    /// Whether the client works on the stats map.
    pub fn uses_stats(&self) -> bool {
        self.stats
    }

    /// Answers `call` on the stats map `stats` (as read now): reads as on the
    /// default map; a write of `stats.clear.<part>` asks for that part's
    /// counters to be zeroed (its key goes to `clears`); every other write,
    /// and tracking, is refused as Corosync refuses it.
    pub fn handle_stats_call(
        &mut self,
        stats: &mut BTreeMap<String, CmapValue>,
        call: CmapCall,
        clears: &mut Vec<String>,
    ) -> Vec<u8> {
        let clearing = |key: &str| key.starts_with("stats.clear.");
        match call {
            CmapCall::Set { key, .. } => {
                let e = if !clearing(&key) {
                    cs::ERR_ACCESS
                } else if super::cmap_stats::clear_prefixes(&key).is_some() {
                    clears.push(key);
                    cs::OK
                } else {
                    cs::ERR_NOT_SUPPORTED
                };
                response(req::SET, e, RESPONSE_HEADER_LEN)
            }
            CmapCall::Delete { key } | CmapCall::AdjustInt { key, step: _ } => {
                // Corosync's stats map: nothing to delete or adjust.
                let e = if clearing(&key) {
                    cs::ERR_NOT_SUPPORTED
                } else {
                    cs::ERR_ACCESS
                };
                response(req::DELETE, e, RESPONSE_HEADER_LEN)
            }
            CmapCall::TrackAdd { .. } => response(req::TRACK_ADD, cs::ERR_NOT_SUPPORTED, 32),
            other => self.handle_call(stats, other, &mut Vec::new()),
        }
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
            CmapCall::Set { key, code, value } => match CmapValue::from_wire(code, &value) {
                // icmap checks the value before the key's access.
                None => response(req::SET, cs::ERR_INVALID_PARAM, RESPONSE_HEADER_LEN),
                Some(v) => write(map, req::SET, key, Some(v), changes),
            },
            CmapCall::AdjustInt { key, step } => {
                let id = req::ADJUST_INT;
                if read_only(&key) {
                    return response(id, cs::ERR_ACCESS, RESPONSE_HEADER_LEN);
                }
                match map.get(&key).map(|v| v.adjusted(step)) {
                    None => response(id, cs::ERR_NOT_EXIST, RESPONSE_HEADER_LEN),
                    Some(None) => response(id, cs::ERR_INVALID_PARAM, RESPONSE_HEADER_LEN),
                    Some(Some(v)) => write(map, id, key, Some(v), changes),
                }
            }
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
                // Keys deleted since the listing began are passed over.
                let next = self.iterations.get_mut(&handle).map(|l| {
                    while let Some(k) = l.pop_front() {
                        if map.contains_key(&k) {
                            return Some(k);
                        }
                    }
                    None
                });
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
                // CMAP_SETMAP_DEFAULT 0, CMAP_SETMAP_STATS 1.
                let e = match map {
                    0 | 1 => {
                        self.stats = map == 1;
                        cs::OK
                    }
                    _ => cs::ERR_INVALID_PARAM,
                };
                response(10, e, RESPONSE_HEADER_LEN)
            }
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

    fn call_bytes(s: &mut CmapSession, m: &mut BTreeMap<String, CmapValue>, b: &[u8]) -> i32 {
        error_of(&s.handle(m, CmapCall::decode(&decode_request(b).unwrap()).unwrap()))
    }

    #[test]
    fn ordinary_keys_are_writable_read_only_ones_are_not() {
        let mut s = CmapSession::default();
        let mut m = map();
        m.insert("nodelist.node.0.nodeid".into(), CmapValue::U32(1));
        m.insert("totem.cluster_name".into(), CmapValue::Str("c".into()));
        // Corosync lets totem.token be written (a reload would apply it).
        let b = set_request("totem.token", 6, &5000u32.to_ne_bytes());
        let mut changes = Vec::new();
        let decoded = CmapCall::decode(&decode_request(&b).unwrap()).unwrap();
        let out = s.handle_call(&mut m, decoded, &mut changes);
        assert_eq!(error_of(&out), cs::OK);
        assert_eq!(m["totem.token"], CmapValue::U32(5000));
        assert_eq!(changes.len(), 1, "trackers hear of it");
        let b = set_request("my.note", 11, b"hello\0");
        assert_eq!(call_bytes(&mut s, &mut m, &b), cs::OK);
        assert_eq!(m["my.note"], CmapValue::Str("hello".into()));
        // cmap_inc on a u32, then on a string.
        let mut inc = vec![0u8; 288];
        put_u32(&mut inc, 0, req::ADJUST_INT as u32);
        put_u32(&mut inc, 8, 288);
        inc[16..18].copy_from_slice(&11u16.to_ne_bytes());
        inc[24..35].copy_from_slice(b"totem.token");
        put_u32(&mut inc, 280, 1);
        assert_eq!(call_bytes(&mut s, &mut m, &inc), cs::OK);
        assert_eq!(m["totem.token"], CmapValue::U32(5001));
        let u8_key = CmapCall::Set {
            key: "a.small".into(),
            code: 2,
            value: vec![255],
        };
        assert_eq!(error_of(&s.handle(&mut m, u8_key)), cs::OK);
        let dec = CmapCall::AdjustInt {
            key: "a.small".into(),
            step: 2,
        };
        assert_eq!(error_of(&s.handle(&mut m, dec)), cs::OK);
        assert_eq!(m["a.small"], CmapValue::u8(1), "wraps as icmap");
        let on_text = CmapCall::AdjustInt {
            key: "my.note".into(),
            step: 1,
        };
        assert_eq!(error_of(&s.handle(&mut m, on_text)), cs::ERR_INVALID_PARAM);
        // Read-only keys, as Corosync: CS_ERR_ACCESS for writes and deletes.
        for key in [
            "totem.cluster_name",
            "nodelist.node.0.nodeid",
            "runtime.config.totem.token",
        ] {
            let set = CmapCall::Set {
                key: key.into(),
                code: 6,
                value: 1u32.to_ne_bytes().to_vec(),
            };
            assert_eq!(error_of(&s.handle(&mut m, set)), cs::ERR_ACCESS, "{key}");
            let del = CmapCall::Delete { key: key.into() };
            assert_eq!(error_of(&s.handle(&mut m, del)), cs::ERR_ACCESS, "{key}");
        }
        assert_eq!(m["totem.cluster_name"], CmapValue::Str("c".into()));
        // A bad new name; a value of the wrong size; a string longer than its text.
        let bad = CmapCall::Set {
            key: "uidgid.uid.1 space".into(),
            code: 2,
            value: vec![1],
        };
        assert_eq!(error_of(&s.handle(&mut m, bad)), cs::ERR_NAME_TOO_LONG);
        let short = CmapCall::Set {
            key: "a.b".into(),
            code: 6,
            value: vec![1],
        };
        assert_eq!(error_of(&s.handle(&mut m, short)), cs::ERR_INVALID_PARAM);
        let padded = CmapCall::Set {
            key: "a.b".into(),
            code: 11,
            value: b"x\0\0".to_vec(),
        };
        assert_eq!(error_of(&s.handle(&mut m, padded)), cs::ERR_INVALID_PARAM);
        // A value longer than it says, or too long, does not decode.
        let mut b = set_request("uidgid.uid.1", 2, &[1]);
        put_u64(&mut b, 280, 1 << 20);
        assert!(CmapCall::decode(&decode_request(&b).unwrap()).is_err());
    }

    #[test]
    fn the_map_stays_bounded_and_listings_pass_over_deleted_keys() {
        let mut s = CmapSession::default();
        let mut m = map();
        let out = s.handle(
            &mut m,
            CmapCall::IterInit {
                prefix: "a.".into(),
            },
        );
        let handle = u64::from_ne_bytes(out[24..32].try_into().unwrap());
        let del = CmapCall::Delete { key: "a.x".into() };
        assert_eq!(error_of(&s.handle(&mut m, del)), cs::OK);
        let out = s.handle(&mut m, CmapCall::IterNext { handle });
        assert_eq!(&out[32..35], b"a.y", "a.x is gone");
        let mut i = 0;
        let refused = loop {
            let call = CmapCall::Set {
                key: format!("uidgid.uid.{i}"),
                code: 2,
                value: vec![1],
            };
            let e = error_of(&s.handle(&mut m, call));
            if e != cs::OK {
                break e;
            }
            i += 1;
        };
        assert_eq!(refused, cs::ERR_NO_RESOURCES);
        assert_eq!(m.len(), MAX_KEYS);
        // An existing key can still change.
        let again = CmapCall::Set {
            key: "uidgid.uid.0".into(),
            code: 2,
            value: vec![0],
        };
        assert_eq!(error_of(&s.handle(&mut m, again)), cs::OK);
    }

    #[test]
    fn the_stats_map_is_read_only_but_its_clear_keys() {
        let mut s = CmapSession::default();
        let mut stats: BTreeMap<String, CmapValue> =
            [("stats.srp.orf_token_rx".to_string(), CmapValue::u64(3))].into();
        let mut clears = Vec::new();
        let out = s.handle(&mut map(), CmapCall::SetCurrentMap { map: 1 });
        assert_eq!(error_of(&out), cs::OK);
        assert!(s.uses_stats());
        let get = CmapCall::Get {
            key: "stats.srp.orf_token_rx".into(),
            room: 8,
        };
        let out = s.handle_stats_call(&mut stats, get, &mut clears);
        assert_eq!((error_of(&out), out[32]), (cs::OK, 8));
        let set = |key: &str| CmapCall::Set {
            key: key.into(),
            code: 6,
            value: 1u32.to_ne_bytes().to_vec(),
        };
        let e = |out: Vec<u8>| error_of(&out);
        assert_eq!(
            e(s.handle_stats_call(&mut stats, set("stats.srp.orf_token_rx"), &mut clears)),
            cs::ERR_ACCESS
        );
        assert_eq!(
            e(s.handle_stats_call(&mut stats, set("stats.clear.nope"), &mut clears)),
            cs::ERR_NOT_SUPPORTED
        );
        assert_eq!(
            e(s.handle_stats_call(&mut stats, set("stats.clear.totem"), &mut clears)),
            cs::OK
        );
        assert_eq!(clears, ["stats.clear.totem"]);
        let track = CmapCall::TrackAdd {
            key: "stats.".into(),
            flags: 8 | 2,
            inst: 1,
        };
        assert_eq!(
            e(s.handle_stats_call(&mut stats, track, &mut clears)),
            cs::ERR_NOT_SUPPORTED
        );
    }
}
