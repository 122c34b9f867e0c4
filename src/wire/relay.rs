// SPDX-License-Identifier: MIT OR Apache-2.0
//! The relay: moves packets along its legs (TUN to TUN; or TUN to a prototype's socket and
//! back) in one event loop, in an unprivileged process. Each wake-up drains every ready port
//! up to `BATCH` packets. A leg without impairment does one read, one write and, with capture
//! on, one record into a reused buffer per packet: no allocation, no logging, no other system
//! call. A leg with impairment hands each packet to its engine, keeps the planned copies in a
//! slot pool until they are due (the loop's one deadline), and records every decision in the
//! capture. A failed write drops and counts the packet; it never stops the relay. Must not
//! touch routing or privileges.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use super::impair::{self, DropCause, Engine, Plan};
use crate::capture::format::EPB_FLAG_CRC_ERROR;
use crate::capture::live::Live;
use crate::capture::{Capture, Meta};
use crate::config::impair::Impairment;
use crate::error::{Error, Result};
use crate::event::{EventLoop, PollFlags};

/// Packets drained from one port per wake-up before the others get their turn.
const BATCH: usize = 64;
/// The largest read: a 64 KiB GSO super-packet plus its virtio_net_hdr, with room to spare.
const BUF_LEN: usize = 65_536 + 256;
/// With capture on, wake at least this often so buffered records reach the file.
const CAPTURE_TICK: Duration = Duration::from_secs(1);
/// Bytes one leg may hold in its delay queue, whatever its packet limit: memory stays bounded.
/// Each held packet costs its bytes plus `HELD_OVERHEAD`.
const MAX_QUEUED_BYTES: usize = 32 << 20;
/// What holding one packet costs besides its bytes: the slot, the allocator's header and
/// rounding, the engine's queue entry. A flood of tiny packets is bounded too.
const HELD_OVERHEAD: usize = 192;
/// Free slots kept after the queues drained; the rest of the pool is given back.
const POOL_KEEP: usize = 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
}

/// Something packets are read from and written to: a TUN, or a datagram socket to a prototype.
pub struct Port {
    pub fd: OwnedFd,
    pub name: String,
    /// Bytes of virtio_net_hdr before each packet (0 with offload off, and on sockets).
    pub hdr: usize,
}

/// One direction of travel, from one port to another, with what it does on the way.
pub struct Leg {
    pub from: usize,
    pub to: usize,
    /// The capture interface its packets are recorded on, and whether they enter that
    /// interface's host side (inbound) or leave it (outbound).
    pub iface: usize,
    pub inbound: bool,
    pub engine: Option<Engine<u32>>,
    /// The side whose impairment applies (packets read from it), if any may.
    pub impairs: Option<usize>,
    /// Shown in the counter lines, e.g. "tun0 -> tun1".
    pub label: String,
}

/// The relay's poll slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Port(usize),
    Signals,
    /// Live capture: new readers, and each attached one.
    Listener,
    Reader(u32),
}

/// A packet held for its send time.
struct Held {
    buf: Vec<u8>,
    len: usize,
    leg: usize,
    plan: Plan,
    id: u64,
}

/// Reusable packet buffers: steady state allocates nothing.
#[derive(Default)]
struct Pool {
    slots: Vec<Held>,
    free: Vec<u32>,
}

impl Pool {
    /// Give back the memory of a flood once no packet is held (every slot is free).
    fn shrink(&mut self) {
        debug_assert_eq!(self.free.len(), self.slots.len());
        self.slots.truncate(POOL_KEEP);
        self.slots.shrink_to_fit();
        self.free = (0..self.slots.len() as u32).collect();
    }

    fn put(&mut self, leg: usize, plan: Plan, id: u64, data: &[u8]) -> u32 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Held {
                    buf: Vec::new(),
                    len: 0,
                    leg: 0,
                    plan,
                    id: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let h = &mut self.slots[i as usize];
        h.buf.clear();
        h.buf.extend_from_slice(data);
        h.len = data.len();
        (h.leg, h.plan, h.id) = (leg, plan, id);
        i
    }
}

/// SIGHUP's new impairment: per side (None: none), the seed, and the text for the capture
/// and the logs. None when nothing changed or the configuration cannot be read.
pub type Reload = Box<dyn FnMut() -> Option<([Option<Impairment>; 2], u64, String)>>;

pub struct Relay {
    ports: Vec<Port>,
    legs: Vec<Leg>,
    capture: Option<Capture>,
    live: Option<Live>,
    /// The reader slots in the event loop.
    reader_slots: Vec<u32>,
    counters: Vec<Counters>,
    /// Packets read on each leg: the pcapng packet id of its records.
    read: Vec<u64>,
    queued_bytes: Vec<usize>,
    buf: Vec<u8>,
    pool: Pool,
    comment: String,
    epoch: Instant,
    /// SIGHUP: the new impairment per leg (None: none), the seed, and the text for the capture.
    reload: Option<Reload>,
}

impl Relay {
    pub fn new(
        ports: Vec<Port>,
        legs: Vec<Leg>,
        capture: Option<Capture>,
        live: Option<Live>,
    ) -> Relay {
        let n = legs.len();
        Relay {
            ports,
            legs,
            capture,
            live,
            reader_slots: Vec::new(),
            counters: vec![Counters::default(); n],
            read: vec![0; n],
            queued_bytes: vec![0; n],
            buf: vec![0; BUF_LEN],
            pool: Pool::default(),
            comment: String::with_capacity(128),
            epoch: Instant::now(),
            reload: None,
        }
    }

    /// What SIGHUP does besides reopening the capture: re-read the impairment.
    pub fn on_reload(&mut self, reload: Reload) {
        self.reload = Some(reload);
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
        for (i, port) in self.ports.iter().enumerate() {
            if self.legs.iter().any(|l| l.from == i) {
                ev.set(Slot::Port(i), port.fd.as_fd(), PollFlags::POLLIN);
            }
        }
        ev.set(Slot::Signals, signals.as_fd(), PollFlags::POLLIN);
        if let Some(live) = &self.live {
            ev.set(Slot::Listener, live.listener_fd(), PollFlags::POLLIN);
        }
        loop {
            ev.wait(self.deadline())
                .map_err(|e| Error::os("poll the wire's ports", e))?;
            for port in 0..self.ports.len() {
                if ev.is_ready(Slot::Port(port)) {
                    self.drain(port)?;
                }
            }
            self.send_due();
            if let Some(capture) = self.capture.as_mut() {
                capture.end_batch(Instant::now());
            }
            self.serve_readers(&mut ev);
            if ev.is_ready(Slot::Signals) {
                if let Some(sig) = self.on_signal(signals)? {
                    return Ok(sig);
                }
            }
        }
    }

    /// Live capture: accept new readers, take their requests and ends, write what is pending,
    /// and keep the loop's slots in step (POLLOUT only while a reader has bytes waiting).
    fn serve_readers(&mut self, ev: &mut EventLoop<Slot>) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if ev.is_ready(Slot::Listener) {
            live.accept();
        }
        for id in self.reader_slots.clone() {
            if ev
                .revents(Slot::Reader(id))
                .intersects(PollFlags::POLLIN | PollFlags::POLLHUP)
            {
                live.on_readable(id);
            }
        }
        live.flush();
        for id in std::mem::take(&mut self.reader_slots) {
            if !live.readers.iter().any(|r| r.id == id) {
                ev.remove(Slot::Reader(id));
            }
        }
        for r in &live.readers {
            let mut events = PollFlags::POLLIN;
            if r.pending() {
                events |= PollFlags::POLLOUT;
            }
            ev.set(Slot::Reader(r.id), r.fd(), events);
            self.reader_slots.push(r.id);
        }
    }

    /// The one deadline of the loop: the earliest queued packet, or the capture's tick.
    fn deadline(&self) -> Option<Instant> {
        let due = self
            .legs
            .iter()
            .filter_map(|l| l.engine.as_ref()?.next_deadline())
            .min()
            .map(|ns| self.epoch + Duration::from_nanos(ns));
        let tick = self.capture.as_ref().map(|_| Instant::now() + CAPTURE_TICK);
        match (due, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Read up to BATCH packets from `port` and move each along the leg that starts there.
    fn drain(&mut self, port: usize) -> Result<()> {
        let Some(leg) = self.legs.iter().position(|l| l.from == port) else {
            return Ok(());
        };
        let hdr = self.ports[port].hdr;
        for _ in 0..BATCH {
            let n = match nix::unistd::read(self.ports[port].fd.as_raw_fd(), &mut self.buf) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(()),
                Err(Errno::EBADFD) => {
                    return Err(Error::Runtime(format!(
                        "{} was removed from under the relay (ip link del?); stopping",
                        self.ports[port].name
                    )))
                }
                Err(e) => return Err(Error::os(format!("read from {}", self.ports[port].name), e)),
            };
            if n <= hdr {
                continue;
            }
            self.read[leg] += 1;
            if self.legs[leg].engine.is_some() {
                self.impair(leg, n);
            } else {
                self.record(leg, hdr, n, None, self.read[leg], 0);
                self.write(leg, n);
            }
        }
        Ok(())
    }

    /// Record `buf[hdr..n]` of `leg` in the capture.
    fn record(
        &mut self,
        leg: usize,
        hdr: usize,
        n: usize,
        comment: Option<&str>,
        id: u64,
        flags: u32,
    ) {
        let live = self.live.as_mut().filter(|l| l.active());
        if self.capture.is_none() && live.is_none() {
            return;
        }
        let l = &self.legs[leg];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let meta = Meta {
            comment,
            packet_id: l.engine.as_ref().map(|_| id),
            flags,
            drop_count: None,
            inbound: l.inbound,
        };
        if let Some(live) = live {
            live.record(l.iface, now, &self.buf[hdr..n], &meta);
        }
        if let Some(capture) = self.capture.as_mut() {
            capture.record(l.iface, now, &self.buf[hdr..n], &meta);
        }
    }

    /// Write `buf[..n]` to the leg's destination.
    fn write(&mut self, leg: usize, n: usize) {
        let (to, hdr) = (self.legs[leg].to, self.ports[self.legs[leg].from].hdr);
        let c = &mut self.counters[leg];
        match nix::unistd::write(&self.ports[to].fd, &self.buf[..n]) {
            Ok(_) => {
                c.packets += 1;
                c.bytes += (n - hdr) as u64;
            }
            // Peer down (EIO), no buffer (ENOBUFS), full (EAGAIN), or anything else the
            // packet path can throw: drop it and count it, as a wire would.
            Err(_) => c.drops += 1,
        }
    }

    /// Hand the packet in `buf[..n]` to the leg's engine: drop it (recorded with the cause) or
    /// queue its copies.
    fn impair(&mut self, leg: usize, n: usize) {
        let now = self.now_ns();
        let id = self.read[leg];
        let decision = match self.legs[leg].engine.as_mut() {
            Some(e) => e.decide(now, n),
            None => return,
        };
        if let Some(cause) = decision.drop {
            self.record(leg, 0, n, Some(impair::drop_comment(cause)), id, 0);
            return;
        }
        for plan in decision.copies.into_iter().flatten() {
            if self.queued_bytes[leg] + n + HELD_OVERHEAD > MAX_QUEUED_BYTES {
                if let Some(e) = self.legs[leg].engine.as_mut() {
                    e.count_queue_full();
                }
                self.record(
                    leg,
                    0,
                    n,
                    Some(impair::drop_comment(DropCause::QueueFull)),
                    id,
                    0,
                );
                continue;
            }
            let slot = self.pool.put(leg, plan, id, &self.buf[..n]);
            if let Some((byte, bit)) = plan.corrupt {
                if let Some(b) = self.pool.slots[slot as usize].buf.get_mut(byte) {
                    *b ^= 1 << bit;
                }
            }
            let refused = self.legs[leg]
                .engine
                .as_mut()
                .map_or(Ok(()), |e| e.enqueue(&plan, slot));
            match refused {
                Ok(()) => self.queued_bytes[leg] += n + HELD_OVERHEAD,
                Err(slot) => {
                    self.pool.free.push(slot);
                    self.record(
                        leg,
                        0,
                        n,
                        Some(impair::drop_comment(DropCause::QueueFull)),
                        id,
                        0,
                    );
                }
            }
        }
    }

    /// Send every queued copy whose time has come, recording each with its decisions.
    fn send_due(&mut self) {
        let now = self.now_ns();
        for leg in 0..self.legs.len() {
            while let Some(slot) = self.legs[leg].engine.as_mut().and_then(|e| e.pop_due(now)) {
                let h = &mut self.pool.slots[slot as usize];
                let n = h.len;
                // Swap the held packet into the working buffer (no copy, no allocation).
                std::mem::swap(&mut self.buf, &mut h.buf);
                let (plan, id) = (h.plan, h.id);
                self.queued_bytes[leg] -= n + HELD_OVERHEAD;
                let mut comment = std::mem::take(&mut self.comment);
                impair::plan_comment(&plan, &mut comment);
                let flags = if plan.corrupt.is_some() {
                    EPB_FLAG_CRC_ERROR
                } else {
                    0
                };
                self.record(leg, 0, n, Some(&comment), id, flags);
                self.comment = comment;
                self.write(leg, n);
                let h = &mut self.pool.slots[slot as usize];
                std::mem::swap(&mut self.buf, &mut h.buf);
                self.pool.free.push(slot);
            }
        }
        if self.pool.slots.len() > POOL_KEEP && self.queued_bytes.iter().all(|&b| b == 0) {
            self.pool.shrink();
        }
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
                Signal::SIGHUP => self.on_hup(),
                _ => {}
            }
        }
        Ok(None)
    }

    /// SIGHUP: new impairment and seed at once (already queued packets keep their times), a
    /// new capture section that says so, and a fresh capture file.
    fn on_hup(&mut self) {
        let reloaded = self.reload.as_mut().and_then(|r| r());
        if let Some((imps, seed, text)) = reloaded {
            for leg in &mut self.legs {
                let Some(side) = leg.impairs else { continue };
                match (leg.engine.as_mut(), imps[side].clone()) {
                    (Some(e), Some(imp)) => e.reconfigure(&imp, seed),
                    (None, Some(imp)) => leg.engine = Some(Engine::new(&imp, seed, side as u64)),
                    // An engine with queued packets stays until they are sent; it is told to
                    // let the next packets through untouched.
                    (Some(e), None) => e.reconfigure(&Default::default(), seed),
                    (None, None) => {}
                }
            }
            log::info!("impairment changed: {text}");
            if let Some(capture) = self.capture.as_mut() {
                capture.new_section(&text);
            }
            if let Some(live) = self.live.as_mut() {
                live.new_section(&text);
            }
        }
        if let Some(capture) = self.capture.as_mut() {
            capture.reopen();
        }
    }

    fn log_counters(&self) {
        for (leg, c) in self.legs.iter().zip(&self.counters) {
            log::info!(
                "{}: {} packets, {} bytes, {} dropped",
                leg.label,
                c.packets,
                c.bytes,
                c.drops
            );
            if let Some(e) = &leg.engine {
                let i = e.counters();
                log::info!(
                    "{} impairment: {} lost, {} queue full, {} duplicated, {} corrupted, {} \
                     reordered, {} delayed",
                    leg.label,
                    i.lost,
                    i.queue_full,
                    i.duplicated,
                    i.corrupted,
                    i.reordered,
                    i.delayed
                );
            }
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
