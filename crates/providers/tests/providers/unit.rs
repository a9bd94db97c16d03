//! Pure parts: the SSE parser, the stream assembler, the rewrites.

use ferrostack_providers::{
    ProviderError, SseEvent, SseParser, StreamAssembler, normalize_completion, relay_chunk, relay_completion,
    rewrite_chunk_model,
};
use ferrostack_testkit::Test;
use serde_json::{Value, json};

use crate::support::{hello_chunks, sse_text};

fn parse_pieces(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for p in pieces {
        parser.feed(p, &mut out).unwrap();
    }
    parser.finish(&mut out);
    out
}

fn ev(data: &str) -> SseEvent {
    SseEvent { event: None, data: data.to_owned() }
}

fn chunk(index: u64, delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 42, "model": "up",
           "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})
}

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("unit::sse_every_split_point_gives_the_same_events", || async {
            let text = sse_text(&hello_chunks());
            let bytes = text.as_bytes();
            let whole = parse_pieces(&[bytes]);
            let mut want: Vec<SseEvent> = hello_chunks().iter().map(|c| ev(&c.to_string())).collect();
            want.push(ev("[DONE]"));
            assert_eq!(whole, want);
            for i in 0..=bytes.len() {
                assert_eq!(parse_pieces(&[&bytes[..i], &bytes[i..]]), want, "split at byte {i}");
            }
            let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(parse_pieces(&one_by_one), want, "byte by byte");
        }),
        Test::plain("unit::sse_fields_comments_line_ends", || async {
            let text = b"\xEF\xBB\xBF: comment\nevent: message\ndata: a\ndata:b\r\nid: 7\rretry: 10\r\rdata\n\n:only a comment\n\ndata: tail";
            let events = parse_pieces(&[text]);
            assert_eq!(
                events,
                vec![SseEvent { event: Some("message".to_owned()), data: "a\nb".to_owned() }, ev(""), ev("tail"),],
                "BOM skipped, multi-line data joined, CR alone ends lines, a bare `data` is empty, the unterminated last event is kept"
            );
            assert_eq!(
                parse_pieces(&[b"event: x\n\n", b"data: y\n\n"]),
                vec![ev("y")],
                "an event type without data is dropped"
            );
        }),
        Test::plain("unit::assembler_multiple_choices", || async {
            let mut asm = StreamAssembler::new("requested");
            assert_eq!(asm.finish(), None, "no id seen: nothing to store");
            let mut first = chunk(0, json!({"role": "assistant"}), Value::Null);
            first["id"] = json!("");
            first["created"] = Value::Null;
            asm.push(&first);
            assert_eq!(asm.id(), None, "an empty id does not count");
            asm.push(&chunk(1, json!({"content": "B1 "}), Value::Null));
            asm.push(&chunk(0, json!({"content": "A1 "}), Value::Null));
            let mut later = chunk(0, json!({"content": "A2"}), json!("length"));
            later["id"] = json!("chatcmpl-other");
            later["created"] = json!(99);
            asm.push(&later);
            asm.push(&chunk(1, json!({"content": "B2"}), Value::Null));
            asm.push(&chunk(0, json!({}), Value::Null));
            asm.push(&json!("not an object"));
            let done = asm.finish().unwrap();
            assert_eq!(done["id"], json!("chatcmpl-9"), "id from the first chunk that has one");
            assert_eq!(done["created"], json!(42));
            assert_eq!(done["object"], json!("chat.completion"));
            assert_eq!(done["model"], json!("requested"));
            assert!(done.get("usage").is_none());
            let choices = done["choices"].as_array().unwrap();
            assert_eq!(choices.len(), 2);
            assert_eq!(choices[0]["index"], json!(0));
            assert_eq!(choices[0]["message"]["content"], json!("A1 A2"));
            assert_eq!(choices[0]["finish_reason"], json!("length"), "last non-null finish_reason kept");
            assert_eq!(choices[1]["message"]["content"], json!("B1 B2"));
            assert_eq!(
                choices[1]["finish_reason"],
                Value::Null,
                "no finish chunk: the stream was cut, never a made-up stop"
            );
            assert_eq!(choices[1]["message"]["role"], json!("assistant"));
            assert_eq!(choices[1]["message"]["tool_calls"], Value::Null);
            assert_eq!(choices[1]["logprobs"], Value::Null);
        }),
        Test::plain("unit::assembler_n_choices_in_one_chunk_and_empty_content", || async {
            let mut asm = StreamAssembler::new("m");
            asm.push(&json!({"id": "c", "choices": [
                {"index": 0, "delta": {"content": "x"}, "finish_reason": null},
                {"index": 1, "delta": {"content": ""}, "finish_reason": "stop"},
                {"index": 2, "delta": {}, "finish_reason": null},
            ]}));
            let before = chrono::Utc::now().timestamp();
            let done = asm.finish().unwrap();
            let created = done["created"].as_i64().unwrap();
            assert!(created >= before && created <= before + 5, "created falls back to now");
            let contents: Vec<&Value> =
                done["choices"].as_array().unwrap().iter().map(|c| &c["message"]["content"]).collect();
            assert_eq!(contents, [&json!("x"), &Value::Null, &Value::Null], "empty text is null");
        }),
        Test::plain("unit::relay_chunk_splices_id_and_model_and_assembles_like_push", || async {
            // The byte-level relay and the Value assembler agree on every kind of chunk.
            let chunks = vec![
                chunk(0, json!({"role": "assistant", "content": "h\u{e9}"}), Value::Null),
                json!({"id": "chatcmpl-9", "created": 42, "choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]}}]}),
                json!({"id": "chatcmpl-9", "choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": "1}"}}]}, "logprobs": {"content": [{"token": "x", "logprob": -0.5}]}}]}),
                chunk(0, json!({}), json!("tool_calls")),
                json!({"id": "chatcmpl-9", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
            ];
            let mut by_value = StreamAssembler::new("requested");
            let mut by_bytes = StreamAssembler::new("requested");
            for c in &chunks {
                let mut with_ours = c.clone();
                with_ours["id"] = json!("chatcmpl-ours");
                by_value.push(&with_ours);
                let mut frame = Vec::new();
                let theirs =
                    relay_chunk("p", &c.to_string(), "chatcmpl-ours", "requested", &mut by_bytes, &mut frame).unwrap();
                assert_eq!(theirs.as_deref(), Some("chatcmpl-9"));
                let text = String::from_utf8(frame).unwrap();
                let json = text.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
                let relayed: Value = serde_json::from_str(json).unwrap();
                let mut expected = c.clone();
                expected["id"] = json!("chatcmpl-ours");
                expected["model"] = json!("requested");
                assert_eq!(relayed, expected, "everything else as the upstream sent it");
            }
            assert_eq!(by_bytes.finish(), by_value.finish());
            let done = by_bytes.finish().unwrap();
            assert_eq!(done["id"], "chatcmpl-ours");
            assert_eq!(done["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
            assert_eq!(done["usage"]["total_tokens"], 3);

            // Error objects, invalid data.
            let mut asm = StreamAssembler::new("m");
            let mut frame = Vec::new();
            let err = relay_chunk("p", r#"{"error": {"message": "oom", "code": 500}}"#, "i", "m", &mut asm, &mut frame)
                .unwrap_err();
            assert!(matches!(err, ProviderError::Upstream { status: 500, .. }), "{err:?}");
            assert!(matches!(
                relay_chunk("p", "{not json", "i", "m", &mut asm, &mut frame),
                Err(ProviderError::InvalidResponse { .. })
            ));
            assert!(matches!(
                relay_chunk("p", "[1]", "i", "m", &mut asm, &mut frame),
                Err(ProviderError::InvalidResponse { .. })
            ));
            assert!(frame.is_empty(), "nothing is relayed of a failure");
            assert!(asm.finish().is_none(), "nothing to store");
        }),
        Test::plain("unit::relay_completion_copies_the_answer_with_id_and_model", || async {
            let answer = r#"{"id":"up-1","object":"chat.completion","created":7,"model":"meta/llama","choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9","tool_calls":[]},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"system_fingerprint":"fp"}"#;
            let relayed = relay_completion("p", answer.as_bytes(), "chatcmpl-ours", "llama", true).unwrap();
            let body: Value = serde_json::from_slice(&relayed.body).unwrap();
            let mut expected: Value = serde_json::from_str(answer).unwrap();
            normalize_completion(&mut expected, "llama");
            expected["id"] = json!("chatcmpl-ours");
            assert_eq!(body, expected, "as the Value path answered");
            assert_eq!(relayed.upstream_id.as_deref(), Some("up-1"));
            let stored = relayed.stored.unwrap();
            assert_eq!(stored.created, Some(json!(7)));
            let choices: Value = serde_json::from_str(stored.choices.get()).unwrap();
            assert_eq!(choices, expected["choices"], "normalised as the client's copy");
            assert!(!stored.nul);
            // Without tool calls the stored choices are the upstream's text, compacted, not a
            // tree's serialization (escapes and number forms kept).
            let spaced = r#"{"id": "x", "created": 7,
                "choices": [ {"index": 0, "message": {"content": "a b \u00e9 \"q\"", "n": [1.50, 2e3]}} ] }"#;
            let stored = relay_completion("p", spaced.as_bytes(), "i", "m", true).unwrap().stored.unwrap();
            assert_eq!(
                stored.choices.get(),
                r#"[{"index":0,"message":{"content":"a b \u00e9 \"q\"","n":[1.50,2e3]}}]"#
            );
            // NUL characters are reported (the store cannot hold them); an escaped backslash
            // before `u0000` is text.
            let nul = r#"{"id":"x","created":1,"choices":[{"message":{"content":"a\u0000"}}]}"#;
            assert!(relay_completion("p", nul.as_bytes(), "i", "m", true).unwrap().stored.unwrap().nul);
            let text = r#"{"id":"x","created":1,"choices":[{"message":{"content":"C:\\u0000"}}]}"#;
            assert!(!relay_completion("p", text.as_bytes(), "i", "m", true).unwrap().stored.unwrap().nul);
            // What a JSON parser refuses although the syntax is valid: refused, as when the choices
            // were parsed into a tree.
            for bad in [r#""\ud800""#, r#""\udc00x""#, "1e400", &format!("1{}", "0".repeat(400))] {
                let answer = format!(r#"{{"id":"x","created":1,"choices":[{{"message":{{"content":{bad}}}}}]}}"#);
                let err = relay_completion("p", answer.as_bytes(), "i", "m", true).unwrap_err();
                assert!(matches!(err, ProviderError::InvalidResponse { .. }), "{bad}: {err:?}");
            }
            // Without tool_calls and not stored: the choices are not even parsed, copied as sent.
            let plain = r#"{"id":"x","choices":[{"message":{"content":"h\u00e9"}}]}"#;
            let relayed = relay_completion("p", plain.as_bytes(), "i", "m", false).unwrap();
            let text = String::from_utf8(relayed.body).unwrap();
            assert!(text.contains(r#""content":"h\u00e9""#), "{text}");
            assert!(relayed.stored.is_none());
            for bad in [r#"{"id":"x"}"#, "<html>", "[1]", r#"{"choices": {}}"#] {
                let err = relay_completion("p", bad.as_bytes(), "i", "m", true).unwrap_err();
                assert!(matches!(err, ProviderError::InvalidResponse { .. }), "{bad}: {err:?}");
            }
            let err =
                relay_completion("p", br#"{"object":"error","message":"bad","code":400}"#, "i", "m", true).unwrap_err();
            assert!(matches!(err, ProviderError::Upstream { status: 400, .. }), "{err:?}");
        }),
        Test::plain("unit::raw_scan_and_compact_text_for_the_store", || async {
            use ferrostack_providers::raw::{Scan, for_store, scan};
            use serde_json::value::RawValue;
            let raw = |t: &str| RawValue::from_string(t.to_owned()).unwrap();
            let cases: &[(&str, &str, Scan)] = &[
                ("[1,2]", "[1,2]", Scan::default()),
                (" [ 1 ,\n\t2 ]\r\n", "[1,2]", Scan { whitespace: true, ..Scan::default() }),
                (
                    r#"{"a b": " x ", "c":[true, null]}"#,
                    r#"{"a b":" x ","c":[true,null]}"#,
                    Scan { whitespace: true, ..Scan::default() },
                ),
                (r#"["\" ", "\\", "\\\" "]"#, r#"["\" ","\\","\\\" "]"#, Scan { whitespace: true, ..Scan::default() }),
                (r#"["\u0000"]"#, r#"["\u0000"]"#, Scan { nul: true, ..Scan::default() }),
                (r#"["\\u0000"]"#, r#"["\\u0000"]"#, Scan::default()),
                (
                    r#"["\ud83d\ude00", "\u00e9"]"#,
                    r#"["\ud83d\ude00","\u00e9"]"#,
                    Scan { whitespace: true, ..Scan::default() },
                ),
                (
                    "[1.5e-5, -0.25E+3, 12345678901234567890]",
                    "[1.5e-5,-0.25E+3,12345678901234567890]",
                    Scan { whitespace: true, ..Scan::default() },
                ),
            ];
            for (text, compact, want) in cases {
                let text = text.trim();
                let want = Scan { blank: text.len() - compact.len(), ..*want };
                assert_eq!(scan(text), want, "{text}");
                let (stored, found) = for_store(&raw(text)).unwrap();
                assert_eq!((stored.get(), found), (*compact, want), "{text}");
            }
            // Doubtful texts go through a tree: refused when it refuses them, else its form.
            for bad in [r#"["\ud800"]"#, r#"["\ud800\u0041"]"#, r#"["\udfff"]"#, "[1e400]", "[-1E+999]"] {
                assert!(scan(bad).doubtful, "{bad}");
                assert!(for_store(&raw(bad)).is_err(), "{bad}");
            }
            let (stored, found) = for_store(&raw("[1e-400, 0e999]")).unwrap();
            assert!(found.doubtful);
            assert_eq!(stored.get(), "[0.0,0.0]");
        }),
        Test::plain("unit::assembler_tool_calls", || async {
            let mut asm = StreamAssembler::new("m");
            let calls = |calls: Value| json!({"id": "c", "created": 1, "choices": [{"index": 0, "delta": {"tool_calls": calls}}]});
            asm.push(&calls(json!([
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{"}},
                {"index": 1, "function": {"name": "no_id", "arguments": "{}"}},
            ])));
            asm.push(&calls(json!([{"index": 0, "id": "", "type": "", "function": {"name": "b", "arguments": "}"}}])));
            asm.push(&calls(json!([{"index": 2, "id": "call_2", "function": {"name": "c"}}])));
            asm.push(&calls(json!([{"index": 2, "id": "call_2b", "type": "custom"}])));
            let done = asm.finish().unwrap();
            assert_eq!(
                done["choices"][0]["message"]["tool_calls"],
                json!([
                    {"id": "call_1", "type": "function", "function": {"name": "ab", "arguments": "{}"}},
                    {"id": "call_2b", "type": "custom", "function": {"name": "c", "arguments": ""}},
                ]),
                "by index; last non-empty id/type; name and arguments joined; calls without an id dropped"
            );
            let mut only_orphans = StreamAssembler::new("m");
            only_orphans.push(&calls(json!([{"index": 0, "function": {"name": "x"}}])));
            assert_eq!(only_orphans.finish().unwrap()["choices"][0]["message"]["tool_calls"], Value::Null);
        }),
        Test::plain("unit::rewrites", || async {
            let mut c = hello_chunks()[1].clone();
            rewrite_chunk_model(&mut c, "llama");
            assert_eq!(c["model"], json!("llama"));
            let mut completion = json!({"id": "x", "model": "meta/llama", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": []}},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "t"}]}},
            ]});
            normalize_completion(&mut completion, "llama");
            assert_eq!(completion["model"], json!("llama"));
            assert_eq!(completion["choices"][0]["message"]["tool_calls"], Value::Null);
            assert_eq!(completion["choices"][1]["message"]["tool_calls"], json!([{"id": "t"}]));
        }),
    ]
}
