//! Every counter of a node as a flat, ordered list of `stats.*` keys — what
//! `corosync-cmapctl -m stats` shows for Corosync — answered on the admin socket
//! ([`Request::Stats`](crate::admin::Request::Stats)) and printed by `phalanx-stats`.

use super::{NodeStats, PeerLinkStatus};
use crate::admin::{Stat, StatValue};
use crate::link::LinkState;

/// Pushes `stats.<prefix>.<field>` for each listed field of `$s`.
macro_rules! fields {
    ($out:expr, $prefix:expr, $s:expr, [$($f:ident),* $(,)?]) => {
        $( $out.push(Stat::count(format!("{}.{}", $prefix, stringify!($f)), $s.$f as u64)); )*
    };
}

/// The node's counters and per-link states, in a fixed order: totem
/// (`stats.srp`), sockets (`stats.transport`), datagram authentication and every
/// drop by reason (`stats.rx_drop`), the driver (`stats.driver`), then each peer's
/// links (`stats.link.node<N>.link<L>`).
pub(crate) fn flatten(stats: &NodeStats, links: &[PeerLinkStatus]) -> Vec<Stat> {
    let mut out = Vec::with_capacity(128);
    let t = &stats.totem;
    fields!(
        out,
        "stats.srp",
        t,
        [
            tokens_rx,
            tokens_tx,
            token_retransmits,
            tokens_stale,
            tokens_invalid,
            mcast_invalid,
            membership_invalid,
            token_holds,
            send_holds,
            send_hold_frames,
            hold_cancels_tx,
            mcast_tx,
            mcast_rx,
            mcast_retransmits,
            mcast_duplicates,
            delivered,
            delivered_safe,
            sent,
            send_try_again,
            joins_tx,
            joins_rx,
            joins_stale,
            commits_tx,
            gathers,
            commits,
            recoveries,
            operationals,
            consensus_timeouts,
            token_losses,
            pauses_detected,
            merge_detects_tx,
            recovery_retransmits,
            failed_to_receive,
            rx_malformed,
            rx_unknown_sender,
            frames_malformed,
            fragments_dropped,
        ]
    );
    let d = &stats.driver;
    let tr = &d.transport;
    fields!(
        out,
        "stats.transport",
        tr,
        [
            tx,
            tx_bytes,
            rx,
            rx_bytes,
            tx_errors,
            tx_multicast,
            tx_gso_sends,
            tx_gso_refused,
            rx_gro_reads
        ]
    );
    // Every datagram the node refused, by reason: what an operator looks at to see
    // forged, replayed or misaddressed traffic.
    let c = &d.crypto;
    out.push(Stat::count(
        "stats.rx_drop.unknown_address",
        tr.rx_unknown_addr,
    ));
    out.push(Stat::count("stats.rx_drop.own", tr.rx_own));
    out.push(Stat::count("stats.rx_drop.auth_failed", c.auth_failed));
    out.push(Stat::count("stats.rx_drop.replayed", c.replayed));
    out.push(Stat::count("stats.rx_drop.too_old", c.too_old));
    out.push(Stat::count("stats.rx_drop.unknown_node", c.unknown_node));
    out.push(Stat::count("stats.rx_drop.malformed", c.malformed));
    out.push(Stat::count("stats.rx_drop.spoofed", d.rx_spoofed));
    out.push(Stat::count("stats.rx_drop.link_monitor", d.link_rx_dropped));
    out.push(Stat::count("stats.crypto.sealed", c.sealed));
    out.push(Stat::count("stats.crypto.opened", c.ok));
    fields!(
        out,
        "stats.driver",
        d,
        [
            loops,
            core_refusals,
            persist_errors,
            link_changes,
            link_stalls,
            raw_pending,
            stalled_on_members,
            held_bursts,
        ]
    );
    out.push(Stat::count(
        "stats.driver.max_busy_us",
        u64::try_from(d.max_busy.as_micros()).unwrap_or(u64::MAX),
    ));
    out.push(Stat::count(
        "stats.driver.realtime_refused",
        u64::from(d.realtime_refused),
    ));
    let f = &stats.fence;
    fields!(
        out,
        "stats.fence",
        f,
        [
            malformed,
            decision_refused,
            sends_dropped,
            cib_devices,
            cib_refused
        ]
    );
    for l in links {
        let p = format!("stats.link.node{}.link{}", l.peer, l.link);
        let state = match l.state {
            LinkState::Up => "up",
            LinkState::Down => "down",
        };
        out.push(Stat::text(format!("{p}.state"), state));
        if let Some(rtt) = l.rtt {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
            out.push(Stat::count(format!("{p}.rtt_us"), us));
        }
        let s = &l.stats;
        fields!(
            out,
            p,
            s,
            [
                tx_packets,
                tx_bytes,
                rx_packets,
                rx_bytes,
                pings_tx,
                pings_rx,
                pongs_tx,
                pongs_rx,
                pongs_unexpected,
                rx_invalid,
                tx_dropped,
                ups,
                downs,
            ]
        );
    }
    out
}

impl Stat {
    fn count(key: impl Into<String>, value: u64) -> Stat {
        Stat {
            key: key.into(),
            value: StatValue::Count(value),
        }
    }

    fn text(key: impl Into<String>, value: &str) -> Stat {
        Stat {
            key: key.into(),
            value: StatValue::Text(value.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_carry_the_values() {
        let mut stats = NodeStats::default();
        stats.totem.tokens_rx = 7;
        stats.driver.crypto.auth_failed = 3;
        let flat = flatten(&stats, &[]);
        let mut keys: Vec<&str> = flat.iter().map(|s| s.key.as_str()).collect();
        let get = |k: &str| flat.iter().find(|s| s.key == k).map(|s| s.value.clone());
        assert_eq!(get("stats.srp.tokens_rx"), Some(StatValue::Count(7)));
        assert_eq!(get("stats.rx_drop.auth_failed"), Some(StatValue::Count(3)));
        assert_eq!(get("stats.rx_drop.replayed"), Some(StatValue::Count(0)));
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
    }
}
