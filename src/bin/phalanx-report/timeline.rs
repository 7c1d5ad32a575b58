//! One timeline from every node's flight recorder and the operator's own notes
//! (`--events`): records ordered by wall time, each with the ring its writer was in
//! and the process lifetime ("boot") it came from, and the records an operator looks
//! for first — starts, stops, token losses, new rings, quorum, links, fencing,
//! errors — marked as key events.

use crate::collect::Collected;
use phalanx::logsys::Level;
use phalanx::logsys::dump::parse_time;

/// Why an entry is a key event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// Something outside the nodes (a kill, a cable pulled), from `--events`.
    External,
    /// A node process started.
    Start,
    /// A node process stopped on its own.
    Stop,
    /// Totem lost the token or failed to receive: the start of a membership change.
    TokenLoss,
    /// A new ring (configuration) was installed.
    RingFormed,
    /// Quorum was gained or lost.
    Quorum,
    /// A link went up or down.
    Link,
    /// A fencing decision, operation or result.
    Fence,
    /// An error or warning of any subsystem.
    Problem,
}

impl Key {
    /// A short tag for text and HTML.
    pub fn tag(self) -> &'static str {
        match self {
            Key::External => "EXTERNAL",
            Key::Start => "START",
            Key::Stop => "STOP",
            Key::TokenLoss => "TOKEN-LOSS",
            Key::RingFormed => "RING",
            Key::Quorum => "QUORUM",
            Key::Link => "LINK",
            Key::Fence => "FENCE",
            Key::Problem => "PROBLEM",
        }
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Wall time, ns since the Unix epoch (the writer's monotonic time for records
    /// that carry no wall time).
    pub at_ns: u64,
    /// The node that wrote it, or that an external event names.
    pub node: Option<u32>,
    /// The writer's process lifetime: 1 for the first `phalanxd` start seen in its
    /// recorder, one more per restart; 0 before any start record (or external).
    pub boot: u32,
    /// The ring `(representative, sequence)` the writer was in, when known.
    pub ring: Option<(u32, u64)>,
    /// Severity (`None` for external events).
    pub level: Option<Level>,
    /// Subsystem (`external` for external events).
    pub subsystem: String,
    /// The message.
    pub message: String,
    /// Why it is a key event, if it is one.
    pub key: Option<Key>,
}

/// The time window of the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// First instant, ns.
    pub since: Option<u64>,
    /// Last instant, ns.
    pub until: Option<u64>,
}

impl Window {
    fn holds(&self, t: u64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// The timeline of `nodes` and `external` events within `window`. Ring and boot
/// are worked out from each node's whole recorder, so an entry early in the window
/// still knows the ring it was written in.
pub fn build(nodes: &[Collected], external: &[Entry], window: Window) -> Vec<Entry> {
    let mut all = Vec::new();
    for c in nodes {
        let Ok(snap) = &c.recorder else { continue };
        let mut records: Vec<_> = snap.records.iter().collect();
        // One recorder holds several threads' records (and, appended, several
        // processes'): order them by time before following the ring.
        records.sort_by_key(|r| if r.wall_ns != 0 { r.wall_ns } else { r.mono_ns });
        let mut ring = None;
        let mut boot = 0;
        for r in records {
            let key = classify(r.level, &r.subsystem, &r.message);
            if key == Some(Key::Start) {
                boot += 1;
                ring = None;
            }
            if let Some(formed) = formed_ring(&r.subsystem, &r.message) {
                ring = Some(formed);
            }
            let at_ns = if r.wall_ns != 0 { r.wall_ns } else { r.mono_ns };
            if window.holds(at_ns) {
                all.push(Entry {
                    at_ns,
                    node: Some(r.node),
                    boot,
                    ring,
                    level: Some(r.level),
                    subsystem: r.subsystem.clone(),
                    message: r.message.clone(),
                    key,
                });
            }
        }
    }
    all.extend(external.iter().filter(|e| window.holds(e.at_ns)).cloned());
    // Stable: at one instant, node order then write order.
    all.sort_by_key(|e| (e.at_ns, e.node.unwrap_or(u32::MAX)));
    all
}

/// Whether a record is a key event, and which kind. Matches the messages the
/// node and its protocol cores write (`phalanxd`, totem's membership and token
/// code, the quorum, link and fence notices).
pub fn classify(level: Level, subsystem: &str, message: &str) -> Option<Key> {
    match subsystem {
        "node" if message.starts_with("phalanxd ") && message.contains(" starting") => {
            Some(Key::Start)
        }
        "node" if message.starts_with("stopping") => Some(Key::Stop),
        "totem" if message.contains("token lost") || message.contains("FAILED TO RECEIVE") => {
            Some(Key::TokenLoss)
        }
        "totem" if formed_ring(subsystem, message).is_some() => Some(Key::RingFormed),
        "quorum" if level <= Level::Notice => Some(Key::Quorum),
        "link" if level <= Level::Notice => Some(Key::Link),
        "fence" if level <= Level::Notice => Some(Key::Fence),
        _ if level <= Level::Warn => Some(Key::Problem),
        _ => None,
    }
}

/// The ring of a totem "ring R.S formed with ..." record.
pub fn formed_ring(subsystem: &str, message: &str) -> Option<(u32, u64)> {
    if subsystem != "totem" {
        return None;
    }
    let rest = message.strip_prefix("ring ")?;
    let (id, tail) = rest.split_once(' ')?;
    if !tail.starts_with("formed") {
        return None;
    }
    let (rep, seq) = id.split_once('.')?;
    Some((rep.parse().ok()?, seq.parse().ok()?))
}

/// Parses an events file: one event per line, `TIME [nID] TEXT`, where TIME is
/// RFC 3339 UTC or seconds since the Unix epoch, `nID` (optional) names the node
/// the event concerns; blank lines and `#` comments are skipped.
///
/// # Errors
/// The line number and what is wrong, for the first bad line.
pub fn parse_events(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| format!("line {}: {why}", i + 1);
        let (time, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let at_ns = parse_time(time).map_err(bad)?;
        let rest = rest.trim_start();
        let (node, text) = match rest.split_once(char::is_whitespace) {
            Some((tag, text)) if node_tag(tag).is_some() => (node_tag(tag), text.trim()),
            _ if node_tag(rest).is_some() => (node_tag(rest), ""),
            _ => (None, rest),
        };
        if text.is_empty() {
            return Err(bad("no text".into()));
        }
        out.push(Entry {
            at_ns,
            node,
            boot: 0,
            ring: None,
            level: None,
            subsystem: "external".into(),
            message: text.to_string(),
            key: Some(Key::External),
        });
    }
    Ok(out)
}

fn node_tag(s: &str) -> Option<u32> {
    s.strip_prefix('n')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_nodes_write_are_classified() {
        use Level::*;
        let cases = [
            (
                Notice,
                "node",
                "phalanxd 0.1.0 starting, pid 7",
                Some(Key::Start),
            ),
            (Error, "node", "stopping: shutdown", Some(Key::Stop)),
            (
                Info,
                "totem",
                "entering GATHER from OPERATIONAL: token lost in OPERATIONAL",
                Some(Key::TokenLoss),
            ),
            (
                Warn,
                "totem",
                "FAILED TO RECEIVE: aru stuck at 4 for 50 rotations",
                Some(Key::TokenLoss),
            ),
            (
                Notice,
                "totem",
                "ring 1.12 formed with 2 members (0 joined, 1 left)",
                Some(Key::RingFormed),
            ),
            (Notice, "quorum", "ring 12: quorate", Some(Key::Quorum)),
            (Notice, "link", "link 0 to node 3 is down", Some(Key::Link)),
            (Notice, "fence", "node 3 fenced by 1", Some(Key::Fence)),
            (Info, "fence", "device list refreshed", None),
            (Warn, "cib", "anything", Some(Key::Problem)),
            (
                Info,
                "totem",
                "entering GATHER from OPERATIONAL: member left",
                None,
            ),
            (Debug, "totem", "join from 2 ring_seq 4 procs [1, 2]", None),
        ];
        for (level, subsys, msg, want) in cases {
            assert_eq!(classify(level, subsys, msg), want, "{subsys}: {msg}");
        }
    }

    #[test]
    fn ring_ids_are_read_from_formed_records_only() {
        assert_eq!(
            formed_ring("totem", "ring 3.40 formed with 3 members"),
            Some((3, 40))
        );
        assert_eq!(formed_ring("totem", "ring 3.x formed"), None);
        assert_eq!(formed_ring("totem", "ring 3.4 lost"), None);
        assert_eq!(formed_ring("quorum", "ring 3.4 formed"), None);
    }

    #[test]
    fn events_files_parse_or_name_the_bad_line() {
        let ev =
            parse_events("# kills\n1700000000.5 n3 kill -9\n\n2026-12-06T10:00:00Z cable cut\n")
                .unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].at_ns, 1_700_000_000_500_000_000);
        assert_eq!(ev[0].node, Some(3));
        assert_eq!(ev[0].message, "kill -9");
        assert_eq!(ev[1].node, None);
        assert_eq!(ev[1].message, "cable cut");
        assert!(
            parse_events("yesterday n1 boom")
                .unwrap_err()
                .starts_with("line 1:")
        );
        assert!(parse_events("1 n2").unwrap_err().contains("no text"));
    }

    #[test]
    fn the_window_keeps_the_ring_known_before_it() {
        let log = phalanx::logsys::Logger::memory(1 << 16);
        phalanx::logsys::record!(
            log,
            10,
            1,
            Notice,
            "node",
            "phalanxd 0.1 starting, pid {}",
            1u32
        );
        phalanx::logsys::record!(
            log,
            20,
            1,
            Notice,
            "totem",
            "ring 1.4 formed with 1 members"
        );
        phalanx::logsys::record!(log, 30, 1, Info, "cpg", "later");
        let snap = phalanx::logsys::read_bytes(&log.snapshot_bytes().unwrap()).unwrap();
        let c = Collected {
            source: crate::collect::Source {
                id: 1,
                state_dir: "/nonexistent".into(),
            },
            recorder: Ok(snap),
            live: None,
            unreachable: Some("down".into()),
        };
        let ext = parse_events("0.000000025 n1 poked").unwrap();
        let t = build(
            std::slice::from_ref(&c),
            &ext,
            Window {
                since: Some(25),
                until: None,
            },
        );
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].key, Some(Key::External));
        assert_eq!(
            (t[1].message.as_str(), t[1].ring, t[1].boot),
            ("later", Some((1, 4)), 1)
        );
    }
}
