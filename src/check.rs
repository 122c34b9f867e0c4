// SPDX-License-Identifier: MIT OR Apache-2.0
//! `tunwire check`: the whole plan as a shell script of `ip` commands (create the TUNs, remove
//! leftover rules, then the setup steps), after the checks a run would make before touching the
//! kernel. Pasted into a namespace, with any relay that holds the two devices, the script gives
//! a working wire. Changes nothing.

use nix::unistd::Uid;

use crate::capture;
use crate::claim::{self, Claimant};
use crate::config::Config;
use crate::error::{Error, Result, EXIT_OK};
use crate::policy;
use crate::privilege;
use crate::setup::plan::{self, PROTO_TUNWIRE};
use crate::setup::state::State;

/// Validate as a start would (the policy for a member, the conflicts for everyone, the
/// capture path as the relay's user), then print the plan of the pair a start would take.
pub fn check(cfg: &Config) -> Result<u8> {
    let policy = policy::load_for_caller()?;
    let id = privilege::target(cfg)?;
    let who = Claimant {
        root: Uid::effective().is_root(),
        uid: id.uid.as_raw(),
    };
    if !who.root {
        policy
            .may_start(&id.name, &|g| id.member_of(g))
            .map_err(|r| Error::NotPermitted(r.message))?;
    }
    let candidates = claim::claim(cfg, who, &policy, &State::read()?)?;
    let cfg = &candidates[0];
    if let Some(c) = &cfg.capture {
        privilege::as_identity(&id, || capture::probe(c))?
            .map_err(|e| e.for_user(&id.name, id.switch))?;
    }
    let prog = match cfg.prog.as_ref().and_then(|p| p.first()) {
        Some(p) => Some(crate::wire::exec::resolve(p, &id)?),
        None => None,
    };
    crate::cli::out(&script(cfg));
    if let Some(path) = prog {
        crate::cli::out(&crate::wire::exec::describe(cfg, &id.name, &path));
    }
    Ok(EXIT_OK)
}

/// The plan as shell commands.
pub fn script(cfg: &Config) -> String {
    let mut out = format!(
        "# tunwire {} plan (nothing was changed)\n",
        env!("CARGO_PKG_VERSION")
    );
    for side in &cfg.sides {
        out += &format!(
            "ip tuntap add dev {} mode {}{}\n",
            side.name,
            cfg.mode.name(),
            if cfg.offload { " vnet_hdr" } else { "" }
        );
    }
    out += &format!("# remove leftover rules of a killed instance (proto {PROTO_TUNWIRE})\n");
    for side in &cfg.sides {
        for (family, used) in [("-4", cfg.has_v4()), ("-6", cfg.has_v6())] {
            if used {
                out += &format!(
                    "while ip {family} rule del iif {} proto {PROTO_TUNWIRE} 2>/dev/null; do :; done\n",
                    side.name
                );
            }
        }
    }
    for step in plan::build(cfg, None) {
        out += &format!("{step}\n");
    }
    if cfg.impaired() {
        let seed = cfg
            .seed
            .map_or("a seed drawn at start".to_string(), |s| format!("seed {s}"));
        out += &format!(
            "# the relay impairs, with {seed}: {}\n",
            crate::wire::directions(cfg)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_creates_the_tuns_first() {
        let cfg = crate::config::parse(
            ["check", "a=10.0.0.1,fd00::1", "b=10.0.0.2,fd00::2"].map(Into::into),
            &crate::config::read_file,
        )
        .unwrap();
        let s = script(&cfg);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1], "ip tuntap add dev a mode tun vnet_hdr");
        assert_eq!(lines[2], "ip tuntap add dev b mode tun vnet_hdr");
        assert!(s.contains("while ip -6 rule del iif b proto 199 2>/dev/null; do :; done"));
        assert!(s.find("rule del").unwrap() < s.find("rule add").unwrap());
        assert!(!s.lines().any(|l| l.starts_with("# open")));
    }
}
