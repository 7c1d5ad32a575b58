//! `phalanx-report` — the role of `crm_report`/`hb_report`: gathers, for a time
//! window, every node's flight recorder and (from nodes that answer on their admin
//! socket) status, quorum, counters, fencing state and CIB version, merges the
//! recorders of all nodes into one timeline ordered by time with each writer's ring
//! id, marks the key events (starts, token losses, new rings, quorum, links,
//! fencing, errors, and the operator's own notes from `--events`), and writes
//! `report.txt`, a self-contained `report.html` and copies of the recorders into
//! one directory — the thing to attach to a bug report.
//!
//! Exit status: 0 when the report was written, 1 when nothing could be read or the
//! report could not be written, 2 on bad usage.

#[path = "../common/cli.rs"]
mod cli;
mod collect;
mod render;
mod state;
mod timeline;

use clap::Parser;
use clap_complete::Shell;
use collect::{Collected, Source};
use phalanx::admin::DEFAULT_CONFIG_PATH;
use phalanx::logsys::dump::parse_time;
use phalanx::logsys::{format_wall, wall_ns};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Gather a cluster report: flight recorders merged into one timeline with ring ids
/// and key events, plus each live node's status, quorum, counters, fencing and CIB
/// version; written as report.txt and report.html into one directory.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-report",
    version,
    after_help = "Nodes come from --config (every node of its nodelist, in its state \
                  directory) and --state-dir (every blackbox-<id> file in it, e.g. copied \
                  from another host). With neither, /etc/phalanx/phalanx.conf is read.\n\
                  Exit status: 0 when the report was written, 1 when nothing could be \
                  read or the report could not be written, 2 on bad usage."
)]
struct Cli {
    /// A configuration file naming nodes and their state directory (repeatable).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    configs: Vec<PathBuf>,
    /// A state directory holding nodes' flight recorders (repeatable).
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dirs: Vec<PathBuf>,
    /// Only what happened at or after T: RFC 3339 UTC or seconds since the epoch.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    since: Option<u64>,
    /// Only what happened at or before T.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    until: Option<u64>,
    /// External events to put in the timeline: lines `TIME [nID] TEXT`.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Directory to write the report into (created) [default:
    /// ./phalanx-report-<time>].
    #[arg(short = 'o', long = "dest", value_name = "DIR")]
    dest: Option<PathBuf>,
    /// Do not copy the flight recorders into the report directory.
    #[arg(long)]
    no_recorders: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(2) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    match run(cli) {
        Ok(dest) => {
            println!("{}", dest.display());
            ExitCode::SUCCESS
        }
        Err((status, why)) => {
            eprintln!("phalanx-report: {why}");
            ExitCode::from(status)
        }
    }
}

fn run(cli: Cli) -> Result<PathBuf, (u8, String)> {
    let usage = |e: String| (2u8, e);
    let failed = |e: String| (1u8, e);
    let sources = sources(&cli).map_err(usage)?;
    let external = match &cli.events {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).map_err(|e| usage(format!("{}: {e}", f.display())))?;
            timeline::parse_events(&text).map_err(|e| usage(format!("{}: {e}", f.display())))?
        }
        None => Vec::new(),
    };
    let collected: Vec<Collected> = sources.iter().map(collect::collect).collect();
    if collected
        .iter()
        .all(|c| c.recorder.is_err() && c.live.is_none())
    {
        return Err(failed(format!(
            "nothing to report: no recorder could be read and no node answered ({})",
            collected
                .iter()
                .map(|c| format!(
                    "node {}: {}",
                    c.source.id,
                    c.recorder.as_ref().err().map_or("", |e| e)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let window = timeline::Window {
        since: cli.since,
        until: cli.until,
    };
    let entries = timeline::build(&collected, &external, window);
    let now = wall_ns();
    let header = render::Header {
        generated_ns: now,
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown host".into()),
        window: format!(
            "{} .. {}",
            cli.since.map_or("start of records".into(), format_wall),
            cli.until.map_or("end of records".into(), format_wall)
        ),
        events_from: cli.events.as_ref().map(|p| p.display().to_string()),
    };
    let dest = cli.dest.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "phalanx-report-{}",
            format_wall(now).replace(':', "")
        ))
    });
    let write = |name: &str, data: &[u8]| -> Result<(), (u8, String)> {
        let p = dest.join(name);
        std::fs::write(&p, data).map_err(|e| failed(format!("{}: {e}", p.display())))
    };
    std::fs::create_dir_all(&dest).map_err(|e| failed(format!("{}: {e}", dest.display())))?;
    write(
        "report.txt",
        render::text(&header, &collected, &entries).as_bytes(),
    )?;
    write(
        "report.html",
        render::html(&header, &collected, &entries).as_bytes(),
    )?;
    if !cli.no_recorders {
        copy_recorders(&collected, &dest.join("recorders")).map_err(failed)?;
    }
    for c in &cli.configs {
        let name = format!(
            "config-{}",
            c.file_name().map_or("conf".into(), |n| n.to_string_lossy())
        );
        let data = std::fs::read(c).map_err(|e| failed(format!("{}: {e}", c.display())))?;
        write(&name, &data)?;
    }
    Ok(dest)
}

/// The nodes to report on, from `--config` and `--state-dir` (or the default
/// configuration), each node once.
fn sources(cli: &Cli) -> Result<Vec<Source>, String> {
    let mut out: Vec<Source> = Vec::new();
    let mut configs = cli.configs.clone();
    if configs.is_empty() && cli.state_dirs.is_empty() {
        configs.push(PathBuf::from(DEFAULT_CONFIG_PATH));
    }
    for path in &configs {
        let cfg = phalanx::config::load(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .config;
        out.extend(cfg.nodes.iter().map(|n| Source {
            id: n.node_id,
            state_dir: cfg.state_dir.clone(),
        }));
    }
    for dir in &cli.state_dirs {
        let found = collect::sources_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if found.is_empty() {
            return Err(format!(
                "{}: no flight recorder (blackbox-<id>) in it",
                dir.display()
            ));
        }
        out.extend(found);
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|s| seen.insert((s.id, s.state_dir.clone())));
    Ok(out)
}

fn copy_recorders(nodes: &[Collected], dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for c in nodes.iter().filter(|c| c.recorder.is_ok()) {
        let from = c.source.recorder();
        let to = dir.join(format!("blackbox-{}", c.source.id));
        std::fs::copy(&from, &to)
            .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}
