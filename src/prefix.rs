// SPDX-License-Identifier: MIT OR Apache-2.0
//! Address prefixes (`192.168.13.0/24`, `fd13::/64`): parsing, containment and the usable
//! host range, for the policy's pools and the conflict checks against the kernel's routes.
//! Pure arithmetic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

pub fn bits(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

pub fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Prefix {
    /// The bits of an address that lie outside the prefix.
    pub fn host_mask(self) -> u128 {
        let free = u32::from(bits(self.addr) - self.len);
        u128::MAX.checked_shr(128 - free).unwrap_or(0)
    }

    /// The address `value` in this prefix's family.
    pub fn at(self, value: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    pub fn contains(self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && to_u128(addr) & !self.host_mask() == to_u128(self.addr)
    }

    /// The first and last address automatic allocation may use: all for IPv4 /31 and /32
    /// and IPv6 /127 and /128, otherwise all but the first and the last.
    pub fn usable(self) -> (u128, u128) {
        let (first, last) = (to_u128(self.addr), to_u128(self.addr) | self.host_mask());
        if self.len + 1 < bits(self.addr) {
            (first + 1, last - 1)
        } else {
            (first, last)
        }
    }

    /// `192.168.13.0/24`, `fd13::/64`, or a bare address meaning /32 or /128.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let bad = |why: String| Err(format!("'{}' {why}", text.escape_debug()));
        let (addr, len) = text.split_once('/').unwrap_or((text, ""));
        let Ok(addr) = addr.parse::<IpAddr>() else {
            return bad("is not an address or prefix (e.g. 192.168.13.0/24 or fd13::/64)".into());
        };
        let max = bits(addr);
        let digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
        let len = match len.parse::<u32>().ok().filter(|_| digits) {
            _ if !text.contains('/') => max,
            Some(n) if n <= u32::from(max) => n as u8,
            _ => return bad(format!("needs a prefix length from 0 to {max}")),
        };
        let prefix = Prefix { addr, len };
        let network = prefix.at(to_u128(addr) & !prefix.host_mask());
        if network != addr {
            return bad(format!("has host bits set (write {network}/{len})"));
        }
        Ok(prefix)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_and_parse() {
        let p = Prefix::parse("192.168.13.0/24").unwrap();
        assert!(p.contains("192.168.13.255".parse().unwrap()));
        assert!(!p.contains("192.168.14.1".parse().unwrap()));
        assert!(!p.contains("fd13::1".parse().unwrap()));
        assert_eq!(Prefix::parse("10.0.0.1").unwrap().len, 32);
        assert!(Prefix::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("host bits"));
        assert!(Prefix::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
