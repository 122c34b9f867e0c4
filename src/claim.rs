// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a start claims (two interface names, their addresses, a table, a rule priority, an
//! MTU), decided before any kernel change: against the administrator's policy for non-root
//! callers, and against the namespace's state for everyone: an address that is already some
//! interface's or lies inside a route (the new peer route would divert that traffic), a table
//! with routes that are not ours, and addresses no wire may have. Without sides, the first free
//! pairs of the policy's pools. Every refusal is exit 77 and names what refused. Reads state;
//! changes nothing.

use std::net::IpAddr;

use crate::config::{self, side, Config, Side};
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::setup::plan::PROTO_TUNWIRE;
use crate::setup::state::State;

/// How many free pairs an automatic start lines up, for when another start takes one first.
const CANDIDATES: usize = 16;

/// Who claims: root (bound by the conflict checks only) or a member (and by the policy).
#[derive(Debug, Clone, Copy)]
pub struct Claimant {
    pub root: bool,
    pub uid: u32,
}

fn refused(msg: String) -> Error {
    Error::NotPermitted(msg)
}

/// The configurations to try, in order: the given sides, or free pairs from the pools. Each
/// has the policy's priority for a member.
pub fn claim(cfg: &Config, who: Claimant, policy: &Policy, st: &State) -> Result<Vec<Config>> {
    let mut cfg = cfg.clone();
    if !who.root {
        if cfg.force {
            return Err(refused(
                "--force needs root: only root may override the conflict checks".into(),
            ));
        }
        let deny = |r: crate::policy::Refusal| refused(r.message);
        policy.check_table(cfg.table).map_err(deny)?;
        policy.check_mtu(cfg.mtu).map_err(deny)?;
        if cfg.priority_given {
            policy.check_priority(cfg.priority).map_err(deny)?;
        }
        cfg.priority = policy.priority();
        policy
            .check_wire_count(wires_of(st, who.uid))
            .map_err(deny)?;
    }
    foreign_table(&cfg, st, who.root)?;
    if cfg.sides_given {
        if !who.root {
            for s in &cfg.sides {
                policy.check_name(&s.name).map_err(|r| refused(r.message))?;
                for a in s.addrs() {
                    policy.check_address(a).map_err(|r| refused(r.message))?;
                }
            }
        }
        conflicts(&cfg, st, who.root)?;
        return Ok(vec![cfg]);
    }
    let mut out = Vec::new();
    for pair in policy.auto_pairs() {
        if pair.names.iter().any(|n| st.link_named(n).is_some()) {
            continue;
        }
        let mut c = cfg.clone();
        c.sides = pair.names.clone().map(|name| Side {
            name,
            v4: None,
            v6: None,
        });
        for (s, a) in c.sides.iter_mut().zip(pair.addrs) {
            match a {
                IpAddr::V4(v4) => s.v4 = Some(v4),
                IpAddr::V6(v6) => s.v6 = Some(v6),
            }
        }
        c.settle_offload();
        if c.has_v6() && c.mtu < 1280 {
            return Err(Error::Usage(format!(
                "--mtu {} is below 1280, and the pool gives IPv6 addresses",
                c.mtu
            )));
        }
        // `--impair 'tun2: ...'` asks for a pair with tun2.
        if conflict(&c, st).is_none() && config::foreign_impair_side(&c.impair, &c.sides).is_none()
        {
            out.push(c);
            if out.len() == CANDIDATES {
                break;
            }
        }
    }
    if out.is_empty() {
        if let Some(e) = config::foreign_impair_side(&cfg.impair, &cfg.sides) {
            return Err(Error::Usage(format!(
                "{e}, and no free pair of the pools has it; name the sides (tunwire A B)"
            )));
        }
        return Err(refused(format!(
            "no free pair of names and addresses is left in the pools ({})",
            policy
                .describe()
                .lines()
                .filter(|l| l.starts_with("pool") || l.starts_with("names"))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(out)
}

/// Running wires (distinct supervisors) whose TUNs belong to `uid`.
pub fn wires_of(st: &State, uid: u32) -> u32 {
    let mut pids: Vec<i32> = st
        .running()
        .filter(|l| l.owner == Some(uid))
        .filter_map(|l| l.wire_owner().map(|(_, pid)| pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len() as u32
}

/// A table with routes tunwire did not put there belongs to someone else.
fn foreign_table(cfg: &Config, st: &State, root: bool) -> Result<()> {
    let Some(route) = st
        .routes
        .iter()
        .find(|r| r.table == cfg.table && r.protocol != PROTO_TUNWIRE)
    else {
        return Ok(());
    };
    let why = format!(
        "table {} holds routes tunwire did not put there (e.g. {}{}); pick another --table",
        cfg.table,
        route.dst,
        dev_of(st, route.oif)
    );
    overridable(cfg, why, root)
}

/// Refuse, unless root forced it: then log it and go on.
fn overridable(cfg: &Config, why: String, root: bool) -> Result<()> {
    if cfg.force {
        log::warn!("--force: {why}");
        return Ok(());
    }
    if !root {
        return Err(refused(why));
    }
    Err(refused(format!(
        "{why}\n  hint: root may override this with --force"
    )))
}

fn dev_of(st: &State, oif: Option<u32>) -> String {
    oif.and_then(|i| st.link(i))
        .map_or(String::new(), |l| format!(" dev {}", l.name))
}

/// The conflicts of the sides of `cfg` with the namespace, as a refusal.
fn conflicts(cfg: &Config, st: &State, root: bool) -> Result<()> {
    for s in &cfg.sides {
        for a in s.addrs() {
            if let Some(class) = side::special_class(a) {
                return Err(refused(format!(
                    "{a} (side {}) is a {class} address, which no wire may claim",
                    s.name
                )));
            }
        }
    }
    match conflict(cfg, st) {
        Some(why) => overridable(cfg, why, root),
        None => Ok(()),
    }
}

/// The first conflict of `cfg`'s addresses with the namespace. Interfaces that carry our own
/// names are left out: creating our TUNs fails on them anyway, with a clearer error.
fn conflict(cfg: &Config, st: &State) -> Option<String> {
    let ours = |index: Option<u32>| {
        index
            .and_then(|i| st.link(i))
            .is_some_and(|l| cfg.sides.iter().any(|s| s.name == l.name))
    };
    for s in &cfg.sides {
        for a in s.addrs() {
            if side::special_class(a).is_some() {
                return Some(format!("{a} is not a unicast address"));
            }
            if let Some(held) = st
                .addrs
                .iter()
                .find(|x| x.addr == a && !ours(Some(x.index)))
            {
                let dev = st.link(held.index).map_or("?", |l| l.name.as_str());
                return Some(format!("{a} is already assigned to {dev}"));
            }
            if let Some(r) = st
                .routes
                .iter()
                .find(|r| r.dst.len > 0 && r.dst.contains(a) && !ours(r.oif))
            {
                return Some(format!(
                    "{a} lies inside the route {}{} (table {}); a wire there would divert \
                     that traffic into itself",
                    r.dst,
                    dev_of(st, r.oif),
                    table_name(r.table)
                ));
            }
        }
    }
    None
}

fn table_name(t: u32) -> String {
    match t {
        254 => "main".into(),
        255 => "local".into(),
        253 => "default".into(),
        n => n.to_string(),
    }
}

/// After setup: whether another start claimed one of our addresses at the same moment. The
/// interface created first (lower index) keeps it. Also recounts a member's wires.
pub fn recheck(cfg: &Config, indices: [u32; 2], who: Claimant, policy: &Policy) -> Result<()> {
    let st = State::read()?;
    let first = indices[0].min(indices[1]);
    // Root forced the claim of an address that is elsewhere too: that is not a race.
    for s in cfg.sides.iter().filter(|_| !cfg.force) {
        for a in s.addrs() {
            if let Some(other) = st
                .addrs
                .iter()
                .find(|x| x.addr == a && !indices.contains(&x.index) && x.index < first)
            {
                let dev = st.link(other.index).map_or("?", |l| l.name.as_str());
                return Err(refused(format!(
                    "{a} was claimed by {dev} at the same moment; it keeps it"
                )));
            }
        }
    }
    if !who.root {
        let running = wires_of(&st, who.uid);
        if running > policy.max_wires() {
            return policy
                .check_wire_count(running - 1)
                .map_err(|r| refused(r.message));
        }
    }
    Ok(())
}
