//! A fast OpenAI-compatible mock upstream for ferrostack's benchmarks.
//!
//! - `GET /v1/models`: the configured model ids.
//! - `POST /v1/chat/completions`: one choice of `--words` words (or a random count up to
//!   `--words-max`), as a `chat.completion` or, with `"stream": true`, as SSE: a role chunk, one
//!   chunk per word (`--chunk-delay-ms` apart), a final chunk with `finish_reason: stop`, then
//!   `data: [DONE]`. Every chunk of a stream carries the same id.
//! - `GET /health`: `{"status": "healthy", "type": "openai-mock"}`.
//!
//! `--latency-ms` delays every answer before its headers (uniformly random up to
//! `--latency-max-ms` when that is larger). Completion ids are unique per process
//! (`chatcmpl-<random prefix><counter>`), so every answer stored by ferrostack is its own row.
//!
//! The work per request is kept small (no JSON tree for the answer, pre-rendered model list) so
//! that the mock is never what limits a benchmark; `loadgen` against it directly measures that.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use serde::Deserialize;

/// Command-line settings of the mock.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "mock-upstream", about = "OpenAI-compatible mock upstream for benchmarks")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port; 0 picks a free one (the bound address is printed as `listening on http://ADDR`).
    #[arg(long, default_value_t = 8081)]
    pub port: u16,
    /// Worker threads; 0 means one per CPU.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Words per answer.
    #[arg(long, default_value_t = 50)]
    pub words: usize,
    /// When larger than `--words`: each answer has a random number of words in [words, words-max].
    #[arg(long)]
    pub words_max: Option<usize>,
    /// Delay between two chunks of a stream, in milliseconds (fractions allowed).
    #[arg(long, default_value_t = 0.0)]
    pub chunk_delay_ms: f64,
    /// Delay before every answer's headers, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub latency_ms: f64,
    /// When larger than `--latency-ms`: the delay is uniformly random in [latency-ms, latency-max-ms].
    #[arg(long)]
    pub latency_max_ms: Option<f64>,
    /// Model ids listed by `/v1/models` (comma-separated). Any model is answered.
    #[arg(long, value_delimiter = ',', default_value = "mock-model")]
    pub models: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_owned(),
            port: 0,
            workers: 1,
            words: 50,
            words_max: None,
            chunk_delay_ms: 0.0,
            latency_ms: 0.0,
            latency_max_ms: None,
            models: vec!["mock-model".to_owned()],
        }
    }
}

const VOCAB: [&str; 16] = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while", "rust", "servers", "answer", "many",
    "requests", "per", "second",
];

#[derive(Debug)]
struct State {
    config: Config,
    models_body: Bytes,
    id_prefix: u64,
    next_id: AtomicU64,
    rng: AtomicU64,
}

impl State {
    fn new(config: Config) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let data: Vec<_> = config
            .models
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "model", "created": 1_234_567_890, "owned_by": "mock"}))
            .collect();
        let models_body = Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string());
        State {
            config,
            models_body,
            id_prefix: splitmix(seed) & 0xffff_ffff,
            next_id: AtomicU64::new(0),
            rng: seed.into(),
        }
    }

    fn random(&self) -> u64 {
        splitmix(self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed))
    }

    fn id(&self) -> String {
        format!("chatcmpl-{:08x}{:x}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn words(&self) -> usize {
        words_for(&self.config, self.random())
    }

    fn latency(&self) -> Duration {
        latency_for(&self.config, self.random())
    }
}

/// Words in one answer, given a random number: `words`, or uniformly in [words, words-max].
pub fn words_for(config: &Config, random: u64) -> usize {
    let min = config.words;
    match config.words_max {
        Some(max) if max > min => min + (random % (max - min + 1) as u64) as usize,
        _ => min,
    }
}

/// Delay before one answer, given a random number: `latency-ms`, or uniformly in
/// [latency-ms, latency-max-ms].
pub fn latency_for(config: &Config, random: u64) -> Duration {
    let min = config.latency_ms.max(0.0);
    let ms = match config.latency_max_ms {
        Some(max) if max > min => min + (max - min) * (random >> 11) as f64 / (1u64 << 53) as f64,
        _ => min,
    };
    Duration::from_secs_f64(ms / 1000.0)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    #[serde(default)]
    stream: bool,
}

fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}
    }))
}

async fn models(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "application/json")).body(state.models_body.clone())
}

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(r#"{"status":"healthy","type":"openai-mock"}"#)
}

async fn chat_completions(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(actix_web::http::StatusCode::BAD_REQUEST, &format!("invalid request body: {e}")),
    };
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let id = state.id();
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // A JSON string literal of the model, escaped once.
    let model = serde_json::Value::String(request.model).to_string();
    let words = state.words();
    let offset = (state.random() % VOCAB.len() as u64) as usize;
    let word = |i: usize| VOCAB[(offset + i) % VOCAB.len()];
    if request.stream {
        stream(&state, &id, created, &model, words, word)
    } else {
        let mut content = String::with_capacity(words * 8);
        for i in 0..words {
            if i > 0 {
                content.push(' ');
            }
            content.push_str(word(i));
        }
        let prompt_tokens = body.len() / 4;
        let body = format!(
            concat!(
                r#"{{"id":"{id}","object":"chat.completion","created":{created},"model":{model},"#,
                r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"#,
                r#""logprobs":null,"finish_reason":"stop"}}],"#,
                r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t}}}}}"#
            ),
            id = id,
            created = created,
            model = model,
            content = content,
            p = prompt_tokens,
            c = words,
            t = prompt_tokens + words,
        );
        HttpResponse::Ok().insert_header((CONTENT_TYPE, "application/json")).body(body)
    }
}

fn chunk(id: &str, created: u64, model: &str, delta: &str, finish: &str) -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"data: {{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":{model},"#,
            r#""choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#,
            "\n\n"
        ),
        id = id,
        created = created,
        model = model,
        delta = delta,
        finish = finish,
    ))
}

fn stream(
    state: &State,
    id: &str,
    created: u64,
    model: &str,
    words: usize,
    word: impl Fn(usize) -> &'static str,
) -> HttpResponse {
    let mut chunks = Vec::with_capacity(words + 3);
    chunks.push(chunk(id, created, model, r#"{"role":"assistant","content":""}"#, "null"));
    for i in 0..words {
        let text = if i + 1 < words { format!("{} ", word(i)) } else { word(i).to_owned() };
        chunks.push(chunk(id, created, model, &format!(r#"{{"content":"{text}"}}"#), "null"));
    }
    chunks.push(chunk(id, created, model, "{}", r#""stop""#));
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let response = HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .take();
    let delay = Duration::from_secs_f64(state.config.chunk_delay_ms.max(0.0) / 1000.0);
    let mut response = response;
    if delay.is_zero() {
        response.streaming(futures_util::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>)))
    } else {
        let items = chunks.into_iter().enumerate();
        response.streaming(futures_util::stream::unfold(items, move |mut items| async move {
            let (i, chunk) = items.next()?;
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, Infallible>(chunk), items))
        }))
    }
}

/// Bind the mock and return the server (to be awaited or spawned) and the addresses it listens
/// on. Signals are handled by the caller.
pub fn bind(config: Config) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        config.workers
    };
    let (host, port) = (config.host.clone(), config.port);
    let state = web::Data::new(State::new(config));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/v1/models", web::get().to(models))
            .route("/v1/chat/completions", web::post().to(chat_completions))
            .route("/health", web::get().to(health))
    })
    .workers(workers)
    .backlog(4096)
    .disable_signals()
    .bind((host.as_str(), port))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}
