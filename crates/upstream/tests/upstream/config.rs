use crate::common::config;
use std::io::Write;
use upstream::{Error, Upstream};

fn config_error(cfg: upstream::Config) -> String {
    match Upstream::new(cfg) {
        Err(Error::Config(m)) => m,
        Err(e) => panic!("expected a config error, got {e:?}"),
        Ok(_) => panic!("expected a config error"),
    }
}

#[test]
fn direct_is_refused_with_advice() {
    let m = config_error(config("https://proxy.golang.org,direct"));
    assert!(m.contains("Flotilla is a proxy and cannot fetch from version control"), "{m}");
    assert!(m.contains("GOPROXY=<mirror>,direct"), "{m}");

    let mut cfg = config("https://proxy.golang.org");
    cfg.private_proxies = "direct".into();
    assert!(config_error(cfg).starts_with("upstream.private_proxies contains \"direct\""));
}

#[test]
fn an_empty_proxy_list_means_the_default() {
    let up = Upstream::new(config("")).unwrap();
    assert_eq!(up.describe(), "proxies=https://proxy.golang.org");
}

#[test]
fn describe_masks_credentials() {
    let mut cfg = config("https://user:s3cret@a.example/go/,b.example|http://c:8080");
    cfg.private = "*.corp.example".into();
    cfg.private_proxies = "https://token@goproxy.corp.example".into();
    let d = Upstream::new(cfg).unwrap().describe();
    assert_eq!(
        d,
        "proxies=https://***@a.example/go,https://b.example|http://c:8080 \
         private=*.corp.example private_proxies=https://***@goproxy.corp.example"
    );
    assert!(!d.contains("s3cret") && !d.contains("token"));
}

#[test]
fn an_unreadable_or_empty_ca_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let mut cfg = config("https://proxy.golang.org");
    cfg.ca_file = Some(missing.clone());
    let m = config_error(cfg.clone());
    assert!(m.contains(&missing.display().to_string()) && m.contains("cannot read"), "{m}");

    let empty = dir.path().join("empty.pem");
    std::fs::File::create(&empty).unwrap().write_all(b"not a certificate\n").unwrap();
    cfg.ca_file = Some(empty.clone());
    let m = config_error(cfg);
    assert!(m.contains(&empty.display().to_string()) && m.contains("no PEM certificate"), "{m}");
}

#[test]
fn describe_says_when_private_modules_are_refused() {
    let mut cfg = config("https://proxy.golang.org");
    cfg.private = "corp.example".into();
    let up = Upstream::new(cfg).unwrap();
    assert!(up.describe().ends_with("private_proxies=none (private modules refused)"));
}
