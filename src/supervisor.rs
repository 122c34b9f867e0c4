// SPDX-License-Identifier: MIT OR Apache-2.0
//! The supervisor: the parent after the fork, the main PID under systemd. It holds only
//! CAP_NET_ADMIN and never reads packets. Its children are the relay, or the user's program
//! (and then, when tunwire stays in the path for capture or impairment, the relay too). It
//! waits for them to report ready, forwards SIGINT, SIGTERM and SIGHUP (and SIGUSR1 to the
//! relay), and when the main child exits for any reason (SIGKILL included) it stops the other,
//! kills whatever the program left behind (it is their subreaper), removes the wire and exits
//! with the main child's status. It also watches the two links: a link taken down and up again
//! loses part of the setup, so traffic would silently bypass the wire; the supervisor puts
//! back what is missing. It trusts nothing its children send: one byte, or a mark and an
//! errno, on the ready pipes, and exit statuses. Must not touch the TUN fds.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

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
use crate::wire::exec::EXEC_MARK;

/// How long a child gets to stop after SIGTERM before SIGKILL, once the main child ended.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long the main child gets to act on a forwarded SIGINT or SIGTERM before SIGKILL (a
/// second SIGINT or SIGTERM kills at once).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a link may be down before it is reported: a program that exits closes the TUNs,
/// and the links go down a moment before its exit is seen.
const DOWN_GRACE: Duration = Duration::from_millis(300);

/// What a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Relay,
    /// The user's program.
    Prog,
}

/// One child of the supervisor.
pub struct Child {
    pub pid: Pid,
    pub kind: Kind,
    /// Read end of its ready pipe, until it reported.
    pub ready: Option<OwnedFd>,
    /// It reported ready.
    reported: bool,
    /// How it ended, once reaped.
    ended: Option<WaitStatus>,
}

impl Child {
    pub fn new(pid: Pid, kind: Kind, ready: OwnedFd) -> Child {
        Child {
            pid,
            kind,
            ready: Some(ready),
            reported: false,
            ended: None,
        }
    }
}

/// The supervisor's poll slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Signals,
    Links,
    Ready(usize),
}

pub struct Supervisor {
    /// The main child first (its status is the instance's), then the relay in the path.
    children: Vec<Child>,
    /// The TUN names, for finding our rules at teardown.
    names: [String; 2],
    /// The line logged (and READY=1 sent) once every child reported ready.
    ready_line: String,
    /// How the program is named in the logs.
    prog_name: String,
    /// Link events of the two TUNs, when the subscription worked.
    watch: Option<Netlink>,
    /// The TUNs' interface indices and whether each was last seen up.
    links: [(u32, bool); 2],
    /// The setup, to put back after a link went down and up.
    plan: Vec<Step>,
    /// Set once a stop signal was forwarded: link changes are then expected.
    stopping: bool,
    /// When the children get SIGKILL if they have not stopped by then.
    kill_at: Option<Instant>,
    /// When the links seen going down are reported, if still down.
    report_down_at: Option<Instant>,
}

impl Supervisor {
    /// Watch `children` (main child first), which got the TUNs `names` (interface `indices`)
    /// set up by `plan`; log `ready_line` when all report ready.
    pub fn new(
        children: Vec<Child>,
        names: [String; 2],
        indices: [u32; 2],
        plan: Vec<Step>,
        ready_line: String,
        prog_name: String,
    ) -> Supervisor {
        let watch = Netlink::monitor_links()
            .inspect_err(|e| log::warn!("{e}; a link flap will not be repaired"))
            .ok();
        Supervisor {
            children,
            names,
            ready_line,
            prog_name,
            watch,
            links: indices.map(|i| (i, true)),
            plan,
            stopping: false,
            kill_at: None,
            report_down_at: None,
        }
    }

    /// Run until the main child exits; returns the exit status for the whole instance.
    pub fn run(mut self, signals: &SignalFd) -> u8 {
        let code = self.wait_main(signals);
        self.stop_the_rest();
        notify("STOPPING=1");
        let indices = self.links.map(|(index, _)| index);
        match crate::setup::remove_wire(&self.names, indices) {
            Ok(()) => code,
            Err(e) => {
                log::error!("{e}\n  hint: run `tunwire teardown`");
                EXIT_FAILURE
            }
        }
    }

    fn wait_main(&mut self, signals: &SignalFd) -> u8 {
        let mut ev = EventLoop::new();
        ev.set(Slot::Signals, signals.as_fd(), PollFlags::POLLIN);
        if let Some(watch) = &self.watch {
            ev.set(Slot::Links, watch.as_fd(), PollFlags::POLLIN);
        }
        for (i, c) in self.children.iter().enumerate() {
            if let Some(ready) = &c.ready {
                ev.set(Slot::Ready(i), ready.as_fd(), PollFlags::POLLIN);
            }
        }
        loop {
            let deadline = [self.kill_at, self.report_down_at]
                .into_iter()
                .flatten()
                .min();
            if let Err(e) = ev.wait(deadline) {
                log::error!("{}", Error::os("poll in the supervisor", e));
                self.signal_all(Signal::SIGTERM);
            }
            let now = Instant::now();
            if self.kill_at.is_some_and(|t| t <= now) {
                self.kill_at = None;
                log::warn!(
                    "{} did not stop within {}s of the signal; killing it",
                    self.prog_name,
                    STOP_TIMEOUT.as_secs()
                );
                self.signal_all(Signal::SIGKILL);
            }
            if self.report_down_at.is_some_and(|t| t <= now) {
                self.report_down_at = None;
                self.report_down();
            }
            for i in 0..self.children.len() {
                if ev.is_ready(Slot::Ready(i)) {
                    ev.remove(Slot::Ready(i));
                    self.on_ready_pipe(i);
                }
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

    /// One byte from the relay means ready; from the program, the exec mark alone (the pipe
    /// closes at execve) means it runs, the mark and an errno that execve failed. EOF without
    /// anything means the child failed before (it logged why).
    fn on_ready_pipe(&mut self, i: usize) {
        let Some(fd) = self.children[i].ready.take() else {
            return;
        };
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
            if self.children[i].kind == Kind::Relay {
                break;
            }
        }
        let ok = match self.children[i].kind {
            Kind::Relay => got == 1,
            Kind::Prog => got == 1 && buf[0] == EXEC_MARK,
        };
        if !ok {
            return;
        }
        self.children[i].reported = true;
        // Ready only when every child is.
        if self.children.iter().all(|c| c.reported) && !self.stopping {
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
                    self.report_down_at
                        .get_or_insert_with(|| Instant::now() + DOWN_GRACE);
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

    /// Warn about links still down, unless the children are ending anyway (a program that
    /// exits closes the TUNs before its exit can be reaped).
    fn report_down(&mut self) {
        self.reap();
        if self.stopping || self.children.iter().any(|c| c.ended.is_some()) {
            return;
        }
        for (i, _) in self.links.iter().enumerate().filter(|(_, l)| !l.1) {
            log::warn!(
                "{} went down: the wire is cut until it comes up again",
                self.names[i]
            );
        }
    }

    fn signal_all(&self, sig: Signal) {
        for c in self.children.iter().filter(|c| c.ended.is_none()) {
            if let Err(e) = kill(c.pid, sig) {
                log::debug!("forwarding {sig} to {}: {e}", c.pid);
            }
        }
    }

    /// Forward stop/reload/report signals; reap children on SIGCHLD. Returns the instance's
    /// exit status once the main child has ended.
    fn on_signal(&mut self, signals: &SignalFd) -> Option<u8> {
        while let Ok(Some(info)) = signals.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGHUP => self.signal_all(sig),
                Signal::SIGINT | Signal::SIGTERM if self.stopping => {
                    log::warn!("{sig} again: killing {}", self.prog_name);
                    self.signal_all(Signal::SIGKILL);
                }
                Signal::SIGINT | Signal::SIGTERM => {
                    self.stopping = true;
                    self.kill_at = Some(Instant::now() + STOP_TIMEOUT);
                    self.signal_all(sig);
                }
                Signal::SIGUSR1 => {
                    for c in self.children.iter().filter(|c| c.kind == Kind::Relay) {
                        let _ = kill(c.pid, sig);
                    }
                }
                _ => {}
            }
        }
        self.reap();
        let main = self.children.first()?;
        if let Some(status) = main.ended {
            return Some(self.status_of(main.kind, status));
        }
        // The relay in the path ended before the program: the wire is cut, stop.
        if let Some(relay) = self.children.iter().skip(1).find(|c| c.ended.is_some()) {
            let how = match relay.ended {
                Some(WaitStatus::Signaled(_, sig, _)) => format!(" (killed by {sig})"),
                Some(WaitStatus::Exited(_, code)) => format!(" (exit status {code})"),
                _ => String::new(),
            };
            log::error!(
                "the relay ended{how} while {} runs; stopping",
                self.prog_name
            );
            self.stopping = true;
            self.kill_at.get_or_insert(Instant::now() + STOP_TIMEOUT);
            self.signal_all(Signal::SIGTERM);
        }
        None
    }

    /// Reap every child that ended (our own, and orphans of the program we inherited).
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { return };
                    if let Some(c) = self.children.iter_mut().find(|c| c.pid == pid) {
                        if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                            c.ended = Some(status);
                        }
                    }
                }
            }
        }
    }

    /// The instance's exit status for how the main child ended.
    fn status_of(&self, kind: Kind, status: WaitStatus) -> u8 {
        let relay_failed = self.children.iter().skip(1).any(|c| {
            matches!(c.ended, Some(WaitStatus::Signaled(..)))
                || matches!(c.ended, Some(WaitStatus::Exited(_, code)) if code != 0)
        });
        match (kind, status) {
            (Kind::Relay, WaitStatus::Exited(_, code)) => {
                u8::try_from(code).unwrap_or(EXIT_FAILURE)
            }
            (Kind::Relay, WaitStatus::Signaled(_, sig, _)) => {
                log::error!("the relay was killed by {sig}; tearing down");
                EXIT_FAILURE
            }
            (Kind::Prog, WaitStatus::Exited(_, code)) => {
                log::info!("{} exited with status {code}; tearing down", self.prog_name);
                if relay_failed && code == 0 {
                    EXIT_FAILURE
                } else {
                    u8::try_from(code).unwrap_or(EXIT_FAILURE)
                }
            }
            (Kind::Prog, WaitStatus::Signaled(_, sig, _)) => {
                log::warn!("{} was killed by {sig}; tearing down", self.prog_name);
                128u8.saturating_add(sig as u8)
            }
            _ => EXIT_FAILURE,
        }
    }

    /// After the main child: stop the others (SIGTERM, then SIGKILL after a grace period), and
    /// kill whatever the program left running (its orphans are ours: we are its subreaper),
    /// so nothing keeps the devices.
    fn stop_the_rest(&mut self) {
        self.stopping = true;
        self.signal_all(Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while self.children.iter().any(|c| c.ended.is_none()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            self.reap();
        }
        self.signal_all(Signal::SIGKILL);
        for _ in 0..100 {
            let orphans = crate::setup::state::children_of(std::process::id());
            if orphans.is_empty() {
                break;
            }
            for pid in orphans {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
            self.reap();
        }
        self.reap();
    }
}
