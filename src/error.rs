// SPDX-License-Identifier: MIT OR Apache-2.0
//! One error type for the whole program. Each variant names the operation that failed and the
//! object it failed on; `Display` gives "failed to <verb> <object>: <cause>" plus a hint where
//! there is one, and `exit_code` maps it to the documented exit status. Nothing here does I/O.

use std::fmt;

use nix::errno::Errno;

/// The documented exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOPERM: u8 = 77;

#[derive(Debug)]
pub enum Error {
    /// Bad command line or configuration file: exit 2.
    Usage(String),
    /// The caller may not start tunwire (no capability, not in an allowed group): exit 77.
    NotPermitted(String),
    /// A system call on a named object failed.
    Os {
        what: String,
        errno: Errno,
        hint: Option<&'static str>,
    },
    /// The kernel refused a netlink request; `ext_ack` is its extended-ack text, if any.
    Netlink {
        what: String,
        errno: Errno,
        ext_ack: Option<String>,
    },
    /// Anything else that stops the program, already phrased for the user.
    Runtime(String),
    /// The prototype could not be run: a shell's status (127 not found, 126 not executable).
    Program(u8, String),
}

impl Error {
    pub fn os(what: impl Into<String>, errno: Errno) -> Self {
        Error::Os {
            what: what.into(),
            errno,
            hint: None,
        }
    }

    pub fn os_hint(what: impl Into<String>, errno: Errno, hint: &'static str) -> Self {
        Error::Os {
            what: what.into(),
            errno,
            hint: Some(hint),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::NotPermitted(_) => EXIT_NOPERM,
            Error::Os { errno, .. } | Error::Netlink { errno, .. }
                if matches!(errno, Errno::EPERM | Errno::EACCES) =>
            {
                EXIT_NOPERM
            }
            Error::Program(code, _) => *code,
            _ => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::NotPermitted(msg) | Error::Runtime(msg) | Error::Program(_, msg) => {
                write!(f, "{msg}")
            }
            Error::Os { what, errno, hint } => {
                write!(f, "failed to {what}: {}", errno.desc())?;
                if let Some(hint) = hint {
                    write!(f, "\n  hint: {hint}")?;
                } else if matches!(errno, Errno::EPERM | Errno::EACCES) {
                    write!(f, "\n  hint: run as root, or give the binary CAP_NET_ADMIN")?;
                }
                Ok(())
            }
            Error::Netlink {
                what,
                errno,
                ext_ack,
            } => {
                write!(f, "failed to {what}: {}", errno.desc())?;
                if let Some(text) = ext_ack {
                    write!(f, " ({text})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::NotPermitted("x".into()).exit_code(), 77);
        assert_eq!(Error::os("open tun0", Errno::EPERM).exit_code(), 77);
        assert_eq!(Error::os("open tun0", Errno::EBUSY).exit_code(), 1);
        assert_eq!(Error::Runtime("x".into()).exit_code(), 1);
    }

    #[test]
    fn display_names_object_and_cause() {
        let e = Error::Netlink {
            what: "add rule iif tun0 lookup 13".into(),
            errno: Errno::EEXIST,
            ext_ack: Some("Rule exists".into()),
        };
        assert_eq!(
            e.to_string(),
            "failed to add rule iif tun0 lookup 13: File exists (Rule exists)"
        );
    }
}
