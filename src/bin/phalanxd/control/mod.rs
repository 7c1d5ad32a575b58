//! `--control`: the controller protocol (docs/phalanxd.md). Commands come on
//! stdin, one per line, each answered by exactly one `ok <verb> ...` or
//! `error <verb> reason=...` line, in order; events go to stdout as
//! `<mono_ns> <event> key=value ...` lines.
//!
//! Threads: this one drains the node's events (deliveries, configurations); one
//! runs the commands; one polls links, votes and counters; one relays quorum
//! notifications; one per CPG member relays its events; one generates load.
//! Each writes its own lines (`emit`).

mod cib;
mod command;
mod cpg;
mod dlm;
mod dlm_bench;
mod emit;
mod exec;
mod fence;
mod message;
pub mod planted;
mod watch;

use emit::{Emitter, guarantee, ids, pct};
use message::{Body, OrderHash};
use phalanx::compat::qb::IpcServer;
use phalanx::node::{Node, NodeEvent, NodeHandle};
use phalanx::totem::{ConfigChange, ConfigKind, Guarantee, NodeId, SendError};
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What every thread of a controlled node shares.
pub struct Ctx {
    handle: NodeHandle,
    me: NodeId,
    incarnation: u32,
    out: Emitter,
    /// Held while a message is sent and reported, and while a delivery is
    /// counted and reported: so `sent` always precedes the message's `deliver`,
    /// and `status` reports the order hash of exactly the deliveries before it.
    ledger: Mutex<Ledger>,
    /// Report totem's recovery counters when they change.
    recovery_trace: AtomicBool,
    /// The poller's interval, in ms.
    poll_ms: AtomicU64,
    stop: &'static AtomicBool,
}

#[derive(Default)]
struct Ledger {
    next_seq: u64,
    order: OrderHash,
    /// The planted bug's swap (inert unless `--plant-bug swap-deliveries`).
    swap: planted::Swap,
}

impl Ctx {
    /// Multicasts the next message (`make(seq)` gives its guarantee and body),
    /// reported as `sent` before it can leave the process, so that a node killed
    /// right after sending has reported it; a refused message is retracted with
    /// `unsent` (and its sequence number used again). Returns the sequence number.
    fn send<'b>(&self, make: impl FnOnce(u64) -> (Guarantee, Body<'b>)) -> Result<u64, SendError> {
        let mut ledger = self.ledger();
        let seq = ledger.next_seq;
        let (g, body) = make(seq);
        let data = message::encode(self.me, self.incarnation, seq, body);
        self.out.emit(
            "sent",
            &format!("seq={seq} guarantee={} len={}", guarantee(g), data.len()),
        );
        match self.handle.mcast(g, &data) {
            Ok(()) => {
                ledger.next_seq += 1;
                Ok(seq)
            }
            Err(e) => {
                self.out.emit("unsent", &format!("seq={seq}"));
                Err(e)
            }
        }
    }

    fn deliver(&self, from: NodeId, g: Guarantee, data: &[u8]) {
        let mut ledger = self.ledger();
        ledger.order.add(from, data);
        let (inc, seq, intact, text) = match message::decode(data, from) {
            Some(d) => (
                d.incarnation.to_string(),
                d.seq.to_string(),
                d.intact,
                d.text.map(|t| format!(" text={}", pct(t))),
            ),
            None => ("-".into(), "-".into(), false, None),
        };
        let fields = format!(
            "from={from} guarantee={} len={} inc={inc} seq={seq} intact={} count={} order={:016x}{}",
            guarantee(g),
            data.len(),
            u8::from(intact),
            ledger.order.count,
            ledger.order.hash,
            text.unwrap_or_default()
        );
        for f in ledger.swap.pass(fields) {
            self.out.emit("deliver", &f);
        }
    }

    /// Reports a configuration with the driver step that produced it (quorum
    /// notifications carry the same numbering: `watch::relay_quorum`).
    fn config(&self, c: &ConfigChange, step: u64) {
        let mut ledger = self.ledger();
        if let Some(held) = ledger.swap.flush() {
            self.out.emit("deliver", &held);
        }
        let kind = match c.kind {
            ConfigKind::Regular => {
                ledger.order = OrderHash::default();
                "regular"
            }
            ConfigKind::Transitional => "transitional",
        };
        let prev = c.previous.map_or("-".to_string(), |r| r.to_string());
        self.out.emit(
            "config",
            &format!(
                "kind={kind} ring={} prev={prev} members={} joined={} left={} step={step}",
                c.ring,
                ids(&c.members),
                ids(&c.joined),
                ids(&c.left)
            ),
        );
    }

    /// The deliveries since the latest regular configuration and their order hash.
    fn order(&self) -> OrderHash {
        self.ledger().order
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Every update of the ledger is complete when its lock is released.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the node under the controller until `leave`, the end of stdin or `stop`;
/// then leaves the cluster. `bug`: a bug to plant (`--plant-bug`), never set in
/// earnest.
pub fn run(
    node: Node,
    ipc: Option<IpcServer>,
    incarnation: u32,
    bug: Option<planted::PlantedBug>,
    stop: &'static AtomicBool,
) -> Result<(), String> {
    let handle = node.handle();
    let predecessor = match node.dlm_predecessor() {
        phalanx::node::DlmPredecessor::None => "none",
        phalanx::node::DlmPredecessor::PowerCycled => "power-cycled",
        phalanx::node::DlmPredecessor::Unclean => "unclean",
    };
    let ctx = Arc::new(Ctx {
        me: handle.node_id(),
        handle,
        incarnation,
        out: Emitter::new(stop),
        ledger: Mutex::new(Ledger {
            swap: planted::Swap::new(bug),
            ..Ledger::default()
        }),
        recovery_trace: AtomicBool::new(false),
        poll_ms: AtomicU64::new(watch::DEFAULT_POLL_MS),
        stop,
    });
    ctx.out.emit(
        "ready",
        &format!(
            "node={} incarnation={incarnation} pid={} dlm_predecessor={predecessor}",
            ctx.me,
            std::process::id()
        ),
    );
    watch::relay_quorum(&node.quorum(), ctx.out.clone());
    watch::start_poller(ctx.clone(), node.quorum());
    let mut exec = exec::Executor::new(ctx.clone(), node.cpg(), node.quorum());
    std::thread::Builder::new()
        .name("phalanxd-commands".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if exec.answer(&line).is_break() {
                    break;
                }
            }
            // `leave` or the end of stdin (the controller is gone).
            exec.shutdown();
            stop.store(true, Ordering::SeqCst);
        })
        .map_err(|e| format!("cannot start the command thread: {e}"))?;

    while !stop.load(Ordering::SeqCst) {
        match node.events().recv_timeout(Duration::from_millis(50)) {
            Ok(NodeEvent::Deliver(d)) => ctx.deliver(d.sender, d.guarantee, &d.data),
            Ok(NodeEvent::Config(c, step)) => ctx.config(&c, step),
            Ok(NodeEvent::Fence(n)) => fence::emit(&ctx.out, &n),
            Ok(NodeEvent::Cib(e)) => cib::emit(&ctx.out, &e),
            Ok(_) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Clients first: their CPG members go down while the node still runs.
    if let Some(ipc) = ipc {
        ipc.stop();
    }
    let result = node.leave().map_err(|e| e.to_string());
    if result.is_ok() {
        ctx.out.emit("left", "");
    }
    result
}
