// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wire: the relay process's body after the fork. It drops every privilege first
//! (privilege.rs) and installs its seccomp filter, then starts the capture prepared before
//! setup, reports ready and relays.
//! `relay` moves the packets in the event loop (event.rs).
//! Must not touch routing: the supervisor owns the setup and its undo.

pub mod relay;
pub mod seccomp;

use std::os::fd::OwnedFd;

use nix::sys::signal::{self, SigHandler, SigSet, Signal};

use crate::capture::{self, Capture, Header, Iface};
use crate::config::{Config, PcapFormat};
use crate::error::{Error, Result};
use crate::privilege::{self, Identity};
use crate::setup::tun::{Tun, VNET_HDR_LEN};
use relay::Relay;

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
    let [a, b] = tuns;
    let capture = match (&cfg.capture, prepared) {
        (Some(c), Some(prepared)) => Some(Capture::start(c, &header(cfg), prepared)),
        _ => None,
    };
    let hdr = if cfg.offload { VNET_HDR_LEN } else { 0 };
    let mut relay = Relay::new([a.fd, b.fd], [a.name, b.name], hdr, capture);
    nix::unistd::write(&ready, &[1]).map_err(|e| Error::os("report ready", e))?;
    drop(ready);
    relay.run(&signals)
}

/// The capture header of this wire.
fn header(cfg: &Config) -> Header {
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
        comment: None,
    }
}
