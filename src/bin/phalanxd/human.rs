//! The default and `--chat` modes: human-readable lines on stdout.

use phalanx::compat::qb::IpcServer;
use phalanx::node::{LinkState, Node, NodeEvent};
use phalanx::totem::{ConfigKind, Guarantee, NodeId};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Logs configuration changes and link state changes (and, with `chat`, multicasts
/// stdin lines and prints deliveries) until `stop`; then leaves the cluster.
pub fn run(
    node: Node,
    ipc: Option<IpcServer>,
    me: NodeId,
    chat: bool,
    stop: &'static AtomicBool,
) -> Result<(), String> {
    if chat {
        let h = node.handle();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Err(e) = h.mcast(Guarantee::Agreed, line.as_bytes()) {
                    eprintln!("phalanxd: not sent: {e}");
                }
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let out = std::io::stdout();
    let handle = node.handle();
    let mut links: BTreeMap<(u32, u8), LinkState> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        let ev = node.events().recv_timeout(Duration::from_millis(100));
        let mut out = out.lock();
        for l in handle.links() {
            let before = links.insert((l.peer, l.link), l.state);
            // Report changes, and links that are up from the start.
            if before.is_some_and(|b| b != l.state) || before.is_none() && l.state == LinkState::Up
            {
                let state = if l.state == LinkState::Up {
                    "up"
                } else {
                    "down"
                };
                let rtt = l.rtt.map(|r| format!(" (rtt {r:?})")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "[node {me}] link {} to node {} is {state}{rtt}",
                    l.link, l.peer
                );
            }
        }
        let Ok(ev) = ev else {
            let _ = out.flush();
            continue;
        };
        match ev {
            NodeEvent::Config(c, _) if c.kind == ConfigKind::Regular => {
                let _ = writeln!(
                    out,
                    "[node {me}] ring {} members {:?} joined {:?} left {:?}",
                    c.ring, c.members, c.joined, c.left
                );
            }
            NodeEvent::Config(c, _) => {
                let _ = writeln!(
                    out,
                    "[node {me}] transitional configuration {:?} (left {:?})",
                    c.members, c.left
                );
            }
            NodeEvent::Deliver(d) if chat => {
                let _ = writeln!(out, "{}: {}", d.sender, String::from_utf8_lossy(&d.data));
            }
            NodeEvent::Deliver(_) => {}
            NodeEvent::Fence(n) => {
                let _ = writeln!(out, "[node {me}] fencing: {n:?}");
            }
            _ => {}
        }
        let _ = out.flush();
    }
    eprintln!("phalanxd: node {me} leaving");
    // Clients first: their CPG members go down while the node still runs.
    if let Some(ipc) = ipc {
        ipc.stop();
    }
    node.leave().map_err(|e| e.to_string())
}
