// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet capture (`--pcap`): records every packet the relay moves, as pcapng (one interface per
//! TUN, direction flag set) or classic pcap (LINKTYPE_RAW), to a file, a ring of files, or stdout.
//!
//! It runs inside the relay after the privilege drop, so files are opened with the relay's own
//! identity and the umask; nothing here gains privileges. It must never stop or stall the wire
//! beyond one buffered write: every fault is logged once, counted in `lost()`, and capture stops
//! (SIGHUP, `reopen()`, tries a fresh file). A pipe on stdout is written non-blocking, so a
//! reader that falls behind costs whole records (counted as lost), never the wire's progress. The hot path (`record()`) does not allocate: it
//! appends a hand-built record to a reused buffer; pcap-file only builds the file headers.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{fcntl, posix_fadvise, FcntlArg, OFlag, PosixFadviseAdvice};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::{fstat, SFlag};
use pcap_file::pcap::PcapHeader;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapFormat {
    /// pcapng: one interface per TUN, direction flags, nanosecond timestamps.
    PcapNg,
    /// Classic pcap, LINKTYPE_RAW, nanosecond timestamps, no interface or direction.
    Pcap,
}

/// Where the capture goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file (the base name of the ring when `max_size` is set).
    File(PathBuf),
    /// Standard output, flushed after every relay batch (`--pcap -`).
    Stdout,
}

/// Capture settings, validated by the config code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    pub target: Target,
    pub format: PcapFormat,
    /// Bytes stored per packet at most; 0 is treated as the default 262144.
    pub snaplen: u32,
    /// `--pcap-max-size` in bytes; `None`: a single file, no rotation. Ignored for stdout.
    pub max_size: Option<u64>,
    /// `--pcap-files`; `None`: keep every ring file. `Some(0)` behaves as `Some(1)`.
    pub files: Option<u32>,
}

/// One TUN as it appears in the pcapng interface list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    /// Its addresses, e.g. "192.168.13.1 peer 192.168.13.2".
    pub description: String,
}

const DEFAULT_SNAPLEN: u32 = 262_144;
const BUF_CAPACITY: usize = 256 * 1024;
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const BLOCK_EPB: u32 = 6;
const OPT_EPB_FLAGS: u16 = 2;
/// epb_flags bits 0-1 = 2: outbound (the host transmitted the packet on that interface).
const EPB_FLAG_OUTBOUND: u32 = 2;
/// EPB without data: type, length, if_id, ts_high, ts_low, caplen, origlen (28), flags option (8),
/// opt_endofopt (4), trailing length (4).
const EPB_OVERHEAD: usize = 44;
const PCAP_REC_OVERHEAD: usize = 16;

/// Parse `--pcap-max-size`: a positive integer with an optional K, M or G suffix (powers of 1024,
/// case-insensitive, optionally followed by `B` or `iB`, e.g. `512`, `100K`, `10MiB`, `2g`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty size: expected a number with an optional K, M or G suffix".into());
    }
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(format!(
            "invalid size {s:?}: expected a number with an optional K, M or G suffix"
        ));
    }
    let (num, suffix) = s.split_at(digits);
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown suffix {suffix:?} (use K, M or G)"
            ))
        }
    };
    let too_large = || format!("invalid size {s:?}: too large");
    let n: u64 = num.parse().map_err(|_| too_large())?;
    let size = n.checked_mul(mult).ok_or_else(too_large)?;
    if size == 0 {
        return Err(format!("invalid size {s:?}: must be greater than 0"));
    }
    Ok(size)
}

/// The file currently written.
struct Output {
    file: File,
    /// `None` for stdout.
    path: Option<PathBuf>,
    /// Whole records (and the header) not yet handed to the kernel.
    buf: Vec<u8>,
    buf_records: u64,
    /// Bytes handed to this output (header + records), for rotation.
    size: u64,
    /// Bytes the kernel accepted: always a record boundary.
    flushed: u64,
    /// Records in this file.
    packets: u64,
    /// A pipe or socket on stdout, written non-blocking so a slow reader cannot stall the
    /// wire: what does not fit waits in `buf`, and records that do not fit there are lost.
    nonblocking: bool,
    /// Start of the range whose writeback was started but not yet waited for.
    wb_from: u64,
    /// End of that range: writeback has been started up to here.
    wb_to: u64,
}

/// How long the exit waits for a slow stdout reader to take the buffered records.
const FINAL_DRAIN: Duration = Duration::from_secs(2);

/// Switch O_NONBLOCK on (or back off) when `fd` is a pipe or socket; returns whether it is one.
/// A terminal or file on stdout stays blocking: its flags are shared with the shell.
fn set_nonblocking_if_pipe(fd: &impl AsFd, on: bool) -> bool {
    let raw = fd.as_fd().as_raw_fd();
    let is_pipe = fstat(raw).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    });
    if !is_pipe {
        return false;
    }
    let Ok(flags) = fcntl(raw, FcntlArg::F_GETFL) else {
        return false;
    };
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(raw, FcntlArg::F_SETFL(flags)).is_ok()
}

/// Page cache a file capture may hold before it is written back and dropped.
const WRITEBACK_WINDOW: u64 = 8 << 20;

impl Output {
    /// Write what the (non-blocking) output takes now; returns the bytes written.
    fn write_available(&mut self) -> std::io::Result<usize> {
        let mut done = 0;
        while done < self.buf.len() {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Keep the file's page cache to about two windows: start writeback of what was written
    /// since the last call, wait for the window before it and drop its pages. A capture then
    /// reuses a small set of warm pages instead of filling memory with a file nobody reads
    /// back now. Best effort: a file system without writeback (tmpfs) ignores it.
    fn recycle_page_cache(&mut self) {
        if self.flushed < self.wb_to + WRITEBACK_WINDOW {
            return;
        }
        let fd = self.file.as_raw_fd();
        if self.wb_from < self.wb_to {
            let (off, len) = (self.wb_from as i64, (self.wb_to - self.wb_from) as i64);
            // SAFETY: plain integers on an fd we own; no memory is passed.
            unsafe {
                libc::sync_file_range(
                    fd,
                    off,
                    len,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
            let _ = posix_fadvise(fd, off, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
        let (off, len) = (self.wb_to as i64, (self.flushed - self.wb_to) as i64);
        // SAFETY: as above.
        unsafe { libc::sync_file_range(fd, off, len, libc::SYNC_FILE_RANGE_WRITE) };
        self.wb_from = self.wb_to;
        self.wb_to = self.flushed;
    }
}

/// An open capture. See the module documentation.
pub struct Capture {
    target: Target,
    format: PcapFormat,
    snaplen: usize,
    max_size: Option<u64>,
    keep: Option<usize>,
    /// File header (SHB + 2 IDBs, or pcap global header), written at the start of every file.
    header: Vec<u8>,
    out: Option<Output>,
    /// The write buffer of a closed output, reused by the next one.
    spare: Vec<u8>,
    seq: u32,
    /// Ring files this capture created, oldest first.
    ring: VecDeque<PathBuf>,
    last_flush: Instant,
    finished: bool,
    slow_reader_warned: bool,
    recorded: u64,
    lost: u64,
}

impl Capture {
    /// Called by the relay AFTER the privilege drop, with the relay's own identity.
    /// Errors: "failed to open capture file PATH: CAUSE". A write error on the header is not an
    /// error here: it is logged and the capture stops (the wire must keep running).
    pub fn open(cfg: &CaptureConfig, ifaces: [Iface; 2]) -> Result<Capture, String> {
        let snaplen = if cfg.snaplen == 0 {
            DEFAULT_SNAPLEN
        } else {
            cfg.snaplen
        };
        let header = match cfg.format {
            PcapFormat::PcapNg => pcapng_header(snaplen, &ifaces),
            PcapFormat::Pcap => pcap_header(snaplen),
        }
        .map_err(|e| format!("failed to build capture header: {e}"))?;
        let mut cap = Capture {
            target: cfg.target.clone(),
            format: cfg.format,
            snaplen: snaplen as usize,
            max_size: match cfg.target {
                Target::File(_) => cfg.max_size,
                Target::Stdout => None,
            },
            keep: cfg.files.map(|n| (n as usize).max(1)),
            header,
            out: None,
            spare: Vec::new(),
            seq: 0,
            ring: VecDeque::new(),
            last_flush: Instant::now(),
            finished: false,
            slow_reader_warned: false,
            recorded: 0,
            lost: 0,
        };
        if let (Target::File(base), Some(_)) = (&cap.target, cap.max_size) {
            // Continue after the files of an earlier run, so names keep sorting in time order.
            cap.seq = last_ring_seq(base);
        }
        cap.start_output()?;
        Ok(cap)
    }

    /// Record one packet read from interface `iface` (0 or 1), at wall-clock time `ts` (since
    /// the UNIX epoch). Never fails: a write error is logged once and counted in `lost()`.
    pub fn record(&mut self, iface: usize, ts: Duration, packet: &[u8]) {
        let caplen = packet.len().min(self.snaplen);
        let rec_len = match self.format {
            PcapFormat::PcapNg => EPB_OVERHEAD + caplen + pad4(caplen),
            PcapFormat::Pcap => PCAP_REC_OVERHEAD + caplen,
        };
        let Some(out) = self.out.as_ref() else {
            self.lost += 1;
            return;
        };
        if iface > 1 {
            self.lost += 1;
            return;
        }
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
        let data = &packet[..caplen];
        match self.format {
            PcapFormat::PcapNg => push_epb(&mut out.buf, iface as u32, ts, data, orig_len),
            PcapFormat::Pcap => push_pcap_record(&mut out.buf, ts, data, orig_len),
        }
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

    /// SIGHUP: close the file and start a fresh one with new headers (same path; in ring mode the
    /// next file of the ring). Also retries after a write error. No-op for stdout.
    pub fn reopen(&mut self) {
        if self.finished || self.target == Target::Stdout {
            return;
        }
        self.close_output();
        match self.start_output() {
            Ok(()) => {
                if let Some(path) = self.out.as_ref().and_then(|o| o.path.as_ref()) {
                    log::info!("capture file reopened: {}", path.display());
                }
            }
            Err(e) => log::error!("{e}; capture stopped, the wire keeps running"),
        }
    }

    /// Flush and close at exit. Later `record()` calls count as lost. Idempotent.
    pub fn finish(&mut self) {
        self.close_output();
        self.finished = true;
    }

    /// Capture records lost: write errors, capture stopped.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Records written (or buffered for writing) and not lost.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Open the next output (the file, the next ring file, or stdout) and write the header.
    fn start_output(&mut self) -> Result<(), String> {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.reserve(BUF_CAPACITY);
        let mut nonblocking = false;
        let (file, path) = match &self.target {
            Target::Stdout => {
                let fd = std::io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| format!("failed to open capture output stdout: {e}"))?;
                nonblocking = set_nonblocking_if_pipe(&fd, true);
                (File::from(fd), None)
            }
            Target::File(base) => {
                let path = if self.max_size.is_some() {
                    self.seq += 1;
                    let secs = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    ring_name(base, self.seq, secs)
                } else {
                    base.clone()
                };
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| format!("failed to open capture file {}: {e}", path.display()))?;
                (file, Some(path))
            }
        };
        buf.extend_from_slice(&self.header);
        self.out = Some(Output {
            file,
            path: path.clone(),
            buf,
            buf_records: 0,
            size: self.header.len() as u64,
            flushed: 0,
            packets: 0,
            nonblocking,
            wb_from: 0,
            wb_to: 0,
        });
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
        if let Err(e) = self.start_output() {
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
                match out.write_available() {
                    Ok(n) => {
                        out.buf.drain(..n);
                    }
                    Err(_) => break,
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
            set_nonblocking_if_pipe(&out.file, false);
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
        let written = if out.nonblocking {
            out.write_available()
        } else {
            out.file.write_all(&out.buf).map(|()| out.buf.len())
        };
        match written {
            Ok(n) => {
                out.flushed += n as u64;
                out.buf.drain(..n);
                if out.buf.is_empty() {
                    out.buf_records = 0;
                }
                if out.path.is_some() {
                    out.recycle_page_cache();
                }
            }
            Err(e) => {
                let out = self.out.take().expect("output present");
                self.recorded -= out.buf_records;
                self.lost += out.buf_records;
                match &out.path {
                    None if e.kind() == ErrorKind::BrokenPipe => log::warn!(
                        "capture reader went away; capture stopped, the wire keeps running"
                    ),
                    None => log::error!(
                        "capture to stdout failed: {e}; capture stopped, the wire keeps running"
                    ),
                    Some(path) => {
                        // A partial write may have left a torn record: cut it off so the file
                        // stays readable up to the last whole record (fails harmlessly on
                        // devices and pipes).
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
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Append an Enhanced Packet Block (native byte order, like the SHB) with epb_flags = outbound.
fn push_epb(buf: &mut Vec<u8>, if_id: u32, ts: Duration, data: &[u8], orig_len: u32) {
    let pad = pad4(data.len());
    let total = (EPB_OVERHEAD + data.len() + pad) as u32;
    let nanos = ts.as_nanos() as u64;
    let mut head = [0u8; 28];
    put32(&mut head, 0, BLOCK_EPB);
    put32(&mut head, 4, total);
    put32(&mut head, 8, if_id);
    put32(&mut head, 12, (nanos >> 32) as u32);
    put32(&mut head, 16, nanos as u32);
    put32(&mut head, 20, data.len() as u32);
    put32(&mut head, 24, orig_len);
    let mut tail = [0u8; 16];
    tail[0..2].copy_from_slice(&OPT_EPB_FLAGS.to_ne_bytes());
    tail[2..4].copy_from_slice(&4u16.to_ne_bytes());
    put32(&mut tail, 4, EPB_FLAG_OUTBOUND);
    // tail[8..12]: opt_endofopt (code 0, length 0)
    put32(&mut tail, 12, total);
    buf.extend_from_slice(&head);
    buf.extend_from_slice(data);
    buf.extend_from_slice(&[0u8; 3][..pad]);
    buf.extend_from_slice(&tail);
}

/// Append a classic pcap record (nanosecond resolution).
fn push_pcap_record(buf: &mut Vec<u8>, ts: Duration, data: &[u8], orig_len: u32) {
    let mut head = [0u8; PCAP_REC_OVERHEAD];
    put32(
        &mut head,
        0,
        u32::try_from(ts.as_secs()).unwrap_or(u32::MAX),
    );
    put32(&mut head, 4, ts.subsec_nanos());
    put32(&mut head, 8, data.len() as u32);
    put32(&mut head, 12, orig_len);
    buf.extend_from_slice(&head);
    buf.extend_from_slice(data);
}

/// SHB (shb_userappl = tunwire VERSION) and one IDB per TUN (LINKTYPE_RAW, if_tsresol 9:
/// EPB timestamps are nanoseconds).
fn pcapng_header(snaplen: u32, ifaces: &[Iface; 2]) -> Result<Vec<u8>, pcap_file::PcapError> {
    let shb = SectionHeaderBlock {
        endianness: Endianness::native(),
        options: vec![SectionHeaderOption::UserApplication(
            concat!("tunwire ", env!("CARGO_PKG_VERSION")).into(),
        )],
        ..Default::default()
    };
    let mut w = PcapNgWriter::with_section_header(Vec::new(), shb)?;
    for iface in ifaces {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(iface.name.clone().into()),
                InterfaceDescriptionOption::IfDescription(iface.description.clone().into()),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })?;
    }
    Ok(w.into_inner())
}

fn pcap_header(snaplen: u32) -> Result<Vec<u8>, pcap_file::PcapError> {
    let header = PcapHeader {
        snaplen,
        datalink: DataLink::RAW,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::native(),
        ..Default::default()
    };
    let mut v = Vec::new();
    header.write_to(&mut v)?;
    Ok(v)
}

/// Ring file name: `/dir/cap.pcapng` -> `/dir/cap_00001_20261127051500.pcapng` (UTC).
fn ring_name(base: &Path, seq: u32, unix_secs: u64) -> PathBuf {
    let mut name = OsString::from(base.file_stem().unwrap_or_default());
    name.push(format!("_{seq:05}_{}", utc_stamp(unix_secs)));
    if let Some(ext) = base.extension() {
        name.push(".");
        name.push(ext);
    }
    base.with_file_name(name)
}

/// The sequence number in `name` if it is a ring file of `base` (`stem_NNNNN_YYYYmmddHHMMSS.ext`).
fn ring_seq(base: &Path, name: &str) -> Option<u32> {
    let stem = base.file_stem()?.to_str()?;
    let rest = name.strip_prefix(stem)?.strip_prefix('_')?;
    let rest = match base.extension() {
        Some(ext) => rest.strip_suffix(ext.to_str()?)?.strip_suffix('.')?,
        None => rest,
    };
    let (seq, stamp) = rest.split_once('_')?;
    let digits = |s: &str, n: usize| s.len() >= n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seq, 5) || stamp.len() != 14 || !digits(stamp, 14) {
        return None;
    }
    seq.parse().ok()
}

/// The highest ring sequence number already in `base`'s directory (0 when there is none).
fn last_ring_seq(base: &Path) -> u32 {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| ring_seq(base, e.file_name().to_str()?))
        .max()
        .unwrap_or(0)
}

/// `YYYYmmddHHMMSS` in UTC.
fn utc_stamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    struct TestLogger;
    static LOGGER: TestLogger = TestLogger;
    impl log::Log for TestLogger {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            if record.level() <= log::Level::Warn {
                MESSAGES.lock().unwrap().push(record.args().to_string());
            }
        }
        fn flush(&self) {}
    }
    /// True when our logger is the installed one (another test module may have set its own).
    fn init_logger() -> bool {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        std::ptr::addr_eq(
            log::logger() as *const dyn log::Log,
            &LOGGER as *const TestLogger,
        )
    }

    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tunwire-capture-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn ifaces() -> [Iface; 2] {
        [
            Iface {
                name: "tun0".into(),
                description: "192.168.13.1 peer 192.168.13.2".into(),
            },
            Iface {
                name: "tun1".into(),
                description: "192.168.13.2 peer 192.168.13.1".into(),
            },
        ]
    }

    fn ipv4_packet(len: usize, id: u8) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[5] = id;
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[192, 168, 13, 1]);
        p[16..20].copy_from_slice(&[192, 168, 13, 2]);
        for (i, b) in p.iter_mut().enumerate().skip(20) {
            *b = i as u8;
        }
        p
    }

    fn now() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }

    fn cfg(target: Target, format: PcapFormat, snaplen: u32) -> CaptureConfig {
        CaptureConfig {
            target,
            format,
            snaplen,
            max_size: None,
            files: None,
        }
    }

    #[test]
    fn parse_size_table() {
        let good = [
            ("512", 512),
            ("1", 1),
            ("100K", 100 << 10),
            ("100k", 100 << 10),
            ("100M", 100 << 20),
            ("10MiB", 10 << 20),
            ("10mb", 10 << 20),
            ("2G", 2 << 30),
            ("2gib", 2 << 30),
            ("4096B", 4096),
            ("17179869183G", 17_179_869_183 << 30),
        ];
        for (s, v) in good {
            assert_eq!(parse_size(s), Ok(v), "{s}");
        }
        let bad = [
            ("", "empty"),
            ("0", "greater than 0"),
            ("0K", "greater than 0"),
            ("K", "expected a number"),
            ("-1", "expected a number"),
            (" 1", "expected a number"),
            ("1 K", "unknown suffix"),
            ("1.5M", "unknown suffix"),
            ("10T", "unknown suffix"),
            ("10Kx", "unknown suffix"),
            ("17179869184G", "too large"),
            ("99999999999999999999", "too large"),
        ];
        for (s, why) in bad {
            let e = parse_size(s).unwrap_err();
            assert!(e.contains(why), "{s:?}: {e}");
        }
    }

    #[test]
    fn ring_sequence_is_parsed_back() {
        let base = Path::new("/dir/cap.pcapng");
        assert_eq!(ring_seq(base, "cap_00007_20261127051500.pcapng"), Some(7));
        assert_eq!(
            ring_seq(base, "cap_123456_20261127051500.pcapng"),
            Some(123_456)
        );
        assert_eq!(ring_seq(base, "cap.pcapng"), None);
        assert_eq!(ring_seq(base, "cap_00007_2026.pcapng"), None);
        assert_eq!(ring_seq(base, "cap_00007_20261127051500.pcap"), None);
        assert_eq!(ring_seq(base, "other_00007_20261127051500.pcapng"), None);
        assert_eq!(
            ring_seq(Path::new("/d/cap"), "cap_00002_20261127051500"),
            Some(2)
        );
        let dir = temp_dir("ringseq");
        let base = dir.join("w.pcapng");
        assert_eq!(last_ring_seq(&base), 0);
        std::fs::write(dir.join("w_00003_20261127051500.pcapng"), b"").unwrap();
        std::fs::write(dir.join("w_00011_20261127051501.pcapng"), b"").unwrap();
        assert_eq!(last_ring_seq(&base), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ring_names() {
        // 2026-11-27 05:15:00 UTC
        let t = 1_795_756_500;
        assert_eq!(utc_stamp(t), "20261127051500");
        assert_eq!(utc_stamp(0), "19700101000000");
        assert_eq!(utc_stamp(951_782_399), "20000228235959");
        assert_eq!(utc_stamp(951_782_400), "20000229000000");
        assert_eq!(
            ring_name(Path::new("/dir/cap.pcapng"), 1, t),
            Path::new("/dir/cap_00001_20261127051500.pcapng")
        );
        assert_eq!(
            ring_name(Path::new("/dir/cap"), 42, t),
            Path::new("/dir/cap_00042_20261127051500")
        );
        assert_eq!(
            ring_name(Path::new("cap.x.pcap"), 123_456, t),
            Path::new("cap.x_123456_20261127051500.pcap")
        );
    }

    #[test]
    fn pcapng_roundtrip() {
        let dir = temp_dir("ng");
        let path = dir.join("cap.pcapng");
        let mut cap = Capture::open(
            &cfg(Target::File(path.clone()), PcapFormat::PcapNg, 100),
            ifaces(),
        )
        .unwrap();
        let start = now();
        let sizes = [(0, 60), (1, 61), (0, 1500), (1, 20)];
        for (i, &(iface, len)) in sizes.iter().enumerate() {
            cap.record(iface, now(), &ipv4_packet(len, i as u8));
        }
        cap.end_batch(Instant::now());
        cap.finish();
        assert_eq!((cap.recorded(), cap.lost()), (4, 0));
        cap.record(0, now(), &ipv4_packet(60, 9));
        assert_eq!(cap.lost(), 1);

        let mut r = PcapNgReader::new(File::open(&path).unwrap()).unwrap();
        let opts = &r.section().options;
        assert!(opts.contains(&SectionHeaderOption::UserApplication(
            format!("tunwire {}", env!("CARGO_PKG_VERSION")).into()
        )));
        let mut epbs = Vec::new();
        while let Some(block) = r.next_block() {
            if let Block::EnhancedPacket(epb) = block.unwrap() {
                epbs.push(epb.into_owned());
            }
        }
        let idbs = r.interfaces();
        assert_eq!(idbs.len(), 2);
        for (idb, want) in idbs.iter().zip(ifaces()) {
            assert_eq!(idb.linktype, DataLink::RAW);
            assert_eq!(idb.snaplen, 100);
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfName(want.name.into())));
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfDescription(
                    want.description.into()
                )));
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        }
        assert_eq!(epbs.len(), 4);
        for (i, (epb, &(iface, len))) in epbs.iter().zip(&sizes).enumerate() {
            assert_eq!(epb.interface_id as usize, iface);
            assert_eq!(epb.original_len as usize, len);
            assert_eq!(epb.data.len(), len.min(100));
            assert_eq!(&epb.data[..], &ipv4_packet(len, i as u8)[..len.min(100)]);
            assert_eq!(epb.options, vec![EnhancedPacketOption::Flags(2)]);
            assert!(epb.timestamp >= start && epb.timestamp <= start + Duration::from_secs(60));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pcap_roundtrip() {
        let dir = temp_dir("pcap");
        let path = dir.join("cap.pcap");
        let mut cap = Capture::open(
            &cfg(Target::File(path.clone()), PcapFormat::Pcap, 64),
            ifaces(),
        )
        .unwrap();
        let start = now();
        cap.record(0, now(), &ipv4_packet(40, 1));
        cap.record(1, now(), &ipv4_packet(64, 2));
        cap.record(1, now(), &ipv4_packet(300, 3));
        cap.finish();
        assert_eq!((cap.recorded(), cap.lost()), (3, 0));
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        let h = r.header();
        assert_eq!(h.datalink, DataLink::RAW);
        assert_eq!(h.ts_resolution, TsResolution::NanoSecond);
        assert_eq!(h.snaplen, 64);
        let mut got = Vec::new();
        // Raw: pcap-file 2.0's checked reader rejects orig_len > snaplen, which is legal.
        while let Some(p) = r.next_raw_packet() {
            let p = p.unwrap();
            let ts = Duration::new(p.ts_sec.into(), p.ts_frac);
            assert!(ts >= start && ts <= start + Duration::from_secs(60));
            got.push((p.orig_len, p.data.to_vec()));
        }
        assert_eq!(
            got,
            vec![
                (40, ipv4_packet(40, 1)),
                (64, ipv4_packet(64, 2)),
                (300, ipv4_packet(300, 3)[..64].to_vec()),
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ring_rotation() {
        let dir = temp_dir("ring");
        let max = 2000;
        let config = CaptureConfig {
            max_size: Some(max),
            files: Some(3),
            ..cfg(
                Target::File(dir.join("cap.pcapng")),
                PcapFormat::PcapNg,
                262_144,
            )
        };
        let mut cap = Capture::open(&config, ifaces()).unwrap();
        let rec = (EPB_OVERHEAD + 300) as u64;
        for i in 0..50u8 {
            cap.record(usize::from(i % 2), now(), &ipv4_packet(300, i));
            cap.end_batch(Instant::now());
        }
        cap.finish();
        assert_eq!((cap.recorded(), cap.lost()), (50, 0));
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        // 50 packets of 344 bytes, header ~150 bytes: 5 per file, 10 files, the last 3 kept.
        let mut total = 0;
        for (name, seq) in names.iter().zip(8..) {
            assert!(name.starts_with(&format!("cap_{seq:05}_20")), "{name}");
            assert!(
                name.ends_with(".pcapng") && name.len() == "cap_00008_20261127051500.pcapng".len()
            );
            let p = dir.join(name);
            let size = std::fs::metadata(&p).unwrap().len();
            assert!(size <= max + rec, "{name}: {size}");
            let mut r = PcapNgReader::new(File::open(&p).unwrap()).unwrap();
            let mut n = 0;
            while let Some(b) = r.next_block() {
                if let Block::EnhancedPacket(epb) = b.unwrap() {
                    assert_eq!(epb.original_len, 300);
                    n += 1;
                }
            }
            assert_eq!(r.interfaces().len(), 2);
            assert!(n >= 1);
            total += n;
        }
        assert_eq!(total, 15);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn single_file_reopen() {
        let dir = temp_dir("reopen");
        let path = dir.join("cap.pcapng");
        let mut cap = Capture::open(
            &cfg(Target::File(path.clone()), PcapFormat::PcapNg, 262_144),
            ifaces(),
        )
        .unwrap();
        cap.record(0, now(), &ipv4_packet(60, 1));
        let rotated = dir.join("cap.pcapng.1");
        std::fs::rename(&path, &rotated).unwrap();
        cap.reopen();
        cap.record(1, now(), &ipv4_packet(60, 2));
        cap.record(1, now(), &ipv4_packet(60, 3));
        cap.finish();
        let count = |p: &Path| {
            let mut r = PcapNgReader::new(File::open(p).unwrap()).unwrap();
            let mut n = 0;
            while let Some(b) = r.next_block() {
                n += usize::from(matches!(b.unwrap(), Block::EnhancedPacket(_)));
            }
            n
        };
        assert_eq!((count(&rotated), count(&path)), (1, 2));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn write_error_is_counted_not_fatal() {
        let ours = init_logger();
        let mut cap = Capture::open(
            &cfg(
                Target::File("/dev/full".into()),
                PcapFormat::PcapNg,
                262_144,
            ),
            ifaces(),
        )
        .unwrap();
        for i in 0..10 {
            cap.record(0, now(), &ipv4_packet(100, i));
            cap.end_batch(Instant::now() + Duration::from_secs(2));
        }
        cap.reopen();
        cap.record(0, now(), &ipv4_packet(100, 10));
        cap.finish();
        assert_eq!(cap.recorded(), 0);
        assert_eq!(cap.lost(), 11);
        if ours {
            let msgs = MESSAGES.lock().unwrap();
            let ours: Vec<_> = msgs.iter().filter(|m| m.contains("/dev/full")).collect();
            // One for the first file, one for the SIGHUP retry.
            assert_eq!(ours.len(), 2, "{ours:?}");
            assert!(ours[0].contains("No space left on device"), "{}", ours[0]);
        }
    }

    #[test]
    fn open_error_names_path() {
        let e = match Capture::open(
            &cfg(
                Target::File("/nonexistent-dir/x.pcapng".into()),
                PcapFormat::PcapNg,
                1,
            ),
            ifaces(),
        ) {
            Err(e) => e,
            Ok(_) => panic!("opened"),
        };
        assert!(
            e.starts_with("failed to open capture file /nonexistent-dir/x.pcapng: "),
            "{e}"
        );
    }
}
