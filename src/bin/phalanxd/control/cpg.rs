//! Relays a CPG member's events as `cpg-*` lines.

use super::emit::{Emitter, guarantee, ids, list, pct};
use crossbeam_channel::Receiver;
use phalanx::cpg::{Change, CpgEvent, MemberId, ViewId};
use phalanx::totem::ConfigKind;

/// Relays member `local`'s events on a thread of their own until its stream ends
/// (its handle dropped, or the node stopped); then reports `cpg-end`.
pub fn relay(local: u32, events: Receiver<CpgEvent>, out: Emitter) {
    let spawned = std::thread::Builder::new()
        .name(format!("phalanxd-cpg-{local}"))
        .spawn(move || {
            for ev in events.iter() {
                if let Some((event, fields)) = line(local, &ev) {
                    out.emit(event, &fields);
                }
            }
            out.emit("cpg-end", &format!("member={local}"));
        });
    if let Err(e) = spawned {
        eprintln!("phalanxd: cannot relay member {local}'s events: {e}");
    }
}

fn member(m: &MemberId) -> String {
    format!("{}/{}", m.node, m.local)
}

fn changes(v: &[Change]) -> String {
    list(
        v.iter()
            .map(|c| format!("{}:{:?}", member(&c.member), c.reason)),
    )
}

/// `sync@<ring>` or `msg@<ring>:<sender>:<seq>`: the same on every node.
fn view_id(v: &ViewId) -> String {
    match v {
        ViewId::Sync(r) => format!("sync@{r}"),
        ViewId::Message { ring, sender, seq } => format!("msg@{ring}:{sender}:{seq}"),
        other => pct(format!("{other:?}").as_bytes()),
    }
}

fn line(local: u32, ev: &CpgEvent) -> Option<(&'static str, String)> {
    Some(match ev {
        CpgEvent::Change(c) => (
            "cpg-view",
            format!(
                "member={local} group={} view={} members={} left={} joined={}",
                pct(c.group.as_bytes()),
                view_id(&c.view),
                list(c.members.iter().map(member)),
                changes(&c.left),
                changes(&c.joined)
            ),
        ),
        CpgEvent::Deliver(d) => (
            "cpg-deliver",
            format!(
                "member={local} group={} from={} guarantee={} len={} text={}",
                pct(d.group.as_bytes()),
                member(&d.sender),
                guarantee(d.guarantee),
                d.data.len(),
                pct(&d.data)
            ),
        ),
        CpgEvent::Totem(t) => (
            "cpg-totem",
            format!(
                "member={local} kind={} ring={} members={}",
                if t.kind == ConfigKind::Regular {
                    "regular"
                } else {
                    "transitional"
                },
                t.ring,
                ids(&t.members)
            ),
        ),
        _ => return None,
    })
}
