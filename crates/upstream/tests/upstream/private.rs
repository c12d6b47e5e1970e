use crate::common::{config, module, Fake};
use upstream::{Error, Upstream};

const LIMIT: u64 = 1 << 20;

#[tokio::test]
async fn private_paths_go_only_to_the_private_chain() {
    let public = Fake::answering(200, "public\n").await;
    let private = Fake::answering(200, "private\n").await;
    let mut cfg = config(&public.base);
    cfg.private = "*.corp.example,github.com/acme".into();
    cfg.private_proxies = private.base.clone();
    let up = Upstream::new(cfg).unwrap();

    for path in ["git.corp.example/team/lib", "github.com/acme/tool"] {
        let m = module(path);
        assert!(up.is_private(&m));
        let got = up.get(&m, "@v/list", LIMIT).await.unwrap();
        assert_eq!(&got.body[..], b"private\n");
        let mut sink = Vec::new();
        up.download(&m, "@v/v1.0.0.zip", LIMIT, &mut sink).await.unwrap();
    }
    assert_eq!((private.hits(), public.hits()), (4, 0));

    let open = module("github.com/acmeco/tool");
    assert!(!up.is_private(&open));
    assert_eq!(&up.get(&open, "@v/list", LIMIT).await.unwrap().body[..], b"public\n");
    assert_eq!(public.hits(), 1);
}

#[tokio::test]
async fn a_private_404_never_falls_through_to_the_public_chain() {
    let public = Fake::answering(200, "public\n").await;
    let private = Fake::answering(404, "not here").await;
    let mut cfg = config(&public.base);
    cfg.private = "corp.example".into();
    cfg.private_proxies = format!("{}|{}", private.base, private.base);
    let up = Upstream::new(cfg).unwrap();

    let err = up.get(&module("corp.example/secret"), "@v/list", LIMIT).await.unwrap_err();

    assert!(err.is_not_found(), "{err:?}");
    assert_eq!((private.hits(), public.hits()), (2, 0));
}

#[tokio::test]
async fn private_paths_without_a_private_chain_are_forbidden() {
    let public = Fake::answering(200, "public\n").await;
    let mut cfg = config(&public.base);
    cfg.private = "corp.example".into();
    let up = Upstream::new(cfg).unwrap();
    let m = module("corp.example/secret/v2");

    let err = up.get(&m, "@v/list", LIMIT).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(err.to_string(), "module corp.example/secret/v2 matches upstream.private and no upstream.private_proxies is configured");
    let mut sink = Vec::new();
    let err = up.download(&m, "@v/v2.0.0.zip", LIMIT, &mut sink).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(public.hits(), 0);
}
