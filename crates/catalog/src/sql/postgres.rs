//! [`Value`] on PostgreSQL: binding by the parameter type the server inferred, and reading a
//! column by its type. JSON is handled here and only here: `Json` and `JsonText` bind as
//! `JSONB`/`JSON` and those columns read back as `Json`.

use std::error::Error as StdError;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::value::{Row, Value};
use crate::error::Error;

type BoxError = Box<dyn StdError + Sync + Send>;

fn cannot_bind(value: &Value, ty: &Type) -> BoxError {
    format!("cannot bind a {} value to a parameter of type {ty}", value.kind()).into()
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => {
                    i32::try_from(*i).map_err(|_| format!("{i} does not fit in an int4 parameter"))?.to_sql(ty, out)
                }
                Type::INT2 => {
                    i16::try_from(*i).map_err(|_| format!("{i} does not fit in an int2 parameter"))?.to_sql(ty, out)
                }
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                _ => Err(cannot_bind(self, ty)),
            },
            Value::Float(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(cannot_bind(self, ty)),
            },
            Value::Text(s) if <String as ToSql>::accepts(ty) => s.to_sql(ty, out),
            Value::Json(j) => {
                if *ty == Type::JSONB || *ty == Type::JSON {
                    j.to_sql(ty, out)
                } else if <String as ToSql>::accepts(ty) {
                    j.to_string().to_sql(ty, out)
                } else {
                    Err(cannot_bind(self, ty))
                }
            }
            Value::JsonText(t) => {
                if *ty == Type::JSONB {
                    // JSONB's binary form: a version byte, then the text.
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(t.get().as_bytes());
                    Ok(IsNull::No)
                } else if *ty == Type::JSON || <String as ToSql>::accepts(ty) {
                    out.extend_from_slice(t.get().as_bytes());
                    Ok(IsNull::No)
                } else {
                    Err(cannot_bind(self, ty))
                }
            }
            Value::Timestamp(t) => match *ty {
                Type::TIMESTAMPTZ => t.to_sql(ty, out),
                Type::TIMESTAMP => t.naive_utc().to_sql(ty, out),
                _ => Err(cannot_bind(self, ty)),
            },
            Value::Bytes(b) if *ty == Type::BYTEA => b.to_sql(ty, out),
            Value::Bool(_) | Value::Text(_) | Value::Bytes(_) => Err(cannot_bind(self, ty)),
        }
    }

    /// Every type is accepted here and checked in `to_sql`, so that the error says which value
    /// kind met which parameter type.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The bind list in the form tokio-postgres takes.
pub(super) fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Convert the rows of one result to owned [`Row`]s.
pub(super) fn rows(columns: &[tokio_postgres::Column], rows: Vec<tokio_postgres::Row>) -> Result<Vec<Row>, Error> {
    let names: Arc<[String]> = columns.iter().map(|c| c.name().to_owned()).collect();
    rows.into_iter()
        .map(|row| {
            let values =
                columns.iter().enumerate().map(|(i, column)| read(&row, i, column)).collect::<Result<Vec<_>, _>>()?;
            Ok(Row::new(Arc::clone(&names), values))
        })
        .collect()
}

fn read(row: &tokio_postgres::Row, i: usize, column: &tokio_postgres::Column) -> Result<Value, Error> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
        column: &tokio_postgres::Column,
    ) -> Result<Option<T>, Error> {
        row.try_get::<_, Option<T>>(i).map_err(|e| Error::Column {
            column: column.name().to_owned(),
            problem: format!("cannot read {}: {e}", column.type_()),
        })
    }
    let ty = column.type_();
    let value = match *ty {
        Type::BOOL => get::<bool>(row, i, column)?.map(Value::Bool),
        Type::INT2 => get::<i16>(row, i, column)?.map(|v| Value::Int(i64::from(v))),
        Type::INT4 => get::<i32>(row, i, column)?.map(|v| Value::Int(i64::from(v))),
        Type::INT8 => get::<i64>(row, i, column)?.map(Value::Int),
        Type::OID => get::<u32>(row, i, column)?.map(|v| Value::Int(i64::from(v))),
        Type::FLOAT4 => get::<f32>(row, i, column)?.map(|v| Value::Float(f64::from(v))),
        Type::FLOAT8 => get::<f64>(row, i, column)?.map(Value::Float),
        Type::JSON | Type::JSONB => get::<serde_json::Value>(row, i, column)?.map(Value::Json),
        Type::TIMESTAMPTZ => get::<DateTime<Utc>>(row, i, column)?.map(Value::Timestamp),
        Type::TIMESTAMP => get::<NaiveDateTime>(row, i, column)?.map(|t| Value::Timestamp(t.and_utc())),
        Type::BYTEA => get::<Vec<u8>>(row, i, column)?.map(Value::Bytes),
        _ if <String as tokio_postgres::types::FromSql>::accepts(ty) => get::<String>(row, i, column)?.map(Value::Text),
        _ => {
            return Err(Error::Column {
                column: column.name().to_owned(),
                problem: format!(
                    "PostgreSQL type {ty} is not read by ferrostack's SQL layer; cast it in the query (e.g. ::text)"
                ),
            });
        }
    };
    Ok(value.unwrap_or(Value::Null))
}
