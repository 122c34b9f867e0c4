// SPDX-License-Identifier: MIT OR Apache-2.0
//! One end of the wire, `NAME=ADDR[,ADDR]`: parsing and the checks that need no system state
//! (interface-name rules, address classes, the pair's consistency). Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IFNAMSIZ - 1.
const MAX_IFNAME: usize = 15;

/// One end of the wire: a TUN device and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub name: String,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Side {
    /// "192.168.13.1" or "192.168.13.1,fd13::1", as given on the command line.
    pub fn addresses(&self) -> String {
        self.addrs()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The side's addresses, IPv4 first.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> {
        [self.v4.map(IpAddr::from), self.v6.map(IpAddr::from)]
            .into_iter()
            .flatten()
    }
}

const FORM: &str = "NAME=ADDR[,ADDR], e.g. tun0=192.168.13.1";

/// The error for a side given without its name (`192.168.13.1`).
pub fn missing_name(s: &str) -> String {
    format!("side '{s}' has no interface name: write it as {FORM}")
}

/// `NAME=ADDR[,ADDR]`.
pub fn parse_side(s: &str) -> Result<Side, String> {
    let (name, addrs) = s
        .split_once('=')
        .ok_or_else(|| format!("side '{s}' must look like {FORM}"))?;
    check_ifname(name)?;
    let mut side = Side {
        name: name.to_string(),
        v4: None,
        v6: None,
    };
    if addrs.is_empty() {
        return Err(format!("side '{s}' has no address"));
    }
    for a in addrs.split(',') {
        if let Some((addr, len)) = a.split_once('/') {
            return Err(format!(
                "'{a}' in side '{s}' is a prefix; the pair is point-to-point, so give the \
                 address alone, e.g. {name}={addr} (not /{len})"
            ));
        }
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("'{a}' in side '{s}' is not an IPv4 or IPv6 address"))?;
        match ip {
            IpAddr::V4(v4) => {
                if side.v4.replace(v4).is_some() {
                    return Err(format!("side '{s}' has more than one IPv4 address"));
                }
            }
            IpAddr::V6(v6) => {
                if side.v6.replace(v6).is_some() {
                    return Err(format!("side '{s}' has more than one IPv6 address"));
                }
            }
        }
    }
    Ok(side)
}

/// The kind of address that can never be a side's: loopback, unspecified, multicast,
/// broadcast, link-local. A start refuses them (claim.rs) like any other conflict.
pub fn special_class(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("link-local"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Some("IPv4-mapped"),
        _ => None,
    }
}

pub fn check_pair(sides: &[Side; 2]) -> Result<(), String> {
    let [a, b] = sides;
    if a.name == b.name {
        return Err(format!(
            "both sides are named '{}'; the two TUNs need two names",
            a.name
        ));
    }
    if a.v4.is_some() != b.v4.is_some() || a.v6.is_some() != b.v6.is_some() {
        return Err(format!(
            "sides '{}={}' and '{}={}' must have the same address families",
            a.name,
            a.addresses(),
            b.name,
            b.addresses()
        ));
    }
    if (a.v4.is_some() && a.v4 == b.v4) || (a.v6.is_some() && a.v6 == b.v6) {
        return Err(format!(
            "sides '{}' and '{}' share an address; each side needs its own",
            a.name, b.name
        ));
    }
    Ok(())
}

/// The kernel's rules for interface names (dev_valid_name): 1-15 bytes, not . or .., no '/',
/// ':' or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name is empty".into());
    }
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "interface name '{name}' is longer than {MAX_IFNAME} bytes"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("'{name}' is not a valid interface name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for (a, class) in [
            ("127.0.0.2", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
        ] {
            assert_eq!(special_class(a.parse().unwrap()), Some(class), "{a}");
        }
        assert_eq!(special_class("192.168.13.1".parse().unwrap()), None);
        assert_eq!(special_class("fd13::1".parse().unwrap()), None);
    }

    #[test]
    fn forms() {
        assert!(parse_side("tun0=10.0.0.1/24")
            .unwrap_err()
            .contains("tun0=10.0.0.1"));
        assert!(missing_name("192.168.13.1").contains("NAME=ADDR"));
        let s = parse_side("a=10.0.0.1,fd00::1").unwrap();
        assert_eq!(s.addresses(), "10.0.0.1,fd00::1");
        assert_eq!(s.addrs().count(), 2);
    }
}
