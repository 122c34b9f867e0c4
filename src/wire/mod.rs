// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wire: the relay process's body after the fork. It drops every privilege first
//! (privilege.rs) and installs its seccomp filter, then starts the capture prepared before
//! setup, reports ready and relays. `relay` moves the packets in the event loop (event.rs),
//! `impair` decides their fate when impairment is on. Must not touch routing: the supervisor
//! owns the setup and its undo.

pub mod impair;
pub mod relay;
pub mod seccomp;

use std::os::fd::OwnedFd;

use nix::sys::signal::{self, SigHandler, SigSet, Signal};

use crate::capture::{self, Capture, Header, Iface};
use crate::config::impair::Impairment;
use crate::config::{Config, PcapFormat};
use crate::error::{Error, Result};
use crate::privilege::{self, Identity};
use crate::setup::tun::{Tun, VNET_HDR_LEN};
use relay::{Leg, Port, Relay};

/// The relay process: drop everything, start the capture, report ready, relay.
pub fn relay_main(
    cfg: &Config,
    id: &Identity,
    tuns: [Tun; 2],
    ready: OwnedFd,
    mask: &SigSet,
    prepared: Option<capture::Prepared>,
) -> Result<()> {
    privilege::drop_relay(id)?;
    seccomp::install()?;
    // The parent-death signal is reset by the credential change, so set it after the drop.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| Error::os("set the parent-death signal", e))?;
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        return Err(Error::Runtime(
            "the supervisor is gone; not relaying".into(),
        ));
    }
    // SAFETY: setting SIGPIPE to SIG_IGN installs no handler code; a closed capture reader then
    // shows up as EPIPE, which the capture handles.
    unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| Error::os("ignore SIGPIPE", e))?;
    let signals = crate::event::signalfd(mask)?;
    let seed = cfg.seed.unwrap_or_default();
    let capture = match (&cfg.capture, prepared) {
        (Some(c), Some(prepared)) => Some(Capture::start(c, &header(cfg, seed), prepared)),
        _ => None,
    };
    let hdr = if cfg.offload { VNET_HDR_LEN } else { 0 };
    let [a, b] = tuns;
    let legs = (0..2)
        .map(|i| {
            let imp = cfg.impairment(i);
            Leg {
                from: i,
                to: 1 - i,
                iface: i,
                inbound: false,
                engine: (!imp.is_empty()).then(|| impair::Engine::new(&imp, seed, i as u64)),
                label: format!("{} -> {}", cfg.sides[i].name, cfg.sides[1 - i].name),
            }
        })
        .collect();
    let ports = vec![
        Port {
            fd: a.fd,
            name: a.name,
            hdr,
        },
        Port {
            fd: b.fd,
            name: b.name,
            hdr,
        },
    ];
    let mut relay = Relay::new(ports, legs, capture);
    relay.on_reload(reloader(cfg.clone(), seed));
    nix::unistd::write(&ready, &[1]).map_err(|e| Error::os("report ready", e))?;
    drop(ready);
    relay.run(&signals)
}

/// SIGHUP: read the configuration again, as the relay's user, and return the impairment of
/// each leg, the seed (the file's, else the one in use) and their text. The sides stay.
fn reloader(cfg: Config, mut seed: u64) -> relay::Reload {
    Box::new(move || {
        let path = cfg.config_file.as_ref()?;
        let new = crate::config::parse(std::env::args_os().skip(1), &crate::config::read_file)
            .map_err(|e| log::error!("SIGHUP: {e}; the impairment stays as it was"))
            .ok()?;
        let mut next = cfg.clone();
        next.impair = new.impair;
        if let Some(s) = new.seed {
            seed = s;
        }
        log::debug!("SIGHUP: re-read {}", path.display());
        let imps: Vec<Option<Impairment>> = (0..2)
            .map(|i| Some(next.impairment(i)).filter(|m| !m.is_empty()))
            .collect();
        Some((imps, seed, describe(&next, seed)))
    })
}

/// The impairment in force, for the capture and the logs:
/// `seed 42; tun0 -> tun1: delay 20ms; tun1 -> tun0: none`.
pub fn describe(cfg: &Config, seed: u64) -> String {
    let mut s = format!("tunwire: seed {seed}");
    for i in 0..2 {
        s += &format!(
            "; {} -> {}: {}",
            cfg.sides[i].name,
            cfg.sides[1 - i].name,
            cfg.impairment(i)
        );
    }
    s
}

/// The capture header of this wire.
fn header(cfg: &Config, seed: u64) -> Header {
    let iface = |i: usize| {
        let (me, peer) = (&cfg.sides[i], &cfg.sides[1 - i]);
        Iface {
            name: me.name.clone(),
            description: format!("{} peer {} (tunwire)", me.addresses(), peer.addresses()),
        }
    };
    let cap = cfg.capture.as_ref();
    Header {
        format: cap.map_or(PcapFormat::PcapNg, |c| c.format),
        snaplen: cap.map_or(crate::config::DEFAULT_SNAPLEN, |c| c.snaplen),
        ifaces: [iface(0), iface(1)],
        comment: cfg.impaired().then(|| describe(cfg, seed)),
    }
}
