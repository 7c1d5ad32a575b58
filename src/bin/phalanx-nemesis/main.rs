//! `phalanx-nemesis` — faults on real processes, judged by the simulator's
//! checkers (docs/nemesis.md).
//!
//! Starts N `phalanxd --control` processes, each in its own network namespace
//! (veth cables to bridges in a hub namespace), crypto on, default timeouts,
//! realtime scheduling as the daemon asks for it unless `--no-realtime`. Every
//! node multicasts (its own load), keeps a member in one CPG group and runs
//! votequorum. A seeded schedule of faults — kill -9 and restart (some restarts
//! in a time namespace whose clock is ahead), SIGSTOP/SIGCONT, partitions of any
//! shape, one-way cuts — runs meanwhile; then everything is repaired, the
//! cluster settles and drains, and each node's final status is taken. Every
//! process's own event stream is its history file; afterwards the simulator's
//! EVS, CPG and quorum checkers judge the merged history. One verdict line with
//! the seed; a failing run keeps its directory and gets a `phalanx-report`.
//!
//! Exit status: 0 no violation, 1 violations (or a node died by itself), 2 the
//! run could not be made (usage, no root, no `ip`), 130 interrupted.

mod cib_client;
#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/control_events.rs"]
#[allow(dead_code)]
mod control_events;
mod history;
mod judge;
mod live;
mod net;
mod procs;
mod record;
mod report;
mod run;
mod schedule;
mod services;
mod signals;
mod step_order;

use clap::Parser;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Faults on real phalanxd processes in network namespaces, judged by the
/// simulator's checkers.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-nemesis",
    version,
    after_help = "Needs root (network namespaces) and iproute2. Prints one verdict line with \
                  the seed. A failing run keeps its directory (histories, logs, flight \
                  recorders, the schedule) and a phalanx-report in it.\n\
                  Exit status: 0 no violation, 1 violations, 2 the run could not be made, \
                  130 interrupted."
)]
struct Cli {
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=32))]
    nodes: u32,
    /// Number of fault events (each kill, restart, pause, resume, partition,
    /// heal, cut and uncut counts one).
    #[arg(long, default_value_t = 40)]
    events: usize,
    /// Seed of the schedule [default: random, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Shortest time between two fault events, ms.
    #[arg(long, default_value_t = 100)]
    min_gap_ms: u64,
    /// Longest time between two fault events, ms.
    #[arg(long, default_value_t = 600)]
    max_gap_ms: u64,
    /// Each node multicasts a message every this many ms.
    #[arg(long, default_value_t = 20)]
    load_ms: u64,
    /// Each node's CPG member multicasts to the group every this many ms.
    #[arg(long, default_value_t = 50)]
    cpg_ms: u64,
    /// Totem token timeout in ms [default: the daemon's default].
    #[arg(long)]
    token_ms: Option<u64>,
    /// Measure instead of a random schedule: K rounds of `kill -9` of one node
    /// (in turn) and its restart, each timed until the cluster has settled (one
    /// ring, quorate, one group view); prints formation, failover and rejoin
    /// times. The run is judged as any other.
    #[arg(long, value_name = "K", conflicts_with = "events")]
    failovers: Option<usize>,
    /// Each node's CIB client asks its node every this many ms (a new marker,
    /// or every fourth time a query of the whole CIB); 0: no CIB.
    #[arg(long, default_value_t = 250)]
    cib_ms: u64,
    /// Lock workers per process (`dlm-hammer`); 0: no DLM.
    #[arg(long, default_value_t = 2)]
    dlm_threads: u32,
    /// How the nodes' lock traffic travels (`dlm { lock_traffic: ... }`):
    /// `direct` or `ring` [default: the daemon's].
    #[arg(long, value_name = "HOW", value_parser = ["direct", "ring"])]
    dlm_lock_traffic: Option<String>,
    /// Resources of the lockspace the workers lock.
    #[arg(long, default_value_t = 16)]
    dlm_resources: u32,
    /// Directory of the fence agent `fence_phalanx_kill` [default: the
    /// source tree's fence/test-agents]; the nodes fence each other with it.
    #[arg(long, value_name = "DIR")]
    fence_agent_dir: Option<PathBuf>,
    /// No fencing device (and so no DLM: its recovery waits for fencing).
    #[arg(long)]
    no_fencing: bool,
    /// Keep normal scheduling in the nodes (default: SCHED_RR as the daemon asks).
    #[arg(long)]
    no_realtime: bool,
    /// No one-way cuts.
    #[arg(long)]
    no_cuts: bool,
    /// No restarts with a clock offset.
    #[arg(long)]
    no_clock_steps: bool,
    /// Longest wait for the cluster to settle after the faults, seconds.
    #[arg(long, default_value_t = 60)]
    settle_s: u64,
    /// Run directory [default: a new one under $TMPDIR or /dev/shm].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the run directory of a passing run too.
    #[arg(long)]
    keep: bool,
    /// The phalanxd binary [default: next to this program].
    #[arg(long, value_name = "PATH")]
    phalanxd: Option<PathBuf>,
    /// Only judge the run kept in DIR again (no processes started).
    #[arg(long, value_name = "DIR", conflicts_with = "dir")]
    judge: Option<PathBuf>,
    /// Plant a bug in node 2's first process (its report swaps two
    /// deliveries): the judge must catch it.
    #[arg(long, hide = true)]
    plant_bug: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

/// The address range of a run: namespace-local, the same in every run.
const SUBNET: &str = "10.166.0";

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(2) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    signals::install();
    if let Some(dir) = &cli.judge {
        return match judge_dir(dir, "judged again") {
            Ok(ok) => exit(ok),
            Err(e) => {
                eprintln!("phalanx-nemesis: {e}");
                ExitCode::from(2)
            }
        };
    }
    let seed = cli.seed.unwrap_or_else(random_seed);
    match nemesis(&cli, seed) {
        Ok(ok) => exit(ok),
        Err((e, dir)) => {
            let kept = dir
                .map(|d| format!(" (kept {})", d.display()))
                .unwrap_or_default();
            println!("phalanx-nemesis: ERROR seed={seed}: {e}{kept}");
            match e {
                run::RunError::Interrupted => ExitCode::from(130),
                _ => ExitCode::from(2),
            }
        }
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return phalanx::logsys::wall_ns() ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(b)
}

/// `$TMPDIR` when set, else `/dev/shm` (the nodes fsync their ring sequence on
/// every configuration change: on tmpfs that costs no disk), else the system's.
fn base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Whether `name` is a program on `$PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// The run directory's configuration and key.
fn write_conf(dir: &Path, cli: &Cli) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let key_path = dir.join("authkey");
    let mut key = [0u8; 256];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(&key_path, key)?;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    let token = cli
        .token_ms
        .map(|t| format!("    token: {t}\n"))
        .unwrap_or_default();
    let mut nodes = String::new();
    for i in 1..=cli.nodes {
        nodes += &format!(
            "    node {{\n        nodeid: {i}\n        name: n{i}\n        ring0_addr: {SUBNET}.{i}\n    }}\n"
        );
    }
    let cib = if cli.cib_ms > 0 {
        "cib {\n    enabled: yes\n}\n".to_string()
    } else {
        String::new()
    };
    // The nodes' pid files (the fence agent's targets).
    let pids = dir.join("pids");
    std::fs::create_dir_all(&pids)?;
    let fencing = match fence_agent_dir(cli) {
        Some(agents) => {
            let hosts: Vec<String> = (1..=cli.nodes).map(|i| format!("n{i}")).collect();
            format!(
                "fencing {{\n    agent_dir: {agents}\n    device {{\n        id: kill\n        \
                 agent: fence_phalanx_kill\n        pidfile_dir: {pids}\n        \
                 pcmk_host_list: {hosts}\n    }}\n}}\n",
                agents = agents.display(),
                pids = pids.display(),
                hosts = hosts.join(" "),
            )
        }
        None => String::new(),
    };
    let dlm = cli
        .dlm_lock_traffic
        .as_ref()
        .map(|t| format!("dlm {{\n    lock_traffic: {t}\n}}\n"))
        .unwrap_or_default();
    let conf = format!(
        "totem {{\n    cluster_name: nemesis\n    crypto_cipher: aes256\n    crypto_hash: sha256\n    \
         keyfile: {key}\n{token}}}\nsystem {{\n    state_dir: {state}\n}}\nnodelist {{\n{nodes}}}\n\
         quorum {{\n    provider: corosync_votequorum\n}}\n{cib}{fencing}{dlm}",
        key = key_path.display(),
        state = state.display(),
    );
    let path = dir.join("corosync.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// The fence agents' directory, `None` without fencing.
fn fence_agent_dir(cli: &Cli) -> Option<PathBuf> {
    if cli.no_fencing {
        return None;
    }
    Some(
        cli.fence_agent_dir
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fence/test-agents")),
    )
}

/// Makes and judges one run; whether it passed. On an error, the error and the
/// directory if it was kept.
fn nemesis(cli: &Cli, seed: u64) -> Result<bool, (run::RunError, Option<PathBuf>)> {
    let started = Instant::now();
    let fail = |e: run::RunError| -> (run::RunError, Option<PathBuf>) { (e, None) };
    let io =
        |what: &'static str| move |e: std::io::Error| run::RunError::Io(format!("{what}: {e}"));
    let dir = cli.dir.clone().unwrap_or_else(|| {
        base_dir().join(format!("phalanx-nemesis-{seed}-{}", std::process::id()))
    });
    // Absolute: the configuration names the key and state directory by it.
    let dir = std::path::absolute(&dir)
        .map_err(io("run directory"))
        .map_err(fail)?;
    std::fs::create_dir_all(&dir)
        .map_err(io("run directory"))
        .map_err(fail)?;
    let keep = |e: run::RunError| -> (run::RunError, Option<PathBuf>) { (e, Some(dir.clone())) };
    let conf = write_conf(&dir, cli)
        .map_err(io("configuration"))
        .map_err(keep)?;
    let time_ns = Path::new("/proc/self/ns/time").exists();
    let shape = schedule::Shape {
        nodes: cli.nodes,
        events: cli.events,
        min_gap_ms: cli.min_gap_ms,
        max_gap_ms: cli.max_gap_ms,
        cuts: !cli.no_cuts,
        clock_steps: !cli.no_clock_steps && time_ns,
    };
    let steps = schedule::generate(seed, &shape);
    let text: String = steps
        .iter()
        .map(|s| format!("{} {}\n", s.at_ms, s.fault))
        .collect();
    std::fs::write(dir.join("schedule.txt"), format!("# seed {seed}\n{text}"))
        .map_err(io("schedule"))
        .map_err(keep)?;
    let firewall = if on_path("nft") || on_path("iptables") {
        "present, not needed"
    } else {
        "absent"
    };
    let net = net::Net::create(&format!("phx-nem{}", std::process::id()), cli.nodes, SUBNET)
        .map_err(|e| keep(e.into()))?;
    let netem = if net.netem_available() {
        "available, not used yet"
    } else {
        "no (tc netem is not available in this kernel: tried, refused)"
    };
    println!(
        "phalanx-nemesis: seed={seed} nodes={} {} dir={}\n  \
         one-way cuts: neighbour entries poisoned in the sender's namespace (nftables/iptables {firewall}); \
         packet loss/delay: {netem}; clock steps: {}; link flaps: no (one link per node)",
        cli.nodes,
        match cli.failovers {
            Some(k) => format!("failovers={k}"),
            None => format!("events={}", cli.events),
        },
        dir.display(),
        if shape.clock_steps {
            "restarted processes in a time namespace ahead by 1 s..1 day (CLOCK_MONOTONIC/BOOTTIME; CLOCK_REALTIME is host-wide and left alone)"
        } else if time_ns {
            "off (--no-clock-steps)"
        } else {
            "no (this kernel has no time namespaces)"
        }
    );
    let phalanxd = cli.phalanxd.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("phalanxd")))
            .unwrap_or_else(|| "phalanxd".into())
    });
    if let Some(agents) = fence_agent_dir(cli)
        && !agents.join("fence_phalanx_kill").is_file()
    {
        return Err(keep(run::RunError::Io(format!(
            "no fence_phalanx_kill in {} (--fence-agent-dir, or --no-fencing)",
            agents.display()
        ))));
    }
    let pids = cib_client::Pids::default();
    let launcher = procs::Launcher {
        phalanxd,
        conf,
        dir: dir.clone(),
        no_realtime: cli.no_realtime,
        plant_bug_in: cli.plant_bug.then_some(2.min(cli.nodes)),
        pid_dir: dir.join("pids"),
        pids: pids.clone(),
    };
    let fencing = !cli.no_fencing;
    let services = run::Services {
        dlm_threads: if fencing { cli.dlm_threads } else { 0 },
        dlm_resources: cli.dlm_resources.max(1),
        cib_every: (cli.cib_ms > 0).then(|| Duration::from_millis(cli.cib_ms)),
        state_dir: dir.join("state"),
        pids,
        reboot_after: if fencing {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        },
        dir: dir.clone(),
    };
    let procs = procs::Procs::new(launcher, net.nodes.clone());
    let rec = record::Recorder::create(&dir)
        .map_err(io("record"))
        .map_err(keep)?;
    let pace = run::Pace {
        load_ms: cli.load_ms,
        cpg_ms: cli.cpg_ms,
        settle: Duration::from_secs(cli.settle_s),
    };
    let formation = Instant::now();
    let mut r = run::Run::start(procs, net, rec, pace, cli.nodes, seed, services).map_err(keep)?;
    r.first_ring(Duration::from_secs(60)).map_err(keep)?;
    let formation = formation.elapsed();
    match cli.failovers {
        Some(rounds) => {
            let rounds = r.failovers(rounds, Duration::from_secs(60)).map_err(keep)?;
            print_failovers(cli.nodes, formation, &rounds);
        }
        None => r.faults(&steps).map_err(keep)?,
    }
    let outcome = r.finish().map_err(keep)?;
    let what: Vec<String> = outcome
        .kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  {} fault events in {:.1} s ({}); settled: {}, drained: {}; realtime: {}",
        outcome.applied,
        outcome.fault_phase_s,
        what.join(", "),
        yes(outcome.settled),
        yes(outcome.drained),
        yes(!cli.no_realtime)
    );
    for n in &outcome.notes {
        println!("  note: {n}");
    }
    let summary = format!(
        "seed={seed} nodes={} events={} {:.1} s",
        cli.nodes,
        outcome.applied,
        started.elapsed().as_secs_f64()
    );
    let ok = judge_dir(&dir, &summary).map_err(|e| keep(run::RunError::Io(e)))?;
    if ok && !cli.keep && cli.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ok)
}

/// The measurement's lines: one per round, then one summary line
/// (`SCALE nodes=… formation_ms=… failover_ms_p50=… …`, for scripts).
fn print_failovers(nodes: u32, formation: Duration, rounds: &[run::Failover]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "  round {i}: kill -9 n{} → settled without it in {:.0} ms; restart → settled with it in {:.0} ms",
            r.victim,
            ms(r.failover),
            ms(r.rejoin)
        );
    }
    let stats = |mut v: Vec<f64>| -> (f64, f64) {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => (f64::NAN, f64::NAN),
            n => (v[n / 2], v[n - 1]),
        }
    };
    let (f50, fmax) = stats(rounds.iter().map(|r| ms(r.failover)).collect());
    let (j50, jmax) = stats(rounds.iter().map(|r| ms(r.rejoin)).collect());
    println!(
        "SCALE nodes={nodes} formation_ms={:.0} rounds={} failover_ms_p50={f50:.0} failover_ms_max={fmax:.0} rejoin_ms_p50={j50:.0} rejoin_ms_max={jmax:.0}",
        ms(formation),
        rounds.len()
    );
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Judges the run in `dir`, prints the verdict (violations, then one verdict
/// line) and writes it to `verdict.txt`; a failing run gets a report. Whether
/// it passed.
fn judge_dir(dir: &Path, summary: &str) -> Result<bool, String> {
    let loaded = history::load(dir)?;
    let mut violations = judge::judge(&loaded);
    let sim_violations = violations.len();
    let services = services::judge(dir)?;
    violations.extend(services.violations);
    let s = services.counts;
    let c = loaded.counts;
    let mut lines: Vec<String> = violations
        .iter()
        .take(30)
        .map(|v| format!("  violation: {v}"))
        .collect();
    lines.extend(
        loaded
            .unexpected_exits
            .iter()
            .map(|e| format!("  violation: {e}")),
    );
    // The services' checkers show at most 20 violations each; counted in all.
    let bad =
        sim_violations + services.totals.values().sum::<usize>() + loaded.unexpected_exits.len();
    lines.extend(services.notes.iter().map(|n| format!("  note: {n}")));
    let judged = format!(
        "{} processes, {} deliveries, {} CPG deliveries, {} CPG views, {} configurations, \
         {} quorum notifications, {} lock grants on {} processes, {} fencings by the agent \
         ({} fence results), {} CIB changes acknowledged ({} refused or unanswered, {} divergence \
         reports), {} dlm errors judged by {} checkers",
        c.processes,
        c.deliveries,
        c.cpg_deliveries,
        c.cpg_views,
        c.configs,
        c.quorum,
        s.grants,
        s.lock_processes,
        s.fenced,
        s.fence_results,
        s.cib_acks,
        s.cib_fails,
        s.cib_divergences,
        s.dlm_errors,
        judge::CHECKERS.len() + services::CHECKERS.len()
    );
    let verdict = if bad == 0 {
        format!("phalanx-nemesis: PASS {summary}; {judged}: 0 violations")
    } else {
        let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
        for v in &violations[..sim_violations] {
            *by.entry(v.property).or_default() += 1;
        }
        for (k, n) in &services.totals {
            *by.entry(*k).or_default() += n;
        }
        if !loaded.unexpected_exits.is_empty() {
            by.insert("process_exit", loaded.unexpected_exits.len());
        }
        let by: Vec<String> = by.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let report = report::run_report(dir);
        lines.push(format!("  {report}"));
        format!(
            "phalanx-nemesis: FAIL {summary}; {judged}: {bad} violations ({}); kept {}",
            by.join(", "),
            dir.display()
        )
    };
    lines.push(verdict);
    let text = lines.join("\n");
    println!("{text}");
    let _ = std::fs::write(dir.join("verdict.txt"), format!("{text}\n"));
    Ok(bad == 0)
}
