// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading /etc/tunwire/policy.conf, whose path is fixed at build time: no option or variable
//! can name another. A file that root does not own, or that group or others may write (or whose
//! directory they may write), could have been written by a member, so it binds nobody: tunwire
//! refuses non-root starts until root fixes it. Without the file, the built-in policy applies.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Policy, Source, DEFAULT_PATH};
use crate::error::{Error, Result};

/// Larger policy files are refused, not read.
const MAX_BYTES: u64 = 64 << 10;

/// The policy in force: the file, or the built-in one when it does not exist.
pub fn load() -> Result<Policy> {
    load_from(Path::new(DEFAULT_PATH))
}

/// The policy binds every start whose real uid is not 0. Root is not bound by it, but takes
/// automatic pairs from its pools: a broken file then only costs a warning.
pub fn load_for_caller() -> Result<Policy> {
    match load() {
        Err(e) if nix::unistd::Uid::current().is_root() => {
            log::warn!("{e}; root is not bound by it, using the built-in pools");
            Ok(Policy::builtin())
        }
        other => other,
    }
}

fn load_from(path: &Path) -> Result<Policy> {
    let shown = path.display();
    let refuse = |why: String| {
        Err(Error::NotPermitted(format!(
            "the policy {shown} {why}; tunwire refuses non-root starts until root fixes it"
        )))
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::builtin()),
        Err(e) => return refuse(format!("cannot be read: {e}")),
    };
    let meta = file.metadata().map_err(|e| Error::Runtime(e.to_string()))?;
    if !meta.is_file() {
        return refuse("is not a regular file".into());
    }
    if meta.uid() != 0 {
        return refuse(format!("belongs to uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by group or others (mode {:o}); run chmod go-w {shown}",
            meta.mode() & 0o7777
        ));
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::metadata(dir) {
            if d.uid() != 0 || d.mode() & 0o022 != 0 {
                return refuse(format!(
                    "lies in {}, which someone other than root may write",
                    dir.display()
                ));
            }
        }
    }
    if meta.len() > MAX_BYTES {
        return refuse(format!("is larger than {} KiB", MAX_BYTES >> 10));
    }
    let mut text = String::new();
    if let Err(e) = file.take(MAX_BYTES).read_to_string(&mut text) {
        return refuse(format!("cannot be read: {e}"));
    }
    Policy::parse(&text, Source::File(shown.to_string()))
        .or_else(|e| refuse(format!("is broken: {e}")))
}
