//! The cluster operations of `phalanx-fence`, through a running node's admin
//! socket (`stonith_admin`'s `--list-registered`, `--history`, `--fence`,
//! `--reboot`, `--unfence`, `--confirm`, `--register`, `--deregister`,
//! `--register-level`, `--deregister-level`).

use super::admin_target::AdminTarget;
use phalanx::admin::{AdminClient, FenceReport, Request, Response};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// What to ask the node.
pub enum ClusterOp {
    /// Devices and node states.
    ListRegistered,
    /// The history (optionally only `target`'s), or clean it.
    History {
        /// Only this target.
        target: Option<String>,
        /// Drop completed entries instead of showing them.
        cleanup: bool,
    },
    /// Fence `target` with `action` (off, reboot, on).
    Fence {
        /// Node name.
        target: String,
        /// Action.
        action: &'static str,
        /// The operation's timeout.
        timeout: Option<Duration>,
    },
    /// Manual confirmation that `target` is down.
    Confirm(String),
    /// The devices that may fence `target` (`stonith_admin --query`).
    Query(String),
    /// Register a device cluster-wide (`stonith_admin --register`).
    Register {
        /// Device id.
        device: String,
        /// Its agent.
        agent: String,
        /// Its attributes.
        params: BTreeMap<String, String>,
    },
    /// Remove a device (`stonith_admin --deregister`).
    Deregister(String),
    /// Add a fencing level (`stonith_admin --register-level`).
    RegisterLevel {
        /// Node name.
        target: String,
        /// 1..=9.
        index: u8,
        /// Devices in order.
        devices: Vec<String>,
    },
    /// Remove a fencing level (`stonith_admin --deregister-level`).
    DeregisterLevel {
        /// Node name.
        target: String,
        /// 1..=9.
        index: u8,
    },
}

fn connect(target: &AdminTarget) -> Result<AdminClient, String> {
    let socket = target.socket_path()?;
    AdminClient::connect(&socket).map_err(|e| e.to_string())
}

fn ask(client: &mut AdminClient, req: &Request) -> Result<Response, String> {
    match client.request(req).map_err(|e| e.to_string())? {
        Response::Error { message } => Err(message),
        r => Ok(r),
    }
}

fn report(client: &mut AdminClient) -> Result<FenceReport, String> {
    match ask(client, &Request::FenceStatus)? {
        Response::Fence(r) => Ok(r),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Runs `op` against the node `target` names; JSON output with `json`.
pub fn run(target: &AdminTarget, op: ClusterOp, json: bool) -> Result<ExitCode, String> {
    let mut client = connect(target)?;
    match op {
        ClusterOp::ListRegistered => {
            let r = report(&mut client)?;
            if json {
                let v = serde_json::json!({ "devices": r.devices, "nodes": r.nodes });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
                );
            } else {
                for d in &r.devices {
                    println!("{} ({})", d.id, d.agent);
                }
                eprintln!("{} devices", r.devices.len());
                for n in &r.nodes {
                    let unfenced = if n.unfenced { "" } else { ", not unfenced" };
                    println!("node {} {}: {}{unfenced}", n.id, n.name, n.state);
                }
            }
        }
        ClusterOp::Query(name) => {
            let r = report(&mut client)?;
            let Some(n) = r.nodes.iter().find(|n| n.name.eq_ignore_ascii_case(&name)) else {
                return Err(format!("{name} is not a cluster node"));
            };
            if json {
                let v = serde_json::json!({ "node": n.name, "devices": n.devices });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
                );
            } else {
                for (d, how) in &n.devices {
                    println!("{d} ({how})");
                }
                eprintln!("{} devices can fence {}", n.devices.len(), n.name);
            }
            if n.devices.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        ClusterOp::History { target, cleanup } => {
            if cleanup {
                ask(&mut client, &Request::FenceHistoryCleanup { target })?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut r = report(&mut client)?;
            if let Some(t) = &target {
                r.history.retain(|h| &h.target == t);
            }
            if json {
                let text = serde_json::to_string_pretty(&r.history).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                for h in &r.history {
                    let by = if h.delegate.is_empty() {
                        String::new()
                    } else {
                        format!(" by {}", h.delegate)
                    };
                    let why = h
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default();
                    println!(
                        "{} of {} {}{by}, requested by {} on node {}{why}",
                        h.action, h.target, h.state, h.client, h.origin
                    );
                }
            }
        }
        ClusterOp::Fence {
            target,
            action,
            timeout,
        } => {
            // The answer comes when the operation ends: as long as its timeout
            // (topology levels and delays included), bounded here.
            client
                .set_timeout(Duration::from_secs(600))
                .map_err(|e| e.to_string())?;
            let req = Request::Fence {
                target: target.clone(),
                action: action.to_string(),
                timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            };
            match ask(&mut client, &req)? {
                Response::Fenced { by } => println!("{target}: {action} done by {by}"),
                other => return Err(format!("unexpected answer {other:?}")),
            }
        }
        ClusterOp::Register {
            device,
            agent,
            params,
        } => {
            let req = Request::FenceRegister {
                device: device.clone(),
                agent,
                params,
            };
            ask(&mut client, &req)?;
            println!("{device}: registered cluster-wide");
        }
        ClusterOp::Deregister(device) => {
            let req = Request::FenceDeregister {
                device: device.clone(),
            };
            ask(&mut client, &req)?;
            println!("{device}: deregistered cluster-wide");
        }
        ClusterOp::RegisterLevel {
            target,
            index,
            devices,
        } => {
            let req = Request::FenceRegisterLevel {
                target: target.clone(),
                index,
                devices,
            };
            ask(&mut client, &req)?;
            println!("{target}: level {index} registered cluster-wide");
        }
        ClusterOp::DeregisterLevel { target, index } => {
            let req = Request::FenceDeregisterLevel {
                target: target.clone(),
                index,
            };
            ask(&mut client, &req)?;
            println!("{target}: level {index} deregistered cluster-wide");
        }
        ClusterOp::Confirm(target) => match ask(
            &mut client,
            &Request::FenceConfirm {
                target: target.clone(),
            },
        )? {
            Response::Fenced { by } => println!("{target}: confirmed down ({by})"),
            other => return Err(format!("unexpected answer {other:?}")),
        },
    }
    Ok(ExitCode::SUCCESS)
}
