//! One process's quorum notifications put back where its Stack reported them.
//!
//! `phalanxd` prints configurations from its event loop and quorum
//! notifications from a thread of their own, so a `quorum` line may come after
//! the next `config` line although the decision came with the earlier one (or
//! before a `config` line although it came later). Both carry the node
//! driver's step (one per pass over the Stack's outputs), and the Stack's
//! order is the steps' order. `quorum_currency` judges a process's belief once
//! the step that installed a configuration is over, taking the events of one
//! instant as that step (the simulator reports a whole Stack input at one
//! virtual time), so a step's events get one instant here too:
//!
//! - the event loop's lines from a step's first configuration to its last (a
//!   transitional configuration, the deliveries it brings, the regular one)
//!   take the first configuration's time — the Stack produced all of them
//!   before the driver handed out any, so no event moves before it happened;
//! - a notification of a step that installed a configuration takes that time
//!   too and follows the step's last configuration (it is the decision made
//!   with them);
//! - any other notification keeps its own time, moved only as far as needed to
//!   lie after the instant of the latest configuration of an earlier step and
//!   no later than the first configuration of a later step (at that
//!   configuration's time it is placed before it: an older decision, the belief
//!   that step starts from).
//!
//! Lines of other threads (CPG relays, the load) keep their times: their order
//! against the event loop's was never known. Nothing is placed by guessing
//! from the clock: times only move to keep the steps' order.

use phalanx_sim::history::{EventKind, Observation};

/// One event of a process's file (file order), with its step when it is a
/// configuration.
pub struct Line {
    /// CLOCK_MONOTONIC ns.
    pub time: u64,
    /// The driver step, for configurations.
    pub config_step: Option<u64>,
    /// Printed by the event loop (configurations, deliveries): in the Stack's
    /// order with the configurations.
    pub event_loop: bool,
    /// What it observed.
    pub kind: EventKind,
}

/// A quorum notification (relay order) with its step.
pub struct Notice {
    /// CLOCK_MONOTONIC ns when the relay printed it.
    pub time: u64,
    /// The driver step that decided it.
    pub step: u64,
    /// The `Observation::Quorum`.
    pub quorum: Observation,
}

/// Merges `notices` into `lines` by step; the result is in time order, each
/// configuration followed by the decisions of its step.
pub fn merge(lines: Vec<Line>, notices: Vec<Notice>) -> Vec<(u64, EventKind)> {
    // Every step that installed configurations: its step, its instant (the
    // first configuration's time), the positions of its first and last
    // configuration in `lines`. The event loop prints in the Stack's order, so a
    // step's configurations are consecutive among the configurations.
    let mut steps: Vec<Step> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(s) = l.config_step else { continue };
        match steps.last_mut() {
            Some(last) if last.step == s => last.last = i,
            _ => steps.push(Step {
                step: s,
                time: l.time,
                first: i,
                last: i,
            }),
        }
    }
    // Sort keys: (time, line position, rank): 0 before the line, 1 the line
    // itself, 2 after it. A stable sort keeps the relay's order among notices
    // with equal keys.
    let mut keyed: Vec<((u64, usize, u8), EventKind)> = Vec::with_capacity(lines.len());
    let mut k = 0;
    for (i, l) in lines.into_iter().enumerate() {
        while steps.get(k).is_some_and(|s| s.last < i) {
            k += 1;
        }
        let time = match steps.get(k) {
            Some(s) if l.event_loop && s.first <= i => s.time,
            _ => l.time,
        };
        keyed.push(((time, i, 1), l.kind));
    }
    for n in notices {
        // The steps up to this one, and the first later one.
        let split = steps.partition_point(|s| s.step <= n.step);
        let last = split.checked_sub(1).map(|k| &steps[k]);
        let next = steps.get(split);
        let key = match (last, next) {
            (Some(s), _) if s.step == n.step => (s.time, s.last, 2),
            (last, next) => {
                let low = last.map_or(0, |s| s.time + 1);
                let high = next.map_or(u64::MAX, |s| s.time);
                let t = n.time.max(low).min(high);
                match next {
                    Some(s) if t >= s.time => (s.time, s.first, 0),
                    // Strictly between the two steps' instants: by time among
                    // the other lines (none of them is a configuration).
                    _ => (t, 0, 0),
                }
            }
        };
        keyed.push((key, EventKind::Observation(n.quorum)));
    }
    keyed.sort_by_key(|(k, _)| *k);
    keyed
        .into_iter()
        .map(|((t, _, _), kind)| (t, kind))
        .collect()
}

/// A step that installed configurations.
struct Step {
    step: u64,
    /// Its instant: the time of its first configuration's line.
    time: u64,
    /// Positions of its first and last configuration.
    first: usize,
    last: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_sim::history::ConfigKind;

    fn config(time: u64, step: u64, ring: u64, members: &[u32]) -> Line {
        Line {
            time,
            config_step: Some(step),
            event_loop: true,
            kind: EventKind::Observation(Observation::Config {
                kind: ConfigKind::Regular,
                ring: (1, ring),
                old_ring: None,
                members: members.to_vec(),
            }),
        }
    }

    fn other(time: u64) -> Line {
        Line {
            time,
            config_step: None,
            event_loop: false,
            kind: EventKind::Leave,
        }
    }

    fn quorum(time: u64, step: u64, ring: u64, members: &[u32]) -> Notice {
        Notice {
            time,
            step,
            quorum: Observation::Quorum {
                quorate: true,
                ring: (1, ring),
                members: members.to_vec(),
            },
        }
    }

    /// (time, ring) of each quorum event and each configuration, in order.
    fn shape(events: &[(u64, EventKind)]) -> Vec<(char, u64, u64)> {
        events
            .iter()
            .filter_map(|(t, k)| match k {
                EventKind::Observation(Observation::Config { ring, .. }) => Some(('c', *t, ring.1)),
                EventKind::Observation(Observation::Quorum { ring, .. }) => Some(('q', *t, ring.1)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_late_notice_joins_the_configuration_of_its_step() {
        // Ring 8 at step 5 and its decision; ring 12 at step 9 printed before
        // step 5's decision was relayed.
        let lines = vec![
            config(100, 5, 8, &[1, 2]),
            other(150),
            config(200, 9, 12, &[1]),
        ];
        let notices = vec![quorum(250, 5, 8, &[1, 2]), quorum(260, 9, 12, &[1])];
        let m = merge(lines, notices);
        assert_eq!(
            shape(&m),
            vec![('c', 100, 8), ('q', 100, 8), ('c', 200, 12), ('q', 200, 12)]
        );
        assert!(m.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
    }

    #[test]
    fn a_notice_of_a_step_without_configuration_stays_between_its_neighbours() {
        let lines = vec![
            config(100, 5, 8, &[1, 2]),
            other(300),
            config(400, 9, 12, &[1]),
        ];
        // Step 6 (no configuration): relayed at 350, after the line at 300.
        // Step 7: relayed late, at 500, after ring 12's line: moved before it.
        // Step 4: relayed early (at 50), before ring 8's line of step 5: it
        // stays before it.
        let notices = vec![
            quorum(50, 4, 4, &[1, 2, 3]),
            quorum(350, 6, 8, &[1, 2]),
            quorum(500, 7, 8, &[1, 2]),
        ];
        let m = merge(lines, notices);
        assert_eq!(
            shape(&m),
            vec![
                ('q', 50, 4),
                ('c', 100, 8),
                ('q', 350, 8),
                ('q', 400, 8),
                ('c', 400, 12)
            ]
        );
        // A notice of a later step relayed before an earlier configuration's
        // line is moved just after it, out of that configuration's instant.
        let m = merge(
            vec![config(100, 5, 8, &[1, 2])],
            vec![quorum(90, 6, 8, &[1])],
        );
        assert_eq!(shape(&m), vec![('c', 100, 8), ('q', 101, 8)]);
    }
}
