//! Text the store cannot hold. PostgreSQL refuses the NUL character (`\u0000`) in `text` and
//! `jsonb`, and SQLite's JSON functions would cut a string at it: a NUL anywhere in what a client
//! sends to be stored or matched is a 400 naming the parameter, before anything reaches the
//! database. (Lone surrogates never get this far: the JSON parser refuses them, a 400 too.)

use serde_json::Value;

use crate::ApiError;

/// 400 naming `param` when `text` holds a NUL.
pub(crate) fn reject_nul_str(text: &str, param: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        return Err(nul_error(param));
    }
    Ok(())
}

/// 400 naming the first field under `root` (`metadata.team`, `items[2].content[0].text`) whose
/// key or string value holds a NUL.
pub(crate) fn reject_nul(value: &Value, root: &str) -> Result<(), ApiError> {
    match nul_path(value, root) {
        Some(param) if param.is_empty() => Err(nul_error("body")),
        Some(param) => Err(nul_error(&param)),
        None => Ok(()),
    }
}

/// [`reject_nul`] over the values of a map (`metadata`).
pub(crate) fn reject_nul_map(map: &serde_json::Map<String, Value>, root: &str) -> Result<(), ApiError> {
    for (k, v) in map {
        if k.contains('\0') {
            return Err(nul_error(root));
        }
        reject_nul(v, &format!("{root}.{k}"))?;
    }
    Ok(())
}

/// A JSON body as `T`, when it is an object: serde's derived structs also take an array of their
/// fields (`[]` would read as `{}`), which no client means. The value's strings move into `T`.
pub(crate) fn object_body<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid_request("the request body must be a JSON object", None));
    }
    serde_json::from_value(body).map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}"), None))
}

fn nul_error(param: &str) -> ApiError {
    ApiError::invalid_request(
        format!("{param} contains a NUL character (\\u0000), which cannot be stored"),
        Some(param),
    )
}

/// The path of the first key or string holding a NUL. Recursion is bounded by the JSON parser's
/// depth limit (128).
fn nul_path(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| at.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_path(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(at.to_owned());
            }
            let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            nul_path(v, &here)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}
