//! Every way an inference call can fail. The HTTP status of each is chosen by the http crate's
//! code table, nowhere else.

use ferrostack_config::Problem;

/// The underlying failure of an upstream call, for the logs: a reqwest error (https and proxied
/// providers), a hyper-util one (plain-HTTP providers), or [`TimedOut`].
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The read timeout (or, before the answer's head, the whole wait) ran out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("operation timed out")]
pub struct TimedOut;

/// A failure of the model registry or of an upstream provider.
///
/// `Display` is the message for the client; the HTTP layer picks the status. Messages never carry an API key or the content of a request.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The requested model is not registered (404).
    #[error("model '{model}' not found")]
    ModelNotFound {
        /// The model id the client sent.
        model: String,
    },
    /// The provider could not be reached: connection refused, DNS failure, TLS failure (502).
    #[error("upstream provider {provider} unreachable")]
    Unreachable {
        /// The provider id.
        provider: String,
        /// What the HTTP client said.
        #[source]
        source: Cause,
    },
    /// The provider did not answer (or stopped answering) in time (504).
    #[error("upstream provider {provider} timed out")]
    Timeout {
        /// The provider id.
        provider: String,
        /// What the HTTP client said.
        #[source]
        source: Cause,
    },
    /// The provider answered with an error status, or sent an error event mid-stream. A 4xx is
    /// passed on with the upstream's message; anything else becomes 502.
    #[error("{}", upstream_message(provider, *status, message))]
    Upstream {
        /// The provider id.
        provider: String,
        /// The upstream's HTTP status (or the `code` of a mid-stream error event, else 502).
        status: u16,
        /// The upstream's message: `error.message` of an OpenAI error body, else the body text.
        message: String,
        /// `error.type` of the upstream's body, when given.
        error_type: Option<String>,
        /// `error.code` of the upstream's body, as text, when given.
        code: Option<String>,
        /// `error.param` of the upstream's body, when given.
        param: Option<String>,
    },
    /// The provider's answer is not what the OpenAI API promises: not JSON, malformed SSE data,
    /// not an object (502).
    #[error("upstream returned an invalid response")]
    InvalidResponse {
        /// The provider id.
        provider: String,
        /// What was wrong, for the logs (never the content itself).
        detail: String,
    },
    /// The connection broke while the answer was being read (502).
    #[error("upstream provider {provider} closed the connection before the answer was complete")]
    Broken {
        /// The provider id.
        provider: String,
        /// What the HTTP client said.
        #[source]
        source: Cause,
    },
    /// Every place among the provider's concurrent calls (`max_concurrent_requests`) stayed taken
    /// for `queue_timeout_ms` (503 with `Retry-After`; nothing was sent upstream).
    #[error("upstream provider {provider} is at its limit of {limit} concurrent requests; retry later")]
    Busy {
        /// The provider id.
        provider: String,
        /// Its `max_concurrent_requests`.
        limit: usize,
    },
    /// A served provider entry's `config` is invalid (start-up; the config validation normally
    /// catches this first).
    #[error("invalid config of inference provider {provider}: {}", problems_text(problems))]
    Config {
        /// The provider id.
        provider: String,
        /// Every problem, with its path.
        problems: Vec<Problem>,
    },
    /// The HTTP client of a provider could not be built (start-up): unreadable CA file, bad TLS
    /// settings.
    #[error("cannot build the HTTP client of inference provider {provider}: {reason}")]
    Client {
        /// The provider id.
        provider: String,
        /// Why.
        reason: String,
    },
}

fn upstream_message(provider: &str, status: u16, message: &str) -> String {
    if (400..500).contains(&status) {
        message.to_owned()
    } else {
        format!("upstream provider {provider} failed (HTTP {status}): {message}")
    }
}

fn problems_text(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ProviderError {
    /// The provider involved, when there is one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Self::ModelNotFound { .. } => None,
            Self::Unreachable { provider, .. }
            | Self::Timeout { provider, .. }
            | Self::Upstream { provider, .. }
            | Self::InvalidResponse { provider, .. }
            | Self::Broken { provider, .. }
            | Self::Busy { provider, .. }
            | Self::Config { provider, .. }
            | Self::Client { provider, .. } => Some(provider),
        }
    }

    /// Classify a reqwest error: timeouts (connect or read) first, then connection failures,
    /// then body-read failures; anything else counts as unreachable.
    pub(crate) fn from_reqwest(provider: &str, source: reqwest::Error) -> Self {
        let provider = provider.to_owned();
        if source.is_timeout() {
            Self::Timeout { provider, source: Box::new(source) }
        } else if source.is_body() || source.is_decode() {
            Self::Broken { provider, source: Box::new(source) }
        } else {
            Self::Unreachable { provider, source: Box::new(source) }
        }
    }

    pub(crate) fn invalid(provider: &str, detail: impl Into<String>) -> Self {
        Self::InvalidResponse { provider: provider.to_owned(), detail: detail.into() }
    }
}
