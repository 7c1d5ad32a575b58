//! The CIB workload: one client thread per node talks to that node's admin
//! socket (`<state_dir>/admin-<node>.sock`, a Unix socket: reachable from the
//! host whatever network namespace the node runs in) as `phalanx-cibadmin`
//! does, and writes what it asked and what it was answered to
//! `cib-n<node>.events`, on the nodes' clock:
//!
//! ```text
//! <mono_ns> cib-req node=N inc=I op=K marker=m-N-I-K
//! <mono_ns> cib-ack node=N inc=I op=K marker=m-N-I-K version=A.E.U
//! <mono_ns> cib-fail node=N inc=I op=K exit=CODE
//! <mono_ns> cib-state node=N inc=I version=A.E.U digest=HEX added=m-..,m-..|-
//! ```
//!
//! Each write creates a unique marker (an empty `cluster_property_set` in
//! `crm_config`, what the swarm's workload calls a marker); every fourth tick
//! is a query of the whole CIB whose version, digest and newly seen markers are
//! recorded (`added`: the markers not in this process's previous answer), so
//! the judge knows which processes held which marker. Which process answered
//! is read from the connection itself (the peer's pid, `SO_PEERCRED`), so a
//! restart between two requests cannot be mistaken for the old process.

use phalanx::admin::{Request, Response};
use phalanx::cib::ops::{CallOptions, CibOp, OpContext, Scope, wire};
use phalanx::cib::xml::parse;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which (node, incarnation) each node process's pid is.
pub type Pids = Arc<Mutex<BTreeMap<u32, (u32, u32)>>>;

/// Name of node `node`'s client record in the run directory.
pub fn record_name(node: u32) -> String {
    format!("cib-n{node}.events")
}

/// The marker a write creates.
pub fn marker(node: u32, inc: u32, op: u64) -> String {
    format!("m-{node}-{inc}-{op}")
}

/// The running clients.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Clients {
    /// Starts one client per node, each asking every `every` (a write, or every
    /// fourth time a query).
    pub fn start(
        dir: &Path,
        state_dir: &Path,
        nodes: u32,
        pids: Pids,
        every: Duration,
    ) -> std::io::Result<Clients> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for node in 1..=nodes {
            let out = std::fs::File::create(dir.join(record_name(node)))?;
            let socket = phalanx::admin::socket_path(state_dir, node);
            let mut c = Client {
                node,
                socket,
                pids: pids.clone(),
                out: std::io::BufWriter::new(out),
                conn: None,
                ops: 0,
                seen: BTreeMap::new(),
            };
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("nemesis-cib-n{node}"))
                    .spawn(move || {
                        let mut tick = 0u64;
                        while !stop.load(Ordering::SeqCst) {
                            tick += 1;
                            c.step(tick % 4 == 0);
                            std::thread::sleep(every);
                        }
                        let _ = c.out.flush();
                    })?,
            );
        }
        Ok(Clients { stop, threads })
    }

    /// Stops every client once its request in flight is answered (or timed out).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A connection to one process: which one, and the stream.
struct Conn {
    inc: u32,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

struct Client {
    node: u32,
    socket: PathBuf,
    pids: Pids,
    out: std::io::BufWriter<std::fs::File>,
    conn: Option<Conn>,
    ops: u64,
    /// Per incarnation, the markers its previous query answer held.
    seen: BTreeMap<u32, BTreeSet<String>>,
}

/// The pid at the other end of a Unix socket.
fn peer_pid(s: &UnixStream) -> Option<u32> {
    let (pid, _, _) = phalanx::compat::qb::peer_credentials(s).ok()?;
    (pid > 0).then_some(pid)
}

impl Client {
    fn line(&mut self, what: &str, fields: &str) {
        let _ = writeln!(
            self.out,
            "{} {what} node={} {fields}",
            phalanx::logsys::monotonic_ns(),
            self.node
        );
        let _ = self.out.flush();
    }

    /// A connection to the node's current process, if it serves one.
    fn connect(&mut self) -> Option<()> {
        if self.conn.is_some() {
            return Some(());
        }
        let s = UnixStream::connect(&self.socket).ok()?;
        let pid = peer_pid(&s)?;
        let (node, inc) = *self.pids.lock().ok()?.get(&pid)?;
        if node != self.node {
            return None;
        }
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        self.conn = Some(Conn {
            inc,
            writer: s.try_clone().ok()?,
            reader: BufReader::new(s),
        });
        Some(())
    }

    fn request(&mut self, req: &Request) -> Option<Response> {
        let conn = self.conn.as_mut()?;
        let answer = (|| -> std::io::Result<Response> {
            let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
            line.push(b'\n');
            conn.writer.write_all(&line)?;
            let mut answer = String::new();
            if conn.reader.read_line(&mut answer)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            serde_json::from_str(answer.trim()).map_err(std::io::Error::other)
        })();
        match answer {
            Ok(a) => Some(a),
            Err(_) => {
                // Killed, paused past the timeout, or a half-read answer: a
                // fresh connection next time.
                self.conn = None;
                None
            }
        }
    }

    fn step(&mut self, query: bool) {
        if self.connect().is_none() {
            return;
        }
        let Some(inc) = self.conn.as_ref().map(|c| c.inc) else {
            return;
        };
        if query {
            self.query(inc);
        } else {
            self.write(inc);
        }
    }

    fn write(&mut self, inc: u32) {
        self.ops += 1;
        let op = self.ops;
        let m = marker(self.node, inc, op);
        let Ok(input) = parse(&format!(r#"<cluster_property_set id="{m}"/>"#)) else {
            return;
        };
        let cib_op = CibOp::Create {
            scope: Scope::Section("crm_config".into()),
            input,
            options: CallOptions::default(),
        };
        let command = wire::encode(&cib_op, &OpContext::default());
        // Recorded before it goes out: a process killed before answering may
        // still have applied it.
        self.line("cib-req", &format!("inc={inc} op={op} marker={m}"));
        match self.request(&Request::Cib { command }) {
            Some(Response::Cib(a)) if a.exit_code == 0 => {
                let v = a
                    .version
                    .map(|(x, y, z)| format!("{x}.{y}.{z}"))
                    .unwrap_or_else(|| "-".into());
                self.line(
                    "cib-ack",
                    &format!("inc={inc} op={op} marker={m} version={v}"),
                );
            }
            Some(Response::Cib(a)) => {
                self.line(
                    "cib-fail",
                    &format!("inc={inc} op={op} exit={}", a.exit_code),
                );
            }
            _ => self.line("cib-fail", &format!("inc={inc} op={op} exit=-")),
        }
    }

    fn query(&mut self, inc: u32) {
        let op = CibOp::Query {
            scope: Scope::Whole,
            options: CallOptions::default(),
        };
        let command = wire::encode(&op, &OpContext::default());
        let Some(Response::Cib(a)) = self.request(&Request::Cib { command }) else {
            return;
        };
        let (Some(text), 0) = (a.output, a.exit_code) else {
            return;
        };
        let v = a
            .version
            .map(|(x, y, z)| format!("{x}.{y}.{z}"))
            .unwrap_or_else(|| "-".into());
        let now = markers_in(&text);
        let before = self.seen.entry(inc).or_default();
        let added: Vec<&str> = now
            .iter()
            .filter(|m| !before.contains(*m))
            .map(String::as_str)
            .collect();
        let added = if added.is_empty() {
            "-".to_string()
        } else {
            added.join(",")
        };
        let digest = digest(&text);
        self.line(
            "cib-state",
            &format!("inc={inc} version={v} digest={digest:016x} added={added}"),
        );
        self.seen.insert(inc, now);
    }
}

/// The markers (`id="m-…"`) a CIB text holds.
pub fn markers_in(text: &str) -> BTreeSet<String> {
    text.split("id=\"m-")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|m| format!("m-{m}"))
        .collect()
}

/// FNV-1a over the text: equal answers have equal digests, and the judge
/// compares the final texts themselves too.
pub fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Queries node `node`'s current process (pid in `pids`) for its whole CIB:
/// (incarnation, version, text).
pub fn final_query(state_dir: &Path, node: u32, pids: &Pids) -> Option<(u32, String, String)> {
    let mut c = Client {
        node,
        socket: phalanx::admin::socket_path(state_dir, node),
        pids: pids.clone(),
        out: std::io::BufWriter::new(std::fs::File::open("/dev/null").ok()?),
        conn: None,
        ops: 0,
        seen: BTreeMap::new(),
    };
    c.connect()?;
    let inc = c.conn.as_ref()?.inc;
    let op = CibOp::Query {
        scope: Scope::Whole,
        options: CallOptions::default(),
    };
    let command = wire::encode(&op, &OpContext::default());
    let Some(Response::Cib(a)) = c.request(&Request::Cib { command }) else {
        return None;
    };
    let v = a.version.map(|(x, y, z)| format!("{x}.{y}.{z}"))?;
    Some((inc, v, a.output?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_a_cib_text() {
        let t = r#"<cib><configuration><crm_config><cluster_property_set id="m-1-0-3"/><cluster_property_set id="cps"/><cluster_property_set id="m-2-1-10"/></crm_config></configuration></cib>"#;
        let m: Vec<String> = markers_in(t).into_iter().collect();
        assert_eq!(m, vec!["m-1-0-3".to_string(), "m-2-1-10".to_string()]);
        assert_ne!(digest(t), digest(&t.replace("m-2", "m-3")));
    }
}
