//! Compiles `proto/flotilla/v1/*.proto` with the protoc that ships inside
//! `protoc-bin-vendored`, so building needs no system protoc.

use std::path::PathBuf;

const PROTOS: &[&str] = &["raft.proto", "blob.proto", "admin.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!(): cargo gives a package the
    // same build directory in every checkout (git worktrees sharing a copied
    // target dir), and a baked-in path would compile another checkout's protos.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let dir = root.join("flotilla/v1");
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| dir.join(p)).collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &[root])?;
    Ok(())
}
