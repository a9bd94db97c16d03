//! [`JsonText`]: a JSON document kept as its text, bound to a statement without building a
//! `serde_json::Value` tree (JSONB/JSON on PostgreSQL, TEXT on SQLite).

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON document as its text: valid JSON by construction (it is made from a [`RawValue`],
/// which the JSON parser checked, or parsed by [`JsonText::parse`]). Cheap to clone: the text is
/// shared. Serializes as the document itself (the text is copied into the output as it is).
///
/// Equality is the documents' equality: equal texts, or texts that parse to equal values (object
/// key order and whitespace do not count).
#[derive(Clone)]
pub struct JsonText(Arc<Box<RawValue>>);

impl JsonText {
    /// From a checked raw value, without a copy.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Self(Arc::new(raw))
    }

    /// A copy of a checked raw value.
    pub fn copy_of(raw: &RawValue) -> Self {
        Self::from_raw(raw.to_owned())
    }

    /// Check `text` as JSON (no tree is built) and keep it (leading and trailing whitespace
    /// dropped).
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self::from_raw)
    }

    /// A value's JSON text.
    pub fn from_value(value: &serde_json::Value) -> Self {
        // A `Value` always serializes.
        Self::from_raw(serde_json::value::to_raw_value(value).unwrap_or_default())
    }

    /// The text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The text as a raw value (for serializing it into a larger document).
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// Whether the document is an array.
    pub fn is_array(&self) -> bool {
        self.get().starts_with('[')
    }

    /// Whether the document is an object.
    pub fn is_object(&self) -> bool {
        self.get().starts_with('{')
    }

    /// The document as a tree (for code that must walk it; the hot paths do not).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl From<serde_json::Value> for JsonText {
    fn from(value: serde_json::Value) -> Self {
        Self::from_value(&value)
    }
}

impl From<&serde_json::Value> for JsonText {
    fn from(value: &serde_json::Value) -> Self {
        Self::from_value(value)
    }
}

impl From<Box<RawValue>> for JsonText {
    fn from(raw: Box<RawValue>) -> Self {
        Self::from_raw(raw)
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || matches!((self.to_value(), other.to_value()), (Ok(a), Ok(b)) if a == b)
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw().serialize(serializer)
    }
}
