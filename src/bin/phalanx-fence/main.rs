//! `phalanx-fence` — fence agents from the command line, and fencing through a
//! running cluster.
//!
//! ```text
//! phalanx-fence --list-installed [--agent-dir DIR] [--json]
//! phalanx-fence --metadata --agent NAME [--raw | --json] [--agent-dir DIR]
//! phalanx-fence --agent NAME --action ACTION [--target NODE [--nodeid N]]
//!     [--param NAME=VALUE]... [--timeout DURATION] [--attempts N]
//!     [--record FILE] [--agent-dir DIR] [--json]
//! phalanx-fence [--socket PATH | --config FILE [--node-id N]]
//!     (--list-registered | --history [--target NODE] [--cleanup] | --fence NODE |
//!      --reboot NODE | --unfence NODE | --confirm NODE | --query NODE |
//!      --register DEVICE --agent NAME [-o NAME=VALUE]... | --deregister DEVICE |
//!      --register-level NODE LEVEL DEVICE[,DEVICE]... | --deregister-level NODE LEVEL)
//!     [--timeout D] [--json]
//! ```
//!
//! The third form runs one agent action the way the fencer does (stdin protocol,
//! own process group, timeout, retries, `pcmk_*` parameters applied) and prints the
//! typed outcome. The cluster forms ask a running node (its admin socket), like
//! `stonith_admin`: fencing requested this way is not gated by quorum, and the
//! answer comes when the operation has ended. Exit status: 0 on success, 2
//! when `status`/`monitor` answer that the target is off, 1 on a failure or bad
//! usage. `--completions SHELL` prints a shell completion script.

#[path = "../common/admin_target.rs"]
mod admin_target;
#[path = "../common/cli.rs"]
mod cli;
mod cluster;

use clap::{ArgGroup, Parser};
use clap_complete::Shell;
use phalanx_fence::Action;
use phalanx_fence::agent::{
    AgentMetadata, AgentOutcome, AgentReply, AgentRequest, FenceAgent, PowerState, parse_duration,
};
use phalanx_fence::runner::{ProcessAgent, RecordingAgent, installed_agents};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run fence agents directly (no cluster): list the installed ones, show an
/// agent's metadata, or run one action as the fencer would.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-fence",
    version,
    args_override_self = true,
    group(ArgGroup::new("mode").args([
        "list_installed", "metadata", "action", "list_registered", "history", "fence",
        "reboot", "unfence", "confirm", "query", "register", "deregister", "register_level",
        "deregister_level",
    ])),
    after_help = "Exit status: 0 on success, 2 when status/monitor say the target is off, \
                  1 on a failure or bad usage."
)]
struct Cli {
    /// List the fence_* agents installed in the agent directory.
    #[arg(long)]
    list_installed: bool,
    /// Show the metadata of --agent (a typed summary; --raw for the XML).
    #[arg(long, requires = "agent")]
    metadata: bool,
    /// With --metadata: print the agent's XML as it is.
    #[arg(long, requires = "metadata", conflicts_with = "json")]
    raw: bool,
    /// The agent (executable name in the agent directory), e.g. fence_ipmilan.
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// Run this action: off, on, reboot, status, monitor, list, list-status,
    /// metadata, validate-all.
    #[arg(long, value_name = "ACTION", requires = "agent", value_parser = parse_action)]
    action: Option<Action>,
    /// The node to act on (passed as nodename= and through the host argument).
    #[arg(long, value_name = "NODE")]
    target: Option<String>,
    /// The target's node id (passed as nodeid=).
    #[arg(long, value_name = "N", requires = "target")]
    nodeid: Option<u32>,
    /// A device parameter (repeatable), e.g. ip=10.0.0.1 or pcmk_host_map=n1:1.
    /// With --register: the device's attributes (-o as stonith_admin spells it).
    #[arg(long = "param", short = 'p', visible_short_alias = 'o', value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Timeout of all attempts together (e.g. 20s, 1500ms); default 60s or the
    /// device's pcmk_<action>_timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// How many times to try (default 2 or the device's pcmk_<action>_retries).
    #[arg(long, value_name = "N")]
    attempts: Option<u32>,
    /// Append the call (request, stdin, output, exit, durations) to FILE as JSON lines.
    #[arg(long, value_name = "FILE", requires = "action")]
    record: Option<PathBuf>,
    /// Where agents are (default /usr/sbin).
    #[arg(long, value_name = "DIR", default_value = "/usr/sbin")]
    agent_dir: PathBuf,
    /// Cluster: list the devices registered on the node and every node's fencing
    /// state (member, down, unclean, fenced).
    #[arg(long)]
    list_registered: bool,
    /// Cluster: show the fencing history (of --target only, if given).
    #[arg(long)]
    history: bool,
    /// With --history: drop the completed entries, cluster-wide.
    #[arg(long, requires = "history")]
    cleanup: bool,
    /// Cluster: power NODE off through the cluster's devices and wait for the result.
    #[arg(long, value_name = "NODE")]
    fence: Option<String>,
    /// Cluster: reboot NODE through the cluster's devices.
    #[arg(long, value_name = "NODE")]
    reboot: Option<String>,
    /// Cluster: unfence NODE (action on).
    #[arg(long, value_name = "NODE")]
    unfence: Option<String>,
    /// Cluster: confirm NODE is down without an agent (manual acknowledgement).
    #[arg(long, value_name = "NODE")]
    confirm: Option<String>,
    /// Cluster: the registered devices that may fence NODE (exit 1 if none).
    #[arg(long, value_name = "NODE")]
    query: Option<String>,
    /// Cluster: register DEVICE cluster-wide at run time with --agent and its
    /// attributes (-o NAME=VALUE: pcmk_host_list, pcmk_host_map, agent options).
    #[arg(long, value_name = "DEVICE", requires = "agent")]
    register: Option<String>,
    /// Cluster: remove a device registered at run time (or defined in the CIB).
    #[arg(long, value_name = "DEVICE")]
    deregister: Option<String>,
    /// Cluster: add fencing level LEVEL (1-9) for NODE: its devices, tried in order.
    #[arg(long, num_args = 3, value_names = ["NODE", "LEVEL", "DEVICE,DEVICE"])]
    register_level: Option<Vec<String>>,
    /// Cluster: remove NODE's fencing level LEVEL.
    #[arg(long, num_args = 2, value_names = ["NODE", "LEVEL"])]
    deregister_level: Option<Vec<String>>,
    #[command(flatten)]
    node: admin_target::AdminTarget,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

fn list_installed(cli: &Cli) -> Result<ExitCode, String> {
    let names = installed_agents(&cli.agent_dir)
        .map_err(|e| format!("{}: {e}", cli.agent_dir.display()))?;
    if cli.json {
        println!("{}", to_json(&names)?);
    } else {
        for n in &names {
            println!("{n}");
        }
        eprintln!("{} agents in {}", names.len(), cli.agent_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `action=metadata` and returns the XML.
fn fetch_metadata(runner: &ProcessAgent, agent: &str) -> Result<String, String> {
    let request = AgentRequest::new(agent, Action::Metadata).timeout(Duration::from_secs(30));
    let reply = runner.run(&request);
    match reply.outcome {
        AgentOutcome::Metadata(xml) => Ok(xml),
        AgentOutcome::Failed(f) => Err(format!("{agent} metadata: {}", f.message)),
        other => Err(format!("{agent} metadata: unexpected {other:?}")),
    }
}

fn show_metadata(cli: &Cli, agent: &str) -> Result<ExitCode, String> {
    let xml = fetch_metadata(&ProcessAgent::new(&cli.agent_dir), agent)?;
    if cli.raw {
        print!("{xml}");
        return Ok(ExitCode::SUCCESS);
    }
    let meta = AgentMetadata::parse(&xml).map_err(|e| format!("{agent}: {e}"))?;
    if cli.json {
        println!("{}", to_json(&meta)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} — {}", meta.name, meta.shortdesc);
    let actions: Vec<String> = meta
        .actions
        .iter()
        .map(|a| {
            let mut s = a.name.clone();
            if a.automatic {
                s.push_str(" (automatic)");
            }
            if a.on_target {
                s.push_str(" (on target)");
            }
            s
        })
        .collect();
    println!("actions: {}", actions.join(", "));
    println!(
        "host argument: {}; unfencing required: {}",
        meta.default_host_argument().unwrap_or("none"),
        if meta.requires_unfencing() {
            "yes"
        } else {
            "no"
        }
    );
    println!("parameters:");
    for p in &meta.parameters {
        let mut flags = Vec::new();
        if p.required {
            flags.push("required".to_string());
        }
        if p.unique {
            flags.push("unique".to_string());
        }
        if p.deprecated {
            flags.push("deprecated".to_string());
        }
        if let Some(old) = &p.obsoletes {
            flags.push(format!("replaces {old}"));
        }
        if let Some(d) = &p.content.default {
            flags.push(format!("default {d:?}"));
        }
        if !p.content.options.is_empty() {
            flags.push(format!("one of {}", p.content.options.join("|")));
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        };
        println!(
            "  {} ({:?}){flags}: {}",
            p.name, p.content.kind, p.shortdesc
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_action(cli: &Cli, agent: &str, action: Action) -> Result<ExitCode, String> {
    let runner = ProcessAgent::new(&cli.agent_dir);
    let mut request = AgentRequest::new(agent, action).params(cli.params.iter().cloned());
    if let Some(target) = &cli.target {
        request = request.target(target.clone());
        if let Some(id) = cli.nodeid {
            request = request.target_nodeid(id);
        }
        // As the fencer: the host argument comes from the agent's metadata unless
        // pcmk_host_argument says otherwise.
        if !request.params.contains_key("pcmk_host_argument") {
            let xml = fetch_metadata(&runner, agent)?;
            let meta = AgentMetadata::parse(&xml).map_err(|e| format!("{agent}: {e}"))?;
            request = request.host_argument_default(meta.default_host_argument());
        }
    }
    let mut request = request.with_device_limits().map_err(|e| e.to_string())?;
    if let Some(t) = cli.timeout {
        request = request.timeout(t);
    }
    if let Some(n) = cli.attempts {
        request = request.attempts(n);
    }
    let reply: AgentReply = match &cli.record {
        Some(path) => {
            let recorder = RecordingAgent::create(runner, path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let reply = recorder.run(&request);
            if recorder.write_errors() > 0 {
                eprintln!(
                    "phalanx-fence: could not write the record to {}",
                    path.display()
                );
            }
            reply
        }
        None => runner.run(&request),
    };
    if cli.json {
        let both = serde_json::json!({ "request": request, "reply": reply });
        println!("{}", to_json(&both)?);
    } else {
        print_reply(&reply);
    }
    Ok(match reply.outcome {
        AgentOutcome::Power(PowerState::Off) => ExitCode::from(2),
        AgentOutcome::Failed(_) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn print_reply(reply: &AgentReply) {
    match &reply.outcome {
        AgentOutcome::Success => println!("success"),
        AgentOutcome::Power(s) => println!("power: {s:?}"),
        AgentOutcome::Reachable => println!("device reachable"),
        AgentOutcome::NoPorts => println!("no ports (N/A)"),
        AgentOutcome::Ports(ports) => {
            for p in ports {
                let alias = p.alias.as_deref().unwrap_or("");
                match p.state {
                    Some(s) => println!("{} {alias} {s:?}", p.port),
                    None => println!("{} {alias}", p.port),
                }
            }
        }
        AgentOutcome::Metadata(xml) => print!("{xml}"),
        AgentOutcome::Failed(f) => println!("failed ({:?}): {}", f.kind, f.message),
    }
    for (i, a) in reply.attempts.iter().enumerate() {
        eprintln!(
            "attempt {}: {:?} after {:?} ({} bytes out, {} err)",
            i + 1,
            a.exit,
            a.duration,
            a.stdout.len(),
            a.stderr.len()
        );
    }
}

fn parse_level(s: &str) -> Result<u8, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("bad level {s:?}: expected 1-9"))
}

/// The run-time registration the command line asks for, if any.
fn registration(cli: &Cli) -> Result<Option<cluster::ClusterOp>, String> {
    use cluster::ClusterOp;
    if let (Some(device), Some(agent)) = (&cli.register, &cli.agent) {
        return Ok(Some(ClusterOp::Register {
            device: device.clone(),
            agent: agent.clone(),
            params: cli.params.iter().cloned().collect(),
        }));
    }
    if let Some(device) = &cli.deregister {
        return Ok(Some(ClusterOp::Deregister(device.clone())));
    }
    if let Some([target, level, devices]) = cli.register_level.as_deref() {
        return Ok(Some(ClusterOp::RegisterLevel {
            target: target.clone(),
            index: parse_level(level)?,
            devices: devices
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(String::from)
                .collect(),
        }));
    }
    if let Some([target, level]) = cli.deregister_level.as_deref() {
        return Ok(Some(ClusterOp::DeregisterLevel {
            target: target.clone(),
            index: parse_level(level)?,
        }));
    }
    Ok(None)
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(1) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    let op = match registration(&cli) {
        Ok(op) => op,
        Err(e) => {
            eprintln!("phalanx-fence: {e}");
            return ExitCode::FAILURE;
        }
    };
    let op = if op.is_some() {
        op
    } else if cli.list_registered {
        Some(cluster::ClusterOp::ListRegistered)
    } else if cli.history {
        Some(cluster::ClusterOp::History {
            target: cli.target.clone(),
            cleanup: cli.cleanup,
        })
    } else if let Some((t, action)) = cli
        .fence
        .as_ref()
        .map(|t| (t, "off"))
        .or(cli.reboot.as_ref().map(|t| (t, "reboot")))
        .or(cli.unfence.as_ref().map(|t| (t, "on")))
    {
        Some(cluster::ClusterOp::Fence {
            target: t.clone(),
            action,
            timeout: cli.timeout,
        })
    } else if let Some(t) = &cli.query {
        Some(cluster::ClusterOp::Query(t.clone()))
    } else {
        cli.confirm.clone().map(cluster::ClusterOp::Confirm)
    };
    let result = if let Some(op) = op {
        cluster::run(&cli.node, op, cli.json)
    } else if cli.list_installed {
        list_installed(&cli)
    } else {
        match (&cli.agent, cli.metadata, cli.action) {
            (Some(agent), true, _) => show_metadata(&cli, agent),
            (Some(agent), false, Some(action)) => run_action(&cli, agent, action),
            _ => Err(
                "give --list-installed, --metadata --agent NAME, or --agent NAME --action ACTION"
                    .into(),
            ),
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phalanx-fence: {e}");
            ExitCode::FAILURE
        }
    }
}
