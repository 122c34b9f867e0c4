// SPDX-License-Identifier: MIT OR Apache-2.0
//! The supervisor: the parent after the fork, the main PID under systemd. It holds only
//! CAP_NET_ADMIN and never reads packets. It waits for the relay to report ready, forwards
//! SIGINT, SIGTERM, SIGHUP and SIGUSR1 to it, and when the relay exits for any reason (SIGKILL
//! included) it removes our rules and exits with the relay's status. Must not touch the TUN fds.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, EXIT_FAILURE};
use crate::netlink::Netlink;
use crate::notify::notify;

pub struct Supervisor {
    pub relay: Pid,
    /// Read end of the pipe the relay writes one byte to once it relays.
    pub ready: Option<OwnedFd>,
    /// The TUN names, for finding our rules at teardown.
    pub names: [String; 2],
    /// The line logged (and READY=1 sent) once the relay reports ready.
    pub ready_line: String,
}

impl Supervisor {
    /// Run until the relay exits; returns the exit status for the whole instance.
    pub fn run(mut self, signals: &SignalFd) -> u8 {
        let code = self.wait_relay(signals);
        notify("STOPPING=1");
        match teardown(&self.names) {
            Ok(()) => code,
            Err(e) => {
                log::error!("{e}\n  hint: run `tunwire teardown` with the same options");
                EXIT_FAILURE
            }
        }
    }

    fn wait_relay(&mut self, signals: &SignalFd) -> u8 {
        loop {
            let (sig_ready, pipe_ready) = {
                let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
                if let Some(ready) = &self.ready {
                    fds.push(PollFd::new(ready.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => {
                        log::error!("{}", Error::os("poll in the supervisor", e));
                        let _ = kill(self.relay, Signal::SIGTERM);
                    }
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            if pipe_ready {
                self.on_ready_pipe();
            }
            if sig_ready {
                if let Some(code) = self.on_signal(signals) {
                    return code;
                }
            }
        }
    }

    fn on_ready_pipe(&mut self) {
        let Some(fd) = self.ready.take() else {
            return;
        };
        let mut byte = [0u8; 1];
        // One byte means ready; EOF means the relay failed before that (it logged why).
        if matches!(
            nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut byte),
            Ok(1)
        ) {
            log::info!("{}", self.ready_line);
            notify("READY=1");
        }
    }

    /// Forward stop/reload/report signals; reap the relay on SIGCHLD.
    fn on_signal(&mut self, signals: &SignalFd) -> Option<u8> {
        while let Ok(Some(info)) = signals.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGUSR1 => {
                    if let Err(e) = kill(self.relay, sig) {
                        log::debug!("forwarding {sig} to the relay: {e}");
                    }
                    continue;
                }
                _ => continue,
            }
        }
        match waitpid(self.relay, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(u8::try_from(code).unwrap_or(EXIT_FAILURE)),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                log::error!("the relay was killed by {sig}; tearing down");
                Some(EXIT_FAILURE)
            }
            Ok(_) => None,
            Err(Errno::ECHILD) => Some(EXIT_FAILURE),
            Err(_) => None,
        }
    }
}

/// Remove the rules a (possibly killed) instance on these names left. With the TUNs gone, the
/// addresses and routes went with them; the rules are all that stays.
pub fn teardown(names: &[String; 2]) -> crate::error::Result<()> {
    let mut nl = Netlink::open()?;
    let removed = nl.remove_our_rules(&[names[0].as_str(), names[1].as_str()])?;
    log::debug!("removed {removed} rules");
    Ok(())
}
