//! A test model that keeps every event of every node, with the queries the
//! fencing tests ask of it.

use super::cluster::{Observed, Observer};
use super::events::Event;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Every event, in arrival order.
#[derive(Default)]
pub struct Recorder {
    /// The events.
    pub events: Vec<Observed>,
}

impl Observer for Recorder {
    fn observe(&mut self, o: &Observed) {
        self.events.push(o.clone());
    }

    fn describe(&self) -> String {
        self.events
            .iter()
            .filter(|o| matches!(o.event, Event::Service { .. } | Event::Quorum(_)))
            .map(|o| format!("n{} {:?}\n", o.node, o.event))
            .collect()
    }
}

impl Recorder {
    /// Fencing events: (observing node, kind, fields, time).
    pub fn fence(&self) -> Vec<(u32, &str, &BTreeMap<String, String>, u64)> {
        self.events
            .iter()
            .filter_map(|o| match &o.event {
                Event::Service { kind, fields } => Some((o.node, kind.as_str(), fields, o.at)),
                _ => None,
            })
            .collect()
    }

    /// The fencing events, one per line, for failure messages.
    pub fn fence_lines(&self) -> String {
        self.fence()
            .iter()
            .map(|(n, k, f, _)| format!("n{n} {k} {f:?}\n"))
            .collect()
    }

    /// Whether `node` last reported quorum with `members` (and its process
    /// has not ended since).
    pub fn quorate_with(&self, node: u32, members: &[u32]) -> bool {
        self.events.iter().rev().find_map(|o| match &o.event {
            Event::Quorum(q) if o.node == node => Some(q.quorate && q.members == members),
            Event::Eof if o.node == node => Some(false),
            _ => None,
        }) == Some(true)
    }

    /// Whether `node`'s process `incarnation` (a restart's, say) last reported
    /// quorum with `members`: what an earlier process said does not count.
    pub fn incarnation_quorate_with(&self, node: u32, incarnation: u32, members: &[u32]) -> bool {
        self.events.iter().rev().find_map(|o| match &o.event {
            Event::Quorum(q) if o.node == node && o.incarnation == incarnation => {
                Some(q.quorate && q.members == members)
            }
            _ => None,
        }) == Some(true)
    }

    /// Nodes that reported `fence_fenced node=target`.
    pub fn fenced_by(&self, target: u32) -> Vec<u32> {
        let t = target.to_string();
        self.fence()
            .iter()
            .filter(|(_, k, f, _)| *k == "fence_fenced" && f.get("node") == Some(&t))
            .map(|(n, ..)| *n)
            .collect()
    }

    /// Nodes whose own fencing request (`fence_done`) succeeded.
    pub fn fencers(&self) -> Vec<u32> {
        self.fence()
            .iter()
            .filter(|(_, k, f, _)| *k == "fence_done" && f["ok"] == "1")
            .map(|(n, ..)| *n)
            .collect()
    }
}

/// Runs tool `bin --socket SOCKET ARGS`; its exit status and stdout + stderr.
pub fn admin_tool(bin: &str, socket: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Starts nodes `1..=n` from `conf` (in `net`'s namespaces if given) and waits
/// until every one reports quorum with all `n` as members.
pub fn start_quorate(
    conf: &Path,
    n: u32,
    net: Option<&super::netns::Namespaces>,
) -> (super::cluster::Cluster, Recorder) {
    let mut cluster = super::cluster::Cluster::start(conf, 1..=n, net);
    let mut log = Recorder::default();
    let all: Vec<u32> = (1..=n).collect();
    cluster.until(
        &mut log,
        &format!("all {n} quorate"),
        std::time::Duration::from_secs(20),
        |l| all.iter().all(|&id| l.quorate_with(id, &all)),
    );
    (cluster, log)
}

/// Writes `<dir>/n<id>.pid` for each running node `ids` (what
/// `fence_phalanx_kill`'s `pidfile_dir` reads).
pub fn write_pid_files(dir: &Path, cluster: &super::cluster::Cluster, ids: &[u32]) {
    for &id in ids {
        std::fs::write(
            dir.join(format!("n{id}.pid")),
            format!("{}\n", cluster.pid(id)),
        )
        .unwrap();
    }
}
