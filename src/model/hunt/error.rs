//! `HuntError`, the one-line error of loading a hunt, and `Ctx`, which names the file and
//! the item (zone, reward, feature) an error is about.

use std::path::{Path, PathBuf};

/// Why a hunt definition could not be loaded. Its `Display` is one line that starts with
/// the file concerned, then names the item when there is one, e.g.
/// `dataflows/x/hunt.toml: reward "golden-key": unknown zone "fountian"`.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    /// The file could not be read.
    #[error("{}: cannot read file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON.
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// The file parses but its content is not a valid hunt definition.
    #[error("{}: {}{message}", path.display(), ItemPrefix(item.as_deref()))]
    Invalid {
        path: PathBuf,
        /// The zone, reward or feature concerned, e.g. `zone "fountain"`, `zones[2]`,
        /// `feature 3 ("lake")`; `None` for top-level settings.
        item: Option<String>,
        message: String,
    },
}

impl HuntError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            HuntError::Read { path, .. }
            | HuntError::Syntax { path, .. }
            | HuntError::Invalid { path, .. } => path,
        }
    }
}

struct ItemPrefix<'a>(Option<&'a str>);

impl std::fmt::Display for ItemPrefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(item) => write!(f, "{item}: "),
            None => Ok(()),
        }
    }
}

/// The file and item that validation errors are reported against.
#[derive(Clone, Debug)]
pub(crate) struct Ctx<'a> {
    pub path: &'a Path,
    pub item: Option<String>,
}

impl<'a> Ctx<'a> {
    pub fn file(path: &'a Path) -> Ctx<'a> {
        Ctx { path, item: None }
    }

    pub fn item(&self, item: impl Into<String>) -> Ctx<'a> {
        Ctx {
            path: self.path,
            item: Some(item.into()),
        }
    }

    pub fn err(&self, message: impl Into<String>) -> HuntError {
        HuntError::Invalid {
            path: self.path.to_path_buf(),
            item: self.item.clone(),
            message: message.into(),
        }
    }
}

/// Reads a file to a string, reporting failures against `path`.
pub(crate) fn read(path: &Path) -> Result<String, HuntError> {
    std::fs::read_to_string(path).map_err(|source| HuntError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A one-line message for a syntax error at byte offset `at` of `text`.
pub(crate) fn syntax(path: &Path, text: &str, at: Option<usize>, message: &str) -> HuntError {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = match at {
        Some(at) => {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    };
    HuntError::Syntax {
        path: path.to_path_buf(),
        message,
    }
}
