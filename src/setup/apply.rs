// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtnetlink verbs that execute a `plan::Step`: at setup (`apply`) and again after a link flap
//! undid part of it (`reapply`, which adds only what is missing). Must not remove anything but
//! the pair's own local routes from table local.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use nix::libc;

use super::netlink::{ifindex, Netlink};
use super::plan::{Family, Step, PEER_ROUTE_METRIC, PROTO_TUNWIRE};
use crate::error::{Error, Result};

const RT_TABLE_LOCAL: u32 = libc::RT_TABLE_LOCAL as u32;
/// How long setup waits for the kernel's IPv6 local route: 400 x 5 ms = 2 s at most.
const LOCAL_ROUTE_TRIES: u32 = 400;
const LOCAL_ROUTE_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

impl Netlink {
    /// Execute one step of the plan.
    pub fn apply(&mut self, step: &Step) -> Result<()> {
        let what = step.to_string().replace('\n', "; ");
        match step {
            Step::LinkUp {
                dev,
                mtu,
                alias,
                mac,
            } => {
                let index = ifindex(dev)?;
                // First the settings, then up: the kernel would make a link-local address (and
                // with it router solicitations and MLD reports into the wire) the moment the
                // link comes up, before it applies an address generation mode sent alongside.
                let mut msg = LinkMessage::default();
                msg.header.index = index;
                msg.attributes.push(LinkAttribute::Mtu(*mtu));
                if let Some(alias) = alias {
                    msg.attributes.push(LinkAttribute::IfAlias(alias.clone()));
                }
                if let Some(mac) = mac {
                    msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
                }
                self.request(RouteNetlinkMessage::SetLink(msg), 0, &what)?;
                self.no_link_local(index, &what)?;
                let mut up = LinkMessage::default();
                up.header.index = index;
                up.header.flags = LinkFlags::Up;
                up.header.change_mask = LinkFlags::Up;
                self.request(RouteNetlinkMessage::SetLink(up), 0, &what)
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

    /// addrgenmode none: the link gets no IPv6 link-local address. Without IPv6 in the kernel
    /// (or on this link) there is nothing to switch off.
    fn no_link_local(&mut self, index: u32, what: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        match self.request(RouteNetlinkMessage::SetLink(msg), 0, what) {
            Err(Error::Netlink {
                errno: Errno::EAFNOSUPPORT | Errno::EOPNOTSUPP,
                ..
            }) => Ok(()),
            other => other,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_tables_go_in_the_attribute() {
        assert_eq!(table_byte(13), 13);
        assert_eq!(table_byte(1000), 0);
    }
}
