// SPDX-License-Identifier: MIT OR Apache-2.0
//! `tunwire list` (alias `status`): every running wire of the namespace, from what the kernel
//! records (the links' alias and TUN owner, their addresses and counters, our rules) and from
//! /proc (the relay's pid, the start time). Needs no capability; changes nothing.

use std::fmt::Write as _;

use crate::clock;
use crate::error::{Result, EXIT_OK};
use crate::setup::state::{Link, State};

/// One running wire.
#[derive(Debug, Clone)]
pub struct WireInfo {
    pub sides: [(String, Vec<String>); 2],
    /// TAP devices: frames are Ethernet.
    pub ethernet: bool,
    pub table: Option<u32>,
    pub owner: String,
    pub uid: Option<u32>,
    pub supervisor: i32,
    pub relay: Option<u32>,
    pub started: Option<u64>,
    /// Packets and bytes that entered the wire on each side (the kernel's tx of that TUN) and
    /// that it delivered on the other (the rx of the other TUN).
    pub counters: [(u64, u64, u64, u64); 2],
}

/// The running wires, oldest first (by the first interface's index).
pub fn wires(st: &State) -> Vec<WireInfo> {
    let mut groups: Vec<(i32, Vec<&Link>)> = Vec::new();
    for link in st.running() {
        let Some((_, pid)) = link.wire_owner() else {
            continue;
        };
        match groups.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, links)) => links.push(link),
            None => groups.push((pid, vec![link])),
        }
    }
    let mut out: Vec<(u32, WireInfo)> = groups
        .into_iter()
        .filter(|(_, links)| links.len() == 2)
        .map(|(pid, mut links)| {
            links.sort_by_key(|l| l.index);
            let (a, b) = (links[0], links[1]);
            let side = |l: &Link| {
                let addrs = st
                    .addrs
                    .iter()
                    .filter(|x| x.index == l.index)
                    .filter(|x| crate::config::side::special_class(x.addr).is_none())
                    .map(|x| x.addr.to_string())
                    .collect();
                (l.name.clone(), addrs)
            };
            let table = st
                .rules
                .iter()
                .find(|r| r.is_ours() && r.iif.as_deref() == Some(a.name.as_str()))
                .map(|r| r.table);
            let info = WireInfo {
                sides: [side(a), side(b)],
                ethernet: a.ethernet,
                table,
                owner: a.wire_owner().map(|(u, _)| u).unwrap_or_default(),
                uid: a.owner,
                supervisor: pid,
                relay: relay_of(pid),
                started: started(pid),
                counters: [
                    (a.stats.1, b.stats.0, a.stats.3, b.stats.2),
                    (b.stats.1, a.stats.0, b.stats.3, a.stats.2),
                ],
            };
            (a.index, info)
        })
        .collect();
    // Interface indices grow as devices are made: the lowest is the oldest wire (names would
    // sort tun10 before tun2).
    out.sort_by_key(|(index, _)| *index);
    out.into_iter().map(|(_, w)| w).collect()
}

/// `tunwire list [--json]`.
pub fn list(json: bool) -> Result<u8> {
    let wires = wires(&State::read()?);
    if json {
        crate::cli::out(&format!("{}\n", to_json(&wires)));
    } else {
        crate::cli::out(&to_table(&wires));
    }
    Ok(EXIT_OK)
}

fn side_text((name, addrs): &(String, Vec<String>)) -> String {
    format!("{name} {}", addrs.join(","))
}

pub fn to_table(wires: &[WireInfo]) -> String {
    if wires.is_empty() {
        return "no wire is running\n".into();
    }
    let rows: Vec<[String; 7]> = wires
        .iter()
        .map(|w| {
            [
                format!("{} <-> {}", side_text(&w.sides[0]), side_text(&w.sides[1])),
                w.table.map_or("-".into(), |t| t.to_string()),
                w.owner.clone(),
                w.relay.map_or("-".into(), |p| p.to_string()),
                w.started.map_or("-".into(), clock::rfc3339),
                format!("{}/{}", w.counters[0].1, w.counters[0].0),
                format!("{}/{}", w.counters[1].1, w.counters[1].0),
            ]
        })
        .collect();
    let head = ["WIRE", "TABLE", "OWNER", "RELAY", "STARTED", "A->B", "B->A"];
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&width) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&head);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out.push_str("(A->B: packets delivered/sent across the wire, as the kernel counts them)\n");
    out
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// One JSON array, one object per wire.
pub fn to_json(wires: &[WireInfo]) -> String {
    let items: Vec<String> = wires
        .iter()
        .map(|w| {
            let side = |(name, addrs): &(String, Vec<String>)| {
                let a: Vec<String> = addrs.iter().map(|x| js(x)).collect();
                format!("{{\"name\":{},\"addresses\":[{}]}}", js(name), a.join(","))
            };
            let dir = |(sent, delivered, sent_b, delivered_b): (u64, u64, u64, u64)| {
                format!(
                    "{{\"sent_packets\":{sent},\"delivered_packets\":{delivered},\
                     \"sent_bytes\":{sent_b},\"delivered_bytes\":{delivered_b}}}"
                )
            };
            format!(
                "{{\"a\":{},\"b\":{},\"table\":{},\"owner\":{},\"uid\":{},\"pid\":{},\
                 \"supervisor_pid\":{},\"started\":{},\"a_to_b\":{},\"b_to_a\":{}}}",
                side(&w.sides[0]),
                side(&w.sides[1]),
                opt(w.table),
                js(&w.owner),
                opt(w.uid),
                opt(w.relay),
                w.supervisor,
                w.started.map_or("null".into(), |t| js(&clock::rfc3339(t))),
                dir(w.counters[0]),
                dir(w.counters[1]),
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// The relay (or the program): the supervisor's first child.
fn relay_of(supervisor: i32) -> Option<u32> {
    crate::setup::state::children_of(u32::try_from(supervisor).ok()?)
        .into_iter()
        .min()
}

/// When `pid` started, in seconds since the UNIX epoch (from /proc/PID/stat and btime).
fn started(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the ')' that closes comm (fields 3..).
    let ticks: u64 = stat
        .rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / u64::try_from(hz).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> WireInfo {
        WireInfo {
            sides: [
                ("tun0".into(), vec!["192.168.13.1".into()]),
                ("tun1".into(), vec!["192.168.13.2".into()]),
            ],
            ethernet: false,
            table: Some(13),
            owner: "al\"ice".into(),
            uid: Some(1000),
            supervisor: 7,
            relay: Some(8),
            started: Some(1_795_756_500),
            counters: [(3, 3, 252, 252), (2, 2, 168, 168)],
        }
    }

    #[test]
    fn json_is_one_array_of_objects() {
        let j = to_json(&[wire()]);
        assert!(j.starts_with("[{\"a\":{\"name\":\"tun0\",\"addresses\":[\"192.168.13.1\"]}"));
        assert!(j.contains("\"owner\":\"al\\\"ice\""));
        assert!(j.contains("\"started\":\"2026-11-27T05:15:00Z\""));
        assert!(j.contains("\"pid\":8,\"supervisor_pid\":7"));
        assert_eq!(to_json(&[]), "[]");
    }

    #[test]
    fn table_has_a_row_per_wire() {
        let t = to_table(&[wire()]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("WIRE"));
        assert!(lines[1].starts_with("tun0 192.168.13.1 <-> tun1 192.168.13.2"));
        assert!(lines[1].contains("al\"ice") && lines[1].contains("3/3"));
        assert_eq!(to_table(&[]), "no wire is running\n");
    }

    #[test]
    fn own_start_time_is_recent() {
        let t = started(std::process::id() as i32).unwrap();
        assert!(t.abs_diff(clock::unix_now()) < 3600, "{t}");
    }
}
