//! The node's answers on the admin socket (see [`crate::admin`]): read from the
//! snapshots the driver publishes, so a tool never waits for the driver thread.

use super::fence_register::Registration;
use super::{Membership, Quorum, QuorumCallError, QuorumInfo, Shared};
use crate::admin::{
    AdminProvider, CibAnswer, FenceDeviceInfo, FenceHistoryItem, FenceNodeInfo, FenceReport, Group,
    GroupMember, NodeInfo, QuorumNode, QuorumStatus, Request, Response, Status,
};
use phalanx_quorum::NodeState;
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub(crate) struct NodeAdmin {
    pub(crate) shared: Arc<Shared>,
    pub(crate) quorum: Quorum,
    pub(crate) fence: super::Fence,
    pub(crate) cib: super::Cib,
    pub(crate) dlm: super::Dlm,
    /// Lockspaces joined through the socket (their locks belong to the node).
    pub(crate) dlm_lockspaces: parking_lot::Mutex<BTreeMap<String, super::Lockspace>>,
    pub(crate) node_id: NodeId,
    pub(crate) cluster_name: String,
    /// Every configured node with its name (empty when none).
    pub(crate) nodes: BTreeMap<NodeId, String>,
    /// Where fence agents are (`None` without fencing): run-time registration
    /// refuses an agent that is not there.
    pub(crate) agent_dir: Option<std::path::PathBuf>,
}

impl NodeAdmin {
    fn name(&self, id: NodeId) -> String {
        self.nodes.get(&id).cloned().unwrap_or_default()
    }

    fn status(&self) -> Status {
        let Membership { ring, members, .. } = self.shared.membership.lock().clone();
        Status {
            node_id: self.node_id,
            cluster_name: self.cluster_name.clone(),
            ring: (ring.rep, ring.seq),
            operational: self.shared.operational.load(Ordering::Acquire),
            nodes: self
                .nodes
                .iter()
                .map(|(&id, name)| NodeInfo {
                    id,
                    name: name.clone(),
                    member: members.contains(&id),
                })
                .collect(),
        }
    }

    fn groups(&self) -> Vec<Group> {
        self.shared
            .cpg
            .groups
            .lock()
            .iter()
            .map(|g| Group {
                name: g.name.as_bytes().to_vec(),
                members: g
                    .members
                    .iter()
                    .map(|m| GroupMember {
                        node: m.node,
                        local: m.local,
                        node_name: self.name(m.node),
                    })
                    .collect(),
            })
            .collect()
    }
}

impl NodeAdmin {
    fn cib_command(&self, command: &str) -> CibAnswer {
        use phalanx_cib::service::ReplyError;
        let failed = |exit_code: u8, e: String| CibAnswer {
            exit_code,
            error: Some(e),
            output: None,
            version: None,
        };
        let (op, ctx) = match phalanx_cib::ops::wire::decode(command.as_bytes()) {
            Ok(r) => r,
            Err(e) => return failed(e.exit_code(), e.to_string()),
        };
        match self.cib.request_with(op, ctx) {
            Ok(r) => CibAnswer {
                exit_code: 0,
                error: None,
                output: r.output.as_ref().map(|x| {
                    phalanx_cib::xml::to_string(
                        x,
                        phalanx_cib::xml::Style::Pretty,
                        phalanx_cib::xml::Escaping::Xml,
                    )
                }),
                version: Some((
                    r.version.admin_epoch,
                    r.version.epoch,
                    r.version.num_updates,
                )),
            },
            Err(super::CibCallError::Failed(ReplyError::Op(e))) => {
                failed(e.exit_code(), e.to_string())
            }
            Err(e @ super::CibCallError::NoQuorum) => {
                failed(phalanx_cib::service::NO_QUORUM_EXIT, e.to_string())
            }
            Err(e) => failed(1, e.to_string()),
        }
    }

    fn quorum_status(&self) -> Option<QuorumStatus> {
        let QuorumInfo {
            cluster: info,
            nodes,
            ..
        } = self.quorum.info()?;
        let mut flags = Vec::new();
        if info.quorate {
            flags.push("Quorate");
        }
        for (on, name) in [
            (info.two_node, "2Node"),
            (info.wait_for_all, "WaitForAll"),
            (info.last_man_standing, "LastManStanding"),
            (info.auto_tie_breaker, "AutoTieBreaker"),
            (info.allow_downscale, "AllowDownscale"),
            (info.device_votes > 0, "Qdevice"),
        ] {
            if on {
                flags.push(name);
            }
        }
        Some(QuorumStatus {
            quorate: info.quorate,
            expected_votes: info.expected_votes,
            highest_expected: nodes
                .iter()
                .map(|n| n.expected)
                .max()
                .unwrap_or(info.expected_votes),
            total_votes: info.total_votes,
            quorum: info.quorum,
            flags: flags.into_iter().map(String::from).collect(),
            device_votes: (info.device_votes > 0).then_some(if info.device_cast {
                info.device_votes
            } else {
                0
            }),
            nodes: nodes
                .iter()
                .map(|n| QuorumNode {
                    id: n.node,
                    name: self.name(n.node),
                    votes: n.votes,
                    member: n.state == NodeState::Member,
                })
                .collect(),
        })
    }
}

fn done(r: Result<(), QuorumCallError>) -> Response {
    match r {
        Ok(()) => Response::Done,
        Err(e) => Response::error(e.to_string()),
    }
}

impl AdminProvider for NodeAdmin {
    fn answer(&self, req: Request) -> Response {
        match req {
            Request::Status => Response::Status(self.status()),
            Request::CpgGroups => Response::Groups {
                groups: self.groups(),
            },
            Request::Quorum => match self.quorum_status() {
                Some(q) => Response::Quorum(q),
                None => Response::error("quorum is not configured on this node"),
            },
            Request::SetExpectedVotes { votes } => done(self.quorum.set_expected_votes(votes)),
            Request::SetVotes { node, votes } => done(self.quorum.set_votes(node, votes)),
            Request::CancelWaitForAll => done(self.quorum.cancel_wait_for_all()),
            Request::Cib { command } => Response::Cib(self.cib_command(&command)),
            Request::Dlm(c) => Response::Dlm(self.dlm_command(c)),
            Request::FenceStatus => match self.fence.status() {
                Some(s) => Response::Fence(fence_report(s)),
                None => Response::error("fencing is not configured on this node"),
            },
            Request::Fence {
                target,
                action,
                timeout_ms,
            } => match action.parse::<phalanx_fence::Action>() {
                Ok(a) if a.changes_power() => fenced(self.fence.fence(
                    &target,
                    a,
                    timeout_ms.map(std::time::Duration::from_millis),
                )),
                _ => Response::error(format!("action {action:?}: expected off, reboot or on")),
            },
            Request::FenceConfirm { target } => fenced(self.fence.confirm(&target)),
            Request::FenceHistoryCleanup { target } => {
                match self.fence.history_cleanup(target.as_deref()) {
                    Ok(()) => Response::Done,
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::FenceRegister {
                device,
                agent,
                params,
            } => self.fence_registration(Registration::Device {
                device: &device,
                agent: &agent,
                params: &params,
            }),
            Request::FenceDeregister { device } => {
                self.fence_registration(Registration::RemoveDevice { device: &device })
            }
            Request::FenceRegisterLevel {
                target,
                index,
                devices,
            } => self.fence_registration(Registration::Level {
                target: &target,
                index,
                devices: &devices,
            }),
            Request::FenceDeregisterLevel { target, index } => {
                self.fence_registration(Registration::RemoveLevel {
                    target: &target,
                    index,
                })
            }
            Request::Stats => Response::Stats {
                stats: super::stats_keys::flatten(
                    &self.shared.stats.lock(),
                    &self.shared.links.lock(),
                ),
            },
        }
    }
}

fn fenced(r: Result<super::FencedBy, super::FenceCallError>) -> Response {
    match r {
        Ok(super::FencedBy::Node(n)) => Response::Fenced { by: n.to_string() },
        Ok(super::FencedBy::Manual) => Response::Fenced {
            by: "manual".into(),
        },
        Err(e) => Response::error(e.to_string()),
    }
}

fn fence_report(s: super::FenceStatus) -> FenceReport {
    use phalanx_fence::core::{Delegate, OpState};
    FenceReport {
        devices: s
            .devices
            .into_iter()
            .map(|(id, agent)| FenceDeviceInfo { id, agent })
            .collect(),
        history: s
            .history
            .into_iter()
            .map(|e| FenceHistoryItem {
                target: e.target,
                action: e.action.to_string(),
                state: match e.state {
                    OpState::Pending => "pending",
                    OpState::Done => "done",
                    OpState::Failed => "failed",
                }
                .into(),
                origin: e.origin,
                delegate: match e.delegate {
                    Some(Delegate::Node(n)) => n.to_string(),
                    Some(Delegate::Manual) => "manual".into(),
                    None => String::new(),
                },
                client: e.client,
                reason: e.exit_reason,
            })
            .collect(),
        nodes: s
            .nodes
            .into_iter()
            .map(|n| FenceNodeInfo {
                id: n.id,
                name: n.name,
                state: n.state.into(),
                devices: n
                    .devices
                    .into_iter()
                    .map(|(d, e)| (d, e.to_string()))
                    .collect(),
                unfenced: n.unfenced,
            })
            .collect(),
    }
}
