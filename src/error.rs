//! The one error type that reaches `main`, and the exit code each kind maps to.
//!
//! Messages are whole sentences for the operator: they name what is wrong and
//! what to do, on one line. `0` is a clean exit, `1` a runtime failure, `2` bad
//! usage or configuration (the code clap uses for its own errors too).

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or configuration: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The job could not run (login refused, already running, ...): exit code 1.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::Usage(msg.into())
    }

    pub fn runtime(msg: impl Into<String>) -> Self {
        Self::Runtime(msg.into())
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Runtime(_) => ExitCode::from(1),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
