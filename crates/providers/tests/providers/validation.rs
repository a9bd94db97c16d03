//! Request validation, table-driven; and the registry built from a run config.

use ferrostack_providers::{
    ChatRequestInfo, ForwardHeaders, ProviderError, Providers, parse_chat_request, validate_chat_request,
};
use ferrostack_testkit::Test;
use serde_json::{Value, json};

use crate::support::upstream;

fn valid() -> Value {
    json!({
        "model": "llama",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "42"},
        ],
        "temperature": 0.7, "top_p": 1, "n": 2, "max_tokens": 100, "stream": true, "store": false,
        "stream_options": {"include_usage": true}, "vendor_extension": {"anything": [1, 2]},
    })
}

/// `valid()` with the JSON pointer `pointer` set to `value` (or removed when `value` is None).
fn with(pointer: &str, value: Option<Value>) -> Value {
    let mut v = valid();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = v.pointer_mut(parent).unwrap();
    match (parent, value) {
        (Value::Object(m), Some(x)) => {
            m.insert(key.to_owned(), x);
        }
        (Value::Object(m), None) => {
            m.remove(key);
        }
        (Value::Array(a), Some(x)) => a[key.parse::<usize>().unwrap()] = x,
        (Value::Array(a), None) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        _ => panic!("bad pointer {pointer}"),
    }
    v
}

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("validation::valid_request", || async {
            let info = validate_chat_request(&valid()).unwrap();
            assert_eq!(info, ChatRequestInfo { model: "llama".to_owned(), stream: true, store: false, n: 2 });
            let minimal = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            let info = validate_chat_request(&minimal).unwrap();
            assert_eq!(info, ChatRequestInfo { model: "m".to_owned(), stream: false, store: true, n: 1 }, "defaults");
            let nulls =
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": null, "n": null});
            assert!(validate_chat_request(&nulls).is_ok(), "null means absent");
        }),
        Test::plain("validation::invalid_requests_name_the_field", || async {
            #[rustfmt::skip]
            let cases: Vec<(&str, Value, &str, &str)> = vec![
                ("not an object", json!([1]), "", "must be a JSON object"),
                ("no model", with("/model", None), "model", "is required"),
                ("model not a string", with("/model", Some(json!(3))), "model", "must be a string, got a number"),
                ("empty model", with("/model", Some(json!(" "))), "model", "must not be empty"),
                ("no messages", with("/messages", None), "messages", "is required"),
                ("messages not a list", with("/messages", Some(json!("hi"))), "messages", "must be a list"),
                ("empty messages", with("/messages", Some(json!([]))), "messages", "at least one"),
                ("message not an object", with("/messages/1", Some(json!("hi"))), "messages[1]", "must be an object"),
                ("no role", with("/messages/2/role", None), "messages[2].role", "is required"),
                ("bad role", with("/messages/2/role", Some(json!("wizard"))), "messages[2].role", "'wizard' is not a valid role"),
                ("role not a string", with("/messages/0/role", Some(json!(1))), "messages[0].role", "must be a string"),
                ("user without content", with("/messages/1/content", None), "messages[1].content", "is required for user messages"),
                ("content a number", with("/messages/0/content", Some(json!(5))), "messages[0].content", "a string or a list"),
                ("content part not an object", with("/messages/1/content", Some(json!(["x"]))), "messages[1].content[0]", "must be an object"),
                ("content part without type", with("/messages/1/content", Some(json!([{"text": "x"}]))), "messages[1].content[0].type", "is required"),
                ("tool without tool_call_id", with("/messages/3/tool_call_id", None), "messages[3].tool_call_id", "is required"),
                ("tool_calls not a list", with("/messages/2/tool_calls", Some(json!({}))), "messages[2].tool_calls", "must be a list"),
                ("stream not a bool", with("/stream", Some(json!("yes"))), "stream", "must be a boolean"),
                ("store not a bool", with("/store", Some(json!(1))), "store", "must be a boolean"),
                ("n zero", with("/n", Some(json!(0))), "n", "between 1 and 128, got 0"),
                ("n negative", with("/n", Some(json!(-1))), "n", "between 1 and 128, got -1"),
                ("n fractional", with("/n", Some(json!(1.5))), "n", "must be an integer"),
                ("n a string", with("/n", Some(json!("2"))), "n", "must be an integer"),
                ("max_tokens zero", with("/max_tokens", Some(json!(0))), "max_tokens", "between 1"),
                ("temperature too high", with("/temperature", Some(json!(2.5))), "temperature", "between 0 and 2"),
                ("temperature negative", with("/temperature", Some(json!(-0.1))), "temperature", "between 0 and 2"),
                ("temperature a string", with("/temperature", Some(json!("hot"))), "temperature", "must be a number"),
                ("top_p too high", with("/top_p", Some(json!(1.01))), "top_p", "between 0 and 1"),
                ("stream_options without stream", with("/stream", Some(json!(false))), "stream_options", "only allowed when stream is true"),
                ("NUL in content", with("/messages/0/content", Some(json!("be\u{0}brief"))), "messages[0].content", "NUL"),
                ("NUL in a part", with("/messages/1/content/0/text", Some(json!("\u{0}"))), "messages[1].content[0].text", "NUL"),
                ("NUL in model", with("/model", Some(json!("lla\u{0}ma"))), "model", "NUL"),
                ("NUL in an extension", with("/vendor_extension/anything", Some(json!(["x\u{0}"]))), "vendor_extension.anything[0]", "NUL"),
                ("NUL in a metadata value", with("/metadata", Some(json!({"k": "\u{0}"}))), "metadata.k", "NUL"),
                ("metadata not an object", with("/metadata", Some(json!(["a"]))), "metadata", "must be an object, got a list"),
                ("metadata value not a string", with("/metadata", Some(json!({"k": 1}))), "metadata.k", "must be a string, got a number"),
                ("metadata key too long", with("/metadata", Some(json!({"k".repeat(65): "v"}))), "metadata", "at most 64 characters"),
                ("metadata value too long", with("/metadata", Some(json!({"k": "é".repeat(513)}))), "metadata.k", "at most 512 characters, got 513"),
                ("metadata with 17 pairs", with("/metadata", Some(Value::Object((0..17).map(|i| (format!("k{i}"), json!("v"))).collect()))), "metadata", "at most 16 pairs, got 17"),
            ];
            for (case, body, param, words) in cases {
                let err = match validate_chat_request(&body) {
                    Ok(info) => panic!("{case}: accepted: {info:?}"),
                    Err(e) => e,
                };
                assert_eq!(err.param, param, "{case}: {err}");
                assert!(err.message.contains(words), "{case}: {:?} does not contain {words:?}", err.message);
                if !param.is_empty() {
                    assert!(err.to_string().starts_with(&format!("{param}: ")), "{case}: {err}");
                }
            }
        }),
        Test::plain("validation::metadata_within_the_limits_and_text_views", || async {
            let full: serde_json::Map<String, Value> =
                (0..16).map(|i| (format!("{i:0>64}"), json!("é".repeat(512)))).collect();
            assert!(
                validate_chat_request(&with("/metadata", Some(Value::Object(full)))).is_ok(),
                "16 pairs at the limits"
            );
            assert!(validate_chat_request(&with("/metadata", Some(Value::Null))).is_ok(), "null metadata");
            // An escaped backslash before `u0000` is text, not a NUL.
            let text = r#"{"model": "m", "messages": [{"role": "user", "content": "C:\\u0000"}]}"#;
            assert!(parse_chat_request(text).is_ok());
            // The body as text: invalid JSON, not an object, a lone surrogate.
            let err = parse_chat_request("{\"model\": ").unwrap_err();
            assert!(err.message.starts_with("invalid JSON body"), "{err}");
            assert_eq!(parse_chat_request("[1]").unwrap_err().message, "the request body must be a JSON object");
            // Valid syntax that a JSON parser refuses (the store could not hold it, nor read it
            // back): a lone surrogate escape, a number beyond a double's range. A surrogate pair
            // and a tiny exponent are fine.
            for bad in [r#""\ud800""#, r#""\udc00""#, r#""\ud800\u0041""#, "1e400"] {
                let text = format!(r#"{{"model": "m", "messages": [{{"role": "user", "content": "x", "n": {bad}}}]}}"#);
                let err = parse_chat_request(&text).unwrap_err();
                assert!(err.message.starts_with("invalid JSON body"), "{bad}: {err}");
                assert_eq!(err.param, "", "{bad}");
            }
            let text = r#"{"model": "m", "messages": [{"role": "user", "content": "\ud83d\ude00", "n": 1e-5}]}"#;
            assert!(parse_chat_request(text).is_ok());
            // What goes upstream: model rewritten, stream set or removed, the rest as sent.
            let text = r#"{"stream": true, "model": "llama", "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "h\u00e9"}], "x": [1.50, 2e3]}"#;
            let body = parse_chat_request(text).unwrap();
            assert_eq!(body.info.model, "llama");
            let up: Value = serde_json::from_slice(&body.upstream_body("meta/llama", false)).unwrap();
            assert_eq!(
                up,
                json!({"model": "meta/llama", "messages": [{"role": "user", "content": "hé"}], "x": [1.50, 2e3]})
            );
            let raw = String::from_utf8(body.upstream_body("meta/llama", true)).unwrap();
            assert!(raw.contains(r#""content": "h\u00e9""#) && raw.contains("[1.50, 2e3]"), "copied as sent: {raw}");
            let up: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(up["stream"], json!(true));
            assert_eq!(up["stream_options"], json!({"include_usage": true}));
            assert_eq!(body.messages().unwrap().get(), r#"[{"role": "user", "content": "h\u00e9"}]"#);
        }),
        Test::plain("registry::models_resolve_to_their_provider", || async {
            let up = upstream().await;
            let yaml = format!(
                "version: 2
providers:
  inference:
  - {{provider_id: vllm, provider_type: remote::vllm, config: {{url: '{}', api_token: tok}}}}
  - {{provider_id: ollama, provider_type: remote::ollama}}
  - {{provider_id: other, provider_type: remote::bedrock}}
models:
  - {{model_id: llama, provider_id: vllm, provider_model_id: meta/llama, metadata: {{context: 8192}}}}
  - {{model_id: qwen, provider_id: ollama}}
  - {{model_id: unserved, provider_id: other}}
",
                up.url("json")
            );
            let loaded = ferrostack_config::load_str(
                &yaml,
                &ferrostack_config::Env::from_pairs(std::iter::empty::<(&str, &str)>()),
            )
            .unwrap();
            let providers = Providers::from_config(&loaded.config).unwrap();
            let ids: Vec<&str> = providers.models().iter().map(|m| m.model_id.as_str()).collect();
            assert_eq!(ids, ["llama", "qwen"], "config order; models of unserved providers skipped");
            assert_eq!(providers.provider_ids().collect::<Vec<_>>(), ["ollama", "vllm"]);
            let qwen = providers.resolve("qwen").unwrap();
            assert_eq!(qwen.provider_model_id, "qwen", "defaults to the model id");
            assert_eq!(qwen.client().unwrap().base_url(), "http://localhost:11434/v1");
            let err = providers.resolve("gpt-9").unwrap_err();
            assert!(matches!(&err, ProviderError::ModelNotFound { model } if model == "gpt-9"));
            assert_eq!(crate::support::status(&err), 404);
            assert_eq!(err.to_string(), "model 'gpt-9' not found");
            assert!(providers.resolve("unserved").is_err());

            let llama = providers.resolve("llama").unwrap();
            assert_eq!(llama.to_openai_json()["metadata"], json!({"context": 8192}));
            let body = json!({"model": "llama", "messages": [{"role": "user", "content": "x"}]});
            let answer = llama.chat_completion(body, &ForwardHeaders::default()).await.unwrap();
            assert_eq!(answer["model"], json!("meta/llama"), "the upstream got the provider's model id");
            assert_eq!(up.last_seen().authorization.as_deref(), Some("Bearer tok"));
            assert!(!format!("{providers:?}").contains("tok\""), "{providers:?}");
        }),
        Test::plain("registry::unreadable_cafile_fails_at_start_up", || async {
            let yaml = "version: 2
providers:
  inference:
  - {provider_id: vllm, provider_type: remote::vllm, config: {url: 'http://v', tls_cafile: /nonexistent/ca.pem}}
";
            let loaded = ferrostack_config::load_str(
                yaml,
                &ferrostack_config::Env::from_pairs(std::iter::empty::<(&str, &str)>()),
            )
            .unwrap();
            let err = Providers::from_config(&loaded.config).unwrap_err();
            assert!(matches!(err, ProviderError::Client { .. }), "{err:?}");
            assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        }),
    ]
}
