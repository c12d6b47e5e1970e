//! Many clients asking for the same uncached zip, list or query at once
//! cost one upstream fetch, and every client gets the complete, identical
//! bytes.

use std::time::Duration;

use harness::modules::{LARGE_MODULE, LARGE_VERSION};
use harness::{start_mirror, ModuleSet, Tamper};

const CLIENTS: usize = 100;
/// The zip takes about a second to leave the origin, so every client's
/// request arrives while the first fetch is still running.
const ZIP_BYTES: usize = 2 << 20;
const ORIGIN_RATE: u64 = 2 << 20;

#[test]
fn hundred_concurrent_requests_for_uncached_zip_fetch_it_from_upstream_once() {
    let (origin, node) = start_mirror(ModuleSet::standard().with_large(ZIP_BYTES), |o| o.log_level("info"));
    let expected = origin.modules().get(LARGE_MODULE, LARGE_VERSION).clone();
    let path = expected.url_path("zip");
    origin.throttle(&path, ORIGIN_RATE);
    let url = format!("{}{path}", node.url());

    let answers = get_concurrently(&url, CLIENTS);
    for (i, answer) in answers.iter().enumerate() {
        let (status, body) = answer.as_ref().unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(*status, 200, "client {i}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        assert!(body[..] == expected.zip[..], "client {i}: {} bytes that differ from the origin's {}", body.len(), expected.zip.len());
    }
    assert_eq!(origin.count(&path), 1, "upstream fetches of {path} for {CLIENTS} concurrent clients");
}

#[test]
fn concurrent_requests_for_an_uncached_list_or_query_fetch_each_from_upstream_once() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o.log_level("info"));
    // A query (another major on a path without a major suffix) and a list,
    // each answered by the origin after a second, so every client's request
    // arrives while the first fetch is still running.
    for path in ["/example.com/legacy/@v/v2.0.0.info", "/example.com/beta/@v/list"] {
        origin.tamper(path, Tamper::Delay(Duration::from_secs(1)));
        let answers = get_concurrently(&format!("{}{path}", node.url()), 50);
        let first = answers[0].as_ref().unwrap_or_else(|e| panic!("{path}: {e}")).1.clone();
        for (i, answer) in answers.iter().enumerate() {
            let (status, body) = answer.as_ref().unwrap_or_else(|e| panic!("{path}, client {i}: {e}"));
            assert_eq!(*status, 200, "{path}, client {i}: {}", String::from_utf8_lossy(body));
            assert_eq!(body, &first, "{path}, client {i}: another answer");
        }
        assert_eq!(origin.count(path), 1, "upstream fetches of {path} for 50 concurrent clients");
    }
}

/// GETs `url` from `clients` tasks at once: each one's status and body.
fn get_concurrently(url: &str, clients: usize) -> Vec<Result<(u16, bytes::Bytes), String>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(0).build().expect("http client");
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (client, url) = (client.clone(), url.to_string());
                tokio::spawn(async move {
                    let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
                    let status = response.status().as_u16();
                    let body = response.bytes().await.map_err(|e| e.to_string())?;
                    Ok::<_, String>((status, body))
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("client task panicked"));
        }
        answers
    })
}
