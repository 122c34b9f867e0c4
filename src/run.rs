// SPDX-License-Identifier: MIT OR Apache-2.0
//! `tunwire run` and `tunwire teardown`: the privilege timeline, top to bottom:
//! authorize -> open the capture as the relay's user -> set up -> fork -> drop -> relay /
//! supervise. The order of the privilege steps is explained once, in privilege.rs; this file
//! only calls the steps in that order. Must not do any step's work itself.

use nix::fcntl::OFlag;
use nix::sys::signal::{self, Signal};
use nix::unistd::{fork, ForkResult};

use crate::capture;
use crate::config::Config;
use crate::error::{Error, Result, EXIT_FAILURE, EXIT_OK};
use crate::event::{block_signals, signalfd};
use crate::privilege::{self, Identity};
use crate::setup;
use crate::supervisor::Supervisor;

/// `tunwire run`.
pub fn start(cfg: &Config) -> Result<u8> {
    // Authorize: root, or CAP_NET_ADMIN plus an allowed group. Decides whom we become.
    let id = privilege::authorize(cfg)?;

    // The first capture file, opened as the relay's user before anything changes: a path that
    // user cannot write is a configuration error, not a half-made wire.
    let prepared = prepare_capture(cfg, &id)?;

    // Signals wait in the mask from here on, so a ^C during setup cannot strand state; both
    // processes read them from a signalfd after the fork. The relay reports readiness through
    // the pipe. Both exist before anything is set up, so their failure strands nothing.
    let mask = block_signals()?;
    let (ready_rx, ready_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os("create the ready pipe", e))?;

    // Create both TUNs, remove leftovers of a killed instance, then set up. A failure midway
    // undoes what was done.
    let wire = setup::establish(cfg)?;
    let names = cfg.names();
    let indices = [wire.tuns[0].index, wire.tuns[1].index];

    // Fork while single-threaded.
    // SAFETY: the process is single-threaded here (no thread was ever started), so the child
    // may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => {
            drop(wire);
            let _ = setup::remove_rules(&names);
            Err(Error::os("fork the relay", e))
        }
        Ok(ForkResult::Child) => {
            drop(ready_rx);
            let code = match crate::wire::relay_main(cfg, &id, wire.tuns, ready_tx, &mask, prepared)
            {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    log::error!("{e}");
                    EXIT_FAILURE
                }
            };
            std::process::exit(i32::from(code));
        }
        Ok(ForkResult::Parent { child }) => {
            // The supervisor never touches packets: its copies of the TUN fds and of the
            // capture go now, so the devices vanish as soon as the relay exits.
            let steps = wire.steps;
            drop(wire.tuns);
            drop(prepared);
            drop(ready_tx);
            let signals = match privilege::drop_supervisor(&id).and_then(|()| signalfd(&mask)) {
                Ok(signals) => signals,
                Err(e) => {
                    // Never leave a relay without its supervisor: stop it and clean up.
                    let _ = signal::kill(child, Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(child, None);
                    if let Err(undo) = setup::remove_rules(&names) {
                        log::error!("{undo}");
                    }
                    return Err(e);
                }
            };
            log::debug!("relay is pid {child}");
            let sup = Supervisor::new(child, ready_rx, names, indices, steps, ready_line(cfg, &id));
            Ok(sup.run(&signals))
        }
    }
}

/// Open the first capture file with the relay's identity (see capture::prepare).
fn prepare_capture(cfg: &Config, id: &Identity) -> Result<Option<capture::Prepared>> {
    let Some(c) = &cfg.capture else {
        return Ok(None);
    };
    privilege::as_identity(id, || capture::prepare(c))?
        .map(Some)
        .map_err(|e| capture_error(&e, id))
}

/// A capture path the relay's user cannot use, as a configuration error.
pub fn capture_error(e: &capture::sink::OpenError, id: &Identity) -> Error {
    Error::Usage(format!(
        "{e} (the relay writes it as {})\n  hint: pick a path that {} may write{}",
        id.name,
        id.name,
        if id.switch { ", or set --user" } else { "" }
    ))
}

/// `tunwire teardown`: remove what a killed instance with these options left.
pub fn teardown(cfg: &Config) -> Result<u8> {
    privilege::authorize(cfg)?;
    let names = cfg.names();
    for name in &names {
        if nix::net::if_::if_nametoindex(name.as_str()).is_ok() {
            return Err(Error::Runtime(format!(
                "{name} still exists: an instance seems to be running on it\n  \
                 hint: stop that instance (SIGTERM); it removes its own state"
            )));
        }
    }
    setup::remove_rules(&names)?;
    log::info!(
        "teardown done: no rules of ours on {} or {} remain",
        names[0],
        names[1]
    );
    Ok(EXIT_OK)
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
