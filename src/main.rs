// SPDX-License-Identifier: MIT OR Apache-2.0
//! tunwire: a user-space wire between two TUN interfaces, so that traffic between two local
//! addresses crosses this program instead of `lo`. `start` below is the privilege timeline,
//! top to bottom: parse -> authorize -> open -> set up -> fork -> drop -> relay / supervise.
//! The order of the privilege steps is explained once, in privilege.rs.

mod capture;
mod config;
mod error;
mod logging;
mod netlink;
mod notify;
mod plan;
mod privilege;
mod relay;
mod supervisor;
mod tun;

use std::os::fd::OwnedFd;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, ForkResult};

use crate::capture::{Capture, Iface};
use crate::config::{Command, Config};
use crate::error::{Error, Result, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::netlink::Netlink;
use crate::privilege::Identity;
use crate::relay::Relay;
use crate::supervisor::Supervisor;
use crate::tun::{Offload, Tun, VNET_HDR_LEN};

fn main() -> ExitCode {
    // 1. Parse and validate everything; nothing touches the kernel before this is whole.
    let cfg = match config::parse(std::env::args_os().skip(1)) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("tunwire: error: {e}\n  try 'tunwire --help'");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cfg.command {
        Command::Help => {
            print!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("tunwire {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    logging::init(cfg.verbosity);
    let result = match cfg.command {
        Command::Check => check(&cfg),
        Command::Teardown => teardown(&cfg),
        _ => start(&cfg),
    };
    ExitCode::from(result.unwrap_or_else(|e| {
        log::error!("{e}");
        e.exit_code()
    }))
}

/// `tunwire check`: the plan as `ip` commands. Changes nothing.
fn check(cfg: &Config) -> Result<u8> {
    println!(
        "# tunwire {} plan (nothing was changed)",
        env!("CARGO_PKG_VERSION")
    );
    for side in &cfg.sides {
        println!(
            "# open /dev/net/tun as {} (IFF_TUN|IFF_NO_PI{})",
            side.name,
            if cfg.offload {
                "|IFF_VNET_HDR, offloads on"
            } else {
                ""
            }
        );
    }
    println!(
        "# then remove leftover rules of a killed instance: proto {} with iif {} or {}",
        plan::PROTO_TUNWIRE,
        cfg.sides[0].name,
        cfg.sides[1].name
    );
    for step in plan::build(cfg) {
        println!("{step}");
    }
    Ok(EXIT_OK)
}

/// `tunwire teardown`: remove what a killed instance with these options left.
fn teardown(cfg: &Config) -> Result<u8> {
    privilege::authorize(cfg)?;
    let names = names(cfg);
    for name in &names {
        if nix::net::if_::if_nametoindex(name.as_str()).is_ok() {
            return Err(Error::Runtime(format!(
                "{name} still exists: an instance seems to be running on it\n  \
                 hint: stop that instance (SIGTERM); it removes its own state"
            )));
        }
    }
    supervisor::teardown(&names)?;
    log::info!(
        "teardown done: no rules of ours on {} or {} remain",
        names[0],
        names[1]
    );
    Ok(EXIT_OK)
}

fn names(cfg: &Config) -> [String; 2] {
    [cfg.sides[0].name.clone(), cfg.sides[1].name.clone()]
}

/// `tunwire run`: the privilege timeline.
fn start(cfg: &Config) -> Result<u8> {
    // 2. Authorize: root, or CAP_NET_ADMIN plus an allowed group. Decides whom we become.
    let id = privilege::authorize(cfg)?;

    // Signals wait in the mask from here on, so a ^C during setup cannot strand state; both
    // processes read them from a signalfd after the fork. The relay reports readiness through
    // the pipe. Both exist before anything is set up, so their failure strands nothing.
    let mask = block_signals()?;
    let (ready_rx, ready_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os("create the ready pipe", e))?;

    // 3. Open both TUNs (a busy or foreign name fails here, before any routing change), remove
    // leftovers of a killed instance, then set up. A failure midway undoes what was done.
    let tuns = [open_tun(cfg, 0)?, open_tun(cfg, 1)?];
    let mut nl = Netlink::open()?;
    let names = names(cfg);
    let leftovers = nl.remove_our_rules(&[names[0].as_str(), names[1].as_str()])?;
    if leftovers > 0 {
        log::info!("removed {leftovers} leftover rules of an earlier instance");
    }
    let steps = plan::build(cfg);
    if let Err(e) = steps.iter().try_for_each(|step| nl.apply(step)) {
        // Closing the TUNs removes their addresses and routes; the rules must go by hand.
        drop(tuns);
        if let Err(undo) = supervisor::teardown(&names) {
            log::error!("{undo}");
        }
        return Err(e);
    }
    drop(nl);
    let indices = [tuns[0].index, tuns[1].index];

    // 4. Fork while single-threaded.
    // SAFETY: the process is single-threaded here (no thread was ever started), so the child
    // may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => {
            drop(tuns);
            let _ = supervisor::teardown(&names);
            Err(Error::os("fork the relay", e))
        }
        Ok(ForkResult::Child) => {
            drop(ready_rx);
            let code = match relay_main(cfg, &id, tuns, ready_tx, &mask) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    log::error!("{e}");
                    EXIT_FAILURE
                }
            };
            std::process::exit(i32::from(code));
        }
        Ok(ForkResult::Parent { child }) => {
            // The supervisor never touches packets: its copies of the TUN fds go now, so the
            // devices vanish as soon as the relay exits.
            drop(tuns);
            drop(ready_tx);
            let signals = match privilege::drop_supervisor(&id).and_then(|()| signalfd(&mask)) {
                Ok(signals) => signals,
                Err(e) => {
                    // Never leave a relay without its supervisor: stop it and clean up.
                    let _ = signal::kill(child, Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(child, None);
                    if let Err(undo) = supervisor::teardown(&names) {
                        log::error!("{undo}");
                    }
                    return Err(e);
                }
            };
            let watch = Netlink::monitor_links()
                .inspect_err(|e| log::warn!("{e}; a link flap will not be repaired"))
                .ok();
            let sup = Supervisor {
                relay: child,
                ready: Some(ready_rx),
                ready_line: ready_line(cfg, &id),
                watch,
                links: indices.map(|i| (i, true)),
                plan: steps,
                stopping: false,
                names,
            };
            log::debug!("relay is pid {child}");
            Ok(sup.run(&signals))
        }
    }
}

fn open_tun(cfg: &Config, i: usize) -> Result<Tun> {
    let tun = Tun::open(&cfg.sides[i].name, cfg.offload)?;
    if cfg.offload {
        match tun.enable_offload()? {
            Offload::On { uso: true } => {}
            Offload::On { uso: false } => log::info!(
                "{}: this kernel refused UDP segmentation offload (USO); TCP offloads are on",
                tun.name
            ),
            Offload::Off => log::info!(
                "{}: this kernel refused offloads; relaying MTU-sized packets",
                tun.name
            ),
        }
    }
    Ok(tun)
}

/// The relay process: drop everything, open the capture as ourselves, report ready, relay.
fn relay_main(
    cfg: &Config,
    id: &Identity,
    tuns: [Tun; 2],
    ready: OwnedFd,
    mask: &SigSet,
) -> Result<()> {
    privilege::drop_relay(id)?;
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
    let signals = signalfd(mask)?;
    let [a, b] = tuns;
    let capture = match &cfg.capture {
        None => None,
        Some(c) => Some(
            Capture::open(c, [iface(cfg, 0), iface(cfg, 1)]).map_err(|e| {
                Error::Runtime(format!(
                "{e}\n  hint: the capture is opened as {} after the privilege drop; pick a path \
                 that user may write{}",
                id.name,
                if id.switch { ", or set --user" } else { "" }
            ))
            })?,
        ),
    };
    let hdr = if cfg.offload { VNET_HDR_LEN } else { 0 };
    let mut relay = Relay::new([a.fd, b.fd], [a.name, b.name], hdr, capture);
    nix::unistd::write(&ready, &[1]).map_err(|e| Error::os("report ready", e))?;
    drop(ready);
    relay.run(&signals)
}

fn iface(cfg: &Config, i: usize) -> Iface {
    let (me, peer) = (&cfg.sides[i], &cfg.sides[1 - i]);
    Iface {
        name: me.name.clone(),
        description: format!("{} peer {} (tunwire)", me.addresses(), peer.addresses()),
    }
}

fn ready_line(cfg: &Config, id: &Identity) -> String {
    let [a, b] = &cfg.sides;
    format!(
        "ready: {} {} <-> {} {} (table {}), relaying as {}",
        a.name,
        a.addresses(),
        b.name,
        b.addresses(),
        cfg.table,
        id.name
    )
}

fn block_signals() -> Result<SigSet> {
    let mut mask = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGCHLD,
    ] {
        mask.add(sig);
    }
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| Error::os("block signals", e))?;
    Ok(mask)
}

fn signalfd(mask: &SigSet) -> Result<SignalFd> {
    SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::os("create a signalfd", e))
}
