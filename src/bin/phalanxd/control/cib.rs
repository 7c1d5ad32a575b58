//! CIB events as controller lines:
//!
//! ```text
//! cib_synced ring=R winner=N version=A.E.U
//! cib_divergence ring=R winner=N ours=A.E.U theirs=A.E.U patch=XML|-
//! ```

use super::emit::{Emitter, pct};
use phalanx::cib::service::CibEvent;
use phalanx::cib::version::Version;
use phalanx::cib::xml::{Escaping, Style, to_string};

fn v(x: &Version) -> String {
    format!("{}.{}.{}", x.admin_epoch, x.epoch, x.num_updates)
}

/// Writes one CIB event (diffs and replies are not reported: the tools ask).
pub fn emit(out: &Emitter, e: &CibEvent) {
    match e {
        CibEvent::Synced {
            ring,
            winner,
            version,
        } => out.emit(
            "cib_synced",
            &format!("ring={ring} winner={winner} version={}", v(version)),
        ),
        CibEvent::Divergence(d) => {
            let patch = d
                .discarded
                .as_ref()
                .map(|p| to_string(p, Style::Compact, Escaping::Xml))
                .unwrap_or_default();
            out.emit(
                "cib_divergence",
                &format!(
                    "ring={} winner={} ours={} theirs={} patch={}",
                    d.ring,
                    d.winner,
                    v(&d.ours),
                    v(&d.theirs),
                    pct(patch.as_bytes())
                ),
            );
        }
        _ => {}
    }
}
