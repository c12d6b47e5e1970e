//! `flotillactl members list|add|promote|remove`: the raft membership
//! (voters and learners) next to the nodes' `cluster.peers`, and changing it.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::{bail, Result};
use clap::Subcommand;
use proto::v1::{ChangeMembersRequest, ClusterStatusReply, ClusterStatusRequest};
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
    /// Add a node as a learner: it receives the catalog and the blobs and serves reads, but does not vote.
    ///
    /// Start the new node first with cluster.join = true (it then waits to be
    /// added instead of forming a cluster of its own), its own certificate
    /// (`flotilla certs --ids <id>` with the cluster's CA) and the cluster
    /// secret. Promote it once `flotillactl status` shows it caught up.
    #[command(after_help = "Examples:\n  flotillactl members add 4 n4.example:7000\n  flotillactl members promote 4")]
    Add {
        /// The new node's node_id.
        id: u64,
        /// Its cluster address (host:port), as the other nodes reach it.
        addr: String,
    },
    /// Make a learner a voter.
    #[command(after_help = "Examples:\n  flotillactl members promote 4")]
    Promote {
        /// The learner's node_id.
        id: u64,
        /// Go ahead even when the voters would be left without a quorum of reachable nodes.
        #[arg(long)]
        force: bool,
        /// Do not ask on a terminal (same as --force).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Remove a member (voter or learner) from the cluster; stop its process afterwards.
    ///
    /// The last voter is never removed. A removal that would leave the
    /// voters without a quorum of reachable nodes is refused unless
    /// confirmed (a terminal asks; --yes or --force otherwise).
    #[command(after_help = "Examples:\n  flotillactl members remove 3\n  flotillactl members remove 3 --force")]
    Remove {
        /// The member's node_id.
        id: u64,
        /// Go ahead even when the remaining voters would have no quorum of reachable nodes.
        #[arg(long)]
        force: bool,
        /// Do not ask on a terminal (same as --force).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub async fn run(admin: &Admin, json: bool, command: &MembersCommand) -> Result<Outcome> {
    let (action, id, addr, force) = match command {
        MembersCommand::List => return list(admin, json).await,
        MembersCommand::Add { id, addr } => ("add", *id, addr.clone(), true),
        MembersCommand::Promote { id, force, yes } => ("promote", *id, String::new(), *force || *yes),
        MembersCommand::Remove { id, force, yes } => ("remove", *id, String::new(), *force || *yes),
    };
    if id == 0 {
        bail!("node ids start at 1");
    }
    if action != "add" {
        check_quorum(admin, action, id, force).await?;
    }
    let request = ChangeMembersRequest { action: action.into(), node_id: id, addr };
    let reply = admin.write(|mut client, req| async move { client.change_members(req).await }, request).await?;
    if json {
        let members: Vec<_> = reply.members.iter().map(|m| json!({ "node_id": m.node_id, "addr": m.addr, "voter": m.voter })).collect();
        println!("{}", json!({ "action": action, "node_id": id, "index": reply.index, "primary": reply.primary, "members": members }));
        return Ok(Outcome::Ok);
    }
    let done = match action {
        "add" => format!("added node {id} as a learner"),
        "promote" => format!("promoted node {id} to voter"),
        _ => format!("removed node {id}"),
    };
    println!("{done} (raft index {}, primary node {})", reply.index, reply.primary);
    let list = |voter: bool| {
        let ids: Vec<String> = reply.members.iter().filter(|m| m.voter == voter).map(|m| m.node_id.to_string()).collect();
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    println!("voters: {}; learners: {}", list(true), list(false));
    match action {
        "add" => println!("once `flotillactl status` shows node {id} caught up: flotillactl members promote {id}"),
        "remove" => println!("node {id} no longer takes part: stop its process"),
        _ => {}
    }
    Ok(Outcome::Ok)
}

/// The voters after `action` on `id`, and how many of them answer now; a
/// change that leaves them without a quorum of reachable nodes needs
/// confirmation (or `force`).
async fn check_quorum(admin: &Admin, action: &str, id: u64, force: bool) -> Result<()> {
    let status: ClusterStatusReply =
        admin.read(|mut client, req| async move { client.cluster_status(req).await }, ClusterStatusRequest {}).await?;
    let Some(me) = status.members.iter().find(|m| m.node_id == status.answered_by).and_then(|m| m.status.as_ref()) else {
        bail!("node {} did not describe itself", status.answered_by);
    };
    // A node that is no member (or no learner, to promote) is refused by
    // the primary with the reason.
    let target = me.raft_members.iter().find(|m| m.node_id == id);
    if target.is_none_or(|m| action == "promote" && m.voter) {
        return Ok(());
    }
    let mut voters: BTreeSet<u64> = me.raft_members.iter().filter(|m| m.voter).map(|m| m.node_id).collect();
    if action == "promote" {
        voters.insert(id);
    } else {
        voters.remove(&id);
    }
    if voters.is_empty() {
        bail!("refusing to remove node {id}: it is the last voter, the cluster would have no one to commit writes");
    }
    let reachable: Vec<u64> = voters.iter().copied().filter(|v| status.members.iter().any(|m| m.node_id == *v && m.reachable)).collect();
    let quorum = voters.len() / 2 + 1;
    if reachable.len() >= quorum {
        return Ok(());
    }
    let list = |ids: &mut dyn Iterator<Item = &u64>| ids.map(u64::to_string).collect::<Vec<_>>().join(", ");
    eprintln!(
        "warning: after {action} of node {id} the voters would be {}, of which only {} reachable now ({}); \
         writes need {quorum}: the cluster would stop accepting new modules until enough of them answer",
        list(&mut voters.iter()),
        reachable.len(),
        if reachable.is_empty() { "none".to_string() } else { list(&mut reachable.iter()) },
    );
    if force {
        return Ok(());
    }
    if std::io::stdin().is_terminal() && crate::purge::confirm("Go ahead anyway?")? {
        return Ok(());
    }
    bail!("not changed: the voters would have no quorum of reachable nodes (pass --force to do it anyway)")
}

async fn list(admin: &Admin, json: bool) -> Result<Outcome> {
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
