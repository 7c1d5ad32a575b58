//! The cmap **stats** map (`cmap_initialize_map(CMAP_MAP_STATS)`,
//! `corosync-cmapctl -m stats`): the node's counters under Corosync's key names
//! where a Phalanx counter means the same thing, under `phalanx-stats`'s names
//! otherwise (see docs/compat.md for the table).
//!
//! - `stats.srp.*`: totem. Corosync's names for tokens, joins, commit tokens,
//!   multicasts, retransmits and state entries (`orf_token_tx`,
//!   `memb_join_rx`, `mcast_retx`, `gather_entered`, ...); Phalanx's own for
//!   the rest (`token_retransmits`, `token_losses`, `tokens_stale`, ...).
//! - `stats.knet.node<N>.link<L>.*`: each link, Corosync's knet names
//!   (`connected`, `enabled`, `mtu`, `tx_data_packets`, `rx_total_packets`,
//!   `tx_ping_packets`, `up_count`, `down_count`, ...) plus `state` and
//!   `rtt_us`.
//! - `stats.ipcs.global.{active,closed}` and per connection
//!   `stats.ipcs.service<S>.<pid>.<conn>.*` (added by the server).
//! - `stats.transport.*`, `stats.rx_drop.*` (every dropped datagram by
//!   reason), `stats.crypto.*`, `stats.driver.*`, `stats.fence.*` as
//!   `phalanx-stats` prints them.
//!
//! Everything is read-only but `stats.clear.{totem,knet,ipc,schedmiss,all}`,
//! which, as in Corosync, zero the counters of their part (here: the `u64`
//! counters read from then on start from the value at the clear).
//!
//! ```
//! use phalanx::admin::{Stat, StatValue};
//! use phalanx::compat::qb::cmap::CmapValue;
//! use phalanx::compat::qb::cmap_stats::from_node;
//!
//! let flat = vec![
//!     Stat { key: "stats.srp.tokens_rx".into(), value: StatValue::Count(9) },
//!     Stat { key: "stats.link.node2.link0.state".into(), value: StatValue::Text("up".into()) },
//! ];
//! let keys = from_node(&flat, 1500);
//! assert!(keys.contains(&("stats.srp.orf_token_rx".into(), CmapValue::u64(9))));
//! assert!(keys.contains(&("stats.knet.node2.link0.connected".into(), CmapValue::u8(1))));
//! ```

use super::cmap::CmapValue;
use crate::admin::{Stat, StatValue};
use std::collections::BTreeMap;

/// Totem counters with a Corosync `stats.srp.*` counterpart: (ours, theirs).
const SRP_NAMES: &[(&str, &str)] = &[
    ("tokens_tx", "orf_token_tx"),
    ("tokens_rx", "orf_token_rx"),
    ("merge_detects_tx", "memb_merge_detect_tx"),
    ("joins_tx", "memb_join_tx"),
    ("joins_rx", "memb_join_rx"),
    ("mcast_retransmits", "mcast_retx"),
    ("commits_tx", "memb_commit_token_tx"),
    ("hold_cancels_tx", "token_hold_cancel_tx"),
    ("operationals", "operational_entered"),
    ("gathers", "gather_entered"),
    ("commits", "commit_entered"),
    ("recoveries", "recovery_entered"),
];

/// Link counters with a Corosync `stats.knet.node<N>.link<L>.*` counterpart.
const LINK_NAMES: &[(&str, &str)] = &[
    ("tx_packets", "tx_data_packets"),
    ("tx_bytes", "tx_data_bytes"),
    ("rx_packets", "rx_total_packets"),
    ("rx_bytes", "rx_total_bytes"),
    ("pings_tx", "tx_ping_packets"),
    ("pings_rx", "rx_ping_packets"),
    ("pongs_tx", "tx_pong_packets"),
    ("pongs_rx", "rx_pong_packets"),
];

/// The `stats.clear.` keys and the key prefixes each one zeroes.
pub fn clear_prefixes(key: &str) -> Option<&'static [&'static str]> {
    Some(match key.strip_prefix("stats.clear.")? {
        "totem" => &["stats.srp."],
        "knet" => &[
            "stats.knet.",
            "stats.transport.",
            "stats.rx_drop.",
            "stats.crypto.",
        ],
        "ipc" => &["stats.ipcs."],
        // Phalanx keeps no scheduling-miss history: nothing to zero.
        "schedmiss" => &[],
        "all" => &["stats."],
        _ => return None,
    })
}

fn renamed<'a>(table: &[(&str, &'a str)], ours: &'a str) -> &'a str {
    table
        .iter()
        .find(|(o, _)| *o == ours)
        .map_or(ours, |(_, theirs)| theirs)
}

/// The stats map's node part from the node's flat counter list (what
/// `phalanx-stats` prints); `link_mtu` is every link's MTU.
pub fn from_node(flat: &[Stat], link_mtu: u32) -> Vec<(String, CmapValue)> {
    let mut out = Vec::with_capacity(flat.len() + 16);
    for s in flat {
        let value = match &s.value {
            StatValue::Count(n) => CmapValue::u64(*n),
            StatValue::Text(t) => CmapValue::Str(t.clone()),
        };
        if let Some(field) = s.key.strip_prefix("stats.srp.") {
            out.push((format!("stats.srp.{}", renamed(SRP_NAMES, field)), value));
            continue;
        }
        let Some(rest) = s.key.strip_prefix("stats.link.") else {
            out.push((s.key.clone(), value));
            continue;
        };
        let Some((node_link, field)) = rest.rsplit_once('.') else {
            continue;
        };
        let p = format!("stats.knet.{node_link}");
        let count = match &s.value {
            StatValue::Count(n) => *n,
            StatValue::Text(_) => 0,
        };
        let as_u32 = CmapValue::U32(u32::try_from(count).unwrap_or(u32::MAX));
        match field {
            "state" => {
                let up = matches!(&s.value, StatValue::Text(t) if t == "up");
                out.push((format!("{p}.state"), value));
                out.push((format!("{p}.connected"), CmapValue::u8(up.into())));
                out.push((format!("{p}.enabled"), CmapValue::u8(1)));
                out.push((format!("{p}.mtu"), CmapValue::U32(link_mtu)));
            }
            "ups" => out.push((format!("{p}.up_count"), as_u32)),
            "downs" => out.push((format!("{p}.down_count"), as_u32)),
            other => out.push((format!("{p}.{}", renamed(LINK_NAMES, other)), value)),
        }
    }
    out
}

/// The `u64` value of a counter key.
fn counter(v: &CmapValue) -> Option<u64> {
    match v {
        CmapValue::Raw { code: 8, bytes } => {
            Some(u64::from_ne_bytes(bytes.as_slice().try_into().ok()?))
        }
        _ => None,
    }
}

/// Counter values at the last `stats.clear.*`, subtracted from what is read.
#[derive(Debug, Default)]
pub struct Baseline {
    at_clear: BTreeMap<String, u64>,
}

impl Baseline {
    /// `raw` as read after the clears: each `u64` counter less its value at
    /// the last clear of its part (baselines of keys gone are forgotten).
    pub fn apply(&mut self, raw: &BTreeMap<String, CmapValue>) -> BTreeMap<String, CmapValue> {
        self.at_clear.retain(|k, _| raw.contains_key(k));
        raw.iter()
            .map(|(k, v)| {
                let v = match (counter(v), self.at_clear.get(k)) {
                    (Some(now), Some(base)) => CmapValue::u64(now.saturating_sub(*base)),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Zeroes the counters of `raw` under `prefixes` (from now on they read
    /// from their current value).
    pub fn clear(&mut self, raw: &BTreeMap<String, CmapValue>, prefixes: &[&str]) {
        for (k, v) in raw {
            if let Some(now) = counter(v) {
                if prefixes.iter().any(|p| k.starts_with(p)) {
                    self.at_clear.insert(k.clone(), now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(key: &str, n: u64) -> Stat {
        Stat {
            key: key.into(),
            value: StatValue::Count(n),
        }
    }

    #[test]
    fn corosync_names_where_they_correspond_ours_elsewhere() {
        let flat = vec![
            count("stats.srp.mcast_retransmits", 4),
            count("stats.srp.token_losses", 2),
            count("stats.rx_drop.replayed", 3),
            count("stats.link.node3.link1.pings_tx", 8),
            count("stats.link.node3.link1.downs", 1),
            count("stats.link.node3.link1.rx_invalid", 5),
        ];
        let keys: BTreeMap<String, CmapValue> = from_node(&flat, 1400).into_iter().collect();
        assert_eq!(keys["stats.srp.mcast_retx"], CmapValue::u64(4));
        assert_eq!(keys["stats.srp.token_losses"], CmapValue::u64(2));
        assert_eq!(keys["stats.rx_drop.replayed"], CmapValue::u64(3));
        assert_eq!(
            keys["stats.knet.node3.link1.tx_ping_packets"],
            CmapValue::u64(8)
        );
        assert_eq!(keys["stats.knet.node3.link1.down_count"], CmapValue::U32(1));
        assert_eq!(keys["stats.knet.node3.link1.rx_invalid"], CmapValue::u64(5));
        assert_eq!(keys.len(), flat.len());
    }

    #[test]
    fn a_clear_zeroes_only_its_part() {
        let mut raw: BTreeMap<String, CmapValue> = [
            ("stats.srp.orf_token_rx".to_string(), CmapValue::u64(10)),
            (
                "stats.knet.node2.link0.tx_data_packets".to_string(),
                CmapValue::u64(7),
            ),
            (
                "stats.knet.node2.link0.mtu".to_string(),
                CmapValue::U32(1500),
            ),
        ]
        .into();
        let mut b = Baseline::default();
        b.clear(&raw, clear_prefixes("stats.clear.totem").unwrap());
        raw.insert("stats.srp.orf_token_rx".into(), CmapValue::u64(13));
        let seen = b.apply(&raw);
        assert_eq!(seen["stats.srp.orf_token_rx"], CmapValue::u64(3));
        assert_eq!(
            seen["stats.knet.node2.link0.tx_data_packets"],
            CmapValue::u64(7)
        );
        b.clear(&raw, clear_prefixes("stats.clear.all").unwrap());
        let seen = b.apply(&raw);
        assert_eq!(
            seen["stats.knet.node2.link0.tx_data_packets"],
            CmapValue::u64(0)
        );
        assert_eq!(seen["stats.knet.node2.link0.mtu"], CmapValue::U32(1500));
        assert!(clear_prefixes("stats.clear.bogus").is_none());
        assert!(clear_prefixes("stats.srp.x").is_none());
    }
}
