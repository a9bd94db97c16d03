//! Loading errors, and the problems an invalid config is reported with.

use std::fmt;
use std::path::PathBuf;

/// Why a run config could not be loaded.
///
/// No variant ever carries the value of an environment variable or a secret: messages name
/// variables and fields, not what they hold.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed YAML.
    #[error("{} is not valid YAML{}: {message}", file_label(file.as_ref()), position(*line, *column))]
    Yaml {
        /// The file, when loading one (not for `load_str`).
        file: Option<PathBuf>,
        /// 1-based line of the error, when the parser gives one.
        line: Option<usize>,
        /// 1-based column of the error, when the parser gives one.
        column: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// The YAML is well-formed but the config is not valid: every problem found, each with its path.
    #[error("{header}\n{0}", header = invalid_header(.0))]
    Invalid(Problems),
}

fn invalid_header(problems: &Problems) -> String {
    match problems.len() {
        1 => "invalid configuration (1 problem):".to_owned(),
        n => format!("invalid configuration ({n} problems):"),
    }
}

fn file_label(file: Option<&PathBuf>) -> String {
    match file {
        Some(p) => format!("config file {}", p.display()),
        None => "the config text".to_owned(),
    }
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// One thing wrong with a config, at a dotted path such as `storage.stores.inference.backend` or
/// `providers.vector_io[0].config.persistence.backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, with `[i]` for list entries.
    pub path: String,
    /// What is wrong, and where useful what would be right.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config. `Display` prints one `<path>: <message>` per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// The problems, in the order they were found.
    pub fn as_slice(&self) -> &[Problem] {
        &self.0
    }

    /// Iterate over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first problem at exactly `path`, if any.
    pub fn at(&self, path: &str) -> Option<&Problem> {
        self.0.iter().find(|p| p.path == path)
    }
}

impl From<Vec<Problem>> for Problems {
    fn from(v: Vec<Problem>) -> Self {
        Self(v)
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
