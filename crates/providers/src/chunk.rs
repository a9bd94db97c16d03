//! The relay's fast path over a stream chunk: one pass over its JSON text that validates it, writes
//! the client's copy (with ferrostack's `id` and the requested `model` spliced in) and notes where
//! the values the assembler needs are, with no tree and no re-parsing of nested levels.
//!
//! The pass is conservative: it accepts only texts that `serde_json` accepts too, and gives up
//! ([`Bail`]) on anything it does not handle the general path's way: a key with an escape at a
//! level that is read (the general path decodes those keys), nesting deeper than
//! [`MAX_DEPTH`], any syntax error, an error object. The caller then runs the general path
//! ([`crate::relay::relay_chunk_general`]), so the outcome is the same for every text; only the
//! cost differs. Values the assembler reads are decoded as the general path decodes them: a
//! string without escapes is borrowed, anything else goes through `serde_json` on its own slice.

use std::borrow::Cow;
use std::ops::Range;

use crate::raw::{Kind, Text};

/// Nesting the pass follows before it gives up (well under `serde_json`'s limit of 128).
const MAX_DEPTH: u32 = 100;

/// The fast path gives up on a text: the general path decides what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

type Scan<T> = Result<T, Bail>;

/// A value's place in the text (`start..end`, no surrounding whitespace) and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Val {
    start: usize,
    end: usize,
    kind: Kind,
    /// A string with at least one escape (decoded by `serde_json` when read).
    escaped: bool,
}

impl Val {
    /// The value's text.
    pub(crate) fn raw(self, text: &str) -> &str {
        text.get(self.start..self.end).unwrap_or_default()
    }

    /// The value as a string, when it is one (as [`crate::raw::as_str`] reads it).
    pub(crate) fn str(self, text: &str) -> Option<Cow<'_, str>> {
        if self.kind != Kind::String {
            return None;
        }
        if self.escaped {
            return serde_json::from_str::<Text<'_>>(self.raw(text)).ok().map(|t| t.0);
        }
        text.get(self.start + 1..self.end - 1).map(Cow::Borrowed)
    }

    /// The value as a number, when it is one (as [`crate::raw::as_number`] reads it).
    pub(crate) fn number(self, text: &str) -> Option<serde_json::Number> {
        if self.kind != Kind::Number {
            return None;
        }
        serde_json::from_str(self.raw(text)).ok()
    }

    /// The value as a `u64`, when it is a number that is one (`serde_json::Number::as_u64`).
    pub(crate) fn u64(self, text: &str) -> Option<u64> {
        if self.kind != Kind::Number {
            return None;
        }
        let digits = self.raw(text).as_bytes();
        // Up to 19 digits always fit; a leading zero is alone (the grammar was checked).
        if digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit) {
            return Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')));
        }
        self.number(text).and_then(|n| n.as_u64())
    }

    /// Whether the value is an object.
    pub(crate) fn is_object(self) -> bool {
        self.kind == Kind::Object
    }
}

/// What the assembler reads of a chunk: the last value of each member it reads at each level
/// (a repeated key: the last one counts, as with a JSON parser), as places in the text. The
/// vectors are kept between chunks (cleared, not freed).
#[derive(Debug, Default)]
pub(crate) struct ChunkParts {
    pub(crate) id: Option<Val>,
    pub(crate) object: Option<Val>,
    pub(crate) created: Option<Val>,
    pub(crate) usage: Option<Val>,
    /// An `error` member is present.
    pub(crate) has_error: bool,
    /// A `choices` member is present (of any kind).
    pub(crate) has_choices: bool,
    /// The last `choices` member's object elements (in [`ChunkParts::choice_list`]), when it is
    /// an array.
    pub(crate) choices: Option<Range<usize>>,
    pub(crate) choice_list: Vec<ChoiceView>,
    pub(crate) calls: Vec<CallView>,
    /// Elements of `logprobs.content` / `logprobs.refusal` lists.
    pub(crate) entries: Vec<Val>,
}

impl ChunkParts {
    fn clear(&mut self) {
        self.id = None;
        self.object = None;
        self.created = None;
        self.usage = None;
        self.has_error = false;
        self.has_choices = false;
        self.choices = None;
        self.choice_list.clear();
        self.calls.clear();
        self.entries.clear();
    }

    /// Whether the chunk is an error object (as [`crate::relay`]'s `is_error` decides).
    pub(crate) fn is_error(&self, text: &str) -> bool {
        (self.has_error && !self.has_choices) || self.object.and_then(|o| o.str(text)).is_some_and(|o| o == "error")
    }

    /// The choices read, in order.
    pub(crate) fn choices(&self) -> &[ChoiceView] {
        self.choices.clone().and_then(|r| self.choice_list.get(r)).unwrap_or_default()
    }

    /// The tool calls of a delta.
    pub(crate) fn calls(&self, range: &Range<usize>) -> &[CallView] {
        self.calls.get(range.clone()).unwrap_or_default()
    }

    /// The logprob entries of a list.
    pub(crate) fn entries(&self, range: &Range<usize>) -> &[Val] {
        self.entries.get(range.clone()).unwrap_or_default()
    }
}

/// An object element of `choices`.
#[derive(Debug, Default)]
pub(crate) struct ChoiceView {
    /// Its position among all the elements.
    pub(crate) position: u64,
    pub(crate) index: Option<Val>,
    /// The last `delta`, when it is an object.
    pub(crate) delta: Option<DeltaView>,
    pub(crate) finish_reason: Option<Val>,
    /// The last `logprobs`, when it is an object.
    pub(crate) logprobs: Option<LogprobsView>,
}

/// A choice's `delta`.
#[derive(Debug, Default)]
pub(crate) struct DeltaView {
    pub(crate) content: Option<Val>,
    pub(crate) refusal: Option<Val>,
    /// The last `tool_calls`' object elements (in [`ChunkParts::calls`]), when it is an array.
    pub(crate) tool_calls: Option<Range<usize>>,
}

/// A choice's `logprobs`: its `content` and `refusal` lists' elements (in
/// [`ChunkParts::entries`]), when they are arrays.
#[derive(Debug, Default)]
pub(crate) struct LogprobsView {
    pub(crate) content: Option<Range<usize>>,
    pub(crate) refusal: Option<Range<usize>>,
}

/// An object element of a delta's `tool_calls`.
#[derive(Debug, Default)]
pub(crate) struct CallView {
    pub(crate) position: u64,
    pub(crate) index: Option<Val>,
    pub(crate) id: Option<Val>,
    pub(crate) kind: Option<Val>,
    /// The last `function`, when it is an object.
    pub(crate) function: Option<FunctionView>,
}

/// A tool call's `function`.
#[derive(Debug, Default)]
pub(crate) struct FunctionView {
    pub(crate) name: Option<Val>,
    pub(crate) arguments: Option<Val>,
}

/// Bytes that end a plain run inside a string: the quote, the backslash, control characters
/// (which JSON refuses unescaped).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The end of the run of bytes from `i` that a string holds as they are (up to a quote, a
/// backslash, a control character or the end): eight bytes at a time, then byte by byte.
#[inline(always)]
fn plain_run(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = bytes.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let w = u64::from_le_bytes(word);
        // The lowest byte flagged by each test is exact (a false flag only follows a true one).
        let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
        let stop = below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1) | below(w, 0x20);
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if STRING_STOP[usize::from(b)] {
            break;
        }
        i += 1;
    }
    i
}

/// Scan the chunk `text` (already trimmed): on success `parts` holds what the assembler reads and
/// `frame` has the object with `id_member` / `model_member` (`"id":"..."`, written where the
/// first such member was, else at the end) appended. On [`Bail`], `frame` may hold a partial
/// object: the caller truncates it.
pub(crate) fn scan(
    text: &str,
    parts: &mut ChunkParts,
    frame: &mut Vec<u8>,
    id_member: &[u8],
    model_member: &[u8],
) -> Scan<()> {
    parts.clear();
    let bytes = text.as_bytes();
    let mut s = Scanner { b: bytes, i: 0 };
    if s.peek() != Some(b'{') {
        return Err(Bail);
    }
    frame.push(b'{');
    let mut first = true;
    let (mut wrote_id, mut wrote_model) = (false, false);
    // Source bytes that go to the frame as they are, not copied yet: the members written as they
    // came, when they follow each other with no whitespace (one copy for all of them).
    let mut run = 0..0;
    s.members(true, |s, key_at, key| {
        let start = s.i;
        match key {
            b"choices" => {
                parts.has_choices = true;
                parts.choices = if s.peek() == Some(b'[') {
                    let from = parts.choice_list.len();
                    s.choices(parts)?;
                    Some(from..parts.choice_list.len())
                } else {
                    s.value(1)?;
                    None
                };
            }
            b"id" => parts.id = Some(s.value(1)?),
            b"object" => parts.object = Some(s.value(1)?),
            b"created" => parts.created = Some(s.value(1)?),
            b"usage" => parts.usage = Some(s.value(1)?),
            b"error" => {
                parts.has_error = true;
                s.value(1)?;
            }
            _ => {
                s.value(1)?;
            }
        }
        let member: Option<&[u8]> = match key {
            b"id" if !std::mem::replace(&mut wrote_id, true) => Some(id_member),
            b"model" if !std::mem::replace(&mut wrote_model, true) => Some(model_member),
            b"id" | b"model" => return Ok(()),
            _ => None,
        };
        let comma = !std::mem::take(&mut first);
        // `"key":value` with nothing between: the member as it is written.
        let compact = start == key_at + key.len() + 3;
        match member {
            None if compact
                && comma
                && !run.is_empty()
                && run.end + 1 == key_at
                && bytes.get(run.end) == Some(&b',') =>
            {
                run.end = s.i;
            }
            None if compact => {
                flush(frame, bytes, &mut run);
                if comma {
                    frame.push(b',');
                }
                run = key_at..s.i;
            }
            _ => {
                flush(frame, bytes, &mut run);
                if comma {
                    frame.push(b',');
                }
                match member {
                    Some(member) => frame.extend_from_slice(member),
                    None => {
                        // A key without escapes is written as it came: what serializing it gives.
                        frame.push(b'"');
                        frame.extend_from_slice(key);
                        frame.extend_from_slice(b"\":");
                        frame.extend_from_slice(bytes.get(start..s.i).ok_or(Bail)?);
                    }
                }
            }
        }
        Ok(())
    })?;
    if s.i != bytes.len() {
        return Err(Bail);
    }
    flush(frame, bytes, &mut run);
    for (wrote, member) in [(wrote_id, id_member), (wrote_model, model_member)] {
        if !wrote {
            if !std::mem::take(&mut first) {
                frame.push(b',');
            }
            frame.extend_from_slice(member);
        }
    }
    frame.push(b'}');
    Ok(())
}

/// Copy the pending `run` of source bytes to the frame.
fn flush(frame: &mut Vec<u8>, bytes: &[u8], run: &mut Range<usize>) {
    if run.start < run.end {
        frame.extend_from_slice(bytes.get(run.clone()).unwrap_or_default());
        *run = 0..0;
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// The string starting at the cursor (a quote): its place, and whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Scan<(usize, usize, bool)> {
        let start = self.i;
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            i = plain_run(self.b, i);
            match self.b.get(i) {
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok((start, i + 1, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = self.b.get(i + 2..i + 6).ok_or(Bail)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Bail);
                            }
                            i += 6;
                        }
                        _ => return Err(Bail),
                    }
                }
                // A control character, or the end of the text.
                _ => return Err(Bail),
            }
        }
    }

    /// The digits from the cursor; at least one.
    fn digits(&mut self) -> Scan<()> {
        let from = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if self.i == from { Err(Bail) } else { Ok(()) }
    }

    /// A number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Scan<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Bail);
                }
            }
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(Bail),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.b.get(self.i..self.i + word.len()) != Some(word) {
            return Err(Bail);
        }
        self.i += word.len();
        Ok(())
    }

    /// Any value at the cursor, validated and skipped: its place and kind.
    fn value(&mut self, depth: u32) -> Scan<Val> {
        let start = self.i;
        let (kind, escaped) = match self.peek() {
            Some(b'"') => (Kind::String, self.string()?.2),
            Some(b'{') => {
                self.nested(depth)?;
                self.members(false, |s, _, _| s.value(depth + 1).map(drop))?;
                (Kind::Object, false)
            }
            Some(b'[') => {
                self.nested(depth)?;
                self.elements(|s, _| s.value(depth + 1).map(drop))?;
                (Kind::Array, false)
            }
            Some(b'n') => (Kind::Null, self.literal(b"null").map(|()| false)?),
            Some(b't') => (Kind::Bool, self.literal(b"true").map(|()| false)?),
            Some(b'f') => (Kind::Bool, self.literal(b"false").map(|()| false)?),
            Some(b'-' | b'0'..=b'9') => (Kind::Number, self.number().map(|()| false)?),
            _ => return Err(Bail),
        };
        Ok(Val { start, end: self.i, kind, escaped })
    }

    fn nested(&self, depth: u32) -> Scan<()> {
        if depth >= MAX_DEPTH { Err(Bail) } else { Ok(()) }
    }

    /// The object at the cursor: `member` is called with each key's place (its opening quote),
    /// the key (without its quotes) and the cursor at the value, which it must consume. With `plain_keys`, a key with an escape gives
    /// up (at the levels that are read, the general path decodes every key).
    fn members(
        &mut self,
        plain_keys: bool,
        mut member: impl FnMut(&mut Self, usize, &'a [u8]) -> Scan<()>,
    ) -> Scan<()> {
        let b = self.b;
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Bail);
            }
            let (start, end, escaped) = self.string()?;
            if escaped && plain_keys {
                return Err(Bail);
            }
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Bail);
            }
            self.i += 1;
            self.ws();
            member(self, start, b.get(start + 1..end - 1).ok_or(Bail)?)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// The array at the cursor: `element` is called with each element's position and the cursor
    /// at it, which it must consume.
    fn elements(&mut self, mut element: impl FnMut(&mut Self, u64) -> Scan<()>) -> Scan<()> {
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let mut position = 0;
        loop {
            element(self, position)?;
            position += 1;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// The chunk's `choices` array.
    fn choices(&mut self, parts: &mut ChunkParts) -> Scan<()> {
        self.elements(|s, position| {
            if s.peek() == Some(b'{') {
                let choice = s.choice(parts, position)?;
                parts.choice_list.push(choice);
            } else {
                s.value(2)?;
            }
            Ok(())
        })
    }

    fn choice(&mut self, parts: &mut ChunkParts, position: u64) -> Scan<ChoiceView> {
        let mut choice = ChoiceView { position, ..ChoiceView::default() };
        self.members(true, |s, _, key| {
            match key {
                b"index" => choice.index = Some(s.value(3)?),
                b"finish_reason" => choice.finish_reason = Some(s.value(3)?),
                b"delta" => {
                    choice.delta = if s.peek() == Some(b'{') {
                        Some(s.delta(parts)?)
                    } else {
                        s.value(3)?;
                        None
                    };
                }
                b"logprobs" => {
                    choice.logprobs = if s.peek() == Some(b'{') {
                        Some(s.logprobs(parts)?)
                    } else {
                        s.value(3)?;
                        None
                    };
                }
                _ => {
                    s.value(3)?;
                }
            }
            Ok(())
        })?;
        Ok(choice)
    }

    fn delta(&mut self, parts: &mut ChunkParts) -> Scan<DeltaView> {
        let mut delta = DeltaView::default();
        self.members(true, |s, _, key| {
            match key {
                b"content" => delta.content = Some(s.value(4)?),
                b"refusal" => delta.refusal = Some(s.value(4)?),
                b"tool_calls" => {
                    delta.tool_calls = if s.peek() == Some(b'[') {
                        let from = parts.calls.len();
                        s.elements(|s, position| {
                            if s.peek() == Some(b'{') {
                                let call = s.call(position)?;
                                parts.calls.push(call);
                            } else {
                                s.value(5)?;
                            }
                            Ok(())
                        })?;
                        Some(from..parts.calls.len())
                    } else {
                        s.value(4)?;
                        None
                    };
                }
                _ => {
                    s.value(4)?;
                }
            }
            Ok(())
        })?;
        Ok(delta)
    }

    fn call(&mut self, position: u64) -> Scan<CallView> {
        let mut call = CallView { position, ..CallView::default() };
        self.members(true, |s, _, key| {
            match key {
                b"index" => call.index = Some(s.value(6)?),
                b"id" => call.id = Some(s.value(6)?),
                b"type" => call.kind = Some(s.value(6)?),
                b"function" => {
                    call.function = if s.peek() == Some(b'{') {
                        let mut function = FunctionView::default();
                        s.members(true, |s, _, key| {
                            match key {
                                b"name" => function.name = Some(s.value(7)?),
                                b"arguments" => function.arguments = Some(s.value(7)?),
                                _ => {
                                    s.value(7)?;
                                }
                            }
                            Ok(())
                        })?;
                        Some(function)
                    } else {
                        s.value(6)?;
                        None
                    };
                }
                _ => {
                    s.value(6)?;
                }
            }
            Ok(())
        })?;
        Ok(call)
    }

    fn logprobs(&mut self, parts: &mut ChunkParts) -> Scan<LogprobsView> {
        let mut logprobs = LogprobsView::default();
        self.members(true, |s, _, key| {
            let list = match key {
                b"content" => &mut logprobs.content,
                b"refusal" => &mut logprobs.refusal,
                _ => {
                    s.value(4)?;
                    return Ok(());
                }
            };
            *list = if s.peek() == Some(b'[') {
                let from = parts.entries.len();
                s.elements(|s, _| {
                    let entry = s.value(5)?;
                    parts.entries.push(entry);
                    Ok(())
                })?;
                Some(from..parts.entries.len())
            } else {
                s.value(4)?;
                None
            };
            Ok(())
        })?;
        Ok(logprobs)
    }
}
