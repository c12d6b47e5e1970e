//! The one error type of the upstream client. Every message is one line that
//! names what happened and where; it becomes part of the gateway's 502 body.

/// What went wrong while talking to the upstream proxies.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every proxy tried answered 404 or 410.
    #[error("upstream {url} answered {status}{}", detail(.body))]
    NotFound { url: String, status: u16, body: String },
    /// Flotilla refuses the request itself (a private path with no private chain).
    #[error("{0}")]
    Forbidden(String),
    /// The proxy list is (or ends in) `off`.
    #[error("module lookup disabled: the upstream proxy list says \"off\"")]
    Disabled,
    /// A status other than 200, 404 and 410.
    #[error("upstream {url} answered {status}{}", detail(.body))]
    Status { url: String, status: u16, body: String },
    /// No answer (or no next chunk of the body) before the deadline.
    #[error("upstream {url} did not answer in time")]
    Timeout { url: String },
    /// Connection refused, DNS, TLS, or the body broke off.
    #[error("cannot fetch {url}: {message}")]
    Network { url: String, message: String },
    /// The answer was larger than the caller allows.
    #[error("upstream {url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// The `[upstream]` settings cannot be used.
    #[error("invalid upstream configuration: {0}")]
    Config(String),
    /// Writing a download to its sink failed.
    #[error("writing the upstream download failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when every proxy said the module or version does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Singleflight shares one result between callers, so errors must clone;
/// `std::io::Error` does not, and is rebuilt from its kind and message.
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::NotFound { url, status, body } => Error::NotFound { url: url.clone(), status: *status, body: body.clone() },
            Error::Forbidden(m) => Error::Forbidden(m.clone()),
            Error::Disabled => Error::Disabled,
            Error::Status { url, status, body } => Error::Status { url: url.clone(), status: *status, body: body.clone() },
            Error::Timeout { url } => Error::Timeout { url: url.clone() },
            Error::Network { url, message } => Error::Network { url: url.clone(), message: message.clone() },
            Error::TooLarge { url, limit } => Error::TooLarge { url: url.clone(), limit: *limit },
            Error::Config(m) => Error::Config(m.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

fn detail(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}
