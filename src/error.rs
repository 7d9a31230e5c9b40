//! Fatal errors: I/O and usage problems that stop a command (exit code 2). Problems in the
//! declarations are never errors of this kind; they are `Diagnostic`s.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    Usage(String),
    /// OUT holds files that mcwan did not write, so mcwan refuses to take it over.
    OutputNotOwned {
        path: PathBuf,
        reason: String,
    },
    /// Another mcwan process holds the output lock.
    OutputLocked {
        path: PathBuf,
    },
    /// A template override does not compile or render.
    Template {
        name: String,
        message: String,
    },
    /// Rendered output failed its own checks: a bug in mcwan or in a template override.
    Internal(String),
}

impl Error {
    #[must_use]
    pub fn io(path: &Path, source: io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "`{}`: {source}", path.display()),
            Error::Usage(message) => f.write_str(message),
            Error::OutputNotOwned { path, reason } => {
                write!(f, "refusing to write into `{}`: {reason}", path.display())
            }
            Error::OutputLocked { path } => {
                write!(f, "`{}` is locked by another mcwan process", path.display())
            }
            Error::Template { name, message } => write!(f, "template `{name}`: {message}"),
            Error::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
