//! Where environment values come from.
//!
//! The loader never reads the process environment directly: it reads an [`Env`], which is either a
//! snapshot of the process environment or a set of pairs given by a test. Edition 2024 makes
//! `std::env::set_var` unsafe and the workspace forbids unsafe code, so this is also the only way
//! tests can vary the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Prefix of the variables that override config fields (`FERROSTACK__SERVER__PORT=9000`).
pub const OVERRIDE_PREFIX: &str = "FERROSTACK__";

/// Variable naming ferrostack's home directory (default `$HOME/.ferrostack`).
pub const HOME_VAR: &str = "FERROSTACK_HOME";

/// A set of environment variables, read once.
///
/// `Debug` lists variable names only: values may be passwords.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment. Variables whose name or value is not valid UTF-8 are
    /// left out.
    pub fn process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs only (for tests and embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `name`, as set (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name` when it is set and not empty: what `${env.NAME}` treats as "set".
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The `FERROSTACK__*` variables, which override config fields, in name order.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .filter(|(k, _)| k.len() > OVERRIDE_PREFIX.len() && k.starts_with(OVERRIDE_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// ferrostack's home directory; see [`home_dir`].
    pub fn home_dir(&self) -> PathBuf {
        home_dir(self)
    }

    /// Expand a leading `~` (alone or followed by `/`) to the user's home directory (`$HOME`).
    /// Anything else, and everything when `$HOME` is not set, is returned unchanged.
    pub(crate) fn expand_tilde(&self, s: &str) -> String {
        match (s.strip_prefix('~'), self.non_empty("HOME")) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                format!("{home}{rest}")
            }
            _ => s.to_owned(),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").field("names", &self.vars.keys().collect::<Vec<_>>()).finish()
    }
}

/// ferrostack's home directory, where the built-in SQLite files live: `$FERROSTACK_HOME` when set
/// and not empty (a leading `~` is expanded), else `$HOME/.ferrostack`, else `.ferrostack` in the
/// working directory.
pub fn home_dir(env: &Env) -> PathBuf {
    if let Some(dir) = env.non_empty(HOME_VAR) {
        return PathBuf::from(env.expand_tilde(dir));
    }
    match env.non_empty("HOME") {
        Some(home) => PathBuf::from(home).join(".ferrostack"),
        None => PathBuf::from(".ferrostack"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::from_pairs([("PGPASSWORD", "hunter2")]);
        let dbg = format!("{env:?}");
        assert!(dbg.contains("PGPASSWORD"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn home_dir_prefers_ferrostack_home() {
        let env = Env::from_pairs([("HOME", "/home/u"), ("FERROSTACK_HOME", "/srv/fs")]);
        assert_eq!(home_dir(&env), PathBuf::from("/srv/fs"));
        let env = Env::from_pairs([("HOME", "/home/u"), ("FERROSTACK_HOME", "")]);
        assert_eq!(home_dir(&env), PathBuf::from("/home/u/.ferrostack"));
        let env = Env::from_pairs([("HOME", "/home/u"), ("FERROSTACK_HOME", "~/fs")]);
        assert_eq!(home_dir(&env), PathBuf::from("/home/u/fs"));
        assert_eq!(home_dir(&Env::default()), PathBuf::from(".ferrostack"));
    }

    #[test]
    fn tilde_expansion() {
        let env = Env::from_pairs([("HOME", "/home/u")]);
        for (input, want) in [
            ("~", "/home/u"),
            ("~/x.db", "/home/u/x.db"),
            ("~bob/x.db", "~bob/x.db"),
            ("/abs/~/x", "/abs/~/x"),
            ("x", "x"),
        ] {
            assert_eq!(env.expand_tilde(input), want, "input {input:?}");
        }
        assert_eq!(Env::default().expand_tilde("~/x"), "~/x", "no HOME: unchanged");
    }

    #[test]
    fn overrides_are_the_prefixed_pairs() {
        let env = Env::from_pairs([
            ("FERROSTACK__SERVER__PORT", "1"),
            ("FERROSTACK_HOME", "/x"),
            ("FERROSTACK__", "2"),
            ("OTHER", "3"),
        ]);
        assert_eq!(env.overrides().collect::<Vec<_>>(), vec![("FERROSTACK__SERVER__PORT", "1")]);
    }
}
