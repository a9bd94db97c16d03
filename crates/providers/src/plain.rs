//! The upstream call for a plain-HTTP provider (`http://`, no proxy applies): hyper-util's pooled
//! HTTP/1.1 client over its TCP connector, one per worker thread, without reqwest's per-request
//! layers (URL conversion, redirect and retry layers, proxy matching, extension maps): those were
//! about three quarters of the upstream call's instructions (docs/benchmarks.md, issue 16).
//!
//! What the caller sees is the same as through reqwest: the same headers, the connect timeout,
//! the read timeout (until the answer's head, then between body chunks), keep-alive connections
//! (at most `max_idle_connections` idle), a request on a pooled connection the upstream had
//! closed retried once on a fresh one when it cannot have been processed, and the same
//! [`ProviderError`] classes. https providers and those reached through a proxy keep reqwest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thread_local::ThreadLocal;
use tokio::time::{Instant, Sleep};

use crate::error::{Cause, ProviderError, TimedOut};

/// How long an idle pooled connection is kept (reqwest's default, kept as it was).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections (reqwest's default, kept as it was).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// Whether calls to `url` may take the plain-HTTP path: an `http://` URL without user info, and
/// no proxy that reqwest would use for it. `var` reads an environment variable (the process
/// environment in use; a map in tests). When in doubt, no: reqwest is always correct, only slower.
///
/// A proxy applies when `HTTP_PROXY`/`http_proxy` or `ALL_PROXY`/`all_proxy` is set (not empty)
/// and `NO_PROXY`/`no_proxy` does not exclude the URL's host (curl's rules, as reqwest reads them).
pub fn plain_http_allowed(url: &str, var: impl Fn(&str) -> Option<String>) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    if parsed.scheme() != "http" || !parsed.username().is_empty() || parsed.password().is_some() {
        return false;
    }
    let Ok(uri) = parsed.as_str().parse::<Uri>() else { return false };
    if uri.host().is_none() {
        return false;
    }
    let first = |names: [&str; 2]| names.into_iter().find_map(|n| var(n).filter(|v| !v.trim().is_empty()));
    if first(["HTTP_PROXY", "http_proxy"]).is_none() && first(["ALL_PROXY", "all_proxy"]).is_none() {
        return true;
    }
    // A proxy is set: plain only when NO_PROXY excludes this host. The proxy value here is a
    // stand-in, so that the answer depends on NO_PROXY alone (not on whether the set value parses).
    let Some(no_proxy) = first(["NO_PROXY", "no_proxy"]) else { return false };
    Matcher::builder().http("http://proxy.invalid:1").no(no_proxy).build().intercept(&uri).is_none()
}

/// The plain-HTTP client of one provider.
pub(crate) struct PlainClient {
    /// `<base_url>/chat/completions`.
    uri: Uri,
    /// Its `Host` header, built once (hyper-util would format it for every request).
    host: HeaderValue,
    /// One pooled client per thread that calls the provider: a connection is driven by a task on
    /// the thread that opened it, and only that thread's calls use it (see `UpstreamClient::http`).
    clients: ThreadLocal<Client<HttpConnector, Full<Bytes>>>,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_idle_per_host: usize,
}

impl PlainClient {
    /// `None` when `uri` has no authority usable as a `Host` header (then reqwest is used).
    pub(crate) fn new(
        uri: Uri,
        connect_timeout: Duration,
        read_timeout: Duration,
        max_idle_per_host: usize,
    ) -> Option<Self> {
        // The authority of a URL without user info, its default port already dropped by the URL
        // parser: what hyper-util would send (`host[:port]`).
        let host = HeaderValue::from_str(uri.authority()?.as_str()).ok()?;
        Some(Self { uri, host, clients: ThreadLocal::new(), connect_timeout, read_timeout, max_idle_per_host })
    }

    fn client(&self) -> &Client<HttpConnector, Full<Bytes>> {
        self.clients.get_or(|| {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(self.connect_timeout));
            connector.set_nodelay(true);
            connector.set_keepalive(Some(TCP_KEEPALIVE));
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(self.max_idle_per_host)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(connector)
        })
    }

    /// `POST` `body` to the completions URL with `headers` (the caller's: authorization,
    /// forwarded ones, content type, accept), the user agent added. The answer's head, within
    /// the read timeout; its body is read with [`PlainBody`].
    pub(crate) async fn post(
        &self,
        provider: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(Response<()>, PlainBody), ProviderError> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = headers;
        req.headers_mut().insert(HOST, self.host.clone());
        // One timer for the call: until the answer's head, then between body chunks.
        let mut sleep = Box::pin(tokio::time::sleep(self.read_timeout));
        let mut sent = self.client().request(req);
        let resp = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = Pin::new(&mut sent).poll(cx) {
                return Poll::Ready(result.map_err(|e| send_error(provider, e)));
            }
            ready!(sleep.as_mut().poll(cx));
            Poll::Ready(Err(ProviderError::Timeout { provider: provider.to_owned(), source: Box::new(TimedOut) }))
        })
        .await?;
        drop(sent);
        sleep.as_mut().reset(Instant::now() + self.read_timeout);
        let (head, body) = resp.into_parts();
        let body = PlainBody { provider: provider.to_owned(), body, timeout: self.read_timeout, sleep, done: false };
        Ok((Response::from_parts(head, ()), body))
    }
}

/// The headers every plain call carries, built once per call by the caller.
pub(crate) fn base_headers(auth: Option<&HeaderValue>, accept: HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(USER_AGENT, HeaderValue::from_static(concat!("ferrostack/", env!("CARGO_PKG_VERSION"))));
    headers.insert(ACCEPT, accept);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(auth) = auth {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    headers
}

/// Add a forwarded header (a value that is not a valid header value is dropped).
pub(crate) fn forward(headers: &mut HeaderMap, name: &'static str, value: Option<&String>) {
    if let Some(v) = value
        && let Ok(v) = HeaderValue::from_str(v)
    {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// A failure to get an answer's head: a timeout anywhere in the chain (the connect timeout, the
/// system's) is [`ProviderError::Timeout`]; anything else (refused, reset, closed before the
/// answer) is [`ProviderError::Unreachable`], as reqwest's errors were classified.
fn send_error(provider: &str, e: hyper_util::client::legacy::Error) -> ProviderError {
    let provider = provider.to_owned();
    let source: Cause = Box::new(e);
    if is_timeout(&*source) {
        ProviderError::Timeout { provider, source }
    } else {
        ProviderError::Unreachable { provider, source }
    }
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.is::<TimedOut>()
            || err.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)
            || err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// An answer's body, read chunk by chunk with the read timeout between chunks. Dropped before
/// its end, it closes the connection (hyper does not pool a connection with an unread answer).
pub(crate) struct PlainBody {
    provider: String,
    body: Incoming,
    timeout: Duration,
    /// Fires when no chunk came for `timeout`; re-armed after each chunk.
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl PlainBody {
    fn broken(&mut self, source: Cause) -> ProviderError {
        self.done = true;
        ProviderError::Broken { provider: std::mem::take(&mut self.provider), source }
    }

    /// The next chunk of data (trailers are skipped), `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, ProviderError> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The whole body.
    pub(crate) async fn all(mut self) -> Result<Bytes, ProviderError> {
        let Some(first) = self.chunk().await? else { return Ok(Bytes::new()) };
        let Some(second) = self.chunk().await? else { return Ok(first) };
        let mut all = BytesMut::with_capacity(first.len() + second.len());
        all.extend_from_slice(&first);
        all.extend_from_slice(&second);
        while let Some(more) = self.chunk().await? {
            all.extend_from_slice(&more);
        }
        Ok(all.freeze())
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ProviderError>> {
        if self.done {
            return Poll::Ready(Ok(None));
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = Instant::now() + self.timeout;
                    self.sleep.as_mut().reset(deadline);
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Ok(Some(data))),
                        _ => {}
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let timed_out = e.is_timeout();
                    let err = self.broken(Box::new(e));
                    return Poll::Ready(Err(match err {
                        ProviderError::Broken { provider, source } if timed_out => {
                            ProviderError::Timeout { provider, source }
                        }
                        other => other,
                    }));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(Ok(None));
                }
                Poll::Pending => {
                    ready!(self.sleep.as_mut().poll(cx));
                    self.done = true;
                    let provider = std::mem::take(&mut self.provider);
                    return Poll::Ready(Err(ProviderError::Timeout { provider, source: Box::new(TimedOut) }));
                }
            }
        }
    }
}

impl Stream for PlainBody {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx).map(Result::transpose)
    }
}
