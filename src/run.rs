// SPDX-License-Identifier: MIT OR Apache-2.0
//! `tunwire run` and `tunwire teardown`: the privilege timeline, top to bottom:
//! authorize (the policy) -> claim names and addresses -> open the capture as the relay's
//! user -> set up -> fork -> drop -> relay / supervise. The order of the privilege steps is
//! explained once, in privilege.rs; this file only calls the steps in that order, and records
//! each decision in the audit trail. Must not do any step's work itself.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{fork, ForkResult, Pid, Uid};

use crate::audit;
use crate::capture;
use crate::capture::live::Acl;
use crate::claim::{self, Claimant};
use crate::config::{Config, Target};
use crate::error::{Error, Result, EXIT_FAILURE, EXIT_OK};
use crate::event::{block_signals, signalfd};
use crate::policy::{self, Policy};
use crate::privilege::{self, Identity};
use crate::setup::state::{self, State};
use crate::setup::tun::Tun;
use crate::setup::{self, Owner, Wire};
use crate::supervisor::{Child, Kind, Supervisor};
use crate::wire::Layout;

/// `tunwire run`.
pub fn start(cfg: &Config) -> Result<u8> {
    let mut cfg = cfg.clone();
    // Drawn even without impairment: a SIGHUP that adds some then has a real seed.
    if cfg.seed.is_none() {
        cfg.seed = Some(draw_seed()?);
    }
    if let Some(why) = cfg.offload_ignored {
        log::info!("--offload on ignored: {why}, so offload is off");
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

    // The program, found as the user would find it, before anything changes: one that is not
    // there or not executable is 127 or 126, as in a shell.
    let prog = match cfg.prog.as_ref().and_then(|p| p.first()) {
        Some(p) => Some(crate::wire::exec::resolve(p, &id)?),
        None => None,
    };

    // Signals wait in the mask from here on, so a ^C during setup cannot strand state; every
    // process reads them from a signalfd after the fork (the program gets them unblocked). The
    // children report readiness through pipes. All exist before anything is set up, so their
    // failure strands nothing.
    let mask = block_signals()?;

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
        "start allowed: {} (table {}){}, {} as {}, pid {}",
        wire_text(cfg),
        cfg.table,
        if cfg.force { ", with --force" } else { "" },
        match &prog {
            Some(p) => format!("running {}", p.display()),
            None => "relaying".into(),
        },
        id.name,
        std::process::id()
    ));

    // Orphans of the program become the supervisor's, so that none keeps the devices.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::warn!("{}", Error::os("become the program's subreaper", e));
    }
    let steps = wire.steps;
    // Fork while single-threaded: the children, then the supervisor drops its privileges.
    let acl = capture_acl(&policy, &id);
    let children = match spawn(cfg, &id, wire.tuns, &mask, prepared, prog.as_deref(), acl) {
        Ok(children) => children,
        Err(e) => {
            if let Err(undo) = setup::remove_wire(&names, indices) {
                log::error!("{undo}");
            }
            return Err(e);
        }
    };
    let signals = match privilege::drop_supervisor(&id).and_then(|()| signalfd(&mask)) {
        Ok(signals) => signals,
        Err(e) => {
            // Never leave a child without its supervisor: stop it and clean up.
            for c in &children {
                let _ = signal::kill(c.pid, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(c.pid, None);
            }
            if let Err(undo) = setup::remove_wire(&names, indices) {
                log::error!("{undo}");
            }
            return Err(e);
        }
    };
    let sup = Supervisor::new(
        children,
        names,
        indices,
        steps,
        ready_line(cfg, &id, prog.as_deref()),
        crate::wire::program_name(cfg),
    );
    let code = sup.run(&signals);
    audit::record(&format!("stop: {}, exit {code}", wire_text(cfg)));
    Ok(code)
}

/// Fork the children: the relay; or the program with the TUNs themselves; or, when tunwire
/// stays in the path (capture, impairment), the program with a socket per side and the relay
/// between the TUNs and those sockets. Returns them, main child first. The supervisor keeps
/// no TUN fd and no capture file.
fn spawn(
    cfg: &Config,
    id: &Identity,
    tuns: [Tun; 2],
    mask: &nix::sys::signal::SigSet,
    prepared: Option<capture::Prepared>,
    prog: Option<&std::path::Path>,
    acl: Acl,
) -> Result<Vec<Child>> {
    let Some(path) = prog else {
        let relay = fork_ready("the relay", Kind::Relay, |tx| {
            exit_code(crate::wire::relay_main(
                cfg,
                id,
                Layout::Wire(tuns),
                tx,
                mask,
                prepared,
                acl,
            ))
        })?;
        return Ok(vec![relay]);
    };
    let to_stderr = matches!(
        cfg.capture.as_ref().map(|c| &c.target),
        Some(Target::Stdout)
    );
    let run_prog = |fds: [OwnedFd; 2], tx: OwnedFd| {
        let e = crate::wire::exec::exec_prog(cfg, id, path, fds, tx, to_stderr);
        log::error!("{e}");
        e.exit_code()
    };
    if cfg.capture.is_none() && !cfg.impaired() {
        let [a, b] = tuns;
        let prog = fork_ready("the program", Kind::Prog, |tx| run_prog([a.fd, b.fd], tx))?;
        return Ok(vec![prog]);
    }
    let pair = || {
        socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .map_err(|e| Error::os("create a socket pair for the program", e))
    };
    let ((ra, pa), (rb, pb)) = (pair()?, pair()?);
    let prog = fork_ready("the program", Kind::Prog, |tx| run_prog([pa, pb], tx))?;
    let relay = fork_ready("the relay", Kind::Relay, |tx| {
        let layout = Layout::Prog(tuns, [ra, rb]);
        exit_code(crate::wire::relay_main(
            cfg, id, layout, tx, mask, prepared, acl,
        ))
    });
    match relay {
        Ok(relay) => Ok(vec![prog, relay]),
        Err(e) => {
            let _ = signal::kill(prog.pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(prog.pid, None);
            Err(e)
        }
    }
}

/// Fork a child that reports through a ready pipe: `body` gets the write end, the parent
/// keeps the read end (in the returned `Child`).
fn fork_ready(what: &str, kind: Kind, body: impl FnOnce(OwnedFd) -> u8) -> Result<Child> {
    let (rx, tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os("create a ready pipe", e))?;
    let rx_fd = rx.as_raw_fd();
    let pid = fork_child(what, || {
        let _ = nix::unistd::close(rx_fd);
        body(tx)
    })?;
    Ok(Child::new(pid, kind, rx))
}

/// Who may attach a live capture reader: the owner, and the policy's `capture` users and
/// groups, resolved now (names that do not exist are left out).
fn capture_acl(policy: &Policy, id: &Identity) -> Acl {
    let (users, groups) = policy.capture_readers();
    Acl {
        owner: id.uid.as_raw(),
        users: users
            .iter()
            .filter_map(|u| nix::unistd::User::from_name(u).ok().flatten())
            .map(|u| u.uid.as_raw())
            .collect(),
        groups: groups
            .iter()
            .filter_map(|g| nix::unistd::Group::from_name(g).ok().flatten())
            .map(|g| g.gid.as_raw())
            .collect(),
    }
}

/// A child's result as its exit status, logged when it failed.
fn exit_code(result: Result<()>) -> u8 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            log::error!("{e}");
            EXIT_FAILURE
        }
    }
}

/// Fork a child that runs `body` and exits with the status it returns; the parent gets its pid.
fn fork_child(what: &str, body: impl FnOnce() -> u8) -> Result<Pid> {
    // SAFETY: the process is single-threaded here (no thread was ever started), so the child
    // may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => Err(Error::os(format!("fork {what}"), e)),
        Ok(ForkResult::Child) => std::process::exit(i32::from(body())),
        Ok(ForkResult::Parent { child }) => Ok(child),
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

fn ready_line(cfg: &Config, id: &Identity, prog: Option<&std::path::Path>) -> String {
    let [a, b] = &cfg.sides;
    let what = match prog {
        Some(p) => format!("running {}", p.display()),
        None => "relaying".into(),
    };
    let mut line = format!(
        "ready: {} {} <-> {} {} (table {}), {what} as {}",
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
