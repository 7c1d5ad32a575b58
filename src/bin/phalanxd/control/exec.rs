//! Runs controller commands and answers each with one `ok` or `error` line.

use super::Ctx;
use super::command::{self, Command};
use super::emit::{ids, pct};
use super::message::Body;
use phalanx::node::{Cpg, CpgMember, Quorum};
use phalanx::quorum::NodeState;
use phalanx::totem::Guarantee;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a `cpg-mcast` waits for room in the send queue.
const CPG_SEND_WAIT: Duration = Duration::from_secs(30);

/// The command thread's state: the CPG members it created and the load generator.
pub struct Executor {
    ctx: Arc<Ctx>,
    cpg: Cpg,
    quorum: Quorum,
    members: BTreeMap<u32, CpgMember>,
    load: Option<Load>,
    hammer: Option<super::dlm::Hammer>,
    /// Lockspaces of `dlm-hold` locks (kept so the locks' notices have a home).
    held: Vec<phalanx::node::Lockspace>,
    /// The lockspace of `dlm-watch` / `dlm-ask` / `dlm-bulk`.
    watch: Option<super::dlm_bench::Watch>,
}

/// A running load generator.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Executor {
    /// An executor without members or load.
    pub fn new(ctx: Arc<Ctx>, cpg: Cpg, quorum: Quorum) -> Self {
        Executor {
            ctx,
            cpg,
            quorum,
            members: BTreeMap::new(),
            load: None,
            hammer: None,
            held: Vec::new(),
            watch: None,
        }
    }

    /// Parses and runs one line and answers it; `Break` after `leave`.
    pub fn answer(&mut self, line: &str) -> ControlFlow<()> {
        let verb = command::verb(line);
        let (result, flow) = match command::parse(line) {
            Ok(Command::Leave) => {
                self.shutdown();
                (Ok(String::new()), ControlFlow::Break(()))
            }
            Ok(cmd) => (self.execute(cmd), ControlFlow::Continue(())),
            Err(e) => (Err(e.to_string()), ControlFlow::Continue(())),
        };
        match result {
            Ok(fields) if fields.is_empty() => self.ctx.out.emit("ok", verb),
            Ok(fields) => self.ctx.out.emit("ok", &format!("{verb} {fields}")),
            Err(reason) => self.ctx.out.emit(
                "error",
                &format!("{verb} reason={}", pct(reason.as_bytes())),
            ),
        }
        flow
    }

    /// Stops the load and drops every member (before the node leaves).
    pub fn shutdown(&mut self) {
        self.stop_load();
        if let Some(h) = self.hammer.take() {
            h.stop();
        }
        if let Some(w) = self.watch.take() {
            w.stop();
        }
        self.members.clear();
    }

    fn execute(&mut self, cmd: Command) -> Result<String, String> {
        match cmd {
            Command::Mcast { guarantee: g, text } => self
                .ctx
                .send(|_| (g, Body::Text(text.as_bytes())))
                .map(|seq| format!("seq={seq}"))
                .map_err(|e| e.to_string()),
            Command::Load {
                interval,
                max_body,
                safe_every,
            } => {
                if self.load.is_some() {
                    return Err("load already running".into());
                }
                let load = start_load(self.ctx.clone(), interval, max_body, safe_every)
                    .map_err(|e| format!("cannot start the load thread: {e}"))?;
                self.load = Some(load);
                Ok(String::new())
            }
            Command::LoadStop => match self.stop_load() {
                Some(sent) => Ok(format!("sent={sent}")),
                None => Err("no load running".into()),
            },
            Command::Status => Ok(self.status()),
            Command::Stats => Ok(self.stats()),
            Command::Quorum => self.quorum(),
            Command::Poll(every) => {
                let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
                self.ctx.poll_ms.store(ms, Ordering::SeqCst);
                Ok(String::new())
            }
            Command::RecoveryTrace(on) => {
                self.ctx.recovery_trace.store(on, Ordering::SeqCst);
                Ok(String::new())
            }
            Command::CpgMember(id) => {
                let m = match id {
                    Some(local) => self.cpg.member_with_id(local),
                    None => self.cpg.member(),
                }
                .map_err(|e| e.to_string())?;
                let local = m.id().local;
                super::cpg::relay(local, m.events().clone(), self.ctx.out.clone());
                self.members.insert(local, m);
                Ok(format!("member={local}"))
            }
            Command::CpgJoin { member, group } => self
                .member(member)?
                .join(group.as_bytes())
                .map(|()| String::new())
                .map_err(|e| e.to_string()),
            Command::CpgLeave { member, group } => self
                .member(member)?
                .leave(group.as_bytes())
                .map(|()| String::new())
                .map_err(|e| e.to_string()),
            Command::CpgMcast {
                member,
                group,
                guarantee: g,
                text,
            } => self
                .member(member)?
                .mcast_wait(group.as_bytes(), g, text.as_bytes(), Some(CPG_SEND_WAIT))
                .map(|()| String::new())
                .map_err(|e| e.to_string()),
            Command::CpgDrop { member } => match self.members.remove(&member) {
                // Dropped without leaving: the others see PROCDOWN.
                Some(m) => {
                    drop(m);
                    Ok(String::new())
                }
                None => Err(format!("no member {member}")),
            },
            Command::DlmHammer {
                lockspace,
                resources,
                seed,
                threads,
            } => {
                if self.hammer.is_some() {
                    return Err("a hammer is running".into());
                }
                let h = super::dlm::Hammer::start(
                    self.ctx.handle.dlm(),
                    self.ctx.out.clone(),
                    &lockspace,
                    resources,
                    seed,
                    threads,
                )?;
                self.hammer = Some(h);
                Ok(String::new())
            }
            Command::DlmHold {
                lockspace,
                resource,
                mode,
            } => {
                let ls = super::dlm::hold(
                    &self.ctx.handle.dlm(),
                    &self.ctx.out,
                    &lockspace,
                    &resource,
                    &mode,
                )?;
                self.held.push(ls);
                Ok(String::new())
            }
            Command::DlmWatch { lockspace } => {
                if self.watch.is_some() {
                    return Err("a lockspace is watched already".into());
                }
                let w = super::dlm_bench::Watch::start(
                    &self.ctx.handle.dlm(),
                    self.ctx.out.clone(),
                    &lockspace,
                )?;
                self.watch = Some(w);
                Ok(String::new())
            }
            Command::DlmAsk {
                tag,
                resource,
                mode,
            } => self
                .watch
                .as_ref()
                .ok_or("no dlm-watch")?
                .ask(&tag, &resource, &mode)
                .map(|id| format!("lock={id}")),
            Command::DlmBulk {
                prefix,
                from,
                count,
                mode,
            } => self
                .watch
                .as_ref()
                .ok_or("no dlm-watch")?
                .bulk(&prefix, from, count, &mode),
            Command::DlmHammerStop => match self.hammer.take() {
                Some(h) => Ok(format!("ops={}", h.stop())),
                None => Err("no hammer".into()),
            },
            // Handled by `answer`, which also ends the command loop.
            Command::Leave => {
                self.shutdown();
                Ok(String::new())
            }
        }
    }

    fn member(&self, local: u32) -> Result<&CpgMember, String> {
        self.members
            .get(&local)
            .ok_or_else(|| format!("no member {local}"))
    }

    /// Stops the load generator; the number of messages it sent.
    fn stop_load(&mut self) -> Option<u64> {
        let load = self.load.take()?;
        load.stop.store(true, Ordering::SeqCst);
        // The generator never panics; a join error would mean it did.
        Some(load.thread.join().unwrap_or(0))
    }

    fn status(&self) -> String {
        let h = &self.ctx.handle;
        let phalanx::node::Membership { ring, members, .. } = h.membership();
        let order = self.ctx.order();
        // Lockspaces whose recovery has not finished (waiting for a member's
        // fencing, say): a harness waits for 0 before it judges the locks.
        let recovering = h
            .dlm()
            .dump()
            .map_or(0, |d| d.lockspaces.iter().filter(|l| l.2).count());
        // Fencing operations not finished, as this node knows them.
        let fencing = h.fence().status().map_or(0, |f| {
            f.history
                .iter()
                .filter(|e| e.state == phalanx::fence::core::OpState::Pending)
                .count()
        });
        // Which path the lock traffic took (`dlm { lock_traffic }`).
        let d = h.dlm().stats().unwrap_or_default();
        format!(
            "operational={} ring={ring} members={} quiescent={} count={} order={:016x} dlm_recovering={recovering} fence_pending={fencing} dlm_ring_sent={} dlm_direct_sent={} dlm_direct_received={} dlm_held_for_view={} dlm_stale_dropped={}",
            u8::from(h.is_operational()),
            ids(&members),
            u8::from(h.is_quiescent()),
            order.count,
            order.hash,
            d.sent,
            d.direct_sent,
            d.direct_received,
            d.held_for_view,
            d.stale_dropped
        )
    }

    fn stats(&self) -> String {
        let mut tx: Vec<u64> = Vec::new();
        for l in self.ctx.handle.links() {
            let i = usize::from(l.link);
            if tx.len() <= i {
                tx.resize(i + 1, 0);
            }
            tx[i] += l.stats.tx_packets;
        }
        let t = self.ctx.handle.stats().totem;
        format!(
            "tx={} {}",
            super::emit::list(tx.iter().map(u64::to_string)),
            super::watch::recovery_fields(&t)
        )
    }

    fn quorum(&self) -> Result<String, String> {
        let phalanx::node::QuorumInfo {
            cluster: info,
            nodes,
            ..
        } = self
            .quorum
            .info()
            .ok_or("quorum is not configured on this node")?;
        let members: Vec<u32> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Member)
            .map(|n| n.node)
            .collect();
        Ok(format!(
            "quorate={} ring={} members={} total={} expected={} quorum={} device={}",
            u8::from(info.quorate),
            info.ring.map_or("-".into(), |r| r.to_string()),
            ids(&members),
            info.total_votes,
            info.expected_votes,
            info.quorum,
            u8::from(info.device_cast)
        ))
    }
}

/// Message `seq` of the load: safe every `safe_every`-th, `(seq * 37) % (max_body
/// + 1)` body bytes (sizes sweep the range, fragmenting now and then).
fn load_message(seq: u64, max_body: usize, safe_every: u64) -> (Guarantee, usize) {
    let g = if safe_every > 0 && seq % safe_every == 0 {
        Guarantee::Safe
    } else {
        Guarantee::Agreed
    };
    (g, (seq as usize).wrapping_mul(37) % (max_body + 1))
}

/// Sends a load message every `interval` while the node is operational (a full
/// send queue skips a beat) until stopped; returns how many it sent.
fn start_load(
    ctx: Arc<Ctx>,
    interval: Duration,
    max_body: usize,
    safe_every: u64,
) -> std::io::Result<Load> {
    let stop = Arc::new(AtomicBool::new(false));
    let halt = stop.clone();
    let thread = std::thread::Builder::new()
        .name("phalanxd-load".into())
        .spawn(move || {
            let mut sent = 0;
            let mut next = Instant::now();
            while !halt.load(Ordering::SeqCst) && !ctx.stop.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now < next {
                    // Pacing, not synchronisation: the next message is due then.
                    std::thread::sleep(next - now);
                    continue;
                }
                if !ctx.handle.is_operational() {
                    // Not sending outside a ring; look again shortly.
                    std::thread::sleep(interval.min(Duration::from_millis(2)));
                    continue;
                }
                next = now + interval;
                let ok = ctx.send(|seq| {
                    let (g, size) = load_message(seq, max_body, safe_every);
                    (g, Body::Load(size))
                });
                if ok.is_ok() {
                    sent += 1;
                }
            }
            sent
        })?;
    Ok(Load { stop, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_sweeps_sizes_and_marks_every_nth_safe() {
        assert_eq!(load_message(0, 1500, 4), (Guarantee::Safe, 0));
        assert_eq!(load_message(1, 1500, 4), (Guarantee::Agreed, 37));
        assert_eq!(load_message(41, 1500, 4).1, 41 * 37 % 1501);
        assert_eq!(load_message(4, 100, 0).0, Guarantee::Agreed);
    }
}
