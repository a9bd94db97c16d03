//! From the substituted JSON tree to the typed [`RunConfig`], with a path on every error.
//!
//! Two things `serde_json::from_value` would get wrong are handled here:
//!
//! - String fields given a number or a bool. `FERROSTACK__*` overrides are parsed by the `config`
//!   crate (`try_parsing`) and `${env.X}` results are coerced, so a password `0123` arrives as the
//!   number 123. A string field takes the text it came from instead (`"0123"`); a number written as
//!   such in the YAML is accepted as its decimal text.
//! - Backends. `BackendConfig` is an internally tagged enum, and serde buffers those before
//!   picking the variant, which loses both the path of an error inside and the leniency above.
//!   Each backend is therefore dispatched on `type` here and its fields deserialized directly.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::Problem;
use crate::model::{
    BackendConfig, PostgresBackendConfig, ProviderSettings, RunConfig, SqliteBackendConfig, UnservedBackend,
};
use crate::paths::{join, join_index, join_relative};

/// The backend types ferrostack serves, as written in `type`.
pub(crate) const BACKEND_TYPES: [&str; 4] = ["kv_sqlite", "kv_postgres", "sql_sqlite", "sql_postgres"];

/// Deserialize the whole config. On failure: the first error of the tree outside the backends, and
/// the first error of each backend.
pub(crate) fn run_config(tree: &Value, env_texts: &HashMap<String, String>) -> Result<RunConfig, Vec<Problem>> {
    let mut rest = tree.clone();
    let backends = take_backends(&mut rest);
    let mut problems = Vec::new();
    let config = typed::<RunConfig>(&rest, "", env_texts).map_err(|p| problems.push(p)).ok();
    let mut typed_backends = BTreeMap::new();
    let mut unserved = BTreeMap::new();
    match backends {
        Ok(Some(map)) => {
            for (name, v) in map {
                match backend(&name, &v, env_texts) {
                    Ok(Typed::Served(b)) => {
                        typed_backends.insert(name, b);
                    }
                    Ok(Typed::Unserved(b)) => {
                        unserved.insert(name, b);
                    }
                    Err(p) => problems.push(p),
                }
            }
        }
        Ok(None) => {}
        Err(p) => problems.push(p),
    }
    match config {
        Some(mut config) if problems.is_empty() => {
            config.storage.backends = typed_backends;
            config.storage.unserved_backends = unserved;
            Ok(config)
        }
        _ => Err(problems),
    }
}

/// Take `storage.backends` out of the tree, leaving an empty map in its place.
fn take_backends(tree: &mut Value) -> Result<Option<serde_json::Map<String, Value>>, Problem> {
    let Some(storage) = tree.get_mut("storage").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    match storage.insert("backends".to_owned(), Value::Object(serde_json::Map::new())) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => {
            Err(Problem::new("storage.backends", format!("expected a map of named backends, got {}", kind(&other))))
        }
    }
}

/// A backend of a served type, or one that is accepted and not served.
enum Typed {
    Served(BackendConfig),
    Unserved(UnservedBackend),
}

/// One backend, dispatched on its `type`.
fn backend(name: &str, v: &Value, env_texts: &HashMap<String, String>) -> Result<Typed, Problem> {
    let path = join("storage.backends", name);
    let Value::Object(map) = v else {
        return Err(Problem::new(
            path,
            format!("expected a map with `type` and the backend's fields, got {}", kind(v)),
        ));
    };
    let supported = format!(
        "supported types: {} (kv_redis and kv_mongodb are accepted but not served by ferrostack)",
        BACKEND_TYPES.join(", ")
    );
    let type_path = join(&path, "type");
    let ty = match map.get("type") {
        Some(Value::String(s)) => s.as_str(),
        None => {
            return Err(Problem::new(type_path, format!("missing field `type`; {supported}")));
        }
        Some(other) => {
            return Err(Problem::new(type_path, format!("expected a string, got {}; {supported}", kind(other))));
        }
    };
    let mut fields = map.clone();
    fields.remove("type");
    let fields = Value::Object(fields);
    let served = match ty {
        "kv_sqlite" => typed::<SqliteBackendConfig>(&fields, &path, env_texts).map(BackendConfig::KvSqlite),
        "sql_sqlite" => typed::<SqliteBackendConfig>(&fields, &path, env_texts).map(BackendConfig::SqlSqlite),
        "kv_postgres" => typed::<PostgresBackendConfig>(&fields, &path, env_texts).map(BackendConfig::KvPostgres),
        "sql_postgres" => typed::<PostgresBackendConfig>(&fields, &path, env_texts).map(BackendConfig::SqlPostgres),
        other if UnservedBackend::TYPES.contains(&other) => {
            return Ok(Typed::Unserved(UnservedBackend {
                type_name: other.to_owned(),
                settings: ProviderSettings(fields),
            }));
        }
        other => Err(Problem::new(type_path, format!("unknown backend type '{other}'; {supported}"))),
    };
    served.map(Typed::Served)
}

/// Deserialize `value`, found at `path`, into `T`; the problem carries the full path.
fn typed<'a, T: Deserialize<'a>>(
    value: &'a Value,
    path: &str,
    env_texts: &'a HashMap<String, String>,
) -> Result<T, Problem> {
    let node = Node { value, path: path.to_owned(), env_texts };
    serde_path_to_error::deserialize(node).map_err(|e| {
        let at = join_relative(path, &e.path().to_string());
        let message = e.inner().to_string();
        // A missing field is reported at the field itself, not at its parent.
        match missing_field(&message) {
            Some(field) => Problem::new(join(&at, field), message),
            None => Problem::new(at, message),
        }
    })
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// A JSON type's name, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A node of the tree, with its path (to find the text of values that came from the environment).
struct Node<'de> {
    value: &'de Value,
    path: String,
    env_texts: &'de HashMap<String, String>,
}

impl<'de> Node<'de> {
    fn env_text(&self) -> Option<&'de String> {
        self.env_texts.get(&self.path)
    }
}

macro_rules! delegate {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.value.$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Node<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => visitor.visit_map(Entries { iter: map.iter(), pending: None, node: &self }),
            Value::Array(items) => visitor.visit_seq(Items { iter: items.iter().enumerate(), node: &self }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match (self.value, self.env_text()) {
            (Value::Number(_) | Value::Bool(_), Some(text)) => visitor.visit_str(text),
            // `inf` / `nan` from an override: the config crate made a float, JSON made it null.
            (Value::Null, Some(text)) if !text.is_empty() => visitor.visit_str(text),
            (Value::Number(n), None) => visitor.visit_string(n.to_string()),
            (Value::Bool(b), None) => visitor.visit_string(b.to_string()),
            (other, _) => other.deserialize_string(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match (self.value, self.env_text()) {
            (Value::Null, Some(text)) if !text.is_empty() => visitor.visit_some(self),
            (Value::Null, _) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(_) => self.deserialize_any(visitor),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Array(_) => self.deserialize_any(visitor),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.value.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.value.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    delegate! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64
        deserialize_char deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_identifier
    }
}

struct Entries<'n, 'de> {
    iter: serde_json::map::Iter<'de>,
    pending: Option<(&'de String, &'de Value)>,
    node: &'n Node<'de>,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.pending = Some((k, v));
                seed.deserialize(BorrowedStrDeserializer::new(k.as_str())).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let Some((k, value)) = self.pending.take() else {
            return Err(de::Error::custom("a map value was asked for before its key"));
        };
        seed.deserialize(Node { value, path: join(&self.node.path, k), env_texts: self.node.env_texts })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Items<'n, 'de> {
    iter: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    node: &'n Node<'de>,
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        match self.iter.next() {
            Some((i, value)) => seed
                .deserialize(Node { value, path: join_index(&self.node.path, i), env_texts: self.node.env_texts })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}
