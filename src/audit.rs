// SPDX-License-Identifier: MIT OR Apache-2.0
//! The audit trail: one line per start, refusal, stop and teardown, with the caller's uid and
//! name, the wire and the decision, so that an administrator can answer "who ran which wire
//! when" with `journalctl -t tunwire`. Each line goes to stderr (through the log; -q does not
//! silence it) and to the system log socket (/dev/log, tag `tunwire`, facility authpriv). When
//! stderr provably is systemd's journal stream, the socket is skipped to avoid a double line,
//! but never in secure-execution mode: a member must not be able to talk tunwire out of its
//! audit trail. Must never fail a start: a missing syslog is fine.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use nix::libc;
use nix::unistd::{Uid, User};

const SYSLOG: &str = "/dev/log";

/// Who called, as the audit trail names them: `uid 1000 (alice)`, or for root under sudo
/// `uid 0 (root, via sudo from alice)`.
pub fn caller() -> &'static str {
    static CALLER: OnceLock<String> = OnceLock::new();
    CALLER.get_or_init(|| {
        let uid = Uid::current();
        let name = User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| "?".to_string(), |u| u.name);
        match std::env::var("SUDO_USER").ok().filter(|_| uid.is_root()) {
            Some(from) => format!("uid {uid} ({name}, via sudo from {from})"),
            None => format!("uid {uid} ({name})"),
        }
    })
}

/// Record one event: `what` says what happened, e.g. "start allowed: tun0=... <-> ...".
pub fn record(what: &str) {
    let line = format!("audit: {}: {what}", caller());
    log::info!("{line}");
    if !secure() && journal_is_stderr() {
        return;
    }
    let msg = format!(
        "<{}>tunwire[{}]: {line}",
        libc::LOG_AUTHPRIV | libc::LOG_NOTICE,
        std::process::id()
    );
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.send_to(msg.as_bytes(), socket_path());
    }
}

/// /dev/log; tests may point elsewhere with TUNWIRE_SYSLOG_SOCKET, which a process in
/// secure-execution mode (started through the file capability) ignores, so a member cannot
/// divert their own audit trail.
fn socket_path() -> String {
    match std::env::var("TUNWIRE_SYSLOG_SOCKET") {
        Ok(path) if !secure() && !path.is_empty() => path,
        _ => SYSLOG.to_string(),
    }
}

/// Secure-execution mode: started through a file capability (or setuid), so the environment
/// is the caller's to choose and must not steer anything that protects others.
fn secure() -> bool {
    // SAFETY: getauxval reads the process's auxiliary vector; no memory is passed.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether stderr is the journal stream JOURNAL_STREAM names (`DEVICE:INODE`, as
/// systemd.exec(5) says to check).
fn journal_is_stderr() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    nix::sys::stat::fstat(2).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}
