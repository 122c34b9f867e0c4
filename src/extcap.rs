// SPDX-License-Identifier: MIT OR Apache-2.0
//! Wireshark's extcap interface: every running wire is a capture interface. Wireshark (and
//! tshark) call the binary with `--extcap-interfaces`, `--extcap-interface IF --extcap-dlts`,
//! `--extcap-interface IF --extcap-config`, and `--capture --extcap-interface IF --fifo PATH`;
//! they add arguments of their own (`--extcap-version=4.0`, `--debug`), which are accepted.
//! The capture itself is reader.rs's. Listing is one netlink read: Wireshark calls it at every
//! start, so it must be quick. Needs no capability.

use std::ffi::OsString;
use std::io::Write;

use crate::error::{Error, Result, EXIT_OK};
use crate::list::{wires, WireInfo};
use crate::reader::{self, Request};
use crate::setup::state::State;

/// The arguments that make an extcap call.
const TRIGGERS: [&str; 5] = [
    "--extcap-interfaces",
    "--extcap-interface",
    "--extcap-dlts",
    "--extcap-config",
    "--capture",
];

/// An extcap call, as Wireshark makes it.
#[derive(Debug, Default, PartialEq)]
pub struct Call {
    pub interfaces: bool,
    pub interface: Option<String>,
    pub dlts: bool,
    pub config: bool,
    pub capture: bool,
    pub fifo: Option<String>,
    pub filter: Option<String>,
    pub snaplen: Option<String>,
}

/// Whether these arguments are an extcap call.
pub fn is_call(args: &[OsString]) -> bool {
    // What follows `--` is a program's command line, never an extcap call.
    args.iter().take_while(|a| *a != "--").any(|a| {
        let a = a.to_string_lossy();
        TRIGGERS
            .iter()
            .any(|t| a == *t || a.starts_with(&format!("{t}=")))
    })
}

/// Parse an extcap call: `--name value` or `--name=value`; other `--extcap-*` and debug
/// options Wireshark passes are accepted and ignored.
pub fn parse(args: &[OsString]) -> std::result::Result<Call, String> {
    let mut call = Call::default();
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| -> std::result::Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{what} needs a value"))
        };
        match name.as_str() {
            "--extcap-interfaces" => call.interfaces = true,
            "--extcap-dlts" => call.dlts = true,
            "--extcap-config" => call.config = true,
            "--capture" => call.capture = true,
            "--extcap-interface" => call.interface = Some(value(&name)?),
            "--fifo" => call.fifo = Some(value(&name)?),
            "--extcap-capture-filter" => call.filter = Some(value(&name)?),
            "--snaplen" => call.snaplen = Some(value(&name)?),
            "--debug" => {}
            "--debug-file" | "--extcap-reload-option" => {
                value(&name)?;
            }
            // --extcap-version=4.0 and what later versions add: not ours to judge.
            n if n.starts_with("--extcap-") => {}
            other => return Err(format!("unknown extcap argument '{other}'")),
        }
    }
    Ok(call)
}

/// The interface value and display name of a wire.
fn interface(w: &WireInfo) -> (String, String) {
    (
        format!("tunwire-{}", w.sides[0].0),
        format!(
            "tunwire: {} <-> {} ({})",
            w.sides[0].0, w.sides[1].0, w.owner
        ),
    )
}

/// Why a capture filter is refused (Wireshark shows it when it checks the filter).
const NO_FILTER: &str = "tunwire takes no capture filter; use a display filter instead";

/// Run an extcap call; output goes to stdout, where Wireshark reads it.
pub fn main(args: &[OsString]) -> Result<u8> {
    let call = parse(args).map_err(Error::Usage)?;
    let mut out = std::io::stdout().lock();
    let w = |out: &mut dyn Write, s: String| -> Result<()> {
        writeln!(out, "{s}").map_err(|e| Error::Runtime(format!("write to Wireshark: {e}")))
    };
    if call.interfaces {
        w(
            &mut out,
            format!(
                "extcap {{version={}}}{{help=man:tunwire(8)}}",
                env!("CARGO_PKG_VERSION")
            ),
        )?;
        // A wire whose program holds the devices takes no live readers: not an interface.
        let sockets = reader::unix_sockets();
        for wire in wires(&State::read()?)
            .into_iter()
            .filter(|w| reader::takes_readers(w, &sockets))
        {
            let (value, display) = interface(&wire);
            w(
                &mut out,
                format!("interface {{value={value}}}{{display={display}}}"),
            )?;
        }
        return Ok(EXIT_OK);
    }
    let Some(name) = &call.interface else {
        return Err(Error::Usage("--extcap-interface IF is missing".into()));
    };
    let all = wires(&State::read()?);
    let wire = reader::by_extcap_name(&all, name);
    if call.dlts {
        let ethernet = wire.is_some_and(|w| w.ethernet);
        let (number, dlt, display) = if ethernet {
            (1, "EN10MB", "Ethernet (TAP)")
        } else {
            (101, "RAW", "Raw IP (TUN)")
        };
        w(
            &mut out,
            format!("dlt {{number={number}}}{{name={dlt}}}{{display={display}}}"),
        )?;
        return Ok(EXIT_OK);
    }
    if call.config {
        w(
            &mut out,
            format!(
                "arg {{number=0}}{{call=--snaplen}}{{display=Snapshot length}}\
                 {{tooltip=store at most this many bytes of each packet}}{{type=integer}}\
                 {{range=1,{}}}{{default={}}}",
                crate::config::MAX_SNAPLEN,
                crate::config::DEFAULT_SNAPLEN
            ),
        )?;
        return Ok(EXIT_OK);
    }
    let filter = call.filter.as_deref().unwrap_or("").trim();
    if !call.capture {
        // Wireshark checks a capture filter by calling us without --capture: any output means
        // the filter is invalid. Filters need libpcap's compiler, which tunwire has not.
        if !filter.is_empty() {
            w(&mut out, NO_FILTER.into())?;
        }
        return Ok(EXIT_OK);
    }
    if !filter.is_empty() {
        return Err(Error::Usage(NO_FILTER.into()));
    }
    let wire = wire.ok_or_else(|| Error::Runtime(format!("{name}: no such wire is running")))?;
    let Some(fifo) = &call.fifo else {
        return Err(Error::Usage("--capture needs --fifo PATH".into()));
    };
    let snaplen = match &call.snaplen {
        Some(s) => crate::config::snaplen_value(s)
            .ok_or_else(|| Error::Usage(format!("--snaplen '{s}' is out of range")))?,
        None => crate::config::DEFAULT_SNAPLEN,
    };
    let src = reader::attach(wire, snaplen)?;
    let mut sink = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .map_err(|e| Error::Runtime(format!("cannot open Wireshark's fifo {fifo}: {e}")))?;
    let req = Request {
        wire: Some(wire.sides[0].0.clone()),
        snaplen,
        ..Default::default()
    };
    reader::stream(src, &mut sink, &req)?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn wiresharks_calls_parse() {
        assert!(is_call(&os("--extcap-interfaces --extcap-version=4.0")));
        assert!(!is_call(&os("run --pcap x")));
        // A program's own arguments are never an extcap call.
        assert!(!is_call(&os("check -- ./prog --capture --fifo x")));
        let c = parse(&os("--extcap-interfaces --extcap-version=4.0")).unwrap();
        assert!(c.interfaces);
        let c = parse(&os("--extcap-interface tunwire-tun0 --extcap-dlts")).unwrap();
        assert_eq!(
            (c.interface.as_deref(), c.dlts),
            (Some("tunwire-tun0"), true)
        );
        let c = parse(&os(
            "--capture --extcap-interface tunwire-tun0 --fifo /tmp/f --extcap-capture-filter=port --snaplen 64 --debug",
        ))
        .unwrap();
        assert!(c.capture);
        assert_eq!(c.fifo.as_deref(), Some("/tmp/f"));
        assert_eq!(c.filter.as_deref(), Some("port"));
        assert_eq!(c.snaplen.as_deref(), Some("64"));
        assert!(parse(&os("--capture --fifo")).is_err());
        assert!(parse(&os("--extcap-interfaces --bogus")).is_err());
    }
}
