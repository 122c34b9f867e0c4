// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where capture bytes go: one open output (a regular file or stdout) with its buffer of whole
//! records. Files are opened with O_NOFOLLOW and O_NONBLOCK and must be regular files, so a
//! symlink or a FIFO can never redirect or block the wire. A pipe on stdout is written
//! non-blocking. Must not decide what to record: that is `Capture`'s.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, posix_fadvise, FcntlArg, OFlag, PosixFadviseAdvice};
use nix::libc;
use nix::sys::stat::{fstat, SFlag};

/// Page cache a file capture may hold before it is written back and dropped.
const WRITEBACK_WINDOW: u64 = 8 << 20;

/// Why a capture file cannot be opened.
#[derive(Debug)]
pub struct OpenError {
    pub path: PathBuf,
    pub why: String,
}

impl OpenError {
    /// As a configuration error: the relay writes the capture as `user` (`switched`: root
    /// chose that user, so --user can change it).
    pub fn for_user(&self, user: &str, switched: bool) -> crate::error::Error {
        crate::error::Error::Usage(format!(
            "{self} (the relay writes it as {user})\n  hint: pick a path that {user} may write{}",
            if switched { ", or set --user" } else { "" }
        ))
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "capture file {}: {}", self.path.display(), self.why)
    }
}

/// Create or truncate the regular file `path` for writing, as the calling identity. Refuses a
/// symlink (O_NOFOLLOW), and a FIFO, device or socket (checked before anything is truncated;
/// O_NONBLOCK keeps a FIFO from blocking the open).
pub fn open_file(path: &Path) -> Result<File, OpenError> {
    let fail = |why: String| OpenError {
        path: path.to_path_buf(),
        why,
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail(describe_open_error(path, &e)))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a FIFO or device); capture goes to a regular file or to \
             stdout (--pcap -)"
                .into(),
        ));
    }
    file.set_len(0).map_err(|e| fail(e.to_string()))?;
    Ok(file)
}

/// `path` still names the open `file` (it was not moved away or replaced).
pub fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The cause of a failed open, in words: a missing directory and a symlink are named as such.
pub fn describe_open_error(path: &Path, e: &std::io::Error) -> String {
    let dir = super::ring::dir_of(path);
    match e.raw_os_error() {
        Some(libc::ENOENT) if !dir.is_dir() => {
            format!("directory {} does not exist", dir.display())
        }
        Some(libc::ELOOP) => "is a symbolic link; tunwire does not follow it".into(),
        Some(libc::ENXIO) => "is a FIFO with no reader; capture to a regular file or stdout".into(),
        _ => e.to_string(),
    }
}

/// Whether the calling identity could create or overwrite `path`, without changing anything
/// (for `tunwire check`).
pub fn probe_file(path: &Path) -> Result<(), OpenError> {
    let fail = |why: String| OpenError {
        path: path.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(fail(
            "is a symbolic link; tunwire does not follow it".into(),
        )),
        Ok(meta) if !meta.is_file() => Err(fail(
            "is not a regular file (a FIFO or device); capture goes to a regular file or to \
             stdout (--pcap -)"
                .into(),
        )),
        Ok(_) => access(path, libc::W_OK).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let dir = super::ring::dir_of(path);
            if !dir.is_dir() {
                return Err(fail(format!("directory {} does not exist", dir.display())));
            }
            access(dir, libc::W_OK | libc::X_OK)
                .map_err(|e| fail(format!("cannot create files in {}: {e}", dir.display())))
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// faccessat(AT_EACCESS): checks with the file-system identity (fsuid, groups), which is the
/// one `privilege::as_identity` switches.
fn access(path: &Path, mode: libc::c_int) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: c is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Switch O_NONBLOCK on (or back off) when `fd` is a pipe or socket; returns whether it is one.
/// A terminal or file on stdout stays blocking: its flags are shared with the shell.
pub fn set_nonblocking_if_pipe(fd: &impl AsFd, on: bool) -> bool {
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

/// The file or stream currently written.
pub struct Output {
    pub file: File,
    /// `None` for stdout.
    pub path: Option<PathBuf>,
    /// Whole records (and the header) not yet handed to the kernel.
    pub buf: Vec<u8>,
    pub buf_records: u64,
    /// Bytes handed to this output (header + records), for rotation.
    pub size: u64,
    /// Bytes the kernel accepted: always a record boundary.
    pub flushed: u64,
    /// Records in this output.
    pub packets: u64,
    /// A pipe or socket, written non-blocking so a slow reader cannot stall the wire: what
    /// does not fit waits in `buf`, and records that do not fit there are lost.
    pub nonblocking: bool,
    /// Start of the range whose writeback was started but not yet waited for.
    wb_from: u64,
    /// End of that range: writeback has been started up to here.
    wb_to: u64,
}

impl Output {
    pub fn new(file: File, path: Option<PathBuf>, buf: Vec<u8>, nonblocking: bool) -> Output {
        Output {
            file,
            path,
            buf,
            buf_records: 0,
            size: 0,
            flushed: 0,
            packets: 0,
            nonblocking,
            wb_from: 0,
            wb_to: 0,
        }
    }

    /// Write what the (non-blocking) output takes now; returns the bytes written.
    pub fn write_available(&mut self) -> std::io::Result<usize> {
        write_nonblocking(&mut self.file, &self.buf)
    }

    /// Hand the buffer to the kernel: all of it (blocking), or what a pipe takes now. Returns
    /// the bytes written; on success they are removed from the buffer.
    pub fn write_buffer(&mut self) -> std::io::Result<usize> {
        let n = if self.nonblocking {
            self.write_available()?
        } else {
            self.file.write_all(&self.buf)?;
            self.buf.len()
        };
        self.flushed += n as u64;
        self.buf.drain(..n);
        if self.buf.is_empty() {
            self.buf_records = 0;
        }
        if self.path.is_some() {
            self.recycle_page_cache();
        }
        Ok(n)
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

/// Write as much of `buf` as a non-blocking `out` takes now; returns the bytes written.
pub fn write_nonblocking(out: &mut impl Write, buf: &[u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match out.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tunwire-sink-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_symlinks_fifos_and_missing_dirs() {
        let d = dir("refuse");
        std::fs::write(d.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink("victim", d.join("link")).unwrap();
        let e = open_file(&d.join("link")).unwrap_err();
        assert!(e.why.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(d.join("victim")).unwrap(), "keep");
        assert!(probe_file(&d.join("link")).is_err());
        nix::unistd::mkfifo(
            &d.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let e = open_file(&d.join("fifo")).unwrap_err();
        assert!(e.why.contains("FIFO"), "{e}");
        let e = probe_file(&d.join("fifo")).unwrap_err();
        assert!(e.why.contains("FIFO"), "{e}");
        let e = open_file(&d.join("no/such/x.pcapng")).unwrap_err();
        assert!(e.why.contains("does not exist"), "{e}");
        let e = probe_file(&d.join("no/x.pcapng")).unwrap_err();
        assert!(e.why.contains("does not exist"), "{e}");
        assert!(probe_file(&d.join("new.pcapng")).is_ok());
        assert!(!d.join("new.pcapng").exists(), "probe created the file");
        std::fs::write(d.join("old"), "data").unwrap();
        open_file(&d.join("old")).unwrap();
        assert_eq!(std::fs::read(d.join("old")).unwrap().len(), 0, "truncated");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
