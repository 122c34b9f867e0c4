// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wire: the relay process's body after the fork. It drops every privilege first
//! (privilege.rs) and installs its seccomp filter, then starts the capture prepared before
//! setup, reports ready and relays. `relay` moves the packets in the event loop (event.rs),
//! `impair` decides their fate when impairment is on. Must not touch routing: the supervisor
//! owns the setup and its undo.

pub mod exec;
pub mod impair;
pub mod relay;
pub mod seccomp;

use std::os::fd::OwnedFd;

use nix::sys::signal::{self, SigHandler, SigSet, Signal};

use crate::capture::format::DataLink;
use crate::capture::live::{Acl, Live};
use crate::capture::{self, Capture, Header, Iface};
use crate::config::impair::Impairment;
use crate::config::{Config, Mode, PcapFormat};
use crate::error::{Error, Result};
use crate::privilege::{self, Identity};
use crate::setup::tun::{Tun, VNET_HDR_LEN};
use relay::{Leg, Port, Relay};

/// What the relay moves packets between.
pub enum Layout {
    /// TUN to TUN: the wire itself.
    Wire([Tun; 2]),
    /// Each TUN to its socket to the user's program (fd 3 and fd 4 on the program's side),
    /// and back: tunwire stays in the path to capture and impair.
    Prog([Tun; 2], [OwnedFd; 2]),
}

/// The relay process: drop everything, start the capture, report ready, relay.
pub fn relay_main(
    cfg: &Config,
    id: &Identity,
    layout: Layout,
    ready: OwnedFd,
    mask: &SigSet,
    prepared: Option<capture::Prepared>,
    acl: Acl,
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
    let described = header(cfg, seed);
    let capture = match (&cfg.capture, prepared) {
        (Some(c), Some(prepared)) => Some(Capture::start(c, &described, prepared)),
        _ => None,
    };
    let hdr = if cfg.offload { VNET_HDR_LEN } else { 0 };
    let (ports, legs) = plumb(cfg, layout, hdr, seed);
    // Live capture readers find the wire by its supervisor's pid (the links' alias).
    let supervisor = nix::unistd::getppid().as_raw() as u32;
    let live = match Live::open(supervisor, acl, described) {
        Ok(live) => Some(live),
        Err(e) => {
            log::warn!(
                "live capture is unavailable: cannot listen as {} ({e}); another process took \
                 the name first",
                capture::live::socket_name(supervisor)
            );
            None
        }
    };
    let mut relay = Relay::new(ports, legs, capture, live);
    relay.on_reload(reloader(cfg.clone(), seed));
    nix::unistd::write(&ready, &[1]).map_err(|e| Error::os("report ready", e))?;
    drop(ready);
    relay.run(&signals)
}

/// Ports and legs. The wire: tun0 -> tun1 and back, each leg impaired as the side it reads.
/// With a program: tun0 -> program (fd 3) and back, tun1 -> program (fd 4) and back; what the
/// program receives is impaired as the side it comes from, what it sends is recorded inbound.
fn plumb(cfg: &Config, layout: Layout, hdr: usize, seed: u64) -> (Vec<Port>, Vec<Leg>) {
    let names = cfg.names();
    let engine = |side: usize| {
        let imp = cfg.impairment(side);
        (!imp.is_empty()).then(|| impair::Engine::new(&imp, seed, side as u64))
    };
    let port = |fd: OwnedFd, name: String, hdr: usize| Port { fd, name, hdr };
    let leg = |from, to, iface, inbound, impairs: Option<usize>, label: String| Leg {
        from,
        to,
        iface,
        inbound,
        engine: impairs.and_then(engine),
        impairs,
        label,
    };
    match layout {
        Layout::Wire([a, b]) => (
            vec![port(a.fd, a.name, hdr), port(b.fd, b.name, hdr)],
            (0..2)
                .map(|i| {
                    leg(
                        i,
                        1 - i,
                        i,
                        false,
                        Some(i),
                        format!("{} -> {}", names[i], names[1 - i]),
                    )
                })
                .collect(),
        ),
        Layout::Prog([a, b], [sa, sb]) => {
            let prog = program_name(cfg);
            let ports = vec![
                port(a.fd, a.name, 0),
                port(b.fd, b.name, 0),
                port(sa, format!("{prog} (fd 3)"), 0),
                port(sb, format!("{prog} (fd 4)"), 0),
            ];
            let legs = (0..2)
                .flat_map(|i| {
                    [
                        leg(
                            i,
                            2 + i,
                            i,
                            false,
                            Some(i),
                            format!("{} -> {prog}", names[i]),
                        ),
                        leg(2 + i, i, i, true, None, format!("{prog} -> {}", names[i])),
                    ]
                })
                .collect();
            (ports, legs)
        }
    }
}

/// How the logs name the program: its file name.
pub fn program_name(cfg: &Config) -> String {
    cfg.prog
        .as_ref()
        .and_then(|p| p.first())
        .map(|p| {
            std::path::Path::new(p)
                .file_name()
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| "the program".into())
}

/// SIGHUP: read the configuration again, as the relay's user, and return the impairment of
/// each leg, the seed (the file's, else the one in use) and their text. The sides stay.
fn reloader(cfg: Config, mut seed: u64) -> relay::Reload {
    let mut in_force = describe(&cfg, seed);
    Box::new(move || {
        let path = cfg.config_file.as_ref()?;
        let new = crate::config::parse(std::env::args_os().skip(1), &crate::config::read_file)
            .map_err(|e| log::error!("SIGHUP: {e}; the impairment stays as it was"))
            .ok()?;
        if let Some(e) = crate::config::foreign_impair_side(&new.impair, &cfg.sides) {
            log::error!("SIGHUP: {e}; the impairment stays as it was");
            return None;
        }
        let mut next = cfg.clone();
        next.impair = new.impair;
        let next_seed = new.seed.unwrap_or(seed);
        log::debug!("SIGHUP: re-read {}", path.display());
        if next.impaired() && cfg.offload {
            log::error!(
                "SIGHUP: this wire started with offload on, and impairment acts on wire-size \
                 packets only; the impairment stays as it was (start it with --offload off)"
            );
            return None;
        }
        let text = describe(&next, next_seed);
        if text == in_force {
            log::info!("SIGHUP: the impairment and the seed are unchanged");
            return None;
        }
        seed = next_seed;
        in_force.clone_from(&text);
        let imps: [Option<Impairment>; 2] =
            [0, 1].map(|i| Some(next.impairment(i)).filter(|m| !m.is_empty()));
        Some((imps, seed, text))
    })
}

/// The impairment in force, for the capture and the logs:
/// `seed 42; tun0 -> tun1: delay 20ms; tun1 -> tun0: none`.
pub fn describe(cfg: &Config, seed: u64) -> String {
    format!("tunwire: seed {seed}; {}", directions(cfg))
}

/// Each direction's impairment: `tun0 -> tun1: delay 20ms; tun1 -> tun0: none`.
pub fn directions(cfg: &Config) -> String {
    let [a, b] = &cfg.sides;
    format!(
        "{} -> {}: {}; {} -> {}: {}",
        a.name,
        b.name,
        cfg.impairment(0),
        b.name,
        a.name,
        cfg.impairment(1)
    )
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
        linktype: match cfg.mode {
            Mode::Tun => DataLink::RAW,
            Mode::Tap => DataLink::ETHERNET,
        },
        snaplen: cap.map_or(crate::config::DEFAULT_SNAPLEN, |c| c.snaplen),
        ifaces: [iface(0), iface(1)],
        comment: cfg.impaired().then(|| describe(cfg, seed)),
    }
}
