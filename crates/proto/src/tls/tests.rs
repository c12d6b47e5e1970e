use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn unusable_tls_material_is_refused_with_the_reason() {
    let err = ClusterTls::from_pem(b"not pem".to_vec(), Vec::new(), Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "the CA file holds no PEM certificate");
    let dir = std::env::temp_dir().join(format!("flotilla-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsFiles { ca_file: dir.join("ca.crt"), cert_file: dir.join("node.crt"), key_file: dir.join("node.key") };
    std::fs::write(&files.key_file, "key").unwrap();
    std::fs::set_permissions(&files.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = ClusterTls::load(&files).unwrap_err().to_string();
    let key = files.key_file.display();
    assert_eq!(open, format!("the TLS key file {key} is readable by everyone (mode 644); it holds a secret: run `chmod 600 {key}`"));
    std::fs::set_permissions(&files.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let missing = ClusterTls::load(&files).unwrap_err().to_string();
    assert!(missing.starts_with(&format!("cannot read the CA file {}: ", files.ca_file.display())), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_cluster_address_names_itself() {
    let err = Transport::Plaintext.endpoint("no port here", "node-1").unwrap_err().to_string();
    assert!(err.starts_with("\"no port here\" is not a host:port address: "), "{err}");
}
