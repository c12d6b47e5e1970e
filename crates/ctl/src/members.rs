//! `flotillactl members list`: the raft membership (voters and learners)
//! next to the nodes' `cluster.peers`.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use clap::Subcommand;
use proto::v1::{ClusterStatusReply, ClusterStatusRequest};
use serde_json::json;

use crate::client::Admin;
use crate::output::table;
use crate::Outcome;

#[derive(Subcommand)]
pub enum MembersCommand {
    /// The raft membership as the answering node knows it, and whether each member is in cluster.peers.
    ///
    /// The membership is what counts once the cluster has formed; a node
    /// whose cluster.peers differs says so in its log at start-up.
    #[command(after_help = "Examples:\n  flotillactl members list\n  flotillactl members list --json")]
    List,
}

pub async fn run(admin: &Admin, json: bool, command: &MembersCommand) -> Result<Outcome> {
    let MembersCommand::List = command;
    let status: ClusterStatusReply =
        admin.read(|mut client, req| async move { client.cluster_status(req).await }, ClusterStatusRequest {}).await?;
    let Some(me) = status.members.iter().find(|m| m.node_id == status.answered_by).and_then(|m| m.status.as_ref()) else {
        bail!("node {} did not describe itself", status.answered_by);
    };
    if me.role == "standalone" {
        bail!("node {} is a single node: it has no cluster membership", me.node_id);
    }
    let peers: BTreeSet<u64> = me.configured_peers.iter().copied().collect();
    let ids: BTreeSet<u64> = me.raft_members.iter().map(|m| m.node_id).chain(peers.iter().copied()).collect();
    let rows: Vec<_> = ids
        .iter()
        .map(|id| {
            let raft = me.raft_members.iter().find(|m| m.node_id == *id);
            let member = status.members.iter().find(|m| m.node_id == *id);
            let state =
                member.and_then(|m| m.status.as_ref()).map(|s| if s.acting_primary { "primary".to_string() } else { s.role.clone() });
            (*id, raft, peers.contains(id), member.map(|m| m.reachable), state)
        })
        .collect();
    let drift = rows.iter().any(|(_, raft, peer, _, _)| raft.is_none() || !peer);
    if json {
        let members: Vec<_> = rows
            .iter()
            .map(|(id, raft, peer, reachable, state)| {
                json!({
                    "node_id": id,
                    "membership": raft.map(|r| if r.voter { "voter" } else { "learner" }),
                    "addr": raft.map(|r| r.addr.clone()),
                    "in_cluster_peers": peer,
                    "reachable": reachable,
                    "state": state,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "answered_by": me.node_id, "members": members, "peers_differ": drift }))?);
        return Ok(Outcome::Ok);
    }
    let mut t = table(&["NODE", "MEMBERSHIP", "CLUSTER ADDRESS", "IN cluster.peers", "REACHABLE", "STATE"]);
    for (id, raft, peer, reachable, state) in &rows {
        t.add_row(vec![
            id.to_string(),
            raft.map_or("not a member", |r| if r.voter { "voter" } else { "learner" }).to_string(),
            raft.map_or("-".to_string(), |r| r.addr.clone()),
            if *peer { "yes" } else { "no" }.to_string(),
            match reachable {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
            .to_string(),
            state.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    println!("{t}");
    println!("membership as node {} knows it", me.node_id);
    if drift {
        println!("node {}'s cluster.peers differs from the raft membership: the membership is what counts", me.node_id);
    }
    Ok(Outcome::Ok)
}
