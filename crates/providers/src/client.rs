//! The OpenAI-compatible upstream client of a provider: hyper-util's pooled HTTP/1.1 client for
//! a plain-HTTP provider that no proxy applies to (crate::plain), else a pooled `reqwest::Client`.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrostack_config::{InferenceProviderConfig, InferenceProviderKind};
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;
use thread_local::ThreadLocal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ProviderError;
use crate::plain::{self, PlainBody, PlainClient};
use crate::sse::{SseEvent, SseParser};

/// Longest upstream error body read for its message, in bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest upstream error text passed on as a message, in characters.
const MAX_ERROR_MESSAGE: usize = 1000;

/// Headers passed on to the upstream, as the HTTP layer extracted them from the client's request.
/// Values that are not valid header values are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardHeaders {
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// W3C `tracestate`.
    pub tracestate: Option<String>,
    /// `x-request-id`, so upstream logs can be matched with ours.
    pub request_id: Option<String>,
}

impl ForwardHeaders {
    fn apply(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let pairs =
            [("traceparent", &self.traceparent), ("tracestate", &self.tracestate), ("x-request-id", &self.request_id)];
        for (name, value) in pairs {
            if let Some(v) = value
                && let Ok(v) = HeaderValue::from_str(v)
            {
                req = req.header(HeaderName::from_static(name), v);
            }
        }
        req
    }
}

/// The settings every thread's `reqwest::Client` of a provider is built with.
struct HttpConfig {
    connect_timeout: Duration,
    read_timeout: Duration,
    max_idle_per_host: usize,
    verify_tls: bool,
    certs: Option<Vec<reqwest::Certificate>>,
}

impl HttpConfig {
    fn build(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .tcp_nodelay(true)
            // A proxy never follows a redirect of a POST on a client's behalf (the body and the
            // key would go to wherever the redirect points); it also spares reqwest's redirect
            // layer re-parsing the URL on every request.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ferrostack/", env!("CARGO_PKG_VERSION")));
        if !self.verify_tls {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(certs) = &self.certs {
            builder = builder.tls_certs_merge(certs.clone());
        }
        builder.build()
    }
}

/// One item of an upstream stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A `chat.completion.chunk`, as the upstream sent it.
    Chunk(Value),
    /// The upstream's `data: [DONE]`; nothing follows.
    Done,
}

/// The chunks of an upstream stream, parsed as they arrive. A failure (timeout, broken
/// connection, malformed data, an upstream error event) is the last item.
pub type ChunkStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

/// A client of one OpenAI-compatible provider. Cheap to share: clone the `Arc` it lives in (see
/// [`crate::Providers`]); the connection pool is inside.
pub struct UpstreamClient {
    id: String,
    kind: InferenceProviderKind,
    base_url: String,
    /// `<base_url>/chat/completions`, parsed once: parsing it per request was 7% of the proxy's
    /// CPU (docs/benchmarks.md).
    completions_url: reqwest::Url,
    /// One `reqwest::Client` (and so one connection pool) per thread that calls the provider.
    /// A pooled connection is driven by a task on the runtime of the thread that opened it; with
    /// one pool shared by the actix workers, a request on one worker used connections driven by
    /// another, and every request and every streamed chunk crossed threads (an eventfd write and
    /// a wake-up each: ~22 per 52-event stream, measured with `strace -c -f`). Per thread, the
    /// call, its connection and the client's connection stay on one worker.
    http: ThreadLocal<reqwest::Client>,
    /// How [`Self::http`] builds a thread's client (the settings were checked at start-up).
    http_config: HttpConfig,
    /// The chat-completion calls of a plain-HTTP provider that no proxy applies to
    /// ([`plain::plain_http_allowed`], decided at start-up from the environment); `None`: through
    /// [`Self::http`]. Model listing always goes through reqwest (not on the hot path).
    plain: Option<PlainClient>,
    /// `Bearer <key>`, marked sensitive so that it never prints.
    auth: Option<HeaderValue>,
    /// At most `max_concurrent_requests` calls at once; a call waits for a place at most
    /// `queue_timeout`, then fails with [`ProviderError::Busy`] (503).
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    queue_timeout: Duration,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth.as_ref().map(|_| ferrostack_config::REDACTED))
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// Build the client of provider `provider_id`: connect and read timeouts, keep-alive pool,
    /// TLS settings (an unreadable `tls_cafile` is an error here, at start-up).
    pub fn new(provider_id: &str, config: &InferenceProviderConfig) -> Result<Self, ProviderError> {
        let fail = |reason: String| ProviderError::Client { provider: provider_id.to_owned(), reason };
        let certs = match &config.tls_cafile {
            Some(file) => {
                let pem = std::fs::read(file).map_err(|e| fail(format!("cannot read tls_cafile {file}: {e}")))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| fail(format!("tls_cafile {file} holds no usable PEM certificate: {e}")))?;
                Some(certs)
            }
            None => None,
        };
        let http_config = HttpConfig {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            read_timeout: Duration::from_millis(config.timeout_ms),
            max_idle_per_host: config.max_idle_connections,
            verify_tls: config.verify_tls,
            certs,
        };
        // Built once here so that a bad setting fails at start-up; this one serves the thread
        // that built it.
        let first = http_config.build().map_err(|e| fail(e.to_string()))?;
        let http = ThreadLocal::new();
        let _ = http.get_or(|| first);
        let auth = match config.api_key() {
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| fail("the api key is not a valid header value".to_owned()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let completions_url = reqwest::Url::parse(&format!("{}/chat/completions", config.url))
            .map_err(|e| fail(format!("url {}: {e}", config.url)))?;
        let plain = if plain::plain_http_allowed(completions_url.as_str(), |name| std::env::var(name).ok()) {
            let uri = completions_url.as_str().parse().map_err(|e| fail(format!("url {}: {e}", config.url)))?;
            PlainClient::new(uri, http_config.connect_timeout, http_config.read_timeout, http_config.max_idle_per_host)
        } else {
            None
        };
        Ok(Self {
            id: provider_id.to_owned(),
            kind: config.kind,
            base_url: config.url.clone(),
            completions_url,
            http,
            http_config,
            plain,
            auth,
            slots: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            max_concurrent: config.max_concurrent_requests,
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
        })
    }

    /// This thread's client (built on its first call).
    fn http(&self) -> &reqwest::Client {
        self.http.get_or(|| {
            // The same settings built at start-up: cannot fail here unless the system's TLS set-up
            // changed since; then calls go out with the default client's settings and the error
            // is logged once per thread.
            self.http_config.build().unwrap_or_else(|e| {
                tracing::error!(provider = %self.id, error = %e, "cannot build the upstream client for this thread");
                reqwest::Client::new()
            })
        })
    }

    /// The provider id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The engine type.
    pub fn kind(&self) -> InferenceProviderKind {
        self.kind
    }

    /// Whether chat completions go out on the plain-HTTP path (hyper-util's client; see
    /// [`crate::plain_http_allowed`]) rather than through reqwest.
    pub fn plain_http(&self) -> bool {
        self.plain.is_some()
    }

    /// The base URL requests go under.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET <url>/models`: the ids the provider serves (OpenAI's `{data: [{id}, ...]}`).
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        let mut req = self.http().get(format!("{}/models", self.base_url));
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let answer = self.send(req).await?;
        let bytes = answer.body.all(&self.id).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::invalid(&self.id, format!("the model list is not JSON: {e}")))?;
        let Some(data) = value.get("data").and_then(Value::as_array) else {
            return Err(ProviderError::invalid(&self.id, "the model list has no `data` list"));
        };
        Ok(data.iter().filter_map(|m| m.get("id").and_then(Value::as_str)).map(str::to_owned).collect())
    }

    fn request(&self, headers: &ForwardHeaders) -> reqwest::RequestBuilder {
        let mut req = self.http().post(self.completions_url.clone());
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        headers.apply(req)
    }

    /// Send through reqwest, and turn a non-2xx answer into [`ProviderError::Upstream`].
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, ProviderError> {
        let resp = req.send().await.map_err(|e| ProviderError::from_reqwest(&self.id, e))?;
        let answer = Answer {
            status: resp.status().as_u16(),
            json: is_json(resp.headers().get(CONTENT_TYPE)),
            body: Body::Reqwest(resp),
        };
        self.check(answer).await
    }

    async fn check(&self, answer: Answer) -> Result<Answer, ProviderError> {
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        let status = answer.status;
        let body = read_limited(answer.body, &self.id, MAX_ERROR_BODY).await?;
        Err(upstream_error(&self.id, status, &body))
    }

    /// `POST <url>/chat/completions` of `body` (JSON) with `accept` (none: reqwest's `*/*`),
    /// on the plain-HTTP path when the provider has one; a non-2xx answer is an error.
    async fn post_completions(
        &self,
        headers: &ForwardHeaders,
        accept: Option<&'static str>,
        body: Vec<u8>,
    ) -> Result<Answer, ProviderError> {
        let Some(plain) = &self.plain else {
            let mut req = self.request(headers).header(CONTENT_TYPE, "application/json");
            if let Some(accept) = accept {
                req = req.header(ACCEPT, accept);
            }
            return self.send(req.body(body)).await;
        };
        let mut map = plain::base_headers(self.auth.as_ref(), HeaderValue::from_static(accept.unwrap_or("*/*")));
        plain::forward(&mut map, "traceparent", headers.traceparent.as_ref());
        plain::forward(&mut map, "tracestate", headers.tracestate.as_ref());
        plain::forward(&mut map, "x-request-id", headers.request_id.as_ref());
        let (head, body) = plain.post(&self.id, map, body).await?;
        let answer = Answer {
            status: head.status().as_u16(),
            json: is_json(head.headers().get(CONTENT_TYPE)),
            body: Body::Plain(body),
        };
        self.check(answer).await
    }

    /// A place among the provider's concurrent calls: at once when one is free, else after a
    /// wait of at most `queue_timeout_ms`; [`ProviderError::Busy`] when none freed in time. The
    /// place is held until the permit is dropped (the answer read, or the stream ended or
    /// dropped).
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit, ProviderError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(self.queue_timeout, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ProviderError::Busy { provider: self.id.clone(), limit: self.max_concurrent }),
        }
    }

    /// Calls in flight now (holding a place).
    pub fn in_flight(&self) -> usize {
        self.max_concurrent.saturating_sub(self.slots.available_permits())
    }

    /// `POST <url>/chat/completions` for a JSON answer. `body` is the client's request with `model`
    /// already rewritten to the provider's model id; `stream` and `stream_options` are removed.
    /// The answer is the upstream's JSON object, unchanged.
    pub async fn chat_completion(&self, mut body: Value, headers: &ForwardHeaders) -> Result<Value, ProviderError> {
        if let Some(map) = body.as_object_mut() {
            map.remove("stream");
            map.remove("stream_options");
        }
        let bytes = self.chat_completion_bytes(body.to_string().into_bytes(), headers).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::invalid(&self.id, format!("the body is not JSON: {e}")))?;
        if let Some(err) = error_event(&self.id, &value) {
            return Err(err);
        }
        if !value.get("choices").is_some_and(Value::is_array) {
            return Err(ProviderError::invalid(&self.id, "the answer has no `choices` list"));
        }
        Ok(value)
    }

    /// `POST <url>/chat/completions` of `body` (JSON text, as it goes upstream) for a JSON answer:
    /// the answer's bytes as the upstream sent them (a 2xx; see [`crate::relay_completion`] for
    /// reading them). Holds a place among the provider's concurrent calls while it runs.
    pub async fn chat_completion_bytes(&self, body: Vec<u8>, headers: &ForwardHeaders) -> Result<Bytes, ProviderError> {
        let _slot = self.slot().await?;
        let started = Instant::now();
        let result = async { self.post_completions(headers, None, body).await?.body.all(&self.id).await }.await;
        log_outcome(&self.id, false, started, result.as_ref().err());
        result
    }

    /// `POST <url>/chat/completions` with `stream: true`. Fails before the first item when the
    /// upstream cannot be reached or answers with an error status; after that, failures are the
    /// last item of the stream. Each chunk is yielded as soon as its event is complete.
    pub async fn chat_completion_stream(
        &self,
        mut body: Value,
        headers: &ForwardHeaders,
    ) -> Result<ChunkStream, ProviderError> {
        if let Some(map) = body.as_object_mut() {
            map.insert("stream".to_owned(), Value::Bool(true));
        }
        let raw = self.chat_completion_stream_raw(body.to_string().into_bytes(), headers).await?;
        let provider = self.id.clone();
        Ok(raw
            .map(move |item| match item {
                Ok(RawEvent::Done) => Ok(StreamEvent::Done),
                Ok(RawEvent::Data(data)) => convert_event(&provider, &data),
                Err(e) => Err(e),
            })
            // A failure is the last item.
            .scan(false, |over, item| {
                let item = (!*over).then(|| {
                    *over = item.is_err();
                    item
                });
                std::future::ready(item)
            })
            .boxed())
    }

    /// `POST <url>/chat/completions` of `body` (JSON text with `stream: true`, as it goes
    /// upstream): the events' data as they arrive, unparsed (see [`crate::relay_chunk`]). Fails
    /// before the first item as [`UpstreamClient::chat_completion_stream`] does. Holds a place
    /// among the provider's concurrent calls until the stream ends or is dropped; dropping it
    /// closes the upstream connection (the engine stops generating).
    pub async fn chat_completion_stream_raw(
        &self,
        body: Vec<u8>,
        headers: &ForwardHeaders,
    ) -> Result<RawEventStream, ProviderError> {
        let slot = self.slot().await?;
        let started = Instant::now();
        let result = self.open_stream(body, headers, slot).await;
        log_outcome(&self.id, true, started, result.as_ref().err());
        result
    }

    async fn open_stream(
        &self,
        body: Vec<u8>,
        headers: &ForwardHeaders,
        slot: OwnedSemaphorePermit,
    ) -> Result<RawEventStream, ProviderError> {
        let answer = self.post_completions(headers, Some("text/event-stream"), body).await?;
        if answer.json {
            // An upstream that ignores `stream` or reports an error with a 200.
            let bytes = read_limited(answer.body, &self.id, MAX_ERROR_BODY).await?;
            let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
                ProviderError::invalid(&self.id, "expected an event stream, got a body that is not JSON")
            })?;
            return Err(error_event(&self.id, &value)
                .unwrap_or_else(|| ProviderError::invalid(&self.id, "expected an event stream, got a JSON body")));
        }
        Ok(raw_event_stream(self.id.clone(), answer.body.into_stream(&self.id), slot))
    }
}

fn log_outcome(provider: &str, stream: bool, started: Instant, error: Option<&ProviderError>) {
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match error {
        None => tracing::debug!(provider, stream, elapsed_ms, "upstream answered"),
        Some(e) => tracing::debug!(provider, stream, elapsed_ms, error = %e, "upstream failed"),
    }
}

/// An upstream's answer: its status, whether its content type is JSON, its unread body.
struct Answer {
    status: u16,
    json: bool,
    body: Body,
}

/// A `Content-Type` that says JSON.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

/// An answer's body, from either client; read failures are already [`ProviderError`]s.
enum Body {
    Reqwest(reqwest::Response),
    Plain(PlainBody),
}

impl Body {
    async fn chunk(&mut self, provider: &str) -> Result<Option<Bytes>, ProviderError> {
        match self {
            Self::Reqwest(resp) => resp.chunk().await.map_err(|e| ProviderError::from_reqwest(provider, e)),
            Self::Plain(body) => body.chunk().await,
        }
    }

    async fn all(self, provider: &str) -> Result<Bytes, ProviderError> {
        match self {
            Self::Reqwest(resp) => resp.bytes().await.map_err(|e| ProviderError::from_reqwest(provider, e)),
            Self::Plain(body) => body.all().await,
        }
    }

    fn into_stream(self, provider: &str) -> BoxStream<'static, Result<Bytes, ProviderError>> {
        match self {
            Self::Reqwest(resp) => {
                let provider = provider.to_owned();
                resp.bytes_stream().map(move |r| r.map_err(|e| ProviderError::from_reqwest(&provider, e))).boxed()
            }
            Self::Plain(body) => body.boxed(),
        }
    }
}

/// Read at most `limit` bytes of a body (an error page can be big; its start is enough).
async fn read_limited(mut body: Body, provider: &str, limit: usize) -> Result<Vec<u8>, ProviderError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk(provider).await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The error of an upstream answer with status `status`: an OpenAI error body
/// (`{"error": {"message", "type", "code", "param"}}`), vLLM's flat one
/// (`{"object": "error", "message", ...}`), FastAPI's `{"detail"}`, else the text.
pub(crate) fn upstream_error(provider: &str, status: u16, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    };
    let (message, error_type, code, param) = match &parsed {
        Some(Value::Object(top)) => {
            let inner = match top.get("error") {
                Some(Value::Object(e)) => Some(e),
                _ => None,
            };
            let fields = inner.unwrap_or(top);
            let message = text(fields.get("message"))
                .or_else(|| text(top.get("error")))
                .or_else(|| text(top.get("detail")))
                .unwrap_or_default();
            (message, text(fields.get("type")), text(fields.get("code")), text(fields.get("param")))
        }
        _ => (String::from_utf8_lossy(body).trim().to_owned(), None, None, None),
    };
    let mut message: String = message.chars().take(MAX_ERROR_MESSAGE).collect();
    if message.trim().is_empty() {
        message = match reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
            Some(reason) => format!("upstream returned HTTP {status} {reason}"),
            None => format!("upstream returned HTTP {status}"),
        };
    }
    ProviderError::Upstream { provider: provider.to_owned(), status, message, error_type, code, param }
}

/// An error object sent in place of an answer or chunk (`{"error": ...}` without `choices`).
pub(crate) fn error_event(provider: &str, value: &Value) -> Option<ProviderError> {
    let map = value.as_object()?;
    let is_error = (map.contains_key("error") && !map.contains_key("choices"))
        || map.get("object").and_then(Value::as_str) == Some("error");
    if !is_error {
        return None;
    }
    let code = map
        .get("error")
        .and_then(|e| e.get("code"))
        .or_else(|| map.get("code"))
        .and_then(|c| c.as_u64().or_else(|| c.as_str().and_then(|s| s.parse().ok())))
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502);
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Some(upstream_error(provider, code, &bytes))
}

/// One item of an upstream stream, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// An event's `data` (a chunk's JSON text, or an error object).
    Data(String),
    /// The upstream's `data: [DONE]`; nothing follows.
    Done,
}

/// The events of an upstream stream as they arrive. A failure (timeout, broken connection, a line
/// over the limit) is the last item. An upstream that closes without `[DONE]` just ends.
pub type RawEventStream = BoxStream<'static, Result<RawEvent, ProviderError>>;

struct StreamState {
    provider: String,
    body: BoxStream<'static, Result<Bytes, ProviderError>>,
    parser: SseParser,
    events: Vec<SseEvent>,
    queue: VecDeque<Result<RawEvent, ProviderError>>,
    /// Nothing is read any more; the queue is drained, then the stream ends.
    ended: bool,
    /// The provider's place, given back when the stream is dropped.
    _slot: OwnedSemaphorePermit,
}

fn raw_event_stream(
    provider: String,
    body: BoxStream<'static, Result<Bytes, ProviderError>>,
    slot: OwnedSemaphorePermit,
) -> RawEventStream {
    let state = StreamState {
        provider,
        body,
        parser: SseParser::new(),
        events: Vec::new(),
        queue: VecDeque::new(),
        ended: false,
        _slot: slot,
    };
    state.boxed()
}

/// The stream polled in place (an `unfold` moved the whole state into a new future per event).
impl futures_util::Stream for StreamState {
    type Item = Result<RawEvent, ProviderError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let st = self.get_mut();
        loop {
            if let Some(item) = st.queue.pop_front() {
                if matches!(item, Err(_) | Ok(RawEvent::Done)) {
                    // The last item: whatever follows a failure or [DONE] is not read.
                    st.queue.clear();
                    st.ended = true;
                }
                return Poll::Ready(Some(item));
            }
            if st.ended {
                return Poll::Ready(None);
            }
            match st.body.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => {
                    let fed = st.parser.feed(&bytes, &mut st.events);
                    st.convert_events();
                    if fed.is_err() {
                        st.queue
                            .push_back(Err(ProviderError::invalid(&st.provider, "an event stream line is too long")));
                        st.ended = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    st.convert_events();
                    st.queue.push_back(Err(e));
                    st.ended = true;
                }
                Poll::Ready(None) => {
                    st.parser.finish(&mut st.events);
                    st.convert_events();
                    st.ended = true;
                }
            }
        }
    }
}

impl StreamState {
    fn convert_events(&mut self) {
        for event in self.events.drain(..) {
            // (A chunk starts with `{`: no need to trim it to see that it is not `[DONE]`.)
            let done = !event.data.starts_with('{') && event.data.trim() == "[DONE]";
            self.queue.push_back(Ok(if done { RawEvent::Done } else { RawEvent::Data(event.data) }));
            if done {
                break;
            }
        }
        self.events.clear();
    }
}

fn convert_event(provider: &str, data: &str) -> Result<StreamEvent, ProviderError> {
    let value: Value = serde_json::from_str(data.trim())
        .map_err(|e| ProviderError::invalid(provider, format!("an event's data is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ProviderError::invalid(provider, "an event's data is not a JSON object"));
    }
    if let Some(err) = error_event(provider, &value) {
        return Err(err);
    }
    Ok(StreamEvent::Chunk(value))
}
