use crate::common::{config, module, refusing_address, silent_server, upstream, Fake};
use std::time::Duration;
use upstream::{Error, Upstream};

const LIMIT: u64 = 1 << 20;

#[tokio::test]
async fn comma_falls_through_on_404_and_410() {
    let a = Fake::answering(404, "not found: a").await;
    let b = Fake::answering(410, "gone: b").await;
    let c = Fake::answering(200, "v1.0.0\nv1.1.0\n").await;
    let up = upstream(&format!("{},{},{}", a.base, b.base, c.base));

    let got = up.get(&module("example.com/m"), "@v/list", LIMIT).await.unwrap();

    assert_eq!(&got.body[..], b"v1.0.0\nv1.1.0\n");
    assert_eq!(got.source, c.base);
    assert_eq!((a.hits(), b.hits(), c.hits()), (1, 1, 1));
}

#[tokio::test]
async fn comma_stops_on_500_and_403() {
    for status in [500, 403] {
        let a = Fake::answering(status, "refused here").await;
        let b = Fake::answering(200, "v1.0.0\n").await;
        let up = upstream(&format!("{},{}", a.base, b.base));

        let err = up.get(&module("example.com/m"), "@v/list", LIMIT).await.unwrap_err();

        assert!(matches!(err, Error::Status { status: s, .. } if s == status), "{err:?}");
        assert_eq!(b.hits(), 0, "{status} must not fall through a comma");
    }
}

#[tokio::test]
async fn comma_stops_on_connection_refused() {
    let dead = refusing_address().await;
    let b = Fake::answering(200, "v1.0.0\n").await;
    let up = upstream(&format!("{dead},{}", b.base));

    let err = up.get(&module("example.com/m"), "@v/list", LIMIT).await.unwrap_err();

    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(err.to_string().contains(&dead), "{err}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn pipe_falls_through_on_500_and_connection_refused() {
    let broken = Fake::answering(500, "internal error").await;
    let dead = refusing_address().await;
    let good = Fake::answering(200, "v1.0.0\n").await;
    let up = upstream(&format!("{}|{dead}|{}", broken.base, good.base));

    let got = up.get(&module("example.com/m"), "@v/list", LIMIT).await.unwrap();

    assert_eq!(got.source, good.base);
    assert_eq!((broken.hits(), good.hits()), (1, 1));
}

#[tokio::test]
async fn every_proxy_not_found_is_not_found() {
    let a = Fake::answering(404, "not found: a").await;
    let b = Fake::answering(410, "gone: b").await;
    let up = upstream(&format!("{}|{}", a.base, b.base));

    let err = up.get(&module("example.com/m"), "@v/v9.9.9.info", LIMIT).await.unwrap_err();

    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), format!("upstream {}/example.com/m/@v/v9.9.9.info answered 410: gone: b", b.base));
}

#[tokio::test]
async fn a_broken_proxy_is_not_hidden_behind_a_later_404() {
    let broken = Fake::answering(502, "bad gateway").await;
    let empty = Fake::answering(404, "not found").await;
    let up = upstream(&format!("{}|{}", broken.base, empty.base));

    let err = up.get(&module("example.com/m"), "@v/list", LIMIT).await.unwrap_err();

    assert!(matches!(err, Error::Status { status: 502, .. }), "{err:?}");
    assert!(!err.is_not_found());
    assert_eq!(empty.hits(), 1);
}

#[tokio::test]
async fn error_bodies_are_cut_to_one_short_line() {
    let long = Box::leak("x".repeat(1000).into_boxed_str());
    let a = Fake::answering(500, "\n  first line of the reason  \nsecond line\n").await;
    let b = Fake::answering(500, long).await;
    let up = upstream(&format!("{}|{}", a.base, b.base));
    let m = module("example.com/m");

    let Error::Status { body, .. } = upstream(&a.base).get(&m, "@v/list", LIMIT).await.unwrap_err() else { panic!() };
    assert_eq!(body, "first line of the reason");
    let err = up.get(&m, "@v/list", LIMIT).await.unwrap_err();
    let Error::Status { body, .. } = &err else { panic!("{err:?}") };
    assert_eq!(body.len(), 200);
    assert!(!err.to_string().contains('\n'));
}

#[tokio::test]
async fn request_urls_are_escaped_under_the_base_prefix() {
    let fake = Fake::answering(200, "{}").await;
    let up = upstream(&format!("{}/prefix/", fake.base));

    let got = up.get(&module("github.com/Azure/azure-sdk"), "@v/v1.0.0-RC.info", LIMIT).await.unwrap();

    assert_eq!(got.source, format!("{}/prefix", fake.base));
    assert_eq!(fake.paths(), ["/prefix/github.com/!azure/azure-sdk/@v/v1.0.0-RC.info"]);
}

#[tokio::test]
async fn a_silent_proxy_times_out_and_pipe_moves_on() {
    let silent = silent_server().await;
    let good = Fake::answering(200, "v1.0.0\n").await;
    let mut cfg = config(&silent);
    cfg.timeout = Duration::from_millis(300);
    let m = module("example.com/m");

    let err = Upstream::new(cfg.clone()).unwrap().get(&m, "@latest", LIMIT).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("upstream {silent}/example.com/m/@latest did not answer in time"));

    cfg.proxies = format!("{silent}|{}", good.base);
    let got = Upstream::new(cfg).unwrap().get(&m, "@latest", LIMIT).await.unwrap();
    assert_eq!(got.source, good.base);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let big = Fake::answering(200, "0123456789abcdef").await;
    let up = upstream(&big.base);

    let err = up.get(&module("example.com/m"), "@v/v1.0.0.mod", 10).await.unwrap_err();

    assert!(matches!(err, Error::TooLarge { limit: 10, .. }), "{err:?}");
    assert_eq!(up.get(&module("example.com/m"), "@v/v1.0.0.mod", 16).await.unwrap().body.len(), 16);
}

#[tokio::test]
async fn off_disables_every_fetch() {
    let m = module("example.com/m");
    let err = upstream("off").get(&m, "@v/list", LIMIT).await.unwrap_err();
    assert!(matches!(err, Error::Disabled), "{err:?}");
    assert!(upstream("off").is_off(&m));
    assert!(!upstream("https://proxy.example,off").is_off(&m), "the proxy is asked first");

    let a = Fake::answering(404, "").await;
    let err = upstream(&format!("{},off", a.base)).get(&m, "@v/list", LIMIT).await.unwrap_err();
    assert!(matches!(err, Error::Disabled), "a 404 walks on into off: {err:?}");
}
