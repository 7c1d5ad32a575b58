//! Network namespaces for the multi-host tests: a hub namespace holding bridges
//! and one namespace per node, joined by veth pairs ("cables") whose hub ends can
//! be pulled. Needs root and iproute2 (`.ci/run` installs it); a missing facility
//! fails the test with a clear message, it never skips.

use std::os::fd::AsRawFd;
use std::process::Command;

/// Runs `ip ARGS`, failing the test with a clear message when it cannot.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run iproute2's `ip` ({e}): this test needs it and root \
             (network namespaces); `.ci/run` installs iproute2"
        )
    });
    assert!(
        out.status.success(),
        "`ip {}` failed: {} (this test needs root for network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The hub and node namespaces of one test; all removed on drop.
pub struct Namespaces {
    /// The hub namespace (bridges, hub ends of the cables).
    pub hub: String,
    /// Node `i`'s namespace is `nodes[i - 1]`.
    pub nodes: Vec<String>,
    /// Every cable plugged: (hub end, node namespace, node end).
    cables: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl Namespaces {
    /// `phx-<tag>-hub-<pid>` and `phx-<tag>-n<i>-<pid>` for i in 1..=n, with
    /// loopback up; leftovers of an earlier run with the same pid go first.
    pub fn create(tag: &str, n: u32) -> Namespaces {
        let pid = std::process::id();
        let ns = Namespaces {
            hub: format!("phx-{tag}-hub-{pid}"),
            nodes: (1..=n).map(|i| format!("phx-{tag}-n{i}-{pid}")).collect(),
            cables: Default::default(),
        };
        for name in ns.all() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ns
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.hub).chain(&self.nodes)
    }

    /// Adds bridge `name` to the hub, up.
    pub fn bridge(&self, name: &str) {
        ip(&["-n", &self.hub, "link", "add", name, "type", "bridge"]);
        ip(&["-n", &self.hub, "link", "set", name, "up"]);
    }

    /// Plugs node `node` into `bridge` with a cable: `cable` on the hub side, `dev`
    /// with address `addr` (IPv4 or IPv6, with prefix) on the node side; both up.
    pub fn plug(&self, node: u32, cable: &str, bridge: &str, dev: &str, addr: &str) {
        let (hub, ns) = (self.hub.as_str(), self.nodes[node as usize - 1].as_str());
        ip(&[
            "-n", hub, "link", "add", cable, "type", "veth", "peer", "name", dev, "netns", ns,
        ]);
        ip(&["-n", hub, "link", "set", cable, "master", bridge]);
        ip(&["-n", hub, "link", "set", cable, "up"]);
        if addr.contains(':') {
            // No duplicate-address detection: the address is usable at once.
            ip(&["-n", ns, "-6", "addr", "add", addr, "dev", dev, "nodad"]);
        } else {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        }
        ip(&["-n", ns, "link", "set", dev, "up"]);
        self.cables.lock().unwrap_or_else(|e| e.into_inner()).push((
            cable.to_string(),
            ns.to_string(),
            dev.to_string(),
        ));
    }

    /// Sets a hub device (a cable's hub end, a bridge) up or down, from this
    /// process: a thread enters the hub namespace and flips the device's IFF_UP
    /// flag. No `ip` process: running one means unsharing and tearing down a mount
    /// namespace, which waits for RCU grace periods and took up to seconds on a
    /// busy machine, blurring the moment of the cut that tests time from.
    ///
    /// Plugging a cable back (`up` on a cable's hub end) returns once the kernel
    /// reports both ends operational (`IFF_RUNNING`): the carrier change is
    /// applied by the kernel's link-watch work, which other namespaces' churn
    /// (tests creating and deleting namespaces hold the RTNL lock) delayed by up
    /// to 20 s on a busy machine — with the node's end not yet running, its
    /// datagrams are dropped, and a test timing link recovery from the `ioctl`
    /// would time the kernel rather than the node.
    pub fn set_hub_link(&self, dev: &str, up: bool) {
        let hub = format!("/var/run/netns/{}", self.hub);
        let name = dev.to_string();
        std::thread::spawn(move || set_link_up(&hub, &name, up))
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        if !up {
            return;
        }
        let far = self
            .cables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(cable, _, _)| cable == dev)
            .map(|(_, ns, d)| (format!("/var/run/netns/{ns}"), d.clone()));
        let mut ends = vec![(format!("/var/run/netns/{}", self.hub), dev.to_string())];
        ends.extend(far);
        for (ns, d) in ends {
            std::thread::spawn(move || wait_running(&ns, &d))
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.all() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Moves the calling thread into network namespace `ns` (a path under
/// /var/run/netns) and opens a socket for interface ioctls there, with an
/// `ifreq` naming `dev`. The caller closes the socket.
fn enter_for_ioctl(ns: &str, dev: &str) -> (libc::c_int, libc::ifreq) {
    let f = std::fs::File::open(ns).unwrap_or_else(|e| panic!("{ns}: {e}"));
    // SAFETY: setns with a valid namespace fd; CLONE_NEWNET moves only this
    // thread, which ends right after.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns({ns}): {}", std::io::Error::last_os_error());
    // SAFETY: a plain socket for the interface ioctls, closed by the caller.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(s >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    assert!(
        dev.len() < ifr.ifr_name.len(),
        "device name too long: {dev}"
    );
    for (d, b) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
        *d = b as libc::c_char;
    }
    (s, ifr)
}

/// On the calling thread (moved into `ns`): waits until device `dev` is
/// operational (`IFF_RUNNING`: up, carrier, and the kernel's link-watch work
/// done). A minute without it fails the test: the kernel never finished.
fn wait_running(ns: &str, dev: &str) {
    let (s, mut ifr) = enter_for_ioctl(ns, dev);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let result = loop {
        // SAFETY: SIOCGIFFLAGS fills `ifr`'s flags, the union member read here.
        let flags = unsafe {
            if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) != 0 {
                break Err(std::io::Error::last_os_error());
            }
            ifr.ifr_ifru.ifru_flags
        };
        if flags & libc::IFF_RUNNING as libc::c_short != 0 {
            break Ok(());
        }
        if std::time::Instant::now() > deadline {
            break Err(std::io::Error::other("not running after 60 s"));
        }
        // Polling a kernel state that has no notification this test can wait on.
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    // SAFETY: `s` is our socket.
    unsafe { libc::close(s) };
    result.unwrap_or_else(|e| panic!("waiting for {dev} in {ns} to run: {e}"));
}

/// On the calling thread (which it moves into network namespace `ns`, a path
/// under /var/run/netns): sets device `dev` up or down.
fn set_link_up(ns: &str, dev: &str, up: bool) {
    let (s, mut ifr) = enter_for_ioctl(ns, dev);
    // SAFETY: SIOCGIFFLAGS / SIOCSIFFLAGS read and write `ifr`, which lives
    // across the calls; the flags are the union's member these ioctls use.
    let result = unsafe {
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            let flags = ifr.ifr_ifru.ifru_flags;
            let up_flag = libc::IFF_UP as libc::c_short;
            ifr.ifr_ifru.ifru_flags = if up {
                flags | up_flag
            } else {
                flags & !up_flag
            };
            if libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: `s` is our socket.
    unsafe { libc::close(s) };
    result.unwrap_or_else(|e| panic!("set {dev} in {ns} {}: {e}", if up { "up" } else { "down" }));
}

/// `n` node namespaces on one bridge `br0`: node i's cable `h<i>` (pull it with
/// [`Namespaces::set_hub_link`]), its device `e0` at `10.<subnet>.0.<i>/24`.
/// Returns the namespaces and the node addresses (without prefix), node 1 first.
pub fn star(tag: &str, n: u32, subnet: u8) -> (Namespaces, Vec<String>) {
    let net = Namespaces::create(tag, n);
    net.bridge("br0");
    let addrs: Vec<String> = (1..=n).map(|i| format!("10.{subnet}.0.{i}")).collect();
    for i in 1..=n {
        net.plug(
            i,
            &format!("h{i}"),
            "br0",
            "e0",
            &format!("10.{subnet}.0.{i}/24"),
        );
    }
    (net, addrs)
}
