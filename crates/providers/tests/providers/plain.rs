//! The plain-HTTP path of the upstream client (`http://` providers that no proxy applies to)
//! against small loopback servers written here, so that each can misbehave in one exact way:
//! keep-alive reuse, connections closed while idle, refused connections, stalls, dropped answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrostack_config::{InferenceProviderConfig, InferenceProviderKind};
use ferrostack_providers::{ForwardHeaders, ProviderError, RawEvent, UpstreamClient, plain_http_allowed};
use ferrostack_testkit::Test;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;

/// What a test server does with each request it reads.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answer with JSON and keep the connection for the next request.
    KeepAlive,
    /// Answer with JSON (no `Connection: close`), then close the connection when told to
    /// ([`Server::close`]).
    CloseWhenTold,
    /// Send the head and half the body, then nothing more.
    StallMidBody,
    /// Send an event-stream head and one event, then wait until the client closes.
    OneEventThenWait,
}

struct Server {
    url: String,
    accepted: Arc<AtomicUsize>,
    /// One message per request: its head (lower-cased), and for `CloseAfterAnswer` once the
    /// connection is closed, for `OneEventThenWait` once the client closed it.
    seen: mpsc::UnboundedReceiver<String>,
    /// For `CloseWhenTold`: close the connection that last answered.
    close: Arc<Notify>,
}

async fn server(behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, seen) = mpsc::unbounded_channel();
    let count = Arc::clone(&accepted);
    let close = Arc::new(Notify::new());
    let told = Arc::clone(&close);
    ferrostack_testkit::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            ferrostack_testkit::spawn(serve(conn, behaviour, tx.clone(), Arc::clone(&told)));
        }
    });
    Server { url, accepted, seen, close }
}

/// Read one request (head and `Content-Length` body); `None` at the end of the connection.
async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                let mut more = [0u8; 4096];
                let n = conn.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            buf.drain(..end + 4 + length);
            return Some(head);
        }
        let mut more = [0u8; 4096];
        let n = conn.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

async fn serve(mut conn: TcpStream, behaviour: Behaviour, seen: mpsc::UnboundedSender<String>, close: Arc<Notify>) {
    let mut buf = Vec::new();
    while let Some(head) = read_request(&mut conn, &mut buf).await {
        let json = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
            ANSWER.len()
        );
        match behaviour {
            Behaviour::KeepAlive => {
                conn.write_all(json.as_bytes()).await.unwrap();
                let _ = seen.send(head);
            }
            Behaviour::CloseWhenTold => {
                conn.write_all(json.as_bytes()).await.unwrap();
                close.notified().await;
                drop(conn);
                let _ = seen.send(head);
                return;
            }
            Behaviour::StallMidBody => {
                let half = &json[..json.len() - ANSWER.len() / 2];
                conn.write_all(half.as_bytes()).await.unwrap();
                let _ = seen.send(head);
                // Hold the connection open, silent, until the client gives up.
                let mut rest = [0u8; 64];
                while conn.read(&mut rest).await.is_ok_and(|n| n > 0) {}
                return;
            }
            Behaviour::OneEventThenWait => {
                let event = "data: {\"choices\":[]}\n\n";
                let head_out = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                    event.len()
                );
                conn.write_all(head_out.as_bytes()).await.unwrap();
                let _ = seen.send(head);
                let mut rest = [0u8; 64];
                while conn.read(&mut rest).await.is_ok_and(|n| n > 0) {}
                let _ = seen.send("closed by the client".to_owned());
                return;
            }
        }
    }
}

fn client(url: &str, timeout_ms: u64) -> UpstreamClient {
    let mut config =
        InferenceProviderConfig::new(InferenceProviderKind::Vllm, url.to_owned(), Some("sk-test".to_owned()));
    config.timeout_ms = timeout_ms;
    let client = UpstreamClient::new("plain", &config).unwrap();
    let expected = plain_http_allowed(&format!("{url}/chat/completions"), |n| std::env::var(n).ok());
    assert_eq!(client.plain_http(), expected, "the path follows the environment's proxy settings");
    client
}

fn headers() -> ForwardHeaders {
    ForwardHeaders {
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
        tracestate: None,
        request_id: Some("req-1".to_owned()),
    }
}

async fn next(seen: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.expect("the server reports").expect("open")
}

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("plain::proxy_environment_decides_the_path", || async {
            let env = |pairs: &[(&str, &str)]| {
                let map: HashMap<String, String> =
                    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
                move |name: &str| map.get(name).cloned()
            };
            let url = "http://10.1.2.3:8000/v1/chat/completions";
            assert!(plain_http_allowed(url, env(&[])), "no proxy set");
            assert!(plain_http_allowed(url, env(&[("HTTPS_PROXY", "http://p:3128")])), "an https proxy only");
            assert!(plain_http_allowed(url, env(&[("HTTP_PROXY", "")])), "an empty proxy is none");
            for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
                assert!(!plain_http_allowed(url, env(&[(var, "http://p:3128")])), "{var} applies");
                assert!(!plain_http_allowed(url, env(&[(var, "not a url")])), "{var}: in doubt, reqwest");
                assert!(
                    !plain_http_allowed(url, env(&[(var, "http://p:3128"), ("NO_PROXY", "other.example")])),
                    "{var} with NO_PROXY for another host"
                );
                for no in ["10.1.2.3", "10.0.0.0/8", "example.org, 10.1.2.3"] {
                    assert!(
                        plain_http_allowed(url, env(&[(var, "http://p:3128"), ("no_proxy", no)])),
                        "{var}, no_proxy {no}"
                    );
                }
            }
            assert!(
                plain_http_allowed(
                    "http://llm.internal.example/v1/x",
                    env(&[("http_proxy", "http://p:3128"), ("NO_PROXY", ".example")])
                ),
                "a NO_PROXY domain suffix"
            );
            // reqwest's NO_PROXY rules (curl's): `*` is a domain pattern, it matches names, not IPs.
            let proxied = env(&[("HTTP_PROXY", "http://p:3128"), ("NO_PROXY", "*")]);
            assert!(plain_http_allowed("http://llm.internal.example/v1/x", &proxied), "`*` for a name");
            assert!(!plain_http_allowed(url, &proxied), "`*` does not exclude an IP: reqwest would proxy it");
            assert!(!plain_http_allowed("https://10.1.2.3/v1/x", env(&[])), "https keeps reqwest");
            assert!(!plain_http_allowed("http://user:pw@10.1.2.3/v1/x", env(&[])), "user info keeps reqwest");
            assert!(!plain_http_allowed("not a url", env(&[])), "unparsable keeps reqwest");
        }),
        Test::current_thread("plain::keep_alive_connection_is_reused_with_the_headers", || async {
            let mut server = server(Behaviour::KeepAlive).await;
            let client = client(&server.url, 10_000);
            for i in 0..5 {
                let answer = client.chat_completion_bytes(b"{\"model\":\"m\"}".to_vec(), &headers()).await.unwrap();
                assert_eq!(&answer[..], ANSWER.as_bytes(), "request {i}");
                let head = next(&mut server.seen).await;
                assert!(head.starts_with("post /v1/chat/completions http/1.1\r\n"), "{head}");
                for line in [
                    "authorization: bearer sk-test",
                    "content-type: application/json",
                    "accept: */*",
                    concat!("user-agent: ferrostack/", env!("CARGO_PKG_VERSION")),
                    "x-request-id: req-1",
                    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "content-length: 13",
                ] {
                    assert!(head.lines().any(|l| l == line), "{line} missing in {head}");
                }
                let host = format!("host: {}", server.url.trim_start_matches("http://").trim_end_matches("/v1"));
                assert!(head.lines().any(|l| l == host), "{host} missing in {head}");
            }
            assert_eq!(server.accepted.load(Ordering::SeqCst), 1, "one connection, kept alive");
        }),
        Test::current_thread("plain::upstream_closing_idle_connections_fails_no_request", || async {
            let mut server = server(Behaviour::CloseWhenTold).await;
            let client = client(&server.url, 10_000);
            for i in 0..5 {
                let answer = client.chat_completion_bytes(b"{}".to_vec(), &ForwardHeaders::default()).await;
                assert_eq!(&answer.unwrap_or_else(|e| panic!("request {i}: {e:?}"))[..], ANSWER.as_bytes());
                // The connection is back in the pool, idle. The server closes it; the next request
                // goes out at once, before this runtime has polled the connection's task (the
                // test's task is woken first): the request is handed to a connection that then
                // reads its end, and must be retried on a fresh one.
                server.close.notify_one();
                next(&mut server.seen).await;
            }
            assert_eq!(server.accepted.load(Ordering::SeqCst), 5, "a fresh connection each time");
        }),
        Test::plain("plain::connection_refused_is_unreachable", || async {
            let url = format!("http://{}/v1", ferrostack_testkit::unused_loopback_addr());
            let client = client(&url, 10_000);
            let err = client.chat_completion_bytes(b"{}".to_vec(), &ForwardHeaders::default()).await.unwrap_err();
            assert!(matches!(err, ProviderError::Unreachable { .. }), "{err:?}");
            assert_eq!(err.to_string(), "upstream provider plain unreachable");
            let err = client.chat_completion_stream_raw(b"{}".to_vec(), &ForwardHeaders::default()).await;
            assert!(matches!(err, Err(ProviderError::Unreachable { .. })), "{:?}", err.map(|_| ()));
        }),
        Test::plain("plain::body_stalling_mid_way_is_a_timeout", || async {
            let server = server(Behaviour::StallMidBody).await;
            let client = client(&server.url, 300);
            let err = client.chat_completion_bytes(b"{}".to_vec(), &ForwardHeaders::default()).await.unwrap_err();
            assert!(matches!(err, ProviderError::Timeout { .. }), "{err:?}");
            assert_eq!(err.to_string(), "upstream provider plain timed out");
        }),
        Test::current_thread("plain::dropping_a_stream_closes_its_connection", || async {
            let mut server = server(Behaviour::OneEventThenWait).await;
            let client = client(&server.url, 10_000);
            let mut stream =
                client.chat_completion_stream_raw(b"{}".to_vec(), &ForwardHeaders::default()).await.unwrap();
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(first, RawEvent::Data("{\"choices\":[]}".to_owned()));
            next(&mut server.seen).await;
            assert_eq!(client.in_flight(), 1, "the stream holds its place");
            drop(stream);
            assert_eq!(next(&mut server.seen).await, "closed by the client");
            assert_eq!(client.in_flight(), 0);
        }),
    ]
}
