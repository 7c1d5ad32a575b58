//! `phalanxd` — the reference node: one cluster member from a configuration file.
//!
//! ```text
//! phalanxd --config FILE [--node-id N] [--chat | --control [--incarnation N]] [--no-realtime]
//! phalanxd [-f] -c FILE                       # Corosync's command line
//! ```
//!
//! `-c FILE` is Corosync's spelling and starts the node as a drop-in for `corosync`:
//! the Corosync client protocol (libqb IPC) is served unless the file says
//! `compat { ipc: no }`; `-f` (foreground) is accepted, phalanxd never forks.
//! The driver thread runs SCHED_RR (priority 50) when allowed, as Corosync does by
//! default; `--no-realtime` or `system { sched_rr: no }` keeps normal scheduling.
//!
//! Loads a corosync.conf-style or TOML file (see docs/config.md), joins the
//! cluster and logs every configuration change and every link going up or down
//! (`[node 1] link 0 to node 3 is down`, see docs/links.md). With `--chat`, each stdin line is
//! multicast (agreed) and every delivered message printed as `<node>: <text>`.
//! With `--control`, stdin takes commands and stdout carries one machine-readable,
//! timestamped event per line instead (the controller protocol, docs/phalanxd.md):
//! the multi-process tests drive their nodes this way.
//! Every record goes to a crash-surviving flight recorder in the state directory
//! (`phalanx-blackbox <state_dir>/blackbox-<id>` reads it). SIGINT or SIGTERM (or
//! the end of stdin with `--chat` or `--control`) leaves the cluster cleanly.

mod control;
mod human;

use clap::Parser;
use phalanx::compat::qb::CmapValue;
use phalanx::compat::qb::cmap_runtime::totem_runtime_keys;
use phalanx::compat::qb::{
    IpcOptions, IpcServer, keys_from_config, node_addrs_from_config, qdevice_mode_from_config,
    resolve_group, resolve_user,
};
use phalanx::config;
use phalanx::logsys::{Logger, install_panic_hook};
use phalanx::node::{Node, NodeOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "phalanxd",
    version,
    about = "The Phalanx reference node: one cluster member from a configuration file.",
    long_about = "The Phalanx reference node: one cluster member from a configuration file.\n\n\
        Joins the cluster and logs every configuration change and every link going up or \
        down. SIGINT or SIGTERM leaves the cluster cleanly. Every record also goes to a \
        crash-surviving flight recorder, <state_dir>/blackbox-<id> (read it with \
        phalanx-blackbox)."
)]
#[command(disable_version_flag = true)]
#[command(group(clap::ArgGroup::new("file").required(true).args(["config", "corosync_conf"])))]
struct Args {
    /// Configuration file, corosync.conf style or TOML (docs/config.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Configuration file, started as Corosync is (`corosync -f -c FILE`): also
    /// serves the Corosync client protocol unless the file says `compat { ipc: no }`.
    #[arg(short = 'c', value_name = "FILE")]
    corosync_conf: Option<PathBuf>,
    /// Foreground, as Corosync's `-f` (accepted; phalanxd always runs in the foreground).
    #[arg(short = 'f')]
    foreground: bool,
    /// Print the version (`-v` as Corosync, `-V`, `--version`).
    #[arg(short = 'v', visible_short_alias = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// This node's id, when the configuration cannot tell which node this host is.
    #[arg(long, value_name = "N")]
    node_id: Option<u32>,
    /// Multicast each stdin line (agreed) and print every delivery as `<node>: <text>`;
    /// the end of stdin leaves the cluster.
    #[arg(long, conflicts_with = "control")]
    chat: bool,
    /// Controller protocol: commands on stdin, one timestamped machine-readable event
    /// per line on stdout (docs/phalanxd.md); the end of stdin leaves the cluster.
    #[arg(long)]
    control: bool,
    /// With --control: stamped into every message this process multicasts, so the
    /// messages of a restarted node are told apart from those of its earlier life.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "control")]
    incarnation: u32,
    /// Keep normal scheduling for the driver thread (default: SCHED_RR priority 50
    /// when allowed, like Corosync's `sched_rr: yes`).
    #[arg(long)]
    no_realtime: bool,
    /// With --control: plant a bug on purpose, so that a judge of the recorded
    /// history can be shown to fail (phalanx-nemesis --plant-bug). Hidden.
    #[arg(long, value_name = "KIND", requires = "control", hide = true)]
    plant_bug: Option<control::planted::PlantedBug>,
    /// Read the host's boot id from FILE instead of
    /// /proc/sys/kernel/random/boot_id: several simulated hosts on one machine
    /// (phalanx-nemesis), each with a file its test fence agent rewrites when it
    /// power-cycles the node (docs/dlm.md). Hidden.
    #[arg(long, value_name = "FILE", hide = true)]
    boot_id_file: Option<PathBuf>,
}

/// Set by SIGINT / SIGTERM (and by the end of stdin in the stdin-driven modes).
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phalanxd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether to serve the Corosync client protocol: what the file says, and when
/// started as Corosync (`-c`), yes unless the file says no.
fn serve_ipc(cfg: &config::ClusterConfig, as_corosync: bool) -> bool {
    cfg.compat_ipc || as_corosync && !cfg.source.contains("compat.ipc")
}

fn run(args: &Args) -> Result<(), String> {
    let (path, as_corosync) = match (&args.config, &args.corosync_conf) {
        (Some(p), _) => (p, false),
        (None, Some(p)) => (p, true),
        (None, None) => return Err("no configuration file (--config FILE or -c FILE)".into()),
    };
    let loaded = config::load(path).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        eprintln!("phalanxd: warning: {w}");
    }
    let mut cfg = loaded.config;
    // What `corosync-cfgtool -R` compares the file with.
    let as_loaded = cfg.clone();
    cfg.compat_ipc = serve_ipc(&cfg, as_corosync);
    let me = cfg
        .local_node(args.node_id)
        .map_err(|e| e.to_string())?
        .node_id;
    let mut opts = NodeOptions::from_config(&cfg, me).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
    let blackbox = cfg.state_dir.join(format!("blackbox-{me}"));
    // Appended to, not replaced: after a crash or kill -9 the previous process's
    // records are what `phalanx-report` and `phalanx-blackbox` are asked about.
    let logger = Logger::builder()
        .file(&blackbox, 8 << 20)
        .append(true)
        .build()
        .map_err(|e| format!("{}: {e}", blackbox.display()))?;
    phalanx::logsys::record!(
        logger,
        phalanx::logsys::monotonic_ns(),
        me,
        Notice,
        "node",
        "phalanxd {} starting, pid {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    install_panic_hook(logger.clone());
    opts.logger = logger.clone();
    // For phalanx-cpgtool / phalanx-quorumtool.
    opts.admin_socket = Some(phalanx::admin::socket_path(&cfg.state_dir, me));
    // The lock manager costs nothing until a lockspace is joined.
    opts.dlm.get_or_insert_with(Default::default);
    if let Some(f) = &args.boot_id_file {
        opts.boot_id_file = f.clone();
    }
    // Like Corosync's default `sched_rr: yes`: CPU starvation of this thread must
    // not look like a dead node to the others. Refused without CAP_SYS_NICE.
    if !args.no_realtime && cfg.sched_rr != Some(false) {
        opts.realtime_priority = Some(50);
    }
    let crypto = if opts.crypto.is_some() { "on" } else { "OFF" };
    let mut listen = vec![format!("link 0 {}", opts.addrs[&me])];
    for l in &opts.links.extra {
        listen.push(format!("link {} {}", l.number, l.addrs[&me]));
    }
    eprintln!(
        "phalanxd: node {me} of cluster {:?} ({} nodes), listening on {} ({:?} mode), crypto {crypto}, token {:?}",
        cfg.cluster_name,
        cfg.nodes.len(),
        listen.join(", "),
        opts.links.mode,
        opts.totem.token_timeout
    );

    // SAFETY: installing an async-signal-safe handler that only stores an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    // Who may use the Corosync client protocol, resolved before the node starts.
    let (uids, gids) = if cfg.compat_ipc {
        let resolve = |names: &[String], f: fn(&str) -> std::io::Result<u32>| {
            names.iter().map(|n| f(n)).collect::<Result<Vec<u32>, _>>()
        };
        let users = resolve(&cfg.ipc_users, resolve_user).map_err(|e| format!("uidgid: {e}"))?;
        let groups = resolve(&cfg.ipc_groups, resolve_group).map_err(|e| format!("uidgid: {e}"))?;
        (users, groups)
    } else {
        (Vec::new(), Vec::new())
    };
    let node = Node::start(opts).map_err(|e| format!("cannot start: {e}"))?;
    // Corosync's client protocol (`compat { ipc: yes }`), for programs linked
    // with libcpg / libquorum / libvotequorum (docs/compat.md).
    let ipc = if cfg.compat_ipc {
        let options = IpcOptions {
            uids,
            gids,
            logger,
            cmap: cmap_keys(&cfg, me)?,
            reload: Some((path.clone(), as_loaded)),
            // corosync-cfgtool -H stops the node as SIGTERM does.
            shutdown: Some(&STOP),
            node_addrs: node_addrs_from_config(&cfg),
            link_mtu: cfg.totem.netmtu.unwrap_or(1500),
            knet: cfg.transport == config::Transport::Knet,
            transport: cfg.ipc_transport,
            qdevice: qdevice_mode_from_config(&cfg),
            ..IpcOptions::default()
        };
        match IpcServer::start(node.handle(), options) {
            Ok(s) => {
                eprintln!(
                    "phalanxd: serving Corosync clients (libqb IPC: cmap, cpg, quorum, votequorum, cfg)"
                );
                Some(s)
            }
            Err(e) => {
                let _ = node.leave();
                return Err(format!("cannot serve Corosync clients: {e}"));
            }
        }
    } else {
        None
    };
    if args.control {
        control::run(node, ipc, args.incarnation, args.plant_bug, &STOP)
    } else {
        human::run(node, ipc, me, args.chat, &STOP)
    }
}

/// The cmap keys the node starts with: those of the file and the effective
/// totem timings (`runtime.config.totem.*`).
fn cmap_keys(cfg: &config::ClusterConfig, me: u32) -> Result<Vec<(String, CmapValue)>, String> {
    let mut keys = keys_from_config(cfg);
    let totem = cfg.totem_config(me).map_err(|e| e.to_string())?;
    keys.extend(totem_runtime_keys(&totem));
    Ok(keys)
}
