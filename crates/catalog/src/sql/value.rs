//! Bind values, owned result rows and typed getters.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::json_text::JsonText;
use crate::error::Error;

/// A value bound to a statement or read from a row.
///
/// How each variant is stored, per dialect:
///
/// | variant | PostgreSQL | SQLite |
/// |---|---|---|
/// | `Null` | NULL of any type | NULL |
/// | `Bool` | `BOOLEAN` | `INTEGER` 0/1 |
/// | `Int` | `BIGINT` (also `INTEGER`/`SMALLINT` when in range, floats) | `INTEGER` |
/// | `Float` | `DOUBLE PRECISION` / `REAL` | `REAL` |
/// | `Text` | `TEXT` / `VARCHAR` / `CHAR` / `NAME` | `TEXT` |
/// | `Json` | `JSONB` / `JSON` (or its text into a text column) | `TEXT` holding the JSON |
/// | `JsonText` | as `Json`, from the document's text (no tree is built) | as `Json` |
/// | `Timestamp` | `TIMESTAMPTZ` (or `TIMESTAMP`, as UTC) | `INTEGER` Unix milliseconds |
/// | `Bytes` | `BYTEA` | `BLOB` |
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text.
    Text(String),
    /// A JSON document.
    Json(serde_json::Value),
    /// A JSON document kept as its text: bound as `Json` is, without a `serde_json::Value`
    /// tree. Columns are never read back as `JsonText` (read them as [`JsonText`]).
    JsonText(JsonText),
    /// An instant (millisecond precision on SQLite, microsecond on PostgreSQL).
    Timestamp(DateTime<Utc>),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Value {
    /// The variant's name, for messages (never the value itself).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Json(_) | Value::JsonText(_) => "json",
            Value::Timestamp(_) => "timestamp",
            Value::Bytes(_) => "bytes",
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v)
    }
}
impl From<JsonText> for Value {
    fn from(v: JsonText) -> Self {
        Value::JsonText(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Timestamp(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A Rust type a column can be read as ([`Row::get`]).
pub trait FromValue: Sized {
    /// Convert, or say what was expected and what was found.
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn mismatch(expected: &str, found: &Value) -> String {
    match found {
        Value::Null => format!("expected {expected}, found NULL (read it as an Option)"),
        other => format!("expected {expected}, found {}", other.kind()),
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(mismatch("text", other)),
        }
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(i) => Ok(*i),
            other => Err(mismatch("integer", other)),
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(i) => i32::try_from(*i).map_err(|_| format!("integer {i} does not fit in i32")),
            other => Err(mismatch("integer", other)),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(mismatch("float", other)),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            // SQLite has no boolean type: 0 and 1.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Int(i) => Err(format!("expected bool, found integer {i} (only 0 and 1 are booleans)")),
            other => Err(mismatch("bool", other)),
        }
    }
}

impl FromValue for serde_json::Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Json(j) => Ok(j.clone()),
            Value::JsonText(t) => t.to_value().map_err(|e| format!("text is not valid JSON: {e}")),
            // SQLite stores JSON as text.
            Value::Text(s) => serde_json::from_str(s).map_err(|e| format!("text is not valid JSON: {e}")),
            other => Err(mismatch("json", other)),
        }
    }
}

/// A JSON column read as its text, without a tree: from a text column (SQLite's JSON, or a
/// PostgreSQL `jsonb` selected with `CAST(... AS TEXT)`), checked as JSON; a `jsonb` column read
/// as such is serialized from its tree.
impl FromValue for JsonText {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::JsonText(t) => Ok(t.clone()),
            Value::Json(j) => Ok(JsonText::from_value(j)),
            Value::Text(s) => JsonText::parse(s.clone()).map_err(|e| format!("text is not valid JSON: {e}")),
            other => Err(mismatch("json", other)),
        }
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Timestamp(t) => Ok(*t),
            // SQLite stores instants as Unix milliseconds.
            Value::Int(ms) => {
                DateTime::from_timestamp_millis(*ms).ok_or_else(|| format!("{ms} ms is out of the timestamp range"))
            }
            Value::Text(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("text is not an RFC 3339 timestamp: {e}")),
            other => Err(mismatch("timestamp", other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(mismatch("bytes", other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row, owned (no connection is held).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Self {
        Self { columns, values }
    }

    /// The value of `column` as `T`; the error names the column and what was wrong (missing,
    /// NULL where `T` is not an `Option`, another type, invalid JSON).
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, Error> {
        let value = self.value(column).ok_or_else(|| Error::Column {
            column: column.to_owned(),
            problem: format!("no such column in the result (columns: {})", self.columns.join(", ")),
        })?;
        T::from_value(value).map_err(|problem| Error::Column { column: column.to_owned(), problem })
    }

    /// The raw value of `column`, if the result has it.
    pub fn value(&self, column: &str) -> Option<&Value> {
        self.columns.iter().position(|c| c == column).and_then(|i| self.values.get(i))
    }

    /// Column names, in result order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, consuming the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}
