//! cmap key tracking (`cmap_track_add` / `cmap_track_delete`): which changes
//! of the map a connection asked to hear about, and the notification callbacks
//! (`res_lib_cmap_notify_callback`) that tell it. Pure: changes come in as
//! [`CmapChange`] values, callbacks go out as bytes.
//!
//! Layouts (Corosync's `ipc_cmap.h`, every field 8-aligned):
//! `req_lib_cmap_track_add`: key @16, track_type i32 @280, track_inst_handle
//! u64 @288; its reply: track_handle u64 @24 (32 bytes).
//! `req_lib_cmap_track_delete`: track_handle u64 @16; its reply:
//! track_inst_handle u64 @24 (32 bytes).
//! Notification (response id 9): track_inst_handle u64 @24, key @32, event i32
//! @296, new type u8 @304, old type u8 @312, new length u64 @320, old length
//! u64 @328, then the new value's bytes and the old value's bytes from @336.
//!
//! ```
//! use phalanx::compat::qb::cmap::CmapValue;
//! use phalanx::compat::qb::cmap_track::{CmapChange, Tracks, TRACK_PREFIX, TRACK_MODIFY};
//! use std::collections::BTreeMap;
//!
//! let mut map = BTreeMap::new();
//! let mut tracks = Tracks::default();
//! let handle = tracks.add("runtime.members.".into(), TRACK_PREFIX | TRACK_MODIFY, 77).unwrap();
//! assert!(CmapChange::apply(&mut map, "runtime.members.1.status", Some(CmapValue::Str("joined".into()))).is_some());
//! let change = CmapChange::apply(&mut map, "runtime.members.1.status", Some(CmapValue::Str("left".into()))).unwrap();
//! assert_eq!(tracks.notifications(&change).len(), 1, "a modification under the prefix");
//! assert_eq!(tracks.delete(handle), Some(77));
//! assert!(tracks.notifications(&change).is_empty());
//! ```

use super::cmap::CmapValue;
use super::cs;
use super::wire::{put_u32, put_u64, response};
use std::collections::BTreeMap;

/// `CMAP_TRACK_DELETE`: a key went away.
pub const TRACK_DELETE: i32 = 1;
/// `CMAP_TRACK_MODIFY`: a key's value changed.
pub const TRACK_MODIFY: i32 = 2;
/// `CMAP_TRACK_ADD`: a key appeared.
pub const TRACK_ADD: i32 = 4;
/// `CMAP_TRACK_PREFIX`: the tracked key is a prefix.
pub const TRACK_PREFIX: i32 = 8;
/// Trackings one connection may hold (the per-connection bound; a further
/// `cmap_track_add` gets `CS_ERR_NO_RESOURCES`).
pub const MAX_TRACKS: usize = 64;
/// `MESSAGE_RES_CMAP_NOTIFY_CALLBACK`.
const NOTIFY_CALLBACK: i32 = 9;
/// Where a notification's new value starts.
const NOTIFY_VALUES_AT: usize = 336;

/// One change of the map, as a tracker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmapChange {
    /// The key.
    pub key: String,
    /// [`TRACK_ADD`], [`TRACK_DELETE`] or [`TRACK_MODIFY`].
    pub event: i32,
    /// The value now (none after a delete).
    pub new: Option<CmapValue>,
    /// The value before (none after an add).
    pub old: Option<CmapValue>,
}

impl CmapChange {
    /// Sets (`Some`) or deletes (`None`) `key` in `map`; the change, unless
    /// nothing changed (icmap does not notify a write of the same value).
    pub fn apply(
        map: &mut BTreeMap<String, CmapValue>,
        key: &str,
        value: Option<CmapValue>,
    ) -> Option<CmapChange> {
        let old = match &value {
            Some(v) => map.insert(key.to_string(), v.clone()),
            None => map.remove(key),
        };
        let event = match (&old, &value) {
            (None, None) => return None,
            (Some(o), Some(n)) if o == n => return None,
            (None, Some(_)) => TRACK_ADD,
            (Some(_), None) => TRACK_DELETE,
            (Some(_), Some(_)) => TRACK_MODIFY,
        };
        Some(CmapChange {
            key: key.to_string(),
            event,
            new: value,
            old,
        })
    }
}

/// One `cmap_track_add`.
#[derive(Clone, Debug)]
struct Track {
    key: String,
    flags: i32,
    /// The client's own handle for it, echoed in every notification.
    inst: u64,
}

impl Track {
    fn wants(&self, c: &CmapChange) -> bool {
        let key_matches = if self.flags & TRACK_PREFIX != 0 {
            c.key.starts_with(&self.key)
        } else {
            c.key == self.key
        };
        key_matches && self.flags & c.event != 0
    }
}

/// One connection's trackings.
#[derive(Debug, Default)]
pub struct Tracks {
    tracks: BTreeMap<u64, Track>,
    next: u64,
}

impl Tracks {
    /// Tracks `key` (a prefix with [`TRACK_PREFIX`]) for the events in `flags`;
    /// the track handle, or the `cs_error_t` refusing it.
    pub fn add(&mut self, key: String, flags: i32, inst: u64) -> Result<u64, i32> {
        let events = TRACK_ADD | TRACK_DELETE | TRACK_MODIFY;
        if flags & events == 0 || flags & !(events | TRACK_PREFIX) != 0 {
            return Err(cs::ERR_INVALID_PARAM);
        }
        if self.tracks.len() >= MAX_TRACKS {
            return Err(cs::ERR_NO_RESOURCES);
        }
        self.next += 1;
        self.tracks.insert(self.next, Track { key, flags, inst });
        Ok(self.next)
    }

    /// Ends tracking `handle`: the client's handle for it, if it existed.
    pub fn delete(&mut self, handle: u64) -> Option<u64> {
        self.tracks.remove(&handle).map(|t| t.inst)
    }

    /// The notification callbacks `change` owes this connection, one per
    /// tracking that wants it.
    pub fn notifications(&self, change: &CmapChange) -> Vec<Vec<u8>> {
        self.tracks
            .values()
            .filter(|t| t.wants(change))
            .map(|t| encode_notification(t.inst, change))
            .collect()
    }
}

/// `res_lib_cmap_notify_callback` for tracking `inst`.
fn encode_notification(inst: u64, c: &CmapChange) -> Vec<u8> {
    let value = |v: &Option<CmapValue>| {
        v.as_ref()
            .map(|v| (v.type_code(), v.bytes()))
            .unwrap_or((0, Vec::new()))
    };
    let (new_type, new) = value(&c.new);
    let (old_type, old) = value(&c.old);
    let mut out = response(
        NOTIFY_CALLBACK,
        cs::OK,
        NOTIFY_VALUES_AT + new.len() + old.len(),
    );
    put_u64(&mut out, 24, inst);
    let key = c.key.as_bytes();
    let n = key.len().min(255);
    out[32..34].copy_from_slice(&(n as u16).to_ne_bytes());
    out[40..40 + n].copy_from_slice(&key[..n]);
    put_u32(&mut out, 296, c.event as u32);
    out[304] = new_type;
    out[312] = old_type;
    put_u64(&mut out, 320, new.len() as u64);
    put_u64(&mut out, 328, old.len() as u64);
    out[NOTIFY_VALUES_AT..NOTIFY_VALUES_AT + new.len()].copy_from_slice(&new);
    out[NOTIFY_VALUES_AT + new.len()..].copy_from_slice(&old);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn notification_layout_carries_both_values() {
        let mut map = BTreeMap::new();
        CmapChange::apply(&mut map, "a.b", Some(CmapValue::Str("x".into())));
        let c = CmapChange::apply(&mut map, "a.b", Some(CmapValue::U32(5))).unwrap();
        assert_eq!(c.event, TRACK_MODIFY);
        let mut t = Tracks::default();
        t.add("a.b".into(), TRACK_MODIFY, 0xabc).unwrap();
        let out = t.notifications(&c);
        let b = &out[0];
        assert_eq!(b.len(), 336 + 4 + 2);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 9, "id");
        let size = u32::from_ne_bytes(b[8..12].try_into().unwrap());
        assert_eq!(size as usize, b.len(), "size");
        assert_eq!(u64_at(b, 24), 0xabc);
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 3);
        assert_eq!(&b[40..43], b"a.b");
        assert_eq!(
            i32::from_ne_bytes(b[296..300].try_into().unwrap()),
            TRACK_MODIFY
        );
        assert_eq!((b[304], b[312]), (6, 11));
        assert_eq!((u64_at(b, 320), u64_at(b, 328)), (4, 2));
        assert_eq!(&b[336..340], &5u32.to_ne_bytes());
        assert_eq!(&b[340..342], b"x\0");
    }

    #[test]
    fn key_and_prefix_tracks_see_only_their_events() {
        let mut map = BTreeMap::new();
        let mut t = Tracks::default();
        t.add("k.one".into(), TRACK_DELETE, 1).unwrap();
        t.add("k.".into(), TRACK_PREFIX | TRACK_ADD, 2).unwrap();
        let add = CmapChange::apply(&mut map, "k.one", Some(CmapValue::U32(1))).unwrap();
        assert_eq!(add.event, TRACK_ADD);
        let out = t.notifications(&add);
        assert_eq!(out.len(), 1);
        assert_eq!(u64_at(&out[0], 24), 2);
        assert!(
            CmapChange::apply(&mut map, "k.one", Some(CmapValue::U32(1))).is_none(),
            "the same value again is no change"
        );
        let del = CmapChange::apply(&mut map, "k.one", None).unwrap();
        let out = t.notifications(&del);
        assert_eq!(out.len(), 1);
        assert_eq!(u64_at(&out[0], 24), 1);
        assert!(CmapChange::apply(&mut map, "k.one", None).is_none());
        let other = CmapChange::apply(&mut map, "kx", Some(CmapValue::U32(1))).unwrap();
        assert!(t.notifications(&other).is_empty());
    }

    #[test]
    fn tracks_are_bounded_and_checked() {
        let mut t = Tracks::default();
        assert_eq!(t.add("a".into(), 0, 1), Err(cs::ERR_INVALID_PARAM));
        assert_eq!(
            t.add("a".into(), 16 | TRACK_ADD, 1),
            Err(cs::ERR_INVALID_PARAM)
        );
        for i in 0..MAX_TRACKS {
            t.add(format!("k{i}"), TRACK_ADD, i as u64).unwrap();
        }
        assert_eq!(t.add("x".into(), TRACK_ADD, 0), Err(cs::ERR_NO_RESOURCES));
        assert_eq!(t.delete(1), Some(0));
        assert_eq!(t.delete(1), None);
        assert!(t.add("x".into(), TRACK_ADD, 0).is_ok());
    }
}
