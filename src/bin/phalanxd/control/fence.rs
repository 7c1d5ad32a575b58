//! Fencing events as controller lines:
//!
//! ```text
//! fence_unclean node=N loss=L
//! fence_fenced node=N loss=L
//! fence_unfenced node=N
//! fence_result target=NAME action=A state=done|failed origin=N delegate=N|manual|- client=C reason=TEXT
//! fence_done client=C call=N ok=1|0 reason=TEXT
//! ```

use super::emit::{Emitter, pct};
use phalanx::fence::core::{Delegate, FenceEvent, HistoryEntry, OpState};
use phalanx::stack::FenceNotice;

/// Writes one fencing notice.
pub fn emit(out: &Emitter, n: &FenceNotice) {
    match n {
        FenceNotice::NodeUnclean { node, loss } => {
            out.emit("fence_unclean", &format!("node={node} loss={loss}"));
        }
        FenceNotice::NodeFenced { node, loss } => {
            out.emit("fence_fenced", &format!("node={node} loss={loss}"));
        }
        FenceNotice::NodeUnfenced { node } => {
            out.emit("fence_unfenced", &format!("node={node}"));
        }
        FenceNotice::Fencer(FenceEvent::Fenced(e) | FenceEvent::FenceFailed(e)) => {
            out.emit("fence_result", &result_fields(e));
        }
        FenceNotice::Fencer(FenceEvent::RequestDone {
            client,
            call,
            result,
            ..
        }) => {
            let (ok, reason) = match result {
                Ok(_) => (1, String::new()),
                Err(f) => (0, f.reason.clone()),
            };
            out.emit(
                "fence_done",
                &format!(
                    "client={} call={call} ok={ok} reason={}",
                    pct(client.as_bytes()),
                    pct(reason.as_bytes())
                ),
            );
        }
        _ => {}
    }
}

fn result_fields(e: &HistoryEntry) -> String {
    let state = match e.state {
        OpState::Pending => "pending",
        OpState::Done => "done",
        OpState::Failed => "failed",
    };
    let delegate = match e.delegate {
        Some(Delegate::Node(n)) => n.to_string(),
        Some(Delegate::Manual) => "manual".into(),
        None => "-".into(),
    };
    format!(
        "target={} action={} state={state} origin={} delegate={delegate} client={} reason={}",
        pct(e.target.as_bytes()),
        e.action,
        e.origin,
        pct(e.client.as_bytes()),
        pct(e.exit_reason.as_deref().unwrap_or("").as_bytes())
    )
}
