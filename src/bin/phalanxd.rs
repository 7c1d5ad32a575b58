//! `phalanxd` — the reference node: one cluster member from a configuration file.
//!
//! ```text
//! phalanxd --config FILE [--node-id N] [--chat] [--no-realtime]
//! ```
//!
//! The driver thread runs SCHED_RR (priority 50) when allowed, as Corosync does by
//! default; `--no-realtime` keeps normal scheduling.
//!
//! Loads a corosync.conf-style or TOML file (see docs/config.md), joins the
//! cluster and logs every configuration change and every link going up or down
//! (`[node 1] link 0 to node 3 is down`, see docs/links.md). With `--chat`, each stdin line is
//! multicast (agreed) and every delivered message printed as `<node>: <text>`.
//! Every record goes to a crash-surviving flight recorder in the state directory
//! (`phalanx-blackbox <state_dir>/blackbox-<id>` reads it). SIGINT or SIGTERM (or
//! the end of stdin with `--chat`) leaves the cluster cleanly.

use phalanx::config;
use phalanx::logsys::{Logger, install_panic_hook};
use phalanx::node::{LinkState, Node, NodeEvent, NodeOptions};
use phalanx::totem::{ConfigKind, Guarantee};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phalanxd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let path = value("--config").ok_or("usage: phalanxd --config FILE [--node-id N] [--chat]")?;
    let hint = match value("--node-id") {
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| format!("--node-id: not a node id: {v}"))?,
        ),
        None => None,
    };
    let chat = args.iter().any(|a| a == "--chat");

    let loaded = config::load(&path).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        eprintln!("phalanxd: warning: {w}");
    }
    let cfg = loaded.config;
    let me = cfg.local_node(hint).map_err(|e| e.to_string())?.node_id;
    let mut opts = NodeOptions::from_config(&cfg, me).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
    let blackbox = cfg.state_dir.join(format!("blackbox-{me}"));
    let logger =
        Logger::file(&blackbox, 8 << 20).map_err(|e| format!("{}: {e}", blackbox.display()))?;
    install_panic_hook(logger.clone());
    opts.logger = logger;
    // For phalanx-cpgtool / phalanx-quorumtool.
    opts.admin_socket = Some(phalanx::admin::socket_path(&cfg.state_dir, me));
    // Like Corosync's default `sched_rr: yes`: CPU starvation of this thread must
    // not look like a dead node to the others. Refused without CAP_SYS_NICE.
    if !args.iter().any(|a| a == "--no-realtime") {
        opts.realtime_priority = Some(50);
    }
    let crypto = if opts.crypto.is_some() { "on" } else { "OFF" };
    let mut listen = vec![format!("link 0 {}", opts.addrs[&me])];
    for l in &opts.links.extra {
        listen.push(format!("link {} {}", l.number, l.addrs[&me]));
    }
    eprintln!(
        "phalanxd: node {me} of cluster {:?} ({} nodes), listening on {} ({:?} mode), crypto {crypto}, token {:?}",
        cfg.cluster_name,
        cfg.nodes.len(),
        listen.join(", "),
        opts.links.mode,
        opts.totem.token_timeout
    );

    // SAFETY: installing an async-signal-safe handler that only stores an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let node = Node::start(opts).map_err(|e| format!("cannot start: {e}"))?;
    if chat {
        let h = node.handle();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Err(e) = h.mcast(Guarantee::Agreed, line.as_bytes()) {
                    eprintln!("phalanxd: not sent: {e}");
                }
            }
            STOP.store(true, Ordering::SeqCst);
        });
    }
    let out = std::io::stdout();
    let handle = node.handle();
    let mut links: BTreeMap<(u32, u8), LinkState> = BTreeMap::new();
    while !STOP.load(Ordering::SeqCst) {
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
            NodeEvent::Config(c) if c.kind == ConfigKind::Regular => {
                let _ = writeln!(
                    out,
                    "[node {me}] ring {} members {:?} joined {:?} left {:?}",
                    c.ring, c.members, c.joined, c.left
                );
            }
            NodeEvent::Config(c) => {
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
        }
        let _ = out.flush();
    }
    eprintln!("phalanxd: node {me} leaving");
    node.leave().map_err(|e| e.to_string())
}
