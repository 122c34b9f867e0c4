// SPDX-License-Identifier: MIT OR Apache-2.0
//! The prototype (`-- PROG [ARGS...]`): finding it before setup, and the child that becomes it.
//! The child drops every privilege exactly as the relay does, installs the same seccomp filter,
//! puts side A on fd 3 and side B on fd 4 (blocking, one packet per read and per write), closes
//! every other descriptor, and executes PROG with the caller's environment minus what
//! secure-execution mode forbids, plus the systemd socket-activation variables and TUNWIRE_*.
//! It tells the supervisor through the ready pipe: `X` just before execve, then the errno if
//! execve failed (the pipe closes on success). Must not touch routing.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::privilege::{self, Identity};

/// Variables glibc drops from the environment of a secure-execution program (unsecvars.h):
/// a prototype started through the file capability must not get them back from us.
const UNSECURE: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LD_AUDIT",
    "LD_DEBUG",
    "LD_DEBUG_OUTPUT",
    "LD_DYNAMIC_WEAK",
    "LD_HWCAP_MASK",
    "LD_LIBRARY_PATH",
    "LD_ORIGIN_PATH",
    "LD_PRELOAD",
    "LD_PROFILE",
    "LD_SHOW_AUXV",
    "LD_USE_LOAD_BIAS",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
];

/// Byte written to the ready pipe just before execve.
pub const EXEC_MARK: u8 = b'X';

/// Find PROG as a shell would (PATH when the name has no '/': the first file `id` may
/// execute), with `id`'s file-system credentials: 127 when it is not there, 126 when it is
/// there but not executable (a directory, no x bit for `id`). Before any change.
pub fn resolve(prog: &OsStr, id: &Identity) -> Result<PathBuf> {
    let shown = prog.to_string_lossy().into_owned();
    let candidates: Vec<PathBuf> = if prog.as_bytes().contains(&b'/') {
        vec![PathBuf::from(prog)]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        std::env::split_paths(&path).map(|d| d.join(prog)).collect()
    };
    let mut refused = None;
    for found in candidates {
        match privilege::as_identity(id, || executable(&found))? {
            Access::Missing => {}
            Access::Refused => {
                refused.get_or_insert(found);
            }
            Access::Ok => return Ok(found),
        }
    }
    Err(match refused {
        Some(found) => Error::Program(
            126,
            format!(
                "{}: permission denied: {} may not execute it (the wire was not set up)",
                found.display(),
                id.name
            ),
        ),
        None => Error::Program(
            127,
            format!("{shown}: command not found (the wire was not set up)"),
        ),
    })
}

/// What `executable` found at a path.
enum Access {
    Missing,
    /// There, but not an executable file for the current file-system credentials.
    Refused,
    Ok,
}

fn executable(path: &Path) -> Access {
    let Ok(meta) = std::fs::metadata(path) else {
        return Access::Missing;
    };
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Access::Missing;
    };
    // SAFETY: c is a valid NUL-terminated path that outlives the call.
    let ok = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    if ok == 0 && meta.is_file() {
        Access::Ok
    } else {
        Access::Refused
    }
}

/// The child that becomes PROG. Returns only on failure (before or at execve).
pub fn exec_prog(
    cfg: &Config,
    id: &Identity,
    path: &Path,
    fds: [OwnedFd; 2],
    ready: OwnedFd,
    stdout_to_stderr: bool,
) -> Error {
    match prepare(cfg, id, fds, &ready, stdout_to_stderr) {
        Ok(env) => {
            // Its descriptor was moved to fd 5 and closed (or replaced): never close it again.
            std::mem::forget(ready);
            let argv = argv(cfg);
            // The ready pipe now is fd 5 (close-on-exec).
            // SAFETY: fd 5 is the pipe's write end, placed by `place`; it is not used after.
            let ready = unsafe { OwnedFd::from_raw_fd(READY_FD) };
            let _ = nix::unistd::write(&ready, &[EXEC_MARK]);
            let path_c = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
            let errno = match nix::unistd::execve(&path_c, &argv, &env) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = nix::unistd::write(&ready, &(errno as i32).to_ne_bytes());
            Error::Program(
                if errno == Errno::ENOENT { 127 } else { 126 },
                format!("cannot execute {}: {}", path.display(), errno.desc()),
            )
        }
        Err(e) => e,
    }
}

/// Where the ready pipe sits while PROG is being started (closed on exec).
const READY_FD: RawFd = 5;

/// Everything before execve: privileges, signals, descriptors, environment.
fn prepare(
    cfg: &Config,
    id: &Identity,
    fds: [OwnedFd; 2],
    ready: &OwnedFd,
    stdout_to_stderr: bool,
) -> Result<Vec<CString>> {
    privilege::drop_relay(id)?;
    super::seccomp::install()?;
    // Killed with the supervisor, whatever PROG does with SIGTERM.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| Error::os("set the parent-death signal", e))?;
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        return Err(Error::Runtime(
            "the supervisor is gone; not starting the program".into(),
        ));
    }
    // The supervisor blocks the signals it reads from a signalfd; PROG gets them as usual.
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Error::os("unblock signals", e))?;
    // And with their default actions, as systemd starts a service: a signal ignored where
    // tunwire was started (SIGINT in a script's background job, SIGPIPE by Rust's runtime)
    // would otherwise stay ignored, and a forwarded SIGINT would do nothing.
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: SIG_DFL installs no handler; nothing runs in this process before execve.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    place(fds, ready, stdout_to_stderr)?;
    Ok(environment(cfg))
}

/// Side A on fd 3, side B on fd 4, blocking; the ready pipe on fd 5 until execve; stdout on
/// stderr when stdout carries the capture; nothing else open.
fn place(fds: [OwnedFd; 2], ready: &OwnedFd, stdout_to_stderr: bool) -> Result<()> {
    let fail = |what: &str, e: Errno| Error::os(what.to_string(), e);
    // Move all three out of the way of 3, 4 and 5 first, then into place.
    let high: Vec<RawFd> = fds
        .iter()
        .chain([ready])
        .map(|fd| {
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
                .map_err(|e| fail("move a descriptor", e))
        })
        .collect::<Result<_>>()?;
    drop(fds);
    // SAFETY: dup3 of our own descriptor onto fd 5, close-on-exec.
    if unsafe { libc::dup3(high[2], READY_FD, libc::O_CLOEXEC) } < 0 {
        return Err(fail("place the ready pipe", Errno::last()));
    }
    for (target, fd) in [3, 4].into_iter().zip(high.iter().copied()) {
        // SAFETY: dup2 on descriptors this process owns; the old one is closed below by
        // close_range.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(fail("place a device descriptor", Errno::last()));
        }
        let flags = nix::fcntl::fcntl(target, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| fail("read descriptor flags", e))?;
        let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
        flags.remove(nix::fcntl::OFlag::O_NONBLOCK);
        nix::fcntl::fcntl(target, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|e| fail("make a device descriptor blocking", e))?;
    }
    // SAFETY: dup2 of our own stderr onto stdout.
    if stdout_to_stderr && unsafe { libc::dup2(2, 1) } < 0 {
        return Err(fail("send the program's stdout to stderr", Errno::last()));
    }
    // SAFETY: closes descriptors 6 and up of this process (the moved copies, the parent's
    // leftovers); nothing here uses them any more.
    if unsafe { libc::close_range(6, libc::c_uint::MAX, 0) } != 0 {
        return Err(fail("close the other descriptors", Errno::last()));
    }
    Ok(())
}

fn argv(cfg: &Config) -> Vec<CString> {
    cfg.prog
        .iter()
        .flatten()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect()
}

/// The caller's environment, minus what secure-execution mode forbids and what belongs to
/// tunwire's own service manager, plus the wire.
fn environment(cfg: &Config) -> Vec<CString> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !UNSECURE.contains(&k.as_ref())
                && !k.starts_with("LISTEN_")
                && !k.starts_with("TUNWIRE_")
                && k != "NOTIFY_SOCKET"
        })
        .collect();
    let [a, b] = &cfg.sides;
    let add = |env: &mut Vec<(OsString, OsString)>, k: &str, v: String| {
        env.push((k.into(), v.into()));
    };
    add(&mut env, "LISTEN_FDS", "2".into());
    add(&mut env, "LISTEN_FDNAMES", format!("{}:{}", a.name, b.name));
    add(&mut env, "LISTEN_PID", std::process::id().to_string());
    add(
        &mut env,
        "TUNWIRE_A",
        format!("{}={}", a.name, a.addresses()),
    );
    add(
        &mut env,
        "TUNWIRE_B",
        format!("{}={}", b.name, b.addresses()),
    );
    add(&mut env, "TUNWIRE_MTU", cfg.mtu.to_string());
    add(&mut env, "TUNWIRE_MODE", cfg.mode.name().into());
    env.into_iter()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect()
}

/// What `check -- PROG` prints: the command that would run.
pub fn describe(cfg: &Config, user: &str, path: &Path) -> String {
    let env: Vec<String> = environment(cfg)
        .into_iter()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|kv| kv.starts_with("LISTEN_FD") || kv.starts_with("TUNWIRE_"))
        .collect();
    let argv: Vec<String> = std::iter::once(path.display().to_string())
        .chain(
            argv(cfg)
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned()),
        )
        .collect();
    format!(
        "# then, as {user} with no capability, fd 3 = {} and fd 4 = {}{}:\n# {} {}\n",
        cfg.sides[0].name,
        cfg.sides[1].name,
        if cfg.capture.is_some() || cfg.impaired() {
            " (sockets; tunwire stays in the path for the capture and impairment)"
        } else {
            ""
        },
        env.join(" "),
        argv.join(" ")
    )
}
