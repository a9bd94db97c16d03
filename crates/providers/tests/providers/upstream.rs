//! The upstream client against a fake OpenAI-compatible server: answers, streams, failures.

use std::time::{Duration, Instant};

use ferrostack_providers::{ForwardHeaders, ProviderError, StreamAssembler, StreamEvent, UpstreamClient};
use ferrostack_testkit::Test;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::{chunks, collect, hello_chunks, nothing_listens, upstream};

fn body(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "secret prompt"}], "stream": stream,
           "some_vendor_field": {"kept": true}})
}

fn assert_upstream(err: &ProviderError, status: u16, message: &str, case: &str) {
    assert_eq!(crate::support::status(err), status, "{case}: {err:?}");
    assert!(err.to_string().contains(message), "{case}: {err}");
}

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("upstream::list_models_reads_the_openai_model_list", || async {
            let fake = ferrostack_testkit::upstream::FakeUpstream::start().await;
            let config = ferrostack_config::InferenceProviderConfig::new(
                ferrostack_config::InferenceProviderKind::Vllm,
                fake.base_url.clone(),
                None,
            );
            let client = UpstreamClient::new("fake", &config).unwrap();
            assert_eq!(client.list_models().await.unwrap(), ["echo", "json"]);
            fake.set_models(None);
            let err = client.list_models().await.unwrap_err();
            assert_eq!(crate::support::status(&err), 502, "a provider that fails to list: {err}");
            fake.stop().await;
            assert!(
                matches!(client.list_models().await, Err(ProviderError::Unreachable { .. })),
                "a provider that is down"
            );
        }),
        Test::plain("echo::answers_from_the_request_as_json_and_sse_with_usage", || async {
            use ferrostack_providers::echo;
            let request = json!({"model": "echo", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]}]});
            let answer = echo::completion(&request);
            assert_eq!(answer["choices"][0]["message"]["content"], "echo: hello there");
            assert_eq!(answer["usage"], json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}));
            assert_eq!(echo::completion(&request), answer, "deterministic");
            let (events, err) = collect(echo::chunk_stream(&request)).await;
            assert!(err.is_none(), "{err:?}");
            assert_eq!(events.last(), Some(&StreamEvent::Done));
            let mut assembler = StreamAssembler::new("echo");
            for c in chunks(&events) {
                assembler.push(&c);
            }
            let assembled = assembler.finish().unwrap();
            assert_eq!(assembled["choices"][0]["message"]["content"], "echo: hello there", "the pieces join back");
            assert_eq!(assembled["usage"], answer["usage"], "the usage chunk");
        }),
        Test::plain("upstream::json_completion_with_bearer_and_trace_headers", || async {
            let up = upstream().await;
            let client = up.client("json", Some("sk-test-key"));
            let headers = ForwardHeaders {
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
                tracestate: Some("congo=t61rcWkgMzE".to_owned()),
                request_id: Some("req-1".to_owned()),
            };
            let answer = client.chat_completion(body("meta/llama", true), &headers).await.unwrap();
            assert_eq!(answer["id"], json!("chatcmpl-json"));
            assert_eq!(answer["model"], json!("meta/llama"), "the body is sent as given");
            let seen = up.last_seen();
            assert_eq!(seen.path, "/json/v1/chat/completions");
            assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-test-key"));
            assert_eq!(seen.traceparent, headers.traceparent);
            assert_eq!(seen.tracestate, headers.tracestate);
            assert_eq!(seen.request_id.as_deref(), Some("req-1"));
            assert_eq!(seen.body["some_vendor_field"], json!({"kept": true}), "unknown fields pass through");
            assert!(seen.body.get("stream").is_none(), "the JSON path never asks for a stream: {}", seen.body);
            assert!(!format!("{client:?}").contains("sk-test-key"), "the key never prints: {client:?}");
        }),
        Test::plain("upstream::no_key_no_authorization_no_trace", || async {
            let up = upstream().await;
            up.client("json", None).chat_completion(body("m", false), &ForwardHeaders::default()).await.unwrap();
            let seen = up.last_seen();
            assert_eq!(seen.authorization, None);
            assert_eq!(seen.traceparent, None);
            assert_eq!(seen.tracestate, None);
        }),
        Test::plain("upstream::stream_split_at_awkward_boundaries", || async {
            let up = upstream().await;
            let client = up.client("sse", Some("k"));
            let stream = client.chat_completion_stream(body("m", false), &ForwardHeaders::default()).await.unwrap();
            let (events, err) = collect(stream).await;
            assert!(err.is_none(), "{err:?}");
            assert_eq!(chunks(&events), hello_chunks(), "every chunk, intact, in order");
            assert_eq!(events.last(), Some(&StreamEvent::Done));
            let seen = up.last_seen();
            assert_eq!(seen.body["stream"], json!(true));
            assert_eq!(seen.accept.as_deref(), Some("text/event-stream"));
            let mut asm = StreamAssembler::new("llama");
            chunks(&events).iter().for_each(|c| asm.push(c));
            let done = asm.finish().unwrap();
            assert_eq!(done["choices"][0]["message"]["content"], json!("Héllo wörld 🌍"));
            assert_eq!(done["model"], json!("llama"));
        }),
        Test::plain("upstream::stream_yields_chunks_before_the_answer_is_complete", || async {
            let up = upstream().await;
            let client = up.client("gated", None);
            let mut stream = client.chat_completion_stream(body("m", true), &ForwardHeaders::default()).await.unwrap();
            // The fake sends the rest only after the first chunk arrived here.
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(first, StreamEvent::Chunk(hello_chunks()[1].clone()));
            up.fake.release_one();
            let (events, err) = collect(stream).await;
            assert!(err.is_none(), "{err:?}");
            assert_eq!(events, vec![StreamEvent::Chunk(hello_chunks()[3].clone()), StreamEvent::Done]);
        }),
        Test::plain("upstream::tool_call_fragments_across_chunks", || async {
            let up = upstream().await;
            let stream = up
                .client("tools", None)
                .chat_completion_stream(body("m", true), &ForwardHeaders::default())
                .await
                .unwrap();
            let (events, err) = collect(stream).await;
            assert!(err.is_none(), "{err:?}");
            let mut asm = StreamAssembler::new("llama");
            chunks(&events).iter().for_each(|c| asm.push(c));
            let done = asm.finish().unwrap();
            let choice = &done["choices"][0];
            assert_eq!(choice["finish_reason"], json!("tool_calls"));
            assert_eq!(choice["message"]["content"], Value::Null);
            assert_eq!(
                choice["message"]["tool_calls"],
                json!([{"id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]),
                "fragments joined, the call without an id dropped"
            );
        }),
        Test::plain("upstream::logprobs_and_usage", || async {
            let up = upstream().await;
            let stream = up
                .client("logprobs", None)
                .chat_completion_stream(body("m", true), &ForwardHeaders::default())
                .await
                .unwrap();
            let (events, err) = collect(stream).await;
            assert!(err.is_none(), "{err:?}");
            let mut asm = StreamAssembler::new("llama");
            chunks(&events).iter().for_each(|c| asm.push(c));
            let done = asm.finish().unwrap();
            let tokens: Vec<&Value> =
                done["choices"][0]["logprobs"]["content"].as_array().unwrap().iter().map(|e| &e["token"]).collect();
            assert_eq!(tokens, [&json!("a"), &json!("b")]);
            assert_eq!(done["choices"][0]["finish_reason"], json!("length"));
            assert_eq!(done["usage"]["total_tokens"], json!(3));
        }),
        Test::plain("upstream::error_statuses_carry_the_upstream_message", || async {
            let up = upstream().await;
            let cases = [
                ("status-400", 400, "'messages' must not be empty"),
                ("status-401", 401, "Incorrect API key provided"),
                ("status-429", 429, "Rate limit reached"),
                ("status-500", 502, "The server had an error"),
                ("text-500", 502, "engine crashed"),
                ("vllm-400", 400, "max_tokens is too large"),
                ("unknown-scenario", 404, "no scenario unknown-scenario"),
            ];
            for (scenario, status, message) in cases {
                let client = up.client(scenario, Some("k"));
                let err = client.chat_completion(body("m", false), &ForwardHeaders::default()).await.unwrap_err();
                assert_upstream(&err, status, message, scenario);
                let err = client.chat_completion_stream(body("m", true), &ForwardHeaders::default()).await;
                let err = err.map(|_| ()).unwrap_err();
                assert_upstream(&err, status, message, &format!("{scenario} (stream)"));
            }
            let client = up.client("status-429", None);
            let err = client.chat_completion(body("m", false), &ForwardHeaders::default()).await.unwrap_err();
            let ProviderError::Upstream { error_type, provider, .. } = &err else { panic!("{err:?}") };
            assert_eq!(error_type.as_deref(), Some("rate_limit_exceeded"));
            assert_eq!(provider, "fake");
            assert_eq!(err.to_string(), "Rate limit reached", "a 4xx message is the upstream's, as is");
            let err = up.client("status-500", None).chat_completion(body("m", false), &Default::default()).await;
            assert_eq!(
                err.unwrap_err().to_string(),
                "upstream provider fake failed (HTTP 500): The server had an error"
            );
        }),
        Test::plain("upstream::garbage_is_an_invalid_response", || async {
            let up = upstream().await;
            for scenario in ["garbage", "no-choices"] {
                let err = up.client(scenario, None).chat_completion(body("m", false), &Default::default()).await;
                let err = err.unwrap_err();
                assert!(matches!(err, ProviderError::InvalidResponse { .. }), "{scenario}: {err:?}");
                assert_eq!(crate::support::status(&err), 502);
                assert_eq!(err.to_string(), "upstream returned an invalid response");
            }
            // A stream request answered with a JSON body that is not an event stream.
            let err = up.client("garbage", None).chat_completion_stream(body("m", true), &Default::default()).await;
            assert!(matches!(err, Err(ProviderError::InvalidResponse { .. })), "{:?}", err.map(|_| ()));
            // Malformed JSON in an event: the chunks before it, then the error.
            let stream = up.client("bad-sse", None).chat_completion_stream(body("m", true), &Default::default()).await;
            let (events, err) = collect(stream.unwrap()).await;
            assert_eq!(chunks(&events), vec![hello_chunks()[1].clone()]);
            let err = err.unwrap();
            assert!(matches!(err, ProviderError::InvalidResponse { .. }), "{err:?}");
        }),
        Test::plain("upstream::connection_refused_is_502", || async {
            let config = ferrostack_config::InferenceProviderConfig::new(
                ferrostack_config::InferenceProviderKind::OpenAi,
                nothing_listens(),
                Some("k".to_owned()),
            );
            let client = UpstreamClient::new("closed", &config).unwrap();
            let err = client.chat_completion(body("m", false), &Default::default()).await.unwrap_err();
            assert!(matches!(err, ProviderError::Unreachable { .. }), "{err:?}");
            assert_eq!(crate::support::status(&err), 502);
            assert_eq!(err.to_string(), "upstream provider closed unreachable");
            let err = client.chat_completion_stream(body("m", true), &Default::default()).await;
            assert_eq!(crate::support::status(&err.map(|_| ()).unwrap_err()), 502);
        }),
        Test::plain("upstream::slow_upstream_is_504", || async {
            let up = upstream().await;
            let client = up.client_with_timeout("hang", 300);
            let started = Instant::now();
            let err = client.chat_completion(body("m", false), &Default::default()).await.unwrap_err();
            assert!(matches!(err, ProviderError::Timeout { .. }), "{err:?}");
            assert_eq!(crate::support::status(&err), 504);
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
            let err = client.chat_completion_stream(body("m", true), &Default::default()).await;
            assert_eq!(crate::support::status(&err.map(|_| ()).unwrap_err()), 504);
        }),
        Test::plain("upstream::stream_stalling_mid_way_ends_with_a_timeout", || async {
            let up = upstream().await;
            let client = up.client_with_timeout("stall", 300);
            let stream = client.chat_completion_stream(body("m", true), &Default::default()).await.unwrap();
            let (events, err) = collect(stream).await;
            assert_eq!(chunks(&events), vec![hello_chunks()[1].clone()]);
            let err = err.unwrap();
            assert_eq!(crate::support::status(&err), 504, "{err:?}");
        }),
        Test::plain("upstream::stream_breaking_mid_way_ends_with_an_error", || async {
            let up = upstream().await;
            let client = up.client("break", None);
            let mut stream = client.chat_completion_stream(body("m", true), &Default::default()).await.unwrap();
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(first, StreamEvent::Chunk(hello_chunks()[1].clone()));
            up.fake.release_one();
            let (events, err) = collect(stream).await;
            assert_eq!(events, vec![], "the half event is not yielded");
            let err = err.expect("the break surfaces as an error item");
            assert_eq!(crate::support::status(&err), 502, "{err:?}");
        }),
        Test::plain("upstream::error_event_mid_stream", || async {
            let up = upstream().await;
            let stream =
                up.client("error-event", None).chat_completion_stream(body("m", true), &Default::default()).await;
            let (events, err) = collect(stream.unwrap()).await;
            assert_eq!(chunks(&events), vec![hello_chunks()[1].clone()], "nothing after the error event");
            let err = err.unwrap();
            assert!(matches!(err, ProviderError::Upstream { status: 500, .. }), "{err:?}");
            assert_eq!(crate::support::status(&err), 502);
            assert!(err.to_string().contains("the engine ran out of memory"), "{err}");
        }),
    ]
}
