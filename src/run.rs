// SPDX-License-Identifier: MIT OR Apache-2.0
//! `tunwire run` and `tunwire teardown`: the privilege timeline, top to bottom:
//! authorize (the policy) -> claim names and addresses -> open the capture as the relay's
//! user -> set up -> fork -> drop -> relay / supervise. The order of the privilege steps is
//! explained once, in privilege.rs; this file only calls the steps in that order, and records
//! each decision in the audit trail. Must not do any step's work itself.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, Signal};
use nix::unistd::{fork, ForkResult, Uid};

use crate::audit;
use crate::capture;
use crate::claim::{self, Claimant};
use crate::config::Config;
use crate::error::{Error, Result, EXIT_FAILURE, EXIT_OK};
use crate::event::{block_signals, signalfd};
use crate::policy::{self, Policy};
use crate::privilege::{self, Identity};
use crate::setup::state::{self, State};
use crate::setup::{self, Owner, Wire};
use crate::supervisor::Supervisor;

/// `tunwire run`.
pub fn start(cfg: &Config) -> Result<u8> {
    let mut cfg = cfg.clone();
    if cfg.impaired() && cfg.seed.is_none() {
        cfg.seed = Some(draw_seed()?);
    }
    if cfg.offload_overridden {
        log::info!("--offload on ignored: impairment acts on wire-size packets, so offload is off");
    }
    let cfg = &cfg;
    let wanted = if cfg.sides_given {
        wire_text(cfg)
    } else {
        "a free pair from the pools".to_string()
    };
    let decided = authorize_and_claim(cfg);
    let (id, who, policy, candidates) = match decided {
        Ok(d) => d,
        Err(e) => {
            if e.exit_code() == crate::error::EXIT_NOPERM {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default();
                audit::record(&format!("start refused: {wanted}: {why}"));
            }
            return Err(e);
        }
    };

    // The first capture file, opened as the relay's user before anything changes: a path that
    // user cannot write is a configuration error, not a half-made wire.
    let prepared = prepare_capture(cfg, &id)?;

    // Signals wait in the mask from here on, so a ^C during setup cannot strand state; both
    // processes read them from a signalfd after the fork. The relay reports readiness through
    // the pipe. Both exist before anything is set up, so their failure strands nothing.
    let mask = block_signals()?;
    let (ready_rx, ready_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os("create the ready pipe", e))?;

    // Create both TUNs, remove leftovers of killed wires, then set up. A failure midway undoes
    // what was done.
    let owner = Owner {
        uid: id.uid.as_raw(),
        gid: id.gid.as_raw(),
        alias: state::alias(&id.name, std::process::id()),
    };
    let (cfg, wire) = establish_first(&candidates, &owner, who, &policy)?;
    let cfg = &cfg;
    let names = cfg.names();
    let indices = wire.indices();
    audit::record(&format!(
        "start allowed: {} (table {}), relaying as {}, pid {}",
        wire_text(cfg),
        cfg.table,
        id.name,
        std::process::id()
    ));

    // Fork while single-threaded.
    // SAFETY: the process is single-threaded here (no thread was ever started), so the child
    // may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => {
            setup::undo(wire.tuns, &names);
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
                    if let Err(undo) = setup::remove_wire(&names, indices) {
                        log::error!("{undo}");
                    }
                    return Err(e);
                }
            };
            log::debug!("relay is pid {child}");
            let sup = Supervisor::new(child, ready_rx, names, indices, steps, ready_line(cfg, &id));
            let code = sup.run(&signals);
            audit::record(&format!("stop: {}, exit {code}", wire_text(cfg)));
            Ok(code)
        }
    }
}

/// The decisions before any change: the policy, the caller, the names and addresses.
fn authorize_and_claim(cfg: &Config) -> Result<(Identity, Claimant, Policy, Vec<Config>)> {
    let policy = policy::load_for_caller()?;
    let id = privilege::authorize(cfg, &policy)?;
    let who = Claimant {
        root: Uid::effective().is_root(),
        uid: id.uid.as_raw(),
    };
    let candidates = claim::claim(cfg, who, &policy, &State::read()?)?;
    Ok((id, who, policy, candidates))
}

/// Set up the first candidate that works: an automatic pair another start took a moment ago
/// (its TUN name is busy, or an address turned up twice) makes way for the next one.
fn establish_first(
    candidates: &[Config],
    owner: &Owner,
    who: Claimant,
    policy: &Policy,
) -> Result<(Config, Wire)> {
    let mut last = None;
    for cfg in candidates {
        let result = setup::establish(cfg, owner).and_then(|wire| {
            match claim::recheck(cfg, wire.indices(), who, policy) {
                Ok(()) => Ok(wire),
                Err(e) => {
                    setup::undo(wire.tuns, &cfg.names());
                    Err(e)
                }
            }
        });
        match result {
            Ok(wire) => return Ok((cfg.clone(), wire)),
            Err(e) if cfg.sides_given => return Err(e),
            Err(
                e @ Error::Os {
                    errno: Errno::EBUSY,
                    ..
                },
            )
            | Err(e @ Error::NotPermitted(_)) => {
                log::info!("{e}; trying the next free pair");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Runtime("no pair to set up".into())))
}

/// Open the first capture file with the relay's identity (see capture::prepare).
fn prepare_capture(cfg: &Config, id: &Identity) -> Result<Option<capture::Prepared>> {
    let Some(c) = &cfg.capture else {
        return Ok(None);
    };
    privilege::as_identity(id, || capture::prepare(c))?
        .map(Some)
        .map_err(|e| e.for_user(&id.name, id.switch))
}

/// `tunwire teardown`: remove what killed wires left. With sides: the rules on those names
/// (never while a wire runs on them). Without: every leftover of ours, whatever its name.
pub fn teardown(cfg: &Config) -> Result<u8> {
    let policy = policy::load_for_caller()?;
    let id = privilege::authorize(cfg, &policy)?;
    if !cfg.sides_given {
        let removed = setup::remove_leftovers()?;
        audit::record(&format!("teardown: {removed} leftovers removed"));
        log::info!("teardown done: no leftovers of killed wires remain");
        return Ok(EXIT_OK);
    }
    let names = cfg.names();
    if !Uid::effective().is_root() {
        for name in &names {
            policy
                .check_name(name)
                .map_err(|r| Error::NotPermitted(r.message))?;
        }
    }
    let st = State::read()?;
    for name in &names {
        if st.link_named(name).is_some() {
            return Err(Error::Runtime(format!(
                "{name} still exists: an instance seems to be running on it\n  \
                 hint: stop that instance (SIGTERM); it removes its own state"
            )));
        }
    }
    setup::remove_rules(&names)?;
    audit::record(&format!(
        "teardown: {} and {} as {}",
        names[0], names[1], id.name
    ));
    log::info!(
        "teardown done: no rules of ours on {} or {} remain",
        names[0],
        names[1]
    );
    Ok(EXIT_OK)
}

/// `tun0=192.168.13.1 <-> tun1=192.168.13.2`
fn wire_text(cfg: &Config) -> String {
    let [a, b] = &cfg.sides;
    format!(
        "{}={} <-> {}={}",
        a.name,
        a.addresses(),
        b.name,
        b.addresses()
    )
}

fn ready_line(cfg: &Config, id: &Identity) -> String {
    let [a, b] = &cfg.sides;
    let mut line = format!(
        "ready: {} {} <-> {} {} (table {}), relaying as {}",
        a.name,
        a.addresses(),
        b.name,
        b.addresses(),
        cfg.table,
        id.name
    );
    if let (true, Some(seed)) = (cfg.impaired(), cfg.seed) {
        line += &format!(", seed {seed}");
        for i in 0..2 {
            let imp = cfg.impairment(i);
            if !imp.is_empty() {
                line += &format!("; {}: {imp}", cfg.sides[i].name);
            }
        }
    }
    line
}

/// A seed for the impairment's random streams, from the kernel's generator.
fn draw_seed() -> Result<u64> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Runtime(format!("failed to draw a seed from /dev/urandom: {e}")))?;
    Ok(u64::from_ne_bytes(bytes))
}
