//! `flotilla certs`: a cluster CA and certificates for its nodes and for
//! `flotillactl`, for sites without their own PKI.
//!
//! Files in `--out`: `ca.crt`, `ca.key`, `node-<id>.crt`/`.key` for every
//! node, `flotillactl.crt`/`.key`. Keys are written 0600. An existing CA in
//! the folder is reused, so running it again renews (or adds) node
//! certificates that the running nodes already trust.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Folder to write the certificates and keys to (created if needed).
    #[arg(long, value_name = "DIR", default_value = "./flotilla-certs")]
    pub out: PathBuf,
    /// Make certificates for nodes 1..=N.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Make certificates for exactly these node ids instead (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "nodes")]
    pub ids: Vec<u64>,
    /// Years the node and flotillactl certificates stay valid.
    #[arg(long, default_value_t = 2)]
    pub years: i32,
}

const CA_NAME: &str = "Flotilla cluster CA";

pub fn run(args: CertsArgs) -> Result<()> {
    let ids: Vec<u64> = if args.ids.is_empty() { (1..=args.nodes).collect() } else { args.ids.clone() };
    if ids.is_empty() || ids.contains(&0) {
        bail!("node ids must be 1 or more (--nodes N or --ids 1,2,3)");
    }
    if !(1..=20).contains(&args.years) {
        bail!("--years must be between 1 and 20");
    }
    let written = make(&args.out, &ids, args.years)?;
    println!("wrote to {}:", args.out.display());
    for line in written {
        println!("  {line}");
    }
    println!(
        "\nOn node N set (same ca.crt everywhere, keep ca.key off the nodes):\n  \
         cluster.tls_ca_file   = \"{dir}/ca.crt\"\n  cluster.tls_cert_file = \"{dir}/node-N.crt\"\n  \
         cluster.tls_key_file  = \"{dir}/node-N.key\"\nflotillactl: --tls-ca-file {dir}/ca.crt --tls-cert-file {dir}/flotillactl.crt \
         --tls-key-file {dir}/flotillactl.key (or FLOTILLA_TLS_CA_FILE, FLOTILLA_TLS_CERT_FILE, FLOTILLA_TLS_KEY_FILE)",
        dir = args.out.display()
    );
    Ok(())
}

/// Writes the CA (unless present) and the certificates; returns what it wrote.
pub fn make(dir: &Path, ids: &[u64], years: i32) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let (ca_crt, ca_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    let now_year = current_year();
    let ca_params = {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, CA_NAME);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        p.not_before = rcgen::date_time_ymd(now_year - 1, 1, 1);
        p.not_after = rcgen::date_time_ymd(now_year + 20, 1, 1);
        p
    };
    let (ca_key, ca_cert) = if ca_key_path.exists() && ca_crt.exists() {
        crate::config::check_private_file(&ca_key_path, "ca.key")?;
        let pem = std::fs::read_to_string(&ca_key_path).with_context(|| format!("cannot read {}", ca_key_path.display()))?;
        let key = KeyPair::from_pem(&pem).with_context(|| format!("{} is not a PEM private key", ca_key_path.display()))?;
        // The same name and key sign exactly as the stored CA certificate does.
        let cert = ca_params.self_signed(&key).context("cannot rebuild the CA")?;
        written.push("ca.crt, ca.key (kept: the existing CA signs the new certificates)".to_string());
        (key, cert)
    } else {
        let key = KeyPair::generate().context("cannot generate a key")?;
        let cert = ca_params.self_signed(&key).context("cannot make the CA certificate")?;
        write_file(&ca_crt, cert.pem().as_bytes(), 0o644)?;
        write_file(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        written.push("ca.crt, ca.key (new CA)".to_string());
        (key, cert)
    };
    let mut issue = |name: &str, sans: Vec<String>| -> Result<()> {
        let mut p = CertificateParams::new(sans).context("invalid certificate name")?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.not_before = rcgen::date_time_ymd(now_year - 1, 1, 1);
        p.not_after = rcgen::date_time_ymd(now_year + years, 1, 1);
        let key = KeyPair::generate().context("cannot generate a key")?;
        let cert = p.signed_by(&key, &ca_cert, &ca_key).context("cannot sign the certificate")?;
        write_file(&dir.join(format!("{name}.crt")), cert.pem().as_bytes(), 0o644)?;
        write_file(&dir.join(format!("{name}.key")), key.serialize_pem().as_bytes(), 0o600)?;
        written.push(format!("{name}.crt, {name}.key"));
        Ok(())
    };
    for &id in ids {
        let name = proto::tls::node_name(id);
        issue(&name, vec![name.clone(), proto::tls::ANY_NODE.to_string()])?;
    }
    issue(proto::tls::CTL_NAME, vec![proto::tls::CTL_NAME.to_string()])?;
    Ok(written)
}

fn current_year() -> i32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    1970 + (secs / 31_556_952) as i32
}

/// Replaces `path` with `data`, created with `mode` (a key is never
/// readable by others, not even for a moment).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(data).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn certificates_name_their_node_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), &[1, 2], 2).unwrap();
        for id in [1, 2] {
            let pem = std::fs::read(dir.path().join(format!("node-{id}.crt"))).unwrap();
            assert!(proto::tls::pem_names_node(&pem, id));
            assert!(!proto::tls::pem_names_node(&pem, 3 - id));
            let mode = std::fs::metadata(dir.path().join(format!("node-{id}.key"))).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let ca_before = std::fs::read(dir.path().join("ca.crt")).unwrap();
        // Renewing keeps the CA, so old and new certificates chain to it.
        make(dir.path(), &[3], 2).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), ca_before);
        let files = |name: &str| proto::tls::TlsFiles {
            ca_file: dir.path().join("ca.crt"),
            cert_file: dir.path().join(format!("{name}.crt")),
            key_file: dir.path().join(format!("{name}.key")),
        };
        proto::tls::ClusterTls::load(&files("node-3")).unwrap().server_config().unwrap();
        proto::tls::ClusterTls::load(&files("flotillactl")).unwrap();
    }
}
