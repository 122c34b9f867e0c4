// SPDX-License-Identifier: MIT OR Apache-2.0
//! The event loop of a single-threaded process (relay and supervisor): a set of named poll
//! slots (file descriptors with the events wanted) and one deadline, waited for with ppoll(2);
//! and the blocked signals, read from a signalfd in that loop. Time enters only here. The set
//! is kept between waits, so the hot path rebuilds nothing. Must not read or write any of the
//! descriptors: the owner of the slots does that.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

pub use nix::poll::PollFlags;

use crate::error::{Error, Result};

/// Block the signals both processes handle, before anything is set up, so a ^C during setup
/// cannot strand state: they wait in the mask until a signalfd reads them.
pub fn block_signals() -> Result<SigSet> {
    let mut mask = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGCHLD,
    ] {
        mask.add(sig);
    }
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| Error::os("block signals", e))?;
    // An ignored signal is discarded even while blocked, so a signalfd would never see it:
    // one ignored where tunwire was started (SIGINT in a script's background job, SIGCHLD,
    // which would also reap the children behind our back) gets its default action back.
    // Blocked, the default action never runs; the signalfd reads the signal.
    for sig in mask.iter() {
        // SAFETY: SIG_DFL installs no handler.
        unsafe { signal::signal(sig, signal::SigHandler::SigDfl) }
            .map_err(|e| Error::os(format!("reset the action of {sig}"), e))?;
    }
    Ok(mask)
}

/// A non-blocking signalfd for the blocked `mask`.
pub fn signalfd(mask: &SigSet) -> Result<SignalFd> {
    SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::os("create a signalfd", e))
}

/// Poll slots named by `S` (an enum of the owner's), and the revents of the last wait.
pub struct EventLoop<S> {
    fds: Vec<libc::pollfd>,
    slots: Vec<S>,
}

impl<S: Copy + PartialEq> Default for EventLoop<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Copy + PartialEq> EventLoop<S> {
    pub fn new() -> Self {
        EventLoop {
            fds: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Watch `fd` for `events` under the name `slot` (replacing what `slot` watched before).
    /// The caller keeps `fd` open for as long as the slot exists.
    pub fn set(&mut self, slot: S, fd: BorrowedFd<'_>, events: PollFlags) {
        let entry = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: events.bits(),
            revents: 0,
        };
        match self.slots.iter().position(|s| *s == slot) {
            Some(i) => self.fds[i] = entry,
            None => {
                self.slots.push(slot);
                self.fds.push(entry);
            }
        }
    }

    /// Change the events of an existing slot (e.g. add POLLOUT while output is pending).
    pub fn set_events(&mut self, slot: S, events: PollFlags) {
        if let Some(i) = self.slots.iter().position(|s| *s == slot) {
            self.fds[i].events = events.bits();
        }
    }

    /// Stop watching `slot`.
    pub fn remove(&mut self, slot: S) {
        if let Some(i) = self.slots.iter().position(|s| *s == slot) {
            self.slots.swap_remove(i);
            self.fds.swap_remove(i);
        }
    }

    /// Wait until a slot is ready or `deadline` passes (None: no deadline). EINTR is a normal
    /// return with nothing ready.
    pub fn wait(&mut self, deadline: Option<Instant>) -> std::result::Result<(), Errno> {
        for fd in &mut self.fds {
            fd.revents = 0;
        }
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let ts = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        // SAFETY: fds points to fds.len() initialised pollfd structs owned by self; ts is null
        // or points to a timespec that outlives the call; no signal mask is passed.
        let rc = unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                ts,
                std::ptr::null(),
            )
        };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The revents of `slot` after the last wait (empty when not ready or unknown).
    pub fn revents(&self, slot: S) -> PollFlags {
        self.slots
            .iter()
            .position(|s| *s == slot)
            .map_or(PollFlags::empty(), |i| {
                PollFlags::from_bits_truncate(self.fds[i].revents)
            })
    }

    /// Whether `slot` has any event after the last wait.
    pub fn is_ready(&self, slot: S) -> bool {
        !self.revents(slot).is_empty()
    }

    /// The slots with events after the last wait, in slot order.
    pub fn ready(&self) -> impl Iterator<Item = S> + '_ {
        self.slots
            .iter()
            .zip(&self.fds)
            .filter(|(_, f)| f.revents != 0)
            .map(|(s, _)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Slot {
        A,
        B,
    }

    #[test]
    fn slots_deadline_and_readiness() {
        let (ra, wa) = nix::unistd::pipe().unwrap();
        let (rb, _wb) = nix::unistd::pipe().unwrap();
        let mut ev = EventLoop::new();
        ev.set(Slot::A, ra.as_fd(), PollFlags::POLLIN);
        ev.set(Slot::B, rb.as_fd(), PollFlags::POLLIN);
        let start = Instant::now();
        ev.wait(Some(start + Duration::from_millis(30))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(29));
        assert_eq!(ev.ready().count(), 0);
        nix::unistd::write(&wa, b"x").unwrap();
        ev.wait(None).unwrap();
        assert!(ev.is_ready(Slot::A) && !ev.is_ready(Slot::B));
        assert_eq!(ev.ready().collect::<Vec<_>>(), vec![Slot::A]);
        ev.remove(Slot::A);
        ev.wait(Some(Instant::now())).unwrap();
        assert_eq!(ev.ready().count(), 0);
    }
}
