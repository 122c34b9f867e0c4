// SPDX-License-Identifier: MIT OR Apache-2.0
//! Live capture readers (`tunwire capture`, Wireshark's extcap): the relay listens on an
//! abstract Unix socket named after the wire's supervisor, `tunwire-capture-PID`, which
//! vanishes with the process. A reader is authorized by the kernel's word about it
//! (SO_PEERCRED and SO_PEERGROUPS): root, the wire's owner, or a user or group the policy names
//! with `capture`. It sends one request line, `TUNWIRE-CAPTURE 1 snaplen=N`, and gets `OK`
//! and the same pcapng stream as `--pcap`, or `ERR CODE MESSAGE`. Each reader has its own
//! buffer of whole records, written non-blocking: one that falls behind loses whole records,
//! reported in the next record's epb_dropcount, and never slows the wire. With no reader,
//! nothing is encoded. Must not block, and must not trust what a reader sends.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

use nix::libc;

use super::format::{self, Header, Meta, PcapFormat};

/// What a reader's buffer may hold before its records are dropped.
const READER_BUF: usize = 256 * 1024;
/// The request line is short; a longer one is refused.
const MAX_REQUEST: usize = 128;
/// The request's first word and version.
pub const REQUEST: &str = "TUNWIRE-CAPTURE 1";

/// The abstract socket name of the wire whose supervisor is `pid`.
pub fn socket_name(pid: u32) -> String {
    format!("tunwire-capture-{pid}")
}

/// Who may attach besides root.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// The wire's owner (the relay's uid).
    pub owner: u32,
    /// `capture user` lines, resolved.
    pub users: Vec<u32>,
    /// `capture group` lines, resolved.
    pub groups: Vec<u32>,
}

impl Acl {
    /// The verdict for a peer the kernel describes: Ok, or what is missing.
    pub fn check(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), String> {
        if uid == 0 || uid == self.owner || self.users.contains(&uid) {
            return Ok(());
        }
        if std::iter::once(&gid)
            .chain(groups)
            .any(|g| self.groups.contains(g))
        {
            return Ok(());
        }
        Err(if self.groups.is_empty() && self.users.is_empty() {
            "you are neither root nor the wire's owner, and the policy names no capture readers \
             ('capture group NAME' in /etc/tunwire/policy.conf)"
                .into()
        } else {
            "you are neither root nor the wire's owner, nor a capture reader the policy names \
             ('capture user' or 'capture group' in /etc/tunwire/policy.conf)"
                .into()
        })
    }
}

enum State {
    /// Authorized; waiting for its request line.
    Asking(Vec<u8>),
    /// Streaming records.
    Reading,
}

/// One attached reader.
pub struct Reader {
    pub id: u32,
    sock: UnixStream,
    state: State,
    snaplen: usize,
    buf: Vec<u8>,
    /// Records dropped since the last one it got (its next record says so).
    dropped: u64,
}

impl Reader {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// It has bytes waiting to be written.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// The listener and the readers.
pub struct Live {
    listener: UnixListener,
    acl: Acl,
    header: Header,
    pub readers: Vec<Reader>,
    next_id: u32,
    /// Readers that are streaming (a fast check for the hot path).
    streaming: usize,
}

impl Live {
    /// Listen as `tunwire-capture-PID`. Fails when the name is taken (another process took it
    /// first: readers then refuse it, since its credentials are not the owner's).
    pub fn open(pid: u32, acl: Acl, header: Header) -> std::io::Result<Live> {
        let addr = SocketAddr::from_abstract_name(socket_name(pid).as_bytes())?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(Live {
            listener,
            acl,
            header: Header {
                format: PcapFormat::PcapNg,
                ..header
            },
            readers: Vec::new(),
            next_id: 0,
            streaming: 0,
        })
    }

    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Whether any reader takes records now.
    pub fn active(&self) -> bool {
        self.streaming > 0
    }

    /// Accept every pending connection; refuse (with a reason) whoever may not read.
    pub fn accept(&mut self) {
        while let Ok((mut sock, _)) = self.listener.accept() {
            let verdict = peer(&sock).and_then(|(uid, gid, groups)| {
                self.acl.check(uid, gid, &groups).map_err(|why| {
                    log::warn!("capture reader uid {uid} refused: {why}");
                    why
                })
            });
            if let Err(why) = verdict {
                let _ = sock.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = sock.write_all(format!("ERR 77 {why}\n").as_bytes());
                continue;
            }
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            self.next_id = self.next_id.wrapping_add(1);
            self.readers.push(Reader {
                id: self.next_id,
                sock,
                state: State::Asking(Vec::new()),
                snaplen: 0,
                buf: Vec::new(),
                dropped: 0,
            });
        }
    }

    /// The reader `id` is readable: its request (when asking), or its end (EOF). Returns false
    /// when it is gone.
    pub fn on_readable(&mut self, id: u32) -> bool {
        let Some(i) = self.readers.iter().position(|r| r.id == id) else {
            return false;
        };
        let r = &mut self.readers[i];
        let mut chunk = [0u8; MAX_REQUEST];
        let n = match r.sock.read(&mut chunk) {
            Ok(0) => return self.remove(i),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return self.remove(i),
        };
        let State::Asking(line) = &mut r.state else {
            // A streaming reader has nothing more to say; ignore it.
            return true;
        };
        line.extend_from_slice(&chunk[..n]);
        let Some(end) = line.iter().position(|&b| b == b'\n') else {
            if line.len() > MAX_REQUEST {
                return self.refuse(i, "the request is too long");
            }
            return true;
        };
        let text = String::from_utf8_lossy(&line[..end]).into_owned();
        match parse_request(&text) {
            Ok(snaplen) => {
                r.snaplen = snaplen as usize;
                let Some(bytes) = header_bytes(&self.header, snaplen) else {
                    return self.remove(i);
                };
                r.buf.extend_from_slice(b"OK\n");
                r.buf.extend_from_slice(&bytes);
                r.state = State::Reading;
                self.streaming += 1;
                log::info!("capture reader {id} attached (snaplen {snaplen})");
                true
            }
            Err(why) => self.refuse(i, &why),
        }
    }

    fn refuse(&mut self, i: usize, why: &str) -> bool {
        let _ = self.readers[i]
            .sock
            .write_all(format!("ERR 2 {why}\n").as_bytes());
        self.remove(i)
    }

    fn remove(&mut self, i: usize) -> bool {
        let r = self.readers.swap_remove(i);
        if matches!(r.state, State::Reading) {
            self.streaming -= 1;
            log::info!("capture reader {} detached", r.id);
        }
        false
    }

    /// Record one packet for every streaming reader; a reader whose buffer is full loses the
    /// record, whole, and learns of it in its next record.
    pub fn record(&mut self, iface: usize, ts: Duration, packet: &[u8], meta: &Meta) {
        for r in self.readers.iter_mut() {
            if !matches!(r.state, State::Reading) {
                continue;
            }
            let caplen = packet.len().min(r.snaplen);
            let meta = Meta {
                drop_count: (r.dropped > 0).then_some(r.dropped),
                ..*meta
            };
            let len = format::record_len(PcapFormat::PcapNg, caplen, &meta);
            if r.buf.len() + len > READER_BUF {
                r.dropped += 1;
                continue;
            }
            let orig = u32::try_from(packet.len()).unwrap_or(u32::MAX);
            format::push_record(
                &mut r.buf,
                PcapFormat::PcapNg,
                iface as u32,
                ts,
                &packet[..caplen],
                orig,
                &meta,
            );
            r.dropped = 0;
        }
    }

    /// The settings changed (SIGHUP): every reader gets a new section whose comment says so.
    pub fn new_section(&mut self, comment: &str) {
        self.header.comment = Some(comment.to_string());
        for r in self.readers.iter_mut() {
            if !matches!(r.state, State::Reading) {
                continue;
            }
            if let Some(bytes) = header_bytes(&self.header, r.snaplen as u32) {
                r.buf.extend_from_slice(&bytes);
            }
        }
    }

    /// Write what each reader takes now. A reader that went away is removed.
    pub fn flush(&mut self) {
        let mut i = 0;
        while i < self.readers.len() {
            let r = &mut self.readers[i];
            match super::sink::write_nonblocking(&mut r.sock, &r.buf) {
                Ok(done) => {
                    r.buf.drain(..done);
                    i += 1;
                }
                // The reader went away (EPIPE, ECONNRESET).
                Err(_) => {
                    self.remove(i);
                }
            }
        }
    }
}

/// The wire's section header and interfaces as one reader gets them: with its snaplen.
fn header_bytes(wire: &Header, snaplen: u32) -> Option<Vec<u8>> {
    format::header_bytes(&Header {
        snaplen,
        ..wire.clone()
    })
    .ok()
}

/// `TUNWIRE-CAPTURE 1 snaplen=N` -> N.
pub fn parse_request(line: &str) -> Result<u32, String> {
    let rest = line
        .strip_prefix(REQUEST)
        .ok_or_else(|| format!("not a capture request (expected '{REQUEST} snaplen=N')"))?;
    let mut snaplen = crate::config::DEFAULT_SNAPLEN;
    for word in rest.split_whitespace() {
        match word.split_once('=') {
            Some(("snaplen", n)) => {
                snaplen =
                    crate::config::snaplen_value(n).ok_or_else(|| format!("bad snaplen '{n}'"))?;
            }
            _ => return Err(format!("unknown request word '{word}'")),
        }
    }
    Ok(snaplen)
}

/// (uid, gid, supplementary groups) of the peer, as the kernel saw it at connect time. The
/// group list is sized by the run-time NGROUPS_MAX, never by a constant.
pub fn peer(sock: &UnixStream) -> Result<(u32, u32, Vec<u32>), String> {
    let fd = sock.as_raw_fd();
    let cred =
        nix::sys::socket::getsockopt(&sock.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| format!("cannot tell who the reader is: {e}"))?;
    let max = nix::unistd::sysconf(nix::unistd::SysconfVar::NGROUPS_MAX)
        .ok()
        .flatten()
        .unwrap_or(65536)
        .max(1) as usize;
    let mut groups = vec![0 as libc::gid_t; max];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: groups is a buffer of `len` bytes that outlives the call; the kernel writes at
    // most `len` bytes and stores the length it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot read the reader's groups: {}",
            std::io::Error::last_os_error()
        ));
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    Ok((cred.uid(), cred.gid(), groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl() {
        let acl = Acl {
            owner: 1000,
            users: vec![1002],
            groups: vec![500],
        };
        assert!(acl.check(0, 0, &[]).is_ok());
        assert!(acl.check(1000, 1000, &[]).is_ok());
        assert!(acl.check(1002, 1002, &[]).is_ok());
        assert!(acl.check(1001, 1001, &[7, 500]).is_ok());
        assert!(acl.check(1001, 500, &[]).is_ok());
        let e = acl.check(1001, 1001, &[7]).unwrap_err();
        assert!(e.contains("capture group"), "{e}");
        let e = Acl::default().check(5, 5, &[]).unwrap_err();
        assert!(e.contains("names no capture readers"), "{e}");
    }

    #[test]
    fn requests() {
        assert_eq!(parse_request("TUNWIRE-CAPTURE 1 snaplen=64"), Ok(64));
        assert_eq!(parse_request("TUNWIRE-CAPTURE 1"), Ok(262_144));
        assert!(parse_request("GET /").is_err());
        assert!(parse_request("TUNWIRE-CAPTURE 1 snaplen=0").is_err());
        assert!(parse_request("TUNWIRE-CAPTURE 1 snaplen=999999").is_err());
        assert!(parse_request("TUNWIRE-CAPTURE 1 rm=-rf").is_err());
    }

    #[test]
    fn peer_credentials_are_the_kernels() {
        let (a, _b) = UnixStream::pair().unwrap();
        let (uid, gid, groups) = peer(&a).unwrap();
        assert_eq!(uid, nix::unistd::getuid().as_raw());
        assert_eq!(gid, nix::unistd::getgid().as_raw());
        let mine: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .iter()
            .map(|g| g.as_raw())
            .collect();
        assert_eq!(groups.len(), mine.len());
    }
}
