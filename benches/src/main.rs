//! `phalanx-bench`: ordered-multicast throughput and latency of Phalanx nodes
//! running as separate processes on loopback UDP, measured with the method of
//! Corosync's `cpgperf` (the Corosync bench rig, `../shared/bench` beside the
//! repository: its README), plus the raw UDP ceiling of the same machine in the same
//! session.
//!
//! ```text
//! phalanx-bench --nodes 3 --scenario tput1 --size 1024 --secs 5 \
//!     [--api cpg|totem] [--crypto on|off] [--guarantee agreed|safe] [--reps R] [--out DIR]
//! ```
//!
//! `--help` tells every option. `--api cpg` (the default) measures what cpgperf
//! measures on Corosync: every worker is one process-group member
//! (`node.cpg().member()`) in the group `cpgperf`, starts once a group change lists a
//! member on every node, sends with `CpgMember::mcast` and receives the member's
//! events. `--api totem` uses raw totem messages (`NodeHandle::mcast`,
//! `Node::events`), one layer lower. The api is part of the label's implementation
//! field: `phalanx-cpg`, `phalanx-cpg-crypto` (cpg) and `phalanx`, `phalanx-crypto`
//! (totem, as before the flag existed), e.g. `phalanx-cpg:3:tput1:64:r1`.
//!
//! `--nodes`, `--scenario`, `--size`, `--api` and `--crypto` accept
//! comma-separated lists; repetitions are the outer loop. Scenarios: `tput1`, `tputN`, `lat1`,
//! `lat1idle`, `latN` (as in cpgperf's `bench.sh`) and `raw` (plain UDP, node 1
//! to all others, no ordering). Every worker prints one `RESULT` line in the
//! cpgperf format; the parent checks them (every node reported, equal
//! `order_hash` and `delivered`, `errors=0`) and marks a failed run with a
//! `# FAILED <label>` line, which the rig's `summarize.sh` understands.
//!
//! With `--out DIR` the lines are appended to `DIR/raw.txt` (readable by the rig's
//! `summarize.sh`), latency quantiles to `DIR/rtt.txt`, and `DIR/summary.md`,
//! `DIR/throughput.svg`, `DIR/latency-cdf-<size>.svg` are rewritten from everything
//! in `DIR`. When the rig is found (`--corosync-bench DIR`, else the environment
//! variable `PHALANX_COROSYNC_BENCH`, else `../shared/bench` beside the repository),
//! `DIR/summarize-sh.md` is also rewritten with its `summarize.sh`.

mod cli;
mod netns;
mod report;
mod rig;
mod worker;

use clap::{Parser, ValueEnum};
use cli::{Cli, RunOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which Phalanx API the workers send and receive through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// Closed process groups: one member per worker (like cpgperf on Corosync).
    Cpg,
    /// Raw totem messages through the node handle.
    Totem,
}

impl Api {
    /// Parses `cpg` or `totem`.
    pub fn parse(s: &str) -> Option<Api> {
        Api::from_str(s, false).ok()
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Api::Cpg => "cpg",
            Api::Totem => "totem",
        }
    }

    /// The implementation field of a label (the first of summarize.sh's).
    pub fn impl_name(self, crypto: bool) -> &'static str {
        match (self, crypto) {
            (Api::Cpg, false) => "phalanx-cpg",
            (Api::Cpg, true) => "phalanx-cpg-crypto",
            (Api::Totem, false) => "phalanx",
            (Api::Totem, true) => "phalanx-crypto",
        }
    }
}

/// The measurement scenarios (names as in cpgperf's `bench.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Node 1 floods; the others deliver.
    Tput1,
    /// Every node floods.
    #[value(name = "tputN", alias = "tputn")]
    TputN,
    /// Node 1 pings back to back; the others deliver.
    Lat1,
    /// Node 1 pings with 10 ms pauses.
    #[value(name = "lat1idle")]
    Lat1Idle,
    /// Every node pings back to back.
    #[value(name = "latN", alias = "latn")]
    LatN,
    /// Plain UDP from node 1 to every other node, no ordering.
    Raw,
    /// As `raw`, with segmentation offload: datagrams of at most `max_frame` bytes
    /// (they fit the MTU, as the ring's frames do), up to 64 per `sendmsg`
    /// (`UDP_SEGMENT`), read back with `UDP_GRO` — the best the kernel can do.
    #[value(name = "rawgso")]
    RawGso,
}

impl Scenario {
    /// Parses a scenario name.
    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::from_str(s, false).ok()
    }

    /// The name used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Tput1 => "tput1",
            Scenario::TputN => "tputN",
            Scenario::Lat1 => "lat1",
            Scenario::Lat1Idle => "lat1idle",
            Scenario::LatN => "latN",
            Scenario::Raw => "raw",
            Scenario::RawGso => "rawgso",
        }
    }

    /// Plain UDP without the ring (`raw`, `rawgso`).
    pub fn is_raw(self) -> bool {
        matches!(self, Scenario::Raw | Scenario::RawGso)
    }

    /// Number of sending processes in a cluster of `n`.
    pub fn senders(self, n: u32) -> u32 {
        match self {
            Scenario::TputN | Scenario::LatN => n,
            _ => 1,
        }
    }
}

fn main() {
    std::process::exit(match Cli::try_parse() {
        Ok(cli) => dispatch(cli),
        Err(e) => {
            let _ = e.print();
            // 2 means "a run failed its checks": bad usage is 1, as it always was.
            i32::from(e.use_stderr())
        }
    });
}

fn dispatch(cli: Cli) -> i32 {
    if let Some(spec) = &cli.worker {
        // A worker inherits the parent's blocked SIGINT/SIGTERM: take them back.
        netns::unblock_signals();
        return worker::main(spec);
    }
    if let Some(shell) = cli.completions {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "phalanx-bench", &mut std::io::stdout());
        return 0;
    }
    let rig = match rig::locate(cli.corosync_bench.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("phalanx-bench: {e}");
            return 1;
        }
    };
    if let Some(dir) = &cli.report {
        return if write_report(dir, rig.as_deref()) {
            0
        } else {
            1
        };
    }
    run(&cli.run, rig.as_deref())
}

/// Rewrites the summary and plots of `dir`, and the rig's summary when there is a
/// rig. Returns whether the summary and plots were written.
fn write_report(dir: &Path, rig: Option<&Path>) -> bool {
    if let Err(e) = report::write(dir) {
        eprintln!("phalanx-bench: report: {e}");
        return false;
    }
    match rig {
        Some(rig) => {
            if let Err(e) = rig::summarize(rig, dir) {
                eprintln!("phalanx-bench: {}: {e}", rig.display());
            }
        }
        None => eprintln!(
            "phalanx-bench: no Corosync bench rig at {} (see --corosync-bench): \
             summarize-sh.md not written",
            rig::default_dir().display()
        ),
    }
    true
}

fn run(a: &RunOptions, rig: Option<&Path>) -> i32 {
    let netns = a.topology == cli::TopologyArg::Netns;
    if netns {
        // Before any thread exists: Ctrl-C must not leave namespaces behind.
        netns::install_cleanup_on_signal();
    }
    let mut raw_out = None;
    let mut rtt_out = None;
    if let Some(dir) = &a.out {
        let open = |name: &str| {
            std::fs::create_dir_all(dir)?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        match (open("raw.txt"), open("rtt.txt")) {
            (Ok(r), Ok(t)) => {
                raw_out = Some(r);
                rtt_out = Some(t);
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("phalanx-bench: cannot write to {}: {e}", dir.display());
                return 1;
            }
        }
    }
    let mut emit = |line: &str, rtt: bool| {
        if !rtt {
            println!("{line}");
        }
        let f = if rtt { &mut rtt_out } else { &mut raw_out };
        if let Some(f) = f {
            let _ = writeln!(f, "{line}");
        }
    };
    emit(
        &format!(
            "# phalanx-bench: topology={} batch_io={} gso={} driver_spin_us={} max_messages={} send_hold_us={} nodes={:?} scenarios={:?} sizes={:?} api={:?} crypto={:?} secs={} guarantee={} reps={} max_frame={} wait={} recv_nap_us={} spin_us={} cipher={} load=\"{}\"",
            if netns {
                format!("netns(veth+bridge,mtu={})", a.mtu)
            } else {
                "loopback".to_string()
            },
            a.batch_io.on(),
            a.gso.on(),
            a.driver_spin_us,
            if a.max_messages == 0 {
                "default".to_string()
            } else {
                a.max_messages.to_string()
            },
            a.send_hold_us,
            a.nodes,
            a.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
            a.sizes,
            a.api.iter().map(|x| x.name()).collect::<Vec<_>>(),
            a.crypto.iter().map(|c| c.on()).collect::<Vec<_>>(),
            a.secs,
            match a.guarantee {
                cli::GuaranteeArg::Agreed => "agreed",
                cli::GuaranteeArg::Safe => "safe",
            },
            a.reps,
            a.frame(),
            a.wait.name(),
            a.recv_nap_us,
            a.spin_us,
            match a.cipher {
                cli::CipherArg::Aes => "aes-256-gcm",
                cli::CipherArg::Chacha => "chacha20-poly1305",
            },
            loadavg()
        ),
        false,
    );
    let mut failures = 0;
    for rep in a.rep_start..a.rep_start + a.reps {
        for &n in &a.nodes {
            for &size in &a.sizes {
                for &sc in &a.scenarios {
                    // Raw UDP uses neither API nor crypto: once per cell.
                    let runs: Vec<(Api, bool)> = if sc.is_raw() {
                        vec![(a.api[0], false)]
                    } else {
                        a.api
                            .iter()
                            .flat_map(|&api| a.crypto.iter().map(move |&c| (api, c.on())))
                            .collect()
                    };
                    for (api, crypto) in runs {
                        let mut imp = match (&a.name, sc) {
                            (Some(n), _) => n.clone(),
                            (None, Scenario::Raw | Scenario::RawGso) => "udp".to_string(),
                            (None, _) => api.impl_name(crypto).to_string(),
                        };
                        if !netns {
                            // Never beside Corosync's figures (a different topology).
                            imp.push_str("-loopback");
                        }
                        let label = format!("{imp}:{n}:{}:{size}:r{rep}", sc.name());
                        let (lines, rtts, ok, why) = run_one(a, n, sc, size, api, crypto, &label);
                        for l in &lines {
                            emit(l, false);
                        }
                        for l in &rtts {
                            emit(l, true);
                        }
                        if !ok {
                            failures += 1;
                            emit(&format!("# FAILED {label} {why}"), false);
                        }
                        std::thread::sleep(Duration::from_millis(300));
                    }
                }
            }
        }
    }
    drop(raw_out);
    drop(rtt_out);
    if let Some(dir) = &a.out {
        write_report(dir, rig);
    }
    if failures > 0 { 2 } else { 0 }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Free loopback ports: bind port 0, note the port, release.
fn free_ports(n: u32) -> std::io::Result<Vec<SocketAddr>> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    socks.iter().map(|s| s.local_addr()).collect()
}

/// Runs one cluster; returns the RESULT lines, RTT lines, whether the run passed
/// its checks, and why not.
fn run_one(
    a: &RunOptions,
    n: u32,
    sc: Scenario,
    size: usize,
    api: Api,
    crypto: bool,
    label: &str,
) -> (Vec<String>, Vec<String>, bool, String) {
    let topology = match a.topology {
        cli::TopologyArg::Netns => match netns::Topology::create(n, a.mtu) {
            Ok(t) => Some(t),
            Err(e) => return (vec![], vec![], false, format!("netns: {e}")),
        },
        cli::TopologyArg::Loopback => None,
    };
    let addr_list = match &topology {
        Some(t) => t.addr_list(),
        None => match free_ports(n) {
            Ok(p) => p
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{}={a}", i + 1))
                .collect::<Vec<_>>()
                .join(","),
            Err(e) => return (vec![], vec![], false, format!("ports: {e}")),
        },
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return (vec![], vec![], false, format!("current_exe: {e}")),
    };
    let (tx, rx) = mpsc::channel::<(u32, String)>();
    let mut children = BTreeMap::new();
    let mut stdins = Vec::new();
    for id in 1..=n {
        let spec = worker::Spec {
            id,
            addrs: addr_list.clone(),
            scenario: sc,
            size,
            secs: a.secs,
            crypto,
            safe: a.guarantee == cli::GuaranteeArg::Safe,
            label: label.to_string(),
            max_frame: a.frame_for(crypto),
            wait_yield: a.wait == cli::Wait::Yield,
            recv_nap_us: a.recv_nap_us,
            spin_us: a.spin_us,
            chacha: a.cipher == cli::CipherArg::Chacha,
            stats: a.driver_stats.on(),
            api,
            batch_io: a.batch_io.on(),
            gso: a.gso.on(),
            driver_spin_us: a.driver_spin_us,
            max_messages: a.max_messages,
            send_hold_us: a.send_hold_us,
        };
        let mut cmd = Command::new(&exe);
        // The namespace file stays open until the spawn returns.
        let _ns = match topology.as_ref().map(|t| t.enter(&mut cmd, id)) {
            Some(Err(e)) => {
                kill_all(&mut children);
                return (vec![], vec![], false, format!("netns enter: {e}"));
            }
            Some(Ok(f)) => Some(f),
            None => None,
        };
        let child = cmd
            .arg("--worker")
            .args(spec.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut children);
                return (vec![], vec![], false, format!("spawn: {e}"));
            }
        };
        stdins.extend(child.stdin.take());
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(l) = line else { break };
                    if tx.send((id, format!("stderr: {l}"))).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(l) = line else { break };
                    if tx.send((id, l)).is_err() {
                        break;
                    }
                }
            });
        }
        children.insert(id, child);
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs_f64(a.secs * 3.0 + 70.0);
    let mut results = Vec::new();
    let mut rtts = Vec::new();
    let mut why = String::new();
    let mut failed_at: Option<Instant> = None;
    let mut last_err: BTreeMap<u32, String> = BTreeMap::new();
    loop {
        if results.len() == n as usize {
            // Every node has reported: let them leave.
            stdins.clear();
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((_, l)) if l.starts_with("RESULT ") => results.push(l),
            Ok((_, l)) if l.starts_with("RTTQ ") => rtts.push(l),
            Ok((id, l)) => {
                eprintln!("  {label} node {id}: {l}");
                if l.starts_with("stderr: ") && !l.contains(" stats: ") {
                    last_err.insert(id, l["stderr: ".len()..].replace(' ', "_"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            why.push_str("timeout ");
            break;
        }
        // A worker that died before reporting dooms the run: stop the others soon.
        if failed_at.is_none() {
            for (id, c) in children.iter_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    if !st.success() {
                        why.push_str(&format!("node{id}_exit={st} "));
                        failed_at = Some(Instant::now());
                        stdins.clear();
                    }
                }
            }
        }
        if failed_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
    }
    drop(stdins);
    // Reap (and on a timeout kill) every worker.
    let mut bad_exit = 0;
    for (_, c) in children.iter_mut() {
        let t = Instant::now();
        loop {
            match c.try_wait() {
                Ok(Some(st)) => {
                    if !st.success() {
                        bad_exit += 1;
                    }
                    break;
                }
                Ok(None) if why.is_empty() && t.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    bad_exit += 1;
                    break;
                }
            }
        }
    }
    if bad_exit > 0 {
        why.push_str(&format!("exit_status_failures={bad_exit} "));
    }
    for (id, e) in &last_err {
        let e: String = e.chars().take(160).collect();
        why.push_str(&format!("node{id}_stderr={e} "));
    }
    let ok = why.is_empty() && report::check_run(&results, n as usize, sc.is_raw(), &mut why);
    (results, rtts, ok, why.trim().to_string())
}

fn kill_all(children: &mut BTreeMap<u32, std::process::Child>) {
    for (_, c) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cli(s: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("phalanx-bench").chain(s.split_whitespace()))
    }

    fn args(s: &str) -> Result<RunOptions, clap::Error> {
        cli(s).map(|c| c.run)
    }

    #[test]
    fn api_defaults_to_cpg_and_parses_lists() {
        assert_eq!(args("").unwrap().api, vec![Api::Cpg]);
        assert_eq!(args("--api totem").unwrap().api, vec![Api::Totem]);
        assert_eq!(
            args("--api cpg,totem").unwrap().api,
            vec![Api::Cpg, Api::Totem]
        );
        assert!(args("--api raw").is_err());
        assert!(args("--api ,").is_err());
        assert!(args("--api").is_err());
    }

    #[test]
    fn run_options_keep_their_spellings_defaults_and_limits() {
        let a = args("").unwrap();
        assert_eq!(a.frame(), 1400);
        assert_eq!(a.frame_for(false), 1400);
        assert_eq!(a.frame_for(true), 1360);
        assert_eq!((a.nodes, a.sizes, a.secs), (vec![3], vec![64], 5.0));
        assert_eq!(a.scenarios, vec![Scenario::Tput1]);
        assert_eq!(a.crypto, vec![cli::OnOff::Off]);
        assert_eq!((a.reps, a.rep_start), (1, 1));
        // Like for like by default: the Corosync rig's topology, a frame per datagram.
        assert_eq!(
            (a.topology, a.mtu, a.max_frame),
            (cli::TopologyArg::Netns, 1500, None)
        );
        let lo = args("--topology loopback").unwrap();
        assert_eq!(lo.frame(), worker::DEFAULT_MAX_FRAME);
        assert_eq!(args("--mtu 9000").unwrap().frame(), 8900);
        assert!(args("--mtu 100").is_err());
        let a = args(
            "--nodes 3,5 --scenarios tput1,tputn,latN,raw --sizes 64,16384 --crypto off,on \
             --secs 2.5 --guarantee safe --reps 2 --rep-start 4 --out d --max-frame 8900 \
             --wait yield --name knet --recv-nap-us 7 --spin-us 3 --cipher chacha \
             --driver-stats on",
        )
        .unwrap();
        assert_eq!(a.nodes, vec![3, 5]);
        assert_eq!(
            a.scenarios,
            vec![
                Scenario::Tput1,
                Scenario::TputN,
                Scenario::LatN,
                Scenario::Raw
            ]
        );
        assert_eq!(a.sizes, vec![64, 16384]);
        assert_eq!(a.crypto, vec![cli::OnOff::Off, cli::OnOff::On]);
        assert_eq!(
            (a.secs, a.reps, a.rep_start, a.max_frame),
            (2.5, 2, 4, Some(8900))
        );
        assert_eq!(a.frame(), 8900);
        assert_eq!(a.guarantee, cli::GuaranteeArg::Safe);
        assert_eq!(a.out, Some(PathBuf::from("d")));
        assert_eq!(
            (a.wait, a.name.as_deref()),
            (cli::Wait::Yield, Some("knet"))
        );
        assert_eq!((a.recv_nap_us, a.spin_us), (7, 3));
        assert_eq!(a.cipher, cli::CipherArg::Chacha);
        assert!(a.driver_stats.on());
        for bad in [
            "--nodes 1",
            "--nodes 65",
            "--size 31",
            "--size 1048577",
            "--secs 0",
            "--secs 3600",
            "--reps 0",
            "--scenario tput2",
            "--wait spin",
            "--bogus 1",
        ] {
            let e = args(bad).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }

    #[test]
    fn report_and_worker_modes_stand_alone() {
        let c = cli("--report d --corosync-bench rig").unwrap();
        assert_eq!(c.report, Some(PathBuf::from("d")));
        assert_eq!(c.corosync_bench, Some(PathBuf::from("rig")));
        assert!(cli("--report d --nodes 5").is_err());
        let spec = worker::Spec {
            id: 1,
            addrs: "1=127.0.0.1:1".into(),
            scenario: Scenario::Tput1,
            size: 64,
            secs: 1.0,
            crypto: false,
            safe: false,
            label: "-odd-label".into(),
            max_frame: 1400,
            wait_yield: false,
            recv_nap_us: 0,
            spin_us: 0,
            chacha: false,
            stats: false,
            api: Api::Cpg,
            batch_io: true,
            gso: false,
            driver_spin_us: 0,
            max_messages: 0,
            send_hold_us: 0,
        };
        let argv: Vec<String> = ["phalanx-bench".to_string(), "--worker".to_string()]
            .into_iter()
            .chain(spec.to_args())
            .collect();
        let c = Cli::try_parse_from(&argv).unwrap();
        let back = worker::Spec::from_args(&c.worker.unwrap()).unwrap();
        assert_eq!(back.label, "-odd-label");
        assert!(cli("--worker 1 2").is_err());
        assert!(cli("--completions bash").unwrap().completions.is_some());
    }

    #[test]
    fn labels_name_the_api() {
        assert_eq!(Api::Cpg.impl_name(false), "phalanx-cpg");
        assert_eq!(Api::Cpg.impl_name(true), "phalanx-cpg-crypto");
        // The totem labels are the ones from before `--api` existed.
        assert_eq!(Api::Totem.impl_name(false), "phalanx");
        assert_eq!(Api::Totem.impl_name(true), "phalanx-crypto");
        for api in [Api::Cpg, Api::Totem] {
            for crypto in [false, true] {
                let imp = api.impl_name(crypto);
                assert_eq!(report::api_of(imp), api.name(), "{imp}");
                // summarize.sh splits labels on ':'.
                assert!(!imp.contains(':'));
            }
            assert_eq!(Api::parse(api.name()), Some(api));
        }
        for &sc in Scenario::value_variants() {
            assert_eq!(Scenario::parse(sc.name()), Some(sc));
        }
        assert_eq!(report::api_of("knet"), "cpg");
        assert_eq!(report::api_of("udp"), "-");
    }

    #[test]
    fn worker_spec_round_trips() {
        for api in [Api::Cpg, Api::Totem] {
            let spec = worker::Spec {
                id: 2,
                addrs: "1=127.0.0.1:1,2=127.0.0.1:2".into(),
                scenario: Scenario::LatN,
                size: 1024,
                secs: 1.5,
                crypto: true,
                safe: false,
                label: "phalanx-cpg:2:latN:1024:r1".into(),
                max_frame: 8900,
                wait_yield: true,
                recv_nap_us: 7,
                spin_us: 3,
                chacha: false,
                stats: true,
                api,
                batch_io: false,
                gso: true,
                driver_spin_us: 25,
                max_messages: 128,
                send_hold_us: 40,
            };
            let back = worker::Spec::from_args(&spec.to_args()).expect("parses");
            assert!(!back.batch_io);
            assert!(back.gso);
            assert_eq!(back.id, 2);
            assert_eq!(back.max_messages, 128);
            assert_eq!(back.send_hold_us, 40);
            assert_eq!(back.addrs, spec.addrs);
            assert_eq!(back.scenario, Scenario::LatN);
            assert_eq!(back.size, 1024);
            assert_eq!(back.secs, 1.5);
            assert!(back.crypto && !back.safe && back.wait_yield && back.stats && !back.chacha);
            assert_eq!(back.label, spec.label);
            assert_eq!(
                (back.max_frame, back.recv_nap_us, back.spin_us),
                (8900, 7, 3)
            );
            assert_eq!(back.api, api);
        }
        assert!(worker::Spec::from_args(&["1".to_string()]).is_none());
    }

    fn line(label: &str, node: u32, hash: &str, extra: &str) -> String {
        format!(
            "RESULT label={label} mode=recv node={node} pid=1 size=64 members=2 senders=1 sent=0 send_s=0.000 sent_msgs_s=0.0 tryagain=0 delivered=10 span_s=1.000 deliv_msgs_s=100.0 deliv_MB_s=0.006 total_s=1.000 errors=0 member_changes=0 order_hash={hash}{extra}"
        )
    }

    #[test]
    fn check_run_wants_equal_hashes_and_no_changes() {
        let ok = [
            line("x:2:tput1:64:r1", 1, "aa", ""),
            line("x:2:tput1:64:r1", 2, "aa", ""),
        ];
        let mut why = String::new();
        assert!(report::check_run(&ok, 2, false, &mut why), "{why}");
        let bad = [
            line("x:2:tput1:64:r1", 1, "aa", ""),
            line("x:2:tput1:64:r1", 2, "bb", ""),
        ];
        assert!(!report::check_run(&bad, 2, false, &mut why));
        assert!(why.contains("order_hash_differs"));
        let changed = [
            line("x:2:tput1:64:r1", 1, "aa", "").replace("member_changes=0", "member_changes=1"),
            line("x:2:tput1:64:r1", 2, "aa", ""),
        ];
        let mut why = String::new();
        assert!(!report::check_run(&changed, 2, false, &mut why));
        assert!(why.contains("node1_member_changes"));
    }

    #[test]
    fn report_shows_the_api() {
        let dir = std::env::temp_dir().join(format!("phalanx-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut raw = String::new();
        for imp in ["phalanx-cpg", "phalanx", "knet"] {
            for node in 1..=2 {
                raw.push_str(&line(&format!("{imp}:2:tput1:64:r1"), node, "aa", ""));
                raw.push('\n');
            }
        }
        std::fs::write(dir.join("raw.txt"), raw).unwrap();
        report::write(&dir).unwrap();
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(md.contains("| impl | api |"), "{md}");
        assert!(
            md.contains("| phalanx-cpg | cpg | 2 | tput1 | 64 |"),
            "{md}"
        );
        assert!(md.contains("| phalanx | totem | 2 | tput1 | 64 |"), "{md}");
        // One comparison row per API measured, each against Corosync.
        assert!(md.contains("| 2 | tput1 | 64 | cpg | 100 msg/s"), "{md}");
        assert!(md.contains("| 2 | tput1 | 64 | totem | 100 msg/s"), "{md}");
        let svg = std::fs::read_to_string(dir.join("throughput.svg")).unwrap();
        assert!(svg.contains("phalanx-cpg 2n tput1"), "{svg}");
        assert!(svg.contains("phalanx (totem) 2n tput1"), "{svg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
