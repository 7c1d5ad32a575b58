//! A node's live answers as short human-readable lines (the same facts
//! `phalanx-cpgtool`, `phalanx-quorumtool`, `phalanx-stats` and `phalanx-fence`
//! print).

use crate::collect::Answer;
use phalanx::admin::{Response, StatValue};

/// The lines of one answer.
pub fn lines(answer: &Answer) -> Vec<String> {
    let r = match answer {
        Ok(r) => r,
        Err(e) => return vec![format!("no answer: {e}")],
    };
    match r {
        Response::Status(s) => {
            let mut v = vec![format!(
                "node {} of cluster {:?}, ring {}.{}, {}",
                s.node_id,
                s.cluster_name,
                s.ring.0,
                s.ring.1,
                if s.operational {
                    "operational"
                } else {
                    "forming a ring"
                }
            )];
            for n in &s.nodes {
                v.push(format!(
                    "  node {:>4} {:<16} {}",
                    n.id,
                    n.name,
                    if n.member { "member" } else { "not a member" }
                ));
            }
            v
        }
        Response::Quorum(q) => {
            let mut v = vec![format!(
                "{}, expected votes {}, total votes {}, quorum {}{}",
                if q.quorate { "quorate" } else { "NOT quorate" },
                q.expected_votes,
                q.total_votes,
                q.quorum,
                if q.flags.is_empty() {
                    String::new()
                } else {
                    format!(", flags {}", q.flags.join(" "))
                }
            )];
            for n in &q.nodes {
                v.push(format!(
                    "  node {:>4} {:<16} votes {} {}",
                    n.id,
                    n.name,
                    n.votes,
                    if n.member { "member" } else { "not a member" }
                ));
            }
            v
        }
        Response::Stats { stats } => stats
            .iter()
            .map(|s| match &s.value {
                StatValue::Count(c) => format!("{} = {c}", s.key),
                StatValue::Text(t) => format!("{} = {t}", s.key),
            })
            .collect(),
        Response::Fence(f) => {
            let mut v = vec![format!(
                "{} devices, {} history entries",
                f.devices.len(),
                f.history.len()
            )];
            v.extend(
                f.devices
                    .iter()
                    .map(|d| format!("  device {} ({})", d.id, d.agent)),
            );
            v.extend(f.nodes.iter().map(|n| {
                format!(
                    "  node {:>4} {:<16} {}{}",
                    n.id,
                    n.name,
                    n.state,
                    if n.unfenced { ", unfenced" } else { "" }
                )
            }));
            v.extend(f.history.iter().map(|h| {
                format!(
                    "  {} {} {} by {} (origin {}, client {}){}",
                    h.action,
                    h.target,
                    h.state,
                    h.delegate,
                    h.origin,
                    h.client,
                    h.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            }));
            v
        }
        Response::Cib(c) => match (c.version, &c.error) {
            (Some((a, e, u)), _) => vec![format!(
                "version {a}.{e}.{u} (admin_epoch.epoch.num_updates), {} bytes",
                c.output.as_ref().map_or(0, String::len)
            )],
            (None, Some(e)) => vec![format!("no CIB: {e}")],
            (None, None) => vec!["no CIB version".into()],
        },
        Response::Error { message } => vec![format!("error: {message}")],
        other => vec![format!("{other:?}")],
    }
}
