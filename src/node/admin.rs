//! The node's answers on the admin socket (see [`crate::admin`]): read from the
//! snapshots the driver publishes, so a tool never waits for the driver thread.

use super::Shared;
use crate::admin::{AdminProvider, Group, GroupMember, NodeInfo, Request, Response, Status};
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub(crate) struct NodeAdmin {
    pub(crate) shared: Arc<Shared>,
    pub(crate) node_id: NodeId,
    pub(crate) cluster_name: String,
    /// Every configured node with its name (empty when none).
    pub(crate) nodes: BTreeMap<NodeId, String>,
}

impl NodeAdmin {
    fn name(&self, id: NodeId) -> String {
        self.nodes.get(&id).cloned().unwrap_or_default()
    }

    fn status(&self) -> Status {
        let (ring, members) = self.shared.membership.lock().clone();
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
            .map(|(g, members)| Group {
                name: g.as_bytes().to_vec(),
                members: members
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

impl AdminProvider for NodeAdmin {
    fn answer(&self, req: Request) -> Response {
        match req {
            Request::Status => Response::Status(self.status()),
            Request::CpgGroups => Response::Groups {
                groups: self.groups(),
            },
            _ => Response::error("quorum is not configured on this node"),
        }
    }
}
