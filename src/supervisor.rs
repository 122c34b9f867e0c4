// SPDX-License-Identifier: MIT OR Apache-2.0
//! The supervisor: the parent after the fork, the main PID under systemd. It holds only
//! CAP_NET_ADMIN and never reads packets. It waits for the relay to report ready, forwards
//! SIGINT, SIGTERM, SIGHUP and SIGUSR1 to it, and when the relay exits for any reason (SIGKILL
//! included) it removes our rules and exits with the relay's status. It also watches the two
//! links: a link taken down and up again loses part of the setup (IPv6 addresses, the moved
//! local routes), so traffic would silently bypass the wire; the supervisor puts back what is
//! missing. Must not touch the TUN fds.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, EXIT_FAILURE};
use crate::event::{EventLoop, PollFlags};
use crate::notify::notify;
use crate::setup::netlink::Netlink;
use crate::setup::plan::Step;

/// The supervisor's poll slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Signals,
    Links,
    Ready,
}

pub struct Supervisor {
    relay: Pid,
    /// Read end of the pipe the relay writes one byte to once it relays.
    ready: Option<OwnedFd>,
    /// The TUN names, for finding our rules at teardown.
    names: [String; 2],
    /// The line logged (and READY=1 sent) once the relay reports ready.
    ready_line: String,
    /// Link events of the two TUNs, when the subscription worked.
    watch: Option<Netlink>,
    /// The TUNs' interface indices and whether each was last seen up.
    links: [(u32, bool); 2],
    /// The setup, to put back after a link went down and up.
    plan: Vec<Step>,
    /// Set once a stop signal was forwarded: link changes are then expected.
    stopping: bool,
}

impl Supervisor {
    /// Watch `relay`, which was forked with the TUNs `names` (interface `indices`) set up by
    /// `plan`; log `ready_line` when it reports ready through `ready`.
    pub fn new(
        relay: Pid,
        ready: OwnedFd,
        names: [String; 2],
        indices: [u32; 2],
        plan: Vec<Step>,
        ready_line: String,
    ) -> Supervisor {
        let watch = Netlink::monitor_links()
            .inspect_err(|e| log::warn!("{e}; a link flap will not be repaired"))
            .ok();
        Supervisor {
            relay,
            ready: Some(ready),
            names,
            ready_line,
            watch,
            links: indices.map(|i| (i, true)),
            plan,
            stopping: false,
        }
    }

    /// Run until the relay exits; returns the exit status for the whole instance.
    pub fn run(mut self, signals: &SignalFd) -> u8 {
        let code = self.wait_relay(signals);
        notify("STOPPING=1");
        let indices = self.links.map(|(index, _)| index);
        match crate::setup::remove_wire(&self.names, indices) {
            Ok(()) => code,
            Err(e) => {
                log::error!("{e}\n  hint: run `tunwire teardown` with the same options");
                EXIT_FAILURE
            }
        }
    }

    fn wait_relay(&mut self, signals: &SignalFd) -> u8 {
        let mut ev = EventLoop::new();
        ev.set(Slot::Signals, signals.as_fd(), PollFlags::POLLIN);
        if let Some(watch) = &self.watch {
            ev.set(Slot::Links, watch.as_fd(), PollFlags::POLLIN);
        }
        if let Some(ready) = &self.ready {
            ev.set(Slot::Ready, ready.as_fd(), PollFlags::POLLIN);
        }
        loop {
            if let Err(e) = ev.wait(None) {
                log::error!("{}", Error::os("poll in the supervisor", e));
                let _ = kill(self.relay, Signal::SIGTERM);
            }
            if ev.is_ready(Slot::Ready) {
                ev.remove(Slot::Ready);
                self.on_ready_pipe();
            }
            if ev.is_ready(Slot::Links) {
                self.on_link_events();
            }
            if ev.is_ready(Slot::Signals) {
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
        if matches!(nix::unistd::read(fd.as_raw_fd(), &mut byte), Ok(1)) {
            log::info!("{}", self.ready_line);
            notify("READY=1");
        }
    }

    /// A TUN that comes back up after being down has lost part of the setup: put it back.
    fn on_link_events(&mut self) {
        let events = match self.watch.as_mut().map(Netlink::link_events) {
            Some(Ok(events)) => events,
            Some(Err(e)) => {
                // Typically ENOBUFS after a burst of events: the watch goes on.
                log::debug!("link events: {e}");
                return;
            }
            None => return,
        };
        if self.stopping {
            return; // the links go down because we stop
        }
        let mut came_up: Vec<&str> = Vec::new();
        for (index, up) in events {
            for (i, link) in self.links.iter_mut().enumerate() {
                if link.0 != index || link.1 == up {
                    continue;
                }
                link.1 = up;
                if up {
                    came_up.push(&self.names[i]);
                } else {
                    log::warn!(
                        "{} went down: the wire is cut until it comes up again",
                        self.names[i]
                    );
                }
            }
        }
        if came_up.is_empty() {
            return;
        }
        // Only the steps of the link that went down were undone.
        let lost: Vec<&Step> = self
            .plan
            .iter()
            .filter(|s| came_up.contains(&s.dev()))
            .collect();
        match Netlink::open().and_then(|mut nl| lost.iter().try_for_each(|s| nl.reapply(s))) {
            Ok(()) => log::warn!(
                "{} came back up; the setup it lost was put back",
                came_up.join(" and ")
            ),
            Err(e) => {
                log::error!("{e}\n  hint: the wire may now bypass user space; restart tunwire")
            }
        }
    }

    /// Forward stop/reload/report signals; reap the relay on SIGCHLD.
    fn on_signal(&mut self, signals: &SignalFd) -> Option<u8> {
        while let Ok(Some(info)) = signals.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if matches!(
                sig,
                Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGUSR1
            ) {
                self.stopping |= matches!(sig, Signal::SIGINT | Signal::SIGTERM);
                if let Err(e) = kill(self.relay, sig) {
                    log::debug!("forwarding {sig} to the relay: {e}");
                }
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
