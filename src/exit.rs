//! Exit codes and the error kinds that map onto them (the Groovy steps branch on these).

use std::fmt;

/// Everything went well.
pub const OK: u8 = 0;
/// The system under test failed a check (verification failed, downtime over budget, data lost).
pub const CHECK_FAILED: u8 = 1;
/// Usage or configuration error: nothing was changed.
pub const USAGE: u8 = 2;
/// Infrastructure error (provider, playbook, missing tool): the build fails and cleanup runs.
pub const INFRA: u8 = 3;
/// Another `rollci` holds the workspace lock.
pub const LOCKED: u8 = 4;
/// Stopped by SIGTERM or SIGINT: the step is journaled `aborted` (and `run` still reported
/// and cleaned up).
pub const ABORTED: u8 = 5;

/// The class of a failure; attached to an `anyhow::Error` so `run` can pick the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Check,
    Usage,
    Infra,
    Locked,
    Aborted,
}

impl Kind {
    /// The process exit code of this kind of failure.
    pub fn code(self) -> u8 {
        match self {
            Kind::Check => CHECK_FAILED,
            Kind::Usage => USAGE,
            Kind::Infra => INFRA,
            Kind::Locked => LOCKED,
            Kind::Aborted => ABORTED,
        }
    }

    /// The kind a process exit code stands for (the inverse of [`Kind::code`]).
    pub fn from_code(code: u8) -> Option<Kind> {
        match code {
            CHECK_FAILED => Some(Kind::Check),
            USAGE => Some(Kind::Usage),
            INFRA => Some(Kind::Infra),
            LOCKED => Some(Kind::Locked),
            ABORTED => Some(Kind::Aborted),
            _ => None,
        }
    }
}

/// A classified failure: the message a user reads plus the kind that picks the exit code.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds an `anyhow::Error` of the given kind.
pub fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// The kind of an error: the first classified cause in its chain, else an infrastructure error.
pub fn kind_of(err: &anyhow::Error) -> Kind {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>().map(|f| f.kind))
        .unwrap_or(Kind::Infra)
}

/// The table printed by `rollci --help` and kept in the README.
pub const TABLE: &str = "\
Exit codes:
  0  ok
  1  the system under test failed a check (verification, downtime budget, data lost)
  2  usage or configuration error (nothing was changed)
  3  infrastructure error (provider, playbook, missing tool): clean up
  4  the workspace is locked by another rollci
  5  aborted by SIGTERM or SIGINT (the step is journaled `aborted`; `run` still cleans up)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for kind in [
            Kind::Check,
            Kind::Usage,
            Kind::Infra,
            Kind::Locked,
            Kind::Aborted,
        ] {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Kind::from_code(0), None);
    }

    #[test]
    fn kind_is_found_under_context() {
        let err = fail(Kind::Usage, "bad key").context("failed to load config");
        assert_eq!(kind_of(&err), Kind::Usage);
        assert_eq!(kind_of(&anyhow::anyhow!("io")), Kind::Infra);
    }
}
