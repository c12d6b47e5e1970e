//! `ChangeMembers` on the primary: add a learner, promote it, remove a member.

use std::fmt;

use proto::v1::{ChangeMembersReply, ChangeMembersRequest, RaftMember};
use tonic::Status;

use super::{AdminService, Node};
use crate::commit::admin_status;

/// A membership change, checked.
pub(super) enum Change {
    Add { node_id: u64, addr: String },
    Promote { node_id: u64 },
    Remove { node_id: u64 },
}

impl Change {
    pub(super) fn parse(req: &ChangeMembersRequest) -> Result<Self, Status> {
        let node_id = req.node_id;
        if node_id == 0 {
            return Err(Status::invalid_argument("node id 0 is not valid: ids start at 1"));
        }
        match req.action.as_str() {
            "add" => {
                let addr = req.addr.trim().to_string();
                let port_ok =
                    addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
                if !port_ok || addr.len() > 256 || addr.chars().any(|c| c.is_whitespace() || c == '/') {
                    return Err(Status::invalid_argument(format!(
                        "cluster address {addr:?} must look like host:port (e.g. 10.0.0.4:7000)"
                    )));
                }
                Ok(Change::Add { node_id, addr })
            }
            "promote" => Ok(Change::Promote { node_id }),
            "remove" => Ok(Change::Remove { node_id }),
            other => Err(Status::invalid_argument(format!("unknown membership action {other:?}: want add, promote or remove"))),
        }
    }

    pub(super) fn action(&self) -> &'static str {
        match self {
            Change::Add { .. } => "add",
            Change::Promote { .. } => "promote",
            Change::Remove { .. } => "remove",
        }
    }

    pub(super) fn target(&self) -> String {
        match self {
            Change::Add { node_id, addr } => format!("node {node_id} at {addr}"),
            Change::Promote { node_id } | Change::Remove { node_id } => format!("node {node_id}"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "members {} {}", self.action(), self.target())
    }
}

impl AdminService {
    /// Commits `change` on the primary (this node).
    pub(super) async fn change_here(&self, change: &Change) -> Result<ChangeMembersReply, Status> {
        let Node::Cluster { control, .. } = &self.node else {
            return Err(Status::failed_precondition("this is a single node: it has no cluster membership to change"));
        };
        let me = control.node_id();
        let membership = control.membership();
        let find = |id: u64| membership.iter().find(|(m, _, _)| *m == id);
        let written = match change {
            Change::Add { node_id, addr } => {
                if let Some((_, at, voter)) = find(*node_id) {
                    let what = if *voter { "a voter" } else { "a learner" };
                    return Err(Status::failed_precondition(format!("node {node_id} is already a member ({what} at {at})")));
                }
                control.add_learner(*node_id, addr).await
            }
            Change::Promote { node_id } => match find(*node_id) {
                None => {
                    return Err(Status::not_found(format!(
                        "node {node_id} is not a member; add it first: flotillactl members add {node_id} HOST:PORT"
                    )))
                }
                Some((_, _, true)) => return Err(Status::failed_precondition(format!("node {node_id} is already a voter"))),
                Some(_) => control.promote(*node_id).await,
            },
            Change::Remove { node_id } => match find(*node_id) {
                None => return Err(Status::not_found(format!("node {node_id} is not a member; nothing to remove"))),
                Some((_, _, true)) if membership.iter().filter(|(_, _, v)| *v).count() == 1 => {
                    return Err(Status::failed_precondition(format!(
                        "refusing to remove node {node_id}: it is the last voter, the cluster would have no one to commit writes"
                    )))
                }
                Some(_) => control.remove_member(*node_id).await,
            },
        };
        let index = written.map_err(|e| admin_status(e, me, "the membership change", ": check with flotillactl members list"))?;
        tracing::info!(change = %change, index, "membership changed");
        let members = control.membership().into_iter().map(|(node_id, addr, voter)| RaftMember { node_id, addr, voter }).collect();
        Ok(ChangeMembersReply { index, primary: me, members })
    }
}
