//! Configuration in three steps: [`lexer`] (text → words with file:line) → [`parse`] (per-section keyword
//! tables → drafts) → [`validate`] (cross-references, defaults → the immutable [`model`]).

pub mod lexer;
pub mod model;
pub mod parse;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use lexer::Pos;
pub use model::Config;

/// The configuration gatehouse runs when no `-f` is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.cfg");
/// The name the embedded default is reported under in messages.
pub const DEFAULT_CONFIG_NAME: &str = "<default>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

/// One `file:line: …` message from any step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub severity: Severity,
    pub msg: String,
}

impl Diagnostic {
    pub fn error(pos: Pos, msg: String) -> Self {
        Diagnostic {
            pos,
            severity: Severity::Error,
            msg,
        }
    }
    pub fn warning(pos: Pos, msg: String) -> Self {
        Diagnostic {
            pos,
            severity: Severity::Warning,
            msg,
        }
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {sev}: {}", self.pos, self.msg)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}", list(.0))]
    Invalid(Vec<Diagnostic>),
}

fn list(d: &[Diagnostic]) -> String {
    d.iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loaded configuration and the warnings met on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Parses several named texts as one configuration, in order (like several `-f`).
pub fn from_sources(sources: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let mut lines = Vec::new();
    let mut diags = Vec::new();
    for (name, text) in sources {
        let (l, errors) = lexer::lex(name, text, &env);
        lines.extend(l);
        diags.extend(errors.into_iter().map(|e| Diagnostic::error(e.pos, e.msg)));
    }
    let drafts = parse::parse(&lines, &mut diags);
    let config = validate::validate(drafts, &mut diags);
    match config {
        Some(config) if !diags.iter().any(Diagnostic::is_error) => Ok(Loaded {
            config,
            warnings: diags,
        }),
        _ => Err(ConfigError::Invalid(diags)),
    }
}

/// Parses one text (tests and the embedded default).
pub fn from_str(name: &str, text: &str) -> Result<Loaded, ConfigError> {
    from_sources(&[(name.to_string(), text.to_string())])
}

/// Reads `-f` files in order; with none, the embedded default.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ConfigError> {
    if paths.is_empty() {
        return from_str(DEFAULT_CONFIG_NAME, DEFAULT_CONFIG);
    }
    let mut sources = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|err| ConfigError::Read {
            path: p.clone(),
            err,
        })?;
        sources.push((display(p), text));
    }
    from_sources(&sources)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests;
