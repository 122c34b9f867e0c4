// SPDX-License-Identifier: MIT OR Apache-2.0
//! The reader side of live capture: `tunwire capture [WIRE]` and the capture of the extcap
//! interface. It finds the wire in the kernel's records (list.rs), connects to its relay's
//! abstract socket, and first checks who listens there: the kernel's credentials of the peer
//! must be the wire's owner, and its process a child of the wire's supervisor, or it refuses
//! to read (another user could have taken the name). Then it asks for the stream and copies
//! whole pcapng blocks to a file, stdout or Wireshark's FIFO, until COUNT packets, the
//! duration, SIGINT or SIGTERM, or the wire's end. Needs no capability; holds none.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use crate::capture::live::{self, REQUEST};
use crate::error::{Error, Result, EXIT_OK};
use crate::event::{EventLoop, PollFlags};
use crate::list::{wires, WireInfo};
use crate::setup::state::State;

/// pcapng block type of an Enhanced Packet Block.
const BLOCK_EPB: u32 = 6;

/// What to read and where to stop.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// An interface name of the wire; None when exactly one wire runs.
    pub wire: Option<String>,
    pub snaplen: u32,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

/// The running wire named by either of its interfaces (or the only one).
pub fn find(st: &State, name: Option<&str>) -> Result<WireInfo> {
    let all = wires(st);
    match name {
        Some(n) => all
            .into_iter()
            .find(|w| w.sides.iter().any(|(s, _)| s == n))
            .ok_or_else(|| Error::Runtime(format!("no running wire has an interface named {n}"))),
        None => match all.len() {
            0 => Err(Error::Runtime("no wire is running".into())),
            1 => Ok(all.into_iter().next().expect("one wire")),
            _ => Err(Error::Usage(format!(
                "{} wires are running: name one by an interface ({})",
                all.len(),
                all.iter()
                    .map(|w| w.sides[0].0.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// Connect to the wire's relay, check that it is the wire's, ask for the stream. Returns the
/// connection positioned at the start of the pcapng stream.
pub fn attach(wire: &WireInfo, snaplen: u32) -> Result<BufReader<UnixStream>> {
    let name = live::socket_name(wire.supervisor as u32);
    let a = &wire.sides[0].0;
    let addr = SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| Error::Runtime(format!("{name}: {e}")))?;
    let sock = UnixStream::connect_addr(&addr).map_err(|e| {
        Error::Runtime(format!(
            "the wire of {a} takes no live readers ({e}): a program that got the devices \
             themselves holds them; start it with --pcap to keep tunwire in the path"
        ))
    })?;
    let (uid, _, _) = live::peer(&sock).map_err(Error::Runtime)?;
    let pid =
        nix::sys::socket::getsockopt(&sock.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| c.pid())
            .unwrap_or(0);
    if Some(uid) != wire.uid || !child_of(pid, wire.supervisor) {
        return Err(Error::NotPermitted(format!(
            "the capture socket of {a} is held by uid {uid} (pid {pid}), not by the wire's relay \
             (owner {}, supervisor {}); not reading from it",
            wire.owner, wire.supervisor
        )));
    }
    let mut sock = BufReader::new(sock);
    // A refused reader's request may meet a socket the relay already closed (EPIPE): its
    // answer, the refusal, is still waiting to be read, and it is what the user must see.
    let sent = sock
        .get_mut()
        .write_all(format!("{REQUEST} snaplen={snaplen}\n").as_bytes());
    let mut status = String::new();
    let read = sock.by_ref().take(1024).read_line(&mut status);
    let status = status.trim_end();
    if status.is_empty() || (status == "OK" && sent.is_err()) {
        return Err(Error::Runtime(match (sent, read) {
            (Err(e), _) => format!("capture request to {a}: {e}"),
            (_, Err(e)) => format!("capture answer from {a}: {e}"),
            _ => format!("the wire of {a} closed the connection"),
        }));
    }
    if status == "OK" {
        return Ok(sock);
    }
    match status.strip_prefix("ERR ").and_then(|r| r.split_once(' ')) {
        Some(("77", why)) => Err(Error::NotPermitted(format!(
            "may not capture on {a}: {why}"
        ))),
        Some((_, why)) => Err(Error::Usage(format!("capture on {a}: {why}"))),
        None => Err(Error::Runtime(format!(
            "the wire of {a} answered {status:?}"
        ))),
    }
}

/// Whether `pid`'s parent is `parent` (from /proc; a pid we may not see counts as a child,
/// the uid check above still holds).
fn child_of(pid: i32, parent: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok())
                == Some(parent)
        }
        Err(_) => pid > 0,
    }
}

/// Copy whole blocks from `src` to `out` until a stop. Returns the packets copied.
pub fn stream(src: BufReader<UnixStream>, out: &mut dyn Write, req: &Request) -> Result<u64> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block()
        .map_err(|e| Error::os("block SIGINT and SIGTERM", e))?;
    let signals = crate::event::signalfd(&mask)?;
    let mut buf = src.buffer().to_vec();
    let sock = src.into_inner();
    sock.set_nonblocking(true)
        .map_err(|e| Error::Runtime(format!("capture socket: {e}")))?;
    let deadline = req.duration.map(|d| Instant::now() + d);
    let mut ev = EventLoop::new();
    #[derive(Clone, Copy, PartialEq)]
    enum Slot {
        Sock,
        Signals,
    }
    ev.set(Slot::Sock, sock.as_fd(), PollFlags::POLLIN);
    ev.set(Slot::Signals, signals.as_fd(), PollFlags::POLLIN);
    let mut packets = 0u64;
    let mut chunk = vec![0u8; 256 * 1024];
    let mut stopping = false;
    loop {
        // Write every whole block buffered.
        let mut at = 0;
        while buf.len() - at >= 8 {
            let kind = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
            let len = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            if len < 12 || len % 4 != 0 {
                return Err(Error::Runtime("the capture stream is garbled".into()));
            }
            if buf.len() - at < len {
                break;
            }
            out.write_all(&buf[at..at + len])
                .map_err(|e| Error::Runtime(format!("write the capture: {e}")))?;
            at += len;
            if kind == BLOCK_EPB {
                packets += 1;
                if req.count.is_some_and(|c| packets >= c) {
                    out.flush().ok();
                    return Ok(packets);
                }
            }
        }
        buf.drain(..at);
        out.flush()
            .map_err(|e| Error::Runtime(format!("write the capture: {e}")))?;
        if stopping || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(packets);
        }
        ev.wait(deadline)
            .map_err(|e| Error::os("poll the capture socket", e))?;
        if ev.is_ready(Slot::Signals) {
            // What the socket already holds was captured before the signal: keep it.
            use nix::sys::socket::{recv, MsgFlags};
            use std::os::fd::AsRawFd;
            while let Ok(n @ 1..) = recv(sock.as_raw_fd(), &mut chunk, MsgFlags::MSG_DONTWAIT) {
                buf.extend_from_slice(&chunk[..n]);
            }
            stopping = true;
            continue;
        }
        if ev.is_ready(Slot::Sock) {
            match (&sock).read(&mut chunk) {
                Ok(0) => {
                    log::info!("the wire stopped");
                    return Ok(packets);
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::Runtime(format!("capture socket: {e}"))),
            }
        }
    }
}

/// `tunwire capture [WIRE] [-w FILE|-] [--snaplen N] [-c COUNT] [--duration SECONDS]`.
pub fn capture(req: &Request, write: Option<&str>) -> Result<u8> {
    let st = State::read()?;
    let wire = find(&st, req.wire.as_deref())?;
    let mut out: Box<dyn Write> = match write {
        Some("-") | None => {
            if write.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(Error::Usage(
                    "stdout is a terminal: name a file with -w FILE, or pipe into a reader \
                     (tunwire capture | wireshark -k -i -)"
                        .into(),
                ));
            }
            Box::new(std::io::stdout().lock())
        }
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| Error::Runtime(format!("cannot write {path}: {e}")))?,
        ),
    };
    let src = attach(&wire, req.snaplen)?;
    log::info!(
        "capturing {} <-> {} ({})",
        wire.sides[0].0,
        wire.sides[1].0,
        wire.owner
    );
    let n = stream(src, &mut out, req)?;
    log::info!("{n} packets captured");
    Ok(EXIT_OK)
}

/// The text of /proc/net/unix (empty if unreadable), for `takes_readers`.
pub fn unix_sockets() -> String {
    std::fs::read_to_string("/proc/net/unix").unwrap_or_default()
}

/// Whether `wire`'s relay listens for live readers (`sockets`: from `unix_sockets`); a
/// program that got the devices themselves does not.
pub fn takes_readers(wire: &WireInfo, sockets: &str) -> bool {
    let name = format!("@{}", live::socket_name(wire.supervisor as u32));
    sockets
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name.as_str()))
}

/// Whether the policy names the caller a capture reader (`capture user|group`); the same
/// answer for every wire.
fn policy_reader() -> bool {
    let Ok(policy) = crate::policy::load() else {
        return false;
    };
    let name = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let gids: Vec<nix::unistd::Gid> = nix::unistd::getgroups().unwrap_or_default();
    let in_group = |g: &str| {
        nix::unistd::Group::from_name(g)
            .ok()
            .flatten()
            .is_some_and(|g| g.gid == nix::unistd::getgid() || gids.contains(&g.gid))
    };
    policy.may_capture(&name, &in_group)
}

/// `tunwire capture --list`: each wire, and whether the caller may attach to it (root, its
/// owner, a reader the policy names) or it takes no readers at all (a program holds the
/// devices).
pub fn list() -> Result<u8> {
    let st = State::read()?;
    let all = wires(&st);
    if all.is_empty() {
        crate::cli::out("no wire is running\n");
    }
    let sockets = unix_sockets();
    let me = nix::unistd::getuid().as_raw();
    let mut reader = None;
    for w in &all {
        let verdict = if !takes_readers(w, &sockets) {
            "no live capture (a program holds the devices)"
        } else if me == 0 || Some(me) == w.uid || *reader.get_or_insert_with(policy_reader) {
            "yes, you may attach"
        } else {
            "no, you may not attach"
        };
        crate::cli::out(&format!(
            "{} <-> {}  owner {}  capture: {verdict}\n",
            w.sides[0].0, w.sides[1].0, w.owner,
        ));
    }
    Ok(EXIT_OK)
}

/// The wire of an extcap interface value (`tunwire-NAME`).
pub fn by_extcap_name<'a>(all: &'a [WireInfo], value: &str) -> Option<&'a WireInfo> {
    let name = value.strip_prefix("tunwire-")?;
    all.iter().find(|w| w.sides[0].0 == name)
}
