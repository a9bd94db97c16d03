//! The spill file: `durability: async` rows still queued when the shutdown drain ends are saved
//! as JSON lines, one row a line, and written back by [`crate::Writer::replay`] at the next start.
//!
//! A line: `{"v":1,"table":..,"id":..,"owner":[..,..],"values":[..]}`. Values keep their type:
//! text and booleans are JSON strings and booleans, `null` is NULL, the others are tagged
//! (`{"int":n}`, `{"float":x}`, `{"json":..}`, `{"timestamp":"RFC 3339"}`, `{"bytes":"hex"}`).
//!
//! Replay claims the file first (renames it to `<name>.<pid>-<nanos>.replaying`), so rows a later
//! shutdown spills go to a fresh file; a claimed file is deleted once every row in it was written
//! or refused. A replay cut short (a crash) leaves the claimed file, which the next start replays
//! again: the writer's upsert replaces a row by the same owner with the same content, so a row
//! written twice is still one row.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferrostack_catalog::Value;
use serde_json::{Value as Json, json};

/// Version of the line format.
const FORMAT: u64 = 1;
/// Suffix of a claimed spill file.
const CLAIMED: &str = ".replaying";

/// Why spilling or replaying failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The spill file (or its directory) could not be read, created or written.
    #[error("spill file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpillError + '_ {
    move |source| SpillError::Io { path: path.to_path_buf(), source }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Spill files replayed (and deleted).
    pub files: usize,
    /// Rows queued again.
    pub rows: u64,
    /// Lines that could not be read as a row of this table (logged with their line number; the
    /// file is kept as `<name>.rejected` when there are any).
    pub bad_lines: u64,
}

/// One spilled row: its id, owner columns and values.
pub(crate) struct Spilled {
    pub(crate) id: String,
    pub(crate) owner: (Value, Value),
    pub(crate) values: Vec<Value>,
}

/// Append `rows` to `path` (creating it and its directory), and sync it to disk.
pub(crate) fn append(path: &Path, table: &str, rows: &[Spilled]) -> Result<(), SpillError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
    let mut out = std::io::BufWriter::new(&file);
    for row in rows {
        let line = json!({
            "v": FORMAT,
            "table": table,
            "id": row.id,
            "owner": [encode(&row.owner.0), encode(&row.owner.1)],
            "values": row.values.iter().map(encode).collect::<Vec<_>>(),
        });
        serde_json::to_writer(&mut out, &line).map_err(|e| io(path)(e.into()))?;
        out.write_all(b"\n").map_err(io(path))?;
    }
    out.flush().map_err(io(path))?;
    drop(out);
    file.sync_all().map_err(io(path))
}

/// Claim what there is to replay for `path`: files claimed by an earlier, interrupted replay, then
/// `path` itself (renamed to a claimed name). Sorted oldest claim first.
pub(crate) fn claim(path: &Path) -> Result<Vec<PathBuf>, SpillError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut claimed = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let file = entry.file_name();
                let Some(file) = file.to_str() else { continue };
                if file.starts_with(&prefix) && file.ends_with(CLAIMED) {
                    claimed.push(dir.join(file));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    }
    claimed.sort();
    if path.exists() {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let target = dir.join(format!("{name}.{nanos:020}-{}{CLAIMED}", std::process::id()));
        std::fs::rename(path, &target).map_err(io(path))?;
        claimed.push(target);
    }
    Ok(claimed)
}

/// One line of a spill file: a row, or its line number and why it is not one.
pub(crate) type Line = Result<Spilled, (usize, String)>;

/// Read a claimed file: each good line as a row, each bad one as its line number and why.
pub(crate) fn read(path: &Path, table: &str) -> Result<Vec<Line>, SpillError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut rows = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(parse(&line, table).map_err(|why| (n + 1, why)));
    }
    Ok(rows)
}

/// Keep a file with lines that could not be replayed as `<name>.rejected` (beside the others).
pub(crate) fn reject(path: &Path) -> Result<PathBuf, SpillError> {
    let target = path.with_extension("rejected");
    std::fs::rename(path, &target).map_err(io(path))?;
    Ok(target)
}

/// Delete a replayed file.
pub(crate) fn remove(path: &Path) -> Result<(), SpillError> {
    std::fs::remove_file(path).map_err(io(path))
}

fn parse(line: &str, table: &str) -> Result<Spilled, String> {
    let line: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if line.get("v").and_then(Json::as_u64) != Some(FORMAT) {
        return Err(format!("not format version {FORMAT}"));
    }
    if line.get("table").and_then(Json::as_str) != Some(table) {
        return Err(format!("not a row of {table}"));
    }
    let id = line.get("id").and_then(Json::as_str).ok_or("no id")?.to_owned();
    let owner = match line.get("owner").and_then(Json::as_array).map(Vec::as_slice) {
        Some([a, b]) => (decode(a)?, decode(b)?),
        _ => return Err("owner must be two values".to_owned()),
    };
    let values = line
        .get("values")
        .and_then(Json::as_array)
        .ok_or("no values")?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Spilled { id, owner, values })
}

fn encode(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => json!({ "int": i }),
        Value::Float(f) => json!({ "float": f }),
        Value::Text(t) => Json::String(t.clone()),
        Value::Json(j) => json!({ "json": j }),
        // Spilled as a document (read back as `Json`); its text is valid JSON.
        Value::JsonText(t) => json!({ "json": t.to_value().unwrap_or_default() }),
        Value::Timestamp(t) => json!({ "timestamp": t.to_rfc3339() }),
        Value::Bytes(b) => json!({ "bytes": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

fn decode(v: &Json) -> Result<Value, String> {
    Ok(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(m) if m.len() == 1 => {
            let (tag, inner) = m.iter().next().ok_or("empty value")?;
            match tag.as_str() {
                "int" => Value::Int(inner.as_i64().ok_or("int is not an integer")?),
                "float" => Value::Float(inner.as_f64().unwrap_or(f64::NAN)),
                "json" => Value::Json(inner.clone()),
                "timestamp" => {
                    let text = inner.as_str().ok_or("timestamp is not text")?;
                    let at = DateTime::parse_from_rfc3339(text).map_err(|e| format!("timestamp: {e}"))?;
                    Value::Timestamp(at.with_timezone(&Utc))
                }
                "bytes" => {
                    let hex = inner.as_str().ok_or("bytes are not text")?;
                    Value::Bytes(unhex(hex).ok_or("bytes are not hex")?)
                }
                other => return Err(format!("unknown value tag {other}")),
            }
        }
        _ => return Err("a value must be null, a boolean, a string or a tagged object".to_owned()),
    })
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}
