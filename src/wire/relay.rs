// SPDX-License-Identifier: MIT OR Apache-2.0
//! The relay: moves packets between the two TUN fds in one event loop, in an unprivileged
//! process. Each wake-up drains every ready TUN up to `BATCH` packets; per packet there is one
//! read, one write and, with capture on, one record into a reused buffer: no allocation, no
//! logging, no other system call. A failed write drops and counts the packet; it never stops
//! the relay. Must not touch routing or privileges.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::capture::{Capture, Meta};
use crate::error::{Error, Result};
use crate::event::{EventLoop, PollFlags};

/// Packets drained from one TUN per wake-up before the other side gets its turn.
const BATCH: usize = 64;
/// The largest read: a 64 KiB GSO super-packet plus its virtio_net_hdr, with room to spare.
const BUF_LEN: usize = 65_536 + 256;
/// With capture on, wake at least this often so buffered records reach the file.
const CAPTURE_TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
}

/// The relay's poll slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Tun(usize),
    Signals,
}

pub struct Relay {
    tuns: [OwnedFd; 2],
    names: [String; 2],
    /// Bytes of virtio_net_hdr before each packet (0 with offload off).
    hdr: usize,
    capture: Option<Capture>,
    /// counters[i] is the direction names[i] -> names[1 - i].
    counters: [Counters; 2],
    buf: Vec<u8>,
}

impl Relay {
    pub fn new(
        tuns: [OwnedFd; 2],
        names: [String; 2],
        hdr: usize,
        capture: Option<Capture>,
    ) -> Relay {
        Relay {
            tuns,
            names,
            hdr,
            capture,
            counters: [Counters::default(); 2],
            buf: vec![0; BUF_LEN],
        }
    }

    /// Relay until SIGINT or SIGTERM. Logs the counters at exit.
    pub fn run(&mut self, signals: &SignalFd) -> Result<()> {
        let result = self.run_loop(signals);
        if let Some(capture) = self.capture.as_mut() {
            capture.finish();
        }
        self.log_counters();
        let sig = result?;
        log::debug!("relay stopping on {sig}");
        Ok(())
    }

    /// Returns the signal that ended the loop.
    fn run_loop(&mut self, signals: &SignalFd) -> Result<Signal> {
        let mut ev = EventLoop::new();
        for (i, tun) in self.tuns.iter().enumerate() {
            ev.set(Slot::Tun(i), tun.as_fd(), PollFlags::POLLIN);
        }
        ev.set(Slot::Signals, signals.as_fd(), PollFlags::POLLIN);
        loop {
            ev.wait(self.deadline())
                .map_err(|e| Error::os("poll the TUN devices", e))?;
            for side in 0..2 {
                if ev.is_ready(Slot::Tun(side)) {
                    self.drain(side)?;
                }
            }
            if let Some(capture) = self.capture.as_mut() {
                capture.end_batch(Instant::now());
            }
            if ev.is_ready(Slot::Signals) {
                if let Some(sig) = self.on_signal(signals)? {
                    return Ok(sig);
                }
            }
        }
    }

    /// The one deadline of the loop.
    fn deadline(&self) -> Option<Instant> {
        self.capture.as_ref().map(|_| Instant::now() + CAPTURE_TICK)
    }

    /// Move up to BATCH packets from tuns[from] to tuns[1 - from].
    fn drain(&mut self, from: usize) -> Result<()> {
        let to = 1 - from;
        let hdr = self.hdr;
        for _ in 0..BATCH {
            let n = match nix::unistd::read(self.tuns[from].as_raw_fd(), &mut self.buf) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(()),
                Err(Errno::EBADFD) => {
                    return Err(Error::Runtime(format!(
                        "{} was removed from under the relay (ip link del?); stopping",
                        self.names[from]
                    )))
                }
                Err(e) => return Err(Error::os(format!("read from {}", self.names[from]), e)),
            };
            if n <= hdr {
                continue;
            }
            if let Some(capture) = self.capture.as_mut() {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                capture.record(from, now, &self.buf[hdr..n], &Meta::default());
            }
            let c = &mut self.counters[from];
            match nix::unistd::write(&self.tuns[to], &self.buf[..n]) {
                Ok(_) => {
                    c.packets += 1;
                    c.bytes += (n - hdr) as u64;
                }
                // Peer down (EIO), no buffer (ENOBUFS), full (EAGAIN), or anything else the
                // packet path can throw: drop it and count it, as a wire would.
                Err(_) => c.drops += 1,
            }
        }
        Ok(())
    }

    /// Handles pending signals; returns the one that asks the relay to stop, if any.
    fn on_signal(&mut self, signals: &SignalFd) -> Result<Option<Signal>> {
        while let Some(info) = signals
            .read_signal()
            .map_err(|e| Error::os("read the signalfd", e))?
        {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGINT | Signal::SIGTERM => return Ok(Some(sig)),
                Signal::SIGUSR1 => self.log_counters(),
                Signal::SIGHUP => {
                    if let Some(capture) = self.capture.as_mut() {
                        capture.reopen();
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }

    fn log_counters(&self) {
        for (i, c) in self.counters.iter().enumerate() {
            log::info!(
                "{} -> {}: {} packets, {} bytes, {} dropped",
                self.names[i],
                self.names[1 - i],
                c.packets,
                c.bytes,
                c.drops
            );
        }
        if let Some(capture) = &self.capture {
            log::info!(
                "capture: {} packets recorded, {} lost",
                capture.recorded(),
                capture.lost()
            );
        }
    }
}
