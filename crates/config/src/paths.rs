//! Dotted paths (`providers.vector_io[0].config.url`), as problems report them.

use std::collections::HashMap;

/// For each list (by its path in the substituted tree) that lost entries to substitution, the
/// file's index of every entry that was kept.
pub(crate) type IndexMap = HashMap<String, Vec<usize>>;

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[i]`.
pub(crate) fn join_index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Append a path relative to `parent` (as `serde_path_to_error` prints it: `.` for itself).
pub(crate) fn join_relative(parent: &str, rel: &str) -> String {
    match rel {
        "" | "." => parent.to_owned(),
        r if r.starts_with('[') || parent.is_empty() => format!("{parent}{r}"),
        r => format!("{parent}.{r}"),
    }
}

/// Rewrite a path of the substituted tree into the file's terms: list indices after dropped
/// entries are shifted back to where the entry is in the file.
pub(crate) fn to_file_path(path: &str, map: &IndexMap) -> String {
    if map.is_empty() {
        return path.to_owned();
    }
    let mut new_prefix = String::with_capacity(path.len());
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        new_prefix.push_str(before);
        out.push_str(before);
        let index = after[1..].find(']').and_then(|close| {
            let digits = &after[1..=close];
            digits.parse::<usize>().ok().map(|i| (i, close + 2))
        });
        match index {
            Some((i, len)) => {
                let file_i = map.get(&new_prefix).and_then(|kept| kept.get(i)).copied().unwrap_or(i);
                new_prefix.push_str(&after[..len]);
                out.push_str(&format!("[{file_i}]"));
                rest = &after[len..];
            }
            None => {
                new_prefix.push('[');
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(join_relative("storage.backends.pg", "."), "storage.backends.pg");
        assert_eq!(join_relative("storage.backends.pg", "port"), "storage.backends.pg.port");
        assert_eq!(join_relative("", "server.port"), "server.port");
        assert_eq!(join_relative("models", "[1].model_id"), "models[1].model_id");
    }

    #[test]
    fn file_paths_undo_dropped_entries() {
        let mut map = IndexMap::new();
        map.insert("providers.inference".to_owned(), vec![1, 3]);
        map.insert("providers.inference[1].config.items".to_owned(), vec![2]);
        assert_eq!(to_file_path("providers.inference[0].provider_id", &map), "providers.inference[1].provider_id");
        assert_eq!(
            to_file_path("providers.inference[1].config.items[0].x", &map),
            "providers.inference[3].config.items[2].x"
        );
        assert_eq!(to_file_path("models[0]", &map), "models[0]");
        assert_eq!(to_file_path("odd[key", &map), "odd[key");
        assert_eq!(to_file_path("odd[x].y", &map), "odd[x].y");
    }
}
