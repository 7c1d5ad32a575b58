//! The `runtime.*` cmap keys Corosync keeps current as the cluster changes:
//! `runtime.members.<id>.{ip,join_count,status,config_version}` (membership),
//! `runtime.votequorum.*` (quorum state) and `runtime.config.totem.*` (the
//! effective totem timings, fixed for the node's life). Pure: membership and
//! quorum state come in, [`CmapChange`]s (for the trackers) come out.
//!
//! As Corosync's `member_object_joined` / `member_object_left` do: a node's
//! first join sets its `ip` (`"r(0) ip(10.0.0.1) "`, one `r(<link>) ip(<addr>) `
//! per configured link), `join_count` 1 and `status` `joined`; a later join
//! adds one to `join_count`; a leave sets `status` `left` and keeps the rest.
//! `config_version` (u64) is the node's `totem.config_version` (0 when unset).
//!
//! ```
//! use phalanx::compat::qb::cmap::CmapValue;
//! use phalanx::compat::qb::cmap_runtime::MemberKeys;
//! use std::collections::BTreeMap;
//!
//! let addrs = BTreeMap::from([(1, vec!["10.0.0.1".parse().unwrap()]), (2, vec!["10.0.0.2".parse().unwrap()])]);
//! let mut map = BTreeMap::new();
//! let mut members = MemberKeys::default();
//! members.update(&mut map, &[1, 2], &addrs);
//! members.update(&mut map, &[1], &addrs);
//! assert_eq!(map["runtime.members.2.status"], CmapValue::Str("left".into()));
//! members.update(&mut map, &[1, 2], &addrs);
//! assert_eq!(map["runtime.members.2.join_count"], CmapValue::U32(2));
//! assert_eq!(map["runtime.members.2.ip"], CmapValue::Str("r(0) ip(10.0.0.2) ".into()));
//! ```

use super::cmap::CmapValue;
use super::cmap_track::CmapChange;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The members the `runtime.members.*` keys were last brought up to date with.
#[derive(Debug, Default)]
pub struct MemberKeys {
    members: BTreeSet<u32>,
}

impl MemberKeys {
    /// Brings the keys up to date with `members` (the current ring), the
    /// addresses from `addrs`; the changes made.
    pub fn update(
        &mut self,
        map: &mut BTreeMap<String, CmapValue>,
        members: &[u32],
        addrs: &BTreeMap<u32, Vec<IpAddr>>,
    ) -> Vec<CmapChange> {
        let now: BTreeSet<u32> = members.iter().copied().collect();
        let mut changes = Vec::new();
        let mut set = |map: &mut BTreeMap<String, CmapValue>, key: String, v: CmapValue| {
            changes.extend(CmapChange::apply(map, &key, Some(v)));
        };
        for &id in now.difference(&self.members) {
            let key = |field: &str| format!("runtime.members.{id}.{field}");
            let count = match map.get(&key("join_count")) {
                Some(CmapValue::U32(n)) if map.contains_key(&key("ip")) => n.saturating_add(1),
                _ => 1,
            };
            if count == 1 {
                let ip: String = addrs
                    .get(&id)
                    .map(|a| {
                        a.iter()
                            .enumerate()
                            .map(|(l, ip)| format!("r({l}) ip({ip}) "))
                            .collect()
                    })
                    .unwrap_or_default();
                set(map, key("ip"), CmapValue::Str(ip));
                // Phalanx has no totem.config_version: every node runs version 0,
                // which Corosync publishes for a file without one.
                set(map, key("config_version"), CmapValue::u64(0));
            }
            set(map, key("join_count"), CmapValue::U32(count));
            set(map, key("status"), CmapValue::Str("joined".into()));
        }
        for &id in self.members.difference(&now) {
            let key = format!("runtime.members.{id}.status");
            set(map, key, CmapValue::Str("left".into()));
        }
        self.members = now;
        changes
    }
}

/// `runtime.votequorum.*` from the quorum state: `two_node` and
/// `wait_for_all_status` (u8, 1 while wait-for-all still holds quorum back),
/// `lowest_node_id` / `highest_node_id` of the current members; the changes.
pub fn votequorum_keys(
    map: &mut BTreeMap<String, CmapValue>,
    info: &phalanx_quorum::ClusterInfo,
) -> Vec<CmapChange> {
    let mut values = vec![
        ("two_node", CmapValue::u8(info.two_node.into())),
        (
            "wait_for_all_status",
            CmapValue::u8(info.wfa_waiting.into()),
        ),
    ];
    if let (Some(lo), Some(hi)) = (info.members.iter().min(), info.members.iter().max()) {
        values.push(("lowest_node_id", CmapValue::U32(*lo)));
        values.push(("highest_node_id", CmapValue::U32(*hi)));
    }
    values
        .into_iter()
        .filter_map(|(k, v)| CmapChange::apply(map, &format!("runtime.votequorum.{k}"), Some(v)))
        .collect()
}

/// `runtime.config.totem.*`: the effective timings (ms) and counts of `c`.
pub fn totem_runtime_keys(c: &phalanx_totem::Config) -> Vec<(String, CmapValue)> {
    let ms = |d: std::time::Duration| CmapValue::U32(d.as_millis().min(u32::MAX as u128) as u32);
    [
        ("token", ms(c.token_timeout)),
        ("token_retransmit", ms(c.token_retransmit)),
        ("hold", ms(c.hold)),
        ("join", ms(c.join_interval)),
        ("consensus", ms(c.consensus_timeout)),
        ("merge", ms(c.merge_interval)),
        (
            "fail_recv_const",
            CmapValue::U32(c.fail_to_receive_rotations),
        ),
        ("seqno_unchanged_const", CmapValue::U32(c.idle_rotations)),
        ("max_messages", CmapValue::U32(c.max_messages)),
        ("window_size", CmapValue::U32(c.window_size)),
    ]
    .into_iter()
    .map(|(k, v)| (format!("runtime.config.totem.{k}"), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::qb::cmap_track::{TRACK_ADD, TRACK_MODIFY};

    #[test]
    fn joins_and_leaves_change_only_what_corosync_changes() {
        let addrs = BTreeMap::from([(
            3,
            vec!["10.0.0.3".parse().unwrap(), "fd00::3".parse().unwrap()],
        )]);
        let mut map = BTreeMap::new();
        let mut m = MemberKeys::default();
        let first = m.update(&mut map, &[3], &addrs);
        assert_eq!(first.len(), 4);
        assert!(first.iter().all(|c| c.event == TRACK_ADD));
        assert_eq!(
            map["runtime.members.3.ip"],
            CmapValue::Str("r(0) ip(10.0.0.3) r(1) ip(fd00::3) ".into())
        );
        assert_eq!(map["runtime.members.3.config_version"], CmapValue::u64(0));
        assert!(m.update(&mut map, &[3], &addrs).is_empty(), "no change");
        let left = m.update(&mut map, &[], &addrs);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].key, "runtime.members.3.status");
        assert_eq!(left[0].event, TRACK_MODIFY);
        assert_eq!(left[0].old, Some(CmapValue::Str("joined".into())));
        let back = m.update(&mut map, &[3], &addrs);
        let keys: Vec<&str> = back.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            ["runtime.members.3.join_count", "runtime.members.3.status"]
        );
        assert_eq!(map["runtime.members.3.join_count"], CmapValue::U32(2));
    }
}
