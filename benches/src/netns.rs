//! The Corosync rig's topology for Phalanx workers: one network namespace per
//! node (`phxb-n<i>`, address `10.78.0.<i>/24` on its veth `eth0`), the veths'
//! peer ends in a bridge `br0` inside a hub namespace (`phxb-hub`), every link
//! with the same MTU — what `../shared/bench/setup.sh` builds for Corosync
//! (`cpgb-*`, `10.77.0.0/24`), beside it and never touching it or the root
//! namespace.
//!
//! The namespaces are removed when the [`Topology`] is dropped, and by
//! [`install_cleanup_on_signal`]'s thread on SIGINT or SIGTERM.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

/// Prefix of every namespace this harness creates.
const PREFIX: &str = "phxb";
/// The nodes' subnet (the Corosync rig uses 10.77.0.0/24).
const SUBNET: &str = "10.78.0";
/// The port every node listens on (each has its own address).
pub const PORT: u16 = 5405;

/// Namespaces alive now, for the signal handler's cleanup.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The namespaces and links of one cluster size.
#[derive(Debug)]
pub struct Topology {
    nodes: u32,
}

impl Topology {
    /// Builds `nodes` node namespaces and the hub, links at `mtu` bytes. Stale
    /// namespaces of an earlier run of this harness (same prefix) are removed
    /// first.
    ///
    /// # Errors
    /// An `ip` command fails (not root, no iproute2, a kernel without veth).
    pub fn create(nodes: u32, mtu: u32) -> Result<Topology, String> {
        remove_stale()?;
        let hub = format!("{PREFIX}-hub");
        let t = Topology { nodes };
        add_ns(&hub)?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &hub,
            "link",
            "set",
            "br0",
            "mtu",
            &mtu.to_string(),
            "up",
        ])?;
        for i in 1..=nodes {
            let ns = node_ns(i);
            add_ns(&ns)?;
            let port = format!("p{i}");
            ip(&[
                "-n",
                &hub,
                "link",
                "add",
                &port,
                "mtu",
                &mtu.to_string(),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "link",
                "set",
                "eth0",
                "mtu",
                &mtu.to_string(),
                "up",
            ])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", addr(i)),
                "dev",
                "eth0",
            ])?;
        }
        Ok(t)
    }

    /// The nodes' `id=address:port` list, as the workers take it.
    pub fn addr_list(&self) -> String {
        (1..=self.nodes)
            .map(|i| format!("{i}={}:{PORT}", addr(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Makes `cmd` start inside node `id`'s namespace (it enters it between fork
    /// and exec).
    ///
    /// # Errors
    /// The namespace cannot be opened.
    pub fn enter(&self, cmd: &mut Command, id: u32) -> io::Result<File> {
        let f = File::open(format!("/run/netns/{}", node_ns(id)))?;
        let fd = f.as_raw_fd();
        // SAFETY: only setns(2), async-signal-safe, runs in the forked child; the
        // caller keeps `f` (and so `fd`) open until the spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        Ok(f)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = remove_stale();
    }
}

fn node_ns(i: u32) -> String {
    format!("{PREFIX}-n{i}")
}

fn addr(i: u32) -> String {
    format!("{SUBNET}.{i}")
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn add_ns(name: &str) -> Result<(), String> {
    ip(&["netns", "add", name])?;
    if let Ok(mut live) = LIVE.lock() {
        live.push(name.to_string());
    }
    ip(&["-n", name, "link", "set", "lo", "up"])
}

/// Removes every namespace with this harness's prefix (they are only ever ours).
fn remove_stale() -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(|e| format!("ip netns list: {e}"))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name.starts_with(&format!("{PREFIX}-")) {
            ip(&["netns", "del", name])?;
        }
    }
    if let Ok(mut live) = LIVE.lock() {
        live.clear();
    }
    Ok(())
}

/// Unblocks SIGINT and SIGTERM (a worker started by a parent that blocked them).
pub fn unblock_signals() {
    // SAFETY: plain libc signal-set manipulation on a local, zeroed sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks SIGINT and SIGTERM in this thread (so in every thread it starts
/// later) and starts a thread that waits for them, removes the namespaces and
/// exits with 130. Workers see their standard input close and leave. Call it
/// first thing in `main`, before any other thread exists.
pub fn install_cleanup_on_signal() {
    // SAFETY: plain libc signal-set manipulation on a local, zeroed sigset_t.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `set` is a valid initialised sigset_t; `sig` a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            let _ = remove_stale();
            eprintln!("phalanx-bench: signal {sig}: namespaces removed");
            std::process::exit(130);
        }
    });
}
