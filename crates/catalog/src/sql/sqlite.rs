//! [`Value`] on SQLite, and running statements on a connection (called on the blocking pool).
//! JSON is stored as text and instants as Unix milliseconds; [`super::FromValue`] reads them
//! back as JSON and timestamps.

use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use super::value::{Row, Value};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Sv;
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(Sv::Null),
            Value::Bool(b) => ToSqlOutput::Owned(Sv::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(Sv::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(Sv::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Json(j) => ToSqlOutput::Owned(Sv::Text(j.to_string())),
            Value::JsonText(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.get().as_bytes())),
            Value::Timestamp(t) => ToSqlOutput::Owned(Sv::Integer(t.timestamp_millis())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn read(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        },
        ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
    }
}

/// Run a query and collect its rows.
pub(super) fn query(conn: &Connection, text: &str, values: &[Value]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(text)?;
    let names: Arc<[String]> = stmt.column_names().map(str::to_owned).collect();
    let width = names.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..width).map(|i| row.get_ref(i).map(read)).collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(Row::new(Arc::clone(&names), values));
    }
    Ok(out)
}

/// Run a statement; rows affected (for a statement that returns rows, e.g. with `RETURNING`,
/// the rows returned).
pub(super) fn execute(conn: &Connection, text: &str, values: &[Value]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(text)?;
    let count = if stmt.column_count() == 0 {
        stmt.execute(rusqlite::params_from_iter(values))?
    } else {
        let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
        let mut n = 0;
        while rows.next()?.is_some() {
            n += 1;
        }
        n
    };
    Ok(u64::try_from(count).unwrap_or(u64::MAX))
}

/// Run statements in one write transaction. `BEGIN IMMEDIATE` takes the write lock up front, so
/// two writers queue on the busy timeout instead of deadlocking on a read-to-write upgrade.
/// Any error rolls everything back (the transaction is dropped uncommitted).
pub(super) fn transaction(conn: &mut Connection, statements: &[(String, Vec<Value>)]) -> rusqlite::Result<Vec<u64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut counts = Vec::with_capacity(statements.len());
    for (text, values) in statements {
        counts.push(execute(&tx, text, values)?);
    }
    tx.commit()?;
    Ok(counts)
}
