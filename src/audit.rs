// SPDX-License-Identifier: MIT OR Apache-2.0
//! The audit trail: one line per start, refusal, stop and teardown, with the caller's uid and
//! name, the wire and the decision, so that an administrator can answer "who ran which wire
//! when" with `journalctl -t tunwire`. Each line goes to stderr (through the log) and to the
//! system log socket (/dev/log, tag `tunwire`, facility authpriv). Under systemd, stderr already
//! is the journal, so the socket is skipped. Must never fail a start: a missing syslog is fine.

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
    if std::env::var_os("JOURNAL_STREAM").is_some() {
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
    // SAFETY: getauxval reads the process's auxiliary vector; no memory is passed.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    match std::env::var("TUNWIRE_SYSLOG_SOCKET") {
        Ok(path) if !secure && !path.is_empty() => path,
        _ => SYSLOG.to_string(),
    }
}
