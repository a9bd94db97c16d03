//! The connection in front of actix's HTTP/1 parser: what actix answers itself, before any
//! middleware runs, leaves in the one error shape too.
//!
//! actix-http refuses a few requests on its own, with a bare answer (no body, no content-type):
//! a head it cannot parse or broken chunked framing (`400`), more than 96 headers or a head over
//! 128 KiB (`431`), a request target over 64 KiB (`400`, its URI parser's limit), and headers not
//! complete within the header timeout (`408`). [`Front`] wraps each accepted connection and
//! replaces such an answer, as it is written, by the error-shape answer ferrostack would give:
//! `414 uri_too_long`, `431 headers_too_large`, `400 invalid_request`, `408 request_timeout`.
//!
//! How an answer is known to be actix's own: it is the last thing actix writes on the connection
//! (the connection closes right after) and has exactly the head actix writes for it, a status
//! line, `content-length: 0`, maybe `connection`, and `date`; ferrostack's own answers always carry
//! a content-type. The check on the hot path is whether the bytes written end like a bodiless
//! head (`... GMT\r\n\r\n`); only then is the head looked at.
//!
//! Which answer it becomes: a `400` or `431` for a request line longer than actix's URI limit is
//! a too-long URI (`414`). For that the reading side keeps two numbers for the request being
//! read: bytes read since the last answer was written, and where its first line ended (found by
//! scanning only until the first line feed). No request bytes are kept.
//!
//! A `400` that follows an answer with no byte read since is actix answering a second time for a
//! request ferrostack has already answered (a chunked body broken after the handler started: the
//! handler's read fails and it answers `400` in the shape itself); that second answer is dropped.
//!
//! After the replacement the connection's write side is shut down and what the client still sends
//! is read and thrown away for a short while before the connection is closed: closing with unread
//! bytes would reset the connection, and the client could lose the answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ferrostack_config::LimitsConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ApiError, Code};

/// Longest request target actix's URI parser accepts (the `http` crate's limit).
const ACTIX_MAX_URI: usize = u16::MAX as usize - 1;
/// Largest request head actix buffers before answering 431.
const ACTIX_MAX_HEAD: usize = 131_072;
/// Most header fields actix parses before answering 431.
const ACTIX_MAX_HEADERS: usize = 96;
/// How long, and how many bytes, the client's remaining input is read and dropped after a
/// replaced answer, before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 1 << 20;

/// The bodiless heads actix writes for the requests it refuses: status code and reason phrase.
const BARE: &[(u16, &[u8])] =
    &[(400, b"Bad Request"), (408, b"Request Timeout"), (431, b"Request Header Fields Too Large")];

/// What [`Front`] needs of `server.limits` to word its answers.
#[derive(Debug, Clone, Copy)]
pub struct FrontLimits {
    max_uri_bytes: usize,
    max_header_bytes: usize,
    header_timeout_seconds: u64,
}

impl From<&LimitsConfig> for FrontLimits {
    fn from(limits: &LimitsConfig) -> Self {
        Self {
            max_uri_bytes: limits.max_uri_bytes,
            max_header_bytes: limits.max_header_bytes,
            header_timeout_seconds: limits.header_timeout_seconds,
        }
    }
}

/// A client connection as actix's HTTP/1 dispatcher reads and writes it; see the module
/// documentation.
#[derive(Debug)]
pub struct Front<T> {
    io: T,
    limits: FrontLimits,
    /// Bytes read since the last write (the request being read, as far as is known).
    read: usize,
    /// Where the first line of those bytes ended (the request line's length), once seen.
    line: Option<usize>,
    /// The verdict on an actix answer found behind other answers in one write, kept until the
    /// answers before it are written.
    pending: Option<Verdict>,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// Bytes pass through.
    Serving,
    /// Writing the replacement of actix's answer of `answered` bytes.
    Replacing { bytes: Vec<u8>, at: usize, answered: usize },
    /// The replacement is out and the write side shut; reading what the client still sends.
    Lingering { answered: usize, until: Pin<Box<tokio::time::Sleep>>, drained: usize },
    /// Done: the connection closes; whatever actix still writes is dropped.
    Closed,
}

/// What an actix answer becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    UriTooLong,
    TooManyHeaders,
    HeadTooLarge,
    Malformed,
    HeaderTimeout,
    /// A second answer to a request already answered: dropped.
    Drop,
}

impl<T> Front<T> {
    /// Wrap an accepted connection.
    pub fn new(io: T, limits: FrontLimits) -> Self {
        Self { io, limits, read: 0, line: None, pending: None, phase: Phase::Serving }
    }

    /// What actix's answer with `status` means for the request being read.
    fn verdict(&self, status: u16) -> Verdict {
        // The request line is over actix's URI limit: either it ended past it, or it had not
        // ended when actix gave up.
        let long_line = match self.line {
            Some(len) => len > ACTIX_MAX_URI,
            None => self.read > ACTIX_MAX_URI,
        };
        match status {
            408 => Verdict::HeaderTimeout,
            _ if long_line => Verdict::UriTooLong,
            431 if self.read >= ACTIX_MAX_HEAD => Verdict::HeadTooLarge,
            431 => Verdict::TooManyHeaders,
            _ if self.read == 0 => Verdict::Drop,
            _ => Verdict::Malformed,
        }
    }

    /// The answer for `verdict`, in the error shape, head and body; empty for [`Verdict::Drop`].
    fn answer(&self, verdict: Verdict, version: &[u8], date: &[u8]) -> Vec<u8> {
        let limits = &self.limits;
        let err = match verdict {
            Verdict::Drop => return Vec::new(),
            Verdict::UriTooLong => ApiError::new(
                Code::UriTooLong,
                format!(
                    "the request target is longer than the limit of {} bytes (server.limits.max_uri_bytes)",
                    limits.max_uri_bytes
                ),
            ),
            Verdict::TooManyHeaders => ApiError::new(
                Code::HeadersTooLarge,
                format!("the request has more than {ACTIX_MAX_HEADERS} header fields"),
            ),
            Verdict::HeadTooLarge => ApiError::new(
                Code::HeadersTooLarge,
                format!(
                    "the request head is larger than {} KiB; the headers may be at most {} bytes (server.limits.max_header_bytes)",
                    ACTIX_MAX_HEAD / 1024,
                    limits.max_header_bytes
                ),
            ),
            Verdict::Malformed => ApiError::invalid_request(
                "malformed HTTP request: the request line, a header or the body's framing (content-length, chunked encoding) is not valid HTTP/1.1",
                None,
            ),
            Verdict::HeaderTimeout => ApiError::new(
                Code::RequestTimeout,
                format!(
                    "the request headers did not arrive within {} seconds (server.limits.header_timeout_seconds)",
                    limits.header_timeout_seconds
                ),
            ),
        };
        tracing::info!(code = err.code().as_str(), reason = %err, "request refused before routing");
        let body = err.json_body();
        let status = err.status();
        let mut out = Vec::with_capacity(160 + body.len());
        out.extend_from_slice(version);
        out.extend_from_slice(
            format!(" {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("")).as_bytes(),
        );
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        out.extend_from_slice(b"connection: close\r\ncontent-type: application/json\r\n");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

/// Where actix's own bodiless answer starts in `buf` (which it ends), its status, its HTTP
/// version and its date header line; `None` when `buf` does not end with one.
fn bare_answer(buf: &[u8]) -> Option<(usize, u16, &[u8], &[u8])> {
    // `date: Tue, 01 Dec 2026 15:00:00 GMT\r\n` then the blank line.
    const DATE_LINE: usize = "date: ".len() + 29 + 2;
    let date_at = buf.len().checked_sub(DATE_LINE + 2)?;
    let date = &buf[date_at..buf.len() - 2];
    if !date.starts_with(b"date: ") || !is_http_date(&date[6..date.len() - 2]) {
        return None;
    }
    let mut end = date_at;
    for connection in [&b"connection: close\r\n"[..], b"connection: keep-alive\r\n"] {
        if buf[..end].ends_with(connection) {
            end -= connection.len();
            break;
        }
    }
    let length = b"\r\ncontent-length: 0\r\n";
    if !buf[..end].ends_with(length) {
        return None;
    }
    end -= length.len();
    for &(code, reason) in BARE {
        let line = "HTTP/1.1 400 ".len() + reason.len();
        let Some(start) = end.checked_sub(line) else { continue };
        let status_line = &buf[start..end];
        let version = &status_line[..8];
        if (version == b"HTTP/1.1" || version == b"HTTP/1.0")
            && status_line[8] == b' '
            && status_line[9..12] == *code.to_string().as_bytes()
            && status_line[12] == b' '
            && &status_line[13..] == reason
        {
            return Some((start, code, version, date));
        }
    }
    None
}

/// `Tue, 01 Dec 2026 15:00:00 GMT`: the shape of an HTTP date, as actix writes it.
fn is_http_date(v: &[u8]) -> bool {
    v.len() == 29
        && v[3] == b','
        && v[4] == b' '
        && v[7] == b' '
        && v[11] == b' '
        && v[16] == b' '
        && v[19] == b':'
        && v[22] == b':'
        && v.ends_with(b" GMT")
}

impl<T: AsyncRead + Unpin> AsyncRead for Front<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        // Until the first line feed of a request, look for it; afterwards only count.
        if this.line.is_none()
            && let Some(at) = memchr::memchr(b'\n', new)
        {
            this.line = Some(this.read.saturating_add(at));
        }
        this.read = this.read.saturating_add(new.len());
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Front<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if matches!(this.phase, Phase::Serving) {
            // The hot path: an answer that does not end like a bodiless head passes through.
            let bare = if buf.ends_with(b" GMT\r\n\r\n") { bare_answer(buf) } else { None };
            let Some((start, status, version, date)) = bare else {
                return this.pass(cx, buf);
            };
            let verdict = this.pending.take().unwrap_or_else(|| this.verdict(status));
            if start > 0 {
                // Answers to earlier requests first; actix's own follows them. An answer
                // written after the last read means the next 400 answers a request already
                // answered.
                this.pending =
                    Some(if status == 400 && verdict != Verdict::UriTooLong { Verdict::Drop } else { verdict });
                return this.pass(cx, &buf[..start]);
            }
            let bytes = this.answer(verdict, version, date);
            this.phase = Phase::Replacing { bytes, at: 0, answered: buf.len() };
        }
        this.finish_answer(cx, buf.len())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.phase {
            Phase::Closed => Poll::Ready(Ok(())),
            _ => Pin::new(&mut self.io).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.phase {
            // Already shut down after the replaced answer.
            Phase::Closed => Poll::Ready(Ok(())),
            _ => Pin::new(&mut self.io).poll_shutdown(cx),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Front<T> {
    /// Write through; a write ends the request being read.
    fn pass(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.read = 0;
        self.line = None;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    /// Write the replacement, shut the write side, linger; then report actix's answer (at most
    /// `offered` bytes) as written.
    fn finish_answer(&mut self, cx: &mut Context<'_>, offered: usize) -> Poll<io::Result<usize>> {
        loop {
            match &mut self.phase {
                Phase::Serving => unreachable!("finish_answer is called once an answer is being replaced"),
                Phase::Closed => return Poll::Ready(Ok(offered)),
                Phase::Replacing { bytes, at, answered } => {
                    while *at < bytes.len() {
                        match ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*at..]))? {
                            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                            n => *at += n,
                        }
                    }
                    ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                    ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                    let answered = *answered;
                    self.phase = Phase::Lingering { answered, until: Box::pin(tokio::time::sleep(LINGER)), drained: 0 };
                }
                Phase::Lingering { answered, until, drained } => {
                    let answered = (*answered).min(offered);
                    let mut scratch = [0u8; 4096];
                    let done = loop {
                        if until.as_mut().poll(cx).is_ready() || *drained >= LINGER_MAX_BYTES {
                            break true;
                        }
                        let mut sink = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut self.io).poll_read(cx, &mut sink) {
                            Poll::Pending => break false,
                            Poll::Ready(Ok(())) if sink.filled().is_empty() => break true,
                            Poll::Ready(Ok(())) => *drained += sink.filled().len(),
                            Poll::Ready(Err(_)) => break true,
                        }
                    };
                    if !done {
                        return Poll::Pending;
                    }
                    self.phase = Phase::Closed;
                    return Poll::Ready(Ok(answered));
                }
            }
        }
    }
}
