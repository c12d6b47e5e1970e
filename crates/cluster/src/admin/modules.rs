//! `ListModules` and `ShowModule`: what this node's catalog holds.

use gomod::{ModulePath, Version};
use proto::v1::{ListModulesReply, ListModulesRequest, ModuleVersion, ShowModuleReply, ShowModuleRequest};
use tonic::Status;

use super::{catalog_error, AdminService, Node};

const DEFAULT_LIMIT: usize = 1000;

impl AdminService {
    pub(super) fn list(&self, req: &ListModulesRequest) -> Result<ListModulesReply, Status> {
        let pattern = req.pattern.trim();
        if let Some(bad) = pattern.split(',').map(|g| g.trim_end_matches('/')).find(|g| gomod::path_match(g, "").is_none()) {
            return Err(Status::invalid_argument(format!("pattern {bad:?} is not a valid glob (as in GOPRIVATE)")));
        }
        let limit = if req.limit == 0 { DEFAULT_LIMIT } else { req.limit as usize };
        let mut all = self.catalog.all_versions().map_err(catalog_error)?;
        all.retain(|(module, _)| pattern.is_empty() || gomod::match_prefix_patterns(pattern, module.as_str()));
        all.sort();
        let truncated = all.len() > limit;
        let versions = all.iter().take(limit).map(|(m, v)| self.describe(m, v)).collect::<Result<_, _>>()?;
        Ok(ListModulesReply { versions, truncated })
    }

    pub(super) fn show(&self, req: &ShowModuleRequest) -> Result<ShowModuleReply, Status> {
        let module = ModulePath::new(req.module.trim()).map_err(|e| Status::invalid_argument(format!("module {:?}: {e}", req.module)))?;
        let versions = if req.version.trim().is_empty() {
            self.catalog.versions(&module).map_err(catalog_error)?
        } else {
            vec![Version::new(req.version.trim()).map_err(|e| Status::invalid_argument(format!("version {:?}: {e}", req.version)))?]
        };
        let mut out = Vec::new();
        for version in &versions {
            let described = self.describe(&module, version)?;
            if described.has_info || described.has_mod || !described.zip_sha256.is_empty() {
                out.push(described);
            }
        }
        if out.is_empty() {
            let what = if req.version.trim().is_empty() { module.to_string() } else { format!("{module}@{}", req.version.trim()) };
            return Err(Status::not_found(format!("{what} is not in the catalog (`flotillactl modules list` shows what is)")));
        }
        Ok(ShowModuleReply { versions: out })
    }

    /// The nodes holding blob `sha256`: placement on a cluster, this node
    /// on a single node when the file is there.
    fn holders(&self, sha256: &store::Sha256) -> Vec<u64> {
        match &self.node {
            Node::Cluster { control, .. } => control.placement(sha256),
            Node::Single { node_id, .. } if self.store.blobs.exists(sha256) => vec![*node_id],
            Node::Single { .. } => Vec::new(),
        }
    }

    fn describe(&self, module: &ModulePath, version: &Version) -> Result<ModuleVersion, Status> {
        let info = self.catalog.info(module, version).map_err(catalog_error)?;
        let go_mod = self.catalog.go_mod(module, version).map_err(catalog_error)?;
        let zip = self.catalog.zip(module, version).map_err(catalog_error)?;
        let time = info.as_deref().and_then(|i| gomod::parse_info(i).ok()).and_then(|i| i.time).unwrap_or_default();
        let holders = zip.as_ref().map(|z| self.holders(&z.sha256)).unwrap_or_default();
        Ok(ModuleVersion {
            module: module.to_string(),
            version: version.to_string(),
            has_info: info.is_some(),
            has_mod: go_mod.is_some(),
            zip_sha256: zip.as_ref().map(|z| z.sha256.to_hex()).unwrap_or_default(),
            zip_size: zip.as_ref().map_or(0, |z| z.size),
            fetched_at_ms: zip.as_ref().map_or(0, |z| z.fetched_at_ms),
            h1: zip.map(|z| z.h1).unwrap_or_default(),
            holders,
            time,
            mod_h1: go_mod.map(|m| gomod::h1_go_mod(&m)).unwrap_or_default(),
        })
    }
}
