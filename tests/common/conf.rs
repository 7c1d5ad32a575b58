//! A test run's directory (configuration, key, state, admin sockets, flight
//! recorders) and the corosync.conf the nodes of a multi-process test run.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

/// `<base>/phalanx-<tag>-<pid>`, with a cluster key in `authkey`; removed on
/// drop unless the test is failing. The base is `$TMPDIR` when set, else `/dev/shm`
/// when there is one, else the system's temporary directory: the nodes fsync
/// their ring sequence on every configuration change (and map an 8 MiB flight
/// recorder), and on a busy disk the fsync delays the ring changes these tests
/// time; files on tmpfs are just as real, without the disk.
pub struct TestDir {
    /// The directory.
    pub path: PathBuf,
}

impl TestDir {
    /// Creates it afresh (leftovers of an earlier run with the same pid go first).
    pub fn new(tag: &str) -> TestDir {
        use std::os::unix::fs::PermissionsExt;
        let shm = std::path::Path::new("/dev/shm");
        let base = if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("phalanx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let dir = TestDir { path };
        let key: Vec<u8> = (0..256u32).map(|i| (i * 97 + 13) as u8).collect();
        std::fs::write(dir.key(), key).unwrap();
        std::fs::set_permissions(dir.key(), std::fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    /// The cluster key file.
    pub fn key(&self) -> PathBuf {
        self.path.join("authkey")
    }

    /// Node `id`'s admin socket (as phalanxd places it: in the state directory).
    pub fn admin_socket(&self, id: u32) -> PathBuf {
        self.path.join(format!("admin-{id}.sock"))
    }

    /// Writes `text` as `corosync.conf`; returns its path.
    pub fn write_conf(&self, text: &str) -> PathBuf {
        let p = self.path.join("corosync.conf");
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TestDir {
    /// Removes the directory, except when the test is failing: then its flight
    /// recorders, state and configuration are what the failure is understood from
    /// (`phalanx-flightdump` reads them), so they stay and the path is printed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed: its directory is kept: {}",
                self.path.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A corosync.conf for nodes 1..=n: crypto on with the run's key, the state
/// directory in the run's directory, `totem` lines added inside `totem { }`,
/// node i's `ringK_addr` values from `addrs[i - 1][K]`, and `rest` (other
/// sections) appended.
pub fn corosync_conf(
    dir: &TestDir,
    cluster: &str,
    totem: &str,
    addrs: &[Vec<String>],
    rest: &str,
) -> String {
    let mut nodes = String::new();
    for (i, rings) in addrs.iter().enumerate() {
        let id = i + 1;
        nodes += &format!("    node {{\n        nodeid: {id}\n        name: n{id}\n");
        for (k, a) in rings.iter().enumerate() {
            nodes += &format!("        ring{k}_addr: {a}\n");
        }
        nodes += "    }\n";
    }
    format!(
        "totem {{\n    cluster_name: {cluster}\n    crypto_cipher: aes256\n    \
         crypto_hash: sha256\n    keyfile: {key}\n{totem}}}\n\
         system {{\n    state_dir: {state}\n}}\nnodelist {{\n{nodes}}}\n{rest}",
        key = dir.key().display(),
        state = dir.path.display(),
    )
}

/// `n` free loopback UDP addresses (`127.0.0.1:PORT`): bound, noted, released.
pub fn loopback_addrs(n: usize) -> Vec<String> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().unwrap().to_string())
        .collect()
}

/// Loopback addresses for nodes `1..=n`, free when returned (the probe sockets
/// are closed), keyed by node id as `NodeOptions::new` wants them.
pub fn loopback_node_addrs(n: u32) -> BTreeMap<u32, SocketAddr> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks
        .iter()
        .zip(1..)
        .map(|(s, id)| (id, s.local_addr().unwrap()))
        .collect()
}

/// `addrs` as single-link node addresses for [`corosync_conf`].
pub fn one_link(addrs: &[String]) -> Vec<Vec<String>> {
    addrs.iter().map(|a| vec![a.clone()]).collect()
}
