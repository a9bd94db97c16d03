//! Properties of the relay's fast paths, against reference implementations, on random input:
//!
//! - the SSE parser gives the same events as the line-by-line reference parser (the one the relay
//!   had before it searched line ends with `memchr` and read lines in place) for random streams
//!   (LF, CR and CRLF line ends, comments, other fields, a byte-order mark, invalid UTF-8, no last
//!   line end), whatever the reads they are split into;
//! - [`ChunkRelay`] (one pass over each chunk) gives the same frames, upstream ids, errors and
//!   assembled completion as [`relay_chunk_general`] (a `Members` view per level) for random
//!   chunks: ids and models with escapes, escapes and whitespace everywhere, repeated keys, tool
//!   calls, logprobs, usage, error objects, deep nesting, and broken text; and it takes every
//!   well-formed chunk without falling back.
//!
//! `FERROSTACK_PROPTEST_CASES` (default [`DEFAULT_CASES`]) and `FERROSTACK_PROPTEST_SEED` (a u64)
//! choose the runs; a failure names its case and seed.

use ferrostack_providers::{ChunkRelay, SseEvent, SseParser, StreamAssembler, relay_chunk_general};
use ferrostack_testkit::Test;
use serde_json::Value;

const DEFAULT_CASES: u64 = 3000;
const DEFAULT_SEED: u64 = 0x5eed_0016;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("property::sse_parser_equals_reference_for_any_split", || async {
            for_cases(|case, rng| {
                let stream = sse_stream(rng);
                let pieces = split(rng, &stream);
                // A byte-order mark is skipped when the first read holds all of it (as before).
                let bom = pieces.iter().find(|p| !p.is_empty()).is_some_and(|p| p.starts_with(b"\xEF\xBB\xBF"));
                let want = reference_events(&stream, bom);
                let mut parser = SseParser::new();
                let mut got = Vec::new();
                for piece in pieces {
                    parser.feed(piece, &mut got).unwrap();
                }
                parser.finish(&mut got);
                assert_eq!(got, want, "case {case}: stream {:?}", String::from_utf8_lossy(&stream));
            });
        }),
        Test::plain("property::sse_line_too_long", || async {
            let max = ferrostack_providers::MAX_SSE_LINE_BYTES;
            let long = vec![b'x'; max + 1];
            let mut parser = SseParser::new();
            let mut out = Vec::new();
            assert!(parser.feed(&long, &mut out).is_err(), "one read, no line end");
            let mut with_end = long.clone();
            with_end.push(b'\n');
            assert!(SseParser::new().feed(&with_end, &mut out).is_err(), "one read with its line end");
            let mut parser = SseParser::new();
            parser.feed(&long[..10], &mut out).unwrap();
            assert!(parser.feed(&with_end[10..], &mut out).is_err(), "split over two reads");
            let mut fits = b"data: ".to_vec();
            fits.resize(max, b'y');
            fits.extend_from_slice(b"\n\n");
            let mut parser = SseParser::new();
            parser.feed(&fits[..3], &mut out).unwrap();
            parser.feed(&fits[3..], &mut out).unwrap();
            assert_eq!(out.len(), 1, "a line of exactly the limit is taken");
            assert_eq!(out[0].data.len(), max - 6);
        }),
        Test::plain("property::chunk_relay_equals_general_relay", || async {
            let (mut fast_taken, mut total) = (0_u64, 0_u64);
            for_cases(|case, rng| {
                let (id, model) = (pick(rng, IDS), pick(rng, MODELS));
                let mut relay = ChunkRelay::new(id, model);
                let mut fast = StreamAssembler::new(model);
                let mut general = StreamAssembler::new(model);
                for n in 0..rng.below(6) + 1 {
                    let chunk = chunk_text(rng);
                    let context = format!("case {case}, chunk {n}: {:?}", chunk.text);
                    let (mut frame_fast, mut frame_general) = (b"prev".to_vec(), b"prev".to_vec());
                    let before = relay.general_count();
                    let got = relay
                        .relay("p", &chunk.text, &mut fast, &mut frame_fast)
                        .map(|theirs| theirs.map(std::borrow::Cow::into_owned))
                        .map_err(|e| format!("{e:?}"));
                    let want = relay_chunk_general("p", &chunk.text, id, model, &mut general, &mut frame_general)
                        .map_err(|e| format!("{e:?}"));
                    assert_eq!(got, want, "{context}");
                    assert_eq!(
                        String::from_utf8_lossy(&frame_fast),
                        String::from_utf8_lossy(&frame_general),
                        "{context}"
                    );
                    total += 1;
                    if chunk.plain {
                        assert_eq!(relay.general_count(), before, "{context}: a well-formed chunk takes the fast path");
                        fast_taken += 1;
                    }
                }
                same_completion(fast.finish(), general.finish(), case);
            });
            assert!(fast_taken * 5 > total * 2, "the fast path was exercised ({fast_taken} of {total} chunks)");
        }),
        Test::plain("property::chunk_relay_examples", || async {
            // Fixed cases next to the random ones: the splice with escapes in id and model, and
            // what is written for repeated and missing id/model members.
            let mut relay = ChunkRelay::new("chatcmpl-\"x\"", "m\u{e9}/\n");
            let mut asm = StreamAssembler::new("m");
            let mut frame = Vec::new();
            let theirs = relay
                .relay(
                    "p",
                    " {\"model\":\"up\", \"id\" : \"a\\u0062\",\"choices\":[{\"delta\":{\"content\":\"x\\ny\"}}],\"id\":\"c\",\"model\":1}\n",
                    &mut asm,
                    &mut frame,
                )
                .unwrap();
            assert_eq!(theirs.as_deref(), Some("c"), "the last id counts");
            assert_eq!(
                String::from_utf8(frame).unwrap(),
                "data: {\"model\":\"m\u{e9}/\\n\",\"id\":\"chatcmpl-\\\"x\\\"\",\"choices\":[{\"delta\":{\"content\":\"x\\ny\"}}]}\n\n"
            );
            let mut frame = Vec::new();
            relay.relay("p", "{}", &mut asm, &mut frame).unwrap();
            assert_eq!(
                String::from_utf8(frame).unwrap(),
                "data: {\"id\":\"chatcmpl-\\\"x\\\"\",\"model\":\"m\u{e9}/\\n\"}\n\n"
            );
            assert_eq!(relay.general_count(), 0);
            let done = asm.finish().unwrap();
            assert_eq!(done["id"], "chatcmpl-\"x\"");
            assert_eq!(done["choices"][0]["message"]["content"], "x\ny");
        }),
    ]
}

fn cases() -> u64 {
    std::env::var("FERROSTACK_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES)
}

/// Run `check` for each case with its own generator (case `n` of seed `s` is always the same).
fn for_cases(mut check: impl FnMut(u64, &mut Rng)) {
    let seed = std::env::var("FERROSTACK_PROPTEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SEED);
    for case in 0..cases() {
        let mut rng = Rng(seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case, &mut rng)));
        if let Err(panic) = result {
            eprintln!("failing case {case} of seed {seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// SplitMix64: small, seeded, good enough to draw test input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[usize::try_from(rng.below(from.len() as u64)).unwrap()]
}

// ---- SSE ----

/// The parser as it was before: each line collected into a buffer, converted lossily, split at
/// the first `:`; data lines each followed by `\n`, the last one dropped on dispatch.
fn reference_events(stream: &[u8], skip_bom: bool) -> Vec<SseEvent> {
    let stream = if skip_bom { stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream) } else { stream };
    let mut out = Vec::new();
    let (mut data, mut has_data, mut event) = (String::new(), false, None::<String>);
    let mut dispatch = |data: &mut String, has_data: &mut bool, event: &mut Option<String>| {
        let event = event.take();
        if std::mem::take(has_data) {
            let mut d = std::mem::take(data);
            d.pop();
            out.push(SseEvent { event, data: d });
        }
    };
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut i = 0;
    while i < stream.len() {
        match stream[i] {
            b'\n' => lines.push(std::mem::take(&mut line)),
            b'\r' => {
                lines.push(std::mem::take(&mut line));
                if stream.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => line.push(b),
        }
        i += 1;
    }
    let unterminated = !line.is_empty();
    if unterminated {
        lines.push(line);
    }
    for line in &lines {
        if line.is_empty() {
            dispatch(&mut data, &mut has_data, &mut event);
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                data.push_str(value);
                data.push('\n');
                has_data = true;
            }
            "event" => event = Some(value.to_owned()),
            _ => {}
        }
    }
    dispatch(&mut data, &mut has_data, &mut event);
    out
}

const SSE_LINES: &[&[u8]] = &[
    b"data: {\"id\":\"c\",\"choices\":[]}",
    b"data: hello",
    b"data:no space",
    b"data:  two spaces",
    b"data",
    b"data:",
    b"data: a:b:c",
    b"event: message",
    b"event:",
    b": keep-alive",
    b":",
    b"id: 7",
    b"retry: 100",
    b"unknown field",
    b"dat\xFFa: invalid field",
    b"data: caf\xC3",
    b"data: \xE2\x82:x",
    b"data: caf\xC3\xA9 \xF0\x9F\x98\x80",
    b"data: [DONE]",
    b"",
    b"",
];

fn sse_stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.one_in(5) {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let lines = rng.below(12);
    for n in 0..lines {
        out.extend_from_slice(SSE_LINES[usize::try_from(rng.below(SSE_LINES.len() as u64)).unwrap()]);
        if n + 1 == lines && rng.one_in(3) {
            break; // no line end after the last line
        }
        out.extend_from_slice(pick(rng, &["\n", "\n", "\r", "\r\n", "\r\n"]).as_bytes());
    }
    out
}

/// `bytes` cut at random places (a CRLF or a UTF-8 sequence split between reads included).
fn split<'a>(rng: &mut Rng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = if rng.one_in(4) { rest.len() } else { usize::try_from(rng.below(rest.len() as u64 + 1)).unwrap() };
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

// ---- chunks ----

const IDS: &[&str] = &["chatcmpl-abc", "chatcmpl-\"q\"\\", "id-\u{e9}-\u{1F600}", "x\n\u{1}y", ""];
const MODELS: &[&str] = &["llama", "m\u{e9}/\"x\"", "tab\there", "a\u{7f}b"];

/// Strings as they appear in JSON text (between the quotes).
const STRINGS: &[&str] = &[
    "",
    "word ",
    "Hello",
    "caf\u{e9} \u{1F600}",
    "a\\nb",
    "\\\"quoted\\\"",
    "back\\\\slash",
    "\\u00e9t\\u00e9",
    "\\ud83d\\ude00",
    "\\ud800 lone",
    "\\udc00",
    "\\/\\b\\f\\r\\t",
    "stop",
    "tool_calls",
    "error",
    "chatcmpl-9",
    "function",
    "\\u0000nul",
    "a longer text, with more than eight bytes",
    "0123456789abcdef\\n0123456\\\"89abcdef0\\u00e9",
    "caf\u{e9}caf\u{e9}caf\u{e9} \u{1F600}\u{1F600}\\\\",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "7",
    "42",
    "-1",
    "-0",
    "1.5",
    "2.0",
    "1e2",
    "1E+2",
    "0.5e-3",
    "1700000000",
    "1700000000.75",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "1e400",
    "-1e400",
];

/// Not JSON, where a number or a literal goes.
const BROKEN_NUMBERS: &[&str] = &[
    "01", "00", "-01", "1.", ".5", "1e", "1e+", "1E-", "-", "--1", "1.5.5", "+1", "0x1", "1_0", "Infinity", "NaN",
    "1.e5", "1e5.5", "- 1", "nul", "tru", "True", "nulll", "fals",
];
/// Not JSON, where a string goes.
const BROKEN_STRINGS: &[&str] = &[
    "\"a\u{1}b\"",
    "\"tab\tin\"",
    "\"new\nline\"",
    "\"\\x\"",
    "\"\\u12g4\"",
    "\"\\u12\"",
    "\"open",
    "'single'",
    "\"a\\\"",
    "\"\u{7f}\u{1f}\"",
    "\"0123456789abcdef\u{1}0123\"",
    "\"0123456\u{1f}89abcdef\"",
    "\"caf\u{e9}caf\u{e9}\u{8}\"",
    "\"0123456789abcdef0123",
];

/// A generated chunk's text, and whether it is well-formed with nothing the fast path leaves to
/// the general one (it must then take it).
struct Chunk {
    text: String,
    plain: bool,
}

struct ChunkGen<'r> {
    rng: &'r mut Rng,
    plain: bool,
    spaced: bool,
}

fn chunk_text(rng: &mut Rng) -> Chunk {
    let spaced = rng.one_in(4);
    let mut g = ChunkGen { rng, plain: true, spaced };
    let mut text = match g.rng.below(40) {
        0 => {
            g.plain = false;
            format!("{{\"error\":{{\"message\":\"{}\",\"code\":{}}}}}", g.string(), g.number())
        }
        1 => {
            g.plain = false;
            format!("{{\"object\":\"error\",\"message\":\"{}\",\"code\":400}}", g.string())
        }
        2 => {
            g.plain = false;
            pick(g.rng, &["[1]", "\"x\"", "null", "", "{", "data", "{}}", "{},", "{\"a\":1,}"]).to_owned()
        }
        3 => {
            // Deep nesting in a member nobody reads (and in usage, which is parsed).
            let depth = usize::try_from(g.rng.below(140)).unwrap() + 1;
            let key = pick(g.rng, &["x", "usage", "choices"]);
            g.plain = depth < 90;
            format!("{{\"id\":\"c\",\"{key}\":{}{}}}", "[".repeat(depth), "]".repeat(depth))
        }
        _ => g.object(&CHUNK_KEYS, 0),
    };
    if g.rng.one_in(8) {
        g.plain = false;
        mutate(g.rng, &mut text);
    }
    if is_error_object(&text) {
        g.plain = false;
    }
    if g.rng.one_in(10) {
        text =
            format!("{}{text}{}", pick(g.rng, &[" ", "\n", "\u{a0}", "\t"]), pick(g.rng, &[" ", "\r\n", "\u{2028}"]));
    }
    Chunk { text, plain: g.plain }
}

/// Whether `text` is an object that reports an error (left to the general path).
fn is_error_object(text: &str) -> bool {
    use ferrostack_providers::raw::{Members, as_str};
    let Ok(members) = Members::parse(text) else { return false };
    (members.has("error") && !members.has("choices"))
        || members.get("object").and_then(as_str).is_some_and(|o| o == "error")
}

/// A key and what its value is.
type KeySpec = (&'static str, fn(&mut ChunkGen<'_>, u32) -> String);

const CHUNK_KEYS: [KeySpec; 9] = [
    ("id", |g, _| g.string_value()),
    ("object", |g, _| if g.rng.one_in(10) { g.any(1) } else { "\"chat.completion.chunk\"".to_owned() }),
    ("created", |g, _| if g.rng.one_in(4) { g.any(1) } else { g.number() }),
    ("model", |g, _| g.any(1)),
    ("choices", |g, d| if g.rng.one_in(10) { g.any(d) } else { g.array(|g, d| g.choice(d), d) }),
    ("usage", |g, d| {
        if g.rng.one_in(3) {
            g.any(d)
        } else {
            format!("{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":3}}", g.number(), g.number())
        }
    }),
    ("system_fingerprint", |g, d| g.any(d)),
    ("error", |g, d| {
        // With choices this is no error object; without them it is (left to the general path).
        g.plain = false;
        g.any(d)
    }),
    ("x\u{e9}", |g, d| g.any(d)),
];
const CHOICE_KEYS: [KeySpec; 5] = [
    ("index", |g, _| if g.rng.one_in(5) { g.any(3) } else { g.number() }),
    ("delta", |g, d| if g.rng.one_in(8) { g.any(d) } else { g.object(&DELTA_KEYS, d) }),
    ("finish_reason", |g, _| if g.rng.one_in(2) { "null".to_owned() } else { g.string_value() }),
    ("logprobs", |g, d| if g.rng.one_in(3) { g.any(d) } else { g.object(&LOGPROBS_KEYS, d) }),
    ("extra", |g, d| g.any(d)),
];
const DELTA_KEYS: [KeySpec; 5] = [
    ("role", |_, _| "\"assistant\"".to_owned()),
    ("content", |g, _| if g.rng.one_in(6) { g.any(4) } else { g.string_value() }),
    ("refusal", |g, _| if g.rng.one_in(3) { "null".to_owned() } else { g.string_value() }),
    ("tool_calls", |g, d| if g.rng.one_in(8) { g.any(d) } else { g.array(|g, d| g.object(&CALL_KEYS, d), d) }),
    ("extra", |g, d| g.any(d)),
];
const CALL_KEYS: [KeySpec; 5] = [
    ("index", |g, _| if g.rng.one_in(5) { g.any(5) } else { g.number() }),
    ("id", |g, _| g.string_value()),
    ("type", |g, _| if g.rng.one_in(3) { g.string_value() } else { "\"function\"".to_owned() }),
    ("function", |g, d| if g.rng.one_in(8) { g.any(d) } else { g.object(&FUNCTION_KEYS, d) }),
    ("extra", |g, d| g.any(d)),
];
const FUNCTION_KEYS: [KeySpec; 3] = [
    ("name", |g, _| g.string_value()),
    ("arguments", |g, _| if g.rng.one_in(6) { g.any(7) } else { g.string_value() }),
    ("extra", |g, d| g.any(d)),
];
const LOGPROBS_KEYS: [KeySpec; 3] = [
    ("content", |g, d| if g.rng.one_in(5) { g.any(d) } else { g.array(|g, d| g.entry(d), d) }),
    ("refusal", |g, d| if g.rng.one_in(2) { "null".to_owned() } else { g.array(|g, d| g.entry(d), d) }),
    ("extra", |g, d| g.any(d)),
];

impl ChunkGen<'_> {
    fn ws(&mut self) -> &'static str {
        if self.spaced && self.rng.one_in(2) { pick(self.rng, &[" ", "\n", "\t", "\r\n  ", "  "]) } else { "" }
    }

    fn string(&mut self) -> &'static str {
        pick(self.rng, STRINGS)
    }

    fn string_value(&mut self) -> String {
        if self.rng.one_in(120) {
            self.plain = false;
            return pick(self.rng, BROKEN_STRINGS).to_owned();
        }
        format!("\"{}\"", self.string())
    }

    fn number(&mut self) -> String {
        if self.rng.one_in(120) {
            self.plain = false;
            return pick(self.rng, BROKEN_NUMBERS).to_owned();
        }
        pick(self.rng, NUMBERS).to_owned()
    }

    /// A key as it appears in the text: sometimes with an escape (the general path decodes it,
    /// so the fast path leaves such a chunk to it).
    fn key(&mut self, key: &str) -> String {
        if self.rng.one_in(150) {
            self.plain = false;
            let mut chars = key.chars();
            let first = chars.next().map(u32::from).unwrap_or(0x61);
            return format!("\"\\u{first:04x}{}\"", chars.as_str());
        }
        format!("\"{key}\"")
    }

    /// An object with some of `keys` (in random order, some repeated).
    fn object(&mut self, keys: &[KeySpec], depth: u32) -> String {
        let mut order: Vec<usize> = Vec::new();
        for (i, (key, _)) in keys.iter().enumerate() {
            if *key == "error" && !self.rng.one_in(8) {
                continue;
            }
            if !self.rng.one_in(4) {
                order.push(i);
            }
            if self.rng.one_in(12) {
                order.push(i); // repeated
            }
        }
        for i in (1..order.len()).rev() {
            let j = usize::try_from(self.rng.below(i as u64 + 1)).unwrap();
            order.swap(i, j);
        }
        let mut out = String::from("{");
        out.push_str(self.ws());
        for (n, &i) in order.iter().enumerate() {
            if n > 0 {
                out.push(',');
                out.push_str(self.ws());
            }
            let (key, value) = keys[i];
            let key = self.key(key);
            out.push_str(&key);
            out.push_str(self.ws());
            out.push(':');
            out.push_str(self.ws());
            out.push_str(&value(self, depth + 1));
            out.push_str(self.ws());
        }
        out.push('}');
        out
    }

    fn array(&mut self, element: impl Fn(&mut Self, u32) -> String, depth: u32) -> String {
        let mut out = String::from("[");
        out.push_str(self.ws());
        for n in 0..self.rng.below(4) {
            if n > 0 {
                out.push(',');
                out.push_str(self.ws());
            }
            // Now and then an element of another kind (skipped, yet it counts for positions).
            let value = if self.rng.one_in(10) { self.any(depth + 1) } else { element(self, depth + 1) };
            out.push_str(&value);
            out.push_str(self.ws());
        }
        out.push(']');
        out
    }

    fn choice(&mut self, depth: u32) -> String {
        self.object(&CHOICE_KEYS, depth)
    }

    fn entry(&mut self, depth: u32) -> String {
        if self.rng.one_in(6) {
            return self.any(depth);
        }
        format!(
            "{{\"token\":{},\"logprob\":{},\"bytes\":[104,105],\"top_logprobs\":[]}}",
            self.string_value(),
            self.number()
        )
    }

    /// Any value; containers with keys that may have escapes (nobody reads them).
    fn any(&mut self, depth: u32) -> String {
        let limit = if depth > 6 { 4 } else { 7 };
        match self.rng.below(limit) {
            0 => "null".to_owned(),
            1 => pick(self.rng, &["true", "false"]).to_owned(),
            2 => self.number(),
            3 => self.string_value(),
            4 => {
                let (a, b) = (self.any(depth + 1), self.any(depth + 1));
                format!("[{}{a},{}{b}]", self.ws(), self.ws())
            }
            5 => {
                let k =
                    if self.rng.one_in(4) { self.string() } else { pick(self.rng, &["k", "content", "id", "index"]) };
                let v = self.any(depth + 1);
                if k.contains('\\') {
                    // Where this object is read (a delta, say), the fast path leaves it.
                    self.plain = false;
                }
                format!("{{\"{k}\"{}:{v}}}", self.ws())
            }
            _ => "{}".to_owned(),
        }
    }
}

/// Break `text` somewhere: cut it, or insert, drop or replace a byte (kept UTF-8).
fn mutate(rng: &mut Rng, text: &mut String) {
    let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
    let at = boundaries[usize::try_from(rng.below(boundaries.len() as u64)).unwrap()];
    match rng.below(4) {
        0 => text.truncate(at),
        1 => text.insert_str(
            at,
            pick(
                rng,
                &[
                    "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "x", "0", "\u{1}", "\t", ".", "e", "E", "+", "-",
                    "00", "1", "\\u12", "\\x", "tru", "n", "\u{7f}",
                ],
            ),
        ),
        _ => {
            if let Some(c) = text[at..].chars().next() {
                let replacement =
                    if rng.one_in(2) { "" } else { pick(rng, &["\"", "\\", "\u{7}", "1", "-", "e", "n"]) };
                text.replace_range(at..at + c.len_utf8(), replacement);
            }
        }
    }
}

/// The two assembled completions are the same; `created` may differ only when both fell back to
/// the time of `finish` (a second may pass between the two calls).
fn same_completion(fast: Option<Value>, general: Option<Value>, case: u64) {
    let (Some(mut fast), Some(mut general)) = (fast.clone(), general.clone()) else {
        assert_eq!(fast, general, "case {case}");
        return;
    };
    let (a, b) = (fast["created"].take(), general["created"].take());
    if a != b {
        let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
            .unwrap();
        for created in [&a, &b] {
            let created = created.as_i64().unwrap();
            assert!((now - 5..=now).contains(&created), "case {case}: created {a} / {b}");
        }
    }
    assert_eq!(fast, general, "case {case}");
}
