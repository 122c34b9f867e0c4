// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtnetlink transport: the socket, requests with their acknowledgement (and the kernel's
//! extended-ack text on refusal), dumps, and the link-event subscription. The verbs live in
//! `apply` (the plan) and `state` (reading the namespace, removing leftovers). Must not decide
//! what to change.

use std::os::fd::{AsFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::libc;

use crate::error::{Error, Result};

/// Extended-ack attribute with the kernel's message (linux/netlink.h; not in libc).
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;

pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Netlink {
    pub fn open() -> Result<Self> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| io_error("open a netlink socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| io_error("bind the netlink socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_error("connect the netlink socket", e))?;
        // Best effort: with these the kernel explains a refusal in words and echoes only the
        // header of our request.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Netlink { socket, seq: 0 })
    }

    /// A socket that hears link changes (RTNLGRP_LINK), for the supervisor's watch.
    pub fn monitor_links() -> Result<Self> {
        let nl = Self::open()?;
        nl.socket
            .add_membership(libc::RTNLGRP_LINK)
            .map_err(|e| io_error("subscribe to link events", e))?;
        Ok(nl)
    }

    /// The (index, is up) of every link change in the next datagram of a `monitor_links` socket.
    pub fn link_events(&mut self) -> Result<Vec<(u32, bool)>> {
        Ok(self
            .receive("read link events")?
            .into_iter()
            .filter_map(|m| match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    Some((link.header.index, link.header.flags.contains(LinkFlags::Up)))
                }
                _ => None,
            })
            .collect())
    }

    // ---- send, ack, dump ----

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16, what: &str) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| io_error(&format!("send netlink request ({what})"), e))?;
        Ok(self.seq)
    }

    /// Send a request and wait for its acknowledgement.
    pub(super) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<()> {
        let seq = self.send(msg, flags | NLM_F_ACK, what)?;
        loop {
            for reply in self.receive(what)? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                if let NetlinkPayload::Error(err) = reply.payload {
                    return match err.code {
                        None => Ok(()),
                        Some(code) => Err(Error::Netlink {
                            what: what.to_string(),
                            errno: Errno::from_raw(-code.get()),
                            ext_ack: ext_ack_message(reply.header.flags, &err.header),
                        }),
                    };
                }
            }
        }
    }

    /// Send a dump request; every message of the answer.
    pub(super) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_DUMP, what)?;
        let mut out = Vec::new();
        loop {
            for reply in self.receive(what)? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(err) if err.code.is_some() => {
                        return Err(Error::Netlink {
                            what: what.to_string(),
                            errno: Errno::from_raw(-err.raw_code()),
                            ext_ack: ext_ack_message(reply.header.flags, &err.header),
                        })
                    }
                    _ => {}
                }
            }
        }
    }

    /// One datagram, split into its messages.
    fn receive(&mut self, what: &str) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        let (bytes, _) = self
            .socket
            .recv_from_full()
            .map_err(|e| io_error(&format!("receive netlink reply ({what})"), e))?;
        let mut out = Vec::new();
        let mut off = 0;
        while off + 16 <= bytes.len() {
            let len =
                u32::from_ne_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
                    as usize;
            if len < 16 || off + len > bytes.len() {
                break;
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[off..off + len])
                .map_err(|e| {
                    Error::Runtime(format!(
                        "failed to {what}: cannot decode netlink reply: {e}"
                    ))
                })?;
            out.push(msg);
            off += (len + 3) & !3;
        }
        Ok(out)
    }
}

/// The extended-ack text (NLMSGERR_ATTR_MSG) after the echoed request in an error message.
fn ext_ack_message(outer_flags: u16, payload: &[u8]) -> Option<String> {
    if payload.len() < 16 {
        return None;
    }
    let echoed = if outer_flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
    };
    let mut tlvs = payload.get((echoed + 3) & !3..)?;
    while tlvs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned()).filter(|s| !s.is_empty());
        }
        tlvs = tlvs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

pub fn ifindex(dev: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(dev).map_err(|e| Error::os(format!("find interface {dev}"), e))
}

pub(super) fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::os(
        what,
        Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text_is_found_after_capped_header() {
        let mut payload = vec![0u8; 16];
        payload[0] = 40; // echoed nlmsg_len, ignored when capped
        let text = b"Rule exists\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED, &payload).as_deref(),
            Some("Rule exists")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload[..16]), None);
        assert_eq!(ext_ack_message(0, &[1, 2, 3]), None);
    }
}
