//! Byte-level views of JSON documents: the top-level members of an object as `(key, raw value)`
//! pairs that borrow from the text, without building a `serde_json::Value` tree. The proxy reads
//! what it needs from these views and copies the rest through as it came.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A string that borrows from the document unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a JSON object, in document order, each value as its raw text.
#[derive(Debug, Default)]
pub struct Members<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    out.push((key.0, value));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Members<'a> {
    /// Parse `text` as an object (anything else is an error).
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw value of `key` (the last one, when a key is repeated: as a JSON parser keeps it).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// The elements of a JSON array, each as its raw text.
#[derive(Debug, Default)]
pub struct Elements<'a>(pub Vec<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Elements<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Elements<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(v) = seq.next_element::<&'de RawValue>()? {
                    out.push(v);
                }
                Ok(Elements(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The JSON type of a raw value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Kind {
    /// The kind of `raw`.
    pub fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// "a string", "a list", ... (as the request errors name them).
    pub fn article(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "a list",
            Kind::Object => "an object",
        }
    }
}

/// `raw` as a string, when it is one.
pub fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    if Kind::of(raw) != Kind::String {
        return None;
    }
    serde_json::from_str::<Text<'_>>(raw.get()).ok().map(|t| t.0)
}

/// `raw` as an object's members, when it is one.
pub fn as_object(raw: &RawValue) -> Option<Members<'_>> {
    if Kind::of(raw) != Kind::Object {
        return None;
    }
    Members::parse(raw.get()).ok()
}

/// `raw` as an array's elements, when it is one.
pub fn as_array(raw: &RawValue) -> Option<Elements<'_>> {
    if Kind::of(raw) != Kind::Array {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// `raw` as a number, when it is one.
pub fn as_number(raw: &RawValue) -> Option<serde_json::Number> {
    if Kind::of(raw) != Kind::Number {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// Whether `raw` is `null` (or absent).
pub fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| Kind::of(r) == Kind::Null)
}

/// Append `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// Append the member `"key":raw`, preceded by a comma unless it is the first.
pub fn write_member(out: &mut Vec<u8>, first: &mut bool, key: &str, raw: &[u8]) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_str(out, key);
    out.push(b':');
    out.extend_from_slice(raw);
}

/// What [`scan`] found in a JSON text (one that the parser already accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// Whitespace between tokens (outside strings): the text is not compact.
    pub whitespace: bool,
    /// How many bytes of such whitespace: the compact text is this much shorter.
    pub blank: usize,
    /// A `\u0000` escape: the NUL character, which PostgreSQL's `jsonb` refuses.
    pub nul: bool,
    /// Something a full parse into a tree may refuse, or a database may not take as it is,
    /// although the syntax is valid: a `\u` escape of a lone surrogate, or a number that is
    /// very long or has a large exponent. Such a text is checked with a full parse.
    pub doubtful: bool,
}

/// The longest number token taken as it is (longer ones are [`Scan::doubtful`]).
const PLAIN_NUMBER_CHARS: usize = 40;
/// The largest exponent magnitude taken as it is (`1e400` is out of `f64`'s range).
const PLAIN_EXPONENT: u32 = 250;

/// Walk a JSON text that the parser already accepted: what [`Scan`] reports, and with `out`,
/// the text without whitespace between tokens appended to it. One pass over the bytes, no tree.
fn walk(text: &str, mut out: Option<&mut Vec<u8>>) -> Scan {
    let bytes = text.as_bytes();
    let mut scan = Scan::default();
    let mut i = 0;
    // Start of the bytes not yet copied to `out`.
    let mut copied = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => i = string_end(bytes, i + 1, &mut scan),
            b' ' | b'\n' | b'\r' | b'\t' => {
                scan.whitespace = true;
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(bytes.get(copied..i).unwrap_or_default());
                }
                let from = i;
                i += 1;
                while matches!(bytes.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                    i += 1;
                }
                scan.blank += i - from;
                copied = i;
            }
            b'-' | b'0'..=b'9' => i = number_end(bytes, i, &mut scan),
            _ => i += 1,
        }
    }
    if let Some(out) = out {
        out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
    }
    scan
}

/// The index after the string whose contents start at `i` (after its opening quote).
fn string_end(bytes: &[u8], mut i: usize, scan: &mut Scan) -> usize {
    loop {
        let Some(at) = bytes.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) else {
            return bytes.len();
        };
        i += at;
        if bytes.get(i) == Some(&b'"') {
            return i + 1;
        }
        // An escape: `\u` and four hex digits, or `\` and one character.
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let unit = hex4(bytes, i + 2);
        i += 6;
        match unit {
            Some(0) => scan.nul = true,
            Some(0xD800..=0xDBFF) => {
                // A leading surrogate must be followed by a trailing one.
                let trailing = bytes.get(i..i + 2) == Some(b"\\u".as_slice())
                    && matches!(hex4(bytes, i + 2), Some(0xDC00..=0xDFFF));
                if trailing {
                    i += 6;
                } else {
                    scan.doubtful = true;
                }
            }
            Some(0xDC00..=0xDFFF) | None => scan.doubtful = true,
            Some(_) => {}
        }
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// The index after the number that starts at `i`.
fn number_end(bytes: &[u8], start: usize, scan: &mut Scan) -> usize {
    let mut i = start;
    let mut exponent: Option<u32> = None;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'e' | b'E' => exponent = Some(0),
            b'0'..=b'9' => {
                if let Some(e) = exponent.as_mut() {
                    *e = e.saturating_mul(10).saturating_add(u32::from(b - b'0'));
                }
            }
            b'-' | b'+' | b'.' => {}
            _ => break,
        }
        i += 1;
    }
    if i - start > PLAIN_NUMBER_CHARS || exponent.is_some_and(|e| e > PLAIN_EXPONENT) {
        scan.doubtful = true;
    }
    i
}

/// What [`scan`] finds in `text` (a JSON text the parser already accepted).
pub fn scan(text: &str) -> Scan {
    walk(text, None)
}

/// `raw` as it is to be stored: without whitespace between tokens, as compact as a tree would
/// serialize it but with everything else as it came (no tree is built). A text that is
/// [`Scan::doubtful`] goes through a full parse instead: the parser's error when it refuses it
/// (a lone surrogate, a number out of range), else the tree's serialization. With what the
/// scan found (`nul`, for one).
pub fn for_store(raw: &RawValue) -> Result<(Box<RawValue>, Scan), serde_json::Error> {
    let scan = scan(raw.get());
    Ok((compact(raw, scan)?, scan))
}

/// [`for_store`] with the text's [`scan`] already made.
pub fn compact(raw: &RawValue, scan: Scan) -> Result<Box<RawValue>, serde_json::Error> {
    let text = raw.get();
    if scan.doubtful {
        let tree: serde_json::Value = serde_json::from_str(text)?;
        return serde_json::value::to_raw_value(&tree);
    }
    if !scan.whitespace {
        return Ok(raw.to_owned());
    }
    let mut out = Vec::with_capacity(text.len());
    walk(text, Some(&mut out));
    // The walk only dropped bytes outside strings: still UTF-8 and JSON.
    let out = String::from_utf8(out).map_err(<serde_json::Error as de::Error>::custom)?;
    RawValue::from_string(out)
}
