//! The provider client against the one fake upstream of the test suites
//! ([`ferrostack_testkit::upstream`]): its path-selected scenarios, and helpers to read streams.

use ferrostack_config::{InferenceProviderConfig, InferenceProviderKind};
use ferrostack_providers::{ChunkStream, ProviderError, StreamEvent, UpstreamClient};
pub use ferrostack_testkit::upstream::{FakeUpstream, Seen, hello_chunks, sse_text};
use futures_util::StreamExt;
use serde_json::Value;

pub struct Upstream {
    pub fake: FakeUpstream,
}

impl Upstream {
    /// The base URL of `scenario` (what a provider's `url` would be).
    pub fn url(&self, scenario: &str) -> String {
        self.fake.url(scenario)
    }

    /// A client of `scenario`, with `key` as API key.
    pub fn client(&self, scenario: &str, key: Option<&str>) -> UpstreamClient {
        let config =
            InferenceProviderConfig::new(InferenceProviderKind::Vllm, self.url(scenario), key.map(str::to_owned));
        UpstreamClient::new("fake", &config).unwrap()
    }

    /// A client of `scenario` whose read timeout is `ms`.
    pub fn client_with_timeout(&self, scenario: &str, ms: u64) -> UpstreamClient {
        let mut config = InferenceProviderConfig::new(InferenceProviderKind::Vllm, self.url(scenario), None);
        config.timeout_ms = ms;
        UpstreamClient::new("fake", &config).unwrap()
    }

    pub fn last_seen(&self) -> Seen {
        self.fake.last_seen().expect("the fake saw a request")
    }
}

/// Start the fake upstream.
pub async fn upstream() -> Upstream {
    Upstream { fake: FakeUpstream::start().await }
}

/// The HTTP status the http crate's code table gives `e` (pinned there too, with the exact
/// body): the provider's own 4xx passed on, 404 unknown model, 502 unreachable / invalid /
/// broken / provider 5xx, 504 timeout, 500 start-up errors.
pub fn status(e: &ProviderError) -> u16 {
    match e {
        ProviderError::ModelNotFound { .. } => 404,
        ProviderError::Unreachable { .. } | ProviderError::InvalidResponse { .. } | ProviderError::Broken { .. } => 502,
        ProviderError::Timeout { .. } => 504,
        ProviderError::Busy { .. } => 503,
        ProviderError::Upstream { status, .. } if (400..500).contains(status) => *status,
        ProviderError::Upstream { .. } => 502,
        ProviderError::Config { .. } | ProviderError::Client { .. } => 500,
    }
}

/// A loopback URL where nothing listens.
pub fn nothing_listens() -> String {
    format!("http://{}/v1", ferrostack_testkit::unused_loopback_addr())
}

/// Collect a stream: the events, and the error it ended with, if any.
pub async fn collect(mut stream: ChunkStream) -> (Vec<StreamEvent>, Option<ferrostack_providers::ProviderError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => {
                assert!(stream.next().await.is_none(), "nothing follows an error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

/// The chunks of collected events (without `Done`).
pub fn chunks(events: &[StreamEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(v) => Some(v.clone()),
            StreamEvent::Done => None,
        })
        .collect()
}
