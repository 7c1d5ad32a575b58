//! The network of a run: a hub namespace with one bridge per possible partition
//! group, one namespace per node, and a veth "cable" from each node's `e0` to a
//! port `h<node>` on a hub bridge. Faults move ports between bridges
//! (partitions of any shape) and poison a node's neighbour entry for a peer (a
//! one-way cut: the node's datagrams to that peer go to a MAC nobody has, while
//! the peer's datagrams still arrive). Everything is removed on drop — after a
//! failure, a Ctrl-C or a normal end alike.
//!
//! Commands run as `ip -batch -` entered into the namespace between fork and
//! exec (not `ip -n`, whose private mount namespace made every call wait for
//! RCU grace periods, seconds on a busy machine).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// A MAC address no interface of the run has: the target of a cut.
const NOWHERE_MAC: &str = "02:00:5e:00:de:ad";

/// Why the network could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `ip` could not be run.
    #[error("cannot run iproute2's `ip` ({0}); phalanx-nemesis needs it and root")]
    NoIp(std::io::Error),
    /// A namespace could not be entered.
    #[error("namespace {ns}: {err}")]
    Namespace {
        /// Its name.
        ns: String,
        /// Why.
        err: std::io::Error,
    },
    /// `ip` refused a command.
    #[error("in namespace {ns}, `ip` failed: {stderr} (commands: {commands:?})")]
    Refused {
        /// Where.
        ns: String,
        /// The commands of the batch.
        commands: Vec<String>,
        /// What it said.
        stderr: String,
    },
}

/// The namespaces of one run.
pub struct Net {
    /// The hub namespace.
    pub hub: String,
    /// Node `i`'s namespace is `nodes[i - 1]`.
    pub nodes: Vec<String>,
    /// Node `i`'s address is `addrs[i - 1]`.
    pub addrs: Vec<String>,
    /// Namespaces created so far (removed on drop).
    created: Vec<String>,
}

/// The path of namespace `ns` as `ip netns` makes it.
pub fn ns_path(ns: &str) -> String {
    format!("/var/run/netns/{ns}")
}

/// Runs `ip` with `args` in this namespace.
fn ip(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetError::NoIp)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Refused {
            ns: "(host)".into(),
            commands: vec![args.join(" ")],
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `commands` (lines of `ip -batch`) inside namespace `ns`.
pub fn batch(ns: &str, commands: &[String]) -> Result<(), NetError> {
    batch_of("ip", ns, commands)
}

/// Runs `commands` as `<program> -batch -` (iproute2's `ip` or `tc`) inside
/// namespace `ns`.
fn batch_of(program: &str, ns: &str, commands: &[String]) -> Result<(), NetError> {
    let f = std::fs::File::open(ns_path(ns))
        .map_err(|err| NetError::Namespace { ns: ns.into(), err })?;
    let fd = f.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only setns(2), async-signal-safe, runs in the forked child; `f`
    // stays open until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd.spawn().map_err(NetError::NoIp)?;
    drop(f);
    let mut text = commands.join("\n");
    text.push('\n');
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).map_err(NetError::NoIp)?;
    }
    let out = child.wait_with_output().map_err(NetError::NoIp)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Refused {
            ns: ns.into(),
            commands: commands.to_vec(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Net {
    /// `<prefix>-hub` and `<prefix>-n<i>`, bridges `br0..br<n-1>`, every node
    /// cabled to `br0` with address `<subnet>.<i>/24` (e.g. subnet `10.166.0`).
    pub fn create(prefix: &str, n: u32, subnet: &str) -> Result<Net, NetError> {
        let mut net = Net {
            hub: format!("{prefix}-hub"),
            nodes: (1..=n).map(|i| format!("{prefix}-n{i}")).collect(),
            addrs: (1..=n).map(|i| format!("{subnet}.{i}")).collect(),
            created: Vec::new(),
        };
        let all: Vec<String> = std::iter::once(net.hub.clone())
            .chain(net.nodes.iter().cloned())
            .collect();
        for ns in &all {
            // A leftover of an earlier run with the same name goes first.
            let _ = Command::new("ip")
                .args(["netns", "del", ns.as_str()])
                .output();
            ip(&["netns", "add", ns.as_str()])?;
            net.created.push(ns.clone());
        }
        let mut hub = vec!["link set lo up".to_string()];
        for b in 0..n {
            hub.push(format!("link add br{b} type bridge"));
            hub.push(format!("link set br{b} up"));
        }
        for i in 1..=n {
            let ns = &net.nodes[i as usize - 1];
            hub.push(format!("link add h{i} type veth peer name e0 netns {ns}"));
            hub.push(format!("link set h{i} master br0"));
            hub.push(format!("link set h{i} up"));
        }
        batch(&net.hub, &hub)?;
        for i in 1..=n {
            let addr = &net.addrs[i as usize - 1];
            batch(
                &net.nodes[i as usize - 1],
                &[
                    "link set lo up".into(),
                    format!("addr add {addr}/24 dev e0"),
                    "link set e0 up".into(),
                ],
            )?;
        }
        Ok(net)
    }

    /// Whether `tc netem` (packet loss and delay) works here: tried on the hub's
    /// loopback and removed again.
    pub fn netem_available(&self) -> bool {
        batch_of(
            "tc",
            &self.hub,
            &[
                "qdisc add dev lo root netem delay 1ms".into(),
                "qdisc del dev lo root".into(),
            ],
        )
        .is_ok()
    }

    /// Puts the nodes of `groups[g]` on bridge `br<g>`.
    pub fn partition(&self, groups: &[Vec<u32>]) -> Result<(), NetError> {
        let cmds: Vec<String> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, nodes)| {
                nodes
                    .iter()
                    .map(move |n| format!("link set h{n} master br{g}"))
            })
            .collect();
        batch(&self.hub, &cmds)
    }

    /// Every node back on `br0`.
    pub fn heal(&self) -> Result<(), NetError> {
        let all: Vec<u32> = (1..=self.nodes.len() as u32).collect();
        self.partition(&[all])
    }

    /// Datagrams from node `from` to node `to` are lost (a permanent neighbour
    /// entry for `to` with a MAC nobody has, in `from`'s namespace).
    pub fn cut(&self, from: u32, to: u32) -> Result<(), NetError> {
        let addr = &self.addrs[to as usize - 1];
        batch(
            &self.nodes[from as usize - 1],
            &[format!(
                "neigh replace {addr} lladdr {NOWHERE_MAC} dev e0 nud permanent"
            )],
        )
    }

    /// Repairs the cut from `from` to `to` (the neighbour is resolved afresh).
    pub fn uncut(&self, from: u32, to: u32) -> Result<(), NetError> {
        let addr = &self.addrs[to as usize - 1];
        batch(
            &self.nodes[from as usize - 1],
            &[format!("neigh del {addr} dev e0")],
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = Command::new("ip")
                .args(["netns", "del", ns.as_str()])
                .output();
        }
    }
}
