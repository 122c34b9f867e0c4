// SPDX-License-Identifier: MIT OR Apache-2.0
//! The setup as an ordered list of steps, derived from a validated `Config`. `check` prints the
//! steps as the equivalent `ip` commands; `netlink::apply` executes the same list, so what
//! `check` shows is what `run` does. Pure: no system calls.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::config::{Config, Mode};

/// Our tag on every rule and route we add (FRA_PROTOCOL / rtm_protocol), so teardown can tell
/// ours from anyone else's. 199 is unassigned in /etc/iproute2/rt_protos.
pub const PROTO_TUNWIRE: u8 = 199;
/// Metric of the IPv6 peer routes: better than the kernel's 256 (see design.md, the IPv6 trap).
pub const PEER_ROUTE_METRIC: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Set the MTU, the alias that marks the wire as tunwire's and addrgenmode none (no
    /// link-local address: the wire carries only the users' packets), then bring the link up
    /// (before any IPv6 address, see design.md).
    LinkUp {
        dev: String,
        mtu: u32,
        alias: Option<String>,
        /// A TAP's fixed address (see `mac_of`).
        mac: Option<[u8; 6]>,
    },
    /// A point-to-point address; IPv6 ones get NODAD and NOPREFIXROUTE.
    AddAddress {
        dev: String,
        local: IpAddr,
        peer: IpAddr,
    },
    /// Delete the address's `local` route from table local and re-add it in our table, so the
    /// output path no longer short-cuts through lo.
    MoveLocalRoute {
        dev: String,
        addr: IpAddr,
        table: u32,
    },
    /// `ip rule add iif DEV lookup TABLE`: only the input path reaches the moved local routes.
    AddRule {
        family: Family,
        dev: String,
        table: u32,
        priority: u32,
    },
    /// IPv6 route to the peer with our source and a better metric than the kernel's.
    AddPeerRoute6 {
        dev: String,
        peer: Ipv6Addr,
        src: Ipv6Addr,
    },
}

impl Step {
    /// The TUN this step configures.
    pub fn dev(&self) -> &str {
        match self {
            Step::LinkUp { dev, .. }
            | Step::AddAddress { dev, .. }
            | Step::MoveLocalRoute { dev, .. }
            | Step::AddRule { dev, .. }
            | Step::AddPeerRoute6 { dev, .. } => dev,
        }
    }
}

/// The steps for `cfg`; `alias` (see state::alias) marks the links, None for `check`.
pub fn build(cfg: &Config, alias: Option<&str>) -> Vec<Step> {
    let mut steps = Vec::new();
    let [a, b] = &cfg.sides;
    let pairs = [(a, b), (b, a)];
    for (me, _) in pairs {
        steps.push(Step::LinkUp {
            dev: me.name.clone(),
            mtu: cfg.mtu,
            alias: alias.map(str::to_string),
            mac: (cfg.mode == Mode::Tap).then(|| mac_of(&me.name)),
        });
    }
    for (me, peer) in pairs {
        if let (Some(l), Some(p)) = (me.v4, peer.v4) {
            steps.push(Step::AddAddress {
                dev: me.name.clone(),
                local: l.into(),
                peer: p.into(),
            });
        }
        if let (Some(l), Some(p)) = (me.v6, peer.v6) {
            steps.push(Step::AddAddress {
                dev: me.name.clone(),
                local: l.into(),
                peer: p.into(),
            });
        }
    }
    for (me, _) in pairs {
        for addr in [me.v4.map(IpAddr::from), me.v6.map(IpAddr::from)]
            .into_iter()
            .flatten()
        {
            steps.push(Step::MoveLocalRoute {
                dev: me.name.clone(),
                addr,
                table: cfg.table,
            });
        }
    }
    for (me, _) in pairs {
        for (family, used) in [(Family::V4, cfg.has_v4()), (Family::V6, cfg.has_v6())] {
            if used {
                steps.push(Step::AddRule {
                    family,
                    dev: me.name.clone(),
                    table: cfg.table,
                    priority: cfg.priority,
                });
            }
        }
    }
    for (me, peer) in pairs {
        if let (Some(src), Some(p)) = (me.v6, peer.v6) {
            steps.push(Step::AddPeerRoute6 {
                dev: me.name.clone(),
                peer: p,
                src,
            });
        }
    }
    steps
}

/// A TAP's MAC address, the same for a name on every run, so captures and neighbour tables
/// repeat: locally administered, unicast (02:...), then 40 bits of the name's FNV-1a hash.
pub fn mac_of(name: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// `02:1a:2b:3c:4d:5e`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip(addr: &IpAddr) -> &'static str {
    if addr.is_ipv6() {
        "ip -6"
    } else {
        "ip"
    }
}

/// The equivalent `ip` command(s), one per line.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::LinkUp {
                dev,
                mtu,
                alias,
                mac,
            } => {
                write!(f, "ip link set dev {dev} mtu {mtu}")?;
                if let Some(mac) = mac {
                    write!(f, " address {}", mac_text(mac))?;
                }
                if let Some(alias) = alias {
                    write!(f, " alias '{}'", alias.replace('\'', ""))?;
                }
                write!(f, " addrgenmode none\nip link set dev {dev} up")
            }
            Step::AddAddress { dev, local, peer } => {
                write!(f, "{} addr add {local} peer {peer} dev {dev}", ip(local))?;
                if local.is_ipv6() {
                    write!(f, " nodad noprefixroute")?;
                }
                Ok(())
            }
            Step::MoveLocalRoute { dev, addr, table } => write!(
                f,
                "{ip} route del local {addr} dev {dev} table local\n\
                 {ip} route add local {addr} dev {dev} table {table} proto {PROTO_TUNWIRE}",
                ip = ip(addr)
            ),
            Step::AddRule {
                family,
                dev,
                table,
                priority,
            } => {
                let ip = if *family == Family::V6 { "ip -6" } else { "ip" };
                write!(
                    f,
                    "{ip} rule add iif {dev} lookup {table} pref {priority} proto {PROTO_TUNWIRE}"
                )
            }
            Step::AddPeerRoute6 { dev, peer, src } => write!(
                f,
                "ip -6 route add {peer} dev {dev} src {src} metric {PEER_ROUTE_METRIC} proto {PROTO_TUNWIRE}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn plan(args: &str) -> Vec<String> {
        let cfg =
            config::parse(args.split_whitespace().map(Into::into), &config::read_file).unwrap();
        build(&cfg, None).iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_plan_is_the_design_notes_recipe() {
        let p = plan("check");
        assert_eq!(
            p,
            vec![
                "ip link set dev tun0 mtu 1500 addrgenmode none\nip link set dev tun0 up",
                "ip link set dev tun1 mtu 1500 addrgenmode none\nip link set dev tun1 up",
                "ip addr add 192.168.13.1 peer 192.168.13.2 dev tun0",
                "ip addr add 192.168.13.2 peer 192.168.13.1 dev tun1",
                "ip route del local 192.168.13.1 dev tun0 table local\nip route add local 192.168.13.1 dev tun0 table 13 proto 199",
                "ip route del local 192.168.13.2 dev tun1 table local\nip route add local 192.168.13.2 dev tun1 table 13 proto 199",
                "ip rule add iif tun0 lookup 13 pref 100 proto 199",
                "ip rule add iif tun1 lookup 13 pref 100 proto 199",
            ]
        );
    }

    #[test]
    fn tap_links_get_a_fixed_mac() {
        let p = plan("check --mode tap").join("\n");
        let mac = mac_text(&mac_of("tun0"));
        assert!(p.contains(&format!(
            "ip link set dev tun0 mtu 1500 address {mac} addrgenmode none"
        )));
        assert!(mac.starts_with("02:"));
        assert_ne!(mac_of("tun0"), mac_of("tun1"));
        assert_eq!(mac_of("tun0"), mac_of("tun0"));
    }

    #[test]
    fn ipv6_gets_rules_flags_and_peer_routes() {
        let p = plan("check --table 42 a=10.1.0.1,fd13::1 b=10.1.0.2,fd13::2").join("\n");
        assert!(p.contains("ip -6 addr add fd13::1 peer fd13::2 dev a nodad noprefixroute"));
        assert!(p.contains("ip -6 rule add iif b lookup 42 pref 100 proto 199"));
        assert!(p.contains("ip -6 route add fd13::2 dev a src fd13::1 metric 1 proto 199"));
        assert!(p.contains("ip -6 route add fd13::1 dev b src fd13::2 metric 1 proto 199"));
        let links = p.find("ip link set dev b up").unwrap();
        assert!(
            links < p.find("ip -6 addr").unwrap(),
            "links come up before IPv6 addresses"
        );
    }
}
