use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An HTTP error answer: a status and one line of text a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (503 during an election).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        // One line, always: upstream text or file names must not break it.
        let message = message.replace(['\r', '\n'], " ");
        ApiError { status, message, retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        ApiError { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }

    /// 507: the data directory is full; nothing was stored.
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(30), ..Self::new(StatusCode::INSUFFICIENT_STORAGE, message) }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND || self.status == StatusCode::GONE
    }
}

impl From<gomod::Error> for ApiError {
    fn from(e: gomod::Error) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        if let store::Error::Io { path, source } = &e {
            if store::is_disk_full(source) {
                tracing::error!(error = %e, "disk full; nothing was stored");
                return ApiError::insufficient_storage(format!(
                    "disk full writing {}: nothing was stored; free space in the data directory and the node resumes by itself",
                    path.display()
                ));
            }
        }
        tracing::error!(error = %e, "storage error");
        ApiError::internal(format!("storage error: {e}"))
    }
}

/// Maps an upstream failure to what the go command should see: not-found
/// stays not-found (so `,` chains fall through), a refused private module is
/// 403 (so they stop), a slow upstream is 504, anything else 502.
pub fn from_upstream(what: &str, e: &upstream::Error) -> ApiError {
    use upstream::Error as U;
    match e {
        U::NotFound { status, .. } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::NOT_FOUND);
            ApiError::new(status, format!("not found: {what}: {e}"))
        }
        U::Disabled => ApiError::not_found(format!("not found: {what}: fetching from upstream is disabled (upstream.proxies = \"off\")")),
        U::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, format!("{what}: {e}")),
        U::Timeout { .. } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("{what}: {e}")),
        _ => ApiError::bad_gateway(format!("{what}: {e}")),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let cache = if self.status.is_server_error() { "no-store" } else { "no-cache" };
        let mut resp = (self.status, format!("{}\n", self.message)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
