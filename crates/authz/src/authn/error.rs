//! Why a request is not authenticated, and why an [`super::Authenticator`] cannot be built.

/// Why a request is not authenticated. The HTTP layer's code table picks the status (401, or 503
/// when the identity provider is down) and answers `{"error": {"message": <AuthError::message>,
/// ...}}`. No variant ever carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header (or, for `upstream_header`, no principal header). 401; the message
    /// says what the provider expects.
    #[error("{0}")]
    MissingCredentials(String),
    /// An `Authorization` header that is not `Bearer <token>`. 401.
    #[error("Invalid Authorization header format")]
    InvalidHeaderFormat,
    /// The credentials were checked and refused: bad signature, expired, wrong audience or issuer,
    /// unknown key, inactive token, refused by the custom endpoint, unreadable answer. 401.
    #[error("{0}")]
    Rejected(String),
    /// The identity provider could not be reached or answered with a server error. 503.
    #[error("Authentication service unavailable")]
    Unavailable,
    /// The identity provider did not answer in time. 503.
    #[error("Authentication service timeout")]
    Timeout,
}

impl AuthError {
    /// The message for the error body.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// A 401 with `message`.
    pub(crate) fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected(message.into())
    }

    /// Classify a failed request to an identity provider: timeouts and connection failures are 503.
    pub(crate) fn from_http(what: &str, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            tracing::warn!(error = %e, "{what}: identity provider timed out");
            Self::Timeout
        } else {
            tracing::warn!(error = %e, "{what}: identity provider unreachable");
            Self::Unavailable
        }
    }
}

/// Why an [`super::Authenticator`] cannot be built from its config (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The config is inconsistent (it did not pass validation).
    #[error("invalid authentication config: {0}")]
    Invalid(String),
    /// `tls_cafile` cannot be read or holds no PEM certificate.
    #[error("tls_cafile {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client of the authentication provider: {0}")]
    Client(#[from] reqwest::Error),
}
