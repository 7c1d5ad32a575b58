//! `phalanx-bench`: ordered-multicast throughput and latency of Phalanx nodes
//! running as separate processes on loopback UDP, measured with the method of
//! Corosync's `cpgperf` (see `/work/shared/bench/README.md`), plus the raw UDP
//! ceiling of the same machine in the same session.
//!
//! ```text
//! phalanx-bench --nodes 3 --scenario tput1 --size 1024 --secs 5 \
//!     [--api cpg|totem] [--crypto on|off] [--guarantee agreed|safe] [--reps R] [--out DIR]
//! ```
//!
//! `--api cpg` (the default) measures what cpgperf measures on Corosync: every
//! worker is one process-group member (`node.cpg().member()`) in the group
//! `cpgperf`, starts once a group change lists a member on every node, sends with
//! `CpgMember::mcast` and receives the member's events. `--api totem` uses raw
//! totem messages (`NodeHandle::mcast`, `Node::events`), one layer lower. The api
//! is part of the label's implementation field: `phalanx-cpg`,
//! `phalanx-cpg-crypto` (cpg) and `phalanx`, `phalanx-crypto` (totem, as before
//! the flag existed), e.g. `phalanx-cpg:3:tput1:64:r1`.
//!
//! `--nodes`, `--scenario`, `--size`, `--api` and `--crypto` accept
//! comma-separated lists; repetitions are the outer loop. Scenarios: `tput1`, `tputN`, `lat1`,
//! `lat1idle`, `latN` (as in cpgperf's `bench.sh`) and `raw` (plain UDP, node 1
//! to all others, no ordering). Every worker prints one `RESULT` line in the
//! cpgperf format; the parent checks them (every node reported, equal
//! `order_hash` and `delivered`, `errors=0`) and marks a failed run with a
//! `# FAILED <label>` line, which `summarize.sh` understands.
//!
//! With `--out DIR` the lines are appended to `DIR/raw.txt` (readable by
//! `/work/shared/bench/summarize.sh`), latency quantiles to `DIR/rtt.txt`, and
//! `DIR/summary.md`, `DIR/throughput.svg`, `DIR/latency-cdf-<size>.svg` are rewritten
//! from everything in `DIR`.

mod report;
mod worker;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which Phalanx API the workers send and receive through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Closed process groups: one member per worker (like cpgperf on Corosync).
    Cpg,
    /// Raw totem messages through the node handle.
    Totem,
}

impl Api {
    /// Parses `cpg` or `totem`.
    pub fn parse(s: &str) -> Option<Api> {
        match s {
            "cpg" => Some(Api::Cpg),
            "totem" => Some(Api::Totem),
            _ => None,
        }
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

/// The measurement scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Node 1 floods; the others deliver.
    Tput1,
    /// Every node floods.
    TputN,
    /// Node 1 pings back to back; the others deliver.
    Lat1,
    /// Node 1 pings with 10 ms pauses.
    Lat1Idle,
    /// Every node pings back to back.
    LatN,
    /// Plain UDP from node 1 to every other node, no ordering.
    Raw,
}

impl Scenario {
    /// Parses a scenario name.
    pub fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "tput1" => Scenario::Tput1,
            "tputN" | "tputn" => Scenario::TputN,
            "lat1" => Scenario::Lat1,
            "lat1idle" => Scenario::Lat1Idle,
            "latN" | "latn" => Scenario::LatN,
            "raw" => Scenario::Raw,
            _ => return None,
        })
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
        }
    }

    /// Number of sending processes in a cluster of `n`.
    pub fn senders(self, n: u32) -> u32 {
        match self {
            Scenario::TputN | Scenario::LatN => n,
            _ => 1,
        }
    }
}

struct Args {
    nodes: Vec<u32>,
    scenarios: Vec<Scenario>,
    sizes: Vec<usize>,
    crypto: Vec<bool>,
    apis: Vec<Api>,
    secs: f64,
    guarantee_safe: bool,
    reps: u32,
    rep_start: u32,
    out: Option<PathBuf>,
    max_frame: usize,
    wait: String,
    name: Option<String>,
    recv_nap_us: u64,
    spin_us: u64,
    chacha: bool,
    stats: bool,
}

const USAGE: &str =
    "usage: phalanx-bench --nodes N[,N..] --scenario S[,S..] --size B[,B..] --secs T \
[--api cpg|totem[,..]] [--crypto on|off[,..]] [--guarantee agreed|safe] [--reps R] [--rep-start K] [--out DIR] \
[--max-frame BYTES] [--wait block|yield] [--name IMPL] [--recv-nap-us US] [--spin-us US]
[--cipher aes|chacha] [--driver-stats on|off]
  --api         cpg (default): one process-group member per worker, like cpgperf
                on Corosync (labels phalanx-cpg, phalanx-cpg-crypto); totem: raw
                totem messages (labels phalanx, phalanx-crypto)
  --wait        how a flooding sender waits after TryAgain: block on the event channel
                (up to 1 ms) or yield-spin on send_room() (cpg: drain, yield, retry)
  --recv-nap-us a receiving process with nothing queued naps this long instead of
                blocking on the event channel (default 0: block)
  --spin-us     a pinger polls for its own delivery this long before blocking (default 0)
  scenarios: tput1 tputN lat1 lat1idle latN raw
  phalanx-bench --report DIR   (rewrite DIR/summary.md and the SVG plots only)";

fn list<T>(v: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| f(s).ok_or_else(|| format!("bad value {s:?}")))
        .collect()
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        nodes: vec![3],
        scenarios: vec![Scenario::Tput1],
        sizes: vec![64],
        crypto: vec![false],
        apis: vec![Api::Cpg],
        secs: 5.0,
        guarantee_safe: false,
        reps: 1,
        rep_start: 1,
        out: None,
        max_frame: worker::DEFAULT_MAX_FRAME,
        wait: "block".into(),
        name: None,
        recv_nap_us: 0,
        spin_us: 0,
        chacha: false,
        stats: false,
    };
    let mut i = 0;
    while i < argv.len() {
        let key = argv[i].as_str();
        let val = argv
            .get(i + 1)
            .ok_or_else(|| format!("{key} needs a value"))?
            .as_str();
        match key {
            "--nodes" => a.nodes = list(val, |s| s.parse().ok().filter(|n| (2..=64).contains(n)))?,
            "--scenario" | "--scenarios" => a.scenarios = list(val, Scenario::parse)?,
            "--size" | "--sizes" => {
                a.sizes = list(val, |s| {
                    s.parse()
                        .ok()
                        .filter(|b| (worker::HDR..=1 << 20).contains(b))
                })?
            }
            "--crypto" => {
                a.crypto = list(val, |s| match s {
                    "on" => Some(true),
                    "off" => Some(false),
                    _ => None,
                })?
            }
            "--api" => {
                a.apis = list(val, Api::parse)?;
                if a.apis.is_empty() {
                    return Err("bad --api".into());
                }
            }
            "--secs" => {
                a.secs = val
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && *s < 3600.0)
                    .ok_or("bad --secs")?
            }
            "--guarantee" => {
                a.guarantee_safe = match val {
                    "agreed" => false,
                    "safe" => true,
                    _ => return Err("bad --guarantee".into()),
                }
            }
            "--reps" => a.reps = val.parse().ok().filter(|r| *r >= 1).ok_or("bad --reps")?,
            "--rep-start" => a.rep_start = val.parse().map_err(|_| "bad --rep-start")?,
            "--out" => a.out = Some(PathBuf::from(val)),
            "--max-frame" => a.max_frame = val.parse().map_err(|_| "bad --max-frame")?,
            "--wait" => {
                if val != "block" && val != "yield" {
                    return Err("bad --wait".into());
                }
                a.wait = val.into()
            }
            "--name" => a.name = Some(val.into()),
            "--recv-nap-us" => a.recv_nap_us = val.parse().map_err(|_| "bad --recv-nap-us")?,
            "--spin-us" => a.spin_us = val.parse().map_err(|_| "bad --spin-us")?,
            "--cipher" => {
                a.chacha = match val {
                    "aes" => false,
                    "chacha" => true,
                    _ => return Err("bad --cipher".into()),
                }
            }
            "--driver-stats" => a.stats = val == "on",
            _ => return Err(format!("unknown argument {key}")),
        }
        i += 2;
    }
    Ok(a)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--worker") {
        std::process::exit(worker::main(&argv[1..]));
    }
    if argv.first().map(String::as_str) == Some("--report") {
        let Some(dir) = argv.get(1) else {
            eprintln!("{USAGE}");
            std::process::exit(1);
        };
        if let Err(e) = report::write(&PathBuf::from(dir)) {
            eprintln!("phalanx-bench: report: {e}");
            std::process::exit(1);
        }
        return;
    }
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("phalanx-bench: {e}\n{USAGE}");
            std::process::exit(1);
        }
    };
    std::process::exit(run(&args));
}

fn run(a: &Args) -> i32 {
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
            "# phalanx-bench: nodes={:?} scenarios={:?} sizes={:?} api={:?} crypto={:?} secs={} guarantee={} reps={} max_frame={} wait={} recv_nap_us={} spin_us={} cipher={} load=\"{}\"",
            a.nodes,
            a.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
            a.sizes,
            a.apis.iter().map(|x| x.name()).collect::<Vec<_>>(),
            a.crypto,
            a.secs,
            if a.guarantee_safe { "safe" } else { "agreed" },
            a.reps,
            a.max_frame,
            a.wait,
            a.recv_nap_us,
            a.spin_us,
            if a.chacha {
                "chacha20-poly1305"
            } else {
                "aes-256-gcm"
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
                    let runs: Vec<(Api, bool)> = if sc == Scenario::Raw {
                        vec![(a.apis[0], false)]
                    } else {
                        a.apis
                            .iter()
                            .flat_map(|&api| a.crypto.iter().map(move |&c| (api, c)))
                            .collect()
                    };
                    for (api, crypto) in runs {
                        let imp = match (&a.name, sc) {
                            (Some(n), _) => n.clone(),
                            (None, Scenario::Raw) => "udp".to_string(),
                            (None, _) => api.impl_name(crypto).to_string(),
                        };
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
        if let Err(e) = report::write(dir) {
            eprintln!("phalanx-bench: report: {e}");
        }
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
    a: &Args,
    n: u32,
    sc: Scenario,
    size: usize,
    api: Api,
    crypto: bool,
    label: &str,
) -> (Vec<String>, Vec<String>, bool, String) {
    let addrs = match free_ports(n) {
        Ok(p) => p,
        Err(e) => return (vec![], vec![], false, format!("ports: {e}")),
    };
    let addr_list: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect();
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
            addrs: addr_list.join(","),
            scenario: sc,
            size,
            secs: a.secs,
            crypto,
            safe: a.guarantee_safe,
            label: label.to_string(),
            max_frame: a.max_frame,
            wait_yield: a.wait == "yield",
            recv_nap_us: a.recv_nap_us,
            spin_us: a.spin_us,
            chacha: a.chacha,
            stats: a.stats,
            api,
        };
        let child = Command::new(&exe)
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
    let ok =
        why.is_empty() && report::check_run(&results, n as usize, sc == Scenario::Raw, &mut why);
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

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse_args(&v)
    }

    #[test]
    fn api_defaults_to_cpg_and_parses_lists() {
        assert_eq!(args("").unwrap().apis, vec![Api::Cpg]);
        assert_eq!(args("--api totem").unwrap().apis, vec![Api::Totem]);
        assert_eq!(
            args("--api cpg,totem").unwrap().apis,
            vec![Api::Cpg, Api::Totem]
        );
        assert!(args("--api raw").is_err());
        assert!(args("--api ,").is_err());
        assert!(args("--api").is_err());
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
            };
            let back = worker::Spec::from_args(&spec.to_args()).expect("parses");
            assert_eq!(back.id, 2);
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
