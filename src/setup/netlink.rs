// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtnetlink: the verbs that execute a `plan::Step`, and the teardown that finds our leftovers by
//! protocol tag plus interface name. Public verbs on top, the private send/ack/dump helpers at the
//! bottom. Must not touch anything that is not ours: deletions filter on PROTO_TUNWIRE and names.

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

use nix::libc;

use super::plan::{Family, Step, PEER_ROUTE_METRIC, PROTO_TUNWIRE};
use crate::error::{Error, Result};

const RT_TABLE_LOCAL: u32 = libc::RT_TABLE_LOCAL as u32;
/// Extended-ack attribute with the kernel's message (linux/netlink.h; not in libc).
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
/// How long setup waits for the kernel's IPv6 local route: 400 x 5 ms = 2 s at most.
const LOCAL_ROUTE_TRIES: u32 = 400;
const LOCAL_ROUTE_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

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

    /// Execute one step of the plan.
    pub fn apply(&mut self, step: &Step) -> Result<()> {
        let what = step.to_string().replace('\n', "; ");
        match step {
            Step::LinkUp { dev, mtu } => {
                let mut msg = LinkMessage::default();
                msg.header.index = ifindex(dev)?;
                msg.header.flags = LinkFlags::Up;
                msg.header.change_mask = LinkFlags::Up;
                msg.attributes.push(LinkAttribute::Mtu(*mtu));
                self.request(RouteNetlinkMessage::SetLink(msg), 0, &what)
            }
            Step::AddAddress { dev, local, peer } => {
                let mut msg = AddressMessage::default();
                msg.header.family = family_of(local);
                msg.header.prefix_len = host_prefix(local);
                msg.header.scope = AddressScope::Universe;
                msg.header.index = ifindex(dev)?;
                msg.attributes.push(AddressAttribute::Local(*local));
                msg.attributes.push(AddressAttribute::Address(*peer));
                if local.is_ipv6() {
                    msg.header.flags = AddressHeaderFlags::Nodad;
                    msg.attributes.push(AddressAttribute::Flags(
                        AddressFlags::Nodad | AddressFlags::Noprefixroute,
                    ));
                }
                self.request(
                    RouteNetlinkMessage::NewAddress(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                    &what,
                )
            }
            Step::MoveLocalRoute { dev, addr, table } => {
                let index = ifindex(dev)?;
                self.delete_local_route(*addr, index, &what)?;
                self.add_our_local_route(*addr, index, *table, &what)
            }
            Step::AddRule {
                family,
                dev,
                table,
                priority,
            } => {
                let mut msg = RuleMessage::default();
                msg.header.family = match family {
                    Family::V4 => AddressFamily::Inet,
                    Family::V6 => AddressFamily::Inet6,
                };
                msg.header.table = table_byte(*table);
                msg.header.action = RuleAction::ToTable;
                msg.attributes.push(RuleAttribute::Iifname(dev.clone()));
                msg.attributes.push(RuleAttribute::Table(*table));
                msg.attributes.push(RuleAttribute::Priority(*priority));
                msg.attributes
                    .push(RuleAttribute::Protocol(RouteProtocol::from(PROTO_TUNWIRE)));
                self.request(
                    RouteNetlinkMessage::NewRule(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                    &what,
                )
            }
            Step::AddPeerRoute6 { dev, peer, src } => {
                let mut msg = RouteMessage::default();
                msg.header.address_family = AddressFamily::Inet6;
                msg.header.destination_prefix_length = 128;
                msg.header.table = RouteHeader::RT_TABLE_MAIN;
                msg.header.protocol = RouteProtocol::from(PROTO_TUNWIRE);
                msg.header.scope = RouteScope::Universe;
                msg.header.kind = RouteType::Unicast;
                msg.attributes
                    .push(RouteAttribute::Destination(RouteAddress::Inet6(*peer)));
                msg.attributes.push(RouteAttribute::Oif(ifindex(dev)?));
                msg.attributes
                    .push(RouteAttribute::PrefSource(RouteAddress::Inet6(*src)));
                msg.attributes
                    .push(RouteAttribute::Priority(PEER_ROUTE_METRIC));
                self.request(
                    RouteNetlinkMessage::NewRoute(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                    &what,
                )
            }
        }
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

    /// Execute a step again after the kernel undid part of the setup (a link went down and up):
    /// what still exists is fine, only what is missing is added.
    pub fn reapply(&mut self, step: &Step) -> Result<()> {
        let result = match step {
            Step::MoveLocalRoute { dev, addr, table } => {
                let what = step.to_string().replace('\n', "; ");
                let index = ifindex(dev)?;
                // Already gone from table local is as good as deleted.
                match self.delete_local_route(*addr, index, &what) {
                    Err(Error::Netlink {
                        errno: Errno::ESRCH,
                        ..
                    })
                    | Ok(()) => self.add_our_local_route(*addr, index, *table, &what),
                    Err(e) => Err(e),
                }
            }
            _ => self.apply(step),
        };
        match result {
            Err(Error::Netlink {
                errno: Errno::EEXIST,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    fn delete_local_route(&mut self, addr: IpAddr, index: u32, what: &str) -> Result<()> {
        let mut del = local_route(addr, index, RT_TABLE_LOCAL);
        // Match any scope and protocol, as `ip route del` does.
        del.header.scope = RouteScope::NoWhere;
        // The kernel adds an IPv6 address's local route from a work queue, a moment after it
        // acknowledged the address: wait for it, within a bound.
        let mut tries = 0;
        loop {
            match self.request(RouteNetlinkMessage::DelRoute(del.clone()), 0, what) {
                Err(Error::Netlink {
                    errno: Errno::ESRCH,
                    ..
                }) if addr.is_ipv6() && tries < LOCAL_ROUTE_TRIES => {
                    tries += 1;
                    std::thread::sleep(LOCAL_ROUTE_WAIT);
                }
                other => return other,
            }
        }
    }

    fn add_our_local_route(
        &mut self,
        addr: IpAddr,
        index: u32,
        table: u32,
        what: &str,
    ) -> Result<()> {
        let mut add = local_route(addr, index, table);
        add.header.protocol = RouteProtocol::from(PROTO_TUNWIRE);
        self.request(
            RouteNetlinkMessage::NewRoute(add),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
    }

    /// Delete every rule, of either family, that carries our protocol tag and names one of
    /// `devs` as its input interface. Someone else's rule (another tag, or other names) stays.
    /// Returns how many were removed.
    pub fn remove_our_rules(&mut self, devs: &[&str]) -> Result<usize> {
        // The kernel ignores dump filters without strict checking: dump all, filter here.
        let rules = self.dump(
            RouteNetlinkMessage::GetRule(RuleMessage::default()),
            "list rules",
        )?;
        let mut removed = 0;
        for msg in rules {
            let RouteNetlinkMessage::NewRule(rule) = msg else {
                continue;
            };
            if !is_ours(&rule, devs) {
                continue;
            }
            let what = format!("delete leftover rule {}", describe_rule(&rule));
            match self.request(RouteNetlinkMessage::DelRule(rule), 0, &what) {
                Ok(()) => removed += 1,
                // Gone already (a concurrent teardown): that is what we wanted.
                Err(Error::Netlink {
                    errno: Errno::ENOENT,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    // ---- private helpers: send, ack, dump ----

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
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16, what: &str) -> Result<()> {
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

    fn dump(&mut self, msg: RouteNetlinkMessage, what: &str) -> Result<Vec<RouteNetlinkMessage>> {
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

fn is_ours(rule: &RuleMessage, devs: &[&str]) -> bool {
    let tagged = rule.attributes.iter().any(
        |a| matches!(a, RuleAttribute::Protocol(p) if *p == RouteProtocol::from(PROTO_TUNWIRE)),
    );
    let named = rule
        .attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Iifname(n) if devs.contains(&n.as_str())));
    tagged && named
}

fn describe_rule(rule: &RuleMessage) -> String {
    let mut s = String::new();
    for a in &rule.attributes {
        match a {
            RuleAttribute::Iifname(n) => s.push_str(&format!("iif {n} ")),
            RuleAttribute::Table(t) => s.push_str(&format!("lookup {t} ")),
            RuleAttribute::Priority(p) => s.push_str(&format!("pref {p} ")),
            _ => {}
        }
    }
    s.push_str(&format!("proto {PROTO_TUNWIRE}"));
    s
}

fn local_route(addr: IpAddr, index: u32, table: u32) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family_of(&addr);
    msg.header.destination_prefix_length = host_prefix(&addr);
    msg.header.table = table_byte(table);
    msg.header.scope = RouteScope::Host;
    msg.header.kind = RouteType::Local;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(addr)));
    msg.attributes.push(RouteAttribute::Oif(index));
    msg.attributes.push(RouteAttribute::Table(table));
    msg
}

/// Tables above 255 only fit the attribute; the header then says RT_TABLE_UNSPEC.
fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn family_of(addr: &IpAddr) -> AddressFamily {
    if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn host_prefix(addr: &IpAddr) -> u8 {
    if addr.is_ipv6() {
        128
    } else {
        32
    }
}

pub fn ifindex(dev: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(dev).map_err(|e| Error::os(format!("find interface {dev}"), e))
}

fn io_error(what: &str, e: std::io::Error) -> Error {
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

    #[test]
    fn only_tagged_rules_on_our_names_are_ours() {
        let mut rule = RuleMessage::default();
        rule.attributes.push(RuleAttribute::Iifname("tun0".into()));
        assert!(
            !is_ours(&rule, &["tun0", "tun1"]),
            "untagged rule is foreign"
        );
        rule.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::from(PROTO_TUNWIRE)));
        assert!(is_ours(&rule, &["tun0", "tun1"]));
        assert!(!is_ours(&rule, &["tun7"]), "other names are foreign");
    }

    #[test]
    fn big_tables_go_in_the_attribute() {
        assert_eq!(table_byte(13), 13);
        assert_eq!(table_byte(1000), 0);
    }
}
