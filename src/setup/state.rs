// SPDX-License-Identifier: MIT OR Apache-2.0
//! The namespace as the kernel sees it, read over rtnetlink for decisions made before setup
//! (conflicts, running wires, leftovers) and for `tunwire list`: links with their alias, TUN
//! owner and counters; addresses; routes of every table; rules. Ownership of a wire is recorded
//! in the kernel, never in files: the link alias `tunwire: USER, pid PID` (PID is the
//! supervisor's) and the TUN owner. Also the removal of leftovers. Must not change anything else.

use std::net::IpAddr;

use netlink_packet_core::Nla;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::rule::{RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;

use super::netlink::Netlink;
use super::plan::PROTO_TUNWIRE;
use crate::error::{Error, Result};
use crate::prefix::Prefix;

/// IFLA_TUN_OWNER and IFLA_TUN_GROUP inside the TUN's link info (linux/if_link.h; not in libc).
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const ALIAS_PREFIX: &str = "tunwire: ";

/// One network interface.
#[derive(Debug, Clone, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    /// A TUN or TAP device (link kind "tun").
    pub is_tun: bool,
    /// An Ethernet device (a TAP among tun devices).
    pub ethernet: bool,
    /// TUNSETOWNER / TUNSETGROUP, when set.
    pub owner: Option<u32>,
    pub group: Option<u32>,
    /// (rx packets, tx packets, rx bytes, tx bytes) as the kernel counts them.
    pub stats: (u64, u64, u64, u64),
}

impl Link {
    /// (user, supervisor pid) of a tunwire wire, from the alias.
    pub fn wire_owner(&self) -> Option<(String, i32)> {
        parse_alias(self.alias.as_deref()?)
    }
}

/// One address on an interface.
#[derive(Debug, Clone)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
}

/// One route of any table.
#[derive(Debug, Clone)]
pub struct Route {
    pub table: u32,
    pub dst: Prefix,
    pub kind: RouteType,
    pub protocol: u8,
    pub oif: Option<u32>,
}

/// One policy rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub iif: Option<String>,
    pub table: u32,
    pub protocol: u8,
    /// The rule names an interface that does not exist (`[detached]` in `ip rule`).
    pub detached: bool,
    raw: RuleMessage,
}

impl Rule {
    pub fn is_ours(&self) -> bool {
        self.protocol == PROTO_TUNWIRE
    }
}

/// The alias that marks a wire's links as tunwire's.
pub fn alias(user: &str, pid: u32) -> String {
    format!("{ALIAS_PREFIX}{user}, pid {pid}")
}

/// (user, pid) from an alias written by `alias`.
pub fn parse_alias(alias: &str) -> Option<(String, i32)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let (user, pid) = rest.rsplit_once(", pid ")?;
    Some((user.to_string(), pid.parse().ok()?))
}

/// Whether `pid` may be the supervisor of a running wire owned by `uid`: it exists, is not a
/// zombie, and runs as that user (or as root, before its privilege drop). Conservative: a
/// process we may not see in /proc (hidepid, ProtectProc) counts as alive, and so does an
/// unrelated process of that user that got the pid again, so a member can never make another
/// user's running wire look stale. The name is not checked: the binary may have any name.
pub fn supervisor_alive(pid: i32, uid: Option<u32>) -> bool {
    let target = nix::unistd::Pid::from_raw(pid);
    if pid <= 0 || nix::sys::signal::kill(target, None) == Err(Errno::ESRCH) {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
    };
    let real_uid = field("Uid:").split_whitespace().next();
    !field("State:").starts_with('Z')
        && uid.is_none_or(|u| real_uid == Some(&u.to_string()) || real_uid == Some("0"))
}

/// The child pids of `pid`, from every thread's `children` file.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                kids.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    kids
}

/// Everything `read` gathers.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
}

impl State {
    /// Read the namespace. Rules first: a wire sets its links' alias before it adds its
    /// rules, so every rule read here has its wire's links in the later link dump, and a wire
    /// that appears meanwhile can never look like a killed one's leftovers.
    pub fn read() -> Result<State> {
        let mut nl = Netlink::open()?;
        let rules = nl.rules()?;
        Ok(State {
            links: nl.links()?,
            addrs: nl.addresses()?,
            routes: nl.routes()?,
            rules,
        })
    }

    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    pub fn link_named(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The links of running wires: a tunwire alias whose supervisor lives.
    pub fn running(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|l| {
            l.wire_owner()
                .is_some_and(|(_, pid)| supervisor_alive(pid, l.owner))
        })
    }

    /// Links with a tunwire alias whose supervisor is gone: a wire that was killed while
    /// something still held its devices.
    pub fn stale(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|l| {
            l.wire_owner()
                .is_some_and(|(_, pid)| !supervisor_alive(pid, l.owner))
        })
    }

    /// Our rules that no running wire needs: detached, or on an interface that is not a running
    /// wire's (a killed wire's rule re-attaches to any later device of that name).
    pub fn leftover_rules(&self) -> Vec<&Rule> {
        let running: Vec<&str> = self.running().map(|l| l.name.as_str()).collect();
        self.rules
            .iter()
            .filter(|r| r.is_ours())
            .filter(|r| r.detached || r.iif.as_deref().is_none_or(|i| !running.contains(&i)))
            .collect()
    }
}

impl Netlink {
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "list links",
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(&l)),
                _ => None,
            })
            .collect())
    }

    pub fn addresses(&mut self) -> Result<Vec<Addr>> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            "list addresses",
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            // IFA_LOCAL is the address of a point-to-point interface; IFA_ADDRESS its peer.
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(addr) = local.or(address) {
                out.push(Addr {
                    index: a.header.index,
                    addr,
                });
            }
        }
        Ok(out)
    }

    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for family in [
            netlink_packet_route::AddressFamily::Inet,
            netlink_packet_route::AddressFamily::Inet6,
        ] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            for m in self.dump(RouteNetlinkMessage::GetRoute(req), "list routes")? {
                if let RouteNetlinkMessage::NewRoute(r) = m {
                    if let Some(route) = route_of(&r) {
                        out.push(route);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every rule of both families. The kernel ignores dump filters without strict checking:
    /// dump all, filter in user space.
    pub fn rules(&mut self) -> Result<Vec<Rule>> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetRule(RuleMessage::default()),
            "list rules",
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => Some(rule_of(r)),
                _ => None,
            })
            .collect())
    }

    /// Delete one rule; gone already (a concurrent teardown) is what we wanted.
    pub fn delete_rule(&mut self, rule: &Rule) -> Result<bool> {
        let what = format!("delete leftover rule {}", describe(rule));
        match self.request(RouteNetlinkMessage::DelRule(rule.raw.clone()), 0, &what) {
            Ok(()) => Ok(true),
            Err(Error::Netlink {
                errno: Errno::ENOENT,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete a link by index (a stale wire's TUN, which also takes its addresses and routes).
    pub fn delete_link(&mut self, link: &Link) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        let what = format!("delete link {} (index {})", link.name, link.index);
        match self.request(RouteNetlinkMessage::DelLink(msg), 0, &what) {
            Ok(()) => Ok(true),
            Err(Error::Netlink {
                errno: Errno::ENODEV,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn link_of(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        ethernet: l.header.link_layer_type == netlink_packet_route::link::LinkLayerType::Ether,
        ..Default::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::IfAlias(s) => link.alias = Some(s.clone()),
            LinkAttribute::Stats64(s) => {
                link.stats = (s.rx_packets, s.tx_packets, s.rx_bytes, s.tx_bytes)
            }
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Tun) => link.is_tun = true,
                        LinkInfo::Data(InfoData::Tun(attrs)) => {
                            for nla in attrs {
                                let mut v = vec![0u8; nla.value_len()];
                                nla.emit_value(&mut v);
                                let value =
                                    <[u8; 4]>::try_from(&v[..]).ok().map(u32::from_ne_bytes);
                                match nla.kind() {
                                    IFLA_TUN_OWNER => link.owner = value,
                                    IFLA_TUN_GROUP => link.group = value,
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // An unset owner or group is reported as -1.
    link.owner = link.owner.filter(|&u| u != u32::MAX);
    link.group = link.group.filter(|&g| g != u32::MAX);
    link
}

fn route_of(r: &RouteMessage) -> Option<Route> {
    let mut table = u32::from(r.header.table);
    let mut dst = None;
    let mut oif = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(IpAddr::V4(*ip)),
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => dst = Some(IpAddr::V6(*ip)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let dst = dst.unwrap_or(match r.header.address_family {
        netlink_packet_route::AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    Some(Route {
        table,
        dst: Prefix {
            addr: dst,
            len: r.header.destination_prefix_length,
        },
        kind: r.header.kind,
        protocol: u8::from(r.header.protocol),
        oif,
    })
}

fn rule_of(r: RuleMessage) -> Rule {
    let mut rule = Rule {
        iif: None,
        table: u32::from(r.header.table),
        protocol: 0,
        detached: r.header.flags.contains(RuleFlags::IifDetached),
        raw: RuleMessage::default(),
    };
    for a in &r.attributes {
        match a {
            RuleAttribute::Iifname(n) => rule.iif = Some(n.clone()),
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Protocol(p) => rule.protocol = u8::from(*p),
            _ => {}
        }
    }
    rule.raw = r;
    rule
}

fn describe(rule: &Rule) -> String {
    format!(
        "iif {} lookup {} proto {}",
        rule.iif.as_deref().unwrap_or("any"),
        rule.table,
        rule.protocol
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_round_trip() {
        let a = alias("alice", 1234);
        assert_eq!(a, "tunwire: alice, pid 1234");
        assert_eq!(parse_alias(&a), Some(("alice".into(), 1234)));
        assert_eq!(
            parse_alias("tunwire: a, b, pid 7"),
            Some(("a, b".into(), 7))
        );
        assert_eq!(parse_alias("my uplink"), None);
        assert_eq!(parse_alias("tunwire: alice"), None);
    }

    #[test]
    fn liveness() {
        let me = std::process::id() as i32;
        let uid = nix::unistd::getuid().as_raw();
        assert!(supervisor_alive(me, Some(uid)));
        assert!(!supervisor_alive(i32::MAX, None));
        assert!(!supervisor_alive(0, None));
        if uid != 0 {
            assert!(!supervisor_alive(me, Some(uid + 1)));
        }
    }
}
