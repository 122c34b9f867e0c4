// SPDX-License-Identifier: MIT OR Apache-2.0
//! Setting up a wire and taking it down: create both TUNs (a name in use fails here, before
//! any routing change), remove the leftovers of killed wires, apply the plan over rtnetlink,
//! and undo what was done when a step fails. `plan` says what to do, `apply` does it over
//! `netlink`, `tun` makes the devices, `state` reads the namespace. Must not fork, drop
//! privileges or move packets.

pub mod apply;
pub mod netlink;
pub mod plan;
pub mod state;
pub mod tun;

use crate::config::Config;
use crate::error::Result;
use netlink::Netlink;
use plan::Step;
use state::State;
use tun::{Offload, Tun};

/// A wire that is set up: both TUNs (whose fds keep the devices alive) and the steps applied.
pub struct Wire {
    pub tuns: [Tun; 2],
    pub steps: Vec<Step>,
}

impl Wire {
    pub fn indices(&self) -> [u32; 2] {
        [self.tuns[0].index, self.tuns[1].index]
    }
}

/// Who a wire belongs to: recorded in the kernel as the TUN owner and the links' alias.
#[derive(Debug, Clone)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// `tunwire: USER, pid PID` (see state::alias).
    pub alias: String,
}

/// Create the TUNs, remove leftovers, apply the plan. On failure nothing of ours stays: the TUNs
/// close (taking their addresses and routes along) and the rules are removed.
pub fn establish(cfg: &Config, owner: &Owner) -> Result<Wire> {
    let tuns = [create_tun(cfg, 0, owner)?, create_tun(cfg, 1, owner)?];
    let names = cfg.names();
    remove_leftovers()?;
    let steps = plan::build(cfg, Some(&owner.alias));
    let mut nl = Netlink::open()?;
    if let Err(e) = steps.iter().try_for_each(|step| nl.apply(step)) {
        undo(tuns, &names);
        return Err(e);
    }
    Ok(Wire { tuns, steps })
}

/// Take back a wire that was set up but is not wanted after all.
pub fn undo(tuns: [Tun; 2], names: &[String; 2]) {
    // Closing the TUNs removes their addresses and routes; the rules must go by hand.
    drop(tuns);
    if let Err(e) = remove_rules(names) {
        log::error!("{e}");
    }
}

fn create_tun(cfg: &Config, i: usize, owner: &Owner) -> Result<Tun> {
    let tun = Tun::create(
        &cfg.sides[i].name,
        cfg.mode,
        cfg.offload,
        (owner.uid, owner.gid),
    )?;
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

/// Remove what killed wires left, whatever their names: our rules that no running wire needs
/// (detached, or re-attached to a device that is not a running wire's), and the links of wires
/// whose supervisor is gone while something still held their devices. Returns how many.
pub fn remove_leftovers() -> Result<usize> {
    let st = State::read()?;
    let mut nl = Netlink::open()?;
    let mut removed = 0;
    for link in st.stale() {
        if nl.delete_link(link)? {
            log::info!(
                "removed {} of a wire whose supervisor is gone ({})",
                link.name,
                link.alias.as_deref().unwrap_or("")
            );
            removed += 1;
        }
    }
    for rule in st.leftover_rules() {
        removed += usize::from(nl.delete_rule(rule)?);
    }
    if removed > 0 {
        log::info!("removed {removed} leftovers of killed wires");
    }
    Ok(removed)
}

/// Remove our rules on these names (the supervisor's teardown, and `teardown` for named
/// sides). With the TUNs gone, the addresses and routes went with them.
pub fn remove_rules(names: &[String; 2]) -> Result<()> {
    let st = State::read()?;
    let mut nl = Netlink::open()?;
    let mut removed = 0;
    for rule in st
        .rules
        .iter()
        .filter(|r| r.is_ours() && r.iif.as_ref().is_some_and(|i| names.contains(i)))
    {
        removed += usize::from(nl.delete_rule(rule)?);
    }
    log::debug!("removed {removed} rules");
    Ok(())
}

/// The supervisor's teardown: delete the wire's links if something still holds them (a
/// prototype's child that kept the fds), then its rules.
pub fn remove_wire(names: &[String; 2], indices: [u32; 2]) -> Result<()> {
    let st = State::read()?;
    let mut nl = Netlink::open()?;
    for link in st
        .links
        .iter()
        .filter(|l| indices.contains(&l.index) && names.contains(&l.name))
    {
        if nl.delete_link(link)? {
            log::warn!(
                "{} was still held by another process; deleted it",
                link.name
            );
        }
    }
    remove_rules(names)
}
