//! The status page at `/`: one self-contained HTML document (no scripts, no
//! external assets) for the person who opens the mirror's address in a
//! browser: who is primary, how far behind each node is, what this node
//! fetched lately, how big its cache is, and the lines that point the go
//! command at this mirror.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use api::{ClusterFacts, ClusterStatus, Lag, RaftRole};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let status = state.cluster.status();
    let facts = match &status {
        ClusterStatus::Member(facts) => Some(&**facts),
        ClusterStatus::Standalone => None,
    };
    let html = render(&state, facts, &mirror_url(&headers, facts.and_then(|f| f.primary_url.as_deref())));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html).into_response()
}

/// The address the reader used to reach this page (through a load balancer,
/// that is the front), which is the one to give the go command.
fn mirror_url(headers: &HeaderMap, fallback: Option<&str>) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let host = header("x-forwarded-host").or_else(|| header(header::HOST.as_str()));
    match host {
        Some(host) if host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c)) => {
            let scheme = match header("x-forwarded-proto") {
                Some("https") => "https",
                _ => "http",
            };
            format!("{scheme}://{host}")
        }
        _ => fallback.unwrap_or("http://this-mirror:8080").to_string(),
    }
}

/// The page; `facts` is `None` on a single node.
fn render(state: &AppState, facts: Option<&ClusterFacts>, url: &str) -> String {
    let node = state.cfg.node_id;
    let mut out = String::with_capacity(8 << 10);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Flotilla · node {node}</title><style>{CSS}</style></head><body>\n\
         <header><h1>Flotilla Go module mirror</h1><p class=\"sub\">node {node} · version {} · up {}</p></header>\n",
        env!("CARGO_PKG_VERSION"),
        human_duration(state.started.elapsed().as_secs_f64()),
    );
    summary(&mut out, state, facts);
    if let Some(facts) = facts {
        members(&mut out, facts);
    }
    cache(&mut out, state, facts);
    recent(&mut out, state);
    client_setup(&mut out, url);
    out.push_str(
        "<footer>Machine-readable: <a href=\"/api/v1/status\">/api/v1/status</a> · <a href=\"/metrics\">/metrics</a> · \
         health <a href=\"/healthz\">/healthz</a> <a href=\"/serving\">/serving</a> <a href=\"/readyz\">/readyz</a></footer>\n\
         </body></html>\n",
    );
    out
}

fn summary(out: &mut String, state: &AppState, facts: Option<&ClusterFacts>) {
    out.push_str("<section><h2>Cluster</h2><dl>");
    match facts {
        None => out.push_str("<dt>Mode</dt><dd>single node (no cluster): this node fetches and stores every module itself</dd>"),
        Some(view) => cluster_summary(out, state, view),
    }
    out.push_str("</dl></section>\n");
}

fn cluster_summary(out: &mut String, state: &AppState, view: &ClusterFacts) {
    let primary = match (view.primary_id, view.acting_primary) {
        (Some(id), _) if id == state.cfg.node_id && view.acting_primary => format!("node {id} (this node)"),
        (Some(id), _) if id == state.cfg.node_id => format!("none: node {id} (this node) leads but has lost its quorum"),
        (Some(id), _) => match &view.primary_url {
            Some(u) => format!("node {id} at {}", esc(u)),
            None => format!("node {id}"),
        },
        (None, _) => "none (election in progress, or this node is cut off)".to_string(),
    };
    let cls = if view.primary_id.is_some() { "ok" } else { "bad" };
    let _ = write!(out, "<dt>Primary</dt><dd class=\"{cls}\">{primary}</dd>");
    let _ = write!(out, "<dt>This node</dt><dd>node {} · raft role {}</dd>", state.cfg.node_id, view.role.as_str());
    let _ = write!(out, "<dt>Term</dt><dd>{}</dd>", view.term);
    let _ = write!(out, "<dt>Log</dt><dd>applied {} · committed {}</dd>", opt(view.last_applied), opt(view.committed));
    let (cls, ready) = if view.ready { ("ok", "ready: takes misses") } else { ("bad", "not ready: serves what it holds only") };
    let _ = write!(out, "<dt>Readiness</dt><dd class=\"{cls}\">{ready}</dd>");
}

fn members(out: &mut String, view: &ClusterFacts) {
    if view.members.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Members and replication lag</h2><table><thead><tr><th>node</th><th>role</th><th>cluster address</th>\
         <th>gateway</th><th class=\"n\">blobs missing</th><th class=\"n\">bytes missing</th><th class=\"n\">oldest missing</th></tr></thead><tbody>",
    );
    let lag_of = |id: u64| match &view.replication.nodes {
        Lag::Nodes(nodes) => nodes.get(&id),
        Lag::Unavailable { .. } => None,
    };
    for m in &view.members {
        let role = if Some(m.id) == view.primary_id {
            if view.acting_primary || view.role != RaftRole::Leader {
                "primary"
            } else {
                "leader without quorum"
            }
        } else if view.voters.contains(&m.id) {
            "follower"
        } else {
            "learner"
        };
        let gateway = m.gateway_url.as_deref().map(|u| format!("<a href=\"{0}/\">{0}</a>", esc(u))).unwrap_or_else(|| "—".into());
        let _ = write!(out, "<tr><td>{}</td><td>{role}</td><td>{}</td><td>{gateway}</td>", m.id, esc(&m.cluster));
        match lag_of(m.id) {
            Some(lag) => {
                let cls = if lag.missing_blobs == 0 { "ok" } else { "warn" };
                let oldest = if lag.missing_blobs == 0 { "—".to_string() } else { human_duration(lag.oldest_missing_seconds) };
                let _ = write!(
                    out,
                    "<td class=\"n {cls}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{oldest}</td></tr>",
                    lag.missing_blobs,
                    human_bytes(lag.missing_bytes)
                );
            }
            None => out.push_str("<td class=\"n\" colspan=\"3\">unknown</td></tr>"),
        }
    }
    out.push_str("</tbody></table>");
    if let Lag::Unavailable { error: err } = &view.replication.nodes {
        let _ = write!(out, "<p class=\"bad\">Lag unavailable: {}</p>", esc(err));
    }
    out.push_str("</section>\n");
}

fn cache(out: &mut String, state: &AppState, facts: Option<&ClusterFacts>) {
    let stats = state.store.blobs.stats();
    out.push_str("<section><h2>Cache on this node</h2><dl>");
    let _ = write!(out, "<dt>Zips stored</dt><dd>{} · {}</dd>", stats.count, human_bytes(stats.bytes));
    let _ = write!(
        out,
        "<dt>Hot zips in memory</dt><dd>{} of {}</dd>",
        human_bytes(state.hot_zips.weight()),
        human_bytes(state.cfg.cache.memory)
    );
    let _ = write!(
        out,
        "<dt>Lists refreshed after</dt><dd>{}</dd><dt>Not-found remembered for</dt><dd>{}</dd>",
        human_duration(state.cfg.cache.list_ttl.as_secs_f64()),
        human_duration(state.cfg.cache.negative_ttl.as_secs_f64())
    );
    let _ = write!(out, "<dt>Upstream</dt><dd><code>{}</code></dd>", esc(&state.upstream.describe()));
    if let Some(r) = facts.map(|f| &f.replication) {
        let cls = if r.queue.blobs == 0 { "ok" } else { "warn" };
        let oldest = if r.queue.blobs == 0 { String::new() } else { format!(", oldest {}", human_duration(r.queue.oldest_seconds)) };
        let _ = write!(
            out,
            "<dt>Replication queue</dt><dd class=\"{cls}\">{} blobs · {}{oldest} · {} failing</dd>\
             <dt>Copied from peers</dt><dd>{} received · {} sent · {} failed pulls (retried)</dd>",
            r.queue.blobs,
            human_bytes(r.queue.bytes),
            r.queue.failing,
            human_bytes(r.received_bytes),
            human_bytes(r.sent_bytes),
            r.failures
        );
    }
    out.push_str("</dl></section>\n");
}

fn recent(out: &mut String, state: &AppState) {
    let fetches = state.recent.list();
    out.push_str("<section><h2>Recent fetches by this node</h2>");
    if fetches.is_empty() {
        out.push_str("<p>None since start-up. Misses are fetched from upstream by the primary; cached files are served by every node.</p></section>\n");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>when</th><th>module</th><th>version</th><th>file</th><th class=\"n\">took</th><th>result</th></tr></thead><tbody>",
    );
    let now = SystemTime::now();
    for f in fetches {
        let ago = now.duration_since(f.at).map(|d| human_duration(d.as_secs_f64())).unwrap_or_default();
        let result = match &f.error {
            None => "<span class=\"ok\">stored</span>".to_string(),
            Some(e) => format!("<span class=\"bad\">{}</span>", esc(e)),
        };
        let _ = write!(
            out,
            "<tr><td>{ago} ago</td><td><code>{}</code></td><td><code>{}</code></td><td>.{}</td><td class=\"n\">{} ms</td><td>{result}</td></tr>",
            esc(&f.module),
            esc(&f.version),
            f.kind,
            f.took.as_millis()
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn client_setup(out: &mut String, url: &str) {
    let url = esc(url);
    let _ = writeln!(
        out,
        "<section><h2>Use this mirror</h2>\
         <p>Point the go command at this address. Keep <code>GOSUMDB</code> at its default; public modules need no \
         <code>GONOSUMDB</code>. List private module paths in <code>GOPRIVATE</code> only if they must bypass the mirror.</p>\
         <dl class=\"setup\">\
         <dt>go env (every shell, remembered)</dt><dd><pre>go env -w GOPROXY={url}</pre></dd>\
         <dt>bash / zsh</dt><dd><pre>export GOPROXY={url}</pre></dd>\
         <dt>PowerShell</dt><dd><pre>$env:GOPROXY = \"{url}\"</pre></dd>\
         <dt>Windows CMD</dt><dd><pre>set GOPROXY={url}</pre></dd>\
         </dl></section>"
    );
}

const CSS: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;color:#1d2430;background:#fbfbfd}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #dde;padding-bottom:.2rem}\
.sub{color:#667;margin:0}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dt{color:#556}dd{margin:0}\
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e6e6ee}\
th{color:#556;font-weight:600}.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#17753a}.warn{color:#9a6100}.bad{color:#b3261e}\
pre{margin:0;padding:.35rem .6rem;background:#f0f1f5;border-radius:4px;overflow-x:auto}code{font-size:.9em}\
dl.setup{grid-template-columns:14rem 1fr;align-items:center}footer{margin:2rem 0 1rem;color:#667;font-size:.88rem}";

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| v.to_string())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    match s {
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s if s < 60.0 => format!("{s:.0} s"),
        s if s < 3600.0 => format!("{:.0} min", s / 60.0),
        s if s < 86400.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn the_mirror_url_is_the_address_the_reader_used() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("mirror.corp:8080"));
        assert_eq!(mirror_url(&h, None), "http://mirror.corp:8080");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("goproxy.corp"));
        assert_eq!(mirror_url(&h, None), "https://goproxy.corp");
        let mut hostile = HeaderMap::new();
        hostile.insert(header::HOST, HeaderValue::from_static("x\"><script>"));
        assert_eq!(mirror_url(&hostile, Some("http://10.0.0.1:8080")), "http://10.0.0.1:8080");
    }

    #[test]
    fn sizes_and_durations_read_like_a_person_wrote_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_duration(0.25), "250 ms");
        assert_eq!(human_duration(125.0), "2 min");
    }
}
