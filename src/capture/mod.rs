// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet capture (`--pcap`): records every packet the relay moves, as pcapng (one interface per
//! TUN, direction flag set, per-packet comments) or classic pcap (LINKTYPE_RAW), to a file, a
//! ring of files, or stdout.
//!
//! The first file is opened before setup with the relay's identity (`prepare`, called through
//! `privilege::as_identity`), so a path that user cannot write fails before any kernel change;
//! later files are opened by the relay itself, after the privilege drop. Nothing here gains
//! privileges. It must never stop or stall the wire beyond one buffered write: every fault is
//! logged once, counted in `lost()`, and capture stops (SIGHUP, `reopen()`, tries a fresh file).
//! A pipe on stdout is written non-blocking, so a reader that falls behind costs whole records
//! (counted as lost), never the wire's progress. `record()` does not allocate.

pub mod format;
pub mod live;
pub mod ring;
pub mod sink;

use std::collections::VecDeque;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::clock::unix_now;
use crate::config::{CaptureConfig, Target};
pub use format::{Header, Iface, Meta, PcapFormat};
use sink::{OpenError, Output};

const BUF_CAPACITY: usize = 256 * 1024;
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the exit waits for a slow stdout reader to take the buffered records: short, so
/// that SIGTERM stops the wire within a second whatever the reader does.
const FINAL_DRAIN: Duration = Duration::from_millis(500);

/// The first output, opened before setup with the relay's identity.
pub struct Prepared {
    first: Option<(File, PathBuf)>,
    /// Ring sequence number of the first file (0 without rotation).
    seq: u32,
}

/// Open the first capture file as the calling identity (see the module documentation). Stdout
/// needs nothing.
pub fn prepare(cfg: &CaptureConfig) -> Result<Prepared, OpenError> {
    let Target::File(base) = &cfg.target else {
        return Ok(Prepared {
            first: None,
            seq: 0,
        });
    };
    let (path, seq) = match cfg.max_size {
        // Continue after the files of an earlier run, so names keep sorting in time order.
        Some(_) => {
            let seq = ring::last_ring_seq(base) + 1;
            (ring::ring_name(base, seq, unix_now()), seq)
        }
        None => (base.clone(), 0),
    };
    let file = sink::open_file(&path)?;
    Ok(Prepared {
        first: Some((file, path)),
        seq,
    })
}

/// Whether `prepare` would succeed, without creating or truncating anything (`tunwire check`).
pub fn probe(cfg: &CaptureConfig) -> Result<(), OpenError> {
    match &cfg.target {
        Target::Stdout => Ok(()),
        Target::File(base) => match cfg.max_size {
            Some(_) => sink::probe_file(&ring::ring_name(
                base,
                ring::last_ring_seq(base) + 1,
                unix_now(),
            )),
            None => sink::probe_file(base),
        },
    }
}

/// An open capture. See the module documentation.
pub struct Capture {
    target: Target,
    format: PcapFormat,
    snaplen: usize,
    max_size: Option<u64>,
    keep: Option<usize>,
    /// File header, written at the start of every file, and what it was built from.
    header: Vec<u8>,
    described: Header,
    out: Option<Output>,
    /// The write buffer of a closed output, reused by the next one.
    spare: Vec<u8>,
    seq: u32,
    /// Ring files this capture created, oldest first.
    ring: VecDeque<PathBuf>,
    last_flush: Instant,
    finished: bool,
    /// The settings changed since the current file's header was written.
    section_pending: bool,
    slow_reader_warned: bool,
    recorded: u64,
    lost: u64,
}

impl Capture {
    /// Called by the relay after the privilege drop with what `prepare` opened. A write error
    /// on the header is logged, and the capture stops; the wire keeps running.
    pub fn start(cfg: &CaptureConfig, described: &Header, prepared: Prepared) -> Capture {
        let header = format::header_bytes(described).unwrap_or_else(|e| {
            log::error!("failed to build the capture header: {e}");
            Vec::new()
        });
        let mut cap = Capture {
            target: cfg.target.clone(),
            format: cfg.format,
            snaplen: cfg.snaplen as usize,
            max_size: match cfg.target {
                Target::File(_) => cfg.max_size,
                Target::Stdout => None,
            },
            keep: cfg.files.map(|n| (n as usize).max(1)),
            header,
            described: described.clone(),
            out: None,
            spare: Vec::new(),
            seq: prepared.seq.saturating_sub(1),
            ring: VecDeque::new(),
            last_flush: Instant::now(),
            finished: false,
            section_pending: false,
            slow_reader_warned: false,
            recorded: 0,
            lost: 0,
        };
        if let Err(e) = cap.start_output(prepared.first) {
            log::error!("{e}; capture stopped, the wire keeps running");
        }
        cap
    }

    /// Record one packet read from interface `iface` (0 or 1), at wall-clock time `ts` (since
    /// the UNIX epoch). Never fails: a write error is logged once and counted in `lost()`.
    pub fn record(&mut self, iface: usize, ts: Duration, packet: &[u8], meta: &Meta) {
        let caplen = packet.len().min(self.snaplen);
        let rec_len = format::record_len(self.format, caplen, meta);
        let Some(out) = self.out.as_ref() else {
            self.lost += 1;
            return;
        };
        if let Some(max) = self.max_size {
            if out.packets > 0 && out.size + rec_len as u64 > max {
                self.rotate();
            }
        }
        if self
            .out
            .as_ref()
            .is_some_and(|o| !o.buf.is_empty() && o.buf.len() + rec_len > o.buf.capacity())
        {
            self.flush();
        }
        let Some(out) = self.out.as_mut() else {
            self.lost += 1;
            return;
        };
        if out.nonblocking && out.buf.len() + rec_len > out.buf.capacity() {
            // The reader is behind and the buffer is full: drop this record, whole.
            self.lost += 1;
            if !self.slow_reader_warned {
                self.slow_reader_warned = true;
                log::warn!(
                    "capture reader is too slow; dropping capture records (counted as lost), \
                     the wire keeps running"
                );
            }
            return;
        }
        let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        format::push_record(
            &mut out.buf,
            self.format,
            iface as u32,
            ts,
            &packet[..caplen],
            orig_len,
            meta,
        );
        out.buf_records += 1;
        out.packets += 1;
        out.size += rec_len as u64;
        self.recorded += 1;
    }

    /// Called once after each relay batch. Stdout: flush now. File: flush if at least 1 s passed
    /// since the last flush (`now` is monotonic).
    pub fn end_batch(&mut self, now: Instant) {
        let Some(out) = self.out.as_ref() else {
            return;
        };
        if out.buf.is_empty() {
            return;
        }
        if out.path.is_none() || now.saturating_duration_since(self.last_flush) >= FLUSH_INTERVAL {
            self.flush();
            self.last_flush = now;
        }
    }

    /// SIGHUP: a file moved away (logrotate) is closed and a fresh one starts at the same path;
    /// a file still in place is continued, with a new section when the settings changed (so
    /// nothing recorded is lost); in ring mode the next file of the ring starts. Also retries
    /// after a write error. No-op for stdout.
    pub fn reopen(&mut self) {
        if self.finished || self.target == Target::Stdout {
            return;
        }
        if let Some(out) = self.out.as_mut().filter(|_| self.max_size.is_none()) {
            if out
                .path
                .as_deref()
                .is_some_and(|p| sink::same_file(&out.file, p))
            {
                if std::mem::take(&mut self.section_pending) {
                    out.buf.extend_from_slice(&self.header);
                    out.size += self.header.len() as u64;
                }
                log::info!("capture file still in place: continuing it");
                return;
            }
        }
        self.close_output();
        match self.start_output(None) {
            Ok(()) => {
                if let Some(path) = self.out.as_ref().and_then(|o| o.path.as_ref()) {
                    log::info!("capture file reopened: {}", path.display());
                }
            }
            Err(e) => log::error!("{e}; capture stopped, the wire keeps running"),
        }
    }

    /// The settings changed (SIGHUP): later files start with a section header whose comment is
    /// `comment`; a stream (stdout) gets that new section at once. pcapng only: classic pcap
    /// has no comments.
    pub fn new_section(&mut self, comment: &str) {
        if self.format != PcapFormat::PcapNg {
            return;
        }
        self.described.comment = Some(comment.to_string());
        match format::header_bytes(&self.described) {
            Ok(h) => self.header = h,
            Err(e) => log::warn!("failed to build the capture header: {e}"),
        }
        match self.out.as_mut() {
            Some(out) if out.path.is_none() => {
                out.buf.extend_from_slice(&self.header);
                out.size += self.header.len() as u64;
            }
            _ => self.section_pending = true,
        }
    }

    /// Flush and close at exit. Later `record()` calls count as lost. Idempotent.
    pub fn finish(&mut self) {
        self.close_output();
        self.finished = true;
    }

    /// Capture records lost: write errors, capture stopped, a slow reader.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Records written (or buffered for writing) and not lost.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Open the next output (`first` if given, else the file, the next ring file, or stdout)
    /// and write the header.
    fn start_output(&mut self, first: Option<(File, PathBuf)>) -> Result<(), OpenError> {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.reserve(BUF_CAPACITY);
        let mut nonblocking = false;
        let (file, path) = match (&self.target, first) {
            (_, Some((file, path))) => {
                if self.max_size.is_some() {
                    self.seq += 1;
                }
                (file, Some(path))
            }
            (Target::Stdout, None) => {
                let fd = std::io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| OpenError {
                        path: "stdout".into(),
                        why: e.to_string(),
                    })?;
                nonblocking = sink::set_nonblocking_if_pipe(&fd, true);
                (File::from(fd), None)
            }
            (Target::File(base), None) => {
                let path = if self.max_size.is_some() {
                    self.seq += 1;
                    ring::ring_name(base, self.seq, unix_now())
                } else {
                    base.clone()
                };
                (sink::open_file(&path)?, Some(path))
            }
        };
        let mut out = Output::new(file, path.clone(), buf, nonblocking);
        self.section_pending = false;
        out.buf.extend_from_slice(&self.header);
        out.size = self.header.len() as u64;
        self.out = Some(out);
        if let (Some(path), Some(keep)) = (path.filter(|_| self.max_size.is_some()), self.keep) {
            self.ring.push_back(path);
            while self.ring.len() > keep {
                if let Some(old) = self.ring.pop_front() {
                    if let Err(e) = std::fs::remove_file(&old) {
                        if e.kind() != ErrorKind::NotFound {
                            log::warn!("cannot remove old capture file {}: {e}", old.display());
                        }
                    }
                }
            }
        }
        // Write the header now: readers (wireshark -k -i -, tail) see the interfaces at once.
        self.flush();
        self.last_flush = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) {
        // After a write error the capture stays stopped until SIGHUP: no new file, no new log.
        self.flush();
        if self.out.is_none() {
            return;
        }
        self.close_output();
        if let Err(e) = self.start_output(None) {
            log::error!("{e}; capture stopped, the wire keeps running");
        }
    }

    /// Flush and close the current output, keeping its buffer for the next one.
    fn close_output(&mut self) {
        self.flush();
        if let Some(out) = self.out.as_mut().filter(|o| o.nonblocking) {
            // Give a slow reader a bounded while to take the rest; never hang the exit on it.
            let deadline = Instant::now() + FINAL_DRAIN;
            while !out.buf.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(out.file.as_fd(), PollFlags::POLLOUT)];
                if ms == 0 || !matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(1)) {
                    break;
                }
                if out.write_buffer().is_err() {
                    break;
                }
            }
            if !out.buf.is_empty() {
                self.recorded -= out.buf_records;
                self.lost += out.buf_records;
                log::warn!(
                    "capture reader did not take the last {} records before exit",
                    out.buf_records
                );
                out.buf.clear();
            }
            sink::set_nonblocking_if_pipe(&out.file, false);
        }
        if let Some(out) = self.out.take() {
            self.spare = out.buf;
        }
    }

    /// Hand the buffer to the kernel. On error: stop this output, cut a file back to its last
    /// whole record, count the buffered records as lost, log once.
    fn flush(&mut self) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if out.buf.is_empty() {
            return;
        }
        let Err(e) = out.write_buffer() else {
            return;
        };
        let out = self.out.take().expect("output present");
        self.recorded -= out.buf_records;
        self.lost += out.buf_records;
        match &out.path {
            None if e.kind() == ErrorKind::BrokenPipe => {
                log::warn!("capture reader went away; capture stopped, the wire keeps running")
            }
            None => log::error!(
                "capture to stdout failed: {e}; capture stopped, the wire keeps running"
            ),
            Some(path) => {
                // A partial write may have left a torn record: cut it off so the file stays
                // readable up to the last whole record.
                let _ = out.file.set_len(out.flushed);
                log::error!(
                    "capture file {}: write failed: {e}; capture stopped, the wire keeps \
                     running (SIGHUP retries with a fresh file)",
                    path.display()
                );
            }
        }
        self.spare = out.buf;
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests;
