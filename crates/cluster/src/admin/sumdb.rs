//! `VerifySumdb` and `CheckSumdb`: the cached versions re-checked against
//! the checksum database, and whether each configured database answers
//! with a tree head that verifies. The primary does both (it is the node
//! that talks to the databases and records what it verified).

use std::sync::Arc;
use std::time::Duration;

use gateway::SumdbCheck;
use proto::v1::{CheckSumdbReply, SumdbFinding, SumdbHealth, VerifySumdbReply};
use tonic::Status;

use super::{catalog_error, AdminService};

/// Every cached version may need a lookup and its proof: allow it time.
pub(super) const VERIFY_SUMDB_TIMEOUT: Duration = Duration::from_secs(3600);
/// Fetching each database's tree head (and a consistency proof).
pub(super) const CHECK_SUMDB_TIMEOUT: Duration = Duration::from_secs(60);

impl AdminService {
    fn gateway_state(&self) -> Result<Arc<gateway::AppState>, Status> {
        self.gateway.get().cloned().ok_or_else(|| Status::unavailable("the node is still starting (its gateway is not up yet); retry"))
    }

    pub(super) async fn verify_sumdb_here(&self) -> Result<VerifySumdbReply, Status> {
        let state = self.gateway_state()?;
        let Some(db) = gateway::verifying_database(&state) else {
            return Err(Status::failed_precondition(
                "no checksum database is configured (sumdb = [] or FLOTILLA_SUMDB=off): nothing to verify against; \
                 configure a [[sumdb]] table",
            ));
        };
        let mut reply = VerifySumdbReply { database: db.name.clone(), ..Default::default() };
        let mut all = self.catalog.all_versions().map_err(catalog_error)?;
        all.sort();
        for (module, version) in all {
            let finding = |kind: &str, detail: String| SumdbFinding {
                module: module.to_string(),
                version: version.to_string(),
                kind: kind.into(),
                detail,
                ..Default::default()
            };
            let checks = gateway::check_cached(&state, &module, &version).await;
            for check in checks {
                match check {
                    SumdbCheck::Match => reply.matched += 1,
                    SumdbCheck::Private => reply.private += 1,
                    SumdbCheck::NothingToCheck => {}
                    SumdbCheck::Mismatch { file, catalog, database } => reply.findings.push(SumdbFinding {
                        file: file.into(),
                        catalog_h1: catalog.clone(),
                        database_h1: database.clone(),
                        ..finding("mismatch", format!("the cached {file} hashes to {catalog} but the database records {database}"))
                    }),
                    SumdbCheck::Unknown(why) => reply.findings.push(finding("unknown", why)),
                    SumdbCheck::Failed(why) => reply.findings.push(finding("error", why)),
                }
            }
        }
        Ok(reply)
    }

    pub(super) async fn check_sumdb_here(&self) -> Result<CheckSumdbReply, Status> {
        let state = self.gateway_state()?;
        let databases = gateway::health(&state)
            .await
            .into_iter()
            .map(|h| SumdbHealth {
                name: h.name,
                url: h.url,
                reachable: h.reached.is_ok(),
                error: h.reached.err().map(|e| e.message).unwrap_or_default(),
                tree_size: h.verified.map_or(0, |(size, _)| size.max(0) as u64),
                verified_at_ms: h.verified.map_or(0, |(_, at)| at),
            })
            .collect();
        Ok(CheckSumdbReply { databases })
    }
}

/// One line for the audit log.
pub(super) fn summary(reply: &VerifySumdbReply) -> String {
    let count = |kind: &str| reply.findings.iter().filter(|f| f.kind == kind).count();
    format!(
        "ok: {} matched, {} mismatched, {} unknown to {}, {} not checked, {} private skipped",
        reply.matched,
        count("mismatch"),
        count("unknown"),
        reply.database,
        count("error"),
        reply.private
    )
}
